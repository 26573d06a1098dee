"""``score()``: a Bento's model over a file, a folder or a glob, in process or on Dask.

The job checks everything it can before scoring a row (the Bento, the input's format and
columns, the output path), then runs its tasks (:mod:`workbench.scoring.task`) in this process or
on a ``dask.distributed`` cluster, where each worker loads the model once and writes its own
output files. Everything is written under temporary names beside ``out`` and renamed at the end:
an interrupted or failed job leaves nothing under the final names. Beside the output it writes
``<out>.errors.csv`` (refused rows), ``<out>.score.json`` (:class:`ScoreResult`) and the drift
report of the scored rows against the Bento's reference (``<out>.drift.json`` and ``.html``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from workbench.artifacts import sha256_file, write_atomic
from workbench.errors import DataError
from workbench.monitoring import find_bento, read_model_card, read_reference, window_report
from workbench.reports.monitoring import drift_page
from workbench.results import ScoredFile, ScoreResult
from workbench.runtime.drift import DriftOptions
from workbench.scoring.inputs import ScoringInput, Task, plan_tasks, resolve_input
from workbench.scoring.sample import DEFAULT_SAMPLE_ROWS, DriftSample, sample_kinds
from workbench.scoring.task import (
    ROW_COLUMN,
    ChunkDone,
    OnError,
    TaskOutcome,
    TaskSpec,
    run_task,
)

DEFAULT_CHUNK_ROWS = 65_536
DEFAULT_TASK_ROWS = 1 << 20


@dataclass(frozen=True)
class Outputs:
    """Where a job writes: the predictions and the files beside them."""

    out: Path

    def sibling(self, suffix: str) -> Path:
        return self.out.with_name(self.out.name + suffix)

    @property
    def errors(self) -> Path:
        return self.sibling(".errors.csv")

    @property
    def record(self) -> Path:
        return self.sibling(".score.json")

    @property
    def drift_json(self) -> Path:
        return self.sibling(".drift.json")

    @property
    def drift_html(self) -> Path:
        return self.sibling(".drift.html")


def outputs_of(out: str | Path) -> Outputs:
    return Outputs(Path(out))


def _keep(keep: str | Sequence[str] | None, source: ScoringInput, bento: str) -> list[str] | None:
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


def _check_out(out: Path, *, overwrite: bool) -> None:
    paths = [out, outputs_of(out).record]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise DataError(
            f"{str(existing[0])!r} exists; remove it, choose another output or replace it "
            "(--overwrite; overwrite=True)"
        )
    if not out.parent.is_dir():
        raise DataError(f"output folder {str(out.parent)!r} does not exist; create it first")


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


def _digest(files: Iterable[ScoredFile]) -> str:
    listed = list(files)
    if len(listed) == 1:
        return listed[0].sha256
    digest = hashlib.sha256()
    for f in listed:
        digest.update(f"{f.path}\0{f.sha256}\n".encode())
    return digest.hexdigest()


def _replace(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final`` (a file or a folder), replacing what was there."""
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _merge_parts(parts: Sequence[Path], into: Path) -> None:
    """Stream the row groups of ``parts`` into one Parquet file (one row group in memory)."""
    writer: pq.ParquetWriter | None = None
    try:
        for part in parts:
            file = pq.ParquetFile(part)
            for group in range(file.num_row_groups):
                table = file.read_row_group(group)
                if writer is None:
                    writer = pq.ParquetWriter(into, table.schema)
                writer.write_table(table)
            if writer is None and file.num_row_groups == 0:
                writer = pq.ParquetWriter(into, file.schema_arrow)
    finally:
        if writer is not None:
            writer.close()


def _concat_errors(files: Sequence[Path], into: Path) -> bool:
    """One CSV of the tasks' error files (one header); False when there were none."""
    present = [f for f in files if f.is_file()]
    if not present:
        return False
    with open(into, "w", encoding="utf-8", newline="") as out:
        for i, file in enumerate(present):
            with open(file, encoding="utf-8", newline="") as fh:
                header = fh.readline()
                if i == 0:
                    out.write(header)
                shutil.copyfileobj(fh, out)
    return True


