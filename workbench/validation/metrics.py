"""Metrics of a fitted model on labelled rows: its outputs, metric values, confusion matrix, curves.

Everything here is linear (or ``n log n`` for the ranking metrics) in the rows and keeps at most
one extra copy of the outputs; curves are thinned to a few hundred points before they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from workbench.config import LOWER_IS_BETTER, METRICS, NEEDS_PROBA
from workbench.data import sample_index
from workbench.errors import ConfigError, ModelError
from workbench.results import Curve

Metrics = dict[str, float | None]
CURVE_POINTS = 200
CURVE_CLASSES = 10


@dataclass(frozen=True)
class Outputs:
    """What a model says about some rows: predictions and, where it has them, scores."""

    predicted: np.ndarray
    classes: np.ndarray | None = None
    proba: np.ndarray | None = None
    """``predict_proba``: one column per class, in ``classes`` order."""
    decision: np.ndarray | None = None
    """``decision_function`` (only kept when there is no ``predict_proba``)."""

    @property
    def ranking(self) -> np.ndarray | None:
        """Per-class scores, one column per class (two columns for a binary model)."""
        if self.proba is not None:
            return self.proba
        if self.decision is None:
            return None
        if self.decision.ndim == 1:
            return np.column_stack([-self.decision, self.decision])
        return self.decision


def model_outputs(
    model: Any, X: pd.DataFrame, task: str, *, what: str = "the model", scores: bool = True
) -> Outputs:
    """Call ``predict`` and, for a classifier, ``predict_proba`` or else ``decision_function``
    (unless ``scores`` is false)."""
    name = type(model).__name__

    def call(method: str) -> np.ndarray:
        try:
            return np.asarray(getattr(model, method)(X))
        except Exception as exc:
            raise ModelError(
                f"{what} ({name}) failed in {method}() on {len(X)} rows "
                f"({type(exc).__name__}: {exc}); check the data matches what it was fitted on"
            ) from exc

    predicted = call("predict")
    if task == "regression":
        return Outputs(predicted=predicted.astype(float, copy=False))
    classes = np.asarray(model.classes_)
    if not scores:
        return Outputs(predicted=predicted, classes=classes)
    if hasattr(model, "predict_proba"):
        return Outputs(predicted=predicted, classes=classes, proba=call("predict_proba"))
    if hasattr(model, "decision_function"):
        return Outputs(predicted=predicted, classes=classes, decision=call("decision_function"))
    return Outputs(predicted=predicted, classes=classes)


def capabilities(model: Any, task: str) -> tuple[bool, bool]:
    """(has ``predict_proba``, has probabilities or decision scores) for a classifier."""
    if task == "regression":
        return False, False
    proba = hasattr(model, "predict_proba")
    return proba, proba or hasattr(model, "decision_function")


def primary_metric(task: str, configured: str | None, *, proba: bool, scores: bool) -> str:
    """The metric baseline and champion comparisons use (``validation.primary_metric``)."""
    if configured is None:
        if task == "regression":
            return "r2"
        return "roc_auc" if scores else "balanced_accuracy"
    check_metric_fits(
        configured, task, proba=proba, scores=scores, label="validation.primary_metric"
    )
    return configured


def check_metric_fits(metric: str, task: str, *, proba: bool, scores: bool, label: str) -> None:
    """Raise :class:`ConfigError` when ``metric`` cannot be computed for this kind of model.

    ``label`` names what asked for it, e.g. ``gate `cv_rmse``` or ``validation.primary_metric``.
    """
    what = label if f"`{metric}`" in label else f"{label} (`{metric}`)"
    if metric not in METRICS[task]:
        raise ConfigError(
            f"{what} does not fit task {task!r}; {task} metrics are: "
            f"{', '.join(METRICS[task])}. Change it in workbench.yaml"
        )
    if metric in NEEDS_PROBA and not proba:
        raise ConfigError(
            f"{what} needs predicted probabilities, but the model has no predict_proba(); "
            "remove it from workbench.yaml or use a probabilistic classifier"
        )
    if metric == "roc_auc" and not scores:
        raise ConfigError(
            f"{what} needs scores, but the model has neither predict_proba() nor "
            "decision_function(); use accuracy or balanced_accuracy instead"
        )


def align_labels(y: pd.Series, classes: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``y`` as values of ``classes`` (matched as they are, else as text: ``1`` == ``"1"``), and
    the labels that match no class. Hash-based: linear in the rows."""
    codes = pd.Categorical(y, categories=pd.unique(pd.Series(classes))).codes
    if (codes < 0).any():
        as_text = pd.Series([str(c) for c in classes])
        if not as_text.duplicated().any():
            codes = pd.Categorical(y.astype(str), categories=as_text).codes
    unseen = sorted({str(v) for v in y[codes < 0].unique()})
    return classes[np.maximum(codes, 0)], unseen


def advantage(metric: str, value: float | None, reference: float | None) -> float | None:
    """How much better ``value`` is than ``reference`` (positive: better, whatever the metric)."""
    if value is None or reference is None:
        return None
    diff = value - reference
    return -diff if metric in LOWER_IS_BETTER else diff


