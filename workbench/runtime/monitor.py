"""Monitoring inside the Bento: each worker's bounded window of recent traffic and its feedback,
shared with the other workers; the report computed lazily from the windows.

**Per request** (the only work on the hot path): the answer gets a request id
(``X-Request-Id``), and the request's row values (a tuple per row, taken from the validated row
models) and its answers (the JSON text already made for the response) are appended to an
in-memory window. The window holds at most ``monitor_window_rows / workers`` rows per worker; the
oldest requests are dropped first. Nothing is parsed, summarised or tested per request.

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
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .capture import Capture
from .drift import DEFAULT_OPTIONS
from .feedback import FEEDBACK_COUNTS, read_feedback
from .report import ReportBuilder, utc
from .settings import CAPTURE_DIR_ENV, DRIFT_REFERENCE_FILE, PREDICTION_REFERENCE_FILE, Settings
from .sketch import ColumnWindow, reference_columns

logger = logging.getLogger("bentoml.service")

#: How long feedback for another worker's newest ids waits for that worker to publish them.
FOREIGN_WAIT_S = 2.5
IDS_EVERY_S = 1.0
MISSING = object()


@dataclass(slots=True)
class Entry:
    """One answered request in the window (slotted, and no empty label list until feedback:
    every object the window keeps is one more for the garbage collector to walk)."""

    time: float
    values: list[tuple[Any, ...]]
    answers: list[str]
    labels: list[Any] | None = None
    """One slot per row, :data:`MISSING` until feedback gives the true value."""
    parsed: list[dict[str, Any]] | None = None
    """The answers parsed, once, at the first refresh that sees them."""


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
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.rows = 0
        self.seq = 0
        self.pid = os.getpid()
        self.prefix = f"{self.pid:x}-"
        self.changed = 0  # bumped on every change of the window
        self.feedback = dict.fromkeys(FEEDBACK_COUNTS, 0)
        self.cache: tuple[float, dict[str, Any]] | None = None
        self.cache_changed = -1
        self.shared = settings.workers > 1
        self.shared_dir = Path(tempfile.gettempdir()) / f"workbench-monitor-{os.getppid()}"
        self.published = -1
        self.published_ids = -1.0
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

    def record(self, rows: Sequence[BaseModel], answers: list[str]) -> str:
        """Keep one answered request in the window; its request id."""
        self.seq += 1
        request_id = f"{self.prefix}{self.seq:x}"
        values = self.values
        entry = Entry(time.time(), [values(row) for row in rows], answers)
        self.entries[request_id] = entry
        self.rows += len(answers)
        while self.rows > self.capacity and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            self.rows -= len(old.answers)
        self.changed += 1
        if self.capture is not None:
            self.capture.add(
                json.dumps(
                    {
                        "request_id": request_id,
                        "time": utc(entry.time),
                        "rows": [dict(zip(self.names, v, strict=True)) for v in entry.values],
                    }
                )[:-1]
                + ', "answers": ['
                + ",".join(answers)
                + "]}"
            )
        if self.task_handle is None and (self.shared or self.capture is not None):
            self.task_handle = asyncio.get_running_loop().create_task(self._background())
        return request_id

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
        for request_id, row, label in items:
            entry = self.entries.get(request_id)
            ref = {"request_id": request_id, "row": row}
            if entry is None or row >= len(entry.answers):
                status["unknown"].append(ref)
                continue
            if entry.labels is None:
                entry.labels = [MISSING] * len(entry.answers)
            old = entry.labels[row]
            key = "applied" if old is MISSING else ("unchanged" if old == label else "updated")
            entry.labels[row] = label
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
        self.changed += 1  # the counts are in the summary: republish it even if none was mine
        return {**counts, "unknown_ids": status["unknown"][:1000]}

    async def _wait_for_ids(self, owner: int, owned: list[tuple[str, int, Any]]) -> dict[str, int]:
        """The owner's published ids (id -> rows), waiting (bounded) for ids newer than its last
        publication."""
        newest = max(_seq(i[0]) for i in owned)
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
        entries = list(self.entries.values())
        rows = [v for e in entries for v in e.values]
        columns: dict[str, Any] = {}
        if self.reference is not None and rows:
            specs = reference_columns(self.reference)
            transposed = list(zip(*rows, strict=True))
            by_name = dict(zip(self.names, transposed, strict=True))
            for name, spec in specs.items():
                if name in by_name:
                    columns[name] = ColumnWindow.of(spec["kind"], list(by_name[name])).to_dict()
        unseen_rows = 0
        if self.seen and rows:
            where = [(self.names.index(n), s) for n, s in self.seen.items() if n in self.names]
            unseen_rows = sum(
                1 for v in rows if any(v[i] is not None and v[i] not in seen for i, seen in where)
            )
        for e in entries:
            if e.parsed is None:
                e.parsed = [json.loads(a) for a in e.answers]
        answers = [a for e in entries for a in (e.parsed or ())]
        kind = "number" if self.task == "regression" else "category"
        predictions = ColumnWindow.of(kind, [a["prediction"] for a in answers]).to_dict()
        labelled = []
        position = 0
        for e in entries:
            for i, label in enumerate(e.labels or ()):
                if label is not MISSING:
                    labelled.append([label, answers[position + i]])
            position += len(e.answers)
        return {
            "pid": self.pid,
            "rows": len(rows),
            "requests": len(entries),
            "first": entries[0].time if entries else None,
            "last": entries[-1].time if entries else None,
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
        ids = {k: len(e.answers) for k, e in self.entries.items()}
        write_atomic(
            self.shared_dir / f"ids-{self.pid}.json", json.dumps({"seq": self.seq, "ids": ids})
        )

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
                    if self.published_ids != self.seq:
                        self.publish_ids()
                        self.published_ids = self.seq
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


def _seq(request_id: str) -> int:
    try:
        return int(request_id.partition("-")[2], 16)
    except ValueError:
        return 0


__all__ = ["Entry", "Monitor"]
