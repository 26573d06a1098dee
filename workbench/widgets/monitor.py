"""The monitor panel: connect to a served model, replay a file through it, watch it live.

At start it connects to the server the launch panel (3 · Launch, another kernel) or ``workbench
serve`` started for this project, with the key kept in that server's record (never shown), and
says which one it found; else **Start server** runs one of its own (at most one: **Stop server**
stops exactly that one), or **Connect** takes a URL and a key typed in. The key stays in the
kernel: it is never a widget's value, so it is never in a saved notebook or a report.

States: idle (no service), connecting, serving (connected), live (refreshing), stopped (its
server stopped, or the service stopped answering), error (the last action failed). The live view
refreshes in a background thread every ``interval`` seconds, at most ``max_refreshes`` times,
until **Stop live**: the kernel stays free, and the live line says when it last refreshed and
when and why it stopped. Each refresh is one core call, :func:`~workbench.monitoring.live.
check_live` (traffic from ``/metrics``, ``GET /monitor`` judged by ``monitor:``); the verdict line
is the core's, shown as it is (PASS green, FAIL red, anything else amber).
"""

from __future__ import annotations

import threading
from pathlib import Path

import ipywidgets as w

from workbench.artifacts import records_dir
from workbench.config import Config
from workbench.errors import ServingError, WorkbenchError
from workbench.monitoring.live import check_live, check_packaged, check_service
from workbench.monitoring.live import replay as replay_file
from workbench.monitoring.traffic import Scrape
from workbench.reports import to_html
from workbench.reports.monitoring import monitor_verdict_line, replay_line, write_monitor_report
from workbench.results import MonitorResult
from workbench.serving import Server
from workbench.serving.session import (
    LaunchSession,
    Service,
    connect,
    find_server,
    running_records,
    service_alive,
)
from workbench.widgets.base import Panel, button, verdict_kind
from workbench.widgets.live import LiveLoop, clock, live_html, traffic_html


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
        self.interval = interval
        self.max_refreshes = max_refreshes
        self.session = LaunchSession(config, run_dir=run_dir, origin=self.title)
        """This panel's own server (Start server / Stop server)."""
        self.service: Service | None = None
        self.key = key
        """The key for a URL given without one (e.g. $WORKBENCH_API_KEY); never shown."""
        self.result: MonitorResult | None = None
        self.last: Scrape | None = None
        self.loop: LiveLoop | None = None
        self.replayer: threading.Thread | None = None
        super().__init__(self._controls(url, str(replay_file or config.test_path)))
        self._connect_at_start(server)

    def _controls(self, url: str, replay: str) -> list[w.Widget]:
        """The boxes, the buttons (wired to the actions below) and the live and traffic lines."""
        self.url_box = w.Text(
            value=url, placeholder="http://127.0.0.1:3000", layout=w.Layout(width="22em")
        )
        self.url_box.add_class("wb-url-box")
        self.key_box = w.Password(
            value="", placeholder="its key (kept in the kernel)", layout=w.Layout(width="16em")
        )
        self.key_box.add_class("wb-key-box")
        self.file_box = w.Text(value=replay, layout=w.Layout(width="36em"))
        self.file_box.add_class("wb-replay-file")
        self.connect_button = button("Connect", style="", icon="plug")
        self.start_button = button("Start server", style="success", icon="play")
        self.replay_button = button("Replay", icon="forward")
        self.refresh_button = button("Refresh", style="", icon="refresh")
        self.live_button = button("Start live", icon="heartbeat")
        self.stop_button = button("Stop live", style="warning", icon="pause")
        self.stop_server_button = button("Stop server", style="danger", icon="stop")
        for control, action in (
            (self.connect_button, self.connect),
            (self.start_button, self.start_server),
            (self.replay_button, self.replay_in_background),
            (self.refresh_button, self.refresh),
            (self.live_button, self.start_live),
            (self.stop_button, self.stop_live),
            (self.stop_server_button, self.stop_server),
        ):
            control.on_click(self.guarded(action))
        self.traffic = w.HTML(traffic_html(None, live=False))
        self.live_line = w.HTML("")
        self.live_line.add_class("wb-live")
        row = w.Layout(align_items="center")
        service = [w.Label("service"), self.url_box, w.Label("key"), self.key_box]
        return [
            w.HBox([*service, self.connect_button], layout=row),
            w.HBox([self.start_button, self.stop_server_button], layout=row),
            w.HBox([w.Label("replay"), self.file_box, self.replay_button], layout=row),
            w.HBox([self.refresh_button, self.live_button, self.stop_button], layout=row),
            self.live_line,
            self.traffic,
        ]

    # ------------------------------------------------------------ state

    @property
    def live(self) -> bool:
        return self.loop is not None and self.loop.alive

    @property
    def worker(self) -> threading.Thread | None:
        """The live view's thread while it runs."""
        return self.loop.thread if self.live and self.loop is not None else None

    @property
    def refreshes(self) -> int:
        """Refreshes of the live view that runs, or ran last."""
        return 0 if self.loop is None else self.loop.refreshes

    @property
    def replaying(self) -> bool:
        return self.replayer is not None and self.replayer.is_alive()

    @property
    def url(self) -> str:
        """The connected service's URL (an error when nothing is connected)."""
        if self.service is None:
            raise ServingError(
                "no service: press Start server, or give the URL of a running one and its key "
                "and press Connect"
            )
        return self.service.url

    @property
    def verdict(self) -> str:
        """The core's verdict line of the last result, as it is ("" before the first)."""
        return "" if self.result is None else monitor_verdict_line(self.result)

    def enabled(self) -> set[w.Button]:
        own, live, connected = self.session.running, self.live, self.service is not None
        on: set[w.Button] = set()
        if live:
            on.add(self.stop_button)
        if connected and not live:
            on |= {self.refresh_button, self.live_button}
        if connected and not self.replaying:
            on.add(self.replay_button)
        if not own and not live:
            on |= {self.connect_button, self.start_button}
        if own:
            on.add(self.stop_server_button)
        return on

    def failed(self, error: Exception) -> None:
        if self.service is not None and not service_alive(self.service.url):
            self._lose_service(f"the service at {self.service.url} stopped answering")
        else:
            self.show_state("error")

    def _serving(self, service: Service) -> None:
        self.service = service
        self.url_box.value = service.url
        self.key_box.value = ""  # the key lives in the kernel from here on
        self.traffic.value = traffic_html(None, live=False)
        self.show_state("serving", service.bento_tag or service.url)

    def _lose_service(self, why: str) -> None:
        """Nothing is connected any more: no stale URL, report, traffic or live line remains."""
        self.service = None
        self.last = None
        self.url_box.value = ""
        self.results.value = ""
        self.traffic.value = traffic_html(None, live=False)
        if not self.live:
            self.live_line.value = ""
        self.show_state("stopped", why)

    def _connect_at_start(self, server: Server | None) -> None:
        """Connect to the server given, else the URL given, else the project's running server
        that workbench started (the launch panel's); say which, or how to get one."""
        record = server.record if server is not None else None
        url = server.url if server is not None else str(self.url_box.value).strip()
        key = server.api_key if server is not None else self.key
        if not url:
            record = find_server(self.config, run_dir=self.run_dir)
            if record is None:
                self.say(
                    f"no server of {self.config.name} is running: press Start server (or Start "
                    "in 3 · Launch), or give a URL and key and press Connect"
                )
                self.show_state("idle")
                return
            url, key = record.url, record.api_key
        try:
            service = connect(url, key, record=record)
        except WorkbenchError as exc:
            self.say(str(exc), kind="error")
            self.url_box.value = url
            self.show_state("error")
            return
        self._serving(service)
        found = "found " if server is None and record is not None else ""
        self.say(f"connected: {found}{service.describe()}", kind="ok")

    # ------------------------------------------------------------ actions

    def connect(self) -> None:
        """Connect to the URL in the box with the key in the box (else the key this panel
        has, or the one workbench keeps for a server it started at that URL)."""
        url = str(self.url_box.value).strip().rstrip("/")
        if not url:
            raise ServingError("give the service's URL (and its key), then press Connect")
        self.show_state("connecting", url)
        record = next((r for r in running_records() if r.url == url), None)
        key = str(self.key_box.value) or (record.api_key if record else "") or self.key
        service = connect(url, key, record=record)
        self._serving(service)
        self.say(f"connected: {service.describe()}", kind="ok")

    def start_server(self) -> None:
        self.say("starting bentoml serve ...")
        self.show_state("connecting", "starting bentoml serve")
        if self.live:
            self.stop_live()
        self.session.start()
        server = self.session.server
        assert server is not None
        service = connect(server.url, server.api_key, record=server.record)
        self._serving(service)
        self.say(f"serving {service.describe()}: started by this panel", kind="ok")

    def stop_server(self) -> None:
        """Stop live, then the server this panel started (never one it found)."""
        self.stop_live()
        server = self.session.server
        if server is not None and server.running:
            self.say(f"stopping the server at {server.url} ...")
        stopped = self.session.stop()
        if stopped is None:
            self.say("this panel started no server that runs: nothing was stopped")
            return
        self._lose_service("its server was stopped")
        self.say(
            f"server stopped: Bento {stopped.bento_tag} at {stopped.url} (pid {stopped.pid}), "
            "the one this panel started"
        )

    def run_replay(self, *, rate: float = 500.0, action: int | None = None) -> None:
        """Send the replay file through the service (labels as feedback); blocks."""
        service = self.service
        if service is None:
            raise ServingError("no service to replay into: connect to one or start one first")
        file = Path(self.file_box.value).expanduser()
        if not file.is_absolute():
            file = self.config.root / file
        done = replay_file(service.url, file, key=service.key, rate=rate)
        self.say(
            replay_line(done, file.name),
            kind="error" if done.failed_requests else "ok",
            action=action,
        )

    def replay_in_background(self) -> None:
        url, action = self.url, self.action  # checked here, so a missing service is said at once

        def job() -> None:
            try:
                self.run_replay(action=action)
            except WorkbenchError as exc:
                self.say(str(exc), kind="error", action=action)
            finally:
                self.refresh_controls()

        self.say(f"replaying {Path(self.file_box.value).name} into {url} ...")
        self.replayer = threading.Thread(target=job, name="workbench-replay", daemon=True)
        self.replayer.start()

    def _refresh_once(self) -> MonitorResult:
        service = self.service
        if service is None:
            raise ServingError("no service: connect to one or start one first")
        checked = check_live(service.url, self.config.monitor, key=service.key, since=self.last)
        self.last, self.result = checked.scrape, checked.result
        self.traffic.value = traffic_html(checked.traffic, live=self.live)
        self.results.value = to_html(checked.result)
        return checked.result

    def refresh(self) -> None:
        """One refresh: traffic since the last one, the report judged by ``monitor:``."""
        self._refresh_once()
        self.live_line.value = live_html(f"refreshed {clock()} (not live)", self.verdict)
        self.say(self.verdict, kind=verdict_kind(self.verdict))

    def start_live(self) -> None:
        """Refresh every ``interval`` seconds in a background thread (bounded, stoppable)."""
        url, action = self.url, self.action
        if self.live:
            return

        def refreshed(count: int) -> None:
            self.live_line.value = live_html(
                f"live · refreshed {clock()} · every {self.interval:g} s · {count} refreshes",
                self.verdict,
            )

        def ended(count: int, why: str, error: Exception | None) -> None:
            if error is not None:
                self.say(f"live stopped: {error}", kind="error", action=action)
            self.live_line.value = live_html(
                f"live stopped at {clock()} after {count} refreshes ({why})", self.verdict
            )
            self.traffic.value = traffic_html(None, live=False)
            if self.service is not None and not service_alive(self.service.url):
                self._lose_service(f"the service at {url} stopped answering")
            elif self.state == "live":
                self.show_state("serving", self.service.bento_tag if self.service else "")
            self.refresh_controls()

        self.loop = LiveLoop(
            self._refresh_once,
            interval=self.interval,
            max_refreshes=self.max_refreshes,
            on_refresh=refreshed,
            on_end=ended,
        ).start()
        self.traffic.value = traffic_html(None, live=True)
        self.say(f"live: refreshing {url} every {self.interval:g} s until Stop live")
        self.show_state("live", url)

    def stop_live(self) -> None:
        """End the live view and wait for its thread (no refresh follows)."""
        loop, was_live = self.loop, self.live
        if loop is not None:
            loop.stop(timeout=self.interval + 35)
        if was_live and self.state == "live":
            self.show_state("serving", self.service.bento_tag if self.service else "")
        if was_live:
            self.say(f"live stopped; the report below is from refresh {self.refreshes}")
        self.refresh_controls()

    def close(self) -> None:
        """Closing the panel ends its live view (its server runs on until Stop or exit)."""
        if self.loop is not None:
            self.loop.stopping.set()
        super().close()

    # ------------------------------------------------------------ headless

    def report(self) -> Path:
        """Write the last result as ``monitor.json`` (a stage record) and ``monitor.html``
        beside it; returns the HTML path."""
        if self.result is None:
            self.refresh()
        assert self.result is not None
        return write_monitor_report(records_dir(self.config.root, self.run_dir), self.result)

    def run_headless(self, *, rate: float = 500.0) -> MonitorResult:
        """Replay the file through the connected service, else through a server started for it
        (and stopped after); show the result and write the report."""
        file = Path(self.file_box.value).expanduser()
        self.say(f"replaying {file.name} ...")
        if self.service is None:
            self.result = check_packaged(self.config, file, run_dir=self.run_dir, rate=rate)
        else:
            self.result = check_service(
                self.service.url, self.config.monitor, key=self.service.key, file=file, rate=rate
            )
        self.results.value = to_html(self.result)
        self.say(self.verdict, kind=verdict_kind(self.verdict))
        self.report()
        return self.result
