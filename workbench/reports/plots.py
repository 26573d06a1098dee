"""Validation plots as PNG bytes, drawn with scikit-learn's display classes on matplotlib figures.

Each function takes data kept in the validation result (a confusion matrix, thinned curves, a
sample of predictions, importances) and returns PNG bytes, so a report embeds them as
``data:`` images that need no kernel and no network. Figures are plain
:class:`matplotlib.figure.Figure` objects rendered by Agg: nothing touches pyplot's state, so the
notebook's own plotting backend is left alone.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.results import (
    ColumnImportance,
    Curve,
    FeatureImportance,
    ProbeResult,
    RowExplanation,
    ValidationResult,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 90
BLUE, RED, GREY = "#0969da", "#cf222e", "#8c959f"
MAX_CONFUSION_VALUES = 20
"""Above this many classes the confusion matrix is drawn without the numbers in the cells."""


def _figure(width: float, height: float, columns: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def _png(figure: Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_png(
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    *,
    title: str = "confusion matrix (test data)",
    axis_labels: tuple[str, str] | None = None,
) -> bytes:
    """The confusion matrix (rows: true class, columns: predicted class)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    size = min(3.2 + 0.35 * len(labels), 9.0)
    figure, (axes,) = _figure(size, size * 0.9)
    display = ConfusionMatrixDisplay(
        confusion_matrix=np.asarray(matrix), display_labels=[str(x) for x in labels]
    )
    display.plot(
        ax=axes,
        colorbar=False,
        cmap="Blues",
        values_format="d",
        include_values=len(labels) <= MAX_CONFUSION_VALUES,
        xticks_rotation="vertical" if len(labels) > 6 else "horizontal",
    )
    axes.set_title(title, fontsize=10)
    if axis_labels:
        axes.set_ylabel(axis_labels[0])
        axes.set_xlabel(axis_labels[1])
    return _png(figure)


