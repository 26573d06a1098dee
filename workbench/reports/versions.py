"""Versions, comparisons, promotions and shadow replays as text and HTML (panel, file)."""

from __future__ import annotations

import html
from typing import Any

from workbench.reports import plots
from workbench.reports.html import STYLE, fmt, img, page, table_html, verdict_html
from workbench.results import (
    CompareResult,
    PromotionResult,
    ShadowResult,
    VersionInfo,
    VersionsResult,
)

HEADLINE = {
    "classification": ("roc_auc", "accuracy", "f1"),
    "regression": ("r2", "rmse", "mae"),
}


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _headline(version: VersionInfo) -> str:
    names = HEADLINE.get(version.task, ())
    parts = [f"{m} {version.metrics[m]:.4f}" for m in names if version.metrics.get(m) is not None]
    return ", ".join(parts) or "—"


def _gates(version: VersionInfo) -> str:
    failed = [g.metric for g in version.gates if not g.passed]
    if failed:
        return f"FAIL {', '.join(failed)}"
    return f"pass {len(version.gates)}/{len(version.gates)}"


def _commit(version: VersionInfo) -> str:
    if not version.git_commit:
        return "—"
    return version.git_commit[:10] + (" (dirty)" if version.git_dirty else "")


def _version_rows(result: VersionsResult) -> list[list[str]]:
    return [
        [
            ("* " if v.promoted else "  ") + v.tag,
            v.created.replace("+00:00", "Z"),
            v.run or "—",
            _commit(v),
            _headline(v),
            _gates(v),
            _size(v.size_bytes),
            v.runtime,
        ]
        for v in result.versions
    ]


VERSION_HEADERS = ["tag", "created", "run", "git commit", "metrics", "gates", "size", "runtime"]


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def versions_text(result: VersionsResult) -> str:
    """The versions table for a terminal; ``*`` marks the promoted version."""
    if not result.versions:
        return f"no packaged versions of {result.name!r} in the BentoML store"
    table = _text_table(VERSION_HEADERS, _version_rows(result))
    promoted = result.promoted or "none yet"
    notes = [f"promoted: {promoted} (* above; history {result.history_file})"]
    if result.promoted and not any(v.promoted for v in result.versions):
        notes.append(f"warning: the promoted {result.promoted} is not in this BentoML store")
    if result.rollback_target:
        notes.append(f"`workbench rollback {result.name}` returns to {result.rollback_target}")
    return table + "\n\n" + "\n".join(notes)


def versions_html(result: VersionsResult) -> str:
    rows = []
    for row, version in zip(_version_rows(result), result.versions, strict=True):
        cells = [html.escape(c) for c in row]
        cells[0] = f"<span class='wb-code'>{html.escape(version.tag)}</span>" + (
            " <b class='wb-promoted'>promoted</b>" if version.promoted else ""
        )
        cells[5] = verdict_html(version.passed, row[5])
        rows.append(cells)
    promoted = html.escape(result.promoted or "none yet")
    return (
        f"{STYLE}<h4>Versions of <code>{html.escape(result.name)}</code> "
        f"({len(result.versions)}); promoted: <code class='wb-promoted-tag'>{promoted}</code></h4>"
        + table_html(VERSION_HEADERS, rows)
        + f"<p style='font-size:12px'>history: <code>{html.escape(result.history_file)}</code></p>"
    )


def promotion_text(result: PromotionResult) -> str:
    verb = "promoted" if result.action == "promote" else "rolled back to"
    lines = [
        f"{result.name}: {verb} {result.version} (was {result.previous or 'none'})"
        + (" FORCED" if result.forced else ""),
        f"reason: {result.reason}",
    ]
    for g in result.gates:
        value = "n/a" if g.value is None else f"{g.value:.4f}"
        why = f": {g.reason}" if g.reason else ""
        lines.append(f"  {g.metric}: {'pass' if g.passed else 'FAIL'} {value} ({g.threshold}){why}")
    lines.append(f"history: {result.history_file}")
    if result.manifest_file:
        lines.append(f"manifest: {result.manifest_file} (kubectl apply -f it)")
    return "\n".join(lines)


