"""``score()``: a Bento's model over a file, a folder or a glob, in process or on Dask.

The job reads as its steps: open the Bento (its files and model checked against the project's
records, :mod:`workbench.integrity`; its model card and drift reference), plan the job (the
input's format and columns, the output path, the tasks: everything checked before a row is
scored), run the tasks (:mod:`workbench.scoring.task`) through the engine's runner (this process
or a ``dask.distributed`` cluster, :mod:`workbench.scoring.engine`), test the scored rows for
drift and data quality, assemble the result, record it. Everything is written under temporary
names beside ``out`` and renamed at the end (:mod:`workbench.scoring.outputs`): an interrupted or
failed job leaves nothing under the final names. Beside the output it writes ``<out>.errors.csv``
(refused rows), ``<out>.score.json`` (:class:`ScoreResult`, its status included) and the drift and
data-quality report of the scored rows against the Bento's reference (``<out>.drift.json`` and
``.html``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workbench.artifacts import sha256_file, write_atomic
from workbench.errors import DataError
from workbench.integrity import VouchedBento, find_project, verify_bento
from workbench.monitoring import (
    BentoSource,
    find_bento,
    read_model_card,
    read_reference,
    window_report,
)
from workbench.reports.monitoring import drift_page
from workbench.results import DriftResult, ScoredFile, ScoreResult
from workbench.runtime.card import ModelCard
from workbench.runtime.drift import DriftOptions
from workbench.scoring.engine import DEFAULT_CHUNK_ROWS, DEFAULT_TASK_ROWS, Engine, Runner
from workbench.scoring.inputs import ScoringInput, Task, resolve_input
from workbench.scoring.outputs import (
    Outputs,
    check_outputs,
    publish_errors,
    publish_predictions,
    temporary_folder,
)
from workbench.scoring.sample import DEFAULT_SAMPLE_ROWS, DriftSample, sample_kinds
from workbench.scoring.task import ROW_COLUMN, ChunkDone, OnError, Ran, TaskSpec

OnChunk = Callable[[ChunkDone], None]


def score(  # noqa: PLR0913 - the public entry point's options, keyword-only (papermill's shape)
    bento: str | Path,
    input: str | Path,
    *,
    out: str | Path,
    keep: str | Sequence[str] | None = "none",
    on_error: OnError = "fail",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    task_rows: int = DEFAULT_TASK_ROWS,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    drift_options: DriftOptions | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    on_chunk: OnChunk | None = None,
    dask_progress: bool = False,
    project: str | Path | None = None,
) -> ScoreResult:
    """Score every row of ``input`` with the Bento's model into the Parquet ``out``.

    ``bento``: a tag in the BentoML store or a Bento folder. ``input``: a CSV or Parquet file, a
    folder of Parquet parts or a glob; ``out`` is a Parquet file for a file and a folder of parts
    (named as the input's) for a folder or glob. ``keep``: input columns copied beside the
    predictions (``"all"``, ``"none"`` or names; the output always has ``row``, the input-wide
    row number from 0). ``on_error``: ``fail`` stops at the first refused row and writes no
    output, ``skip`` scores the others; both list the refused rows in ``<out>.errors.csv``.
    ``workers``: a local Dask cluster of that many worker processes; ``scheduler``: the address
    of a running one (``tcp://host:port``). ``on_chunk``: called after each chunk (in process;
    on Dask after each task). ``dask_progress``: show Dask's progress bar. ``project``: the
    project (its folder or ``workbench.yaml``) whose records vouch for the Bento's bytes
    (:mod:`workbench.integrity`); default the nearest ``workbench.yaml`` at or above the current
    folder. Drift and data quality: with the Bento's ``monitor:`` (``drift_options`` overrides
    its drift options).

    Raises :class:`~workbench.errors.DataError` (a wrong input or output, refused rows under
    ``fail``) and :class:`~workbench.errors.ConfigError` (an unknown Bento) before any work
    where it can.
    """
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    engine = Engine(chunk_rows, task_rows, workers, scheduler, progress=dask_progress)
    opened = open_bento(bento, project=project)
    job = plan_job(
        opened,
        input,
        Path(out),
        keep=keep,
        on_error=on_error,
        sample_rows=sample_rows,
        overwrite=overwrite,
        engine=engine,
    )
    scored = run_job(job, engine.runner(), on_chunk=_with_total(on_chunk, job.input.rows))
    drift = drift_of(opened, job, scored, options=drift_options)
    result = score_result(opened, job, scored, drift, started_at=started_at)
    record_score(job.outputs, result)
    return result


@dataclass(frozen=True)
class OpenedBento:
    """A Bento's files a job reads, once the project's records vouch for them (``vouched``: the
    hashes every process that loads the model checks again): its model card and its drift
    reference (None, and why, for a Bento packaged before drift references)."""

    source: BentoSource
    vouched: VouchedBento
    card: ModelCard
    reference: dict[str, Any] | None
    drift_skipped: str | None

    @property
    def columns(self) -> list[dict[str, Any]]:
        return [c.model_dump() for c in self.card.input_schema.columns]

    @property
    def names(self) -> list[str]:
        return [str(c["name"]) for c in self.columns]

    @property
    def runtime(self) -> str:
        return self.card.runtime.runtime


def open_bento(bento: str | Path, *, project: str | Path | None = None) -> OpenedBento:
    """The Bento named by a tag or a folder, if the records of ``project`` (a folder or its
    ``workbench.yaml``; default :func:`~workbench.integrity.find_project`) vouch for its files
    and model, with its model card and drift reference."""
    source = find_bento(bento)
    given = Path(project) if project is not None else find_project()
    root = (given.parent if given.is_file() else given).resolve()
    vouched = verify_bento(root, source.tag, path=source.src.parent)
    card = read_model_card(source)
    try:
        return OpenedBento(source, vouched, card, read_reference(source), None)
    except DataError as exc:
        return OpenedBento(source, vouched, card, None, str(exc))


@dataclass(frozen=True)
class Job:
    """A checked job: its input (parts and hashes), its outputs, its tasks and their spec."""

    input: ScoringInput
    files: list[ScoredFile]
    outputs: Outputs
    spec: TaskSpec
    tasks: list[Task]


def plan_job(
    bento: OpenedBento,
    given: str | Path,
    out: Path,
    *,
    keep: str | Sequence[str] | None,
    on_error: OnError,
    sample_rows: int,
    overwrite: bool,
    engine: Engine,
) -> Job:
    """Check the input against the Bento's columns, the kept columns and the output, hash the
    input files and cut them into the engine's tasks."""
    kinds = {str(c["name"]): str(c["kind"]) for c in bento.columns}
    source = resolve_input(given, bento.names, bento=bento.source.tag, kinds=kinds)
    kept = _keep(keep, source)
    outputs = check_outputs(out, source, overwrite=overwrite)
    spec = TaskSpec(
        str(bento.source.src.resolve()),
        bento.columns,
        kept,
        on_error,
        engine.chunk_rows,
        {} if bento.reference is None else sample_kinds(bento.reference, bento.names),
        sample_rows,
        bento.vouched,
    )
    return Job(source, _hash_inputs(source), outputs, spec, engine.plan(source))


