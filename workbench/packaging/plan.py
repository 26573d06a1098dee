"""How the generated service feeds the model: batch limits from the model's measured cost, and
the input path (one float array or cast records, one model call or two).

Only decisions go into the generated files, never the measured times (they vary from run to run
and would change the content-derived Bento version).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workbench.runtime.settings import ServiceSettings
from workbench.schema import InputSchema

#: Adaptive batching: the largest batch worth having is where the model's fixed cost per call is at
#: most a tenth of the call (``9 x fixed / per row`` rows), and no larger than what one call can
#: answer in :data:`BATCH_BUDGET_S`. Rounded to a power of 4 between 1 and :data:`MAX_BATCH_ROWS`:
#: coarse steps keep the choice (and so the Bento version) the same from one packaging to the next,
#: as measured times vary by a few tens of percent.
BATCH_BUDGET_S = 0.1
MAX_BATCH_ROWS = 1024
MIN_QUEUE_MS = 1000
#: The model's cost per call is measured on 1 row and on this many training rows.
COST_ROWS = 256
COST_TIME_LIMIT_S = 3.0


@dataclass(frozen=True)
class CallCost:
    """What one model call costs, measured at packaging time: ``fixed_s + per_row_s * rows``."""

    fixed_s: float
    per_row_s: float

    def seconds(self, rows: int) -> float:
        return self.fixed_s + self.per_row_s * rows


@dataclass(frozen=True)
class ServingPlan:
    """How the generated service feeds the model; written into ``service.py`` and the model card.

    Only decisions go into the generated files, never the measured times themselves (they vary
    from run to run and would change the content-derived Bento version).
    """

    max_batch_size: int
    max_latency_ms: int
    max_queue_rows: int
    float_rows: bool
    frame_input: bool
    labels_from_proba: bool
    runtime: str = "sklearn"
    reasons: dict[str, str] = field(default_factory=dict)

    def card(self, options: ServiceSettings) -> dict[str, Any]:
        return {
            "max_batch_size": self.max_batch_size,
            "max_latency_ms": self.max_latency_ms,
            "max_queue_rows": self.max_queue_rows,
            "max_body_bytes": options.max_body_bytes,
            "max_request_rows": options.max_request_rows,
            "timeout_s": options.timeout,
            "auth": options.auth,
            "rows": "one float array per batch" if self.float_rows else "records cast per batch",
            "model_input": "DataFrame" if self.frame_input else "array",
            "labels": (
                "one ONNX run"
                if self.runtime == "onnx"
                else "argmax of predict_proba"
                if self.labels_from_proba
                else "predict"
            ),
            "workers": options.workers,
            "access_log": options.access_log,
            "tracing": options.tracing,
            "why": dict(sorted(self.reasons.items())),
        }


#: Stand-ins when the model's cost cannot be measured at packaging time.
UNMEASURED = CallCost(fixed_s=0.01, per_row_s=0.001)
UNMEASURED_BATCH = 64


def _power_of_4(value: float, *, up: bool) -> int:
    if not math.isfinite(value) or value >= MAX_BATCH_ROWS:
        return MAX_BATCH_ROWS
    if value <= 1:
        return 1
    exponent = math.log(value, 4)
    return int(4 ** (math.ceil(exponent) if up else math.floor(exponent)))


def float_rows(schema: InputSchema) -> bool:
    """Every request column is cast to float64, so a batch can be one float array."""
    return all(dtype == "float64" for dtype in schema.request_dtypes().values())


def labels_from_proba(model: Any) -> bool:
    """True when the model's ``predict`` is, in its source, ``classes_[argmax(predict_proba)]``.

    Then one ``predict_proba`` call gives both answers, exactly. Decided from the code the model
    runs, not from a sample: scikit-learn's forests (``RandomForestClassifier``,
    ``ExtraTreesClassifier``) with one output, alone or as the last step of a ``Pipeline`` (whose
    ``predict`` and ``predict_proba`` apply the same transforms). Anything else is asked twice.
    """
    from sklearn.ensemble._forest import ForestClassifier
    from sklearn.pipeline import Pipeline

    final = model
    if isinstance(model, Pipeline):
        if type(model) is not Pipeline:  # a subclass may predict its own way
            return False
        final = model.steps[-1][1]
    return (
        isinstance(final, ForestClassifier)
        and type(final).predict is ForestClassifier.predict
        and getattr(final, "n_outputs_", None) == 1
    )


def frame_input_needed(model: Any) -> bool:
    """Whether the model gets a DataFrame (with the training column names) or a plain array.

    A scikit-learn estimator fitted on a DataFrame records ``feature_names_in_`` and warns when
    given an array, so it gets a DataFrame; one fitted on an array gets the array. Anything not
    from scikit-learn gets a DataFrame, as it did in training.
    """
    from sklearn.pipeline import Pipeline

    parts = [model, *(step for _, step in model.steps)] if isinstance(model, Pipeline) else [model]
    from_sklearn = all(
        step == "passthrough" or step is None or type(step).__module__.startswith("sklearn.")
        for step in parts
    )
    return hasattr(model, "feature_names_in_") or not from_sklearn


def plan_serving(
    model: Any,
    schema: InputSchema,
    options: ServiceSettings,
    cost: CallCost | None,
    *,
    runtime: str = "sklearn",
) -> ServingPlan:
    """Batching limits from the measured cost (unless the config sets them) and the input path.

    ``cost`` is None when it could not be measured: then :data:`UNMEASURED` stands in for it.
    """
    reasons: dict[str, str] = {}
    batch, reasons["max_batch_size"] = _batch_size(options, cost, runtime)
    latency, reasons["max_latency_ms"] = _queue_latency(options, cost, batch)
    queue_rows, reasons["max_queue_rows"] = _queue_rows(options, batch)
    # An ONNX graph reads a 2-D array by position: no DataFrame to build per batch.
    frame_input = runtime != "onnx" and frame_input_needed(model)
    # An ONNX graph answers labels and probabilities in one run; its tree probabilities are
    # float32-rounded, so an argmax of them could flip a near-tie the graph's own labels get right.
    from_proba = runtime == "sklearn" and labels_from_proba(model)
    floats = float_rows(schema)
    reasons["rows"] = (
        "all columns are float64: the rows of a batch become one float array"
        if floats
        else "some columns are integer, boolean, category or text: records are cast to training "
        "dtypes"
    )
    reasons["labels"] = (
        "the ONNX graph answers labels and probabilities in one run"
        if runtime == "onnx"
        else "the model's predict is argmax of predict_proba: one call answers both"
        if from_proba
        else "predict and predict_proba are separate calls"
    )
    return ServingPlan(
        max_batch_size=batch,
        max_latency_ms=latency,
        max_queue_rows=queue_rows,
        float_rows=floats,
        frame_input=frame_input,
        labels_from_proba=from_proba,
        runtime=runtime,
        reasons=reasons,
    )


def _batch_size(options: ServiceSettings, cost: CallCost | None, runtime: str) -> tuple[int, str]:
    """The largest batch and why: configured, a stand-in, or from the measured cost."""
    if options.max_batch_size is not None:
        return options.max_batch_size, "set in workbench.yaml (service.max_batch_size)"
    if cost is None:
        return UNMEASURED_BATCH, "the model's cost could not be measured on training rows"
    per_row = max(cost.per_row_s, 1e-9)
    # An ONNX graph's fixed cost per call is tens of microseconds, measured with more noise
    # than signal: sizing batches on it would make the Bento version (which holds the
    # choice) differ from one packaging to the next. Only the time budget bounds them.
    amortized = (
        MAX_BATCH_ROWS if runtime == "onnx" else _power_of_4(9 * cost.fixed_s / per_row, up=True)
    )
    budget = _power_of_4((BATCH_BUDGET_S - cost.fixed_s) / per_row, up=False)
    batch = min(amortized, budget)
    budget_ms = f"{BATCH_BUDGET_S * 1000:.0f} ms"
    if batch == MAX_BATCH_ROWS:
        why = f"{batch} rows (the cap) answer within {budget_ms} in one call"
    elif amortized <= budget:
        why = f"at {batch} rows the fixed cost of a call is at most a tenth of it"
    else:
        why = f"{batch} rows is the most one call answers within {budget_ms}"
    return batch, f"measured at packaging (powers of 4): {why}"


def _queue_latency(options: ServiceSettings, cost: CallCost | None, batch: int) -> tuple[int, str]:
    """How long a request may wait in the queue, and why."""
    if options.max_latency_ms is not None:
        return options.max_latency_ms, "set in workbench.yaml (service.max_latency_ms)"
    full_batch_ms = 10 * (cost or UNMEASURED).seconds(batch) * 1000
    latency = MIN_QUEUE_MS
    while latency < full_batch_ms and latency < options.timeout * 1000:
        latency *= 2
    latency = min(latency, options.timeout * 1000)
    return latency, (
        f"a queued request is answered 503 after {latency} ms: at least {MIN_QUEUE_MS} ms "
        "and ten full-batch calls (doubling steps), never longer than the request timeout"
    )


def _queue_rows(options: ServiceSettings, batch: int) -> tuple[int, str]:
    """How many rows may wait, and why."""
    if options.max_queue_rows is not None:
        return options.max_queue_rows, "set in workbench.yaml (service.max_queue_rows)"
    queue_rows = max(8 * batch, options.max_request_rows)
    return (
        queue_rows,
        f"{queue_rows} rows may wait: eight full batches, at least one largest request",
    )


def measure_call_cost(
    model: Any, X: pd.DataFrame, *, time_limit: float = COST_TIME_LIMIT_S
) -> CallCost | None:
    """Time what the service runs per batch on 1 row and on :data:`COST_ROWS` training rows.

    That is ``predict_proba`` for a classifier that has it (plus ``predict`` unless the labels
    follow from the probabilities) and ``predict`` otherwise. The clock is the process's CPU time
    and the figure the fastest of a few calls after a warm-up: other processes on a busy build
    machine (a CI runner's parallel jobs) slow the wall clock two- or threefold, which could move
    a model near a limit's boundary across it, and with it the Bento version; they barely move
    the CPU time of the fastest call. Bounded by ``time_limit`` seconds in all: a slow model gets
    fewer repeats. None when the model fails on the training rows (the batching limits then take
    safe defaults).
    """
    proba = hasattr(model, "predict_proba") and hasattr(model, "classes_")
    both = proba and not labels_from_proba(model)

    def call(frame: pd.DataFrame) -> None:
        if proba:
            model.predict_proba(frame)
        if both or not proba:
            model.predict(frame)

    one = X.head(1)
    many = X.sample(n=COST_ROWS, replace=len(X) < COST_ROWS, random_state=0)
    deadline = time.perf_counter() + time_limit

    def fastest(frame: pd.DataFrame, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            started = time.process_time()
            call(frame)
            times.append(time.process_time() - started)
            if time.perf_counter() > deadline:
                break
        return min(times)

    try:
        call(one)  # first-call costs (imports, caches) are not the model's
        t_one = fastest(one, 7)
        t_many = fastest(many, 5)
    except Exception:  # noqa: BLE001 - any failure means "not measured", never a failed build
        return None
    per_row = max(0.0, (t_many - t_one) / (COST_ROWS - 1))
    return CallCost(fixed_s=max(t_one - per_row, 0.0), per_row_s=per_row)
