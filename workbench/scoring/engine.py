"""Where a scoring job's tasks run: this process or a ``dask.distributed`` cluster.

Both sit behind one :class:`Runner` protocol: given the tasks, their spec and the job's temporary
folder, a runner has each task write its files (:func:`~workbench.scoring.outputs.task_files`)
and returns what it did as :class:`Ran`. :class:`Engine` holds the options of how a job runs
(chunk and task sizes, local workers or a scheduler's address, Dask's progress bar), checks them
once, plans the tasks and picks the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workbench.errors import DataError
from workbench.scoring.cluster import DaskRunner
from workbench.scoring.inputs import ScoringInput, Task, plan_tasks
from workbench.scoring.outputs import task_files
from workbench.scoring.task import ChunkDone, Ran, TaskSpec, run_task

DEFAULT_CHUNK_ROWS = 65_536
DEFAULT_TASK_ROWS = 1 << 20
ONE_TASK_PER_PART = 1 << 62
"""Task rows in process: one task per part (a cluster's tasks spread the rows over workers)."""
TASKS_PER_WORKER = 4
"""On a local cluster, a Parquet input of fewer than ``workers * 4 * task_rows`` rows is cut into
about four tasks a worker (never below a chunk): every worker gets work, and the first rows are
scored after one such task rather than after a whole row group."""


class Runner(Protocol):
    """Runs a job's tasks, each writing its files under ``folder``."""

    def run(
        self,
        tasks: Sequence[Task],
        spec: TaskSpec,
        folder: Path,
        on_progress: Callable[[ChunkDone], None] | None,
    ) -> Ran:
        """Every task's outcome, in task order; with ``spec.on_error == "fail"`` the tasks after
        one that stopped on a refused row may not run. ``on_progress``: called as rows are done
        (after each chunk, or each task)."""
        ...


class InProcess:
    """The tasks one after the other in this process; progress after each chunk."""

    def run(
        self,
        tasks: Sequence[Task],
        spec: TaskSpec,
        folder: Path,
        on_progress: Callable[[ChunkDone], None] | None,
    ) -> Ran:
        outcomes = []
        for task in tasks:
            files = task_files(folder, task)
            outcome = run_task(task, spec, str(files.out), str(files.errors), on_chunk=on_progress)
            outcomes.append(outcome)
            if outcome.stopped:
                break
        return Ran(outcomes, engine="in process", startup_seconds=0.0)


@dataclass(frozen=True)
class Engine:
    """How a job runs: rows per chunk in memory, rows per task on a cluster, and where the tasks
    run (``workers``: a local Dask cluster of that many processes; ``scheduler``: the address of
    a running one; neither: this process). ``progress``: show Dask's progress bar."""

    chunk_rows: int = DEFAULT_CHUNK_ROWS
    task_rows: int = DEFAULT_TASK_ROWS
    workers: int | None = None
    scheduler: str | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.chunk_rows < 1 or self.task_rows < 1:
            raise DataError(
                f"chunk_rows and task_rows must be positive, got {self.chunk_rows}, "
                f"{self.task_rows}"
            )
        if self.workers is not None and self.scheduler is not None:
            raise DataError("give workers (a local cluster) or scheduler (a running one), not both")
        if self.workers is not None and self.workers < 1:
            raise DataError(f"workers must be at least 1, got {self.workers}")

    @property
    def distributed(self) -> bool:
        return bool(self.workers or self.scheduler)

    def plan(self, source: ScoringInput) -> list[Task]:
        """The tasks of ``source``: one a part in process; on a cluster about ``task_rows`` rows
        each, fewer on a local cluster when the input is small for its workers
        (:data:`TASKS_PER_WORKER`)."""
        if not self.distributed:
            return plan_tasks(source, task_rows=ONE_TASK_PER_PART)
        return plan_tasks(source, task_rows=self.task_rows_for(source.rows))

    def task_rows_for(self, total: int | None) -> int:
        """Rows per task for an input of ``total`` rows (None: unknown, as for a CSV)."""
        if not self.workers or total is None:
            return self.task_rows
        share = -(-total // (self.workers * TASKS_PER_WORKER))
        return min(self.task_rows, max(self.chunk_rows, share))

    def runner(self) -> Runner:
        if self.distributed:
            return DaskRunner(self.workers, self.scheduler, progress=self.progress)
        return InProcess()
