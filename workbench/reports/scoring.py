"""HTML of a batch scoring job: the summary, then the drift table of the scored rows."""

from __future__ import annotations

import html

from workbench.reports.html import table_html
from workbench.reports.monitoring import drift_html
from workbench.results import ScoreResult


def score_html(result: ScoreResult) -> str:
    """The job's summary (Bento, engine, rows, rate, outputs) and its drift report."""
    e = html.escape
    rows = [
        ["Bento", f"<code>{e(result.bento_tag)}</code> ({e(result.runtime)})"],
        ["engine", e(result.engine)],
        ["input", f"<code>{e(result.input)}</code> ({len(result.inputs)} file(s))"],
        [
            "rows",
            f"{result.rows_read:,} read, {result.rows_scored:,} scored, "
            f"{result.rows_rejected:,} refused",
        ],
        [
            "rate",
            f"{result.rows_per_second:,.0f} rows/s over {result.seconds:.1f} s "
            f"({result.scoring_rows_per_second:,.0f} rows/s after {result.startup_seconds:.1f} s "
            "of start-up)",
        ],
        ["predictions", f"<code>{e(result.output)}</code>"],
    ]
    if result.errors_file:
        rows.append(["refused rows", f"<code>{e(result.errors_file)}</code>"])
    summary = table_html(["", ""], rows)
    if result.drift is None:
        return summary + f"<p>No drift report: {e(result.drift_skipped or '')}</p>"
    return summary + drift_html(result.drift)
