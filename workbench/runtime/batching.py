"""Adaptive batching: concurrent requests share one model call, one call at a time.

A request that finds the model idle goes at once (no added wait on a quiet server); requests
arriving while it is busy are answered together by the next call, so the model's fixed cost per
call is shared. A model whose calls are short (:data:`INLINE_ONE_ROW_S`, :data:`INLINE_FULL_S`,
measured at warm-up: e.g. a compiled forest, ~0.04 ms a row) runs in the event loop itself, the
requests that arrive in a turn of the loop and the next answered by one call: handing such a call
to a thread and back costs as much as the call. A slower model runs in one dedicated thread, and
the next call is held back briefly after each (see :class:`Batcher`), so that the event loop keeps
the GIL. A request queued longer than ``max_wait_s`` is answered :class:`Overloaded`, and one
that would make more than ``max_queued_rows`` rows wait is refused at once with
:class:`QueueFull` (admission control: the queue is bounded in rows and in time). When a batch
of several jobs fails, each job is tried on its own, so one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .predictor import RowsRefused

logger = logging.getLogger("bentoml.service")
WARM_UP_CALLS = 3
"""Warm-up calls on the example row; the fastest is the model's measured call."""
INLINE_ONE_ROW_S = 0.0005
"""A model runs in the event loop when one row's call takes at most this long (measured at warm-up,
fastest of a few calls) ..."""
INLINE_FULL_S = 0.02
"""... and a call of ``max_rows`` rows at most this long: the loop is never held longer."""


@dataclass(eq=False)
class Job:
    """One request's rows in the queue, and what the model answered them."""

    rows: list[Any]
    future: asyncio.Future[Sequence[str]]
    queued_at: float
    """When the rows were queued (loop time)."""
    context: Any = None
    """The caller's, handed back to :data:`AfterCall` with the answers (e.g. the request's
    place in a monitoring window)."""
    answers: Sequence[str] | None = None
    """Set in the model thread once answered."""
    call: Sequence[str] | None = None
    """The answers of the whole model call, when one call answered every job of it (its
    :data:`AfterCall` may then read them at once instead of job by job)."""


AfterCall = Callable[[list[Job]], None]
"""Called in the model thread after each model call with the call's answered jobs: it runs where
the rows already are, off the event loop (the monitoring window keeps them this way). A failure
is logged; the answers stand."""


class Overloaded(Exception):
    """A request waited in the queue longer than its bound (answered 503)."""

    retry_after_s = 1