def promotion_html(result: PromotionResult) -> str:
    return f"{STYLE}<pre class='wb-promotion'>{html.escape(promotion_text(result))}</pre>"


def _delta(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{b - a:+.4f}"


def compare_text(result: CompareResult) -> str:
    lines = [
        f"{result.a}  vs  {result.b}  ({result.task}, re-scored on {result.rows:,} rows of "
        f"{result.test_data})",
        "",
    ]
    rows = [
        [
            m,
            fmt(result.metrics_a.get(m)),
            fmt(result.metrics_b.get(m)),
            _delta(result.metrics_a.get(m), result.metrics_b.get(m)),
        ]
        for m in result.metrics_a
    ]
    lines.append(_text_table(["metric", "A", "B", "B - A"], rows))
    if result.agreement is not None:
        lines.append(f"\nsame prediction on {result.agreement:.1%} of the test rows")
    lines.append("\nschema: " + ("no change" if not result.schema_changes else ""))
    lines += [f"  {c.change:<10} {c.column}: {c.detail}" for c in result.schema_changes]
    lines.append("packages: " + ("no change" if not result.package_changes else ""))
    lines += [f"  {line}" for line in result.package_changes]
    lines.append("service options: " + ("no change" if not result.option_changes else ""))
    lines += [f"  {k}: {a!r} -> {b!r}" for k, (a, b) in result.option_changes.items()]
    return "\n".join(lines)


def _compare_plots(result: CompareResult) -> str:
    figures = [
        img(
            plots.metric_bars_png({"A": result.metrics_a, "B": result.metrics_b}),
            "metrics of A and B on the same test data",
        )
    ]
    if result.confusion_a and result.confusion_b:
        for label, matrix in (("A", result.confusion_a), ("B", result.confusion_b)):
            figures.append(
                img(
                    plots.confusion_png(
                        matrix, result.classes, title=f"confusion matrix of {label} (test data)"
                    ),
                    f"confusion matrix of {label}",
                )
            )
    if result.actual:
        for label, predicted in (("A", result.predictions_a), ("B", result.predictions_b)):
            figures.append(
                img(plots.prediction_error_png(result.actual, predicted), f"predictions of {label}")
            )
    return "<div style='display:flex;flex-wrap:wrap;gap:8px'>" + "".join(figures) + "</div>"


def compare_html(result: CompareResult) -> str:
    """The comparison as an HTML fragment (panel); :func:`compare_page` for a file."""
    metric_rows = [
        [
            html.escape(m),
            fmt(result.metrics_a.get(m)),
            fmt(result.metrics_b.get(m)),
            _delta(result.metrics_a.get(m), result.metrics_b.get(m)),
        ]
        for m in result.metrics_a
    ]
    schema_rows = [
        [html.escape(c.column), html.escape(c.change), html.escape(c.detail)]
        for c in result.schema_changes
    ]
    option_rows = [[html.escape(k), fmt(a), fmt(b)] for k, (a, b) in result.option_changes.items()]
    agreement = "—" if result.agreement is None else f"{result.agreement:.1%}"
    return (
        f"{STYLE}<h4>A <code>{html.escape(result.a)}</code> vs B "
        f"<code>{html.escape(result.b)}</code></h4>"
        f"<p>{html.escape(result.task)}; both re-scored on {result.rows:,} rows of "
        f"<code>{html.escape(result.test_data)}</code>; same prediction on {agreement} of them "
        f"(primary metric <b>{html.escape(result.primary_metric)}</b>)</p>"
        + table_html(["metric", "A", "B", "B − A"], metric_rows)
        + _compare_plots(result)
        + "<h4>Input schema</h4>"
        + (
            table_html(["column", "change", "detail"], schema_rows)
            if schema_rows
            else "<p>no change</p>"
        )
        + "<h4>Pinned packages</h4>"
        + (
            "<pre>" + html.escape("\n".join(result.package_changes)) + "</pre>"
            if result.package_changes
            else "<p>no change</p>"
        )
        + "<h4>Service options</h4>"
        + (table_html(["option", "A", "B"], option_rows) if option_rows else "<p>no change</p>")
    )


def compare_page(result: CompareResult) -> str:
    return page(f"compare {result.a} {result.b}", compare_html(result))


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} ms"