def _ovr_auc(y: np.ndarray, classes: np.ndarray, ranking: np.ndarray) -> float:
    """Macro one-vs-rest ROC-AUC over the classes present in ``y`` (any kind of score)."""
    aucs = []
    for i, label in enumerate(classes):
        positive = y == label
        if positive.any() and not positive.all():
            aucs.append(skm.roc_auc_score(positive, ranking[:, i]))
    return float(np.mean(aucs))


def _balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (sklearn's, without its warnings)."""
    recalls = [float(np.mean(predicted[y == label] == label)) for label in np.unique(y)]
    return float(np.mean(recalls))


def _classification(metric: str, y: np.ndarray, out: Outputs) -> float | str:
    """One classification metric, or why it cannot be computed."""
    assert out.classes is not None
    classes = out.classes
    binary = len(classes) == 2
    average: dict[str, Any] = (
        {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro"}
    )
    if metric == "accuracy":
        return float(np.mean(out.predicted == y))
    if metric == "balanced_accuracy":
        return _balanced_accuracy(y, out.predicted)
    if metric in ("precision", "recall", "f1"):
        score = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}
        return float(score[metric](y, out.predicted, zero_division=0, **average))
    if metric == "roc_auc":
        ranking = out.ranking
        if ranking is None:
            return "the model has neither predict_proba() nor decision_function()"
        if len(np.unique(y)) < 2:
            return "the rows hold a single class"
        if binary:
            return float(skm.roc_auc_score(y == classes[1], ranking[:, 1]))
        return _ovr_auc(y, classes, ranking)
    proba = out.proba
    if proba is None:
        return "the model has no predict_proba()"
    if not np.isin(y, classes).all():
        return "the rows hold classes the model does not know"
    if metric == "log_loss":
        return float(skm.log_loss(y, proba, labels=classes.tolist()))
    if binary:
        return float(skm.brier_score_loss(y == classes[1], proba[:, 1]))
    return float(skm.brier_score_loss(y, proba, labels=classes.tolist()))


def _regression(metric: str, y: np.ndarray, out: Outputs) -> float | str:
    """One regression metric, or why it cannot be computed."""
    predicted = out.predicted
    if metric == "mae":
        return float(skm.mean_absolute_error(y, predicted))
    if metric == "rmse":
        return float(skm.root_mean_squared_error(y, predicted))
    if metric == "median_ae":
        return float(skm.median_absolute_error(y, predicted))
    if len(y) < 2:
        return "R² needs at least two rows"
    return float(skm.r2_score(y, predicted))


def metric_value(task: str, metric: str, y: np.ndarray, out: Outputs) -> float | str:
    """One metric of ``task`` on these rows, or (as text) why it cannot be computed."""
    compute = _regression if task == "regression" else _classification
    try:
        return compute(metric, y, out)
    except ValueError as exc:
        return str(exc).splitlines()[0]


def metric_values(task: str, y: np.ndarray, out: Outputs) -> tuple[Metrics, dict[str, str]]:
    """Every metric of the task (``None`` where it cannot be computed), and the reasons."""
    values: Metrics = {}
    missing: dict[str, str] = {}
    for metric in METRICS[task]:
        value = metric_value(task, metric, y, out)
        if isinstance(value, str):
            values[metric], missing[metric] = None, value
        else:
            values[metric] = value
    return values, missing


def confusion(y: np.ndarray, out: Outputs) -> list[list[int]]:
    """Confusion matrix: row = true class, column = predicted class, in the model's class order."""
    assert out.classes is not None
    matrix: list[list[int]] = skm.confusion_matrix(y, out.predicted, labels=out.classes).tolist()
    return matrix


def _thin(x: np.ndarray, y: np.ndarray, points: int) -> tuple[list[float], list[float]]:
    if len(x) > points:
        keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
        x, y = x[keep], y[keep]
    return [round(float(v), 5) for v in x], [round(float(v), 5) for v in y]


def curves(
    y: np.ndarray, out: Outputs, *, points: int = CURVE_POINTS, max_classes: int = CURVE_CLASSES
) -> tuple[list[Curve], list[Curve]]:
    """ROC and precision-recall curves: the positive class if binary, else one-vs-rest per class."""
    ranking = out.ranking
    if ranking is None or out.classes is None or len(np.unique(y)) < 2:
        return [], []
    classes = out.classes
    shown = [1] if len(classes) == 2 else list(range(min(len(classes), max_classes)))
    roc, pr = [], []
    for i in shown:
        positive = y == classes[i]
        if not positive.any() or positive.all():
            continue
        score = ranking[:, i]
        fpr, tpr, _ = skm.roc_curve(positive, score)
        x, v = _thin(fpr, tpr, points)
        roc.append(Curve(label=str(classes[i]), x=x, y=v, area=skm.auc(fpr, tpr)))
        precision, recall, _ = skm.precision_recall_curve(positive, score)
        x, v = _thin(recall, precision, points)
        area = skm.average_precision_score(positive, score)
        pr.append(Curve(label=str(classes[i]), x=x, y=v, area=float(area)))
    return roc, pr


def prediction_sample(
    y: np.ndarray, out: Outputs, *, rows: int = 500, seed: int = 0
) -> tuple[list[float], list[float]]:
    """A seeded sample of (actual, predicted) pairs for the regression plots."""
    index = sample_index(len(y), rows, seed=seed)
    return (
        [round(float(v), 6) for v in y[index]],
        [round(float(v), 6) for v in out.predicted[index]],
    )
