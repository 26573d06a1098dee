"""The validate stage: may this model ship? One entry point, :func:`validate`.

It checks the inputs first (model, data, labels, gates: any problem is one error and nothing is
measured or written), then measures the model on the holdout data, a Dummy baseline and the
champion on the same rows, cross-validates a clone on the training data, computes permutation
importance, a save/reload round trip and latency, infers the input schema and the reference profile
of the training inputs, compiles the model to ONNX where it answers every test row alike, checks
the gates and writes ``validation.json`` (with the drift reference and the kept graph beside it,
which packaging ships). It never writes to the BentoML store.

Cost is linear in the rows: predictions and metrics touch every test row once per model (candidate,
baseline, champion); cross-validation, importance, the round trip and latency work on bounded,
seeded samples (``validation.cv_max_rows``, ``validation.importance_max_rows``, 1,000 rows).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier, DummyRegressor

from workbench.artifacts import (
    records_dir,
    sha256_file,
    sha256_text,
    write_atomic,
    write_record,
)
from workbench.compilation import CompiledModel, Mode, compile_model
from workbench.config import Config
from workbench.data import load_frame
from workbench.errors import DataError
from workbench.promotions import promoted_tag
from workbench.results import (
    BaselineResult,
    ChampionResult,
    CVResult,
    ExplanationResult,
    GateVerdict,
    ImportanceResult,
    LatencyResult,
    ReferenceProfile,
    RoundTripResult,
    RuntimeResult,
    ValidationResult,
    ValidationSettings,
)
from workbench.runtime.settings import ONNX_FILE
from workbench.schema import InputSchema, infer_schema, pipeline_encoders
from workbench.validation import diagnostics
from workbench.validation.champion import evaluate_champion
from workbench.validation.crossval import cross_validate
from workbench.validation.explanations import explain_test_rows
from workbench.validation.gates import check_gates, roundtrip_verdict
from workbench.validation.inputs import Inputs, read_inputs
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


def _no_progress(_step: str, _fraction: float) -> None:
    return None


class Steps:
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
    steps = Steps(on_progress)
    with steps.step("load", "loading model and data", 0.02):
        inputs = read_inputs(config)
    quality = measure_quality(config, inputs, steps)
    serving = measure_serving(config, inputs, steps)
    on_progress("checking gates", 0.97)
    verdicts = check_all_gates(config, inputs, quality)
    result = validation_result(
        config, inputs, quality, serving, verdicts, steps=steps, started=started
    )
    record_validation(records_dir(config.root, run_dir), result, serving)
    on_progress("done", 1.0)
    return result


@dataclass(frozen=True)
class Quality:
    """How well the model answers: on the test rows, against a baseline and the champion, across
    folds, by feature, and after a save/reload round trip."""

    metrics: dict[str, float | None]
    unavailable: dict[str, str]
    plot_data: dict[str, Any]
    baseline: BaselineResult
    champion: ChampionResult | None
    cv: CVResult | None
    importance: ImportanceResult | None
    roundtrip: RoundTripResult


def measure_quality(config: Config, inputs: Inputs, steps: Steps) -> Quality:
    options, task = config.validation, inputs.task
    with steps.step("holdout", "measuring the model on the test data", 0.1):
        out = model_outputs(inputs.model, inputs.X_test, task)
        metrics, unavailable = metric_values(task, inputs.y_test, out)
        plot_data = _plot_data(task, inputs.y_test, out, options.seed)
        del out
    with steps.step("baseline", "measuring a Dummy baseline", 0.2):
        baseline = _baseline(task, inputs)
    champion = None
    if options.champion:
        with steps.step("champion", "scoring the champion on the same test data", 0.25):
            champion = _champion(config, inputs)
    cv = None
    if options.cv_folds:
        with steps.step("cv", "cross-validating", 0.3):
            cv = _cross_validate(config, inputs, steps.on_progress)
    importance = None
    if options.importance_top:
        with steps.step("importance", "permutation importance", 0.72):
            importance = _importance(config, inputs)
    with steps.step("roundtrip", "save/reload round trip", 0.85):
        roundtrip = diagnostics.round_trip(inputs.model, inputs.X_test, task, seed=options.seed)
    return Quality(metrics, unavailable, plot_data, baseline, champion, cv, importance, roundtrip)


def _baseline(task: str, inputs: Inputs) -> BaselineResult:
    dummy: Any = DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor()
    dummy.fit(inputs.X_train, inputs.y_train)
    outputs = model_outputs(dummy, inputs.X_test, task, what="the baseline")
    values, _ = metric_values(task, inputs.y_test, outputs)
    name = "Dummy (class prior)" if task == "classification" else "Dummy (mean)"
    return BaselineResult(estimator=name, metrics=values)


def _plot_data(task: str, y: np.ndarray, out: Outputs, seed: int) -> dict[str, Any]:
    if task == "regression":
        actual, predicted = prediction_sample(y, out, seed=seed)
        return {"actual": actual, "predicted": predicted}
    roc, pr = curves(y, out)
    return {"confusion": confusion(y, out), "roc": roc, "pr": pr}


def _champion(config: Config, inputs: Inputs) -> ChampionResult:
    return evaluate_champion(
        config.name,
        root=config.root,
        task=inputs.task,
        candidate_sha=inputs.model_sha,
        y=inputs.y_test_raw,
        test_rows=lambda names: _champion_rows(config, inputs.X_test, names),
        promoted=promoted_tag(config.root, config.name),
    )


def _cross_validate(config: Config, inputs: Inputs, on_progress: Progress) -> CVResult:
    options = config.validation

    def on_fold(done: int, total: int) -> None:
        on_progress(
            f"cross-validation: fold {done + 1} of {total}"
            if done < total
            else f"cross-validation: {total} folds done",
            0.3 + 0.4 * done / total,
        )

    return cross_validate(
        inputs.model,
        inputs.X_train,
        inputs.y_train,
        inputs.task,
        folds=options.cv_folds,
        seed=options.seed,
        max_rows=options.cv_max_rows,
        on_fold=on_fold,
    )


def _importance(config: Config, inputs: Inputs) -> ImportanceResult:
    options = config.validation
    return diagnostics.importance(
        inputs.model,
        inputs.X_test,
        inputs.y_test,
        inputs.task,
        inputs.primary,
        top=options.importance_top,
        repeats=options.importance_repeats,
        max_rows=options.importance_max_rows,
        seed=options.seed,
    )


@dataclass(frozen=True)
class Serving:
    """What the Bento would serve: the input schema, the training inputs' profile and drift
    reference, the compiled graph (or why none) and both runtimes' latency."""

    schema: InputSchema
    profile: ReferenceProfile
    drift_reference: str
    compiled: CompiledModel
    mode: Mode
    latency: LatencyResult
    onnx_latency: LatencyResult | None
    explanation: ExplanationResult | None


