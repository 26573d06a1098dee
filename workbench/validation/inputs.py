"""The validate stage's inputs: the model, its task and the labelled rows, checked up front.

Any problem (a model that is not a fitted estimator, a target that is missing or empty, columns
that differ from what the model was fitted on, date or time columns, classes it never saw, gates
that do not fit) is one error before anything is measured or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor

from workbench.artifacts import load_model, sha256_file
from workbench.config import Config
from workbench.data import load_frame, release_arrow_memory, split_features
from workbench.errors import ConfigError, DataError, ModelError
from workbench.schema import check_columns, check_supported
from workbench.validation.gates import check_gate_names, check_monitor_gates
from workbench.validation.metrics import align_labels, capabilities, primary_metric


def infer_task(model: Any, configured: str | None) -> str:
    """The configured task, else the one the estimator declares."""
    if configured:
        return configured
    if is_classifier(model):
        return "classification"
    if is_regressor(model):
        return "regression"
    raise ConfigError(
        f"cannot infer the task of {type(model).__name__}; set `task: classification` or "
        "`task: regression` in workbench.yaml"
    )


def expected_features(model: Any, train_columns: list[str]) -> list[str]:
    """The feature names the model was fitted on (``feature_names_in_``), else the train columns."""
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else train_columns


def labels_for(task: str, model: Any, y: pd.Series, *, what: str, target: str) -> np.ndarray:
    """The target as the model's class values (classification) or floats (regression)."""
    if task == "regression":
        try:
            return pd.to_numeric(y).to_numpy(dtype=float)
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"{what}: target column {target!r} is not numeric (e.g. {y.iloc[0]!r}); a "
                "regressor needs numbers. Fix the data, or set `task: classification`"
            ) from exc
    classes = np.asarray(model.classes_)
    labels, unseen = align_labels(y, classes)
    if unseen:
        raise DataError(
            f"{what}: classes {unseen[:5]} in column {target!r} were never seen by the model "
            f"(it knows {classes.tolist()[:10]}); retrain with them or fix the labels"
        )
    return labels


def check_model_task(model: Any, task: str) -> None:
    if task == "classification" and not hasattr(model, "classes_"):
        raise ModelError(
            f"model {type(model).__name__} has no classes_; it is not a classifier. "
            "Set `task: regression` or save a classifier"
        )


@dataclass(frozen=True)
class Inputs:
    """Everything validation reads, checked: the model, its task and the labelled rows."""

    model: Any
    task: str
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    y_test_raw: pd.Series
    """The test labels as read (the champion maps them to its own classes)."""
    primary: str
    model_sha: str


def read_inputs(config: Config) -> Inputs:
    """Load and check model, data, labels and gate names; any problem is one error."""
    target, options = config.data.target, config.validation
    model = load_model(config.model_path)
    task = infer_task(model, config.task)
    check_model_task(model, task)
    check_monitor_gates(config.monitor.gates, task)
    train = load_frame(config.train_path, what="training data")
    X_train, y_train_raw = split_features(train, target, what="training data")
    del train  # one copy of the data at a time
    features = expected_features(model, list(X_train.columns))
    check_columns(X_train, features, what="training data")
    check_supported(X_train, what="training data")
    test = load_frame(config.test_path, what="test data")
    X_test, y_test_raw = split_features(test, target, what="test data")
    del test
    check_columns(X_test, features, what="test data")
    proba, scores = capabilities(model, task)
    check_gate_names(config.gates, task, options, proba=proba, scores=scores)
    inputs = Inputs(
        model=model,
        task=task,
        X_train=_ordered(X_train, features),
        y_train=labels_for(task, model, y_train_raw, what="training data", target=target),
        X_test=_ordered(X_test, features),
        y_test=labels_for(task, model, y_test_raw, what="test data", target=target),
        y_test_raw=y_test_raw,
        primary=primary_metric(task, options.primary_metric, proba=proba, scores=scores),
        model_sha=sha256_file(config.model_path),
    )
    del X_train, X_test
    release_arrow_memory()  # the per-column blocks _ordered joined came from pyarrow's pool
    return inputs


def _ordered(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """``frame`` with its columns in the model's order (no copy when they already are), held as
    one 2-D block when every column has the same numeric dtype.

    Parquet is read one block per column (see :mod:`workbench.data`); an estimator that
    takes the whole frame as an array would then copy it on every ``predict``. Joining the blocks
    once here costs one copy; for a frame that already is one block it is free.
    """
    if list(frame.columns) != features:
        frame = frame[features]
    dtypes = set(frame.dtypes)
    if len(dtypes) == 1 and all(isinstance(d, np.dtype) and d.kind in "biuf" for d in dtypes):
        return pd.DataFrame(frame.to_numpy(), columns=frame.columns, index=frame.index, copy=False)
    return frame
