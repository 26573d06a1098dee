"""Compile the validated scikit-learn model to ONNX, where it is provably the same model.

Why compile: onnxruntime answers one row of a forest in tens of microseconds where scikit-learn
spends milliseconds on each call (input validation, a joblib dispatch over the trees), and that cost
is most of what a served request costs. Why "provably": a converter is a second implementation of
the model, with its own float precision and its own idea of missing values. So a graph is kept
only when, fed every test row exactly as the served Bento feeds it (by
:class:`~workbench.runtime.onnx_model.OnnxModel`), it gives scikit-learn's labels and its
probabilities or regression values within ``tolerance`` (absolute, :data:`TOLERANCE`). Otherwise
the Bento serves scikit-learn and the result says why.
(:mod:`.conversion` says how numbers and columns are fed, :mod:`.parity` how answers compare.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench.compilation.conversion import (
    PRECISIONS,
    Precision,
    column_kind,
    infinite_thresholds,
    to_onnx_bytes,
)
from workbench.compilation.parity import TOLERANCE, Parity, RowDifference, check_parity
from workbench.errors import CompilationError
from workbench.runtime.onnx_model import OnnxModel

Mode = Literal["auto", "sklearn", "onnx"]
Runtime = Literal["onnx", "sklearn"]

MODES: tuple[Mode, ...] = ("auto", "sklearn", "onnx")
TASKS = ("classification", "regression")
MESSAGE_CHARS = 240
"""Converter and onnxruntime messages are cut to this length (some dump whole graphs)."""
NEXT_STEP = "set service.runtime: sklearn or auto in workbench.yaml to serve with scikit-learn"


@dataclass(frozen=True)
class CompiledModel:
    """What the Bento serves with (``runtime``) and why, with the ONNX graph when it is kept.

    The parity figures are those of the kept graph or, when scikit-learn serves, of the graph that
    came closest (none when nothing was converted).
    """

    runtime: Runtime
    reason: str
    onnx_bytes: bytes | None = field(default=None, repr=False)
    """The graph to ship as ``model.onnx`` (only when ``runtime`` is ``onnx``)."""
    precision: Precision | None = None
    """Number precision of the kept graph."""
    rows_checked: int = 0
    max_difference: float | None = None
    label_mismatches: int = 0
    differing_rows: tuple[RowDifference, ...] = ()
    """The first test rows where the graph and scikit-learn disagree."""
    seconds: float = 0.0
    """Conversion and parity check, at packaging time."""

    def served(self, model: Any) -> Any:
        """What answers requests: ``model`` itself, or the kept graph in onnxruntime."""
        if self.onnx_bytes is None:
            return model
        classes = getattr(model, "classes_", None)
        return OnnxModel(
            self.onnx_bytes,
            classes=None if classes is None else np.asarray(classes),
            probabilities=hasattr(model, "predict_proba"),
        )

    def card(self) -> dict[str, Any]:
        """For the model card: the decision and its evidence, not the time it took (which varies
        from run to run and would change the content-derived Bento version)."""
        return {
            "runtime": self.runtime,
            "why": self.reason,
            "precision": self.precision,
            "rows_checked": self.rows_checked,
            "max_difference": self.max_difference,
            "label_mismatches": self.label_mismatches,
        }


@dataclass(frozen=True)
class _Attempt:
    precision: Precision
    failure: str | None = None
    """Why this precision gave no graph to compare (conversion, loading, running)."""
    onnx_bytes: bytes | None = field(default=None, repr=False)
    parity: Parity | None = None

    def describe(self) -> str:
        if self.parity is None:
            return f"{self.precision} precision: {self.failure}"
        return f"{self.precision} precision: ONNX {self.parity.describe()}"


def _message(exc: BaseException) -> str:
    """``Type: first line`` of an exception (and of its cause), cut to :data:`MESSAGE_CHARS`."""

    def line(e: BaseException) -> str:
        text = (str(e).strip().splitlines() or [""])[0]
        if len(text) > MESSAGE_CHARS:
            text = text[: MESSAGE_CHARS - 3] + "..."
        return f"{type(e).__name__}: {text}"

    cause = exc.__cause__
    return line(exc) + ("" if cause is None else f" (caused by {line(cause)})")


def _attempt(
    model: Any, X_test: pd.DataFrame, *, task: str, precision: Precision, tolerance: float
) -> _Attempt:
    """Convert at ``precision`` and check parity; never raises."""
    if precision == "double" and (infinite := infinite_thresholds(model)):
        return _Attempt(
            precision,
            failure=f"skipped: {infinite} tree splits have an infinite threshold (trees fitted on "
            "missing values), where skl2onnx 1.20's float64 threshold search never ends",
        )
    try:
        onnx_bytes = to_onnx_bytes(model, X_test, task=task, precision=precision)
    except Exception as exc:  # noqa: BLE001 - any converter failure means "serve scikit-learn"
        return _Attempt(precision, failure=f"skl2onnx cannot convert it ({_message(exc)})")
    try:
        parity = check_parity(model, onnx_bytes, X_test, task=task, tolerance=tolerance)
    except Exception as exc:  # noqa: BLE001 - nor may a graph that does not load or run
        return _Attempt(
            precision,
            failure=f"the converted graph does not load or run in onnxruntime ({_message(exc)})",
        )
    return _Attempt(precision, onnx_bytes=onnx_bytes, parity=parity)


def _describe_attempts(attempts: list[_Attempt]) -> str:
    """Each attempt's outcome; one sentence for all when they failed the same way."""
    failures = {a.failure for a in attempts}
    if len(attempts) > 1 and len(failures) == 1 and None not in failures:
        precisions = " and ".join(a.precision for a in attempts)
        return f"in {precisions} precision: {attempts[0].failure}"
    return "; ".join(a.describe() for a in attempts)


