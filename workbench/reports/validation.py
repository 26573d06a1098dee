"""HTML of a validation result: verdict, gates, metrics side by side, plots, checks, schema."""

from __future__ import annotations

import html

from workbench.reports import plots
from workbench.reports.html import STYLE, fmt, img, table_html, verdict_html
from workbench.results import ExplanationResult, ValidationResult

VALIDATION_STYLE = (
    "<style>.wb-row-pass td{background:#dafbe1}.wb-row-fail td{background:#ffebe9}"
    ".wb-plots{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}"
    ".wb-plots img{border:1px solid #d0d7de;max-width:100%}.wb-primary td{font-weight:600}</style>"
)


def _gates_html(result: ValidationResult) -> str:
    if not result.gates:
        return "<p>No gates configured.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("gate", "value", "threshold", "verdict", "why"))
    body = "".join(
        f"<tr class='wb-row-{'pass' if g.passed else 'fail'}'>"
        f"<td>{html.escape(g.metric)}</td><td>{fmt(g.value)}</td>"
        f"<td>{html.escape(g.threshold)}</td><td>{verdict_html(g.passed)}</td>"
        f"<td>{html.escape(g.reason)}</td></tr>"
        for g in result.gates
    )
    return (
        f"<table class='wb-table wb-gates'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _metrics_html(result: ValidationResult) -> str:
    headers = ["metric", "test"]
    cv = result.cv if result.cv and not result.cv.error else None
    champion = result.champion if result.champion and result.champion.tag else None
    if cv:
        headers.append(f"CV mean ± sd ({cv.folds} folds)")
    if result.baseline:
        headers.append(f"baseline ({result.baseline.estimator})")
    if champion:
        headers += [f"champion {champion.tag} (same test)", "champion (as packaged)"]
    rows_html = ""
    for metric, value in result.metrics.items():
        cells = [html.escape(metric), fmt(value)]
        if cv:
            mean, std = cv.mean.get(metric), cv.std.get(metric)
            cells.append("—" if mean is None else f"{mean:.4f} ± {std or 0.0:.4f}")
        if result.baseline:
            cells.append(fmt(result.baseline.metrics.get(metric)))
        if champion:
            cells += [
                fmt(champion.metrics.get(metric)),
                fmt(champion.stored_metrics.get(metric)),
            ]
        css = " class='wb-primary'" if metric == result.primary_metric else ""
        rows_html += f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return (
        f"<table class='wb-table wb-metrics'><thead><tr>{head}</tr></thead>"
        f"<tbody>{rows_html}</tbody></table>"
    )


def validation_notes(result: ValidationResult) -> list[str]:
    notes = [f"{m}: not available ({why})" for m, why in result.unavailable.items()]
    if result.cv:
        cv = result.cv
        sample = (
            f"a seeded sample of {cv.rows} training rows"
            if cv.sampled
            else (f"{cv.rows} training rows")
        )
        notes.append(
            f"cross-validation: {cv.splitter}, {cv.folds} folds, seed {cv.seed}, on {sample}"
            + (f"; FAILED: {cv.error}" if cv.error else f" ({cv.seconds:.1f} s)")
        )
        notes += [f"cross-validation warning: {w}" for w in cv.warnings]
    if result.champion:
        c = result.champion
        text = f"champion {c.tag}" if c.tag else "champion: none"
        notes.append(text + (f": {c.note}" if c.note else "") + (f"; {c.error}" if c.error else ""))
    if result.importance and result.importance.error:
        notes.append(f"permutation importance failed: {result.importance.error}")
    notes += explanation_notes(result)
    return notes


def explanation_notes(result: ValidationResult) -> list[str]:
    """What the explanations are: method, units, sample size, additivity (or why none)."""
    e = result.explanation
    if e is None:
        return []
    if e.error:
        return [f"explanations failed: {e.error}"]
    size = "exact" if e.sample_size is None else f"{e.sample_size} samples per contribution"
    return [
        f"explanations: {e.method} ({size}, {e.library}), output in {e.output}, {e.rows} test "
        f"rows in {e.seconds:.2f} s; contributions add up to the output minus the base value "
        f"within {e.additivity_error:.1g} (relative); {e.reason}"
    ]


def _checks_html(result: ValidationResult) -> str:
    rows = []
    if result.roundtrip:
        r = result.roundtrip
        detail = (
            r.error
            or f"{r.rows} rows predicted again after joblib save/load ({r.bytes:,} bytes): "
            f"{r.mismatches} differ"
            + (
                f", max probability difference {r.max_proba_diff:.2g}"
                if r.max_proba_diff is not None
                else ""
            )
        )
        rows.append(["save / reload", verdict_html(r.passed), html.escape(detail)])
    for runtime, lat in (("scikit-learn", result.latency), ("ONNX", result.onnx_latency)):
        if lat is None:
            continue
        rows.append(
            [
                f"latency, 1 row ({runtime})",
                f"{lat.single_row_p50_ms:.3f} ms",
                f"median of {lat.single_row_calls} calls; p95 {lat.single_row_p95_ms:.3f} ms",
            ]
        )
        rows.append(
            [
                f"latency, {lat.batch_rows:,} rows ({runtime})",
                f"{lat.batch_ms:.1f} ms",
                f"{lat.batch_rows / max(lat.batch_ms, 1e-9) * 1000:,.0f} rows/s in process",
            ]
        )
    if result.compiled:
        c = result.compiled
        rows.append(
            [
                "compiled (ONNX)",
                verdict_html(c.runtime == "onnx", "serves" if c.runtime == "onnx" else "not used"),
                html.escape(c.reason),
            ]
        )
    return table_html(["check", "result", "detail"], rows) if rows else ""


def _schema_html(result: ValidationResult) -> str:
    rows = []
    for col in result.input_schema.columns:
        if col.kind == "text":
            facts = f"text ({col.text_reason})" if col.text_reason else "text"
        elif col.categories is not None:
            seen = ", ".join(col.categories[:8]) + (" …" if len(col.categories) > 8 else "")
            facts = f"{len(col.categories)} categories: {seen}"
        elif col.min is not None:
            facts = f"{col.min:g} … {col.max:g}"
        else:
            facts = ""
        missing = ""
        if result.profile:
            try:
                missing = f"{result.profile.column(col.name).missing:.1%}"
            except KeyError:
                missing = ""
        rows.append(
            [
                html.escape(col.name),
                col.kind,
                html.escape(col.dtype),
                "yes" if col.nullable else "no",
                html.escape(facts),
                missing,
            ]
        )
    table = table_html(["column", "kind", "dtype", "nullable", "seen", "missing"], rows)
    return (
        f"<details><summary>input schema: {len(rows)} columns, in the order the model "
        f"expects them</summary>{table}</details>"
    )


def validation_html(result: ValidationResult) -> str:
    verdict = verdict_html(result.passed, "all gates pass" if result.passed else "gates failed")
    primary = f", primary metric {result.primary_metric}" if result.primary_metric else ""
    head = (
        f"{STYLE}{VALIDATION_STYLE}"
        f"<h4>Validation of <code>{html.escape(result.name)}</code> ({result.task}{primary}): "
        f"{verdict}</h4>"
        f"<p>{result.rows.get('train', 0)} training rows, {result.rows.get('test', 0)} test rows, "
        f"{len(result.input_schema.columns)} input columns, {result.seconds:.2f} s</p>"
    )
    figures = plots.validation_figures(result)
    gallery = (
        "<div class='wb-plots'>"
        + "".join(img(png, name) for name, png in figures.items())
        + "</div>"
        if figures
        else ""
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in validation_notes(result))
    return (
        head
        + _gates_html(result)
        + _metrics_html(result)
        + gallery
        + _checks_html(result)
        + (f"<ul class='wb-notes'>{notes}</ul>" if notes else "")
        + _schema_html(result)
    )


def explanation_row_html(explanation: ExplanationResult, row: int) -> str:
    """One explained test row: its waterfall plot and its contributions as a table."""
    example = explanation.example(row)
    rows = [[html.escape(c.column), f"{c.contribution:+.4g}"] for c in example.contributions]
    rows.append(["<b>base value</b>", f"{example.base_value:.4g}"])
    rows.append([f"<b>value</b> ({html.escape(example.output)})", f"{example.value:.4g}"])
    return img(plots.row_explanation_png(example), f"explanation of test row {row}") + table_html(
        ["column", "contribution"], rows
    )
