"""HTML of a drift check: the verdict, then one row per input column coloured by its verdict."""

from __future__ import annotations

import html
from pathlib import PurePath

from workbench.reports.html import STYLE, fmt, table_html, verdict_html
from workbench.results import ColumnDriftResult, DriftResult

DRIFT_STYLE = (
    "<style>.wb-drift tr.wb-row-drift td{background:#ffebe9}"
    ".wb-drift tr.wb-row-ok td{background:#dafbe1}"
    ".wb-drift tr.wb-row-untested td{background:#f6f8fa;color:#57606a}"
    ".wb-drift td.wb-num{text-align:right;font-variant-numeric:tabular-nums}"
    ".wb-untested{color:#57606a;font-weight:600}</style>"
)

TESTS = {
    "ks": "two-sample Kolmogorov-Smirnov (drift when p < threshold)",
    "chisquare": "chi-square test of homogeneity (drift when p < threshold)",
    "z": "two-proportion Z-test (drift when p < threshold)",
    "wasserstein": "Wasserstein distance / reference std (drift when >= threshold)",
    "jensenshannon": "Jensen-Shannon distance (drift when >= threshold)",
}


def column_verdict(column: ColumnDriftResult) -> str:
    """``drift``, ``no drift`` or ``untested`` (the words the text and HTML tables use)."""
    if column.drifted is None:
        return "untested"
    return "drift" if column.drifted else "no drift"


def share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def p_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _verdict_cell(column: ColumnDriftResult) -> str:
    if column.drifted is None:
        return "<span class='wb-untested'>untested</span>"
    return verdict_html(not column.drifted, column_verdict(column))


def _note(column: ColumnDriftResult) -> str:
    notes = []
    if column.reason:
        notes.append(column.reason)
    test = column.missing_share_test
    if test is not None:
        notes.append(
            f"missing share: {test.test} {test.statistic:.4f}"
            + (f", p {test.p_value:.3g}" if test.p_value is not None else "")
            + (" (drift)" if test.drifted else " (no drift)")
        )
    return html.escape("; ".join(notes))


def _columns_html(result: DriftResult) -> str:
    headers = [
        "column",
        "kind",
        "test",
        "statistic",
        "p-value",
        "threshold",
        "verdict",
        "missing (reference → live)",
        "unseen",
        "note",
    ]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = []
    for c in result.columns:
        row = {"drift": "wb-row-drift", "no drift": "wb-row-ok"}.get(
            column_verdict(c), "wb-row-untested"
        )
        cells = [
            f"<td>{html.escape(c.column)}</td>",
            f"<td>{html.escape(c.kind)}</td>",
            f"<td title='{html.escape(TESTS.get(c.test or '', ''))}'>{fmt(c.test)}</td>",
            f"<td class='wb-num'>{fmt(c.statistic)}</td>",
            f"<td class='wb-num'>{p_value(c.p_value)}</td>",
            f"<td class='wb-num'>{fmt(c.threshold)}</td>",
            f"<td>{_verdict_cell(c)}</td>",
            f"<td class='wb-num'>{share(c.missing_share_reference)} → "
            f"{share(c.missing_share_live)}</td>",
            f"<td class='wb-num'>{share(c.unseen_share)}</td>",
            f"<td>{_note(c)}</td>",
        ]
        rows.append(f"<tr class='{row}'>{''.join(cells)}</tr>")
    return (
        f"<table class='wb-table wb-drift'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def verdict_line(result: DriftResult) -> str:
    """One sentence: the verdict and why (plain text)."""
    if result.drifted_share is None:
        return f"not enough data: {result.reason}"
    return (
        f"{result.verdict}: {result.drifted_columns} of {result.tested_columns} tested columns "
        f"drifted ({result.drifted_share:.0%}; the dataset drifts at {result.threshold:.0%} "
        "or more)"
    )


def drift_html(result: DriftResult) -> str:
    """The report as an HTML fragment (for a notebook; :func:`drift_page` for a file)."""
    if result.drifted is None:
        verdict = "<span class='wb-untested'>not enough data</span>"
    else:
        verdict = verdict_html(not result.drifted, result.verdict)
    facts = [
        ["verdict", html.escape(verdict_line(result))],
        ["Bento", f"<span class='wb-code'>{html.escape(result.bento_tag)}</span>"],
        ["model", f"<span class='wb-code'>{html.escape(result.model_tag)}</span>"],
        [
            "file",
            f"{html.escape(result.file)} ({result.file_bytes:,} bytes, sha256 "
            f"<span class='wb-code'>{html.escape(result.file_sha256)}</span>)",
        ],
        ["rows", f"{result.rows:,} in the file, {result.reference_rows:,} in the reference"],
        [
            "ignored columns",
            html.escape(", ".join(result.ignored_columns)) or "none",
        ],
        [
            "options",
            html.escape(", ".join(f"{k}={v:g}" for k, v in result.options.items())),
        ],
        ["checked", f"{html.escape(result.checked_at)} in {result.seconds:.2f} s"],
    ]
    legend = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(text)}</li>"
        for name, text in TESTS.items()
        if any(c.test == name for c in result.columns)
    )
    return (
        f"{STYLE}{DRIFT_STYLE}"
        f"<h4>Drift of <code>{html.escape(PurePath(result.file).name)}</code> against "
        f"<code>{html.escape(result.bento_tag)}</code>: {verdict}</h4>"
        + table_html(["", ""], facts)
        + _columns_html(result)
        + (f"<ul class='wb-notes'>{legend}</ul>" if legend else "")
    )


def drift_page(result: DriftResult) -> str:
    """The report as a self-contained HTML document (styles inline, nothing fetched)."""
    title = html.escape(f"drift: {result.bento_tag}: {result.verdict}")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title></head>"
        "<body style='font-family:system-ui,sans-serif;margin:16px'>"
        f"{drift_html(result)}</body></html>\n"
    )
