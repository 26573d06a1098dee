"""Where a scoring job writes, and how its files reach their final names all at once.

Tasks write under a hidden temporary folder beside ``out`` (one Parquet file and one error CSV
per task, :func:`task_files`); :func:`publish` moves the error list and the predictions to their
final names only when the job is done, so an interrupted or failed job leaves nothing under them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from workbench.errors import DataError
from workbench.scoring.inputs import ScoringInput, Task


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


def check_outputs(out: Path, source: ScoringInput, *, overwrite: bool) -> Outputs:
    """The outputs of a job scoring ``source`` into ``out``, refused when they would replace
    files (unless ``overwrite``), sit in a missing folder or name a file for a folder of parts."""
    paths = [out, outputs_of(out).record]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise DataError(
            f"{str(existing[0])!r} exists; remove it, choose another output or replace it "
            "(--overwrite; overwrite=True)"
        )
    if not out.parent.is_dir():
        raise DataError(f"output folder {str(out.parent)!r} does not exist; create it first")
    if source.partitioned and out.suffix.lower() in (".parquet", ".pq"):
        raise DataError(
            f"{source.given!r} is partitioned, so the output is a folder of parts: give "
            f"--out a folder path, not {str(out)!r}"
        )
    return outputs_of(out)


@dataclass(frozen=True)
class TaskFiles:
    """One task's files under the job's temporary folder: its predictions and refused rows."""

    out: Path
    errors: Path


def task_files(folder: Path, task: Task) -> TaskFiles:
    return TaskFiles(
        folder / "parts" / f"{task.index:06d}.parquet", folder / "errors" / f"{task.index:06d}.csv"
    )


@contextmanager
def temporary_folder(outputs: Outputs) -> Iterator[Path]:
    """A hidden folder beside the output for the tasks' files, removed whatever happens."""
    tmp = outputs.out.with_name(f".{outputs.out.name}.tmp-{uuid.uuid4().hex[:12]}")
    tmp.mkdir()
    try:
        (tmp / "parts").mkdir()
        (tmp / "errors").mkdir()
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_errors(folder: Path, tasks: Sequence[Task], outputs: Outputs) -> bool:
    """The tasks' refused rows as ``<out>.errors.csv`` (one header); False, and no such file,
    when every row was scored."""
    present = [f for f in (task_files(folder, t).errors for t in tasks) if f.is_file()]
    if not present:
        outputs.errors.unlink(missing_ok=True)
        return False
    joined = folder / "errors.csv"
    with open(joined, "w", encoding="utf-8", newline="") as out:
        for i, file in enumerate(present):
            with open(file, encoding="utf-8", newline="") as fh:
                header = fh.readline()
                if i == 0:
                    out.write(header)
                shutil.copyfileobj(fh, out)
    os.replace(joined, outputs.errors)
    return True


def publish_predictions(
    folder: Path, tasks: Sequence[Task], source: ScoringInput, outputs: Outputs
) -> None:
    """The tasks' predictions under the final name: one file (a file's input) or a folder of
    parts named as the input's (tasks of the same part are merged)."""
    by_part: dict[str, list[Path]] = {}
    for task in tasks:
        by_part.setdefault(task.part.name, []).append(task_files(folder, task).out)
    if not source.partitioned:
        (files,) = by_part.values()
        single = files[0] if len(files) == 1 else _merge_parts(files, folder / "merged.parquet")
        _replace(single, outputs.out)
        return
    parts = folder / "out"
    for name, files in by_part.items():
        target = parts / Path(name).with_suffix(".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        if len(files) == 1:
            files[0].rename(target)
        else:
            _merge_parts(files, target)
    _replace(parts, outputs.out)


def _replace(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final`` (a file or a folder), replacing what was there."""
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _merge_parts(parts: Sequence[Path], into: Path) -> Path:
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
    return into
