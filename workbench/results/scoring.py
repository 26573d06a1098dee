"""The record of a batch scoring job (``score.json``)."""

from __future__ import annotations

from typing import Literal

from workbench.results.base import Result
from workbench.results.monitoring import DriftResult


class ScoredFile(Result):
    """One input file: where, its sha256, its size and (Parquet) its rows."""

    path: str
    sha256: str
    bytes: int
    rows: int | None


class ScoreResult(Result):
    """What ``workbench score`` did: inputs with hashes, the Bento, rows scored and refused,
    throughput, where the outputs are, and the drift report of the scored rows."""

    bento_tag: str
    model_tag: str
    runtime: str
    """What answered: ``onnx`` (the compiled graph) or ``sklearn``."""
    input: str
    """The input as given (a file, a folder or a glob)."""
    inputs: list[ScoredFile]
    output: str
    partitioned: bool
    errors_file: str | None
    """CSV of refused rows (row, field, message); None when every row was scored."""
    on_error: Literal["fail", "skip"]
    rows_read: int
    rows_scored: int
    rows_rejected: int
    seconds: float
    """From the first task started to the last one done (cluster start and model loads in)."""
    rows_per_second: float
    """``rows_read / seconds``."""
    startup_seconds: float
    """Starting or reaching the cluster, and the slowest model load of a process."""
    scoring_rows_per_second: float
    """``rows_read / (seconds - startup_seconds)``: the steady rate, what a longer file gets."""
    chunk_rows: int
    tasks: int
    engine: str
    """``in process``, ``local dask cluster (N workers)`` or the scheduler's address."""
    worker_processes: int
    """Distinct processes that scored (each loaded the model once)."""
    drift: DriftResult | None
    drift_skipped: str | None = None
    """Why there is no drift report (a Bento packaged before drift references)."""
    started_at: str