class QueueFull(Exception):
    """The queue holds as many rows as it may: the request is refused at once (answered 429)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class Batcher:
    """Adaptive batching: concurrent requests share one model call, one call at a time.

    A request that finds the model idle is sent at once, so a quiet server adds no wait. Requests
    arriving during a call queue up; when the call ends, the next one is held back until arrivals
    pause (``gap_s``) or for at most ``hold_factor`` times the measured call duration, so that under
    load the model runs fewer, larger batches. The model's fixed cost per call is what batching
    saves; its duration is measured on every call (it was measured at start-up on `EXAMPLE`).
    A model with short calls (:attr:`inline`) runs in the event loop instead, with no hold: the
    requests queued during a turn of the loop and the next go in one call (:meth:`_next_turn`).
    """

    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[str]],
        *,
        max_rows: int,
        max_wait_s: float,
        max_queued_rows: int | None = None,
        gap_s: float = 0.001,
        hold_factor: float = 2.0,
        after_call: AfterCall | None = None,
    ) -> None:
        self.fn = fn
        self.after_call = after_call
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.max_queued_rows = max_queued_rows or 8 * max_rows
        self.gap_s = gap_s
        self.hold_factor = hold_factor
        self.max_hold_s = min(0.05, max_wait_s / 4)
        self.queue: deque[Job] = deque()
        self.queued_rows = 0
        self.busy = False
        self.timer: asyncio.Handle | None = None
        self.hold_until = 0.0
        self.last_arrival = 0.0
        self.last_end = 0.0
        self.last_jobs = 0
        self.call_s = 0.0  # moving average of one model call's duration
        self.full_s = math.nan  # one call of max_rows rows, when warm-up measured it
        self.inline = False
        """Whether the model runs in the event loop (set by :meth:`warm_up`), not its thread."""
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="model")

    def warm_up(self, rows: list[Any]) -> None:
        """Call the model on ``rows`` (raising what it raises), and time it: the fastest of
        :data:`WARM_UP_CALLS` calls is :attr:`call_s`. When that is short, also a call of
        ``max_rows`` copies of the first row, and the model runs in the event loop
        (:attr:`inline`) when both are short."""
        timings = []
        for _ in range(WARM_UP_CALLS):
            started = time.perf_counter()
            self.fn(rows)
            timings.append(time.perf_counter() - started)
        self.call_s = min(timings)
        if rows and self.call_s <= INLINE_ONE_ROW_S:
            started = time.perf_counter()
            try:
                self.fn(rows[:1] * self.max_rows)
            except Exception:  # noqa: BLE001 - not timed: the model keeps its thread
                return
            self.full_s = time.perf_counter() - started
            self.inline = self.full_s <= INLINE_FULL_S

    def retry_after_s(self) -> int:
        """Whole seconds until the rows queued now are likely answered (at least 1)."""
        calls = math.ceil(self.queued_rows / self.max_rows) + 1
        return max(1, math.ceil(calls * self.call_s))

    async def submit(self, rows: list[Any], *, context: Any = None) -> Sequence[str]:
        """The answers of ``rows`` (at most ``max_rows`` of them), from the next model call;
        ``context`` goes with them to :data:`AfterCall`."""
        if self.queue and self.queued_rows + len(rows) > self.max_queued_rows:
            raise QueueFull(self.retry_after_s())
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Sequence[str]] = loop.create_future()
        now = loop.time()
        self.queue.append(Job(rows, future, now, context))
        self.queued_rows += len(rows)
        self.last_arrival = now
        if not self.busy:
            if self.inline:
                if self.timer is None:
                    self.timer = loop.call_soon(self._next_turn, loop)
            elif self.queued_rows >= self.max_rows:
                self._start(loop)
            elif self.timer is None:
                if self.last_jobs > 1 and now - self.last_end < max(self.gap_s, self.call_s):
                    self._hold(loop, now)  # a batch just ended: its clients are coming back
                else:
                    self._start(loop)  # quiet server: no wait
        return await future

    def _next_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """(Inline) The call goes after one more turn of the loop: the requests whose bytes
        came in the meantime are parsed first and join it. A request is parsed in the turn after
        its bytes arrive, so a call made in the turn it was queued would answer only the
        requests of one read of the sockets: measured on the reference forest at c=32, 11,100
        req/s in small calls against 13,800 with this turn, the same 0.31 ms at c=1."""
        self.timer = loop.call_soon(self._check, loop)

    def _hold(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        self.hold_until = now + min(self.max_hold_s, self.hold_factor * self.call_s)
        self.timer = loop.call_later(self.gap_s, self._check, loop)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self.timer = None
        if self.busy or not self.queue:
            return
        now = loop.time()
        quiet = now - self.last_arrival
        if (
            self.inline
            or self.queued_rows >= self.max_rows
            or now >= self.hold_until
            or quiet >= self.gap_s
        ):
            self._start(loop)
        else:
            delay = min(self.gap_s - quiet, self.hold_until - now)
            self.timer = loop.call_later(delay, self._check, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        jobs: list[Job] = []
        n, now = 0, loop.time()
        while self.queue and (n == 0 or n + len(self.queue[0].rows) <= self.max_rows):
            job = self.queue.popleft()
            self.queued_rows -= len(job.rows)
            if job.future.done():  # the request was cancelled (timeout, client gone)
                continue
            if now - job.queued_at > self.max_wait_s:
                job.future.set_exception(Overloaded())
                continue
            jobs.append(job)
            n += len(job.rows)
        if not jobs:
            return
        self.busy = True
        if not self.inline:
            batch = loop.run_in_executor(self.pool, self._run, jobs)
            batch.add_done_callback(lambda done: self._finish(loop, jobs, done))
            return
        done: asyncio.Future[tuple[list[Any], float]] = loop.create_future()
        try:
            done.set_result(self._run(jobs))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
            done.set_exception(exc)
        self._finish(loop, jobs, done)

    def _run(self, jobs: list[Job]) -> tuple[list[Any], float]:  # (results, seconds)
        """In the model thread (or the loop, :attr:`inline`): :meth:`_call`, then the answered
        jobs handed to :data:`AfterCall`; each job's result and the call's duration."""
        results, seconds, whole = self._call([job.rows for job in jobs])
        answered = []
        for job, result in zip(jobs, results, strict=True):
            if not isinstance(result, BaseException):
                job.answers = result
                job.call = whole
                answered.append(job)
        if answered and self.after_call is not None:
            try:
                self.after_call(answered)
            except Exception:  # noqa: BLE001 - the answers stand
                logger.exception("the after-call hook failed on a batch's answers")
        return results, seconds

    def _call(self, parts: list[list[Any]]) -> tuple[list[Any], float, Sequence[str] | None]:
        """In the model thread: one call for all jobs; if it fails, one call per job. Each job's
        result, the duration, and the whole call's answers when one call answered all."""
        started = time.perf_counter()
        rows = parts[0] if len(parts) == 1 else [row for part in parts for row in part]
        try:
            answers = self.fn(rows)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(parts) == 1:
                return [exc], time.perf_counter() - started, None
            refused = exc.rows if isinstance(exc, RowsRefused) else {}
            results: list[Any] = []
            offset = 0
            for part in parts:
                mine = {
                    i - offset: why for i, why in refused.items() if 0 <= i - offset < len(part)
                }
                offset += len(part)
                if 0 < len(mine) < len(part):  # the rows at fault are known: no second search
                    results.append(RowsRefused(mine))
                    continue
                try:
                    results.append(self.fn(part))
                except Exception as one:  # noqa: BLE001
                    results.append(one)
            return results, time.perf_counter() - started, None
        if len(parts) == 1:
            return [answers], time.perf_counter() - started, answers
        results, i = [], 0
        for part in parts:
            results.append(answers[i : i + len(part)])
            i += len(part)
        return results, time.perf_counter() - started, answers

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        jobs: list[Job],
        done: asyncio.Future[tuple[list[Any], float]],
    ) -> None:
        self.busy = False
        now = loop.time()
        self.last_end, self.last_jobs = now, len(jobs)
        if done.cancelled() or done.exception() is not None:
            error = Overloaded() if done.cancelled() else done.exception()
            results: list[Any] = [error] * len(jobs)
        else:
            results, seconds = done.result()
            self.call_s = seconds if not self.call_s else 0.8 * self.call_s + 0.2 * seconds
        for job, result in zip(jobs, results, strict=True):
            if job.future.done():
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
        if self.queue and self.timer is None:
            if self.inline:  # the requests parsed meanwhile go next, in the loop's next turn
                self.timer = loop.call_soon(self._check, loop)
            elif self.queued_rows >= self.max_rows:
                self._start(loop)
            else:
                self._hold(loop, now)
