"""Which explanation method a model gets, checked on test rows before it is kept.

The exact method of the model's last step comes first: the booster's own TreeSHAP for LightGBM
and XGBoost, ``shap.TreeExplainer`` for a scikit-learn tree ensemble, the coefficients for a
linear model. Before a Pipeline's last step can be explained, each transformed feature must
belong to one input column (:mod:`.sources`). The method is kept only when, on
:data:`CHECK_ROWS` test rows, the model's own output equals the base value plus the
contributions within :data:`TOLERANCE`; the units of that output (probability, log-odds,
margin, value) are the first that add up. Otherwise the whole model is explained over its input
columns by sampled Shapley values (``permutation``), and the reason says why the exact method
was passed over. Both validation (its report) and packaging (the Bento's ``/explain``) call
:func:`choose_explanation`: the same model and data give the same choice.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ModelError
from workbench.explanation.sources import Unmapped, feature_sources
from workbench.runtime.explainer import (
    BACKGROUND_ROWS,
    PERMUTATIONS,
    Explainer,
    ExplanationSpec,
    Method,
    Output,
    dense,
    split_model,
)
from workbench.schema import InputSchema

CHECK_ROWS = 20
"""Test rows the additivity of a method is checked on before it is kept."""
SAMPLE_ROWS = 2_000
"""Training rows (seeded sample) the feature means, the mapping and the background come from."""
TOLERANCE = 1e-4
"""The largest |output - base - sum of contributions| kept, relative to max(1, |output|):
float32 trees (XGBoost) add up to ~1e-6, float64 ones to ~1e-12."""
INSTALL_SHAP = "pip install 'deployment-workbench[explain]'"
EXACT = {
    "linear": "{name} is linear: a column's contribution is its coefficient times its distance "
    "from the training mean",
    "tree_shap": "TreeSHAP of the {name} tree ensemble (shap.TreeExplainer, path-dependent)",
    "lightgbm": "LightGBM's own TreeSHAP (pred_contrib=True)",
    "xgboost": "XGBoost's own TreeSHAP (pred_contribs=True)",
}


@dataclass(frozen=True)
class Chosen:
    """The method (checked) and, for ``permutation``, its background rows as served."""

    spec: ExplanationSpec
    background: pd.DataFrame | None = None

    def explainer(self, model: Any, schema: InputSchema, classes: list[Any] | None) -> Explainer:
        return Explainer(
            model, self.spec, columns=schema.names, classes=classes, background=self.background
        )


def exact_method(last: Any) -> Method | None:
    """The exact method for a last step of this kind, if there is one."""
    module = type(last).__module__
    if module.startswith("lightgbm"):
        return "lightgbm"
    if module.startswith("xgboost"):
        return "xgboost"
    if module.startswith(("sklearn.ensemble", "sklearn.tree")):
        return "tree_shap"
    if hasattr(last, "coef_") and hasattr(last, "intercept_"):
        return "linear"
    return None


def _outputs(method: Method, last: Any, classes: list[Any] | None) -> list[Output]:
    """The units to try, in order (the first that adds up is kept)."""
    if classes is None:
        return ["value", "raw score"] if method in ("lightgbm", "xgboost") else ["value"]
    margin: Output = "log-odds" if len(classes) == 2 else "margin"
    if method == "linear" and not hasattr(last, "predict_proba"):
        margin = "margin"  # a linear SVM's decision function is no log-odds
    return ["probability", margin] if method == "tree_shap" else [margin]


def _library(method: Method) -> str:
    """What computes the contributions, with its version (as its module reports it: the
    distribution may be named otherwise, e.g. xgboost-cpu)."""
    name = {"tree_shap": "shap", "lightgbm": "lightgbm", "xgboost": "xgboost"}.get(method)
    if name is not None:
        return f"{name} {getattr(importlib.import_module(name), '__version__', '?')}"
    if method == "linear":
        return f"scikit-learn {metadata.version('scikit-learn')} (coefficients)"
    return f"workbench (numpy {np.__version__})"


def additivity_error(explainer: Explainer, X: pd.DataFrame) -> float:
    """The largest |output - base - sum of contributions| on ``X``, relative to max(1, |output|)."""
    _, value, base, phi = explainer.explain(X)
    scale = np.maximum(1.0, np.abs(value))
    return float(np.max(np.abs(value - base - phi.sum(axis=1)) / scale))


def _kept(
    chosen: Chosen, model: Any, schema: InputSchema, check: pd.DataFrame, classes: list[Any] | None
) -> Chosen:
    """``chosen`` with its base values and measured additivity filled in."""
    explainer = chosen.explainer(model, schema, classes)
    error = additivity_error(explainer, check)
    # Rounded: settings.json is part of the content-derived Bento version, and the last bits of
    # a float sum need not repeat (threads in the BLAS), while these digits do.
    spec = chosen.spec.model_copy(
        update={
            "base_values": [float(f"{v:.12g}") for v in explainer.base_values(check)],
            "rows_checked": len(check),
            "additivity_error": float(f"{error:.1e}"),
        }
    )
    return replace(chosen, spec=spec)


def _exact(
    model: Any,
    schema: InputSchema,
    sample: pd.DataFrame,
    check: pd.DataFrame,
    classes: list[Any] | None,
) -> Chosen | str:
    """The exact method, checked, or why there is none."""
    pre, last = split_model(model)
    method = exact_method(last)
    name = type(last).__name__
    if method is None:
        return f"no exact method for {name} (not a tree ensemble, booster or linear model)"
    if method == "tree_shap" and importlib.util.find_spec("shap") is None:
        return f"exact TreeSHAP for {name} needs shap, which is not installed ({INSTALL_SHAP})"
    try:
        features = None if pre is None else feature_sources(pre, sample, schema)
    except Unmapped as exc:
        return f"the Pipeline's features cannot be summed back to input columns ({exc})"
    means = None
    if method == "linear":
        Xt = sample if pre is None else dense(pre.transform(sample))
        means = np.asarray(Xt, dtype=np.float64).mean(axis=0).tolist()
    mapped = (
        ""
        if pre is None
        else (
            f"; the Pipeline's {len(features or [])} transformed features are summed back to the "
            "input column each one moves with"
        )
    )
    failures = []
    for output in _outputs(method, last, classes):
        spec = ExplanationSpec(
            method=method,
            output=output,
            reason=f"exact: {EXACT[method].format(name=name)}{mapped}",
            library=_library(method),
            features=features,
            means=means,
        )
        try:
            chosen = _kept(Chosen(spec), model, schema, check, classes)
        except Exception as exc:  # noqa: BLE001 - any failure passes the method over, with why
            return f"{method} failed on {name} ({type(exc).__name__}: {str(exc)[:160]})"
        if chosen.spec.additivity_error <= TOLERANCE:
            return chosen
        failures.append(f"{output} off by {chosen.spec.additivity_error:.2g}")
    return f"{method} contributions of {name} do not add up ({'; '.join(failures)})"


def choose_explanation(
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    schema: InputSchema,
    *,
    classes: list[Any] | None,
    seed: int = 0,
) -> Chosen:
    """The explanation method for ``model`` (see the module docstring); :class:`ModelError`
    when not even the model-agnostic one applies (a classifier without ``predict_proba``)."""
    frame = train[schema.names]
    sample = schema.as_served(frame.sample(min(len(frame), SAMPLE_ROWS), random_state=seed))
    check = schema.as_served(test[schema.names].head(CHECK_ROWS))
    exact = _exact(model, schema, sample, check, classes)
    if isinstance(exact, Chosen):
        return exact
    if classes is not None and not hasattr(model, "predict_proba"):
        raise ModelError(
            f"the model cannot be explained: {exact}, and the model-agnostic method needs "
            "predict_proba; turn explanations off (service.explain: false, validation."
            "explain_rows: 0)"
        )
    background = sample.sample(min(len(sample), BACKGROUND_ROWS), random_state=seed)
    spec = ExplanationSpec(
        method="permutation",
        output="probability" if classes is not None else "value",
        reason=f"model-agnostic over the input columns: {exact}",
        library=_library("permutation"),
        permutations=PERMUTATIONS,
        background_rows=len(background),
    )
    return _kept(Chosen(spec, background.reset_index(drop=True)), model, schema, check, classes)


__all__ = ["CHECK_ROWS", "TOLERANCE", "Chosen", "additivity_error", "choose_explanation"]