def score(
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
    on_chunk: Callable[[ChunkDone], None] | None = None,
    dask_progress: bool = False,
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
    on Dask after each task). ``dask_progress``: show Dask's progress bar. Drift and data
    quality: with the Bento's ``monitor:`` (``drift_options`` overrides its drift options).

    Raises :class:`~workbench.errors.DataError` (a wrong input or output, refused rows under
    ``fail``) and :class:`~workbench.errors.ConfigError` (an unknown Bento) before any work
    where it can.
    """
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if chunk_rows < 1 or task_rows < 1:
        raise DataError(f"chunk_rows and task_rows must be positive, got {chunk_rows}, {task_rows}")
    if workers is not None and scheduler is not None:
        raise DataError("give workers (a local cluster) or scheduler (a running one), not both")
    if workers is not None and workers < 1:
        raise DataError(f"workers must be at least 1, got {workers}")
    source = find_bento(bento)
    card = read_model_card(source)
    try:
        reference: dict[str, Any] | None = read_reference(source)
        drift_skipped = None
    except DataError as exc:
        reference, drift_skipped = None, str(exc)
    columns = [c.model_dump() for c in card.input_schema.columns]
    names = [str(c["name"]) for c in columns]
    kinds = {str(c["name"]): str(c["kind"]) for c in columns}
    scoring_input = resolve_input(input, names, bento=source.tag, kinds=kinds)
    kept = _keep(keep, scoring_input, source.tag)
    out = Path(out)
    _check_out(out, overwrite=overwrite)
    if scoring_input.partitioned and out.suffix.lower() in (".parquet", ".pq"):
        raise DataError(
            f"{scoring_input.given!r} is partitioned, so the output is a folder of parts: give "
            f"--out a folder path, not {str(out)!r}"
        )
    files = _hash_inputs(scoring_input)
    kinds = sample_kinds(reference, names) if reference is not None else {}
    spec = TaskSpec(
        str(source.src.resolve()), columns, kept, on_error, chunk_rows, kinds, sample_rows
    )
    tasks = plan_tasks(scoring_input, task_rows=task_rows if (workers or scheduler) else 1 << 62)
    dist = bool(workers or scheduler)
    if on_chunk is not None:
        report, total = on_chunk, scoring_input.rows

        def on_chunk(chunk: ChunkDone) -> None:
            report(dataclasses.replace(chunk, total=total))

    outputs = outputs_of(out)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:12]}")
    tmp.mkdir()
    try:
        parts_dir = tmp / "parts"
        parts_dir.mkdir()
        errors_dir = tmp / "errors"
        errors_dir.mkdir()
        targets = _targets(tasks, scoring_input, parts_dir, dist)
        started = time.perf_counter()
        if dist:
            from workbench.scoring.cluster import run_on_dask  # dask.distributed only when used

            outcomes, engine, startup = run_on_dask(
                tasks,
                spec,
                targets,
                errors_dir,
                workers=workers,
                scheduler=scheduler,
                on_task=on_chunk,
                progress=dask_progress,
            )
        else:
            outcomes = _run_here(tasks, spec, targets, errors_dir, on_chunk)
            engine, startup = "in process", 0.0
        seconds = time.perf_counter() - started
        startup += max((o.load_seconds for o in outcomes), default=0.0)
        rows_read = sum(o.rows_read for o in outcomes)
        rows_scored = sum(o.rows_scored for o in outcomes)
        rejected = sum(o.rows_rejected for o in outcomes)
        error_parts = [errors_dir / f"{t.index:06d}.csv" for t in tasks]
        tmp_errors = tmp / "errors.csv"
        has_errors = _concat_errors(error_parts, tmp_errors)
        if has_errors:
            os.replace(tmp_errors, outputs.errors)
        else:
            outputs.errors.unlink(missing_ok=True)
        stopped = [o for o in outcomes if o.stopped]
        if stopped:
            first = min(
                (o for o in outcomes if o.first_refusal), key=lambda o: o.index
            ).first_refusal
            raise DataError(
                f"{rejected:,} row(s) of {scoring_input.given!r} refused (first: {first}); all "
                f"listed in {outputs.errors}; nothing was written to {out}. Fix those rows, or "
                "score the others with --on-error skip"
            )
        final_tmp = _assemble(tmp, tasks, targets, scoring_input, dist)
        _replace(final_tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    sample = DriftSample(kinds, sample_rows)
    for outcome in outcomes:
        if outcome.sample is not None:
            sample.merge(outcome.sample)
    drift = None
    if reference is not None:
        drift = window_report(
            source,
            card,
            reference,
            sample.windows(),
            file=scoring_input.given,
            file_sha256=_digest(files),
            file_bytes=sum(f.bytes for f in files),
            rows=rows_scored,
            ignored_columns=[c for c in scoring_input.columns if c not in set(names)],
            options=drift_options,
        )
    result = ScoreResult(
        bento_tag=source.tag,
        model_tag=card.model_tag,
        runtime=card.runtime.runtime,
        input=scoring_input.given,
        inputs=files,
        output=str(out.resolve()),
        partitioned=scoring_input.partitioned,
        errors_file=str(outputs.errors.resolve()) if has_errors else None,
        on_error=on_error,
        rows_read=rows_read,
        rows_scored=rows_scored,
        rows_rejected=rejected,
        seconds=seconds,
        rows_per_second=rows_read / seconds if seconds > 0 else 0.0,
        startup_seconds=startup,
        scoring_rows_per_second=rows_read / (seconds - startup) if seconds > startup else 0.0,
        chunk_rows=chunk_rows,
        tasks=len(tasks),
        engine=engine,
        worker_processes=len({o.pid for o in outcomes}),
        drift=drift,
        drift_skipped=drift_skipped,
        started_at=started_at,
    )
    write_atomic(outputs.record, result.to_json() + "\n")
    if drift is not None:
        write_atomic(outputs.drift_json, drift.to_json() + "\n")
        write_atomic(outputs.drift_html, drift_page(drift))
    return result


def _targets(
    tasks: Sequence[Task], source: ScoringInput, parts_dir: Path, dist: bool
) -> list[Path]:
    """Each task's output file: one per task under ``parts_dir``."""
    return [parts_dir / f"{t.index:06d}.parquet" for t in tasks]


