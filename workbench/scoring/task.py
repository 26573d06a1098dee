"""One task of a scoring job: stream its rows, check, predict, write its output file.

:func:`run_task` runs where the rows are scored (this process, or a Dask worker): it loads the
Bento's model through the per-process cache (:func:`~workbench.scoring.model.load_bento_model`,
keyed by the Bento's path, so the task carries a path and never the model), reads the task's
rows a chunk at a time, writes the predictions to ``out`` (a Parquet file, one row group per
chunk) and the refused rows to ``errors`` (CSV: row, field, message), and returns a
:class:`TaskOutcome`: counts, timings and the drift sample of the scored rows.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.integrity import VouchedBento
from workbench.scoring.inputs import Task, read_chunks
from workbench.scoring.model import BentoModel, load_bento_model
from workbench.scoring.rows import check_rows
from workbench.scoring.sample import DriftSample

OnError = Literal["fail", "skip"]
ROW_COLUMN = "row"
PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"
WARNINGS_COLUMN = "warnings"


@dataclass(frozen=True)
class TaskSpec:
    """What a task needs besides its rows; small, so it travels to workers cheaply."""

    bento_src: str
    columns: list[dict[str, Any]]
    """The model card's ``input_schema.columns``."""
    keep: list[str] | None
    """Input columns copied beside the predictions (None: every input column)."""
    on_error: OnError
    chunk_rows: int
    drift_kinds: dict[str, str]
    sample_rows: int
    vouched: VouchedBento
    """The hashes of the Bento's files and model the job checked against the project's records;
    each process checks what it loads against them."""


@dataclass
class TaskOutcome:
    """What one task did."""

    index: int
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    first_refusal: str | None = None
    stopped: bool = False
    """``on_error: fail`` and a row was refused: the task stopped there."""
    seconds: float = 0.0
    load_seconds: float = 0.0
    """Loading the model (0 when this process had it already)."""
    chunks: int = 0
    sample: DriftSample | None = None
    out: str = ""
    errors: str = ""
    pid: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkDone:
    """One chunk scored (for progress): its task, rows read, scored and refused."""

    task: int
    rows: int
    scored: int
    rejected: int
    total: int | None = None
    """Rows of the whole input, when known (Parquet)."""


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _predict(
    model: BentoModel, values: pd.DataFrame
) -> tuple[Any, Any, list[list[str]] | None, dict[int, str]]:
    """Labels, probabilities and warnings of ``values``' rows, and the rows the model refused
    (position -> why), found by halving the chunk where a call fails."""
    predictor = model.predictor

    def call(part: pd.DataFrame) -> tuple[Any, Any, list[list[str]] | None]:
        X, warnings = predictor.frame_inputs(part)
        labels, proba = predictor.predict(X)
        return np.asarray(labels), proba, warnings

    try:
        labels, proba, warnings = call(values)
        return labels, proba, warnings, {}
    except Exception as first:  # noqa: BLE001 - the rows at fault are looked for below
        refused: dict[int, str] = {}
        pending = [(0, len(values), first)]
        while pending:
            start, end, exc = pending.pop()
            if end - start == 1:
                refused[start] = _why(exc)
                continue
            middle = (start + end) // 2
            for lo, hi in ((start, middle), (middle, end)):
                try:
                    call(values.iloc[lo:hi])
                except Exception as inner:  # noqa: BLE001 - split again
                    pending.append((lo, hi, inner))
        ok = np.ones(len(values), dtype=bool)
        ok[list(refused)] = False
        if not ok.any():
            return np.empty(0), None, None, refused
        labels, proba, warnings = call(values[ok])
        return labels, proba, warnings, refused


#: The Arrow type of a kept input column read from a CSV, by its schema kind (a CSV's cells are
#: all text; every chunk's copy gets the same type, as one Parquet file needs).
KEPT_TYPES = {
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "category": pa.string(),
}


def _output_table(
    model: BentoModel,
    batch: pa.RecordBatch,
    rows: np.ndarray,
    keep_columns: Sequence[str],
    labels: Any,
    proba: Any,
    warnings: list[list[str]] | None,
    typed: dict[str, tuple[pd.Series, pa.DataType]] | None = None,
) -> pa.Table:
    """The scored rows: row number, the kept columns, prediction, probabilities, warnings.

    ``typed``: kept columns to copy from the checked values rather than from ``batch`` (a CSV's
    input columns, as numbers and booleans rather than their text)."""
    columns: dict[str, Any] = {ROW_COLUMN: pa.array(rows, pa.int64())}
    for name in keep_columns:
        if typed is not None and name in typed:
            values, arrow_type = typed[name]
            if arrow_type == pa.int64():  # a nullable integer column is held as floats
                values = values.astype("Int64")
            columns[name] = pa.array(values, type=arrow_type, from_pandas=True)
        else:
            columns[name] = batch.column(name)
    columns[PREDICTION_COLUMN] = pa.array(labels)
    classes = model.predictor.classes
    if proba is not None and classes is not None:
        for i, label in enumerate(classes):
            columns[f"{PROBABILITY_PREFIX}{label}"] = pa.array(proba[:, i], pa.float64())
    if model.predictor.seen:
        columns[WARNINGS_COLUMN] = pa.array(warnings or [[] for _ in rows], pa.list_(pa.string()))
    return pa.table(columns)


