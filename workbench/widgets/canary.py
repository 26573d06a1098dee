"""The launch panel's canary control: serve the promoted version and a challenger behind one
endpoint, the challenger on a share of the requests (a live rollout, ``workbench serve NAME
--canary VERSION --share S``); ``workbench rollout advance|abort`` moves or ends the share."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from workbench.config import Config
from workbench.serving.canary import Canary
from workbench.versions import serve_rollout
from workbench.widgets.base import button


class CanaryControl(w.VBox):
    """A version, a share, Start canary and Stop canary; the endpoint and the rollout's state.
    ``guarded`` and ``say`` are the owning panel's (buttons off while running, errors one line)."""

    def __init__(
        self,
        config: Config,
        *,
        guarded: Callable[[Callable[[], None]], Callable[[Any], None]],
        say: Callable[..., None],
    ) -> None:
        self.config = config
        self.say = say
        self.canary: Canary | None = None
        self.version = w.Text(
            placeholder="VERSION (or NAME:VERSION) of the challenger",
            description="canary",
            layout=w.Layout(width="360px"),
        )
        self.version.add_class("wb-canary-version")
        self.share = w.BoundedFloatText(
            value=0.1,
            min=0.01,
            max=1.0,
            step=0.05,
            description="share",
            layout=w.Layout(width="160px"),
        )
        self.start_button = button("Start canary", icon="random")
        self.stop_button = button("Stop canary", style="danger", icon="stop")
        self.start_button.on_click(guarded(self.start))
        self.stop_button.on_click(guarded(self.stop))
        self.state = w.HTML(value="")
        self.state.add_class("wb-canary-state")
        super().__init__(
            [w.HBox([self.version, self.share, self.start_button, self.stop_button]), self.state]
        )
        self.refresh_controls()

    @property
    def running(self) -> bool:
        return self.canary is not None and self.canary.running

    def refresh_controls(self) -> None:
        self.start_button.disabled = self.running
        self.stop_button.disabled = not self.running

    def start(self) -> None:
        self.say("starting the promoted version, the challenger and the canary router ...")
        self.canary, rollout = serve_rollout(
            self.config, self.version.value.strip(), share=float(self.share.value)
        )
        url = html.escape(self.canary.url)
        self.state.value = (
            f"canary at <a class='wb-canary-url' href='{url}/rollout' target='_blank'>{url}</a>: "
            f"{html.escape(str(rollout.challenger))} on {rollout.share:.0%} of requests, "
            f"{html.escape(str(rollout.promoted))} on the rest (<code>workbench rollout "
            f"advance|abort {html.escape(self.config.name)}</code> moves it)"
        )
        self.say(f"canary serving at {self.canary.url}", kind="ok")
        self.refresh_controls()

    def stop(self) -> None:
        if self.canary is not None:
            self.canary.stop()
        self.state.value = ""
        self.say("canary stopped (the rollout file keeps its share)")
        self.refresh_controls()
