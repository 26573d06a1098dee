"""The validate stage: may this model ship? One entry point, :func:`validate`.

It checks the inputs first (model, data, labels, gates: any problem is one error and nothing is
measured or written), then measures the model on the holdout data, a Dummy baseline and the
champion on the same rows, cross-validates a clone on the training data, computes permutation
importance, a save/reload round trip and latency, infers the input schema and the reference profile
of the training inputs, checks the gates and writes ``validation.json``. It never writes to the
BentoML store.

Cost is linear in the rows: predictions and metrics touch every test row once per model (candidate,
baseline, champion); cross-validation, importance, the round trip and latency work on bounded,
seeded samples (``validation.cv_max_rows``, ``validation.importance_max_rows``, 1,000 rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier, is_regressor
from sklearn.dummy import DummyClassifier, DummyRegressor

from workbench import diagnostics
from workbench.artifacts import (
    load_frame,
    load_model,
    records_dir,
    release_arrow_memory,
    sha256_file,
    write_record,
)
from workbench.champion import evaluate_champion
from workbench.config import Config
from workbench.crossval import cross_validate
from workbench.errors import ConfigError, DataError, ModelError
from workbench.gates import check_gate_names, check_gates, roundtrip_verdict
from workbench.metrics import (
    Outputs,
    align_labels,
    capabilities,
    confusion,
    curves,
    metric_values,
    model_outputs,
    prediction_sample,
    primary_metric,
)
from workbench.profile import build_profile
from workbench.reports import BaselineResult, ValidationResult
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
        raise DataError(
            f"{what}: target column {target!r} is entirely empty (NaN); fill in the labels or "
            "fix `data.target` in workbench.yaml"
        )
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


class _Steps:
    """Seconds per step, and progress reports as each step starts."""

    def __init__(self, on_progress: Progress) -> None:
        self.on_progress = on_progress
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str, description: str, fraction: float) -> Iterator[None]:
        self.on_progress(description, fraction)
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)


def _baseline(
    task: str, X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame, y_test: np.ndarray
) -> BaselineResult:
    dummy: Any = DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor()
    dummy.fit(X_train, y_train)
    values, _ = metric_values(task, y_test, model_outputs(dummy, X_test, task, what="the baseline"))
    name = "Dummy (class prior)" if task == "classification" else "Dummy (mean)"
    return BaselineResult(estimator=name, metrics=values)


def _plot_data(task: str, y: np.ndarray, out: Outputs, seed: int) -> dict[str, Any]:
    if task == "regression":
        actual, predicted = prediction_sample(y, out, seed=seed)
        return {"actual": actual, "predicted": predicted}
    roc, pr = curves(y, out)
    return {"confusion": confusion(y, out), "roc": roc, "pr": pr}


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
    train = load_frame(config.train_path, what="training data")
    X_train, y_train_raw = split_features(train, target, what="training data")
    del train  # one copy of the data at a time
    features = expected_features(model, list(X_train.columns))
    check_columns(X_train, features, what="training data")
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


def validate(
    config: Config, *, run_dir: str | Path | None = None, on_progress: Progress = _no_progress
) -> ValidationResult:
    """Measure the model, check the gates and write ``validation.json``.

    Bad input (model, data, labels, gates) raises one :class:`~workbench.errors.WorkbenchError`
    before anything is measured or written. Gate failures are reported in the result
    (``passed``), not raised; call :meth:`ValidationResult.raise_for_gates` to stop a headless
    run. Never touches the model store.
    """
    started = time.perf_counter()
    options = config.validation
    steps = _Steps(on_progress)
    with steps.step("load", "loading model and data", 0.02):
        inputs = read_inputs(config)
    model, task, primary = inputs.model, inputs.task, inputs.primary
    X_train, y_train, X_test, y_test = inputs.X_train, inputs.y_train, inputs.X_test, inputs.y_test
    with steps.step("holdout", "measuring the model on the test data", 0.1):
        out = model_outputs(model, X_test, task)
        metrics, unavailable = metric_values(task, y_test, out)
        plot_data = _plot_data(task, y_test, out, options.seed)
        del out
    with steps.step("baseline", "measuring a Dummy baseline", 0.2):
        baseline = _baseline(task, X_train, y_train, X_test, y_test)
    champion = None
    if options.champion:
        with steps.step("champion", "scoring the champion on the same test data", 0.25):
            champion = evaluate_champion(
                config.name,
                task=task,
                candidate_sha=inputs.model_sha,
                y=inputs.y_test_raw,
                test_rows=lambda names: _champion_rows(config, X_test, names),
            )
    cv = None
    if options.cv_folds:
        with steps.step("cv", "cross-validating", 0.3):
            cv = cross_validate(
                model,
                X_train,
                y_train,
                task,
                folds=options.cv_folds,
                seed=options.seed,
                max_rows=options.cv_max_rows,
                on_fold=lambda done, total: on_progress(
                    f"cross-validation: fold {done + 1} of {total}"
                    if done < total
                    else f"cross-validation: {total} folds done",
                    0.3 + 0.4 * done / total,
                ),
            )
    importance = None
    if options.importance_top:
        with steps.step("importance", "permutation importance", 0.72):
            importance = diagnostics.importance(
                model,
                X_test,
                y_test,
                task,
                primary,
                top=options.importance_top,
                repeats=options.importance_repeats,
                max_rows=options.importance_max_rows,
                seed=options.seed,
            )
    with steps.step("roundtrip", "save/reload round trip", 0.85):
        roundtrip = diagnostics.round_trip(model, X_test, task, seed=options.seed)
    with steps.step("latency", "prediction latency", 0.88):
        latency = diagnostics.latency(model, X_test, seed=options.seed)
    with steps.step("schema", "input schema and reference profile", 0.92):
        schema = infer_schema(X_train)
        profile = build_profile(X_train, schema)
    on_progress("checking gates", 0.97)
    verdicts = check_gates(
        config.gates,
        metrics=metrics,
        unavailable=unavailable,
        primary=primary,
        cv=cv,
        baseline=baseline,
        champion=champion,
    )
    verdicts.append(roundtrip_verdict(roundtrip))
    result = ValidationResult(
        name=config.name,
        task=task,
        target=config.data.target,
        metrics=metrics,
        gates=verdicts,
        passed=all(v.passed for v in verdicts),
        input_schema=schema,
        classes=np.asarray(model.classes_).tolist() if task == "classification" else None,
        rows={"train": len(X_train), "test": len(X_test)},
        inputs={
            "model": inputs.model_sha,
            "train": sha256_file(config.train_path),
            "test": sha256_file(config.test_path),
        },
        seconds=round(time.perf_counter() - started, 3),
        primary_metric=primary,
        unavailable=unavailable,
        cv=cv,
        baseline=baseline,
        champion=champion,
        profile=profile,
        importance=importance,
        roundtrip=roundtrip,
        latency=latency,
        steps_s=steps.seconds,
        **plot_data,
    )
    write_record(records_dir(config.root, run_dir), "validation", result.to_json())
    on_progress("done", 1.0)
    return result


def _ordered(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """``frame`` with its columns in the model's order (no copy when they already are), held as
    one 2-D block when every column has the same numeric dtype.

    Parquet is read one block per column (see :mod:`workbench.artifacts`); an estimator that
    takes the whole frame as an array would then copy it on every ``predict``. Joining the blocks
    once here costs one copy; for a frame that already is one block it is free.
    """
    if list(frame.columns) != features:
        frame = frame[features]
    dtypes = set(frame.dtypes)
    if len(dtypes) == 1 and all(isinstance(d, np.dtype) and d.kind in "biuf" for d in dtypes):
        return pd.DataFrame(frame.to_numpy(), columns=frame.columns, index=frame.index, copy=False)
    return frame


def _champion_rows(config: Config, X_test: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The test columns a champion needs: from memory, or re-read when it used other columns."""
    if all(n in X_test.columns for n in names):
        return X_test[names] if list(X_test.columns) != names else X_test
    frame = load_frame(config.test_path, what="test data")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DataError(f"the test data lacks columns the champion needs: {missing[:5]}")
    return frame[names]
