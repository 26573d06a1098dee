"""HTML reports: one self-contained file per executed notebook that opens offline.

The browser tests make one real headless run (validate -> package -> launch) and open each report
from a file:// URL in Debian's chromium (``/usr/bin/chromium``, installed by ``make browser``)
driven by playwright. Every request that is not file: or data: is recorded and aborted: there must
be none. They assert on what a person sees (panels, gate table, metrics, icons, the latency plot)
and leave a screenshot of each report in ``$WORKBENCH_ARTIFACTS`` (default ``tests/artifacts/``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import ipywidgets as w
import nbformat
import pytest
from chromium import ARTIFACTS, chromium_context
from conftest import copy_project
from ipywidgets.embed import embed_data
from playwright.sync_api import BrowserContext, Page, Request, Route

from workbench.pipeline.report import render_html, widget_renderer

STEMS = ("01_validate", "02_package", "03_launch")
WORKBENCH = [sys.executable, "-m", "workbench.cli"]


# --- render_html without a browser ---------------------------------------------------------------


class _Tags(HTMLParser):
    """Collects ``(tag, attributes)`` of every element."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def widget_notebook(folder: Path) -> Path:
    """A tiny executed-looking notebook whose output is a button, with the widget state saved."""
    panel = w.VBox([w.Button(description="Go", icon="check"), w.IntSlider(value=7)])
    data = embed_data(views=[panel])
    book = nbformat.v4.new_notebook()
    book.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": data["manager_state"]}
    view = {"application/vnd.jupyter.widget-view+json": data["view_specs"][0], "text/plain": "VBox"}
    book.cells = [
        nbformat.v4.new_markdown_cell("# tiny"),
        nbformat.v4.new_code_cell(
            "display(panel)",
            execution_count=1,
            outputs=[nbformat.v4.new_output("display_data", data=view)],
        ),
    ]
    path = folder / "tiny.ipynb"
    nbformat.write(book, path)
    return path


def test_render_html_writes_one_file_beside_the_notebook_that_names_no_cdn(tmp_path: Path):
    """No script, link, image or frame points at the network; the renderer and fonts are inline."""
    target = render_html(widget_notebook(tmp_path))
    assert target == tmp_path / "tiny.html"
    page = target.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    sources = [
        (tag, attrs.get("src") or attrs.get("href") or "")
        for tag, attrs in parser.tags
        if tag in ("script", "link", "img", "iframe")
    ]
    assert not [s for s in sources if re.match(r"(https?:)?//", s[1])], sources
    assert not [s for s in sources if s[0] == "script" and s[1]], "scripts must be inline"
    assert "unpkg.com" not in page
    assert "cdnjs.cloudflare.com" not in page  # nbconvert's MathJax and Mermaid come from there
    # jsDelivr is named only as the renderer's built-in fallback, overridden to a local path:
    assert page.count("cdn.jsdelivr.net") == widget_renderer().count("cdn.jsdelivr.net")
    assert any(a.get("data-jupyter-widgets-cdn") == "./" for t, a in parser.tags if t == "script")
    assert "RequireJS 2.3.8" in page and "application/vnd.jupyter.widget-state+json" in page
    assert "data:font/woff2;base64," in page
    assert not re.search(r'\.p\+"[0-9a-f]{20}\.woff2"', page), "icon fonts must be data: URIs"
    assert "<title>tiny</title>" in page


