"""HTML of the stage results: what a notebook, a panel and an offline report show.

Pure functions of the result types; nothing here computes (:func:`workbench.reports.to_html` picks
the renderer by the result's type).
"""

from __future__ import annotations

import base64
import html
from typing import Any

from workbench.reports import plots
from workbench.results import LaunchResult, PackageResult, ProbeResult

STYLE = (
    "<style>.wb-table{border-collapse:collapse;margin:4px 0;font-size:13px}"
    ".wb-table th,.wb-table td{border:1px solid #d0d7de;padding:3px 10px;text-align:left}"
    ".wb-table th{background:#f6f8fa}.wb-pass{color:#1a7f37;font-weight:600}"
    ".wb-fail{color:#cf222e;font-weight:600}.wb-inconclusive{color:#9a6700;font-weight:600}"
    ".wb-code{font-family:monospace;"
    "background:#f6f8fa;padding:2px 6px}</style>"
)


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def table_html(headers: list[str], rows: list[list[str]], *, css_class: str = "") -> str:
    """A small HTML table; cells are already-escaped HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        f"<tr class='{css_class}'>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table class='wb-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict_html(passed: bool, text: str | None = None) -> str:
    label = text or ("PASS" if passed else "FAIL")
    return f"<span class='{'wb-pass' if passed else 'wb-fail'}'>{html.escape(label)}</span>"


def status_html(status: str, text: str | None = None) -> str:
    """A verdict of the PASS / FAIL / INCONCLUSIVE scheme: green, red, amber for anything else."""
    css = {"PASS": "wb-pass", "FAIL": "wb-fail"}.get(status, "wb-inconclusive")
    return f"<span class='{css}'>{html.escape(text or status)}</span>"


def img(png: bytes, alt: str) -> str:
    """An inline PNG (a ``data:`` URI: no file, no network)."""
    data = base64.b64encode(png).decode()
    label = html.escape(alt)
    return f"<img alt='{label}' title='{label}' src='data:image/png;base64,{data}'/>"


def page(title: str, body: str) -> str:
    """A self-contained HTML document (styles and plots inline, nothing fetched)."""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>"
        f"<body style='font-family:system-ui,sans-serif;margin:16px'>{body}</body></html>\n"
    )


def package_html(result: PackageResult) -> str:
    status = "built" if result.created else "already in the store (same content, same tag)"
    rows = [
        [
            "Bento",
            f"<span class='wb-code wb-bento-tag'>{html.escape(result.bento_tag)}</span> ({status})",
        ],
        ["model", f"<span class='wb-code'>{html.escape(result.model_tag)}</span>"],
        ["size", f"{result.size_bytes / 1024:.0f} KiB in {len(result.contents)} files"],
        ["archive", html.escape(result.archive)],
        ["unseen categories", html.escape(result.unseen_categories)],
        ["runtime", f"<b>{html.escape(result.runtime)}</b>: {html.escape(result.runtime_reason)}"],
        ["service source", html.escape(result.service_dir)],
        ["store", html.escape(result.bentoml_home)],
    ]
    commands = [
        [html.escape(name), f"<span class='wb-code'>{html.escape(cmd)}</span>"]
        for name, cmd in result.commands.items()
    ]
    return (
        f"{STYLE}<h4>Package {verdict_html(True, 'ready')}</h4>"
        + table_html(["", ""], rows)
        + table_html(["to", "run"], commands)
    )


def probe_html(result: ProbeResult) -> str:
    rows = [
        [
            str(result.requests),
            str(result.concurrency),
            f"{result.requests_per_s:.1f}",
            f"{result.p50_ms:.1f}",
            f"{result.p95_ms:.1f}",
            f"{result.p99_ms:.1f}",
            verdict_html(result.errors == 0, str(result.errors)),
        ]
    ]
    return (
        f"{STYLE}<h4>Load probe</h4>"
        + table_html(
            ["requests", "concurrency", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"], rows
        )
        + img(plots.latency_histogram_png(result), "latency histogram")
    )


def launch_html(result: LaunchResult) -> str:
    rows = [
        [html.escape(c.name), verdict_html(c.passed), html.escape(c.detail)] for c in result.checks
    ]
    head = (
        f"{STYLE}<h4>Launch of <code>{html.escape(result.bento_tag)}</code> at "
        f"{html.escape(result.url)}: {verdict_html(result.passed)}</h4>"
    )
    probe = probe_html(result.probe) if result.probe else ""
    snippets = "".join(
        f"<p>{html.escape(name)}:</p>"
        f"<pre class='wb-snippet' style='line-height:1.35'>{html.escape(code)}</pre>"
        for name, code in result.snippets.items()
    )
    return head + table_html(["check", "verdict", "detail"], rows) + probe + snippets
