"""The ``score`` command: a file (or a folder or glob of parts) through a Bento's model in batch."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from workbench.cli.arguments import rows
from workbench.reports.monitoring import verdict_line
from workbench.reports.quality import quality_table, status_line
from workbench.reports.text import drift_table
from workbench.scoring import ChunkDone, outputs_of, score


def add_commands(sub: Any) -> None:
    """``score``."""
    score_p = sub.add_parser(
        "score",
        help="score a CSV/Parquet file (or a folder or glob of parts) with a Bento's model",
        description=(
            "Stream INPUT through the Bento's row rules and model a chunk at a time (memory "
            "follows the chunk, not the file), in process or on Dask, and write Parquet "
            "predictions to OUT under a temporary name renamed at the end; beside it "
            "OUT.errors.csv (refused rows: row, field, message), OUT.score.json (the record) "
            "and OUT.drift.json/.html (the scored rows' drift and data quality against the Bento's "
            "training data)."
        ),
    )
    score_p.add_argument("bento", help="a Bento tag in the BentoML store, or a Bento folder")
    score_p.add_argument(
        "input", help="a CSV or Parquet file, a folder of Parquet parts, or a glob ('d/*.parquet')"
    )
    score_p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="a .parquet file (a file's input) or a folder (a folder's or glob's input: one part "
        "per input part); missing folders above it are created",
    )
    score_p.add_argument(
        "--keep",
        default="none",
        metavar="COLUMNS",
        help="input columns copied beside the predictions: 'none' (default; the output always "
        "has 'row', the row number from 0), 'all', or names such as 'id' or 'id,date'",
    )
    score_p.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="a row the service would refuse: fail the job (default; nothing is written but "
        "the error file) or skip it; both list refused rows in OUT.errors.csv",
    )
    _add_engine_options(score_p)
    score_p.add_argument(
        "--overwrite", action="store_true", help="replace an existing OUT and its record"
    )
    score_p.add_argument(
        "--config",
        metavar="PATH",
        help="the workbench.yaml of the project whose records vouch for the Bento's bytes "
        "(default: the nearest one at or above the current folder)",
    )
    score_p.set_defaults(func=_cmd_score)


def _add_engine_options(score_p: Any) -> None:
    """How the job runs: the chunk size, and in process or on Dask."""
    score_p.add_argument(
        "--chunk-rows",
        type=rows,
        default=65_536,
        metavar="N",
        help="rows read, checked and predicted at a time (default: %(default)s)",
    )
    where = score_p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=rows, metavar="N", help="score on a local Dask cluster of N processes"
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="score on a running Dask cluster (tcp://HOST:PORT); its workers need workbench, "
        "the Bento's store (BENTOML_HOME) and the files at the same paths",
    )


def _score_progress(
    *, dask: bool
) -> tuple[Callable[[ChunkDone], None] | None, Callable[[], None], bool]:
    """(per-chunk callback, closer, Dask bar?): a bar on a terminal (Dask's own on a cluster),
    one line per chunk (per task on a cluster) under CI=true, nothing otherwise."""
    if os.environ.get("CI", "").lower() == "true":
        done = [0, 0]

        def line(chunk: ChunkDone) -> None:
            done[0] += chunk.rows
            done[1] += chunk.rejected
            of = f"/{chunk.total:,}" if chunk.total else ""
            print(f"scored {done[0]:,}{of} rows ({done[1]:,} refused)", flush=True)

        return line, lambda: None, False
    if not sys.stderr.isatty():
        return None, lambda: None, False
    if dask:
        return None, lambda: None, True
    from tqdm import tqdm

    bar = tqdm(unit="rows", unit_scale=True, desc="scoring", file=sys.stderr)

    def update(chunk: ChunkDone) -> None:
        if bar.total is None and chunk.total:
            bar.total = chunk.total
        bar.update(chunk.rows)

    return update, bar.close, False


@contextmanager
def output_folder(out: str) -> Iterator[None]:
    """The folder ``--out`` goes into, created when missing (``--out scored/new.parquet`` in a
    fresh project); the folders created are removed again when the job fails and leaves them
    empty."""
    parent = Path(out).expanduser().absolute().parent
    created = [p for p in (parent, *parent.parents) if not p.exists()]  # deepest first
    parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in created:
            with suppress(OSError):  # not empty (the error file of a failed job): kept
                folder.rmdir()
        raise


def _cmd_score(args: argparse.Namespace) -> int:
    on_chunk, close, dask_bar = _score_progress(dask=bool(args.workers or args.scheduler))
    try:
        with output_folder(args.out):
            result = score(
                args.bento,
                args.input,
                out=args.out,
                keep=args.keep,
                on_error=args.on_error,
                chunk_rows=args.chunk_rows,
                workers=args.workers,
                scheduler=args.scheduler,
                overwrite=args.overwrite,
                on_chunk=on_chunk,
                dask_progress=dask_bar,
                project=args.config,
            )
    finally:
        close()
    outputs = outputs_of(args.out)
    print(
        f"Bento {result.bento_tag} ({result.runtime}), {result.engine}: {result.rows_scored:,} "
        f"of {result.rows_read:,} rows scored, {result.rows_rejected:,} refused, "
        f"{result.rows_per_second:,.0f} rows/s"
    )
    print(f"predictions: {result.output}")
    if result.errors_file:
        print(f"refused rows: {result.errors_file}")
    if result.drift is not None:
        print("\n" + drift_table(result.drift) + "\n")
        print(verdict_line(result.drift))
        if result.drift.quality is not None:
            print("\n" + quality_table(result.drift.quality) + "\n")
        print(f"the scored rows: {status_line(result.drift)}")
        print(f"drift and data-quality report: {outputs.drift_html}")
    else:
        print(f"no drift report: {result.drift_skipped}")
    print(f"record: {outputs.record}")
    return 0