def run_task(
    task: Task,
    spec: TaskSpec,
    out: str,
    errors: str,
    *,
    on_chunk: Callable[[ChunkDone], None] | None = None,
) -> TaskOutcome:
    """Score ``task``'s rows into the Parquet file ``out``; refused rows go to ``errors``."""
    import os

    started = time.perf_counter()
    model = load_bento_model(spec.bento_src, spec.vouched)
    outcome = TaskOutcome(task.index, out=out, errors=errors, pid=os.getpid())
    outcome.load_seconds = time.perf_counter() - started
    sample = DriftSample(spec.drift_kinds, spec.sample_rows)
    input_names = [str(c["name"]) for c in spec.columns]
    input_kinds = {str(c["name"]): str(c["kind"]) for c in spec.columns}
    wanted = None if spec.keep is None else list(dict.fromkeys([*input_names, *spec.keep]))
    writer: pq.ParquetWriter | None = None
    error_file = None
    first_row = task.first_row or 0
    try:
        for batch in read_chunks(task, chunk_rows=spec.chunk_rows, columns=wanted):
            n = batch.num_rows
            row_numbers = np.arange(
                first_row + outcome.rows_read, first_row + outcome.rows_read + n
            )
            frame = batch.select(input_names).to_pandas(split_blocks=True)
            checked = check_rows(frame, spec.columns, model.row_model)
            refusals = list(checked.refusals)
            accepted = np.flatnonzero(checked.accepted)
            labels, proba, warnings, refused = _predict(model, checked.values)
            if refused:
                for position, why in sorted(refused.items()):
                    refusals.append(
                        (
                            int(accepted[position]),
                            "(row)",
                            f"the model could not answer this row ({why}); check that its values "
                            "are within the ranges seen in training",
                        )
                    )
                keep_mask = np.ones(len(accepted), dtype=bool)
                keep_mask[list(refused)] = False
                scored_values = checked.values[keep_mask]
                accepted = accepted[keep_mask]
            else:
                scored_values = checked.values
            rejected = n - len(accepted)
            outcome.rows_read += n
            outcome.rows_scored += len(accepted)
            outcome.rows_rejected += rejected
            outcome.chunks += 1
            if refusals:
                if error_file is None:
                    error_file = open(errors, "w", newline="", encoding="utf-8")  # noqa: SIM115
                    csv.writer(error_file, lineterminator="\n").writerow(
                        ["row", "field", "message"]
                    )
                writer_csv = csv.writer(error_file, lineterminator="\n")
                for position, field_name, message in sorted(refusals):
                    writer_csv.writerow([int(row_numbers[position]), field_name, message])
                if outcome.first_refusal is None:
                    position, field_name, message = min(refusals)
                    outcome.first_refusal = (
                        f"row {int(row_numbers[position])}, {field_name}: {message}"
                    )
                if spec.on_error == "fail":
                    outcome.stopped = True
                    break
            if len(accepted):
                keep_columns = batch.schema.names if spec.keep is None else spec.keep
                taken = batch if len(accepted) == n else batch.take(pa.array(accepted))
                typed = None
                if task.part.format == "csv":  # the model's columns as it read them, not text
                    typed = {
                        name: (scored_values[name], KEPT_TYPES[kind])
                        for name, kind in input_kinds.items()
                        if name in keep_columns and kind in KEPT_TYPES
                    }
                table = _output_table(
                    model,
                    taken,
                    row_numbers[accepted],
                    keep_columns,
                    labels,
                    proba,
                    warnings,
                    typed,
                )
                if writer is None:
                    writer = pq.ParquetWriter(out, table.schema)
                writer.write_table(table)
                sample.add(scored_values.reset_index(drop=True), row_numbers[accepted])
            if on_chunk is not None:
                on_chunk(ChunkDone(task.index, n, len(accepted), rejected))
        if writer is None and not outcome.stopped:
            writer = pq.ParquetWriter(out, _empty_schema(model, spec, task))
    finally:
        if writer is not None:
            writer.close()
        if error_file is not None:
            error_file.close()
    outcome.sample = sample
    outcome.seconds = time.perf_counter() - started
    return outcome


def _empty_schema(model: BentoModel, spec: TaskSpec, task: Task) -> pa.Schema:
    """The output schema of a task with no rows (an empty part still gets a valid file)."""
    fields = [pa.field(ROW_COLUMN, pa.int64()), pa.field(PREDICTION_COLUMN, pa.null())]
    classes = model.predictor.classes
    if model.predictor.proba and classes is not None:
        fields += [pa.field(f"{PROBABILITY_PREFIX}{c}", pa.float64()) for c in classes]
    return pa.schema(fields)