def _keep(keep: str | Sequence[str] | None, source: ScoringInput) -> list[str] | None:
    """``"all"``/None: every input column; ``"none"``/[]: none; else those columns."""
    if keep is None or keep == "all":
        if ROW_COLUMN in source.columns:
            raise DataError(
                f"{source.given!r} has a column named {ROW_COLUMN!r}, which the output uses for "
                "row numbers; choose the columns to keep (keep=['id', ...]) without it"
            )
        return None
    names = [] if keep == "none" else ([keep] if isinstance(keep, str) else list(keep))
    names = [n for part in names for n in str(part).split(",") if n.strip()]
    unknown = [n for n in names if n not in source.columns]
    if unknown:
        raise DataError(
            f"keep: {', '.join(map(repr, unknown))} not in {source.given!r} (columns: "
            f"{', '.join(source.columns[:10])}); name columns of the input, 'all' or 'none'"
        )
    if ROW_COLUMN in names:
        raise DataError(f"keep: {ROW_COLUMN!r} is the output's row number; do not keep it")
    return names


def _hash_inputs(source: ScoringInput) -> list[ScoredFile]:
    return [
        ScoredFile(
            path=str(Path(p.path).resolve()),
            sha256=sha256_file(Path(p.path)),
            bytes=Path(p.path).stat().st_size,
            rows=p.rows,
        )
        for p in source.parts
    ]


def _with_total(on_chunk: OnChunk | None, total: int | None) -> OnChunk | None:
    """``on_chunk`` told the input's rows with every chunk (when known)."""
    if on_chunk is None:
        return None
    report = on_chunk

    def with_total(chunk: ChunkDone) -> None:
        report(replace(chunk, total=total))

    return with_total


