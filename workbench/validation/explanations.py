"""The validate stage's explanations: each input column's contribution on a seeded sample of
test rows, by the method ``POST /explain`` would use
(:func:`workbench.explanation.choose_explanation`), summarised as the mean |contribution| per
column."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from workbench.explanation import choose_explanation
from workbench.results import (
    ColumnImportance,
    Contribution,
    ExplanationResult,
    RowExplanation,
)
from workbench.runtime.explainer import OTHERS
from workbench.schema import InputSchema

#: Contributions kept per explained row (the others are summed as ``(others)``).
KEPT = 12


def explain_test_rows(
    model: Any,
    X_train: pd.DataFrame,
    X_test: pd.DataFrame,
    schema: InputSchema,
    *,
    classes: list[Any] | None,
    rows: int,
    seed: int,
) -> ExplanationResult:
    """Explain up to ``rows`` test rows (a seeded sample, in test order); a model that cannot be
    explained is a result with ``error`` set, not a failed validation."""
    started = time.perf_counter()
    try:
        chosen = choose_explanation(model, X_train, X_test, schema, classes=classes, seed=seed)
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(len(X_test), size=min(rows, len(X_test)), replace=False))
        served = schema.as_served(X_test.iloc[picked])
        explainer = chosen.explainer(model, schema, classes)
        labels, value, base, phi = explainer.explain(served)
    except Exception as exc:  # noqa: BLE001 - reported in the result, like importance
        return ExplanationResult(
            method="none",
            output="",
            exact=False,
            reason="",
            library="",
            error=f"{type(exc).__name__}: {str(exc)[:300]}",
        )
    spec = chosen.spec
    scale = np.maximum(1.0, np.abs(value))
    mean_abs = np.abs(phi).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    return ExplanationResult(
        method=spec.method,
        output=spec.output,
        exact=spec.sample_size is None,
        reason=spec.reason,
        library=spec.library,
        sample_size=spec.sample_size,
        base_values=spec.base_values,
        rows=len(picked),
        additivity_error=float(np.max(np.abs(value - base - phi.sum(axis=1)) / scale)),
        seconds=round(time.perf_counter() - started, 3),
        summary=[
            ColumnImportance(column=schema.names[j], mean_abs=float(mean_abs[j])) for j in order
        ],
        examples=[
            RowExplanation(
                row=int(position),
                prediction=labels[i],
                output=explainer.output_name(labels[i]),
                value=float(value[i]),
                base_value=float(base[i]),
                contributions=_largest(phi[i], schema.names),
            )
            for i, position in enumerate(picked.tolist())
        ],
    )


def _largest(phi: np.ndarray, names: list[str]) -> list[Contribution]:
    order = np.argsort(-np.abs(phi), kind="stable")
    kept = [Contribution(column=names[j], contribution=float(phi[j])) for j in order[:KEPT]]
    if len(order) > KEPT:
        kept.append(Contribution(column=OTHERS, contribution=float(phi[order[KEPT:]].sum())))
    return kept


__all__ = ["explain_test_rows"]
