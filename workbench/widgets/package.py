"""The package panel: build the Bento, see its tag, the generated service and the serve command."""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as w

from workbench.config import Config
from workbench.packaging import package
from workbench.reports import PackageResult
from workbench.widgets.base import Panel, button


class PackagePanel(Panel):
    title = "2 · Package"

    def __init__(self, config: Config, *, run_dir: str | Path | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.result: PackageResult | None = None
        self.build_button = button("Build Bento", icon="cube")
        self.build_button.on_click(self.guarded(self.build))
        self.source = w.HTML(value="")
        self.source.add_class("wb-service-source")
        intro = w.HTML(
            f"Saves <code>{html.escape(config.model)}</code> to the BentoML store and builds the "
            f"Bento <code>{html.escape(config.name)}</code> from "
            f"<code>bentos/{html.escape(config.name)}/</code>. Needs a passing validation."
        )
        super().__init__([intro, self.build_button])
        self.children = (*self.children, self.source)

    def build(self) -> None:
        self.say("saving the model and building the Bento ...")
        self.result = package(self.config, run_dir=self.run_dir)
        self.results.value = self.result._repr_html_()
        source = (Path(self.result.service_dir) / "service.py").read_text()
        self.source.value = (
            "<details><summary>generated <code>service.py</code></summary>"
            f"<pre style='font-size:12px'>{html.escape(source)}</pre></details>"
        )
        self.say(f"Bento {self.result.bento_tag} ready", kind="ok")
