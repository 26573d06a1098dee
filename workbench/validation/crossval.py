"""k-fold cross-validation of a clone of the model on the training data.

Bounded on big data: above ``max_rows`` training rows, the folds are cut from a seeded sample of
that many rows (the result says so), so the cost is ``folds`` fits on at most ``max_rows`` rows
whatever the size of the training file. A fold that fails is reported in the result, not raised:
the holdout metrics still stand and only the ``cv_`` gates fail.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

from workbench.data import sample_index
from workbench.results import CVResult
from workbench.validation.metrics import Metrics, metric_values, model_outputs

FoldProgress = Callable[[int, int], None]
"""Called with (folds done, folds in all) before each fold and once at the end."""
MAX_WARNINGS = 3


def _summary(per_fold: list[Metrics]) -> tuple[Metrics, Metrics]:
    mean: Metrics = {}
    std: Metrics = {}
    for metric in per_fold[0] if per_fold else []:
        values = [v for f in per_fold if (v := f.get(metric)) is not None]
        mean[metric] = float(np.mean(values)) if values else None
        std[metric] = float(np.std(values)) if values else None
    return mean, std


def _splitter(task: str, y: np.ndarray, folds: int, seed: int) -> KFold | StratifiedKFold:
    if task == "classification":
        smallest = int(pd.Series(y).value_counts().min())
        if smallest >= folds:
            return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return KFold(n_splits=folds, shuffle=True, random_state=seed)


def cross_validate(
    model: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    *,
    folds: int,
    seed: int,
    max_rows: int,
    on_fold: FoldProgress = lambda _done, _total: None,
) -> CVResult:
    """Fit a clone of ``model`` on k-1 folds and measure it on the k-th, k times.

    Classification folds are stratified when every class has at least ``folds`` rows (plain
    shuffled folds otherwise). The metrics are the holdout metrics; their mean and standard
    deviation over the folds are in the result.
    """
    started = time.perf_counter()
    sampled = len(X) > max_rows
    if sampled:
        keep = sample_index(len(X), max_rows, seed=seed)
        X, y = X.iloc[keep], y[keep]
    splitter = _splitter(task, y, folds, seed)
    base = CVResult(
        folds=folds, splitter=type(splitter).__name__, seed=seed, rows=len(X), sampled=sampled
    )
    if len(X) < 2 * folds:
        return base.model_copy(
            update={
                "error": f"{len(X)} training rows are too few for {folds} folds; lower "
                "validation.cv_folds or set it to 0"
            }
        )
    per_fold: list[Metrics] = []
    try:
        seen = _fit_folds(model, X, y, task, splitter, per_fold, on_fold)
    except Exception as exc:
        return base.model_copy(
            update={
                "error": f"fold {len(per_fold) + 1} failed ({type(exc).__name__}: "
                f"{str(exc)[:300]})",
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    on_fold(folds, folds)
    mean, std = _summary(per_fold)
    return base.model_copy(
        update={
            "per_fold": per_fold,
            "mean": mean,
            "std": std,
            "seconds": round(time.perf_counter() - started, 3),
            "warnings": seen[:MAX_WARNINGS],
        }
    )


def _fit_folds(
    model: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    splitter: KFold | StratifiedKFold,
    per_fold: list[Metrics],
    on_fold: FoldProgress,
) -> list[str]:
    """Append each fold's metrics to ``per_fold``; returns the distinct warnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fold, (fit_rows, test_rows) in enumerate(splitter.split(X, y), start=1):
            on_fold(fold - 1, splitter.get_n_splits())
            fitted = clone(model).fit(X.iloc[fit_rows], y[fit_rows])
            out = model_outputs(fitted, X.iloc[test_rows], task, what=f"the fold {fold} model")
            values, _ = metric_values(task, y[test_rows], out)
            per_fold.append(values)
    seen: list[str] = []
    for item in caught:
        text = f"{item.category.__name__}: {str(item.message).splitlines()[0][:200]}"
        if text not in seen:
            seen.append(text)
    return seen
