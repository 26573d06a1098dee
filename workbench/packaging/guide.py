"""The Bento's README: the guide for whoever serves a Bento, under a header naming its model.

The guide (``workbench/templates/bento/README.md``, published as ``docs/bento.md``) holds nothing
model-specific; :func:`render_readme` puts a short header above it from the packaging inputs
alone, so the same inputs give the same bytes (the README is hashed into the Bento version).
BentoML makes it the Bento's ``README.md``, the text of ``/`` and the OpenAPI description (the
bentofile's ``description: file:./README.md``).
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from workbench.config import Config
from workbench.runtime.settings import README_FILE

GUIDE: Traversable = resources.files("workbench") / "templates" / "bento" / README_FILE
_RUNTIMES = {
    "onnx": "onnxruntime answers (the compiled graph, `model.onnx`)",
    "sklearn": "scikit-learn answers",
}
_AUTH = {
    "api_key": "every API route needs `Authorization: Bearer <key>` with the key in "
    "`WORKBENCH_API_KEY` where it runs",
    "none": "the API is open (`service.auth: none`)",
}


def bento_guide() -> str:
    """The guide as shipped with workbench (Markdown, ``##`` headings, no title)."""
    return GUIDE.read_text(encoding="utf-8")


def render_readme(config: Config, *, model_tag: str, task: str, runtime: str) -> str:
    """The Bento's README: its model's name and how it serves, then the guide."""
    window = config.monitor.window_rows
    monitoring = (
        f"monitoring keeps the last {window:,} rows answered"
        if window
        else "monitoring is off (no `/feedback`, no `/monitor`)"
    )
    header = (
        f"# {config.name}\n\n"
        f"A {task} model packaged by workbench: the BentoML model `{model_tag}`; "
        f"{_RUNTIMES[runtime]}; {_AUTH[config.service.auth]}; {monitoring}. "
        "`GET /metadata` is its model card: input columns and their types, metrics, gate "
        "verdicts, limits and pinned packages.\n\n"
    )
    return header + bento_guide()
