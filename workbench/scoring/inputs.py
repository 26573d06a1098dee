"""What to score: a CSV or Parquet file, a folder or a glob of Parquet parts, checked up front.

:func:`resolve_input` finds the parts, reads only their schemas (Parquet footers, a CSV's header)
and refuses a wrong file (unknown format, unreadable, a missing model column) with one message
before any row is scored. :func:`plan_tasks` cuts the parts into tasks of whole Parquet row groups
(a CSV is one task), each knowing the position of its first row in the whole input, so row numbers
are the same in process and on a cluster. :func:`read_chunks` streams one task's rows as Arrow
record batches of at most ``chunk_rows`` rows: memory follows the chunk, not the file.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from workbench.errors import DataError
from workbench.runtime.columns import COLUMN_KINDS, ColumnKind

Format = Literal["csv", "parquet"]
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
CSV_BLOCK_BYTES = 8 << 20
"""Bytes of CSV text decoded at a time (pyarrow's streaming reader)."""


@dataclass(frozen=True)
class InputPart:
    """One file of the input."""

    path: str
    format: Format
    name: str
    """Its name in a partitioned output (the path under the folder, or the file name)."""
    rows: int | None
    """Known for Parquet (from the footer), None for CSV."""
    row_groups: tuple[int, ...] = ()
    """Rows in each Parquet row group."""


@dataclass(frozen=True)
class ScoringInput:
    """The parts of an input, in order, and whether the output is partitioned like them."""

    given: str
    parts: tuple[InputPart, ...]
    partitioned: bool
    columns: tuple[str, ...]
    """The columns of the first part (every part has the model's columns)."""

    @property
    def rows(self) -> int | None:
        """Every row of the input, when known (Parquet)."""
        counts = [p.rows for p in self.parts]
        return None if any(c is None for c in counts) else sum(c or 0 for c in counts)


@dataclass(frozen=True)
class Task:
    """A run of rows of one part, scored by one worker into one output file."""

    index: int
    part: InputPart
    first_row: int | None
    """The input-wide number of its first row (None: a CSV after another CSV, never planned)."""
    row_groups: tuple[int, ...] | None
    """The Parquet row groups it reads (None: the whole file)."""
    rows: int | None
    skip: int = 0
    """Rows of its row groups before its own (a slice of one large row group; see
    :func:`plan_tasks`): read past, not scored."""


def _format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise DataError(
        f"{str(path)!r}: unsupported format {suffix or '(no suffix)'!r}; give a .csv or "
        ".parquet file, a folder of .parquet parts or a glob such as 'data/*.parquet'"
    )


def _paths(given: str) -> tuple[list[tuple[Path, str]], bool]:
    """(path, name in a partitioned output) of each part, and whether the input is partitioned."""
    path = Path(given)
    if path.is_file():
        return [(path, path.name)], False
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in PARQUET_SUFFIXES)
        if not found:
            raise DataError(
                f"folder {given!r} holds no .parquet files; give a folder of Parquet parts, "
                "a CSV or Parquet file, or a glob"
            )
        return [(p, str(p.relative_to(path))) for p in found], True
    if glob.has_magic(given):
        matched = sorted(Path(p) for p in glob.glob(given, recursive=True) if Path(p).is_file())
        if not matched:
            raise DataError(f"no file matches {given!r}; check the pattern")
        if any(p.suffix.lower() not in PARQUET_SUFFIXES for p in matched):
            odd = next(p for p in matched if p.suffix.lower() not in PARQUET_SUFFIXES)
            raise DataError(
                f"{given!r} matches {str(odd)!r}, which is not a .parquet file; a glob names "
                "Parquet parts only (score a CSV file on its own)"
            )
        names = [p.name for p in matched]
        if len(set(names)) != len(names):
            raise DataError(
                f"{given!r} matches two parts with the same file name; give their folder instead"
            )
        return [(p, p.name) for p in matched], True
    raise DataError(f"input {given!r} not found: give a CSV or Parquet file, a folder or a glob")


def _csv_columns(path: Path) -> list[str]:
    try:
        with pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=1 << 16),
            convert_options=pa_csv.ConvertOptions(column_types={}, strings_can_be_null=True),
        ) as reader:
            return [str(n) for n in reader.schema.names]
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{str(path)!r} is not a readable CSV file ({type(exc).__name__}: {exc})"
        ) from exc


def _holds(kind: ColumnKind, arrow_type: pa.DataType) -> bool:
    """Whether a Parquet column of ``arrow_type`` can hold values of ``kind``: the types JSON
    would carry for the service, which refuses ``"3"`` for an integer, ``1`` for a category and
    ``true`` for a number (an all-null column fits any kind; a pandas category column is
    judged by its values)."""
    if pa.types.is_null(arrow_type):
        return True
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return any(getattr(pa.types, predicate)(arrow_type) for predicate in kind.parquet)


def _check_types(path: Path, schema: pa.Schema, kinds: Mapping[str, str], bento: str) -> None:
    """One message for the first model column whose Parquet type cannot hold its kind."""
    for name, kind in kinds.items():
        if name not in schema.names or kind not in COLUMN_KINDS:
            continue
        arrow_type = schema.field(name).type
        column_kind = COLUMN_KINDS[kind]
        if not _holds(column_kind, arrow_type):
            raise DataError(
                f"{str(path)!r}: column {name!r} holds {arrow_type} values, but Bento {bento} "
                f"takes {column_kind.parquet_values} for it (its schema kind is {kind}), and the "
                "service would refuse "
                "every row; convert the column and write the file again"
            )


