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
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any, Literal

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

Refusal = tuple[int, str, str]
"""(row, field, message): one error of one refused row."""


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

    @property
    def input_names(self) -> list[str]:
        return [str(c["name"]) for c in self.columns]

    @property
    def read_columns(self) -> list[str] | None:
        """The columns a chunk is read with (None: all, when every input column is kept)."""
        return None if self.keep is None else list(dict.fromkeys([*self.input_names, *self.keep]))


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

    def count(self, chunk: ScoredChunk) -> None:
        """Take in one chunk's counts and its first refusal."""
        self.rows_read += chunk.rows_read
        self.rows_scored += len(chunk.rows)
        self.rows_rejected += chunk.rows_read - len(chunk.rows)
        self.chunks += 1
        if chunk.refusals and self.first_refusal is None:
            row, field_name, message = min(chunk.refusals)
            self.first_refusal = f"row {row}, {field_name}: {message}"

    def progress(self) -> ChunkDone:
        """The whole task as one step of progress (what a cluster reports per task)."""
        return ChunkDone(self.index, self.rows_read, self.rows_scored, self.rows_rejected)


@dataclass(frozen=True)
class ChunkDone:
    """One chunk scored (for progress): its task, rows read, scored and refused."""

    task: int
    rows: int
    scored: int
    rejected: int
    total: int | None = None
    """Rows of the whole input, when known (Parquet)."""


@dataclass(frozen=True)
class Ran:
    """What a runner did: each task's outcome in task order, how the engine describes itself,
    and the seconds it took to start or reach its workers."""

    outcomes: list[TaskOutcome]
    engine: str
    startup_seconds: float


@dataclass(frozen=True)
class ScoredChunk:
    """One chunk's answers: the scored rows as output, the refused rows and why."""

    rows_read: int
    rows: np.ndarray
    """Input-wide numbers of the scored rows."""
    values: pd.DataFrame
    """The scored rows' input columns as the model read them (for the drift sample)."""
    refusals: list[Refusal]
    """Sorted, with input-wide row numbers."""
    table: pa.Table | None
    """The output rows (None when none was scored)."""

    def progress(self, task: int) -> ChunkDone:
        scored = len(self.rows)
        return ChunkDone(task, self.rows_read, scored, self.rows_read - scored)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


Answers = tuple[Any, Any, list[list[str]] | None]
"""Labels, probabilities (or None) and warnings (or None) of some rows."""


def _predict(model: BentoModel, values: pd.DataFrame) -> tuple[Answers, dict[int, str]]:
    """The answers for ``values``' rows the model can answer, and the rows it refused
    (position -> why), found by halving the chunk where a call fails."""
    predictor = model.predictor

    def call(part: pd.DataFrame) -> Answers:
        X, warnings = predictor.frame_inputs(part)
        labels, proba = predictor.predict(X)
        return np.asarray(labels), proba, warnings

    try:
        return call(values), {}
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
            return (np.empty(0), None, None), refused
        return call(values[ok]), refused


#: The Arrow type of a kept input column read from a CSV, by its schema kind (a CSV's cells are
#: all text; every chunk's copy gets the same type, as one Parquet file needs).
KEPT_TYPES = {
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "category": pa.string(),
}
MODEL_REFUSAL = (
    "the model could not answer this row ({why}); check that its values are within the ranges "
    "seen in training"
)


def score_chunk(
    model: BentoModel, spec: TaskSpec, batch: pa.RecordBatch, first_row: int, *, from_csv: bool
) -> ScoredChunk:
    """Check ``batch``'s rows as the service does, answer those it accepts and the model can
    answer, and refuse the others. ``first_row``: the input-wide number of its first row;
    ``from_csv``: the batch is a CSV's text (kept input columns are written as the model read
    them)."""
    numbers = np.arange(first_row, first_row + batch.num_rows)
    frame = batch.select(spec.input_names).to_pandas(split_blocks=True)
    checked = check_rows(frame, spec.columns, model.row_model)
    accepted = np.flatnonzero(checked.accepted)
    answers, refused = _predict(model, checked.values)
    refusals = [(int(numbers[p]), name, message) for p, name, message in checked.refusals]
    values = checked.values
    if refused:
        refusals += [
            (int(numbers[accepted[p]]), "(row)", MODEL_REFUSAL.format(why=why))
            for p, why in refused.items()
        ]
        answered = np.ones(len(accepted), dtype=bool)
        answered[list(refused)] = False
        values, accepted = values[answered], accepted[answered]
    chunk = ScoredChunk(batch.num_rows, numbers[accepted], values, sorted(refusals), None)
    if not len(accepted):
        return chunk
    taken = batch if len(accepted) == batch.num_rows else batch.take(pa.array(accepted))
    table = _output_table(model, spec, taken, chunk, answers, from_csv=from_csv)
    return replace(chunk, table=table)


