"""HTML reports of executed notebooks: one self-contained file that opens offline.

nbconvert's HTML embeds the widget state but loads require.js and the widget renderer from CDNs, so
offline the widget panels do not render. Here both are inlined from the copies vendored in
``workbench/static`` (versions and licences in its README) by a small template extending
nbconvert's ``lab`` (``templates/nbconvert/workbench_report``), with MathJax and Mermaid left out:
the report needs no network and no file beside it.
"""

from __future__ import annotations

import base64
import re
from functools import cache
from pathlib import Path

from workbench.artifacts import write_atomic

PACKAGE = Path(__file__).resolve().parents[1]
STATIC = PACKAGE / "static"
TEMPLATES = PACKAGE / "templates" / "nbconvert"
TEMPLATE = "workbench_report"


def render_html(notebook: Path) -> Path:
    """Render an executed notebook to ``<stem>.html`` beside it; the file opens offline."""
    import nbformat  # nbformat's schema validation costs a second of start-up; only runs need it
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name=TEMPLATE, extra_template_basedirs=[str(TEMPLATES)])
    resources = {
        "metadata": {"name": notebook.stem},
        "workbench_require_js": require_js(),
        "workbench_widget_renderer": widget_renderer(),
    }
    body, _ = exporter.from_notebook_node(
        nbformat.read(notebook, as_version=4), resources=resources
    )
    target = notebook.with_suffix(".html")
    write_atomic(target, body)
    return target


@cache
def require_js() -> str:
    """The vendored require.js, ready to inline in a ``<script>`` element."""
    return inline_script((STATIC / "requirejs" / "require.js").read_text(encoding="utf-8"))


@cache
def widget_renderer() -> str:
    """The vendored ``embed-amd.js`` with its icon fonts as ``data:`` URIs, ready to inline.

    The renderer's CSS names each font as ``<public path> + "<hash>.woff2"``; each such reference
    to a vendored woff2 becomes a ``data:`` URI, so button icons need no file beside the report.
    """
    folder = STATIC / "html-manager"
    source = (folder / "embed-amd.js").read_text(encoding="utf-8")
    for font in sorted(folder.glob("*.woff2")):
        uri = "data:font/woff2;base64," + base64.b64encode(font.read_bytes()).decode("ascii")
        pattern = r"\b[\w$]+\.p\+" + re.escape(f'"{font.name}"')
        source, found = re.subn(pattern, f'"{uri}"', source)  # base64: no backslashes
        if not found:
            raise RuntimeError(
                f"{font} is not referenced by {folder / 'embed-amd.js'}; vendor the woff2 files "
                "of the same html-manager release (see workbench/static/README.md)"
            )
    return inline_script(source)


def inline_script(source: str) -> str:
    """JavaScript made safe inside an HTML ``<script>`` element (no early ``</script>`` end)."""
    source = re.sub(r"</(script)", r"<\\/\1", source, flags=re.IGNORECASE)
    return source.replace("<!--", "<\\!--")
