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
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.scoring.inputs import Task
from workbench.scoring.task import ChunkDone, TaskOutcome, TaskSpec, run_task

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


def run_on_dask(
    tasks: Sequence[Task],
    spec: TaskSpec,
    targets: Sequence[Path],
    errors_dir: Path,
    *,
    workers: int | None,
    scheduler: str | None,
    on_task: Callable[[ChunkDone], None] | None = None,
    progress: bool = False,
) -> tuple[list[TaskOutcome], str, float]:
    """Run ``tasks`` on the cluster: each outcome as its worker returned it, in task order, the
    engine's description and the seconds it took to start or reach the cluster.

    With ``spec.on_error == "fail"`` the tasks not yet started are cancelled at the first task
    that stopped on a refused row. ``on_task`` is called as each task completes.
    """
    from distributed import as_completed
    from distributed import progress as dask_progress

    started = time.perf_counter()
    client, cluster, engine = _client(workers, scheduler)
    startup = time.perf_counter() - started
    run = uuid.uuid4().hex[:8]
    try:
        futures = [
            client.submit(
                run_task,
                task,
                spec,
                str(target),
                str(errors_dir / f"{task.index:06d}.csv"),
                key=f"workbench-score-{run}-{task.index}",
                pure=False,
            )
            for task, target in zip(tasks, targets, strict=True)
        ]
        if progress:
            dask_progress(futures)
        outcomes: list[TaskOutcome] = []
        try:
            for future in as_completed(futures):
                outcome: TaskOutcome = future.result()
                outcomes.append(outcome)
                if on_task is not None:
                    on_task(
                        ChunkDone(
                            outcome.index,
                            outcome.rows_read,
                            outcome.rows_scored,
                            outcome.rows_rejected,
                        )
                    )
                if outcome.stopped:
                    client.cancel(futures)
                    break
        except BaseException:
            client.cancel(futures)
            raise
        return sorted(outcomes, key=lambda o: o.index), engine, startup
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
