"""The tasks of a scoring job on ``dask.distributed``: a local cluster or a running scheduler.

Each task is ``run_task(task, spec, out, errors)``: a few hundred bytes (paths, the schema, the
options), never the model. A worker loads the Bento's model the first time it runs a task and
keeps it for the others (:func:`~workbench.scoring.model.load_bento_model`, a per-process cache
keyed by the Bento's path), and writes its tasks' output files itself; only counts and the drift
sample travel back. The workers must see the input, the output folder and the BentoML store at
the same paths (shared storage, or the same image with the Bento imported).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.scoring.inputs import Task
from workbench.scoring.outputs import task_files
from workbench.scoring.task import ChunkDone, Ran, TaskOutcome, TaskSpec, run_task

CONNECT_TIMEOUT_S = 10


def _client(workers: int | None, scheduler: str | None) -> tuple[Any, Any, str]:
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"could not reach the Dask scheduler at {scheduler!r} ({type(exc).__name__}: "
                f"{exc}); check the address (tcp://HOST:PORT) and that `dask scheduler` runs there"
            ) from exc
        return client, None, f"dask scheduler {scheduler}"
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    return Client(cluster), cluster, f"local dask cluster ({workers} worker processes)"


@dataclass(frozen=True)
class DaskRunner:
    """The tasks on a local cluster of ``workers`` processes, or on the running ``scheduler``;
    progress after each task. With ``on_error: fail`` the tasks not yet started are cancelled at
    the first task that stopped on a refused row."""

    workers: int | None
    scheduler: str | None
    progress: bool = False
    """Show Dask's progress bar."""

    def run(
        self,
        tasks: Sequence[Task],
        spec: TaskSpec,
        folder: Path,
        on_progress: Callable[[ChunkDone], None] | None,
    ) -> Ran:
        started = time.perf_counter()
        client, cluster, engine = _client(self.workers, self.scheduler)
        startup = time.perf_counter() - started
        try:
            futures = _submit(client, tasks, spec, folder)
            if self.progress:
                from distributed import progress

                progress(futures)
            outcomes = _collect(client, futures, on_progress)
            return Ran(sorted(outcomes, key=lambda o: o.index), engine, startup)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _submit(client: Any, tasks: Sequence[Task], spec: TaskSpec, folder: Path) -> list[Any]:
    """One future per task, under keys unique to this job."""
    job = uuid.uuid4().hex[:8]
    futures = []
    for task in tasks:
        files = task_files(folder, task)
        futures.append(
            client.submit(
                run_task,
                task,
                spec,
                str(files.out),
                str(files.errors),
                key=f"workbench-score-{job}-{task.index}",
                pure=False,
            )
        )
    return futures


def _collect(
    client: Any, futures: list[Any], on_progress: Callable[[ChunkDone], None] | None
) -> list[TaskOutcome]:
    """Each outcome as its task completes, until all did or one stopped on a refused row (the
    others are then cancelled, as they are when anything goes wrong here)."""
    from distributed import as_completed

    outcomes: list[TaskOutcome] = []
    try:
        for future in as_completed(futures):
            outcome: TaskOutcome = future.result()
            outcomes.append(outcome)
            if on_progress is not None:
                on_progress(outcome.progress())
            if outcome.stopped:
                client.cancel(futures)
                break
    except BaseException:
        client.cancel(futures)
        raise
    return outcomes
