"""A retrain as text (the command line) and HTML (the panel, the notebook's report): the new rows
and their split, how the challenger was made, each step's verdict, and what to do next."""

from __future__ import annotations

import html

from workbench.reports.html import STYLE, table_html, verdict_html
from workbench.reports.validation import validation_html
from workbench.reports.versions import promotion_html, shadow_html
from workbench.results import NewRows, RetrainResult

HEADLINES = {
    "promoted": "promoted",
    "refused": "refused: nothing promoted",
    "unchanged": "unchanged: the challenger is the promoted version",
}


def new_rows_lines(rows: NewRows) -> list[str]:
    """The new rows and their split, one fact a line."""
    lines = [
        f"new rows: {rows.rows:,} ({rows.distinct:,} distinct) from the {rows.source} "
        f"{rows.path}, sha256 {rows.sha256[:16]}",
        f"split by seed {rows.seed}: {rows.train_rows:,} rows to train (sha256 "
        f"{rows.train_sha256[:16]}), {rows.test_rows:,} to test (sha256 "
        f"{rows.test_sha256[:16]}), {rows.test_share:.0%} of the distinct rows held out",
    ]
    if rows.labels:
        lines.append("labels: " + ", ".join(f"{k} {v:,}" for k, v in rows.labels.items()))
    if rows.skipped:
        lines.append("left out: " + ", ".join(f"{k} {v:,}" for k, v in rows.skipped.items()))
    return lines


def retrain_lines(result: RetrainResult) -> list[str]:
    """The whole retrain, one fact a line (the command line prints these)."""
    model = result.model
    lines = [
        f"retrain of {result.name}: {HEADLINES[result.outcome]}",
        f"champion: {result.champion} (promoted)",
        *new_rows_lines(result.new_rows),
        f"challenger: {model.source}, fitted on {model.rows:,} rows, sha256 {model.sha256[:16]}"
        + (f" (random_state set to the seed: {', '.join(model.seeded)})" if model.seeded else ""),
    ]
    width = max(len(s.name) for s in result.steps)
    for step in result.steps:
        lines.append(f"  {step.name:<{width}}  {step.status:<7}  {step.detail}")
    if result.model_out:
        lines.append(
            f"model file: {result.model_out} (workbench.yaml is unchanged: set `model:` to it "
            "to make it the project's model)"
        )
    return lines


def retrain_text(result: RetrainResult) -> str:
    return "\n".join(retrain_lines(result))


def new_rows_html(rows: NewRows) -> str:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in new_rows_lines(rows))
    return f"{STYLE}<h4>New rows {verdict_html(True, 'fit for a retrain')}</h4><ul>{items}</ul>"


def retrain_html(result: RetrainResult) -> str:
    """The retrain's summary and step table, then the stage results it holds."""
    steps = [
        [
            html.escape(step.name),
            verdict_html(step.status != "failed", step.status)
            if step.status != "skipped"
            else "skipped",
            html.escape(step.detail),
            f"<code>{html.escape(step.record)}</code>" if step.record else "",
            f"{step.seconds:.1f}",
        ]
        for step in result.steps
    ]
    facts = "".join(f"<li>{html.escape(line)}</li>" for line in retrain_lines(result)[1:4])
    verdict = verdict_html(result.outcome != "refused", HEADLINES[result.outcome])
    parts = [
        f"{STYLE}<h4>Retrain of <code>{html.escape(result.name)}</code>: {verdict}</h4>",
        f"<ul>{facts}</ul>",
        table_html(["step", "verdict", "detail", "record", "seconds"], steps),
        f"<p style='font-size:12px'>run folder: <code>{html.escape(result.run_dir)}</code></p>",
    ]
    if result.model_out:
        parts.append(
            f"<p>model file: <code>{html.escape(result.model_out)}</code> (workbench.yaml is "
            "unchanged: set <code>model:</code> to it to make it the project's model)</p>"
        )
    if result.promotion is not None:
        parts.append(promotion_html(result.promotion))
    if result.shadow is not None:
        parts.append(shadow_html(result.shadow))
    if result.validation is not None:
        parts.append(validation_html(result.validation))
    return "".join(parts)
