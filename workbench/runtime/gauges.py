"""The monitoring report as Prometheus gauges (``/metrics``, after BentoML's own series)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(report: Mapping[str, Any], prefix: str = "workbench_monitor") -> str:
    """The report as Prometheus gauges (text exposition format). Bounded series: one per column,
    class and metric of this model, fixed at packaging."""
    lines: list[str] = []

    def gauge(name: str, help_: str, samples: Iterable[tuple[dict[str, Any], Any]]) -> None:
        kept = [(labels, value) for labels, value in samples if value is not None]
        if not kept:
            return
        full = f"{prefix}_{name}"
        lines.append(f"# HELP {full} {help_}")
        lines.append(f"# TYPE {full} gauge")
        for labels, value in kept:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            number = float(value)
            shown = "NaN" if math.isnan(number) else repr(number)
            lines.append(f"{full}{{{text}}} {shown}" if text else f"{full} {shown}")

    window = report["window"]
    gauge("window_rows", "Rows in the monitoring window (all workers).", [({}, window["rows"])])
    gauge("window_seconds", "Time span of the monitoring window.", [({}, window["seconds"])])
    gauge("labelled_rows", "Rows of the window with feedback.", [({}, window["labelled_rows"])])
    drift = report.get("drift")
    if drift is not None:
        verdict = drift["verdict"]
        gauge(
            "dataset_drift",
            "1 when the dataset drifted, 0 when not (absent: not enough data).",
            [({}, None if verdict == "not enough data" else float(verdict == "drift"))],
        )
        gauge("drifted_columns", "Columns that drifted.", [({}, drift["drifted_columns"])])
        gauge("tested_columns", "Columns tested for drift.", [({}, drift["tested_columns"])])
        cols = drift["columns"]
        gauge(
            "column_drift_statistic",
            "Each column's drift statistic (label test: ks, chisquare, z, wasserstein, "
            "jensenshannon).",
            [({"column": c["column"], "test": c["test"]}, c["statistic"]) for c in cols],
        )
        gauge(
            "column_drifted",
            "1 when the column drifted, 0 when not (absent: untested).",
            [
                ({"column": c["column"]}, None if c["drifted"] is None else float(c["drifted"]))
                for c in cols
            ],
        )
        gauge(
            "column_missing_share",
            "Share of missing values (source: window or reference).",
            [({"column": c["column"], "source": "window"}, c["missing_share_window"]) for c in cols]
            + [
                ({"column": c["column"], "source": "reference"}, c["missing_share_reference"])
                for c in cols
            ],
        )
        gauge(
            "column_unseen_share",
            "Share of a category column's window values unseen in training.",
            [({"column": c["column"]}, c["unseen_share"]) for c in cols],
        )
    gauge(
        "unseen_rows_share",
        "Share of window rows with at least one unseen category.",
        [({}, report["unseen"]["rows_share"])],
    )
    predictions = report["predictions"]
    pred_samples = [
        ({"value": k, "source": source}, v)
        for source in ("window", "reference")
        for k, v in (predictions.get(source) or {}).items()
    ]
    gauge(
        "prediction",
        "Prediction distribution: a class's share, or mean/std/quantiles of predicted values "
        "(source: window, or reference = the test rows at packaging).",
        pred_samples,
    )
    if "drift" in predictions:
        gauge(
            "prediction_drift_statistic",
            "Drift statistic of the predictions against the test rows' predictions.",
            [({"test": predictions["drift"]["test"]}, predictions["drift"]["statistic"])],
        )
    metrics = report["metrics"]
    gauge(
        "metric",
        "Metrics (source: live = labelled window rows, validation = the holdout at validation).",
        [({"metric": k, "source": "live"}, v) for k, v in metrics["live"].items()]
        + [({"metric": k, "source": "validation"}, v) for k, v in metrics["validation"].items()],
    )
    gauge(
        "gate_passed",
        "1 when a monitor gate on a live metric passes, 0 when it fails.",
        [
            ({"metric": g["metric"]}, None if g["passed"] is None else float(g["passed"]))
            for g in metrics["gates"]
        ],
    )
    feedback = report["feedback"]
    gauge(
        "feedback_items",
        "Feedback items the workers received, by status (their windows merged).",
        [({"status": k}, v) for k, v in feedback.items()],
    )
    return "\n".join(lines) + "\n"


__all__ = ["prometheus_text"]
