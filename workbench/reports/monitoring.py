"""HTML of a drift check and of a service's monitoring: the status (PASS, FAIL, INCONCLUSIVE) and
why, one row per input column coloured by its drift verdict, then the data-quality checks."""

from __future__ import annotations

import html
from pathlib import Path, PurePath
from typing import Any

from workbench.artifacts import write_atomic
from workbench.errors import DataError
from workbench.reports import plots
from workbench.reports.html import (
    STYLE,
    fmt,
    img,
    page,
    status_html,
    table_html,
    verdict_html,
)
from workbench.reports.quality import quality_html, status_block, status_line
from workbench.results import ColumnDriftResult, DriftResult, MonitorResult, ReplayResult
from workbench.runtime.stattests import STATTESTS

DRIFT_STYLE = (
    "<style>.wb-drift tr.wb-row-drift td{background:#ffebe9}"
    ".wb-drift tr.wb-row-ok td{background:#dafbe1}"
    ".wb-drift tr.wb-row-inconclusive td{background:#fff8c5}"
    ".wb-drift tr.wb-row-untested td{background:#f6f8fa;color:#57606a}"
    ".wb-drift td.wb-num{text-align:right;font-variant-numeric:tabular-nums}</style>"
)

#: Short names of the tests' statistics, for one line of text.
STATISTICS = {
    "ks": "Kolmogorov-Smirnov statistic",
    "chisquare": "chi-square statistic",
    "z": "two-proportion z statistic",
    "wasserstein": "Wasserstein distance / reference std",
    "jensenshannon": "Jensen-Shannon distance",
}
#: A long drift table scrolls inside the panel or page instead of stretching it.
SCROLL = "<div class='wb-scroll' style='max-height:420px;overflow:auto'>{}</div>"
#: A table wider than the panel scrolls sideways instead of being cut off.
WIDE_TABLE = "<div style='overflow-x:auto'>{}</div>"

TESTS = {name: test.description for name, test in STATTESTS.items()}
"""Each drift test's label, from the registry."""


def column_verdict(column: ColumnDriftResult) -> str:
    """``drift``, ``no drift``, ``inconclusive`` (too few values yet) or ``n/a`` (nothing to test
    against): the words the text and HTML tables use."""
    if column.drifted is None:
        return "n/a" if column.status is None else "inconclusive"
    return "drift" if column.drifted else "no drift"


def share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def p_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _verdict_cell(column: ColumnDriftResult) -> str:
    if column.drifted is None:
        return status_html(column.status or "n/a", column_verdict(column))
    return verdict_html(not column.drifted, column_verdict(column))


def _note(column: ColumnDriftResult) -> str:
    notes = []
    if column.reason:
        needed = column.values_needed
        notes.append(column.reason + (f" ({needed:,} more needed)" if needed else ""))
    test = column.missing_share_test
    if test is not None:
        notes.append(
            f"missing share: {test.test} {test.statistic:.4f}"
            + (f", p {test.p_value:.3g}" if test.p_value is not None else "")
            + (" (drift)" if test.drifted else " (no drift)")
        )
    return html.escape("; ".join(notes))


