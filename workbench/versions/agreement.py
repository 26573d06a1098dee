"""How two versions' answers to the same replayed rows compare (see :mod:`.shadow`).

Agreement and a confusion table of their labels (or the distribution of their differences for
a regressor), the shift of the prediction distribution, the latency of each, metrics and their
deltas when the replay file holds the labels, and the first rows where they disagree.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon  # type: ignore[import-untyped]
from scipy.stats import ks_2samp  # type: ignore[import-untyped]

from workbench.config import Config
from workbench.results import LatencySummary
from workbench.runtime.stattests import STATTESTS
from workbench.serving.replay import Answers, Replay
from workbench.validation.metrics import Outputs, align_labels, metric_values
from workbench.versions.catalog import StoredVersion

ROLES = ("champion", "challenger")
DISAGREEMENTS_KEPT = 20
HISTOGRAM_BINS = 20

Answered = dict[str, list[dict[str, Any] | None]]
"""Each role's answers, row by row (None: not answered)."""


def _latency(got: Answers) -> LatencySummary:
    values = np.asarray(got.latency_ms, dtype=float)
    if not len(values):
        return LatencySummary(
            requests=0, errors=got.errors, p50_ms=None, p95_ms=None, p99_ms=None, mean_ms=None
        )
    p50, p95, p99 = (round(float(v), 3) for v in np.percentile(values, [50, 95, 99]))
    return LatencySummary(
        requests=len(values),
        errors=got.errors,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=round(float(values.mean()), 3),
    )


def _classification(
    result: dict[str, Any], answered: list[int], predictions: dict[str, list[Any]]
) -> None:
    champ = [str(predictions["champion"][i]) for i in answered]
    chall = [str(predictions["challenger"][i]) for i in answered]
    labels = sorted(set(champ) | set(chall))
    position = {label: i for i, label in enumerate(labels)}
    table = [[0] * len(labels) for _ in labels]
    for a, b in zip(champ, chall, strict=True):
        table[position[a]][position[b]] += 1
    shares = {}
    for role, values in (("champion", champ), ("challenger", chall)):
        counts = Counter(values)
        shares[role] = {label: counts[label] / len(values) for label in labels}
    p = np.array([shares["champion"][label] for label in labels])
    q = np.array([shares["challenger"][label] for label in labels])
    result.update(
        agreement=float(np.mean([a == b for a, b in zip(champ, chall, strict=True)])),
        labels=labels,
        confusion=table,
        shares=shares,
        shift=float(jensenshannon(p, q, base=2)) if len(labels) > 1 else 0.0,
        shift_test=f"{STATTESTS['jensenshannon'].display_name} of the label shares (base 2)",
    )


def _regression(
    result: dict[str, Any],
    answered: list[int],
    predictions: dict[str, list[Any]],
    tolerance: float,
) -> None:
    champ = np.array([float(predictions["champion"][i]) for i in answered])
    chall = np.array([float(predictions["challenger"][i]) for i in answered])
    diff = chall - champ
    quantiles = np.percentile(diff, [5, 25, 50, 75, 95])
    counts, edges = np.histogram(diff, bins=HISTOGRAM_BINS)
    result.update(
        agreement=float(np.mean(np.abs(diff) <= tolerance)),
        tolerance=tolerance,
        difference={
            "mean": float(diff.mean()),
            "std": float(diff.std()),
            "min": float(diff.min()),
            **{f"p{q}": float(v) for q, v in zip((5, 25, 50, 75, 95), quantiles, strict=True)},
            "max": float(diff.max()),
            "mean_abs": float(np.abs(diff).mean()),
        },
        difference_histogram={
            "edges": [float(e) for e in edges],
            "counts": [float(c) for c in counts],
        },
        shift=float(ks_2samp(champ, chall).statistic),
        shift_test=f"{STATTESTS['ks'].display_name} statistic of the predictions",
    )


def _metrics(
    version: StoredVersion, answers: list[dict[str, Any] | None], answered: list[int], y: pd.Series
) -> dict[str, float | None]:
    task = version.task
    rows = [answers[i] or {} for i in answered]
    if task == "regression":
        outputs = Outputs(predicted=np.array([float(r["prediction"]) for r in rows]))
        values, _ = metric_values(task, y.to_numpy(dtype=float), outputs)
        return values
    classes = np.asarray(version.card.classes or [])
    labels, unseen = align_labels(y.reset_index(drop=True), classes)
    if unseen:
        return {}
    predicted = np.asarray([r["prediction"] for r in rows], dtype=classes.dtype)
    proba = None
    if all(isinstance(r.get("probabilities"), dict) for r in rows):
        proba = np.array([[r["probabilities"][str(c)] for c in classes] for r in rows])
    values, _ = metric_values(task, labels, Outputs(predicted, classes=classes, proba=proba))
    return values


def _differ(a: Any, b: Any, *, task: str, tolerance: float) -> bool:
    if task == "classification":
        return str(a) != str(b)
    return abs(float(a) - float(b)) > tolerance


def _label_metrics(
    result: dict[str, Any],
    versions: list[StoredVersion],
    answers: dict[str, list[dict[str, Any] | None]],
    answered: list[int],
    labels: pd.Series,
    config: Config,
) -> None:
    """Both versions' metrics on the replayed rows, from what they answered, and the deltas."""
    y = labels.iloc[answered]
    metrics = {
        role: _metrics(v, answers[role], answered, y)
        for role, v in zip(ROLES, versions, strict=True)
    }
    if not all(metrics.values()):
        return
    deltas: dict[str, float | None] = {}
    for name, mine in metrics["challenger"].items():
        theirs = metrics["champion"].get(name)
        deltas[name] = None if mine is None or theirs is None else mine - theirs
    primary = config.validation.primary_metric
    if primary is None:
        primary = "r2" if versions[0].task == "regression" else "roc_auc"
        if deltas.get(primary) is None and primary == "roc_auc":
            primary = "balanced_accuracy"  # a classifier without scores
    result.update(metrics=metrics, metric_deltas=deltas, primary_metric=primary)


def compare_answers(
    versions: list[StoredVersion],
    done: Replay,
    answers: Answered,
    answered: list[int],
    labels: pd.Series | None,
    config: Config,
) -> dict[str, Any]:
    """Latency of each, agreement and shift of the answers, and metrics when there are labels."""
    predictions = _predictions(answers)
    result: dict[str, Any] = {"latency": {role: _latency(done.answers[role]) for role in ROLES}}
    if versions[0].task == "classification":
        _classification(result, answered, predictions)
    else:
        _regression(result, answered, predictions, config.shadow.tolerance)
    if labels is not None:
        _label_metrics(result, versions, answers, answered, labels, config)
    return result


def _predictions(answers: Answered) -> dict[str, list[Any]]:
    return {role: [(a or {}).get("prediction") for a in answers[role]] for role in ROLES}


def disagreements(
    answers: Answered, answered: list[int], task: str, tolerance: float
) -> list[dict[str, Any]]:
    """The first rows where the two answered differently."""
    predictions = _predictions(answers)
    champ, chall = predictions["champion"], predictions["challenger"]
    return [
        {"row": i, "champion": champ[i], "challenger": chall[i]}
        for i in answered
        if _differ(champ[i], chall[i], task=task, tolerance=tolerance)
    ][:DISAGREEMENTS_KEPT]
