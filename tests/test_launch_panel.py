"""The launch panel and the launch stage's own checks of its inputs.

Without a server: changed inputs are refused at Start, the snippets are shell-safe, the last error
is read from the log. With a real ``bentoml serve`` (three short-lived servers of the session's
packaged Bento): a second Start starts nothing, the status (uptime, requests served) updates live
from a background thread and stops updating once the server stops, dies or the panel is closed;
the curl snippet works from bash with a key full of quotes, spaces and ``$``.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest

from workbench.artifacts import sha256_file
from workbench.config import load_config
from workbench.errors import StageOrderError
from workbench.packaging import package
from workbench.runtime import API_KEY_ENV
from workbench.serving.checks import snippets
from workbench.serving.session import last_error_line
from workbench.widgets import LaunchPanel

#: A row value and an API key that a hand-quoted shell line would break on.
AWKWARD = 'it\'s a "value" with spaces, $HOME and `backticks`'
AWKWARD_KEY = "k'e\"y $PATH with spaces"


@pytest.fixture
def launchable(packaged: Path, tmp_path: Path) -> Path:
    """A copy of the packaged project (records included) that a test may change."""
    dest = tmp_path / "project"
    shutil.copytree(packaged, dest, ignore=shutil.ignore_patterns("runs", "*.log"))
    return dest


def test_changed_test_data_is_one_clear_error_at_launch_not_a_key_error(launchable: Path):
    """Test data edited after packaging (a column dropped, which used to end in a KeyError):
    Start shows one line naming the file, the recorded and the current sha256 and what to run;
    no server is started. Packaging refuses the same way."""
    test_file = launchable / "data" / "test.csv"
    recorded = sha256_file(test_file)
    frame = pd.read_csv(test_file)
    frame.drop(columns=[frame.columns[0]]).to_csv(test_file, index=False)
    current = sha256_file(test_file)
    config = load_config(launchable / "workbench.yaml")

    panel = LaunchPanel(config)
    panel.start_button.click()
    assert panel.server is None and "wb-error" in panel.status.value
    message = panel.status.value
    assert f"the test data {test_file} changed since the last validation" in message
    assert f"recorded sha256 {recorded}, now {current}" in message
    assert "run the validate and package stages again, then launch" in message
    assert "KeyError" not in message and "<details>" not in message
    assert not panel.start_button.disabled  # enabled again after the error

    with pytest.raises(StageOrderError, match=f"recorded sha256 {recorded}, now {current}"):
        package(config)


def test_a_package_made_from_another_validation_is_refused_at_launch(launchable: Path):
    """validation.json redone for another model after packaging: launch names what differs."""
    records = launchable / ".workbench"
    package_record = json.loads((records / "package.json").read_text())
    package_record["inputs"] = {**package_record["inputs"], "model": "0" * 64}
    (records / "package.json").write_text(json.dumps(package_record))
    panel = LaunchPanel(load_config(launchable / "workbench.yaml"))
    panel.start_button.click()
    assert panel.server is None
    assert "was built from another validation than the last one (model differ)" in (
        panel.status.value
    )
    assert "run the package stage again, then launch" in panel.status.value


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["content-length"]))
        self.seen.append({"auth": self.headers.get("authorization"), "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that records what it is sent."""
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_curl_snippet_is_shell_safe_and_sends_the_key_from_the_environment(recorder):
    """Run through bash as pasted: a row value and a key with quotes, spaces and ``$`` arrive
    exactly; the key is read from $WORKBENCH_API_KEY, never written into the snippet."""
    url, seen = recorder
    row = {"city": AWKWARD, "n": 3, "missing": None}
    code = snippets(url, row, auth=True)
    assert AWKWARD_KEY not in code["curl"] + code["python"]
    subprocess.run(
        ["bash", "-c", code["curl"]],
        env={"PATH": "/usr/bin:/bin", API_KEY_ENV: AWKWARD_KEY},
        check=True,
        capture_output=True,
        timeout=30,
    )
    assert seen == [{"auth": f"Bearer {AWKWARD_KEY}", "body": {"rows": [row]}}]

    python = code["python"]
    assert f"token=os.environ[{API_KEY_ENV!r}]" in python
    rows = next(
        n for n in ast.walk(ast.parse(python)) if isinstance(n, ast.keyword) and n.arg == "rows"
    )
    assert ast.literal_eval(rows.value) == [row]

    open_code = snippets(url, row, auth=False)
    assert API_KEY_ENV not in open_code["curl"] + open_code["python"]