@dataclass(frozen=True)
class Scored:
    """What running a job did: the runner's account, the seconds from the first task started to
    the last one done, and the refused rows' file (None when every row was scored)."""

    ran: Ran
    seconds: float
    errors_file: Path | None

    @property
    def rows_read(self) -> int:
        return sum(o.rows_read for o in self.ran.outcomes)

    @property
    def rows_scored(self) -> int:
        return sum(o.rows_scored for o in self.ran.outcomes)

    @property
    def rows_rejected(self) -> int:
        return sum(o.rows_rejected for o in self.ran.outcomes)

    @property
    def startup_seconds(self) -> float:
        """Starting or reaching the cluster, and the slowest model load of a process."""
        loads = (o.load_seconds for o in self.ran.outcomes)
        return self.ran.startup_seconds + max(loads, default=0.0)


def run_job(job: Job, runner: Runner, *, on_chunk: OnChunk | None) -> Scored:
    """Run the tasks under a temporary folder and publish what they wrote: the error file in
    any case, the predictions only when no task stopped on a refused row (else one message)."""
    with temporary_folder(job.outputs) as folder:
        started = time.perf_counter()
        ran = runner.run(job.tasks, job.spec, folder, on_chunk)
        seconds = time.perf_counter() - started
        has_errors = publish_errors(folder, job.tasks, job.outputs)
        scored = Scored(ran, seconds, job.outputs.errors if has_errors else None)
        if any(o.stopped for o in ran.outcomes):
            first = min((o for o in ran.outcomes if o.first_refusal), key=lambda o: o.index)
            raise DataError(
                f"{scored.rows_rejected:,} row(s) of {job.input.given!r} refused (first: "
                f"{first.first_refusal}); all listed in {job.outputs.errors}; nothing was written "
                f"to {job.outputs.out}. Fix those rows, or score the others with --on-error skip"
            )
        publish_predictions(folder, job.tasks, job.input, job.outputs)
    return scored


def drift_of(
    bento: OpenedBento, job: Job, scored: Scored, *, options: DriftOptions | None
) -> DriftResult | None:
    """The drift and data-quality report of the scored rows against the Bento's reference, judged
    by its ``monitor:`` (None without a reference)."""
    if bento.reference is None:
        return None
    sample = DriftSample(job.spec.drift_kinds, job.spec.sample_rows)
    for outcome in scored.ran.outcomes:
        if outcome.sample is not None:
            sample.merge(outcome.sample)
    inputs = set(bento.names)
    return window_report(
        bento.source,
        bento.card,
        bento.reference,
        sample.windows(),
        file=job.input.given,
        file_sha256=_digest(job.files),
        file_bytes=sum(f.bytes for f in job.files),
        rows=scored.rows_scored,
        ignored_columns=[c for c in job.input.columns if c not in inputs],
        options=options,
    )


def _digest(files: Iterable[ScoredFile]) -> str:
    listed = list(files)
    if len(listed) == 1:
        return listed[0].sha256
    digest = hashlib.sha256()
    for f in listed:
        digest.update(f"{f.path}\0{f.sha256}\n".encode())
    return digest.hexdigest()


def score_result(
    bento: OpenedBento, job: Job, scored: Scored, drift: DriftResult | None, *, started_at: str
) -> ScoreResult:
    seconds, startup, rows = scored.seconds, scored.startup_seconds, scored.rows_read
    return ScoreResult(
        bento_tag=bento.source.tag,
        model_tag=bento.card.model_tag,
        runtime=bento.runtime,
        input=job.input.given,
        inputs=job.files,
        output=str(job.outputs.out.resolve()),
        partitioned=job.input.partitioned,
        errors_file=None if scored.errors_file is None else str(scored.errors_file.resolve()),
        on_error=job.spec.on_error,
        rows_read=rows,
        rows_scored=scored.rows_scored,
        rows_rejected=scored.rows_rejected,
        seconds=seconds,
        rows_per_second=rows / seconds if seconds > 0 else 0.0,
        startup_seconds=startup,
        scoring_rows_per_second=rows / (seconds - startup) if seconds > startup else 0.0,
        chunk_rows=job.spec.chunk_rows,
        tasks=len(job.tasks),
        engine=scored.ran.engine,
        worker_processes=len({o.pid for o in scored.ran.outcomes}),
        drift=drift,
        drift_skipped=bento.drift_skipped,
        started_at=started_at,
    )


def record_score(outputs: Outputs, result: ScoreResult) -> None:
    """``<out>.score.json``, and the drift report beside it (JSON and HTML) when there is one."""
    write_atomic(outputs.record, result.to_json() + "\n")
    if result.drift is not None:
        write_atomic(outputs.drift_json, result.drift.to_json() + "\n")
        write_atomic(outputs.drift_html, drift_page(result.drift))
