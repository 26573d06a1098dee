"""The monitor panel: connect to a served model, replay a file through it, watch it live.

It connects to the server the launch stage (or this panel) started, or to a URL with a key. The
live view refreshes in a background thread every ``interval`` seconds, at most ``max_refreshes``
times, until **Stop live**: the kernel stays free. Each refresh is one core call per figure:
:func:`workbench.monitoring.traffic.scrape` and :func:`~workbench.monitoring.traffic.traffic`
(request rate, latency, errors from ``/metrics``) and
:func:`~workbench.monitoring.live.check_service` (``GET /monitor`` judged by ``monitor:``),
rendered by :func:`workbench.reports.to_html`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

import ipywidgets as w
import psutil

from workbench.artifacts import records_dir
from workbench.config import Config
from workbench.errors import ServingError, WorkbenchError
from workbench.monitoring.live import check_live, check_packaged, check_service, replay
from workbench.monitoring.traffic import Scrape, Traffic
from workbench.reports import to_html
from workbench.reports.monitoring import monitor_verdict_line, replay_line, write_monitor_report
from workbench.results import MonitorResult
from workbench.runtime import API_KEY_ENV
from workbench.serving import Server, serve
from workbench.serving.server import state_dir
from workbench.widgets.base import Panel, button


def launched_url(config: Config, run_dir: str | Path | None) -> str:
    """The URL of a running server of this project's packaged Bento that workbench started (the
    launch stage's, in another notebook), or "" when there is none."""
    record = records_dir(config.root, run_dir) / "package.json"
    if not record.is_file():
        return ""
    tag = json.loads(record.read_text()).get("bento_tag")
    for path in sorted(state_dir().glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        with contextlib.suppress(OSError, ValueError, KeyError):
            info = json.loads(path.read_text())
            if info["bento_tag"] == tag and psutil.pid_exists(int(info["pid"])):
                return str(info["url"])
    return ""


def traffic_html(t: Traffic | None) -> str:
    if t is None:
        return "<p class='wb-traffic'>traffic: waiting for the next scrape</p>"

    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f} ms"

    errors = "—" if t.error_rate is None else f"{t.error_rate:.1%}"
    return (
        "<p class='wb-traffic'><b>traffic</b> (last "
        f"{t.seconds:.0f} s): {t.requests_per_s:.1f} req/s · p50 {ms(t.p50_ms)} · p95 "
        f"{ms(t.p95_ms)} · p99 {ms(t.p99_ms)} · errors {errors}</p>"
    )


