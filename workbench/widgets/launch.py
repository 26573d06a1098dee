"""The launch panel: start and stop the served Bento, see its status live, run the checks."""

from __future__ import annotations

import html
import os
from pathlib import Path

import ipywidgets as w

from workbench.config import Config
from workbench.reports import to_html
from workbench.results import LaunchResult, ServerStatus
from workbench.runtime import API_KEY_ENV
from workbench.serving import LaunchSession, Server
from workbench.widgets.base import Panel, button
from workbench.widgets.canary import CanaryControl


def _key_source() -> str:
    """Where the server's API key came from (the key itself is never shown)."""
    if os.environ.get(API_KEY_ENV):
        return f"API key from ${API_KEY_ENV}"
    return "API key made for this server (<code>panel.server.api_key</code>; 4 · Monitor finds it)"


def _environment(server: Server | None) -> str:
    """Where the server runs: the clean environment (the proof) or this one."""
    if server is not None and server.environment is not None:
        return "<span class='wb-environment'>clean environment (proving it portable)</span>"
    return "<span class='wb-environment'>this environment: portable not proven</span>"


class LaunchPanel(Panel):
    """Start, Check, Stop. While the server runs its status (uptime, requests served, last
    error) refreshes every ``status_interval`` seconds from a background thread, which ends when
    the server stops or the panel is closed. States: idle, connecting (starting), serving,
    stopped, error; Start acts when no server of this panel runs, Check and Stop while one
    does."""

    title = "3 · Launch"

    def __init__(
        self,
        config: Config,
        *,
        run_dir: str | Path | None = None,
        status_interval: float = 2.0,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.session = LaunchSession(
            config,
            run_dir=run_dir,
            on_status=self._on_status,
            interval=status_interval,
            origin=self.title,
        )
        self.result: LaunchResult | None = None
        self.light = w.HTML()
        self.light.add_class("wb-light")
        self.start_button = button("Start", style="success", icon="play")
        self.check_button = button("Check", icon="stethoscope")
        self.stop_button = button("Stop", style="danger", icon="stop")
        self.refresh_button = button("Refresh", style="", icon="refresh")
        # The shortcut: off, Start serves from this environment (quicker to iterate on, but the
        # launch record then says the Bento is not proven portable).
        self.clean_box = w.Checkbox(
            value=config.launch.portable,
            description="clean environment",
            tooltip="serve from an environment holding only the Bento's requirements",
            indent=False,
            layout=w.Layout(width="auto"),
        )
        self.start_button.on_click(self.guarded(self.start))
        self.check_button.on_click(self.guarded(self.check))
        self.stop_button.on_click(self.guarded(self.stop))
        self.refresh_button.on_click(self.guarded(self.refresh))
        self.log_view = w.Textarea(value="", layout=w.Layout(width="100%", height="120px"))
        self.log_view.add_class("wb-log")
        self.canary = CanaryControl(config, guarded=self.guarded, say=self.say)
        super().__init__(
            [
                w.HBox(
                    [
                        self.start_button,
                        self.check_button,
                        self.stop_button,
                        self.refresh_button,
                        self.clean_box,
                        self.light,
                    ]
                ),
                self.log_view,
                self.canary,
            ]
        )
        self.badge.layout.display = "none"  # the light beside the buttons shows the state
        self.refresh()

    @property
    def server(self) -> Server | None:
        return self.session.server

    def _on_status(self, status: ServerStatus) -> None:
        """From the status thread: show the snapshot; the state follows once the server
        stopped by itself."""
        self._show(status)
        if status.state != "running" and not self.busy:
            self.show_state("stopped")

    def _show(self, status: ServerStatus | None) -> None:
        running = status is not None and status.state == "running"
        colour, word = ("#1a7f37", "running") if running else ("#8c959f", "stopped")
        details = ""
        if status is not None and running:
            url = html.escape(status.url)
            served = "?" if status.requests_served is None else status.requests_served
            details = (
                f" at <a class='wb-url' href='{url}' target='_blank'>{url}</a>"
                f" (<a class='wb-docs' href='{url}/' target='_blank'>API docs</a>)"
                f" · pid {status.pid}"
                f" · up <span class='wb-uptime'>{status.uptime_s:.0f}</span> s"
                f" · <span class='wb-requests'>{served}</span> requests served"
                f" · {_key_source()}"
                f" · {_environment(self.server)}"
            )
        if status is not None and status.last_error:
            details += (
                " · last error: <span class='wb-last-error'>"
                f"{html.escape(status.last_error[:300])}</span>"
            )
        self.light.value = (
            f"<span class='wb-state-{word}' style='color:{colour}'>●</span> "
            f"<span class='wb-state'>{word}</span>{details}"
        )

    def enabled(self) -> set[w.Button]:
        if self.session.running:
            return {self.check_button, self.stop_button, self.refresh_button}
        return {self.start_button, self.refresh_button}

    def refresh_controls(self) -> None:
        super().refresh_controls()
        self.clean_box.disabled = self.session.running
        if self.server is not None:
            self.log_view.value = self.server.log_tail(30)
        self.canary.refresh_controls()

    def failed(self, error: Exception) -> None:
        self.show_state("serving" if self.session.running else "error")

    def refresh(self) -> None:
        self._show(self.session.status())
        self.refresh_controls()

    def start(self) -> None:
        self.say("starting bentoml serve ...")
        self.show_state("connecting", "starting bentoml serve")
        started = self.session.start(portable=self.clean_box.value)
        server = self.session.server
        assert server is not None  # start() either starts one or keeps the running one
        if started:
            self.say(
                f"serving Bento {server.bento_tag} at {server.url} (pid {server.pid})", kind="ok"
            )
        else:
            self.say(
                f"a server is already running at {server.url} (pid {server.pid}); nothing was "
                "started: press Stop first to start another"
            )
        self.show_state("serving")
        self.refresh()

    def check(self) -> None:
        self.say("running smoke, bad-request, parity and load checks ...")
        self.result = self.session.check()
        self.results.value = to_html(self.result)
        self.say(
            ("all checks pass" if self.result.passed else "checks failed")
            + f"; portable: {self.result.portable}",
            kind="pass" if self.result.passed else "fail",
        )
        self.refresh()

    def launch(self) -> None:
        """Start, check and stop in one go (the headless path); always stops the server."""
        self.start()
        try:
            self.check()
        finally:
            self.stop()

    def stop(self) -> None:
        stopped = self.session.stop()
        if stopped is None:
            self.say("no server of this panel is running: nothing was stopped")
        else:
            self.say(
                f"server stopped: Bento {stopped.bento_tag} at {stopped.url} (pid "
                f"{stopped.pid}), the one this panel started"
            )
        self.show_state("stopped")
        self.refresh()

    def close(self) -> None:
        """Closing the panel ends its status thread (the server runs on until Stop or exit)."""
        self.session.close()
        super().close()