# --- the reports of a real headless run, in a real browser ---------------------------------------


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> Path:
    """One ``workbench run`` of the example project, all three stages, in its own store."""
    work = tmp_path_factory.mktemp("reports")
    project = copy_project(example_files, work / "project")
    out = work / "run"
    done = subprocess.run(
        [*WORKBENCH, "run", "--config", str(project / "workbench.yaml"), "--out", str(out)],
        cwd=work,
        env={**os.environ, "BENTOML_HOME": str(work / "store")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert all((out / f"{stem}.html").is_file() for stem in STEMS)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    """Headless Debian chromium with a fresh profile, closed when the module is done."""
    with chromium_context() as context:
        yield context


@dataclass
class Report:
    """A report opened in the browser, with what it asked for on the way."""

    page: Page
    outside: list[str] = field(default_factory=list)
    """Requests that were neither file: nor data: (aborted)."""
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Uncaught JavaScript errors."""

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def evaluate(self, script: str) -> Any:
        return self.page.evaluate(script)


def open_report(context: BrowserContext, path: Path) -> Report:
    """Open ``path`` from a file:// URL, wait until the widgets, fonts and images are there."""
    page = context.new_page()
    report = Report(page)

    def guard(route: Route) -> None:
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            report.outside.append(route.request.url)
            route.abort()

    def failed(request: Request) -> None:
        report.failed.append(f"{request.url[:120]}: {request.failure}")

    page.route("**/*", guard)
    page.on("requestfailed", failed)
    page.on("pageerror", lambda exc: report.errors.append(str(exc)))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_selector(".wb-panel .widget-button", timeout=20_000)
    page.evaluate("document.fonts.ready.then(() => true)")
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{path.stem}.png"), full_page=True)
    return report


@pytest.fixture(scope="module")
def reports(run_folder: Path, browser: BrowserContext) -> dict[str, Report]:
    return {stem: open_report(browser, run_folder / f"{stem}.html") for stem in STEMS}


@pytest.fixture(scope="module")
def manifest(run_folder: Path) -> dict[str, Any]:
    return json.loads((run_folder / "manifest.json").read_text())


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.browser
@pytest.mark.e2e
def test_each_report_renders_its_panel_offline(reports: dict[str, Report], stem: str):
    """No request leaves the file, nothing fails to load, and the panel's widgets are drawn."""
    report = reports[stem]
    assert report.outside == []
    assert report.failed == []
    assert report.errors == []
    assert report.page.locator(".wb-panel").count() == 1
    buttons = report.page.locator(".wb-panel .widget-button")
    assert buttons.count() >= 1 and buttons.first.is_visible()
    # Button icons are Font Awesome glyphs: the solid face must have loaded, not fallen back.
    assert report.evaluate(
        "Array.from(document.fonts).some(f => f.family.includes('Font Awesome 5 Free')"
        " && f.weight === '900' && f.status === 'loaded')"
    )
    assert (
        report.evaluate(
            "getComputedStyle(document.querySelector('.widget-button i.fa')).fontFamily"
        ).strip('"')
        == "Font Awesome 5 Free"
    )
    # Plots are <img> elements with data: URIs: every one must have decoded.
    assert report.evaluate(
        "Array.from(document.images).every(image => image.complete && image.naturalWidth > 0)"
    )
    assert (ARTIFACTS / f"{stem}.png").stat().st_size > 10_000


@pytest.mark.browser
@pytest.mark.e2e
def test_validate_report_shows_the_final_gate_table_and_metrics(
    reports: dict[str, Report], manifest: dict[str, Any]
):
    """The panel as it stood after the run: thresholds, verdict, gate table and metrics."""
    report = reports["01_validate"]
    assert report.text(".wb-panel .wb-status") == "all gates pass"
    assert "all gates pass" in report.text(".wb-panel .wb-results")
    assert report.page.locator(".wb-panel .wb-fail").count() == 0
    gate_rows = report.page.locator(".wb-panel table.wb-table:has(th:text-is('gate')) tbody tr")
    assert gate_rows.count() == len(manifest["gates"])
    for row, gate in zip(gate_rows.all(), manifest["gates"], strict=True):
        assert row.is_visible() and row.inner_text().startswith(gate["metric"])
        assert row.locator(".wb-pass").inner_text() == "PASS"
    for metric, bounds in manifest["config"]["gates"].items():  # the threshold boxes
        for side, bound in bounds.items():
            if bound is not None:
                box = report.page.locator(f".wb-gate-{metric}-{side} input")
                assert float(box.input_value()) == bound
    tables = report.text(".wb-panel .wb-results")
    for metric, value in manifest["metrics"].items():
        assert re.search(rf"{metric}\s+{value:.4f}", tables), (metric, tables)
    assert report.text(".wb-panel .wb-validate") == "Validate"


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.browser
@pytest.mark.e2e
def test_a_reports_panel_reads_like_the_notebook(reports: dict[str, Report], stem: str):
    """The panel's text in the notebook's sans-serif (not the browser's serif), its code in
    monospace; a snippet to copy keeps its lines whole (a long one scrolls)."""
    style = reports[stem].page.evaluate(
        """() => {
            const font = sel => { const n = document.querySelector(sel);
                                  return n && getComputedStyle(n).fontFamily; };
            const pre = document.querySelector('.wb-panel pre.wb-snippet');
            return {text: font('.wb-panel .widget-html-content'),
                    label: font('.wb-panel button'),
                    pre: font('.wb-panel .widget-html-content pre'),
                    snippet: pre && [getComputedStyle(pre).whiteSpace,
                                     getComputedStyle(pre).wordBreak]};
        }"""
    )
    for key in ("text", "label"):
        assert "sans-serif" in style[key] and "Times" not in style[key], style
    if style["pre"] is not None:
        assert "monospace" in style["pre"], style
    if stem == "03_launch":
        assert style["snippet"] == ["pre", "normal"], style


@pytest.mark.browser
@pytest.mark.e2e
def test_package_report_shows_the_bento_tag(reports: dict[str, Report], manifest: dict[str, Any]):
    results = reports["02_package"].text(".wb-panel")
    assert manifest["bento_tag"] in results
    assert f"bentoml serve {manifest['bento_tag']}" in results


@pytest.mark.browser
@pytest.mark.e2e
def test_launch_report_shows_the_checks_and_the_latency_plot(reports: dict[str, Report]):
    report = reports["03_launch"]
    panel = report.text(".wb-panel")
    assert "server stopped" in panel
    assert report.page.locator(".wb-panel .wb-table .wb-fail").count() == 0
    for check in ("livez", "readyz", "predict", "parity", "load probe"):
        assert re.search(rf"{check}\s+PASS", panel), (check, panel)
    plot = report.page.locator(".wb-panel img[alt='latency histogram']")
    assert plot.is_visible()
    assert report.evaluate(
        "Array.from(document.querySelectorAll('.wb-panel img'))"
        ".every(image => image.complete && image.naturalWidth > 0)"
    )
    assert plot.evaluate("image => image.naturalWidth") > 100


# --- the same notebooks in any viewer: plain nbconvert, no widget manager ------------------------

WIDGET_SCRIPTS = re.compile(
    r"<script type=\"application/vnd\.jupyter\.widget-(?:state|view)\+json\">.*?</script>", re.S
)


@pytest.fixture(scope="module")
def plain_pages(run_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The run's executed notebooks converted by plain `jupyter nbconvert --to html`: no widget
    manager inlined (offline, a widget needs one from a CDN)."""
    out = tmp_path_factory.mktemp("plain")
    jupyter = Path(sys.executable).parent / "jupyter"
    notebooks = [str(run_folder / f"{stem}.ipynb") for stem in STEMS]
    subprocess.run(
        [str(jupyter), "nbconvert", "--to", "html", "--output-dir", str(out), *notebooks],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {stem: out / f"{stem}.html" for stem in STEMS}


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


@pytest.mark.e2e
def test_plain_nbconvert_shows_the_results_outside_the_widget_state(
    plain_pages: dict[str, Path], manifest: dict[str, Any]
):
    """With the widget state and views cut out of the page (what a viewer without a widget
    manager cannot draw), each notebook still shows its panel's results: the gate table with
    each gate's verdict, every metric with its value, the plots as PNG; the Bento tag; the
    launch checks and the latency histogram."""
    static = {stem: WIDGET_SCRIPTS.sub("", path.read_text()) for stem, path in plain_pages.items()}
    validate = static["01_validate"]
    gates = re.search(r"<table class=.wb-table wb-gates.>.*?</table>", validate, re.S)
    assert gates is not None, "no gate table outside the widget state"
    for gate in manifest["gates"]:
        assert re.search(rf"{gate['metric']} .*?PASS", text_of(gates[0])), gate
    for metric, value in manifest["metrics"].items():
        assert re.search(rf"\b{metric} {value:.4f}\b", text_of(validate)), metric
    assert len(re.findall(r"<img alt=[^>]+ src=.data:image/png;base64,", validate)) >= 3
    assert manifest["bento_tag"] in text_of(static["02_package"])
    launch = text_of(static["03_launch"])
    for check in ("livez", "readyz", "predict", "parity", "load probe"):
        assert re.search(rf"{check} PASS", launch), check
    assert re.search(r"<img alt=.latency histogram. [^>]*src=.data:image/png", static["03_launch"])


@pytest.mark.browser
@pytest.mark.e2e
def test_the_static_copy_shows_where_no_widget_renders_and_hides_where_one_does(
    plain_pages: dict[str, Path], reports: dict[str, Report], browser: BrowserContext
):
    """Plain nbconvert's page (its CDN requests aborted, as offline): no panel is drawn and the
    copy's gate table and plots are visible. The offline report, whose inlined widget manager
    draws the panel: the copy is there but hidden, so nothing shows twice."""
    plain = open_plain(browser, plain_pages["01_validate"])
    assert plain.locator(".wb-panel").count() == 0
    assert plain.locator(".wb-static table.wb-gates").is_visible()
    assert plain.locator(".wb-static img").first.is_visible()
    for stem, report in reports.items():
        copies = report.page.locator(".wb-static")
        assert copies.count() == 1 and copies.first.is_hidden(), stem


def open_plain(context: BrowserContext, path: Path) -> Page:
    """A page from file://, every other request aborted (nbconvert's CDN scripts)."""
    page = context.new_page()
    page.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(("file:", "data:")) else route.abort()
        ),
    )
    page.goto(path.as_uri(), wait_until="load")
    return page