def roc_png(curves: Sequence[Curve]) -> bytes:
    """ROC curves: the positive class, or one-vs-rest per class."""
    from sklearn.metrics import RocCurveDisplay

    figure, (axes,) = _figure(4.2, 3.8)
    for curve in curves:
        RocCurveDisplay(
            fpr=np.asarray(curve.x),
            tpr=np.asarray(curve.y),
            roc_auc=curve.area,
            name=f"class {curve.label}",
        ).plot(ax=axes)
    axes.plot([0, 1], [0, 1], linestyle="--", color=GREY, linewidth=1)
    axes.set_title("ROC (test data)", fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    return _png(figure)


def pr_png(curves: Sequence[Curve]) -> bytes:
    """Precision-recall curves: the positive class, or one-vs-rest per class."""
    from sklearn.metrics import PrecisionRecallDisplay

    figure, (axes,) = _figure(4.2, 3.8)
    for curve in curves:
        PrecisionRecallDisplay(
            precision=np.asarray(curve.y),
            recall=np.asarray(curve.x),
            average_precision=curve.area,
            name=f"class {curve.label}",
        ).plot(ax=axes)
    axes.set_title("precision-recall (test data)", fontsize=10)
    axes.legend(fontsize=7, loc="lower left")
    return _png(figure)


def prediction_error_png(actual: Sequence[float], predicted: Sequence[float]) -> bytes:
    """Predicted against actual, and residuals against predicted, side by side."""
    from sklearn.metrics import PredictionErrorDisplay

    figure, (left, right) = _figure(8.4, 3.8, columns=2)
    display = PredictionErrorDisplay(y_true=np.asarray(actual), y_pred=np.asarray(predicted))
    display.plot(ax=left, kind="actual_vs_predicted", scatter_kwargs={"alpha": 0.5, "s": 10})
    display.plot(ax=right, kind="residual_vs_predicted", scatter_kwargs={"alpha": 0.5, "s": 10})
    left.set_title("predicted vs actual (test sample)", fontsize=10)
    right.set_title("residuals (test sample)", fontsize=10)
    return _png(figure)


def importance_png(features: Sequence[FeatureImportance], metric: str) -> bytes:
    """Permutation importance: the drop in ``metric`` when a column is shuffled."""
    shown = list(features)[::-1]  # largest at the top
    figure, (axes,) = _figure(6.0, 1.0 + 0.28 * max(len(shown), 1))
    names = [f.feature if len(f.feature) <= 28 else f.feature[:27] + "…" for f in shown]
    axes.barh(
        names,
        [f.mean for f in shown],
        xerr=[f.std for f in shown],
        color=[BLUE if f.mean >= 0 else RED for f in shown],
    )
    axes.axvline(0, color=GREY, linewidth=1)
    axes.tick_params(axis="y", labelsize=8)
    axes.set_xlabel(f"drop in {metric} when the column is shuffled", fontsize=9)
    axes.set_title("permutation importance (test sample)", fontsize=10)
    return _png(figure)


def _short(name: str) -> str:
    return name if len(name) <= 28 else name[:27] + "…"


def explanation_summary_png(
    summary: Sequence[ColumnImportance], *, output: str, rows: int, top: int = 15
) -> bytes:
    """The global summary: each column's mean |contribution| over the explained test rows."""
    shown = list(summary)[:top][::-1]  # largest at the top
    figure, (axes,) = _figure(6.0, 1.0 + 0.28 * max(len(shown), 1))
    axes.barh([_short(c.column) for c in shown], [c.mean_abs for c in shown], color=BLUE)
    axes.tick_params(axis="y", labelsize=8)
    axes.set_xlabel(f"mean |contribution| ({output})", fontsize=9)
    axes.set_title(f"explanations: {rows} test rows", fontsize=10)
    return _png(figure)


def row_explanation_png(example: RowExplanation) -> bytes:
    """One row's explanation as a waterfall: from the base value, each contribution (largest
    first, the rest summed) to the row's value."""
    items = example.contributions
    figure, (axes,) = _figure(6.0, 1.2 + 0.3 * (len(items) + 2))
    start = example.base_value
    labels = ["base value"]
    lefts, widths, colours = [0.0], [start], [GREY]
    for item in items:
        labels.append(_short(item.column))
        lefts.append(start)
        widths.append(item.contribution)
        colours.append(BLUE if item.contribution >= 0 else RED)
        start += item.contribution
    labels.append("value")
    lefts.append(0.0)
    widths.append(example.value)
    colours.append(GREY)
    positions = np.arange(len(labels))[::-1]
    axes.barh(positions, widths, left=lefts, color=colours)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.axvline(example.base_value, color=GREY, linewidth=0.8, linestyle="--")
    axes.set_xlabel(example.output, fontsize=9)
    axes.set_title(
        f"test row {example.row}: predicted {example.prediction} "
        f"({example.value:.4g} = {example.base_value:.4g} + contributions)",
        fontsize=9,
    )
    return _png(figure)


def latency_histogram_png(probe: ProbeResult) -> bytes:
    """The load probe's latencies as a histogram, with the percentiles marked."""
    figure, (axes,) = _figure(6.0, 2.6)
    axes.hist(probe.latencies_ms or [0.0], bins=40, color=BLUE)
    for value, name in ((probe.p50_ms, "p50"), (probe.p95_ms, "p95"), (probe.p99_ms, "p99")):
        axes.axvline(value, color=RED, linestyle="--", linewidth=1)
        axes.annotate(name, (value, axes.get_ylim()[1] * 0.9), fontsize=8)
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel("requests")
    axes.set_title(f"{probe.requests} requests at concurrency {probe.concurrency}", fontsize=10)
    return _png(figure)


def validation_figures(result: ValidationResult) -> dict[str, bytes]:
    """The validation plots as PNG bytes, keyed by name, drawn from the data kept in the result."""
    out: dict[str, bytes] = {}
    if result.confusion is not None and result.classes is not None:
        out["confusion matrix"] = confusion_png(result.confusion, result.classes)
    if result.roc:
        out["ROC curve"] = roc_png(result.roc)
    if result.pr:
        out["precision-recall curve"] = pr_png(result.pr)
    if result.actual:
        out["prediction error"] = prediction_error_png(result.actual, result.predicted)
    if result.importance and result.importance.features:
        out["permutation importance"] = importance_png(
            result.importance.features, result.importance.metric
        )
    explanation = result.explanation
    if explanation is not None and explanation.summary and explanation.examples:
        out["explanations (global)"] = explanation_summary_png(
            explanation.summary, output=explanation.output, rows=explanation.rows
        )
        out["explanation of one row"] = row_explanation_png(explanation.examples[0])
    return out


def _drift_order(report: Mapping[str, Any]) -> list[str]:
    """Columns most worth a look first: drifted, then by statistic (p-value tests: by p)."""
    columns = (report.get("drift") or {}).get("columns", [])

    def key(c: Mapping[str, Any]) -> tuple[int, float]:
        score = c["statistic"] or 0.0
        if c.get("p_value") is not None:
            score = 1.0 - c["p_value"]
        return (0 if c["drifted"] else 1 if c["drifted"] is not None else 2, -score)

    return [c["column"] for c in sorted(columns, key=key)]


def monitor_profiles_png(report: Mapping[str, Any], *, columns: int = 6) -> bytes | None:
    """Reference against window for the ``columns`` most drifted input columns: quantile
    functions of numbers (and text lengths), shares of category values. None without data."""
    profiles = report.get("profiles") or {}
    names = [n for n in _drift_order(report) if n in profiles][:columns]
    if not names:
        return None
    per_row = min(3, len(names))
    rows = (len(names) + per_row - 1) // per_row
    figure, _ = _figure(3.4 * per_row, 2.6 * rows)
    figure.clear()
    axes_grid = figure.subplots(rows, per_row, squeeze=False)
    for index, axes in enumerate(axes_grid.flat):
        if index >= len(names):
            axes.set_visible(False)
            continue
        name = names[index]
        profile = profiles[name]
        if profile["kind"] == "quantiles":
            p = profile["probabilities"]
            axes.plot(p, profile["reference"], color=GREY, label="training")
            if profile["window"] is not None:
                axes.plot(p, profile["window"], color=RED, label="live")
            axes.set_xlabel("quantile", fontsize=8)
        else:
            x = np.arange(len(profile["values"]))
            axes.bar(x - 0.2, profile["reference"], width=0.4, color=GREY, label="training")
            if profile["window"] is not None:
                axes.bar(x + 0.2, profile["window"], width=0.4, color=RED, label="live")
            axes.set_xticks(x, [str(v)[:10] for v in profile["values"]], rotation=45, fontsize=7)
            axes.set_ylabel("share", fontsize=8)
        axes.set_title(name[:40], fontsize=9)
        axes.tick_params(labelsize=7)
        if index == 0:
            axes.legend(fontsize=7)
    return _png(figure)


def prediction_png(predictions: Mapping[str, Any]) -> bytes | None:
    """The predictions' distribution in the window against the test rows' at packaging."""
    ref, live = predictions.get("reference") or {}, predictions.get("window") or {}
    keys = list(dict.fromkeys([*ref, *live]))
    if not keys:
        return None
    figure, (axes,) = _figure(4.2, 2.6)
    x = np.arange(len(keys))
    axes.bar(x - 0.2, [ref.get(k, 0.0) for k in keys], width=0.4, color=GREY, label="test rows")
    axes.bar(x + 0.2, [live.get(k, 0.0) for k in keys], width=0.4, color=BLUE, label="live")
    axes.set_xticks(x, [str(k)[:10] for k in keys], fontsize=8)
    axes.set_title("predictions", fontsize=9)
    _legend_above_bars(axes, [*ref.values(), *live.values()])
    return _png(figure)


def _legend_above_bars(axes: Any, values: Sequence[float]) -> None:
    """A legend in a band of its own above the tallest bar, so it covers none."""
    top = max([float(v) for v in values if v is not None] + [0.0])
    if top > 0:
        axes.set_ylim(top=top * 1.45)
    axes.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)


