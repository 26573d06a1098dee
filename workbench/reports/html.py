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
    ".wb-fail{color:#cf222e;font-weight:600}.wb-warn{color:#9a6700;font-weight:600}"
    ".wb-code{font-family:monospace;"
    "background:#f6f8fa;padding:2px 6px}</style>"
)


#: Code to copy: monospace, whole lines (a long line scrolls; a token is never cut in two).
SNIPPET_STYLE = (
    "line-height:1.35;font-family:var(--jp-code-font-family,monospace);white-space:pre;"
    "overflow-x:auto;word-break:normal;overflow-wrap:normal;background:#f6f8fa;padding:6px 8px;"
    "max-width:100%;box-sizing:border-box"
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


def verdict_word(line: str) -> str:
    """The verdict a line from the core starts with (``PASS``, ``FAIL``, ``INCONCLUSIVE``...)."""
    return line.strip().split(":")[0].split(" ")[0]


def status_html(status: str, text: str | None = None) -> str:
    """A verdict of the PASS / FAIL / INCONCLUSIVE scheme: PASS green, FAIL red, anything else
    (inconclusive, not enough data, a note) amber."""
    css = {"PASS": "wb-pass", "FAIL": "wb-fail"}.get(status.upper(), "wb-warn")
    return f"<span class='{css}'>{html.escape(text or status)}</span>"


def verdict_line_html(line: str, *, word_only: bool = False) -> str:
    """A verdict line from the core, shown as it is, coloured by its first word
    (:func:`status_html`)."""
    word = verdict_word(line)
    return status_html(word, word if word_only else line)


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
        *([["decided by", html.escape(result.compiled_at)]] if result.compiled_at else []),
        ["beyond scikit-learn", html.escape(", ".join(result.model_packages) or "nothing")],
        ["project code", html.escape(", ".join(result.code) or "none")],
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
        f"<p class='wb-portable'>portable: "
        f"{verdict_html(result.portable == 'proven', result.portable)} "
        f"({html.escape(result.portable_reason)})</p>"
    )
    probe = probe_html(result.probe) if result.probe else ""
    snippets = "".join(
        f"<p>{html.escape(name)}:</p><pre class='wb-snippet' style='{SNIPPET_STYLE}'>"
        f"{html.escape(code)}</pre>"
        for name, code in result.snippets.items()
    )
    return head + table_html(["check", "verdict", "detail"], rows) + probe + snippets