class MonitorPanel(Panel):
    title = "4 · Monitor"

    def __init__(
        self,
        config: Config,
        *,
        run_dir: str | Path | None = None,
        server: Server | None = None,
        url: str = "",
        key: str = "",
        replay_file: str | Path | None = None,
        interval: float = 2.0,
        max_refreshes: int = 1800,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.server = server
        self.interval = interval
        self.max_refreshes = max_refreshes
        self.result: MonitorResult | None = None
        self.last: Scrape | None = None
        self.stopping = threading.Event()
        self.worker: threading.Thread | None = None
        found = url or (server.url if server else "") or launched_url(config, run_dir)
        self.url_box = w.Text(value=found, placeholder="http://127.0.0.1:3000")
        self.url_box.add_class("wb-url-box")
        # The launch stage's server has $WORKBENCH_API_KEY when it is set (else its own key).
        self.key_box = w.Password(
            value=key or (server.api_key if server else os.environ.get(API_KEY_ENV, ""))
        )
        self.file_box = w.Text(value=str(replay_file or config.test_path))
        self.file_box.add_class("wb-replay-file")
        self.start_button = button("Start server", style="success", icon="play")
        self.replay_button = button("Replay", icon="forward")
        self.refresh_button = button("Refresh", style="", icon="refresh")
        self.live_button = button("Start live", icon="heartbeat")
        self.stop_button = button("Stop live", style="warning", icon="pause")
        self.stop_server_button = button("Stop server", style="danger", icon="stop")
        self.start_button.on_click(self.guarded(self.start_server))
        self.replay_button.on_click(self.guarded(self.replay_in_background))
        self.refresh_button.on_click(self.guarded(self.refresh))
        self.live_button.on_click(self.guarded(self.start_live))
        self.stop_button.on_click(self.guarded(self.stop_live))
        self.stop_server_button.on_click(self.guarded(self.stop_server))
        self.traffic = w.HTML(traffic_html(None))
        super().__init__(
            [
                w.HBox([w.Label("service"), self.url_box, w.Label("key"), self.key_box]),
                w.HBox([w.Label("replay"), self.file_box, self.replay_button]),
                w.HBox(
                    [
                        self.start_button,
                        self.refresh_button,
                        self.live_button,
                        self.stop_button,
                        self.stop_server_button,
                    ]
                ),
                self.traffic,
            ]
        )
        self.refresh_controls()

    # ------------------------------------------------------------ actions

    @property
    def url(self) -> str:
        url = str(self.url_box.value).strip().rstrip("/")
        if not url:
            raise ServingError(
                "no service: press Start server, or give the URL of a running one and its key"
            )
        return url

    def refresh_controls(self) -> None:
        live = self.worker is not None and self.worker.is_alive()
        self.live_button.disabled = live
        self.stop_button.disabled = not live
        self.stop_server_button.disabled = self.server is None

    def start_server(self) -> None:
        self.say("starting bentoml serve ...")
        self.server = serve(self.config, run_dir=self.run_dir)
        self.url_box.value, self.key_box.value = self.server.url, self.server.api_key
        self.say(f"serving {self.server.bento_tag} at {self.server.url}", kind="ok")
        self.refresh_controls()

    def stop_server(self) -> None:
        self.stop_live()
        if self.server is not None:
            self.say(f"stopping the server at {self.server.url} ...")
            self.server.stop()
            self.server = None
        self.say("server stopped")
        self.refresh_controls()

    def run_replay(self, *, rate: float = 500.0) -> None:
        """Send the replay file through the service (labels as feedback); blocks."""
        file = Path(self.file_box.value).expanduser()
        done = replay(self.url, file, key=self.key_box.value, rate=rate)
        self.say(replay_line(done, file.name), kind="error" if done.failed_requests else "ok")

    def replay_in_background(self) -> None:
        url = self.url  # checked here, so a missing URL is said at once

        def job() -> None:
            try:
                self.run_replay()
            except WorkbenchError as exc:
                self.say(str(exc), kind="error")

        self.say(f"replaying into {url} ...")
        threading.Thread(target=job, name="workbench-replay", daemon=True).start()

    def refresh(self) -> None:
        """One refresh: traffic since the last one, the report judged by ``monitor:``."""
        live = check_live(self.url, self.config.monitor, key=self.key_box.value, since=self.last)
        self.traffic.value = traffic_html(live.traffic)
        self.last, self.result = live.scrape, live.result
        self.results.value = to_html(self.result)
        status = self.result.status  # INCONCLUSIVE (not enough data) is never a pass
        self.say(
            f"monitoring: {monitor_verdict_line(self.result)}",
            kind={"PASS": "ok", "FAIL": "error"}.get(status, "info"),
        )

    def start_live(self) -> None:
        """Refresh every ``interval`` seconds in a background thread (bounded, stoppable)."""
        url = self.url
        if self.worker is not None and self.worker.is_alive():
            return
        self.stopping.clear()

        def loop() -> None:
            for _ in range(self.max_refreshes):
                try:
                    self.refresh()
                except WorkbenchError as exc:
                    self.say(str(exc), kind="error")
                if self.stopping.wait(self.interval):
                    break
            self.refresh_controls()

        self.worker = threading.Thread(target=loop, name="workbench-monitor-live", daemon=True)
        self.worker.start()
        self.say(f"live: refreshing {url} every {self.interval:g} s")
        self.refresh_controls()

    def stop_live(self) -> None:
        self.stopping.set()
        if self.worker is not None:
            self.worker.join(timeout=self.interval + 35)
        self.worker = None
        self.refresh_controls()

    # ------------------------------------------------------------ headless

    def report(self) -> Path:
        """Write the last result as ``monitor.json`` (a stage record) and ``monitor.html``
        beside it; returns the HTML path."""
        if self.result is None:
            self.refresh()
        assert self.result is not None
        return write_monitor_report(records_dir(self.config.root, self.run_dir), self.result)

    def run_headless(self, *, rate: float = 500.0) -> MonitorResult:
        """Replay the file through the service given, else through a server started for it (and
        stopped after); show the result and write the report."""
        file = Path(self.file_box.value).expanduser()
        self.say(f"replaying {file.name} ...")
        if self.server is None and not self.url_box.value.strip():
            self.result = check_packaged(self.config, file, run_dir=self.run_dir, rate=rate)
        else:
            self.result = check_service(
                self.url, self.config.monitor, key=self.key_box.value, file=file, rate=rate
            )
        self.results.value = to_html(self.result)
        self.report()
        return self.result