def metric_bars_png(
    metrics: dict[str, dict[str, float | None]], *, title: str = "metrics on the same test data"
) -> bytes:
    """Grouped bars: one group per metric, one bar per version (``{version: {metric: value}}``)."""
    names = list(metrics)
    keys = [
        m
        for m in next(iter(metrics.values()), {})
        if all(metrics[n].get(m) is not None for n in names)
    ]
    figure, (axes,) = _figure(max(4.0, 0.9 * len(keys) + 1.5), 3.2)
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        values = [float(metrics[name][m] or 0.0) for m in keys]
        positions = np.arange(len(keys)) + i * width
        axes.bar(positions, values, width=width, label=name, color=(BLUE, RED, GREY)[i % 3])
    axes.set_xticks(np.arange(len(keys)) + width * (len(names) - 1) / 2, keys, fontsize=8)
    _legend_above_bars(axes, [float(metrics[n][m] or 0.0) for n in names for m in keys])
    axes.set_title(title, fontsize=10)
    return _png(figure)


def histogram_png(
    edges: Sequence[float], counts: Sequence[float], *, title: str, xlabel: str
) -> bytes:
    """A histogram drawn from its bin edges and counts."""
    figure, (axes,) = _figure(4.5, 3.0)
    left = np.asarray(edges[:-1], dtype=float)
    widths = np.diff(np.asarray(edges, dtype=float))
    axes.bar(left, counts, width=widths, align="edge", color=BLUE, edgecolor="white")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("rows")
    axes.set_title(title, fontsize=10)
    return _png(figure)
