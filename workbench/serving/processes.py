"""Which processes belong to a workbench server, stopping them, and the watchdog on its owner.

A PID alone names nobody: records outlive reboots and PIDs are reused. A server is known by

- its **record** (:class:`ServerRecord`, one JSON file per server): the arbiter's PID, create time
  and command line, and the owner's (the interpreter that started it, e.g. a notebook kernel);
- its **marker**: every process of the server (the ``bentoml serve`` arbiter, its workers, the
  watchdog) carries ``WORKBENCH_SERVER_ID=<the record's id>`` in its environment, inherited from
  the arbiter. Workers whose arbiter was SIGKILLed are found by it, and a process that merely got
  a recorded PID back is never signalled: it has another create time and no marker.

The **watchdog** (``python processes.py watch RECORD``, started beside each server in a session of
its own) stops the server within seconds of its owner's death, a SIGKILL or the out-of-memory
killer included, where ``atexit`` never runs: it looks every 0.5 s, then stops the server
gracefully (5.6 s from SIGKILL to the last worker gone, measured on a loaded 2-core machine).
A zombie owner counts as dead. It is run by file path, not ``-m workbench...``, so it imports
psutil and the standard library only (not bentoml or pandas): about 16 MB resident.

This module imports nothing from workbench, for that reason.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

MARKER_ENV = "WORKBENCH_SERVER_ID"
#: psutil derives create times from clock ticks since boot: equal within this for one process.
CREATE_TIME_TOLERANCE_S = 0.05
WATCH_INTERVAL_S = 0.5
GONE = "not running"
ZOMBIE = "dead (a zombie its parent has not reaped)"


def since_boot(pid: int) -> float | None:
    """Seconds from boot to the start of ``pid`` (``/proc/<pid>/stat``), ``None`` off Linux or
    when it is gone.

    psutil's create time adds the boot time to this, and the boot time moves whenever the wall
    clock is stepped (NTP, a resumed VM): two processes reading one create time at different
    moments can disagree by a second. This never moves, so it is what identifies a process.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat[stat.rfind(b")") + 2 :].split()[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class ProcessId:
    """A process as it was when recorded: PID, start (since boot, and wall-clock create time, for
    people and for systems without ``/proc``) and command line."""

    pid: int
    create_time: float
    cmdline: tuple[str, ...] = ()
    since_boot: float | None = None

    @classmethod
    def of(cls, pid: int) -> ProcessId:
        """The identity of the running process ``pid`` (``psutil.NoSuchProcess`` if none)."""
        proc = psutil.Process(pid)
        with proc.oneshot():
            return cls(
                pid=pid,
                create_time=proc.create_time(),
                cmdline=tuple(proc.cmdline()),
                since_boot=since_boot(pid),
            )

    def started_at_same_time(self, pid: int, create_time: float) -> bool:
        """Whether process ``pid`` (create time ``create_time``) started when this one did."""
        now = since_boot(pid) if self.since_boot is not None else None
        if self.since_boot is not None and now is not None:
            return abs(now - self.since_boot) <= CREATE_TIME_TOLERANCE_S
        return abs(create_time - self.create_time) <= CREATE_TIME_TOLERANCE_S

    def mismatch(self) -> str | None:
        """``None`` while ``pid`` is still this very process, else why it is not (one phrase)."""
        try:
            proc = psutil.Process(self.pid)
            with proc.oneshot():
                created, status = proc.create_time(), proc.status()
                cmdline = tuple(proc.cmdline()) if self.cmdline else ()
        except psutil.NoSuchProcess:
            return GONE
        except psutil.AccessDenied:
            return "now a process of another user"
        if not self.started_at_same_time(self.pid, created) or cmdline != self.cmdline:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
            return f"now another process (started {started}: {' '.join(cmdline)[:80]!r})"
        if status == psutil.STATUS_ZOMBIE:
            return ZOMBIE
        return None


@dataclass(frozen=True)
class ServerRecord:
    """What workbench writes for each server it starts, and reads back to find and stop it."""

    id: str
    server: ProcessId
    owner: ProcessId
    bento_tag: str
    url: str
    log: str
    started_at: float
    watchdog: ProcessId | None = None
    api_key: str = field(default="", repr=False)
    """The key the server requires: another kernel of this user connects with it (the record is
    readable by its owner only, see :meth:`save`); never printed."""
    origin: str = ""
    """What started the server, in words a person knows (``3 · Launch``, ``workbench serve``)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ServerRecord:
        """The record in ``text``; ``ValueError`` for anything else (e.g. an older format)."""
        try:
            data: dict[str, Any] = json.loads(text)
            ids = {k: _process_id(data[k]) for k in ("server", "owner")}
            watchdog = _process_id(data["watchdog"]) if data.get("watchdog") else None
            return cls(
                id=str(data["id"]),
                bento_tag=str(data["bento_tag"]),
                url=str(data["url"]),
                log=str(data["log"]),
                started_at=float(data["started_at"]),
                watchdog=watchdog,
                api_key=str(data.get("api_key") or ""),
                origin=str(data.get("origin") or ""),
                **ids,
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a server record of this workbench ({exc!r})") from exc

    def save(self, path: Path) -> None:
        """Write to a temporary name beside ``path``, then rename: never half a record. The file
        is readable and writable by its owner only (it holds the server's key)."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(self.to_json())
            os.chmod(tmp, 0o600)  # an older temporary file of this name kept its mode
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)


def _process_id(data: dict[str, Any]) -> ProcessId:
    return ProcessId(
        pid=int(data["pid"]),
        create_time=float(data["create_time"]),
        cmdline=tuple(str(a) for a in data.get("cmdline") or ()),
        since_boot=None if data.get("since_boot") is None else float(data["since_boot"]),
    )


def owner_alive(record: ServerRecord) -> bool:
    """Whether the interpreter that started the server still runs (a zombie does not)."""
    return record.owner.mismatch() is None


def members(record: ServerRecord) -> list[psutil.Process]:
    """The live processes carrying this server's marker: arbiter, workers, watchdog.

    Only processes of this user started no earlier than the arbiter are looked at; a zombie is
    left out (it is dead already; its parent reaps it).
    """
    uid = os.getuid()
    arbiter = record.server
    found = []
    for proc in psutil.process_iter(["uids", "create_time", "status"]):
        info = proc.info
        if (
            info["uids"] is None
            or info["uids"].real != uid
            or info["status"] == psutil.STATUS_ZOMBIE
        ):
            continue
        started = since_boot(proc.pid) if arbiter.since_boot is not None else None
        if started is not None and arbiter.since_boot is not None:
            if started < arbiter.since_boot - CREATE_TIME_TOLERANCE_S:
                continue
        elif (info["create_time"] or 0) < arbiter.create_time - CREATE_TIME_TOLERANCE_S:
            continue
        with suppress(psutil.Error):
            if proc.environ().get(MARKER_ENV) == record.id:
                found.append(proc)
    return found


@dataclass
class StopOutcome:
    """What :func:`stop` signalled, and what it did not signal and why."""

    stopped: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def stop(record: ServerRecord, *, grace: float = 10.0, spare: Iterable[int] = ()) -> StopOutcome:
    """SIGTERM every process of the server, wait ``grace`` s, then SIGKILL what remains.

    Only processes that carry the server's marker are signalled (never ``spare``, e.g. the
    watchdog itself); the recorded PID is skipped, with the reason, when it is now another
    process. Workers are found even when the arbiter is gone.
    """
    outcome = StopOutcome()
    spared = set(spare)
    why = record.server.mismatch()
    if why not in (None, GONE, ZOMBIE):
        outcome.skipped.append(f"pid {record.server.pid} not signalled: {why}")
    procs = [p for p in members(record) if p.pid not in spared]
    for proc in procs:
        with suppress(psutil.Error):  # psutil refuses a PID reused since it was listed
            proc.terminate()
    kill_survivors(procs, grace=grace)
    outcome.stopped = sorted(p.pid for p in procs)
    return outcome


def kill_survivors(procs: list[psutil.Process], *, grace: float) -> None:
    """Wait up to ``grace`` s for ``procs`` (already sent SIGTERM) to exit; SIGKILL the rest."""
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def terminate_tree(pid: int, *, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, wait ``grace`` s, then SIGKILL what remains.

    The descendants are collected first: SIGKILL on the parent alone would orphan the workers.
    """
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        for proc in procs:
            with suppress(psutil.Error):
                proc.terminate()
    kill_survivors(procs, grace=grace)


def watch(record_path: Path, *, interval: float = WATCH_INTERVAL_S) -> int:
    """Poll the owner and the arbiter; stop the server when either dies, then remove its record.

    Returns when the server is stopped (by this watchdog or by :func:`stop`, which ends it too).
    """
    record = ServerRecord.from_json(record_path.read_text())
    while True:
        owner, server = record.owner.mismatch(), record.server.mismatch()
        if owner is not None or server is not None:
            who = f"its owner (pid {record.owner.pid}) is {owner}" if owner else ""
            who = who or f"its arbiter (pid {record.server.pid}) is {server}"
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            print(f"{stamp} [INFO] [workbench watchdog] stopping the server: {who}", flush=True)
            stop(record, grace=5.0, spare=[os.getpid()])
            record_path.unlink(missing_ok=True)
            return 0
        time.sleep(interval)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "watch":
        sys.exit(f"usage: {sys.argv[0]} watch RECORD.json")
    sys.exit(watch(Path(sys.argv[2])))
