"""What the workers of one ``bentoml serve`` share about monitoring, through a private folder.

**The folder.** At deployment (the ``@bentoml.on_deployment`` hook, in the ``bentoml serve``
process before any worker starts) :func:`create_folder` makes it with ``tempfile.mkdtemp``
(mode 0700, a name no other user can predict or create first), writes the service's id key
into it (0600), and names it in :data:`FOLDER_ENV`, which the workers inherit (BentoML's
watcher copies the serve process's environment). The serve process removes the folder when it
exits; each worker removes its own files when it exits; a folder left by a killed server is
removed by the next deployment on the machine. Every file is written 0600, by a temporary file
and a rename. Raw inputs never go there: only summaries (counts, sorted numbers and text
lengths), request positions, and labels waiting for their worker.

**Each worker** (tagged at start with random hex digits, :mod:`.ids`) publishes
``worker-<tag>.json`` (its pid and the requests it holds: first row's position -> rows still
held, up to its newest position) and ``window-<tag>.json`` (the summary of its window,
mergeable), only when they changed. ``/monitor`` merges every live worker's summary, so any
worker answers for the whole service (up to one refresh period behind for the others).
Feedback for another worker's request is found by the id alone: its tag names the worker (only
a live worker's tag is looked up), the shared key deciphers its position (a forged id is
unknown at once), and the item is appended to that worker's ``inbox-<tag>.jsonl``, applied at
its next refresh. Only for a real id newer than the worker's last publication is there a
bounded wait (:data:`FOREIGN_WAIT_S`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .ids import RequestIds, tag_of

logger = logging.getLogger("bentoml.service")

FOLDER_ENV = "WORKBENCH_WORKERS_DIR"
"""Set by the deployment for the workers: the private folder they share."""
KEY_FILE = "key"
OWNER_FILE = "serve.pid"
PREFIX = "workbench-monitor-"
#: How long feedback for another worker's newest ids waits for that worker to publish them.
FOREIGN_WAIT_S = 2.5

Feedback = tuple[str, int, Any]
"""One feedback item: request id, row in the request, label."""


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (any number is safe to ask about)."""
    if not 0 < pid < 1 << 22:  # beyond Linux's pid_max: no process (os.kill could overflow)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_private(path: Path, text: str) -> None:
    """``text`` into ``path`` (mode 0600), whole or not at all (a temporary file renamed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_stale(parent: Path) -> None:
    """This user's shared folders in ``parent`` whose ``bentoml serve`` is gone (killed)."""
    for folder in parent.glob(f"{PREFIX}*"):
        with contextlib.suppress(OSError, ValueError):
            if folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue
            if not alive(int((folder / OWNER_FILE).read_text())):
                shutil.rmtree(folder, ignore_errors=True)


def create_folder() -> Path:
    """The private folder of this serve's workers, named in :data:`FOLDER_ENV` for them and
    removed when this process exits (see the module docstring)."""
    remove_stale(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    write_private(folder / KEY_FILE, os.urandom(32).hex())
    write_private(folder / OWNER_FILE, str(os.getpid()))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ[FOLDER_ENV] = str(folder)
    return folder


def worker_sharing(workers: int, tag: str) -> Sharing | None:
    """The side of the shared folder of the worker tagged ``tag`` (None with one worker, or
    when the deployment made no folder: then each worker reports its own window)."""
    folder = os.environ.get(FOLDER_ENV, "").strip()
    if workers <= 1:
        return None
    if not folder:
        logger.warning(
            "monitoring: %d workers but no shared folder (%s is set by the deployment hook of "
            "`bentoml serve`): each worker reports its own window",
            workers,
            FOLDER_ENV,
        )
        return None
    return Sharing(Path(folder), tag)


class Sharing:
    """This worker's side of the shared folder."""

    def __init__(self, folder: Path, tag: str) -> None:
        self.folder = folder
        self.tag = tag
        self.pid = os.getpid()
        self.key = bytes.fromhex((folder / KEY_FILE).read_text().strip())
        self.readers: dict[str, RequestIds] = {}
        atexit.register(self.remove_files)
        self.publish_held({}, -1)  # live from the start: feedback for its first ids finds it

    def ids(self, tag: str) -> RequestIds:
        """The ids of the worker tagged ``tag`` (a live one: the caller checked)."""
        reader = self.readers.get(tag)
        if reader is None:
            reader = self.readers[tag] = RequestIds(self.key, tag)
        return reader

    def remove_files(self) -> None:
        """This worker's files in the shared folder, at exit."""
        for name in (f"window-{self.tag}.json", f"worker-{self.tag}.json"):
            with contextlib.suppress(OSError):
                (self.folder / name).unlink()
        with contextlib.suppress(OSError):
            (self.folder / f"inbox-{self.tag}.jsonl").unlink()

    def publish_summary(self, summary: dict[str, Any]) -> None:
        write_private(self.folder / f"window-{self.tag}.json", json.dumps(summary))

    def publish_held(self, held: dict[int, int], newest: int) -> None:
        """The requests this worker holds (first row's position -> rows still held), every one
        up to position ``newest`` included."""
        text = json.dumps({"pid": self.pid, "seq": newest, "held": held})
        write_private(self.folder / f"worker-{self.tag}.json", text)

    def worker(self, tag: str) -> dict[str, Any] | None:
        """What the live worker tagged ``tag`` last published (None: no such live worker)."""
        if tag == self.tag:
            return None
        published = _read_json(self.folder / f"worker-{tag}.json")
        if published is None or not alive(int(published.get("pid", 0))):
            return None
        return published

    def summaries(self) -> list[dict[str, Any]]:
        """The summaries the other live workers published."""
        out = []
        for path in self.folder.glob("window-*.json"):
            tag = path.stem.partition("-")[2]
            if tag != self.tag and self.worker(tag) is not None:
                data = _read_json(path)
                if data is not None:
                    out.append(data)
        return out

    def owner(self, request_id: str) -> str | None:
        """The tag of the live worker that answered ``request_id`` (None: not an id, or no
        such live worker)."""
        tag = tag_of(request_id)
        return tag if tag is not None and self.worker(tag) is not None else None

    async def forward(self, tag: str, items: list[Feedback]) -> list[Feedback]:
        """Send feedback to the worker tagged ``tag`` (its inbox): the items it holds; a real
        id newer than its last publication waits (bounded) for the next one."""
        reader = self.ids(tag)
        positions = {item[0]: reader.position_of(item[0]) for item in items}
        newest = max((p for p in positions.values() if p is not None), default=-1)
        deadline = time.monotonic() + FOREIGN_WAIT_S
        while True:
            published = self.worker(tag) or {}
            if published.get("seq", -1) >= newest or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        held = {int(k): int(v) for k, v in published.get("held", {}).items()}
        known = [item for item in items if item[1] < held.get(_or(positions[item[0]], -1), 0)]
        if known:
            lines = "".join(json.dumps(list(item)) + "\n" for item in known)
            fd = os.open(
                self.folder / f"inbox-{tag}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
            )
            with os.fdopen(fd, "a") as fh:
                fh.write(lines)
        return known

    def take_inbox(self) -> list[Feedback]:
        """The feedback other workers left for this worker's ids (removed from the inbox)."""
        inbox = self.folder / f"inbox-{self.tag}.jsonl"
        if not inbox.exists():
            return []
        taken = inbox.with_name(f".{inbox.name}.{time.monotonic_ns()}")
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
    "FOLDER_ENV",
    "Feedback",
    "Sharing",
    "alive",
    "create_folder",
    "worker_sharing",
    "write_private",
]
