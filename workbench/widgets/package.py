"""The package panel: build the Bento, see its tag, the generated service and the serve command."""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as w

from workbench.config import Config
from workbench.packaging import package
from workbench.reports import to_html
from workbench.results import PackageResult
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
            f"<code>bentos/{html.escape(config.name)}/</code>. Needs a passing validation of these "
            "files under the gates and options saved in <code>workbench.yaml</code>."
        )
        super().__init__([intro, self.build_button], footer=[self.source])

    def build(self) -> None:
        self.say("saving the model and building the Bento ...")
        self.show_state("working", "building")
        self.result = package(self.config, run_dir=self.run_dir)
        self.results.value = to_html(self.result)
        self.source.value = _sources_html(self.result)
        self.say(f"Bento {self.result.bento_tag} ready", kind="ok")
        self.show_state("done")


PRE_STYLE = "font-size:12px;line-height:1.35"


def _sources_html(result: PackageResult) -> str:
    """The generated service (open), the Dockerfile, the manifests and the Bento's files."""
    bento = Path(result.bento_path)
    parts = [
        ("generated service.py", bento / "src" / "service.py", True),
        ("Dockerfile (bentoml containerize builds it)", bento / "env/docker/Dockerfile", False),
        ("Kubernetes manifests", bento / "src/deploy/kubernetes.yaml", False),
    ]
    blocks = [
        f"<details{' open' if is_open else ''}><summary>{html.escape(title)}</summary>"
        f"<pre class='wb-source' style='{PRE_STYLE};max-height:360px;overflow:auto'>"
        f"{html.escape(path.read_text())}</pre></details>"
        for title, path, is_open in parts
        if path.is_file()
    ]
    listing = "\n".join(result.contents)
    blocks.append(
        f"<details><summary>Bento contents ({len(result.contents)} files)</summary>"
        f"<pre style='{PRE_STYLE}'>{html.escape(listing)}</pre></details>"
    )
    return "".join(blocks)
