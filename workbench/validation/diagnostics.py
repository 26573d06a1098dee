"""What else a reviewer asks of a model: which inputs matter, does it survive a save and reload,
how fast does it answer. Each works on a bounded, seeded sample of the test data, so its cost does
not grow with the size of the test set.
"""

from __future__ import annotations

import io
import time
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from workbench.config import LOWER_IS_BETTER, NEEDS_PROBA
from workbench.data import sample_index
from workbench.results import (
    FeatureImportance,
    ImportanceResult,
    LatencyResult,
    RoundTripResult,
)
from workbench.validation.metrics import metric_value, model_outputs

ROUNDTRIP_ROWS = 1_000
LATENCY_CALLS = 30
BATCH_ROWS = 1_000
BATCH_REPEATS = 3


def importance(  # noqa: PLR0913 - a model, its labelled rows, a metric; then sampling options
    model: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    metric: str,
    *,
    top: int,
    repeats: int,
    max_rows: int,
    seed: int,
) -> ImportanceResult:
    """Permutation importance of each input column: the drop in ``metric`` when it is shuffled.

    Positive means the model relies on the column; error metrics are sign-flipped so that holds
    for them too. Uses at most ``max_rows`` test rows; the top ``top`` columns are kept.
    """
    keep = sample_index(len(X), max_rows, seed=seed)
    Xs, ys = X.iloc[keep], y[keep]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    ranked = metric in ("roc_auc", *NEEDS_PROBA)

    def score(estimator: Any, X_part: pd.DataFrame, y_part: np.ndarray) -> float:
        out = model_outputs(estimator, X_part, task, scores=ranked)
        value = metric_value(task, metric, y_part, out)
        return float("nan") if isinstance(value, str) else sign * value

    try:
        found = permutation_importance(
            model, Xs, ys, scoring=score, n_repeats=repeats, random_state=seed
        )
    except Exception as exc:
        return ImportanceResult(
            metric=metric,
            rows=len(Xs),
            repeats=repeats,
            features=[],
            error=f"{type(exc).__name__}: {str(exc)[:300]}",
        )
    means = np.nan_to_num(found.importances_mean)
    order = np.argsort(-means, kind="stable")[:top]
    features = [
        FeatureImportance(
            feature=str(X.columns[i]),
            mean=round(float(means[i]), 6),
            std=round(float(np.nan_to_num(found.importances_std[i])), 6),
        )
        for i in order
    ]
    return ImportanceResult(metric=metric, rows=len(Xs), repeats=repeats, features=features)


def round_trip(model: Any, X: pd.DataFrame, task: str, *, seed: int) -> RoundTripResult:
    """Save the model with joblib (as BentoML does), load it back, compare predictions exactly."""
    Xs = X.iloc[sample_index(len(X), ROUNDTRIP_ROWS, seed=seed)]
    try:
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        size = buffer.tell()
        buffer.seek(0)
        again = joblib.load(buffer)
    except Exception as exc:
        return RoundTripResult(
            passed=False,
            rows=0,
            error=f"the model could not be saved and loaded with joblib "
            f"({type(exc).__name__}: {str(exc)[:300]})",
        )
    before = model_outputs(model, Xs, task)
    after = model_outputs(again, Xs, task, what="the reloaded model")
    same = before.predicted == after.predicted
    if before.predicted.dtype.kind == "f":
        same |= np.isnan(before.predicted) & np.isnan(after.predicted)
    mismatches = int(np.size(same) - np.count_nonzero(same))
    diff = None
    if before.proba is not None and after.proba is not None:
        diff = float(np.max(np.abs(before.proba - after.proba), initial=0.0))
    return RoundTripResult(
        passed=mismatches == 0,
        rows=len(Xs),
        bytes=size,
        mismatches=mismatches,
        max_proba_diff=diff,
    )


def _timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000.0


def latency(model: Any, X: pd.DataFrame, *, seed: int) -> LatencyResult:
    """``predict`` time for one row (median and p95 of :data:`LATENCY_CALLS` calls) and for a
    batch of :data:`BATCH_ROWS` rows (median of :data:`BATCH_REPEATS`), in this process."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(X), size=LATENCY_CALLS)
    model.predict(X.iloc[[int(picks[0])]])  # warm-up: first-call costs are not latency
    single = [_timed(lambda i=int(i): model.predict(X.iloc[[i]])) for i in picks]
    batch = X.iloc[rng.integers(0, len(X), size=BATCH_ROWS)]
    batch_ms = [_timed(lambda: model.predict(batch)) for _ in range(BATCH_REPEATS)]
    return LatencyResult(
        single_row_p50_ms=round(float(np.percentile(single, 50)), 4),
        single_row_p95_ms=round(float(np.percentile(single, 95)), 4),
        single_row_calls=LATENCY_CALLS,
        batch_rows=BATCH_ROWS,
        batch_ms=round(float(np.median(batch_ms)), 4),
    )
