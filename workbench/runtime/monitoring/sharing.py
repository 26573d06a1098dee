"""What the workers of one ``bentoml serve`` share about monitoring, through a folder.

Each worker keeps its own window. With several workers, each publishes to
``<tmp>/workbench-monitor-<serve pid>/``: the summary of its window (``window-<pid>.json``,
mergeable: counts add, sorted values concatenate) and the request ids it holds
(``ids-<pid>.json``), only when they changed. ``/monitor`` merges every live worker's summary, so
any worker answers for the whole service (up to one refresh period behind for the others). A
request id names the worker that answered it (``<pid hex>-<position hex>``, the position of the
request's first row in that worker's window, see :mod:`.window`): feedback for another worker's
id is appended to that worker's inbox (``inbox-<pid>.jsonl``) and applied at its next refresh. A
dead worker's files are ignored (its pid is checked) and removed with its server's folder.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

#: How long feedback for another worker's newest ids waits for that worker to publish them.
FOREIGN_WAIT_S = 2.5

Feedback = tuple[str, int, Any]
"""One feedback item: request id, row in the request, label."""


def id_prefix(pid: int) -> str:
    """What the ids of worker ``pid``'s requests start with."""
    return f"{pid:x}-"


def request_id(pid: int, position: int) -> str:
    """The id of the request whose first row is at ``position`` in worker ``pid``'s window."""
    return f"{id_prefix(pid)}{position:x}"


def owner_of(request_id: str) -> int | None:
    """The pid of the worker that answered ``request_id`` (None: not an id)."""
    head, _, tail = request_id.partition("-")
    try:
        return int(head, 16) if tail else None
    except ValueError:
        return None


def position_of(request_id: str) -> int | None:
    """The position of a request id's first row (see :mod:`.window`), or None if it names none."""
    tail = request_id.partition("-")[2]
    try:
        return int(tail, 16) if tail.isalnum() else None
    except ValueError:
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Sharing:
    """This worker's side of the shared folder."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.folder = Path(tempfile.gettempdir()) / f"workbench-monitor-{os.getppid()}"
        self.folder.mkdir(parents=True, exist_ok=True)
        atexit.register(self.remove_files)
        for folder in self.folder.parent.glob("workbench-monitor-*"):  # of servers now gone
            with contextlib.suppress(ValueError, OSError):
                if not alive(int(folder.name.rsplit("-", 1)[1])):
                    shutil.rmtree(folder, ignore_errors=True)

    def remove_files(self) -> None:
        """This worker's files in the shared folder (and the folder once empty), at exit."""
        for name in (f"window-{self.pid}.json", f"ids-{self.pid}.json", f"inbox-{self.pid}.jsonl"):
            with contextlib.suppress(OSError):
                (self.folder / name).unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def publish_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.folder / f"window-{self.pid}.json", json.dumps(summary))

    def publish_ids(self, held: dict[int, int], newest: int) -> None:
        """The requests this worker holds (first row's position -> rows still held), every id up
        to position ``newest`` included."""
        ids = {request_id(self.pid, start): rows for start, rows in held.items()}
        text = json.dumps({"seq": newest, "ids": ids})
        write_atomic(self.folder / f"ids-{self.pid}.json", text)

    def summaries(self) -> list[dict[str, Any]]:
        """The summaries the other live workers published."""
        out = []
        for path in self.folder.glob("window-*.json"):
            pid = int(path.stem.split("-")[1])
            if pid == self.pid or not alive(pid):
                continue
            data = _read_json(path)
            if data is not None:
                out.append(data)
        return out

    async def forward(self, owner: int, items: list[Feedback]) -> list[Feedback]:
        """Send feedback to the worker ``owner`` (its inbox): the items it holds, after waiting
        (bounded) for ids newer than its last publication; the others are unknown to it."""
        newest = max(position_of(item[0]) or 0 for item in items)
        deadline = time.monotonic() + FOREIGN_WAIT_S
        while True:
            published = _read_json(self.folder / f"ids-{owner}.json") or {}
            if published.get("seq", 0) >= newest or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        ids: dict[str, int] = published.get("ids", {})
        known = [item for item in items if item[0] in ids and item[1] < ids[item[0]]]
        if known:
            lines = "".join(json.dumps(list(item)) + "\n" for item in known)
            with open(self.folder / f"inbox-{owner}.jsonl", "a") as fh:
                fh.write(lines)
        return known

    def take_inbox(self) -> list[Feedback]:
        """The feedback other workers left for this worker's ids (removed from the inbox)."""
        inbox = self.folder / f"inbox-{self.pid}.jsonl"
        if not inbox.exists():
            return []
        taken = inbox.with_name(f"{inbox.name}.{time.monotonic_ns()}")
        try:
            os.replace(inbox, taken)
            lines = taken.read_text().splitlines()
        except OSError:
            return []
        taken.unlink(missing_ok=True)
        items = []
        for line in lines:
            with contextlib.suppress(ValueError, TypeError):
                given_id, row, label = json.loads(line)
                items.append((str(given_id), int(row), label))
        return items


__all__ = [
    "Feedback",
    "Sharing",
    "alive",
    "id_prefix",
    "owner_of",
    "position_of",
    "request_id",
]
