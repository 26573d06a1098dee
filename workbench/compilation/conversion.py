"""Convert a scikit-learn model to an ONNX graph with skl2onnx, with the inputs the served Bento
feeds it.

Precision: numbers go in as float64 first (:data:`PRECISIONS`). That is what scikit-learn computes
in, so linear models and scalers agree to ~1e-16, and for trees skl2onnx moves each threshold so
that ``x <= t`` in float64 decides as scikit-learn's ``float32(x) <= t`` does, and onnxruntime sums
the trees in float64 (the probabilities come out as float32, ~5e-8 off). In float32, 100 trees sum
to within ~6e-7 of scikit-learn (too close to 1e-6 to count on) and a linear regression on targets
in the hundreds is off by ~5e-5. But onnxruntime lacks float64 kernels for some operators skl2onnx
emits (``Imputer``, most tree ensembles), and skl2onnx mixes float32 into float64 graphs after a
OneHotEncoder; so when float64 does not load or does not match, float32 is tried. (In float32, a
scaler before trees can move values across split thresholds: such pipelines then differ and fall
back.)

Input types follow the test frame's dtypes: floats as float64/float32, integers as int64, booleans
as int64 0/1 (skl2onnx's Scaler and OneHotEncoder refuse boolean tensors; scikit-learn computes on
them as numbers), text categories as strings. A model with a ColumnTransformer (which selects
columns by name) gets one input per column; any other model one ``[rows, columns]`` tensor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench.compilation.converters import register_converters
from workbench.runtime.onnx_model import COLUMNS_KEY

Precision = Literal["double", "float"]
PRECISIONS: tuple[Precision, ...] = ("double", "float")
"""Number precisions tried, in order; the first whose graph matches scikit-learn is kept."""
#: ai.onnx.ml 3 is the first with float64 tree thresholds; opset 21 runs on onnxruntime >= 1.18
#: (skl2onnx 1.20 is tested up to 22). skl2onnx writes the lowest opsets the graph needs.
TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}

ColumnKind = Literal["number", "integer", "boolean", "text"]


def column_kind(name: str, series: pd.Series) -> ColumnKind:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "number"
    values = series.cat.categories if isinstance(dtype, pd.CategoricalDtype) else series
    held = pd.api.types.infer_dtype(values, skipna=True)
    if held in ("string", "empty"):
        return "text"
    raise ValueError(
        f"column {name!r} ({dtype} holding {held} values) has no ONNX input type: only float, "
        "integer and bool dtypes and text categories have one"
    )


def _selects_columns(model: Any) -> bool:
    """Whether a ColumnTransformer (which selects columns by name) is part of ``model``."""
    from sklearn.compose import ColumnTransformer

    parts = [model]
    if hasattr(model, "get_params"):
        parts.extend(model.get_params(deep=True).values())
    return any(isinstance(part, ColumnTransformer) for part in parts)


def input_types(model: Any, X: pd.DataFrame, precision: Precision) -> list[tuple[str, Any]]:
    """skl2onnx initial types for ``model`` fed frames like ``X`` (see the module docstring).

    Raises ValueError naming a column that has no ONNX type (object values that are not text,
    dates, ...).
    """
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    number = DoubleTensorType if precision == "double" else FloatTensorType
    kinds = [column_kind(str(name), X[name]) for name in X.columns]
    if not _selects_columns(model):
        if all(kind == "text" for kind in kinds):
            return [("X", StringTensorType([None, len(kinds)]))]
        if "text" not in kinds:
            return [("X", number([None, len(kinds)]))]
    types = {"number": number, "integer": Int64TensorType, "boolean": Int64TensorType}
    return [
        (str(name), (types.get(kind) or StringTensorType)([None, 1]))
        for name, kind in zip(X.columns, kinds, strict=True)
    ]


def _final_estimator(model: Any) -> Any:
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def to_onnx_bytes(model: Any, X: pd.DataFrame, *, task: str, precision: Precision) -> bytes:
    """``model`` converted by skl2onnx for frames like ``X``: the bytes of ``model.onnx``.

    Classifiers give a label and a probability (or, without ``predict_proba``, a score) tensor,
    not skl2onnx's default list of dictionaries (ZipMap). The graph is named after the
    model's class (skl2onnx names it with a random UUID) and its opsets are sorted, so that the
    same model gives the same bytes in every process; it records the column names
    (:data:`~workbench.runtime.onnx_model.COLUMNS_KEY`).
    Raises whatever skl2onnx raises.
    """
    import onnx
    from skl2onnx import convert_sklearn

    register_converters()  # LightGBM and XGBoost, when the model holds them
    final = _final_estimator(model)
    probabilities = task == "classification" and hasattr(final, "predict_proba")
    options = {id(final): {"zipmap": False}} if probabilities else None
    proto = convert_sklearn(
        model,
        initial_types=input_types(model, X, precision),
        options=options,
        target_opset=TARGET_OPSET,
    )
    proto.graph.name = type(model).__name__
    # skl2onnx lists the opsets in the order of a set of domain names, which Python's per-process
    # string hashing shuffles: sorted, the same model gives the same bytes in every process (and
    # the same Bento version).
    opsets = sorted((o.domain, o.version) for o in proto.opset_import)
    del proto.opset_import[:]
    proto.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    onnx.helper.set_model_props(proto, {COLUMNS_KEY: json.dumps([str(c) for c in X.columns])})
    return bytes(proto.SerializeToString())


def _fitted_trees(obj: Any, seen: set[int]) -> Iterator[Any]:
    """Every fitted scikit-learn tree (an estimator's ``tree_``) inside ``obj``: pipeline steps,
    column transformers, ensembles (lists or arrays of trees) and meta-estimators."""
    from sklearn.base import BaseEstimator

    if id(obj) in seen:
        return
    seen.add(id(obj))
    children: list[Any]
    if isinstance(obj, BaseEstimator):
        tree = getattr(obj, "tree_", None)
        if hasattr(tree, "threshold") and hasattr(tree, "children_left"):
            yield tree
        children = list(getattr(obj, "__dict__", {}).values())
    elif isinstance(obj, list | tuple):
        children = list(obj)
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        children = obj.ravel().tolist()
    else:
        return
    for child in children:
        yield from _fitted_trees(child, seen)


def infinite_thresholds(model: Any) -> int:
    """Splits with an infinite threshold in ``model``'s trees (those fitted on missing values
    have them: "missing or not")."""
    return sum(
        int(np.isinf(tree.threshold[tree.children_left != -1]).sum())
        for tree in _fitted_trees(model, set())
    )
