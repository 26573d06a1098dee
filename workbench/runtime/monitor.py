"""Monitoring inside the Bento: each worker's bounded window of recent traffic and its feedback,
shared with the other workers; the report computed lazily from the windows.

**Per model call** (the only work on the hot path, in the model thread, where the batch's rows
already are): the rows' values and their answers (the JSON text already made for the responses)
are written into the worker's :class:`.window.Window`, arrays of ``monitor_window_rows /
workers`` rows allocated once, the oldest rows overwritten first; each request gets its id
(``X-Request-Id``). Nothing is parsed, summarised or tested per request, and nothing is kept per
request but slots in those arrays.

**Lazily** (``GET /monitor``, ``/metrics``; at most every ``monitor_refresh_s`` seconds, the
result cached in between): the window is summarised per column (:class:`.sketch.ColumnWindow`),
and :class:`.report.ReportBuilder` tests it against the drift reference shipped in the Bento
(:func:`.drift.dataset_drift`), the predictions against the model's predictions on the test rows
at packaging, and scores the labelled rows (``POST /feedback``, checked by :mod:`.feedback`) with
the validation metrics of the task (:mod:`.live_metrics`). :mod:`.gauges` turns the report into
Prometheus gauges.

**Several workers.** Each worker keeps its own window. A worker publishes the summary of its
window (mergeable: counts add, sorted values concatenate) and the ids it holds to a folder shared
by the workers of one ``bentoml serve`` (``<tmp>/workbench-monitor-<serve pid>/``), at most every
``monitor_refresh_s`` seconds (ids: every second) and only when something changed. ``/monitor``
merges every live worker's summary, so any worker answers for the whole service (up to one
refresh period behind for the other workers). A request id names the worker that answered it;
feedback for another worker's id is appended to that worker's inbox file and applied at its next
refresh. A dead worker's files are ignored (its pid is checked).

**Capture** (only when ``WORKBENCH_CAPTURE_DIR`` is set where the Bento runs): each request and
each feedback is also a JSON line in the capture files (:class:`.capture.Capture`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from .capture import Capture
from .drift import DEFAULT_OPTIONS
from .feedback import FEEDBACK_COUNTS, read_feedback
from .report import ReportBuilder, utc
from .settings import CAPTURE_DIR_ENV, DRIFT_REFERENCE_FILE, PREDICTION_REFERENCE_FILE, Settings
from .sketch import NUMERIC_KINDS, ColumnWindow, reference_columns
from .window import MISSING, Window

logger = logging.getLogger("bentoml.service")

#: How long feedback for another worker's newest ids waits for that worker to publish them.
FOREIGN_WAIT_S = 2.5
IDS_EVERY_S = 1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_folders(parent: Path) -> None:
    """The shared folders of servers that no longer run (their workers were killed)."""
    for folder in parent.glob("workbench-monitor-*"):
        with contextlib.suppress(ValueError, OSError):
            if not _alive(int(folder.name.rsplit("-", 1)[1])):
                shutil.rmtree(folder, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Monitor:
    """One worker's window, feedback and (lazily computed) monitoring report."""

    def __init__(
        self, settings: Settings, row_model: type[BaseModel], card: dict[str, Any]
    ) -> None:
        folder = settings.card_path.parent
        self.settings = settings
        self.enabled = settings.monitor_window_rows > 0
        self.capacity = max(1, math.ceil(settings.monitor_window_rows / max(1, settings.workers)))
        self.task = settings.task
        self.classes = list(settings.classes or [])
        names = [f.alias or n for n, f in row_model.model_fields.items()]
        self.names = names
        getter = attrgetter(*row_model.model_fields)
        self.values: Callable[[BaseModel], tuple[Any, ...]] = (
            getter if len(names) > 1 else (lambda row: (getter(row),))
        )
        self.card = card
        self.reference = self._read(folder / DRIFT_REFERENCE_FILE)
        self.prediction_reference = self._read(folder / PREDICTION_REFERENCE_FILE)
        drift: dict[str, Any] = dict(settings.monitor_drift)
        self.options = replace(DEFAULT_OPTIONS, **drift) if drift else DEFAULT_OPTIONS
        self.reports = ReportBuilder(
            settings, card, self.reference, self.prediction_reference, self.options
        )
        self.seen = {name: set(values) for name, values in settings.categories.items()}
        self.specs = reference_columns(self.reference) if self.reference is not None else {}
        numeric = {n for n, spec in self.specs.items() if spec["kind"] in NUMERIC_KINDS}
        # The columns a summary reads: those the reference tests, and those with known categories.
        self.summarised = [n for n in names if n in self.specs or n in self.seen]
        self.window = Window(self.capacity, names, numeric)
        self.lock = threading.Lock()  # the model thread adds to the window, the loop reads it
        self.empty = 0  # requests with no rows (their ids name no position)
        self.pid = os.getpid()
        self.prefix = f"{self.pid:x}-"
        self.changed = 0  # bumped on every change of the window
        self.feedback = dict.fromkeys(FEEDBACK_COUNTS, 0)
        self.cache: tuple[float, dict[str, Any]] | None = None
        self.cache_changed = -1
        self.shared = settings.workers > 1
        self.shared_dir = Path(tempfile.gettempdir()) / f"workbench-monitor-{os.getppid()}"
        self.published = -1
        self.published_ids = -1
        self.task_handle: asyncio.Task[None] | None = None
        capture = os.environ.get(CAPTURE_DIR_ENV, "").strip()
        self.capture = (
            Capture(
                Path(capture),
                settings.monitor_capture_file_bytes,
                settings.monitor_capture_total_bytes,
            )
            if capture and self.enabled
            else None
        )
        if self.shared and self.enabled:
            self.shared_dir.mkdir(parents=True, exist_ok=True)
            atexit.register(self.remove_files)
            _remove_dead_folders(self.shared_dir.parent)

    def remove_files(self) -> None:
        """This worker's files in the shared folder (and the folder once empty), at exit."""
        for name in (f"window-{self.pid}.json", f"ids-{self.pid}.json", f"inbox-{self.pid}.jsonl"):
            with contextlib.suppress(OSError):
                (self.shared_dir / name).unlink()
        with contextlib.suppress(OSError):
            self.shared_dir.rmdir()

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    # ------------------------------------------------------------ the hot path

    def keep(self, parts: list[list[BaseModel]], answers: list[list[str]]) -> list[str]:
        """Keep the answered requests of one model call in the window (in the model thread, the
        batcher's ``Keep``); their request ids."""
        values = self.values
        rows = [values(row) for part in parts for row in part]
        flat = [a for given in answers for a in given]
        starts, n = [], 0
        for given in answers:
            starts.append(n)
            n += len(given)
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(self.names)
        now = time.time()
        with self.lock:
            first = self.window.add(columns, flat, starts, now)
            self.changed += 1
        ids = [f"{self.prefix}{first + start:x}" for start in starts]
        if self.capture is not None:
            stamp = utc(now)
            for request_id, start, given in zip(ids, starts, answers, strict=True):
                chunk = rows[start : start + len(given)]
                self.capture.add(
                    json.dumps(
                        {
                            "request_id": request_id,
                            "time": stamp,
                            "rows": [dict(zip(self.names, v, strict=True)) for v in chunk],
                        }
                    )[:-1]
                    + ', "answers": ['
                    + ",".join(given)
                    + "]}"
                )
        return ids

    def record(self, rows: Sequence[BaseModel], answers: list[str]) -> str:
        """Keep one answered request in the window (one answered by several model calls, or
        none); its request id."""
        if not rows:
            with self.lock:
                self.empty += 1
                return f"{self.prefix}n{self.empty:x}"  # no position: feedback finds no row
        return self.keep([list(rows)], [answers])[0]

    def start(self) -> None:
        """Start the background work once (in the event loop; the first request calls it)."""
        if self.task_handle is None and (self.shared or self.capture is not None):
            self.task_handle = asyncio.get_running_loop().create_task(self._background())

    # ------------------------------------------------------------ feedback

    def check_feedback(self, body: Any) -> list[tuple[str, int, Any]]:
        """``{"feedback": [{"request_id", "row"?, "label"}]}`` as (id, row, label), or one
        :class:`~.feedback.FeedbackError` naming every bad item."""
        return read_feedback(body, self.task, self.classes)

    def apply(self, items: Iterable[tuple[str, int, Any]]) -> dict[str, list[Any]]:
        """Apply feedback to this worker's window: status -> the items (as given)."""
        status: dict[str, list[Any]] = {
            "applied": [],
            "unchanged": [],
            "updated": [],
            "unknown": [],
        }
        window = self.window
        for request_id, row, label in items:
            ref = {"request_id": request_id, "row": row}
            position = _position(request_id) if request_id.startswith(self.prefix) else None
            with self.lock:
                slot = None if position is None else window.slot(position, row)
                if slot is None:
                    status["unknown"].append(ref)
                    continue
                old = window.labels[slot]
                window.labels[slot] = label
            key = "applied" if old is MISSING else ("unchanged" if old == label else "updated")
            status[key].append(ref)
            if self.capture is not None and key != "unchanged":
                self.capture.add(
                    json.dumps(
                        {
                            "feedback": request_id,
                            "row": row,
                            "label": label,
                            "time": utc(time.time()),
                        }
                    )
                )
        if any(status[k] for k in ("applied", "updated")):
            with self.lock:
                self.changed += 1
        return status

    async def give_feedback(self, items: list[tuple[str, int, Any]]) -> dict[str, Any]:
        """Apply feedback, sending other workers' ids to them; the answer of ``/feedback``."""
        mine = [i for i in items if i[0].startswith(self.prefix) or not self.shared]
        status = self.apply(mine)
        foreign: dict[int, list[tuple[str, int, Any]]] = {}
        for item in items:
            if self.shared and not item[0].startswith(self.prefix):
                owner = _owner(item[0])
                if owner is None or not _alive(owner):
                    status["unknown"].append({"request_id": item[0], "row": item[1]})
                else:
                    foreign.setdefault(owner, []).append(item)
        for owner, owned in foreign.items():
            ids = await self._wait_for_ids(owner, owned)
            known = [i for i in owned if i[0] in ids and i[1] < ids[i[0]]]
            for item in owned:
                if item not in known:
                    status["unknown"].append({"request_id": item[0], "row": item[1]})
            if known:
                lines = "".join(json.dumps(list(i)) + "\n" for i in known)
                with open(self.shared_dir / f"inbox-{owner}.jsonl", "a") as fh:
                    fh.write(lines)
                status["applied"] += [{"request_id": i[0], "row": i[1]} for i in known]
        counts = {k: len(v) for k, v in status.items()}
        self.feedback["received"] += len(items)
        for key, count in counts.items():
            self.feedback[key] += count
        with self.lock:  # the counts are in the summary: republish it even if none was mine
            self.changed += 1
        return {**counts, "unknown_ids": status["unknown"][:1000]}

    async def _wait_for_ids(self, owner: int, owned: list[tuple[str, int, Any]]) -> dict[str, int]:
        """The owner's published ids (id -> rows), waiting (bounded) for ids newer than its last
        publication."""
        newest = max(_position(i[0]) or 0 for i in owned)
        deadline = time.monotonic() + FOREIGN_WAIT_S
        while True:
            published = self._read_json(self.shared_dir / f"ids-{owner}.json") or {}
            if published.get("seq", 0) >= newest or time.monotonic() > deadline:
                rows: dict[str, int] = published.get("ids", {})
                return rows
            await asyncio.sleep(0.1)

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data

    def drain_inbox(self) -> None:
        """Apply the feedback other workers left for this worker's ids."""
        inbox = self.shared_dir / f"inbox-{self.pid}.jsonl"
        if not inbox.exists():
            return
        taken = inbox.with_name(f"{inbox.name}.{time.monotonic_ns()}")
        try:
            os.replace(inbox, taken)
            lines = taken.read_text().splitlines()
        except OSError:
            return
        taken.unlink(missing_ok=True)
        items = []
        for line in lines:
            with contextlib.suppress(ValueError, TypeError):
                request_id, row, label = json.loads(line)
                items.append((str(request_id), int(row), label))
        if items:
            self.apply(items)  # the worker that received them counted them

    # ------------------------------------------------------------ summaries

    def summary(self) -> dict[str, Any]:
        """This worker's window, summarised (JSON-ready and mergeable with other workers')."""
        window = self.window
        with self.lock:  # a copy of the window as it is now (fancy indexing copies)
            order = window.order()
            by_name = {name: window.columns[name][order] for name in self.summarised}
            answers = window.answers[order]
            predicted = window.predictions[order]
            labels = window.labels[order]
            requests = window.requests[order]
            times = window.times[order]
        unread = [i for i, p in enumerate(predicted) if p is MISSING]
        for i in unread:
            predicted[i] = json.loads(answers[i])["prediction"]
        with self.lock:  # read once: kept for the rows not overwritten meanwhile
            for i in unread:
                slot = order[i]
                if window.answers[slot] is answers[i]:
                    window.predictions[slot] = predicted[i]
        rows = len(order)
        columns: dict[str, Any] = {}
        if rows:
            for name, spec in self.specs.items():
                if name in by_name:
                    columns[name] = ColumnWindow.of(spec["kind"], by_name[name]).to_dict()
        unseen_rows = 0
        if self.seen and rows:
            unseen = np.zeros(rows, dtype=bool)
            for name, seen in self.seen.items():
                if name in by_name:
                    unseen |= np.fromiter(
                        (v is not None and v not in seen for v in by_name[name]), bool, rows
                    )
            unseen_rows = int(unseen.sum())
        kind = "number" if self.task == "regression" else "category"
        predictions = ColumnWindow.of(kind, predicted.tolist()).to_dict()
        labelled = [
            [label, json.loads(answer)]
            for label, answer in zip(labels.tolist(), answers.tolist(), strict=True)
            if label is not MISSING
        ]
        return {
            "pid": self.pid,
            "rows": rows,
            "requests": len(np.unique(requests)),
            "first": float(times[0]) if rows else None,
            "last": float(times[-1]) if rows else None,
            "columns": columns,
            "predictions": predictions,
            "labelled": labelled,
            "unseen_rows": unseen_rows,
            "feedback": dict(self.feedback),
        }

    def others(self) -> list[dict[str, Any]]:
        """The summaries the other live workers published."""
        if not self.shared:
            return []
        out = []
        for path in self.shared_dir.glob("window-*.json"):
            pid = int(path.stem.split("-")[1])
            if pid == self.pid or not _alive(pid):
                continue
            data = self._read_json(path)
            if data is not None:
                out.append(data)
        return out

    def publish(self, summary: dict[str, Any] | None = None) -> None:
        """Write this worker's summary for the others (when it changed)."""
        if self.published == self.changed:
            return
        changed = self.changed
        write_atomic(
            self.shared_dir / f"window-{self.pid}.json", json.dumps(summary or self.summary())
        )
        self.published = changed

    def publish_ids(self) -> None:
        with self.lock:
            held = self.window.request_rows()
            seq = self.window.end - 1  # the newest position: every id up to it is published
        ids = {f"{self.prefix}{start:x}": rows for start, rows in held.items()}
        write_atomic(self.shared_dir / f"ids-{self.pid}.json", json.dumps({"seq": seq, "ids": ids}))

    async def _background(self) -> None:
        """Capture flushes, ids and summaries for the other workers; bounded work per tick."""
        last_summary = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(IDS_EVERY_S)
            try:
                if self.capture is not None:
                    await loop.run_in_executor(None, self.capture.flush)
                if self.shared:
                    self.drain_inbox()
                    if self.published_ids != self.window.end:
                        self.publish_ids()
                        self.published_ids = self.window.end
                    now = time.monotonic()
                    if now - last_summary >= self.settings.monitor_refresh_s:
                        last_summary = now
                        if self.published != self.changed:
                            changed = self.changed
                            summary = await loop.run_in_executor(None, self.summary)
                            self.publish(summary)
                            self.published = changed
            except Exception:  # noqa: BLE001 - monitoring never takes the service down
                logger.exception("monitoring: background refresh failed")

    # ------------------------------------------------------------ the report

    async def report(self) -> dict[str, Any]:
        """The monitoring report (cached for ``monitor_refresh_s`` seconds)."""
        now = time.monotonic()
        if self.cache is not None and now - self.cache[0] < self.settings.monitor_refresh_s:
            return self.cache[1]
        if self.shared:
            self.drain_inbox()
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, self._report)
        self.cache = (time.monotonic(), result)
        return result

    def _report(self) -> dict[str, Any]:
        mine = self.summary()
        if self.shared:
            with contextlib.suppress(OSError):
                self.publish(mine)
        summaries = [mine, *self.others()]
        return self.reports.build(summaries)


def _owner(request_id: str) -> int | None:
    head, _, tail = request_id.partition("-")
    try:
        return int(head, 16) if tail else None
    except ValueError:
        return None


def _position(request_id: str) -> int | None:
    """The position of a request id's first row (see :mod:`.window`), or None if it names none."""
    tail = request_id.partition("-")[2]
    try:
        return int(tail, 16) if tail.isalnum() else None
    except ValueError:
        return None


__all__ = ["Monitor"]