def _refusal(model: Any, X_test: pd.DataFrame, task: str) -> str | None:
    """Why ``model`` cannot be compiled at all, before any conversion (None: try it)."""
    if len(X_test) == 0:
        return "there are no test rows to check a converted graph on"
    repeated = X_test.columns[X_test.columns.duplicated()]
    if len(repeated):
        return f"the test rows repeat column names {sorted(set(map(str, repeated)))}"
    if task == "classification" and not hasattr(model, "classes_"):
        return f"the classifier {type(model).__name__} has no classes_"
    for name in X_test.columns:
        try:
            column_kind(str(name), X_test[name])
        except ValueError as exc:
            return str(exc)
    return None


NOT_CONVERTED_REASON = "service.runtime is sklearn: the model was not converted"
FALLBACK_REASON = "serving with scikit-learn, as "
"""How the reason of a graph that was not kept begins (the rest says why none was)."""


def compile_model(
    model: Any,
    X_test: pd.DataFrame,
    *,
    task: str,
    mode: Mode,
    tolerance: float = TOLERANCE,
) -> CompiledModel:
    """Decide what the Bento serves ``model`` with, converting it to ONNX unless ``mode`` is
    ``sklearn``.

    ``auto``: the first graph (in :data:`PRECISIONS` order) that matches ``model`` on every row of
    ``X_test`` (see :func:`check_parity`) is kept; otherwise scikit-learn serves, with the
    converter's error or the differing rows as the reason. Nothing the converter or onnxruntime
    raises escapes. ``onnx``: the same, but :class:`CompilationError` instead of falling back
    (:func:`for_mode`). ``X_test`` has the training columns, in training order, with their
    test-time dtypes.
    """
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    if mode not in MODES:
        raise ValueError(f"runtime mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "sklearn":
        return CompiledModel(runtime="sklearn", reason=NOT_CONVERTED_REASON)
    started = time.perf_counter()
    refusal = _refusal(model, X_test, task)
    attempts = [] if refusal is not None else _attempts(model, X_test, task, tolerance)
    seconds = round(time.perf_counter() - started, 3)
    kept = attempts[-1] if attempts else None
    if kept is not None and kept.parity is not None and kept.parity.holds:
        return _kept(kept, kept.parity, attempts[:-1], seconds)
    why = refusal or _describe_attempts(attempts)
    reason = f"no ONNX graph is the same model as {type(model).__name__}: {why}"
    return for_mode(_fallback(reason, attempts, seconds), mode)


def for_mode(compiled: CompiledModel, mode: Mode) -> CompiledModel:
    """What serves under ``mode``, given what ``auto`` decided (``compiled``, e.g. the decision
    a validation recorded): ``auto`` takes it as it is, ``sklearn`` never converts, and ``onnx``
    raises :class:`CompilationError` saying why no graph was kept."""
    if mode == "sklearn":
        return CompiledModel(runtime="sklearn", reason=NOT_CONVERTED_REASON)
    if mode == "onnx" and compiled.runtime != "onnx":
        reason = compiled.reason.removeprefix(FALLBACK_REASON)
        raise CompilationError(f"service.runtime is onnx, but {reason}. Next: {NEXT_STEP}")
    return compiled


def _attempts(model: Any, X_test: pd.DataFrame, task: str, tolerance: float) -> list[_Attempt]:
    """Each precision in turn until one's graph holds parity."""
    attempts: list[_Attempt] = []
    for precision in PRECISIONS:
        attempts.append(
            _attempt(model, X_test, task=task, precision=precision, tolerance=tolerance)
        )
        if attempts[-1].parity is not None and attempts[-1].parity.holds:
            break
    return attempts


def _kept(kept: _Attempt, parity: Parity, earlier: list[_Attempt], seconds: float) -> CompiledModel:
    refused = "".join(f"; not {a.describe()}" for a in earlier)
    return CompiledModel(
        runtime="onnx",
        reason=f"ONNX ({kept.precision} precision) {parity.describe()}{refused}",
        onnx_bytes=kept.onnx_bytes,
        precision=kept.precision,
        rows_checked=parity.rows_checked,
        max_difference=parity.max_difference,
        label_mismatches=parity.label_mismatches,
        seconds=seconds,
    )


def _fallback(reason: str, attempts: list[_Attempt], seconds: float) -> CompiledModel:
    """scikit-learn serves; the figures are those of the graph that came closest (if any)."""
    compared = [a.parity for a in attempts if a.parity is not None]
    closest = min(
        compared,
        key=lambda p: (p.rows_differing, p.max_difference or 0.0),
        default=None,
    )
    return CompiledModel(
        runtime="sklearn",
        reason=FALLBACK_REASON + reason,
        rows_checked=0 if closest is None else closest.rows_checked,
        max_difference=None if closest is None else closest.max_difference,
        label_mismatches=0 if closest is None else closest.label_mismatches,
        differing_rows=() if closest is None else closest.first_rows,
        seconds=seconds,
    )
