"""The validate stage: holdout metrics, gate verdicts and the input schema of a fitted model."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import is_classifier, is_regressor

from workbench.artifacts import (
    load_frame,
    load_model,
    records_dir,
    sha256_file,
    write_record,
)
from workbench.config import METRICS, Config, Gate
from workbench.errors import ConfigError, DataError, ModelError
from workbench.reports import GateVerdict, ValidationResult
from workbench.schema import check_columns, infer_schema

Progress = Callable[[str, float], None]
"""Called with a step description and the fraction done (0..1)."""


def _no_progress(step: str, fraction: float) -> None:
    return None


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


def split_features(
    frame: pd.DataFrame, target: str, *, what: str
) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a frame, with a clear error when the target is unusable."""
    if target not in frame.columns:
        raise DataError(
            f"{what}: target column {target!r} not found (columns: {list(frame.columns)[:8]}...); "
            "fix `data.target` in workbench.yaml"
        )
    y = frame[target]
    if y.isna().all():
        raise DataError(f"{what}: target column {target!r} is entirely empty (NaN)")
    if y.isna().any():
        raise DataError(
            f"{what}: target column {target!r} has {int(y.isna().sum())} missing values; "
            "drop or fill those rows"
        )
    return frame.drop(columns=[target]), y


def expected_features(model: Any, train_columns: list[str]) -> list[str]:
    """The feature names the model was fitted on (``feature_names_in_``), else the train columns."""
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else train_columns


def compute_metrics(
    model: Any, task: str, X: pd.DataFrame, y: pd.Series
) -> dict[str, float | None]:
    """Holdout metrics for the task; a metric the model cannot support is ``None``."""
    try:
        predicted = model.predict(X)
    except Exception as exc:
        raise ModelError(
            f"model {type(model).__name__} failed to predict on the test data "
            f"({type(exc).__name__}: {exc}); check the data matches what it was fitted on"
        ) from exc
    if task == "regression":
        return {
            "mae": float(skm.mean_absolute_error(y, predicted)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y, predicted))),
            "r2": float(skm.r2_score(y, predicted)),
        }
    classes = list(model.classes_)
    binary = len(classes) == 2
    result: dict[str, float | None] = {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "f1": float(
            skm.f1_score(y, predicted, pos_label=classes[-1])
            if binary
            else skm.f1_score(y, predicted, average="macro")
        ),
        "roc_auc": None,
    }
    if hasattr(model, "predict_proba") and y.nunique() > 1:
        proba = model.predict_proba(X)
        result["roc_auc"] = float(
            skm.roc_auc_score(y, proba[:, 1])
            if binary
            else skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
        )
    return result


def check_gates(
    gates: dict[str, Gate], metrics: dict[str, float | None], task: str
) -> list[GateVerdict]:
    """Compare each gate with its metric; a gate on a metric of another task is a config error."""
    verdicts = []
    for metric, gate in gates.items():
        if metric not in METRICS[task]:
            raise ConfigError(
                f"gate `{metric}` does not fit task {task!r}; gates for {task} can use: "
                f"{', '.join(METRICS[task])}"
            )
        value = metrics.get(metric)
        reason = ""
        if value is None:
            passed, reason = False, "(metric unavailable for this model)"
        else:
            passed = (gate.min is None or value >= gate.min) and (
                gate.max is None or value <= gate.max
            )
        verdicts.append(
            GateVerdict(
                metric=metric, value=value, min=gate.min, max=gate.max, passed=passed, reason=reason
            )
        )
    return verdicts


def validate(
    config: Config, *, run_dir: str | Path | None = None, on_progress: Progress = _no_progress
) -> ValidationResult:
    """Measure the model on the holdout data, check the gates and write ``validation.json``.

    Never touches the model store. Gate failures are reported in the result (``passed``), not
    raised; call :meth:`ValidationResult.raise_for_gates` to stop a headless run.
    """
    started = time.perf_counter()
    on_progress("loading model and data", 0.1)
    model = load_model(config.model_path)
    train = load_frame(config.train_path, what="training data")
    test = load_frame(config.test_path, what="test data")
    X_train, _ = split_features(train, config.data.target, what="training data")
    X_test, y_test = split_features(test, config.data.target, what="test data")

    features = expected_features(model, list(X_train.columns))
    check_columns(X_train, features, what="training data")
    check_columns(X_test, features, what="test data")
    X_train, X_test = X_train[features], X_test[features]

    task = infer_task(model, config.task)
    if task == "classification" and not hasattr(model, "classes_"):
        raise ModelError(
            f"model {type(model).__name__} has no classes_; it is not a classifier. "
            "Set `task: regression` or save a classifier"
        )
    classes = None
    if task == "classification":
        classes = np.asarray(model.classes_).tolist()
        unseen = sorted({str(v) for v in y_test.unique()} - {str(c) for c in classes})
        if unseen:
            raise DataError(
                f"test data: classes {unseen[:5]} in column {config.data.target!r} were never seen "
                f"by the model (it knows {classes[:10]}); retrain or fix the labels"
            )
        y_test = pd.Series(
            np.asarray(y_test).astype(np.asarray(model.classes_).dtype), name=y_test.name
        )

    on_progress("computing holdout metrics", 0.4)
    metrics = compute_metrics(model, task, X_test, y_test)
    on_progress("checking gates", 0.8)
    verdicts = check_gates(config.gates, metrics, task)
    result = ValidationResult(
        name=config.name,
        task=task,
        target=config.data.target,
        metrics=metrics,
        gates=verdicts,
        passed=all(v.passed for v in verdicts),
        input_schema=infer_schema(X_train),
        classes=classes,
        rows={"train": len(train), "test": len(test)},
        inputs={
            "model": sha256_file(config.model_path),
            "train": sha256_file(config.train_path),
            "test": sha256_file(config.test_path),
        },
        seconds=round(time.perf_counter() - started, 3),
    )
    write_record(records_dir(config.root, run_dir), "validation", result.to_json())
    on_progress("done", 1.0)
    return result
