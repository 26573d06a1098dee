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

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier, DummyRegressor

from workbench.artifacts import records_dir, sha256_file, sha256_text, write_record
from workbench.compilation import Mode, compile_model
from workbench.config import Config
from workbench.data import load_frame
from workbench.errors import DataError
from workbench.promotions import promoted_tag
from workbench.results import (
    BaselineResult,
    RuntimeResult,
    ValidationResult,
    ValidationSettings,
)
from workbench.schema import infer_schema, pipeline_encoders
from workbench.validation import diagnostics
from workbench.validation.champion import evaluate_champion
from workbench.validation.crossval import cross_validate
from workbench.validation.gates import check_gates, roundtrip_verdict
from workbench.validation.inputs import read_inputs
from workbench.validation.metrics import (
    Outputs,
    confusion,
    curves,
    metric_values,
    model_outputs,
    prediction_sample,
)
from workbench.validation.profile import build_profile
from workbench.validation.reference import DRIFT_REFERENCE, build_reference, drift_kinds

Progress = Callable[[str, float], None]
"""Called with a step description and the fraction done (0..1)."""


def _no_progress(step: str, fraction: float) -> None:
    return None


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
                root=config.root,
                task=task,
                candidate_sha=inputs.model_sha,
                y=inputs.y_test_raw,
                test_rows=lambda names: _champion_rows(config, X_test, names),
                promoted=promoted_tag(config.root, config.name),
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
    with steps.step("schema", "input schema and reference profile", 0.86):
        schema = infer_schema(X_train, encoders=pipeline_encoders(model))
        profile = build_profile(X_train, schema)
        drift_reference = json.dumps(build_reference(X_train, drift_kinds(schema)))
    with steps.step("compile", "compiling to ONNX and checking parity on every test row", 0.9):
        mode: Mode = "sklearn" if config.service.runtime == "sklearn" else "auto"
        served = schema.as_served(X_test)  # the inputs the service will feed the model
        compiled = compile_model(model, served, task=task, mode=mode)
    with steps.step("latency", "prediction latency", 0.94):
        latency = diagnostics.latency(model, X_test, seed=options.seed)
        onnx_latency = (
            diagnostics.latency(compiled.served(model), served, seed=options.seed)
            if compiled.onnx_bytes is not None
            else None
        )
        del served
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
        drift_reference_sha256=sha256_text(drift_reference),
        importance=importance,
        roundtrip=roundtrip,
        latency=latency,
        compiled=RuntimeResult(
            runtime=compiled.runtime,
            reason=compiled.reason,
            precision=compiled.precision,
            rows_checked=compiled.rows_checked,
            max_difference=compiled.max_difference,
            label_mismatches=compiled.label_mismatches,
            seconds=compiled.seconds,
        ),
        onnx_latency=onnx_latency,
        steps_s=steps.seconds,
        settings=ValidationSettings.of(config),
        **plot_data,
    )
    folder = records_dir(config.root, run_dir)
    write_record(folder, DRIFT_REFERENCE, drift_reference)
    write_record(folder, "validation", result.to_json())
    on_progress("done", 1.0)
    return result


def _champion_rows(config: Config, X_test: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The test columns a champion needs: from memory, or re-read when it used other columns."""
    if all(n in X_test.columns for n in names):
        return X_test[names] if list(X_test.columns) != names else X_test
    frame = load_frame(config.test_path, what="test data")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DataError(f"the test data lacks columns the champion needs: {missing[:5]}")
    return frame[names]