def _part(
    path: Path, name: str, kinds: Mapping[str, str], bento: str
) -> tuple[InputPart, list[str]]:
    fmt = _format(path)
    if fmt == "csv":
        return InputPart(str(path), fmt, name, None), _csv_columns(path)
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{str(path)!r} is not a readable Parquet file ({type(exc).__name__}: {exc}); "
            "check that it was written completely"
        ) from exc
    groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    arrow_schema = meta.schema.to_arrow_schema()
    _check_types(path, arrow_schema, kinds, bento)
    columns = [str(n) for n in arrow_schema.names]
    return InputPart(str(path), fmt, name, meta.num_rows, groups), columns


def resolve_input(
    given: str | Path,
    required: Sequence[str],
    *,
    bento: str,
    kinds: Mapping[str, str] | None = None,
) -> ScoringInput:
    """The parts of ``given``, each checked to hold every column in ``required``, of a type
    that can hold its schema kind in ``kinds`` (column -> kind; Parquet, whose columns are
    typed: a CSV's cells are all text, checked row by row)."""
    paths, partitioned = _paths(str(given))
    parts: list[InputPart] = []
    first: list[str] = []
    for path, name in paths:
        part, columns = _part(path, name, kinds or {}, bento)
        missing = [c for c in required if c not in set(columns)]
        if missing:
            raise DataError(
                f"{str(path)!r} lacks {len(missing)} of the model's {len(required)} input "
                f"columns: {', '.join(map(repr, missing[:10]))}"
                f"{' ...' if len(missing) > 10 else ''}; every row needs each input column of "
                f"Bento {bento} (extra columns are carried along or ignored)"
            )
        parts.append(part)
        first = first or columns
    if sum(p.format == "csv" for p in parts) and len(parts) > 1:  # never: globs are Parquet
        raise DataError(f"{str(given)!r}: score one CSV file at a time")
    return ScoringInput(str(given), tuple(parts), partitioned, tuple(first))


def plan_tasks(source: ScoringInput, *, task_rows: int) -> list[Task]:
    """Tasks of about ``task_rows`` rows (whole row groups, at least one); one per CSV. A row
    group of at least twice ``task_rows`` rows is split into slices of ``task_rows`` rows, so a
    file written as one large row group still spreads over the workers (each slice's worker
    reads the group up to the slice's end)."""
    tasks: list[Task] = []
    offset: int | None = 0
    for part in source.parts:
        if part.format == "csv":
            tasks.append(Task(len(tasks), part, offset, None, None))
            offset = None
            continue
        groups: list[int] = []
        rows = 0
        start = offset
        for index, count in enumerate(part.row_groups):
            if count >= 2 * task_rows:
                if groups:
                    tasks.append(Task(len(tasks), part, start, tuple(groups), rows))
                    start = None if start is None else start + rows
                    groups, rows = [], 0
                for skip in range(0, count, task_rows):
                    first = None if start is None else start + skip
                    size = min(task_rows, count - skip)
                    tasks.append(Task(len(tasks), part, first, (index,), size, skip))
                start = None if start is None else start + count
                continue
            groups.append(index)
            rows += count
            if rows >= task_rows:
                tasks.append(Task(len(tasks), part, start, tuple(groups), rows))
                start = None if start is None else start + rows
                groups, rows = [], 0
        if groups or not part.row_groups:
            tasks.append(Task(len(tasks), part, start, tuple(groups), rows))
        offset = None if offset is None else offset + (part.rows or 0)
    return tasks


def csv_options(columns: Sequence[str]) -> pa_csv.ConvertOptions:
    """Every column read as text (a null when empty): the scorer converts the model's columns by
    their kind, row by row refusals included, where pyarrow's type inference would stop the
    whole file at the first value that does not fit the type it guessed."""
    return pa_csv.ConvertOptions(
        column_types={c: pa.string() for c in columns}, strings_can_be_null=True
    )


def _window(
    batches: Iterator[pa.RecordBatch], skip: int, rows: int | None
) -> Iterator[pa.RecordBatch]:
    """The ``rows`` rows of ``batches`` after the first ``skip`` (None: all after them)."""
    for batch in batches:
        if rows is not None and rows <= 0:
            return
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        batch = batch.slice(skip, rows)
        skip = 0
        if rows is not None:
            rows -= batch.num_rows
        yield batch


def read_chunks(
    task: Task, *, chunk_rows: int, columns: Sequence[str] | None
) -> Iterator[pa.RecordBatch]:
    """The task's rows, at most ``chunk_rows`` at a time (``columns``: which ones; None: all)."""
    part = task.part
    if part.format == "parquet":
        file = pq.ParquetFile(part.path, pre_buffer=False, buffer_size=1 << 16)
        groups = list(task.row_groups) if task.row_groups else None
        if task.row_groups == ():
            return
        batches = file.iter_batches(
            batch_size=chunk_rows, row_groups=groups, columns=columns, use_threads=False
        )
        yield from _window(batches, task.skip, task.rows)
        return
    names = _csv_columns(Path(part.path))
    with pa_csv.open_csv(
        part.path,
        read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
        convert_options=csv_options(names),
    ) as reader:
        for batch in reader:
            if columns is not None:
                batch = batch.select(list(columns))
            for start in range(0, batch.num_rows, chunk_rows):
                yield batch.slice(start, chunk_rows)