def measure_serving(config: Config, inputs: Inputs, steps: Steps) -> Serving:
    model, seed = inputs.model, config.validation.seed
    with steps.step("schema", "input schema and reference profile", 0.86):
        schema = infer_schema(inputs.X_train, encoders=pipeline_encoders(model))
        profile = build_profile(inputs.X_train, schema)
        drift_reference = json.dumps(build_reference(inputs.X_train, drift_kinds(schema)))
    explanation = None
    if config.validation.explain_rows:
        with steps.step("explain", "explaining test rows (what POST /explain answers)", 0.88):
            explanation = explain_test_rows(
                model,
                inputs.X_train,
                inputs.X_test,
                schema,
                classes=_classes(model, inputs.task),
                rows=config.validation.explain_rows,
                seed=seed,
            )
    with steps.step("compile", "compiling to ONNX and checking parity on every test row", 0.9):
        mode: Mode = "sklearn" if config.service.runtime == "sklearn" else "auto"
        served = schema.as_served(inputs.X_test)  # the inputs the service will feed the model
        compiled = compile_model(model, served, task=inputs.task, mode=mode)
    with steps.step("latency", "prediction latency", 0.94):
        latency = diagnostics.latency(model, inputs.X_test, seed=seed)
        onnx_latency = (
            diagnostics.latency(compiled.served(model), served, seed=seed)
            if compiled.onnx_bytes is not None
            else None
        )
        del served
    return Serving(
        schema, profile, drift_reference, compiled, mode, latency, onnx_latency, explanation
    )


def _classes(model: Any, task: str) -> list[Any] | None:
    return np.asarray(model.classes_).tolist() if task == "classification" else None


def check_all_gates(config: Config, inputs: Inputs, quality: Quality) -> list[GateVerdict]:
    """The configured gates, then the built-in round-trip check."""
    verdicts = check_gates(
        config.gates,
        metrics=quality.metrics,
        unavailable=quality.unavailable,
        primary=inputs.primary,
        cv=quality.cv,
        baseline=quality.baseline,
        champion=quality.champion,
    )
    verdicts.append(roundtrip_verdict(quality.roundtrip))
    return verdicts


def validation_result(
    config: Config,
    inputs: Inputs,
    quality: Quality,
    serving: Serving,
    verdicts: list[GateVerdict],
    *,
    steps: Steps,
    started: float,
) -> ValidationResult:
    """The record of what was measured and decided (the graph's sha256 included, when one is
    kept: packaging ships that graph)."""
    task, model = inputs.task, inputs.model
    return ValidationResult(
        name=config.name,
        task=task,
        target=config.data.target,
        metrics=quality.metrics,
        gates=verdicts,
        passed=all(v.passed for v in verdicts),
        input_schema=serving.schema,
        classes=_classes(model, task),
        rows={"train": len(inputs.X_train), "test": len(inputs.X_test)},
        inputs={
            "model": inputs.model_sha,
            "train": sha256_file(config.train_path),
            "test": sha256_file(config.test_path),
        },
        seconds=round(time.perf_counter() - started, 3),
        primary_metric=inputs.primary,
        unavailable=quality.unavailable,
        cv=quality.cv,
        baseline=quality.baseline,
        champion=quality.champion,
        profile=serving.profile,
        drift_reference_sha256=sha256_text(serving.drift_reference),
        importance=quality.importance,
        explanation=serving.explanation,
        roundtrip=quality.roundtrip,
        latency=serving.latency,
        compiled=RuntimeResult.of(serving.compiled, mode=serving.mode),
        onnx_latency=serving.onnx_latency,
        steps_s=steps.seconds,
        settings=ValidationSettings.of(config),
        **quality.plot_data,
    )


def record_validation(folder: Path, result: ValidationResult, serving: Serving) -> None:
    """``validation.json`` last, after what it names by hash: the drift reference and the kept
    graph (a graph from an earlier validation is removed when none is kept now)."""
    graph = folder / ONNX_FILE
    if serving.compiled.onnx_bytes is None:
        graph.unlink(missing_ok=True)
    else:
        write_atomic(graph, serving.compiled.onnx_bytes)
    write_record(folder, DRIFT_REFERENCE, serving.drift_reference)
    write_record(folder, "validation", result.to_json())


def _champion_rows(config: Config, X_test: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The test columns a champion needs: from memory, or re-read when it used other columns."""
    if all(n in X_test.columns for n in names):
        return X_test[names] if list(X_test.columns) != names else X_test
    frame = load_frame(config.test_path, what="test data")
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DataError(f"the test data lacks columns the champion needs: {missing[:5]}")
    return frame[names]
