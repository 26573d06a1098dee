"""The live metrics of ``GET /monitor``: the validation metrics of the task scored on the
labelled rows of the window (``POST /feedback``), and the ``monitor.gates`` judged on them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

#: The metrics of each task, as the validate stage computes them (``workbench.config`` documents
#: each and re-exports this table: the runtime ships alone and cannot import workbench).
METRICS: dict[str, tuple[str, ...]] = {
    "classification": (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "brier",
    ),
    "regression": ("mae", "rmse", "r2", "median_ae"),
}
#: Metrics where smaller is better; for all others larger is better.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "mae", "rmse", "median_ae"})
#: Every metric of any task, sorted (what gates may name).
ALL_METRICS = sorted({m for names in METRICS.values() for m in names})


class Bounds(Protocol):
    """A gate's bounds (:class:`~.settings.Gate`)."""

    @property
    def min(self) -> float | None: ...

    @property
    def max(self) -> float | None: ...


class Scores:
    """Metric values as they are computed, and why any is missing."""

    def __init__(self) -> None:
        self.values: dict[str, float | None] = {}
        self.why: dict[str, str] = {}

    def put(self, name: str, compute: Callable[[], float]) -> None:
        try:
            value = float(compute())
        except (ValueError, IndexError, ZeroDivisionError) as exc:
            self.missing(name, str(exc).splitlines()[0][:200])
            return
        if math.isfinite(value):
            self.values[name] = value
        else:
            self.missing(name, "not finite")

    def missing(self, name: str, why: str) -> None:
        self.values[name], self.why[name] = None, why


def live_metrics(
    task: str, labels: Sequence[Any], answers: Sequence[Mapping[str, Any]], classes: list[Any]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """The validation metrics of ``task`` on labelled rows (the definitions of the validate
    stage: binary precision/recall/F1 of ``classes[1]``, macro otherwise; one-vs-rest ROC-AUC),
    and why any is missing."""
    scores = Scores()
    if task == "regression":
        _regression(scores, labels, answers)
    else:
        _classification(scores, labels, answers, [str(c) for c in classes])
    return scores.values, scores.why


def _regression(
    scores: Scores, labels: Sequence[Any], answers: Sequence[Mapping[str, Any]]
) -> None:
    from sklearn import metrics as skm  # a scikit-learn model's Bento always has it

    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray([a["prediction"] for a in answers], dtype=np.float64)
    scores.put("mae", lambda: skm.mean_absolute_error(y, p))
    scores.put("rmse", lambda: skm.root_mean_squared_error(y, p))
    scores.put("median_ae", lambda: skm.median_absolute_error(y, p))
    if len(y) < 2:
        scores.missing("r2", "R² needs at least two rows")
    else:
        scores.put("r2", lambda: skm.r2_score(y, p))


def _classification(
    scores: Scores, labels: Sequence[Any], answers: Sequence[Mapping[str, Any]], keys: list[str]
) -> None:
    from sklearn import metrics as skm

    yk = np.asarray([str(v) for v in labels], dtype=object)
    pk = np.asarray([str(a["prediction"]) for a in answers], dtype=object)
    binary = len(keys) == 2
    average: dict[str, Any] = (
        {"average": "binary", "pos_label": keys[1]} if binary else {"average": "macro"}
    )
    scores.put("accuracy", lambda: np.mean(yk == pk))
    scores.put(
        "balanced_accuracy",
        lambda: np.mean([np.mean(pk[yk == c] == c) for c in np.unique(yk)]),
    )
    scores.put("precision", lambda: skm.precision_score(yk, pk, zero_division=0, **average))
    scores.put("recall", lambda: skm.recall_score(yk, pk, zero_division=0, **average))
    scores.put("f1", lambda: skm.f1_score(yk, pk, zero_division=0, **average))
    probs = [a.get("probabilities") for a in answers]
    if not keys or not all(isinstance(p, Mapping) for p in probs):
        for name in ("roc_auc", "log_loss", "brier"):
            scores.missing(name, "the model answers no probabilities")
        return
    index = {k: i for i, k in enumerate(keys)}
    proba = np.asarray([[float(p[k]) for k in keys] for p in probs])  # type: ignore[index]
    codes = np.asarray([index[v] for v in yk])

    def auc() -> float:
        if len(np.unique(codes)) < 2:
            raise ValueError("the labelled rows hold a single class")
        if binary:
            return float(skm.roc_auc_score(codes == 1, proba[:, 1]))
        aucs = [
            skm.roc_auc_score(codes == i, proba[:, i])
            for i in range(len(keys))
            if (codes == i).any() and not (codes == i).all()
        ]
        return float(np.mean(aucs))

    every = list(range(len(keys)))
    scores.put("roc_auc", auc)
    scores.put("log_loss", lambda: skm.log_loss(codes, proba, labels=every))
    if binary:
        scores.put("brier", lambda: skm.brier_score_loss(codes == 1, proba[:, 1]))
    else:
        scores.put("brier", lambda: skm.brier_score_loss(codes, proba, labels=every))


def gate_verdicts(
    gates: Mapping[str, Bounds], live: Mapping[str, float | None]
) -> list[dict[str, Any]]:
    """Each live-metric gate: the value, its bounds and whether it passed (None: no value yet)."""
    out = []
    for metric, bounds in gates.items():
        value = live.get(metric)
        low, high = bounds.min, bounds.max
        passed = (
            None
            if value is None
            else (low is None or value >= low) and (high is None or value <= high)
        )
        out.append({"metric": metric, "value": value, "min": low, "max": high, "passed": passed})
    return out


__all__ = ["ALL_METRICS", "LOWER_IS_BETTER", "METRICS", "gate_verdicts", "live_metrics"]