def shadow_lines(result: ShadowResult) -> list[str]:
    lines = [
        f"champion {result.champion} vs challenger {result.challenger} ({result.task})",
        f"replayed {result.rows_sent:,} of {result.rows_in_file:,} rows of {result.replay} in "
        f"{result.seconds:.1f} s ({result.batch_rows} per request; stopped by {result.stopped_by})",
        f"agreement: {_share(result.agreement)}"
        + (f" (|difference| <= {result.tolerance:g})" if result.task == "regression" else ""),
        f"prediction shift: {fmt(result.shift)} ({result.shift_test})",
    ]
    for role, shares in result.shares.items():
        lines.append(
            f"label shares {role}: " + ", ".join(f"{k} {v:.1%}" for k, v in shares.items())
        )
    for role, lat in result.latency.items():
        lines.append(
            f"latency {role}: p50 {_ms(lat.p50_ms)}, p95 {_ms(lat.p95_ms)}, "
            f"p99 {_ms(lat.p99_ms)} over {lat.requests} requests, {lat.errors} errors"
        )
    if result.difference:
        lines.append(
            "difference (challenger - champion): "
            + ", ".join(f"{k} {v:.4g}" for k, v in result.difference.items())
        )
    if result.metric_deltas:
        lines.append(
            "metric deltas (challenger - champion): "
            + ", ".join(f"{k} {fmt(v)}" for k, v in result.metric_deltas.items())
        )
    for g in result.gates:
        why = f": {g.reason}" if g.reason else ""
        verdict = "pass" if g.passed else "FAIL"
        lines.append(f"gate {g.name}: {verdict} {fmt(g.value)} ({g.threshold}){why}")
    return lines


def shadow_text(result: ShadowResult) -> str:
    lines = shadow_lines(result)
    if result.confusion:
        width = max(len(x) for x in result.labels) + 2
        lines.append("\nrows: champion's label, columns: challenger's label")
        lines.append(" " * width + "".join(f"{x:>{width}}" for x in result.labels))
        for label, row in zip(result.labels, result.confusion, strict=True):
            lines.append(f"{label:<{width}}" + "".join(f"{n:>{width}}" for n in row))
    return "\n".join(lines)


def shadow_html(result: ShadowResult) -> str:
    label = "gates pass" if result.passed else "a gate failed"
    verdict = verdict_html(result.passed, label if result.gates else "no shadow gates set")
    facts: list[list[str]] = [[html.escape(line), ""] for line in shadow_lines(result)]
    figures = []
    if result.confusion:
        figures.append(
            img(
                plots.confusion_png(
                    result.confusion,
                    result.labels,
                    title="champion vs challenger labels",
                    axis_labels=("champion", "challenger"),
                ),
                "confusion table of champion against challenger labels",
            )
        )
    if result.difference_histogram:
        figures.append(
            img(
                plots.histogram_png(
                    result.difference_histogram["edges"],
                    result.difference_histogram["counts"],
                    title="challenger - champion",
                    xlabel="difference",
                ),
                "distribution of the differences",
            )
        )
    if result.metrics:
        figures.append(
            img(
                plots.metric_bars_png(result.metrics, title="metrics on the replayed rows"),
                "metrics of champion and challenger on the replayed rows",
            )
        )
    disagreements: list[list[Any]] = [
        [str(d["row"]), fmt(d["champion"]), fmt(d["challenger"])] for d in result.disagreements
    ]
    return (
        f"{STYLE}<h4>Shadow: <code>{html.escape(result.challenger)}</code> on the traffic of "
        f"<code>{html.escape(result.champion)}</code>: {verdict}</h4>"
        + "<ul>"
        + "".join(f"<li>{row[0]}</li>" for row in facts)
        + "</ul>"
        + "<div style='display:flex;flex-wrap:wrap;gap:8px'>"
        + "".join(figures)
        + "</div>"
        + (
            "<h4>First disagreements</h4>"
            + table_html(["row", "champion", "challenger"], disagreements)
            if disagreements
            else ""
        )
    )


def shadow_page(result: ShadowResult) -> str:
    return page(f"shadow {result.challenger} vs {result.champion}", shadow_html(result))
