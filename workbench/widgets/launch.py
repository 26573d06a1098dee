"""The launch panel: start and stop the served Bento, see its status, run the checks."""

from __future__ import annotations

import html
import os
from pathlib import Path

import ipywidgets as w

from workbench.config import Config
from workbench.reports import to_html
from workbench.results import LaunchResult
from workbench.runtime import API_KEY_ENV
from workbench.serving import Server, check, serve
from workbench.widgets.base import Panel, button


def _key_source(server: Server) -> str:
    """Where the server's API key came from (the key itself is never shown)."""
    if os.environ.get(API_KEY_ENV):
        return f"API key from ${API_KEY_ENV}"
    return "API key made for this server (<code>panel.server.api_key</code>)"


class LaunchPanel(Panel):
    title = "3 · Launch"

    def __init__(self, config: Config, *, run_dir: str | Path | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.server: Server | None = None
        self.result: LaunchResult | None = None
        self.light = w.HTML()
        self.light.add_class("wb-light")
        self.start_button = button("Start", style="success", icon="play")
        self.check_button = button("Check", icon="stethoscope")
        self.stop_button = button("Stop", style="danger", icon="stop")
        self.refresh_button = button("Refresh", style="", icon="refresh")
        self.start_button.on_click(self.guarded(self.start))
        self.check_button.on_click(self.guarded(self.check))
        self.stop_button.on_click(self.guarded(self.stop))
        self.refresh_button.on_click(self.guarded(self._show_state))
        self.log_view = w.Textarea(value="", layout=w.Layout(width="100%", height="120px"))
        self.log_view.add_class("wb-log")
        super().__init__(
            [
                w.HBox(
                    [
                        self.start_button,
                        self.check_button,
                        self.stop_button,
                        self.refresh_button,
                        self.light,
                    ]
                ),
                self.log_view,
            ]
        )
        self._show_state()

    def _show_state(self) -> None:
        running = self.server is not None and self.server.running
        colour, word = ("#1a7f37", "running") if running else ("#8c959f", "stopped")
        link = ""
        if running and self.server is not None:
            status = self.server.status()
            url = html.escape(self.server.url)
            link = (
                f" at <a class='wb-url' href='{url}' target='_blank'>{url}</a>"
                f" (<a class='wb-docs' href='{url}/' target='_blank'>API docs</a>)"
                f" · pid {status['pid']}"
                f" · up {status['uptime_s']:.0f} s · {status['requests_served']} requests served"
                f" · {_key_source(self.server)}"
            )
        self.light.value = (
            f"<span class='wb-state-{word}' style='color:{colour}'>●</span> "
            f"<span class='wb-state'>{word}</span>{link}"
        )
        self.start_button.disabled = running
        self.check_button.disabled = not running
        self.stop_button.disabled = not running
        if self.server is not None:
            self.log_view.value = self.server.log_tail(30)

    def start(self) -> None:
        self.say("starting bentoml serve ...")
        self.server = serve(self.config, run_dir=self.run_dir)
        self.say(f"serving {self.server.bento_tag}", kind="ok")
        self._show_state()

    def check(self) -> None:
        if self.server is None:
            return
        self.say("running smoke, bad-request, parity and load checks ...")
        self.result = check(self.server, self.config, run_dir=self.run_dir)
        self.results.value = to_html(self.result)
        self.say(
            "all checks pass" if self.result.passed else "checks failed",
            kind="ok" if self.result.passed else "error",
        )
        self._show_state()

    def launch(self) -> None:
        """Start, check and stop in one go (the headless path); always stops the server."""
        self.start()
        try:
            self.check()
        finally:
            self.stop()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.say("server stopped", kind="info")
        self._show_state()
