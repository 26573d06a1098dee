"""The monitor panel (4 · Monitor) in-process, against real `bentoml serve` processes.

It finds the server the launch panel started (through that server's record, as another kernel
would: the panel is never handed the server) with its key, never putting the key in a widget;
it runs at most one server of its own and Stop server stops exactly that one; its buttons follow
its state (idle, serving, live, stopped); live says when it refreshed and that it stopped; after
the service goes away nothing stale (URL, report, enabled buttons) remains.
"""

from __future__ import annotations

import json
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from workbench.config import load_config
from workbench.serving import Server
from workbench.serving.launch import served_tag
from workbench.serving.server import state_dir
from workbench.widgets import LaunchPanel, MonitorPanel
from workbench.widgets.base import verdict_kind

pytestmark = pytest.mark.serve


@pytest.fixture
def project(packaged: Path, tmp_path: Path) -> Path:
    """A copy of the packaged project (records included) that a test may change."""
    dest = tmp_path / "project"
    shutil.copytree(packaged, dest, ignore=shutil.ignore_patterns("runs", "*.log"))
    return dest


def wait_for(condition: Callable[[], bool], *, seconds: float) -> bool:
    """Poll a state (never sleep a fixed time and hope): True once it holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def enabled(panel: MonitorPanel) -> set[str]:
    return {b.description for b in panel.buttons if not b.disabled}


def widget_states(widget: object) -> str:
    """Everything the panel's widgets would send to a browser or save in a notebook."""
    parts = [json.dumps(widget.get_state(), default=str)]  # type: ignore[attr-defined]
    for child in getattr(widget, "children", ()):
        parts.append(widget_states(child))
    return "\n".join(parts)


def test_it_finds_the_launch_panels_server_with_its_key_and_never_shows_the_key(project: Path):
    """3 · Launch starts a server (a key made for it); 4 · Monitor, opened afterwards, connects
    to it by itself through the server's record (0600 in a 0700 folder), says which server it
    found and who started it, reads /monitor with the key, and no widget holds the key. It may
    not stop that server; once 3 · Launch stops it, the next Refresh leaves nothing stale."""
    config = load_config(project / "workbench.yaml")
    launch = LaunchPanel(config)
    launch.start_button.click()
    server = launch.server
    assert server is not None and server.running
    try:
        record = server.record_path
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert stat.S_IMODE(state_dir().stat().st_mode) == 0o700
        panel = MonitorPanel(config)
        assert panel.state == "serving"
        assert panel.service is not None and panel.service.key == server.api_key
        status = panel.status.value
        assert f"connected: found Bento {server.bento_tag}" in status
        assert f"at {server.url} (pid {server.pid}, started from 3 · Launch)" in status
        assert panel.url_box.value == server.url and panel.key_box.value == ""
        assert server.api_key not in widget_states(panel)
        assert enabled(panel) == {"Replay", "Refresh", "Start live", "Connect", "Start server"}

        panel.refresh_button.click()  # /monitor behind the key: no 401
        assert panel.result is not None, panel.status.value
        assert panel.status.value.count(panel.verdict.split(":")[0]) >= 1
        assert "wb-error" not in panel.status.value
        assert f"Monitoring of the service at <code>{server.url}</code>" in panel.results.value
    finally:
        launch.stop_button.click()
    assert "server stopped: Bento" in launch.status.value and not server.running
    panel.refresh_button.click()
    assert "wb-error" in panel.status.value
    assert panel.state == "stopped" and panel.service is None
    assert panel.url_box.value == "" and panel.results.value == ""
    assert enabled(panel) == {"Connect", "Start server"}


def test_it_runs_one_server_of_its_own_goes_live_and_stops_exactly_what_it_started(
    project: Path,
):
    """With a server of the project running that it did not start, the panel connects to it
    but may not stop it; Start server runs its own; Start live refreshes and says when; Stop
    live says it stopped and after how many refreshes; Stop server stops the panel's own server
    only: the other one keeps serving."""
    config = load_config(project / "workbench.yaml")
    other = Server.start(served_tag(config))
    panel = None
    try:
        panel = MonitorPanel(config, interval=0.3)
        assert panel.state == "serving" and panel.service is not None
        assert panel.service.url == other.url
        assert "Stop server" not in enabled(panel)  # not this panel's server

        panel.start_button.click()
        own = panel.session.server
        assert own is not None and own.running and own.pid != other.pid
        assert panel.service is not None and panel.service.url == own.url
        assert "started by this panel" in panel.status.value
        assert enabled(panel) == {"Replay", "Refresh", "Start live", "Stop server"}

        panel.live_button.click()
        assert panel.state == "live"
        assert enabled(panel) == {"Replay", "Stop live", "Stop server"}
        assert wait_for(lambda: panel.refreshes >= 2, seconds=30), panel.status.value
        assert "live · refreshed" in panel.live_line.value
        assert "req/s" in panel.traffic.value  # measured from the second refresh on
        panel.stop_button.click()
        assert not panel.live and panel.state == "serving"
        assert "live stopped at" in panel.live_line.value and "(Stop live)" in panel.live_line.value
        assert "live stopped" in panel.status.value
        assert "req/s" not in panel.traffic.value  # no traffic line once not live

        pids = {own.pid, *(p.pid for p in psutil.Process(own.pid).children(recursive=True))}
        panel.stop_server_button.click()
        assert panel.status.value.count(f"server stopped: Bento {own.bento_tag} at {own.url}")
        assert "the one this panel started" in panel.status.value
        assert not own.running and not any(psutil.pid_exists(p) for p in pids)
        assert panel.state == "stopped" and panel.url_box.value == ""
        assert enabled(panel) == {"Connect", "Start server"}
        assert httpx.get(f"{other.url}/readyz", timeout=10).status_code == 200  # untouched
    finally:
        if panel is not None:
            panel.stop_live()
            panel.session.stop()
        other.stop()


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("PASS", "pass"),
        ("PASS (drift: not enough data)", "pass"),
        ("FAIL: the dataset drifted", "fail"),
        ("INCONCLUSIVE: 357 more rows needed", "warn"),
        ("not enough data: 143 rows", "warn"),
    ],
)
def test_a_verdict_line_is_coloured_by_its_first_word(line: str, kind: str):
    """The panel shows the core's verdict as it is: PASS green, FAIL red, anything else amber."""
    assert verdict_kind(line) == kind
