"""The data-quality checks and the verdict, as HTML and as plain text.

One row per input column, one cell per check of :data:`~workbench.runtime.quality.QUALITY_CHECKS`
(in its order, headed by its label): the figure in the file (or window), training's, and the
status coloured PASS green, FAIL red, INCONCLUSIVE amber. The verdict line says why: the
failures, else what lacked data, else PASS.
"""

from __future__ import annotations

import html

from workbench.reports.html import status_html
from workbench.results import DriftResult, MonitorResult, QualityCheckResult, QualityResult
from workbench.runtime.quality import QUALITY_CHECKS, Status

QUALITY_STYLE = (
    "<style>.wb-quality td.wb-cell{white-space:nowrap;font-variant-numeric:tabular-nums}"
    ".wb-quality td.wb-cell-FAIL{background:#ffebe9}"
    ".wb-quality td.wb-cell-INCONCLUSIVE{background:#fff8c5}</style>"
)


def _share(value: float | None) -> str:
    """A share as a percentage, two significant digits below 0.1 % (``0.05%``)."""
    if value is None:
        return "—"
    return f"{value * 100:.2g}%" if 0 < value < 0.001 else f"{value:.1%}"


def figure(check: QualityCheckResult) -> str:
    """The cell's figure: ``live / training`` shares, or the note (``entirely missing``), and
    for INCONCLUSIVE what it still needs."""
    if check.note:
        text = check.note
    elif check.value is None:
        text = "no values"
    else:
        text = f"{_share(check.value)} / {_share(check.expected)}"
    if check.status == "INCONCLUSIVE":
        more = "more data" if check.needed is None else f"{check.needed:,} more"
        text += f", needs {more}"
    return text


def _title(check: QualityCheckResult) -> str:
    spec = QUALITY_CHECKS[check.check]
    parts = [
        spec.display_name,
        f"{check.count:,} {'rows' if check.check == 'missing' else 'values'}",
    ]
    if check.p_value is not None:
        parts.append(f"p {check.p_value:.3g} (fails below {check.threshold:.3g})")
    return "; ".join(parts)


def _by_column(quality: QualityResult) -> dict[str, dict[str, QualityCheckResult]]:
    rows: dict[str, dict[str, QualityCheckResult]] = {}
    for check in quality.checks:
        rows.setdefault(check.column, {})[check.check] = check
    return rows


def _used(quality: QualityResult) -> list[str]:
    present = {c.check for c in quality.checks}
    return [name for name in QUALITY_CHECKS if name in present]


def _header(name: str) -> str:
    """``missing (missing share: live / training)``; a check without a figure: its name."""
    check = QUALITY_CHECKS[name]
    if check.threshold_option is None:
        return f"{name} ({check.display_name})"
    return f"{name} ({check.figure}: live / training)"


def quality_html(quality: QualityResult) -> str:
    """The checks as an HTML table (styles included), headed by their verdict."""
    names = _used(quality)
    head = "".join(
        f"<th title='{html.escape(QUALITY_CHECKS[n].display_name)}'>{html.escape(_header(n))}</th>"
        for n in names
    )
    rows = []
    for column, checks in _by_column(quality).items():
        cells = [f"<td>{html.escape(column)}</td>"]
        for name in names:
            check = checks.get(name)
            if check is None:
                cells.append("<td class='wb-cell'>—</td>")
                continue
            cells.append(
                f"<td class='wb-cell wb-cell-{check.status}' title='{html.escape(_title(check))}'>"
                f"{status_html(check.status)} {html.escape(figure(check))}</td>"
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    summary = (
        f"{quality.failed} failed, {quality.inconclusive} without enough data, of "
        f"{len(quality.checks)} checks"
    )
    return (
        f"{QUALITY_STYLE}<h4>Data quality: {status_html(quality.status)} "
        f"<small>({html.escape(summary)}; thresholds: "
        + html.escape(", ".join(f"{k} {v:g}" for k, v in quality.options.items()))
        + ")</small></h4>"
        f"<table class='wb-table wb-quality'><thead><tr><th>column</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def quality_table(quality: QualityResult) -> str:
    """The checks as a plain-text table: a row per column, ``STATUS live / training`` per check."""
    names = _used(quality)
    headers = ["column"] + [
        f"{n} (live / training)" if QUALITY_CHECKS[n].threshold_option else n for n in names
    ]
    rows = [
        [column]
        + [
            "-" if (c := checks.get(n)) is None else f"{c.status} {figure(c)}".replace("—", "-")
            for n in names
        ]
        for column, checks in _by_column(quality).items()
    ]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def status_block(result: DriftResult | MonitorResult) -> str:
    """The status coloured, then its reasons as a list: failures, what lacked data, notes."""
    items = [
        (status, reason)
        for status, reasons in (
            ("FAIL", result.failures),
            ("INCONCLUSIVE", result.inconclusive),
            ("note", result.notes),
        )
        for reason in reasons
    ]
    listed = "".join(
        f"<li>{status_html(status, status.lower() if status == 'note' else status)} "
        f"{html.escape(reason)}</li>"
        for status, reason in items
    )
    return status_html(result.status) + (f"<ul class='wb-reasons'>{listed}</ul>" if listed else "")


def status_line(result: DriftResult | MonitorResult) -> str:
    """One sentence: the status and why (plain text)."""
    status: Status = result.status
    reasons = {"FAIL": result.failures, "INCONCLUSIVE": result.inconclusive}.get(status, [])
    if reasons:
        return f"{status}: " + "; ".join(reasons)
    return status + (f" ({'; '.join(result.notes)})" if result.notes else "")


__all__ = ["figure", "quality_html", "quality_table", "status_block", "status_line"]