def _columns_html(result: DriftResult | MonitorResult) -> str:
    """One row per column; a note several rows share is said once, under the table, and the
    rows point at it (``[1]``); the table scrolls inside its box when long."""
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
    notes = [_note(c) for c in result.columns]
    shared = [n for n in dict.fromkeys(notes) if n and notes.count(n) > 1]
    rows = []
    for c, note in zip(result.columns, notes, strict=True):
        row = {
            "drift": "wb-row-drift",
            "no drift": "wb-row-ok",
            "inconclusive": "wb-row-inconclusive",
        }.get(column_verdict(c), "wb-row-untested")
        if note in shared:
            note = f"[{shared.index(note) + 1}]"
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
            f"<td class='wb-note'>{note}</td>",
        ]
        rows.append(f"<tr class='{row}'>{''.join(cells)}</tr>")
    footnotes = "".join(
        f"<li>[{i}] {note} ({notes.count(note)} columns)</li>" for i, note in enumerate(shared, 1)
    )
    return SCROLL.format(
        f"<table class='wb-table wb-drift'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    ) + (f"<ul class='wb-notes wb-shared-notes'>{footnotes}</ul>" if footnotes else "")


def verdict_line(result: DriftResult) -> str:
    """One sentence: the verdict and why (plain text)."""
    if result.drifted_share is None:
        return f"not enough data for drift: {result.reason}"
    return (
        f"{result.verdict}: {result.drifted_columns} of {result.tested_columns} tested columns "
        f"drifted ({result.drifted_share:.0%}; the dataset drifts at {result.threshold:.0%} "
        "or more)"
    )


def drift_html(result: DriftResult) -> str:
    """The report as an HTML fragment (for a notebook; :func:`drift_page` for a file)."""
    facts = [
        ["status", status_block(result)],
        ["drift", html.escape(verdict_line(result))],
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
        f"<h4>Drift and data quality of <code>{html.escape(PurePath(result.file).name)}</code> "
        f"against <code>{html.escape(result.bento_tag)}</code>: {status_html(result.status)}</h4>"
        + table_html(["", ""], facts)
        + _columns_html(result)
        + (f"<ul class='wb-notes'>{legend}</ul>" if legend else "")
        + (quality_html(result.quality) if result.quality is not None else "")
    )


def drift_page(result: DriftResult) -> str:
    """The report as a self-contained HTML document (styles inline, nothing fetched)."""
    return page(f"drift: {result.bento_tag}: {result.status}", drift_html(result))


def replay_line(replayed: ReplayResult, name: str) -> str:
    """One sentence on a replay (plain text): rows, labels, time and any refused requests."""
    line = (
        f"replayed {replayed.rows:,} rows of {name} ({replayed.feedback:,} labels) in "
        f"{replayed.seconds:.1f} s"
    )
    if replayed.failed_requests:
        first = replayed.first_errors[0] if replayed.first_errors else "no answer"
        line += (
            f"; {replayed.failed_requests:,} of {replayed.requests:,} requests refused "
            f"(first: {first})"
        )
    return line


def monitor_verdict_line(result: MonitorResult) -> str:
    """One sentence: the status and why (plain text)."""
    return status_line(result)


def _predictions_html(predictions: dict[str, Any]) -> str:
    ref, live = predictions.get("reference") or {}, predictions.get("window") or {}
    keys = list(dict.fromkeys([*ref, *live]))
    if not keys:
        return ""
    rows = [[html.escape(k), fmt(ref.get(k)), fmt(live.get(k))] for k in keys]
    drift = predictions.get("drift") or {}
    verdict = ""
    if drift.get("drifted") is not None:
        test = str(drift.get("test"))
        p = drift.get("p_value")
        cut = "below" if p is not None else "at or above"
        measured = f", p {p_value(p)}" if p is not None else ""
        verdict = (
            f" — {html.escape(STATISTICS.get(test, test))} {fmt(drift.get('statistic'))}"
            f"{measured} (drift {cut} {fmt(drift.get('threshold'))}): "
            + verdict_html(not drift["drifted"], "drift" if drift["drifted"] else "no drift")
        )
    return f"<h4>Predictions: test rows at packaging against the window{verdict}</h4>" + table_html(
        ["class or statistic", "reference", "window"], rows
    )


def _metrics_html(metrics: dict[str, Any]) -> str:
    live, validation = metrics.get("live") or {}, metrics.get("validation") or {}
    names = list(dict.fromkeys([*validation, *live]))
    gates = {g["metric"]: g for g in metrics.get("gates", [])}
    rows = []
    for name in names:
        gate = gates.get(name)
        cell = "—"
        if gate is not None:
            bounds = ", ".join(
                f"{k} {gate[k]:g}" for k in ("min", "max") if gate.get(k) is not None
            )
            cell = html.escape(bounds) + (
                "" if gate["passed"] is None else " " + verdict_html(bool(gate["passed"]))
            )
        rows.append([html.escape(name), fmt(validation.get(name)), fmt(live.get(name)), cell])
    head = (
        f"<h4>Live metrics over the {metrics.get('labelled_rows', 0):,} labelled rows of the "
        "window, against validation (computed once "
        f"{metrics.get('min_labelled_rows', '?')} rows are labelled)</h4>"
    )
    return head + table_html(["metric", "validation", "live", "gate"], rows)


def monitor_html(result: MonitorResult) -> str:
    """A service's monitoring report as an HTML fragment (:func:`monitor_page` for a file)."""
    report = result.report
    window = report.get("window", {})
    drift = report.get("drift") or {}
    facts = [
        ["status", status_block(result)],
        ["service", f"<span class='wb-code'>{html.escape(result.url)}</span>"],
        [
            "model",
            f"<span class='wb-code'>{html.escape(result.model_tag)}</span> (the model inside "
            "the served Bento; the Bento has a tag of its own)",
        ],
        [
            "window",
            f"{window.get('rows', 0):,} rows in {window.get('requests', 0):,} requests "
            f"(capacity {window.get('capacity', 0):,}, {window.get('workers', 1)} worker(s)), "
            f"{html.escape(str(window.get('start')))} to {html.escape(str(window.get('end')))}",
        ],
        [
            "drift",
            html.escape(
                f"{result.verdict}: {drift.get('drifted_columns', 0)} of "
                f"{drift.get('tested_columns', 0)} tested columns drifted (the dataset drifts "
                f"at {drift.get('threshold', 0.5):.0%})"
                if result.verdict is not None
                else "no drift reference"
            ),
        ],
        ["unseen categories", share((report.get("unseen") or {}).get("rows_share")) + " of rows"],
        ["checked", f"{html.escape(result.checked_at)} in {result.seconds:.2f} s"],
    ]
    if result.replay is not None:
        r = result.replay
        facts.append(
            [
                "replayed",
                html.escape(
                    f"{r.file}: {r.rows:,} rows in {r.requests:,} requests at <= {r.rate:g} rows/s "
                    f"({r.failed_requests} failed), {r.feedback:,} labels as feedback"
                ),
            ]
        )
    return (
        f"{STYLE}{DRIFT_STYLE}"
        f"<h4>Monitoring of the service at <code>{html.escape(result.url)}</code>: "
        f"{status_html(result.status)}</h4>"
        + WIDE_TABLE.format(table_html(["", ""], facts))
        + "<h4>Input drift against the training reference</h4>"
        + _columns_html(result)
        + (quality_html(result.quality) if result.quality is not None else "")
        + _plots_html(report)
        + _predictions_html(report.get("predictions") or {})
        + _metrics_html(report.get("metrics") or {})
    )


def _plots_html(report: dict[str, Any]) -> str:
    parts = []
    profiles = plots.monitor_profiles_png(report)
    if profiles is not None:
        parts.append(img(profiles, "training against live values, most drifted columns first"))
    predictions = plots.prediction_png(report.get("predictions") or {})
    if predictions is not None:
        parts.append(img(predictions, "predictions: test rows against live"))
    return "<div class='wb-plots'>" + "".join(parts) + "</div>" if parts else ""


def monitor_page(result: MonitorResult) -> str:
    """The monitoring report as a self-contained HTML document."""
    return page(f"monitor: {result.model_tag}: {result.status}", monitor_html(result))


def write_monitor_report(folder: Path, result: MonitorResult) -> Path:
    """``monitor.json`` (the result) and ``monitor.html`` (its page) in ``folder``, created, each
    file written atomically; the page's path."""
    page = folder / "monitor.html"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "monitor.json", result.to_json() + "\n")
        write_atomic(page, monitor_page(result))
    except OSError as exc:
        raise DataError(f"could not write the monitoring report into {folder} ({exc})") from exc
    return page