def _assemble(
    tmp: Path, tasks: Sequence[Task], targets: Sequence[Path], source: ScoringInput, dist: bool
) -> Path:
    """The output under its temporary name: one file (a file's input) or a folder of parts
    named as the input's (tasks of the same part are merged)."""
    by_part: dict[str, list[Path]] = {}
    for task, target in zip(tasks, targets, strict=True):
        by_part.setdefault(task.part.name, []).append(target)
    if not source.partitioned:
        (only,) = by_part.values()
        if len(only) == 1:
            return only[0]
        merged = tmp / "merged.parquet"
        _merge_parts(only, merged)
        return merged
    folder = tmp / "out"
    for name, files in by_part.items():
        target = folder / Path(name).with_suffix(".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        if len(files) == 1:
            files[0].rename(target)
        else:
            _merge_parts(files, target)
    return folder


def _run_here(
    tasks: Sequence[Task],
    spec: TaskSpec,
    targets: Sequence[Path],
    errors_dir: Path,
    on_chunk: Callable[[ChunkDone], None] | None,
) -> list[TaskOutcome]:
    outcomes = []
    for task, target in zip(tasks, targets, strict=True):
        outcome = run_task(
            task, spec, str(target), str(errors_dir / f"{task.index:06d}.csv"), on_chunk=on_chunk
        )
        outcomes.append(outcome)
        if outcome.stopped:
            break
    return outcomes
