"""Monitoring inside the Bento: each worker's bounded window of recent traffic and its feedback;
the report computed lazily from the windows.

**Per model call** (the only work on the hot path, in the model thread, where the batch's rows
already are: the batcher's after-call hook, :meth:`Monitor.after_call`): the rows' values and
their predictions (and class probabilities, as the model gave them) are written into the
worker's :class:`.window.Window`, arrays of ``monitor.window_rows / service.workers`` rows
allocated once, the oldest rows overwritten first; each request gets its id (``X-Request-Id``).
Nothing is parsed, summarised or tested per request, and nothing is kept per request but slots
in those arrays. What a client sent is kept bounded (:class:`.window.Intake`): a text value as
its length, a category seen in training as the training value, any other long string as its
first characters and a digest; the answers' JSON text (with its warnings) is not kept.

**Lazily** (``GET /monitor``, ``/metrics``; at most every ``monitor.refresh_seconds``, the
result cached in between): the window is summarised per column (:class:`~..sketch.ColumnWindow`),
and :class:`.report.ReportBuilder` tests it against the drift reference shipped in the Bento
(:func:`~..drift.dataset_drift`), the predictions against the model's predictions on the test rows
at packaging, and scores the labelled rows (``POST /feedback``, checked by :mod:`.feedback`) with
the validation metrics of the task (:mod:`~..live_metrics`). :mod:`.gauges` turns the report into
Prometheus gauges.

**Several workers** share their summaries, ids and feedback through a folder
(:mod:`.sharing`). **Capture** (only when ``WORKBENCH_CAPTURE_DIR`` is set where the Bento runs):
each request and each feedback is also a JSON line in the capture files (:mod:`.capture`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..batching import Job
from ..card import ModelCard
from ..predictor import Answers
from ..settings import CAPTURE_DIR_ENV, DRIFT_REFERENCE_FILE, PREDICTION_REFERENCE_FILE, Settings
from ..sketch import ColumnWindow, reference_columns
from .capture import Capture
from .feedback import FEEDBACK_COUNTS, FEEDBACK_STATUSES, read_feedback
from .ids import RequestIds, blank_id, new_tag, tag_of
from .report import ReportBuilder, utc
from .sharing import Feedback, worker_sharing
from .window import MISSING, Intake

logger = logging.getLogger("bentoml.service")

IDS_EVERY_S = 1.0


class Watched:
    """A request whose rows go to the model in one call: the after-call hook keeps it in the
    window and gives it its id."""

    __slots__ = ("request_id",)

    def __init__(self) -> None:
        self.request_id = ""


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


class Monitor:
    """One worker's window, feedback and (lazily computed) monitoring report."""

    def __init__(self, settings: Settings, row_model: type[BaseModel], card: ModelCard) -> None:
        self.settings = settings
        workers = settings.service.workers
        self.capacity = max(1, math.ceil(settings.monitor.window_rows / max(1, workers)))
        self.task = settings.task
        self.classes = list(settings.classes or [])
        names = [f.alias or n for n, f in row_model.model_fields.items()]
        self.names = names
        getter = attrgetter(*row_model.model_fields)
        self.values: Callable[[BaseModel], tuple[Any, ...]] = (
            getter if len(names) > 1 else (lambda row: (getter(row),))
        )
        reference = _read(settings.folder / DRIFT_REFERENCE_FILE)
        predictions = _read(settings.folder / PREDICTION_REFERENCE_FILE)
        self.reports = ReportBuilder(settings, card, reference, predictions)
        self.seen = {name: set(values) for name, values in settings.categories.items()}
        self.specs = reference_columns(reference) if reference is not None else {}
        kinds = {column.name: column.kind for column in card.input_schema.columns}
        kinds.update({n: spec["kind"] for n, spec in self.specs.items()})
        self.intake = Intake(names, kinds, settings.categories, self.classes)
        # The columns a summary reads: those the reference tests, and those with known categories.
        self.summarised = [n for n in names if n in self.specs or n in self.seen]
        self.window = self.intake.window(
            self.capacity,
            probabilities=settings.probabilities,
            regression=self.task == "regression",
        )
        self.lock = threading.Lock()  # the model thread adds to the window, the loop reads it
        self.pid = os.getpid()
        self.tag = new_tag()
        self.sharing = worker_sharing(workers, self.tag)
        self.ids = RequestIds(
            os.urandom(32) if self.sharing is None else self.sharing.key, self.tag
        )
        self.changed = 0  # bumped on every change of the window
        self.feedback = dict.fromkeys(FEEDBACK_COUNTS, 0)
        self.cache: tuple[float, dict[str, Any]] | None = None
        self.published = -1
        self.published_ids = -1
        self.task_handle: asyncio.Task[None] | None = None
        self.begun = False
        capture = os.environ.get(CAPTURE_DIR_ENV, "").strip()
        self.capture = (
            Capture(
                Path(capture),
                settings.monitor.capture_file_bytes,
                settings.monitor.capture_total_bytes,
            )
            if capture
            else None
        )

    # ------------------------------------------------------------ the hot path

    def after_call(self, jobs: list[Job]) -> None:
        """Keep the watched requests of one model call in the window and give each its id (in
        the model thread: the batcher's after-call hook)."""
        kept = [job for job in jobs if type(job.context) is Watched and job.answers is not None]
        if kept:
            whole = kept[0].call if len(kept) == len(jobs) else None
            ids = self.keep(
                [job.rows for job in kept],
                [job.answers for job in kept if job.answers is not None],
                whole=whole if isinstance(whole, Answers) else None,
            )
            for job, given in zip(kept, ids, strict=True):
                job.context.request_id = given

    def keep(
        self,
        parts: list[list[BaseModel]],
        answers: list[Sequence[str]],
        *,
        whole: Answers | None = None,
    ) -> list[str]:
        """Keep answered requests in the window (and the capture); their request ids.
        ``whole``: the answers of all the parts together, as one model call gave them."""
        values, intake = self.values, self.intake
        starts, n = [], 0
        for part in parts:
            starts.append(n)
            n += len(part)
        numbers, given_by = None, answers
        if whole is not None:  # the call's arrays at once; its float rows need no second copy
            given_by = [whole]
            numbers = whole.inputs if intake.all_numbers else None
        if numbers is None or self.capture is not None:
            rows = [values(row) for part in parts for row in part]
        else:
            rows = []
        columns = intake.columns(rows, numbers)
        predictions, probabilities = intake.predictions(given_by)
        now = time.time()
        with self.lock:
            first = self.window.add(columns, predictions, probabilities, starts, now)
            self.changed += 1
        ids = [self.ids.id_of(first + start) for start in starts]
        if self.capture is not None:
            stamp = utc(now)
            for given_id, start, given in zip(ids, starts, answers, strict=True):
                chunk = rows[start : start + len(given)]
                self.capture.add(
                    json.dumps(
                        {
                            "request_id": given_id,
                            "time": stamp,
                            "rows": [dict(zip(self.names, v, strict=True)) for v in chunk],
                        }
                    )[:-1]
                    + ', "answers": ['
                    + ",".join(given)
                    + "]}"
                )
        return ids

    def watch(self, rows: Sequence[BaseModel], batch_rows: int) -> Watched | None:
        """What to hand the batcher with ``rows``: a request answered in one model call is kept
        by the after-call hook (None: in several, or none; :meth:`request_id` keeps it)."""
        return Watched() if 0 < len(rows) <= batch_rows else None

    def request_id(
        self, watched: Watched | None, rows: Sequence[BaseModel], answers: Sequence[str]
    ) -> str:
        """The id of an answered request: the one the after-call hook gave it, else it is kept
        now (a request answered by several model calls, or by none)."""
        if not self.begun:
            self.start()
        if watched is not None and watched.request_id:
            return watched.request_id
        if not rows:
            return blank_id(self.tag)  # no position: feedback finds no row
        return self.keep([list(rows)], [answers])[0]

    def start(self) -> None:
        """Start the background work once (in the event loop; the first request calls it)."""
        self.begun = True
        if self.task_handle is None and (self.sharing is not None or self.capture is not None):
            self.task_handle = asyncio.get_running_loop().create_task(self._background())

    # ------------------------------------------------------------ feedback

    def check_feedback(self, body: Any) -> list[Feedback]:
        """``{"feedback": [{"request_id", "row"?, "label"}]}`` as (id, row, label), or one
        :class:`~.feedback.FeedbackError` naming every bad item."""
        return read_feedback(body, self.task, self.classes)

    def apply(self, items: Iterable[Feedback]) -> dict[str, list[Any]]:
        """Apply feedback to this worker's window: status -> the items (as given). A row's
        first label stands: the same again is ``unchanged``, another is a ``conflict``, kept
        out of the live metrics and counted, never applied."""
        status: dict[str, list[Any]] = {k: [] for k in FEEDBACK_STATUSES}
        window = self.window
        for given_id, row, label in items:
            ref = {"request_id": given_id, "row": row}
            position = self.ids.position_of(given_id)
            with self.lock:
                slot = None if position is None else window.slot(position, row)
                if slot is None:
                    status["unknown"].append(ref)
                    continue
                old = window.labels[slot]
                if old is MISSING:
                    window.labels[slot] = label
            key = "applied" if old is MISSING else ("unchanged" if old == label else "conflict")
            status[key].append(ref)
            if self.capture is not None and key != "unchanged":
                line = {"feedback": given_id, "row": row, "label": label, "time": utc(time.time())}
                self.capture.add(
                    json.dumps(line | ({"conflict": True} if key == "conflict" else {}))
                )
        with self.lock:
            self.changed += 1  # the counts are in the summary: republish it
        return status

    async def give_feedback(self, items: list[Feedback]) -> dict[str, Any]:
        """Apply feedback, sending other workers' items to them; the answer of ``/feedback``.
        An item for another worker's request is answered ``applied`` when that worker holds
        the request; that worker counts it as it finds it (a conflict, say) when it applies it
        (within a second), so the report's counts are exact."""
        sharing = self.sharing
        mine: list[Feedback] = []
        foreign: dict[str, list[Feedback]] = {}
        unknown = []
        for item in items:
            if sharing is None or tag_of(item[0]) == self.tag:
                mine.append(item)
            elif (owner := sharing.owner(item[0])) is not None:
                foreign.setdefault(owner, []).append(item)
            else:
                unknown.append({"request_id": item[0], "row": item[1]})
        status = self.apply(mine)
        status["unknown"] += unknown
        self._count(status, received=len(items))
        counted = len(status["unknown"])  # the forwarded items found unknown are counted below
        forwarded: list[Any] = []
        for owner, owned in foreign.items():
            assert sharing is not None
            known = await sharing.forward(owner, owned)
            for item in owned:
                ref = {"request_id": item[0], "row": item[1]}
                (forwarded if item in known else status["unknown"]).append(ref)
        self._count({"unknown": status["unknown"][counted:]})
        counts = {k: len(v) for k, v in status.items()}
        counts["applied"] += len(forwarded)
        conflicts = status["conflict"][:1000]
        return {**counts, "unknown_ids": status["unknown"][:1000], "conflict_ids": conflicts}

    def _count(self, status: dict[str, list[Any]], *, received: int = 0) -> None:
        self.feedback["received"] += received
        for key, refs in status.items():
            self.feedback[key] += len(refs)

    def _drain_inbox(self) -> None:
        """Apply (and count) the feedback other workers left for this worker's requests."""
        if self.sharing is not None:
            items = self.sharing.take_inbox()
            if items:
                self._count(self.apply(items))

    # ------------------------------------------------------------ summaries

    def summary(self) -> dict[str, Any]:
        """This worker's window, summarised (JSON-ready and mergeable with other workers')."""
        window = self.window
        with self.lock:  # a copy of the window as it is now (fancy indexing copies)
            order = window.order()
            by_name = {name: window.columns[name][order] for name in self.summarised}
            predicted = window.predictions[order]
            probabilities = None if window.probabilities is None else window.probabilities[order]
            labels = window.labels[order]
            requests = window.requests[order]
            times = window.times[order]
        rows = len(order)
        columns: dict[str, Any] = {}
        if rows:
            for name, spec in self.specs.items():
                if name in self.intake.lengths:
                    columns[name] = ColumnWindow.of_lengths(by_name[name]).to_dict()
                elif name in by_name:
                    columns[name] = ColumnWindow.of(spec["kind"], by_name[name]).to_dict()
        kind = "number" if self.task == "regression" else "category"
        labelled = [
            [label, self._answer(predicted[i], None if probabilities is None else probabilities[i])]
            for i, label in enumerate(labels.tolist())
            if label is not MISSING
        ]
        return {
            "pid": self.pid,
            "rows": rows,
            "requests": len(np.unique(requests)),
            "first": float(times[0]) if rows else None,
            "last": float(times[-1]) if rows else None,
            "columns": columns,
            "predictions": ColumnWindow.of(kind, predicted.tolist()).to_dict(),
            "labelled": labelled,
            "unseen_rows": self._unseen_rows(by_name, rows),
            "feedback": dict(self.feedback),
        }

    def _answer(self, prediction: Any, probabilities: Any) -> dict[str, Any]:
        """A labelled row's answer as the live metrics read it."""
        if probabilities is None:
            return {"prediction": prediction, "probabilities": None}
        shares = dict(zip(self.intake.keys, probabilities.tolist(), strict=True))
        return {"prediction": prediction, "probabilities": shares}

    def _unseen_rows(self, by_name: dict[str, np.ndarray], rows: int) -> int:
        """Rows with at least one category unseen in training."""
        if not self.seen or not rows:
            return 0
        unseen = np.zeros(rows, dtype=bool)
        for name, seen in self.seen.items():
            if name in by_name:
                unseen |= np.fromiter(
                    (v is not None and v not in seen for v in by_name[name]), bool, rows
                )
        return int(unseen.sum())

    def _publish(self, summary: dict[str, Any] | None = None) -> None:
        """Write this worker's summary for the others (when it changed)."""
        if self.sharing is None or self.published == self.changed:
            return
        changed = self.changed
        self.sharing.publish_summary(summary or self.summary())
        self.published = changed

    async def _background(self) -> None:
        """Capture flushes, ids and summaries for the other workers; bounded work per tick."""
        last_summary = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(IDS_EVERY_S)
            try:
                if self.capture is not None:
                    await loop.run_in_executor(None, self.capture.flush)
                if self.sharing is not None:
                    self._drain_inbox()
                    if self.published_ids != self.window.end:
                        with self.lock:
                            held, newest = self.window.request_rows(), self.window.end - 1
                        self.sharing.publish_held(held, newest)
                        self.published_ids = newest + 1
                    now = time.monotonic()
                    if now - last_summary >= self.settings.monitor.refresh_seconds:
                        last_summary = now
                        if self.published != self.changed:
                            changed = self.changed
                            summary = await loop.run_in_executor(None, self.summary)
                            self._publish(summary)
                            self.published = changed
            except Exception:  # noqa: BLE001 - monitoring never takes the service down
                logger.exception("monitoring: background refresh failed")

    # ------------------------------------------------------------ the report

    async def report(self) -> dict[str, Any]:
        """The monitoring report (cached for ``monitor.refresh_seconds``)."""
        now = time.monotonic()
        if self.cache is not None and now - self.cache[0] < self.settings.monitor.refresh_seconds:
            return self.cache[1]
        self._drain_inbox()
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, self._report)
        self.cache = (time.monotonic(), result)
        return result

    def _report(self) -> dict[str, Any]:
        mine = self.summary()
        others: list[dict[str, Any]] = []
        if self.sharing is not None:
            with contextlib.suppress(OSError):
                self._publish(mine)
            others = self.sharing.summaries()
        return self.reports.build([mine, *others])


__all__ = ["Monitor", "Watched"]
