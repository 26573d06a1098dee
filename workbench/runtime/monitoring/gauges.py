"""The monitoring report as Prometheus series (``/metrics``, after the HTTP series).

Named as Prometheus' conventions ask: a cumulative count is a counter ending in ``_total``
(``feedback_items_total{status}``: one series per outcome, which add up to the items received,
so ``sum()`` counts each item once), a share in [0, 1] ends in ``_ratio``, a time is in seconds.
Bounded series: one per column, class and metric of this model, fixed at packaging. All of them,
the status and the data-quality series (:data:`QUALITY_SERIES`) included, are model and data
information: ``/metrics`` shows them only to a scrape with the API key unless the deployer made
them public (``monitor.public_metrics``; :meth:`..http.handlers.Handlers.quality_shown`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..quality import QUALITY_CHECKS, STATUSES
from ..stattests import STATTESTS
from .feedback import FEEDBACK_STATUSES

Samples = Iterable[tuple[dict[str, Any], Any]]


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exposition:
    """Gauges in Prometheus' text exposition format, one family at a time."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: list[str] = []

    def gauge(self, name: str, help_: str, samples: Samples, *, kind: str = "gauge") -> None:
        """One gauge family (``kind``: or a counter, its name ending in ``_total``); samples
        whose value is None are left out (and an empty family)."""
        kept = [(labels, value) for labels, value in samples if value is not None]
        if not kept:
            return
        full = f"{self.prefix}_{name}"
        self.lines.append(f"# HELP {full} {help_}")
        self.lines.append(f"# TYPE {full} {kind}")
        for labels, value in kept:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            number = float(value)
            shown = "NaN" if math.isnan(number) else repr(number)
            self.lines.append(f"{full}{{{text}}} {shown}" if text else f"{full} {shown}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _flag(value: Any) -> float | None:
    """A verdict as 1/0 (None: no verdict)."""
    return None if value is None else float(value)


def _drift(out: Exposition, drift: Mapping[str, Any]) -> None:
    verdict = drift["verdict"]
    out.gauge(
        "dataset_drift",
        "1 when the dataset drifted, 0 when not (absent: not enough data).",
        [({}, None if verdict == "not enough data" else float(verdict == "drift"))],
    )
    out.gauge("drifted_columns", "Columns that drifted.", [({}, drift["drifted_columns"])])
    out.gauge("tested_columns", "Columns tested for drift.", [({}, drift["tested_columns"])])
    cols = drift["columns"]
    out.gauge(
        "column_drift_statistic",
        f"Each column's drift statistic (label test: {', '.join(STATTESTS)}).",
        [({"column": c["column"], "test": c["test"]}, c["statistic"]) for c in cols],
    )
    out.gauge(
        "column_drifted",
        "1 when the column drifted, 0 when not (absent: untested).",
        [({"column": c["column"]}, _flag(c["drifted"])) for c in cols],
    )
    out.gauge(
        "column_missing_ratio",
        "Share of missing values (source: window or reference).",
        [({"column": c["column"], "source": "window"}, c["missing_share_window"]) for c in cols]
        + [
            ({"column": c["column"], "source": "reference"}, c["missing_share_reference"])
            for c in cols
        ],
    )
    out.gauge(
        "column_unseen_ratio",
        "Share of a category column's window values unseen in training.",
        [({"column": c["column"]}, c["unseen_share"]) for c in cols],
    )


QUALITY_SERIES: dict[str, str] = {
    "status": "The report's verdict as a state set: 1 on the current status (PASS, FAIL, "
    "INCONCLUSIVE = not enough data), 0 on the others.",
    "quality_failed_checks": "Data-quality checks that failed, all columns together.",
    "quality_inconclusive_checks": "Data-quality checks without enough data to decide yet.",
    "column_quality_failed": "1 when a column fails a data-quality check, 0 when it passes "
    f"(absent: not enough data); label check: {', '.join(QUALITY_CHECKS)}.",
    "column_quality_value": "A column's data-quality figure (label check): the share missing, "
    "unseen or out of range; constant: the most frequent value's share.",
}
"""The series of the verdict and the data-quality checks, name -> help (one place, in order)."""


def _quality(out: Exposition, report: Mapping[str, Any]) -> None:
    """The verdict (a state set) and the data-quality checks (:data:`QUALITY_SERIES`)."""
    help_ = QUALITY_SERIES
    status = report.get("status")
    if status is not None:
        out.gauge("status", help_["status"], [({"status": s}, s == status) for s in STATUSES])
    quality = report.get("quality")
    if quality is None:
        return
    checks = quality["checks"]
    out.gauge("quality_failed_checks", help_["quality_failed_checks"], [({}, quality["failed"])])
    out.gauge(
        "quality_inconclusive_checks",
        help_["quality_inconclusive_checks"],
        [({}, quality["inconclusive"])],
    )
    out.gauge(
        "column_quality_failed",
        help_["column_quality_failed"],
        [
            ({"column": c["column"], "check": c["check"]}, c["status"] == "FAIL")
            for c in checks
            if c["status"] != "INCONCLUSIVE"
        ],
    )
    out.gauge(
        "column_quality_value",
        help_["column_quality_value"],
        [({"column": c["column"], "check": c["check"]}, c["value"]) for c in checks],
    )


def _predictions(out: Exposition, predictions: Mapping[str, Any]) -> None:
    out.gauge(
        "prediction",
        "Prediction distribution: a class's share, or mean/std/quantiles of predicted values "
        "(source: window, or reference = the test rows at packaging).",
        [
            ({"value": k, "source": source}, v)
            for source in ("window", "reference")
            for k, v in (predictions.get(source) or {}).items()
        ],
    )
    if "drift" in predictions:
        out.gauge(
            "prediction_drift_statistic",
            "Drift statistic of the predictions against the test rows' predictions.",
            [({"test": predictions["drift"]["test"]}, predictions["drift"]["statistic"])],
        )


def _metrics(out: Exposition, metrics: Mapping[str, Any]) -> None:
    out.gauge(
        "metric",
        "Metrics (source: live = labelled window rows, validation = the holdout at validation).",
        [({"metric": k, "source": "live"}, v) for k, v in metrics["live"].items()]
        + [({"metric": k, "source": "validation"}, v) for k, v in metrics["validation"].items()],
    )
    out.gauge(
        "gate_passed",
        "1 when a monitor gate on a live metric passes, 0 when it fails.",
        [({"metric": g["metric"]}, _flag(g["passed"])) for g in metrics["gates"]],
    )


def prometheus_text(report: Mapping[str, Any], prefix: str = "workbench_monitor") -> str:
    """The report as Prometheus gauges (text exposition format)."""
    out = Exposition(prefix)
    window = report["window"]
    out.gauge("window_rows", "Rows in the monitoring window (all workers).", [({}, window["rows"])])
    out.gauge("window_seconds", "Time span of the monitoring window.", [({}, window["seconds"])])
    out.gauge("labelled_rows", "Rows of the window with feedback.", [({}, window["labelled_rows"])])
    if report.get("drift") is not None:
        _drift(out, report["drift"])
    _quality(out, report)
    out.gauge(
        "unseen_rows_ratio",
        "Share of window rows with at least one unseen category.",
        [({}, report["unseen"]["rows_share"])],
    )
    _predictions(out, report["predictions"])
    _metrics(out, report["metrics"])
    out.gauge(
        "feedback_items_total",
        "Feedback items the workers received, by outcome (status: applied, unchanged, "
        "conflict, unknown; together every item received, each once).",
        [({"status": k}, report["feedback"].get(k)) for k in FEEDBACK_STATUSES],
        kind="counter",
    )
    return out.text()


__all__ = ["prometheus_text"]