def test_the_last_error_is_the_last_error_line_of_the_server_log(tmp_path: Path):
    """The status's last error: the latest ERROR line of the log's tail, not later INFO lines."""
    log = tmp_path / "serve.log"
    log.write_text(
        "2026-12-02T00:22:02+0000 [INFO] [cli] Starting production HTTP BentoServer\n"
        "2026-12-02T00:22:03+0000 [ERROR] [entry_service:x:1] first failure\n"
        "2026-12-02T00:22:04+0000 [ERROR] [entry_service:x:1] model call failed: ValueError\n"
        "2026-12-02T00:22:05+0000 [INFO] [entry_service:x:1] 200 POST /predict\n"
    )
    assert last_error_line(log) == (
        "2026-12-02T00:22:04+0000 [ERROR] [entry_service:x:1] model call failed: ValueError"
    )
    log.write_text("2026-12-02T00:22:02+0000 [INFO] [cli] all well\n")
    assert last_error_line(log) is None
    assert last_error_line(tmp_path / "absent.log") is None


def _serve_processes(tag: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "serve" in cmd and tag in cmd:
            found.append(proc)
    return found


def _wait(predicate: Any, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.serve
def test_one_server_per_panel_live_status_and_no_updates_after_stop(
    launchable: Path, monkeypatch: pytest.MonkeyPatch
):
    """Start serves; a second Start says a server runs and starts none; the status line counts
    requests and uptime by itself while the kernel is free; the curl snippet works from bash
    against it with an awkward key; Stop ends the status thread and nothing updates after."""
    monkeypatch.setenv(API_KEY_ENV, AWKWARD_KEY)
    config = load_config(launchable / "workbench.yaml")
    panel = LaunchPanel(config, status_interval=0.3)
    during: list[tuple[bool, bool, bool]] = []
    panel.status.observe(
        lambda _: during.append(
            (panel.start_button.disabled, panel.check_button.disabled, panel.stop_button.disabled)
        ),
        names="value",
    )
    panel.start_button.click()
    try:
        server = panel.server
        assert server is not None and server.running
        assert during[0] == (True, True, True)  # all off while starting
        assert panel.start_button.disabled and not panel.stop_button.disabled
        assert len(_serve_processes(server.bento_tag)) == 1

        panel.start_button.click()  # what a second click does once the first has finished
        assert panel.server is server and len(_serve_processes(server.bento_tag)) == 1
        assert "a server is already running at" in panel.status.value
        assert "nothing was started" in panel.status.value

        watcher = panel.session.watcher
        assert watcher is not None and watcher.alive
        first = panel.light.value
        row = json.loads(
            pd.read_csv(config.test_path)
            .drop(columns=[config.data.target])
            .iloc[:1]
            .to_json(orient="records")
        )[0]
        for _ in range(3):
            answer = httpx.post(
                f"{server.url}/predict",
                json={"rows": [row]},
                headers={"Authorization": f"Bearer {AWKWARD_KEY}"},
                timeout=10,
            )
            assert answer.status_code == 200
        assert _wait(lambda: "wb-requests'>3<" in panel.light.value, seconds=10), panel.light.value
        assert panel.light.value != first and "running" in panel.light.value

        curl = snippets(server.url, row, auth=True)["curl"]
        done = subprocess.run(
            ["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True
        )
        assert json.loads(done.stdout)[0]["prediction"] in (0, 1)
    finally:
        panel.stop_button.click()
    assert not server.running and not watcher.alive
    assert "stopped" in panel.light.value and not panel.start_button.disabled
    reports, shown = watcher.reports, panel.light.value
    time.sleep(1.0)
    assert watcher.reports == reports and panel.light.value == shown


@pytest.mark.serve
def test_a_server_that_dies_by_itself_shows_as_stopped_and_updates_end(
    launchable: Path,
):
    """The server killed outright (SIGKILL, as the out-of-memory killer does): within seconds
    the status line says stopped with how it ended, Start is enabled again, and the status thread
    has ended by itself."""
    panel = LaunchPanel(load_config(launchable / "workbench.yaml"), status_interval=0.3)
    panel.start_button.click()
    server = panel.server
    assert server is not None and server.running
    watcher = panel.session.watcher
    assert watcher is not None
    tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    try:
        for proc in tree:  # the processes this test started, by PID
            proc.kill()
        assert _wait(lambda: not watcher.alive, seconds=10)
        assert "wb-state'>stopped<" in panel.light.value
        assert "`bentoml serve` was killed by SIGKILL" in panel.light.value
        assert not panel.start_button.disabled and panel.stop_button.disabled
    finally:
        psutil.wait_procs(tree, timeout=10)
        panel.session.stop()  # removes its record


@pytest.mark.serve
def test_closing_the_panel_ends_its_status_thread_and_leaves_the_server_running(
    launchable: Path,
):
    """Closing the panel (its output cleared, the widget closed) stops the status updates at
    once; the server keeps serving until stopped."""
    panel = LaunchPanel(load_config(launchable / "workbench.yaml"), status_interval=0.3)
    panel.start_button.click()
    server, watcher = panel.server, panel.session.watcher
    assert server is not None and watcher is not None and watcher.alive
    try:
        assert _wait(lambda: watcher.reports >= 2, seconds=10)
        panel.close()
        assert not watcher.alive
        reports = watcher.reports
        time.sleep(1.0)
        assert watcher.reports == reports
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
    finally:
        panel.session.stop()
    assert not server.running