def _output_table(
    model: BentoModel,
    spec: TaskSpec,
    batch: pa.RecordBatch,
    chunk: ScoredChunk,
    answers: Answers,
    *,
    from_csv: bool,
) -> pa.Table:
    """The scored rows (``batch``: theirs only): row number, the kept columns, prediction,
    probabilities, warnings. A CSV's kept input columns are copied from the checked values, as
    numbers, integers and booleans rather than their text."""
    labels, proba, warnings = answers
    kinds = {str(c["name"]): str(c["kind"]) for c in spec.columns} if from_csv else {}
    columns: dict[str, Any] = {ROW_COLUMN: pa.array(chunk.rows, pa.int64())}
    for name in batch.schema.names if spec.keep is None else spec.keep:
        arrow_type = KEPT_TYPES.get(kinds.get(name, ""))
        if arrow_type is None:
            columns[name] = batch.column(name)
            continue
        values = chunk.values[name]
        if arrow_type == pa.int64():  # a nullable integer column is held as floats
            values = values.astype("Int64")
        columns[name] = pa.array(values, type=arrow_type, from_pandas=True)
    columns[PREDICTION_COLUMN] = pa.array(labels)
    classes = model.predictor.classes
    if proba is not None and classes is not None:
        for i, label in enumerate(classes):
            columns[f"{PROBABILITY_PREFIX}{label}"] = pa.array(proba[:, i], pa.float64())
    if model.predictor.seen:
        empty: list[list[str]] = [[] for _ in chunk.rows]
        columns[WARNINGS_COLUMN] = pa.array(warnings or empty, pa.list_(pa.string()))
    return pa.table(columns)


class _TaskWriter:
    """A task's output file and error CSV, each opened when its first row comes."""

    def __init__(self, out: str, errors: str) -> None:
        self.out, self.errors = out, errors
        self.parquet: pq.ParquetWriter | None = None
        self.error_file: IO[str] | None = None

    def write(self, table: pa.Table) -> None:
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.out, table.schema)
        self.parquet.write_table(table)

    def refuse(self, refusals: Sequence[Refusal]) -> None:
        if not refusals:
            return
        if self.error_file is None:
            self.error_file = open(self.errors, "w", newline="", encoding="utf-8")  # noqa: SIM115
            csv.writer(self.error_file, lineterminator="\n").writerow(["row", "field", "message"])
        csv.writer(self.error_file, lineterminator="\n").writerows(refusals)

    def close(self, *, empty: pa.Schema | None) -> None:
        """Close both files; ``empty``: the schema of an output with no rows, written when no
        row was (an empty part still gets a valid file)."""
        if self.parquet is None and empty is not None:
            self.parquet = pq.ParquetWriter(self.out, empty)
        if self.parquet is not None:
            self.parquet.close()
        if self.error_file is not None:
            self.error_file.close()


def run_task(
    task: Task,
    spec: TaskSpec,
    out: str,
    errors: str,
    *,
    on_chunk: Callable[[ChunkDone], None] | None = None,
) -> TaskOutcome:
    """Score ``task``'s rows into the Parquet file ``out``; refused rows go to ``errors``."""
    started = time.perf_counter()
    model = load_bento_model(spec.bento_src, spec.vouched)
    outcome = TaskOutcome(task.index, out=out, errors=errors, pid=os.getpid())
    outcome.load_seconds = time.perf_counter() - started
    sample = DriftSample(spec.drift_kinds, spec.sample_rows)
    writer = _TaskWriter(out, errors)
    empty: pa.Schema | None = None
    try:
        for batch in read_chunks(task, chunk_rows=spec.chunk_rows, columns=spec.read_columns):
            first_row = (task.first_row or 0) + outcome.rows_read
            chunk = score_chunk(model, spec, batch, first_row, from_csv=task.part.format == "csv")
            outcome.count(chunk)
            writer.refuse(chunk.refusals)
            if chunk.refusals and spec.on_error == "fail":
                outcome.stopped = True
                break
            if chunk.table is not None:
                writer.write(chunk.table)
                sample.add(chunk.values.reset_index(drop=True), chunk.rows)
            if on_chunk is not None:
                on_chunk(chunk.progress(task.index))
        if not outcome.stopped:
            empty = _empty_schema(model)
    finally:
        writer.close(empty=empty)
    outcome.sample = sample
    outcome.seconds = time.perf_counter() - started
    return outcome


def _empty_schema(model: BentoModel) -> pa.Schema:
    """The output schema of a task with no rows."""
    fields = [pa.field(ROW_COLUMN, pa.int64()), pa.field(PREDICTION_COLUMN, pa.null())]
    classes = model.predictor.classes
    if model.predictor.proba and classes is not None:
        fields += [pa.field(f"{PROBABILITY_PREFIX}{c}", pa.float64()) for c in classes]
    return pa.schema(fields)
