"""A panel's server and the servers of its project: at most one of its own, the others found.

:class:`LaunchSession` is what the launch and monitor panels' buttons call (start, check, stop),
so the rules live here and not in the view: a second start while the server runs starts nothing,
a stop stops exactly the server this session started, and a :class:`StatusWatcher` thread polls
the server's status while it runs. The watcher is bounded: one poll every ``interval`` seconds,
each with a short HTTP timeout, for at most ``max_seconds``; it ends by itself when the server
stops (after one last report), and :meth:`StatusWatcher.stop` ends it at once and waits for it,
so no report follows a stop.

:func:`find_server` is how another notebook of the project finds a server workbench started (the
launch panel's, in another kernel): from the server records, with the key the record keeps
(readable by this user only). :func:`connect` checks a URL and key and says what serves there.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from workbench.config import Config
from workbench.errors import ServingError, WorkbenchError
from workbench.results import LaunchResult, ServerStatus
from workbench.runtime.settings import METADATA_PATH
from workbench.serving.checks import auth_headers
from workbench.serving.launch import check, serve, served_tag
from workbench.serving.processes import ServerRecord
from workbench.serving.server import Server, requests_served, state_dir

logger = logging.getLogger(__name__)

StatusCallback = Callable[[ServerStatus], None]

#: How much of the end of a server's log is searched for its last error.
LOG_TAIL_BYTES = 64 * 1024
ERROR_LINE = re.compile(r"\bERROR\b|\bCRITICAL\b")
#: Exit codes of a server that was asked to stop (SIGTERM), not one that failed.
CLEAN_EXITS = {0, -signal.SIGTERM}


def last_error_line(log: Path) -> str | None:
    """The last line of the log's tail that reports an error (``None`` when there is none)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - LOG_TAIL_BYTES))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return None
    errors = [line.strip() for line in tail.splitlines() if ERROR_LINE.search(line)]
    return errors[-1] if errors else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def server_status(server: Server, *, timeout: float = 2.0) -> ServerStatus:
    """A snapshot of ``server``: state, uptime, API requests served and its last error."""
    code = server.process.poll()
    running = code is None
    last_error = last_error_line(server.log_path)
    if code is not None and code not in CLEAN_EXITS:
        ended = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
        last_error = f"`bentoml serve` {ended}" + (
            f"; last error: {last_error}" if last_error else ""
        )
    return ServerStatus(
        state="running" if running else "stopped",
        bento_tag=server.bento_tag,
        url=server.url,
        pid=server.pid,
        uptime_s=round(time.time() - server.started_at, 1) if running else 0.0,
        requests_served=requests_served(server.url, timeout=timeout) if running else None,
        last_error=last_error,
        checked_at=time.time(),
    )


class StatusWatcher:
    """A daemon thread that reports ``server_status(server)`` to ``on_status`` every
    ``interval`` seconds while the server runs; see the module docstring for its bounds."""

    def __init__(
        self,
        server: Server,
        on_status: StatusCallback,
        *,
        interval: float = 2.0,
        max_seconds: float = 12 * 3600,
    ) -> None:
        self.server = server
        self.on_status = on_status
        self.interval = max(0.2, interval)
        self.max_seconds = max_seconds
        self.reports = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"workbench-status-{server.pid}", daemon=True
        )

    def start(self) -> StatusWatcher:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        timeout = min(2.0, self.interval)
        while not self._stopped.is_set():
            try:
                status = server_status(self.server, timeout=timeout)
            except Exception:  # e.g. /metrics answered something that is not Prometheus text
                logger.debug("status poll failed; trying again", exc_info=True)
                if time.monotonic() >= deadline:
                    return
                self._stopped.wait(self.interval)
                continue
            if self._stopped.is_set():  # stopped while polling: that report is stale
                return
            try:
                self.on_status(status)
            except Exception:  # a broken view must not leave a thread spinning
                logger.exception("status report failed; the status watcher stops")
                return
            self.reports += 1
            if status.state != "running" or time.monotonic() >= deadline:
                return
            self._stopped.wait(self.interval)

    def stop(self, *, timeout: float = 5.0) -> None:
        """End the thread and wait for it (no report is made after this returns)."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)


class LaunchSession:
    """The server of one config, as the launch panel drives it.

    ``on_status`` (optional) receives a :class:`ServerStatus` every ``interval`` seconds while
    the server runs, from a background thread, and once more when it stops by itself.
    """

    def __init__(
        self,
        config: Config,
        *,
        run_dir: str | Path | None = None,
        on_status: StatusCallback | None = None,
        interval: float = 2.0,
        origin: str = "",
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.on_status = on_status
        self.interval = interval
        self.origin = origin
        """What its servers' records say started them (the panel's title)."""
        self.server: Server | None = None
        self.watcher: StatusWatcher | None = None

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.running

    def start(self, *, portable: bool | None = None) -> bool:
        """Start the packaged Bento (from a clean environment unless ``portable`` is False;
        default ``launch.portable``); ``False`` (and nothing started) when it already runs."""
        if self.running:
            return False
        self.server = serve(self.config, run_dir=self.run_dir, portable=portable)
        if self.origin:
            self.server.set_origin(self.origin)
        if self.on_status is not None:
            self.watcher = StatusWatcher(
                self.server, self.on_status, interval=self.interval
            ).start()
        return True

    def check(self) -> LaunchResult:
        """Smoke, bad-request, parity and load checks against the running server."""
        if self.server is None or not self.running:
            raise ServingError("no server is running; press Start (or call start()) first")
        return check(self.server, self.config, run_dir=self.run_dir)

    def status(self) -> ServerStatus | None:
        """The server's status now (``None`` before the first start)."""
        return None if self.server is None else server_status(self.server)

    def stop(self) -> Server | None:
        """Stop the status watcher, then the server this session started and all its workers;
        returns that server (``None`` when none was running). Idempotent."""
        self.close()
        server, running = self.server, self.running
        if server is not None:
            server.stop()
        return server if running else None

    def close(self) -> None:
        """Stop watching (the server keeps running; it stops with the kernel or :meth:`stop`)."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None


# ---------------------------------------------------------------- servers of a project


@dataclass(frozen=True)
class Service:
    """A running service a panel talks to: where, with which key, and what serves there."""

    url: str
    key: str = field(repr=False)
    """Sent as the bearer key; never shown."""
    model_tag: str = ""
    bento_tag: str = ""
    """Known when workbench started the server (its record), else empty."""
    pid: int | None = None
    origin: str = ""
    """What started it (``3 · Launch``), when its record says."""

    def describe(self) -> str:
        """One phrase: what serves where, and who started it."""
        what = f"Bento {self.bento_tag}" if self.bento_tag else "the service"
        model = f" (model {self.model_tag})" if self.model_tag else ""
        started = ", ".join(
            part
            for part in (
                f"pid {self.pid}" if self.pid else "",
                f"started from {self.origin}" if self.origin else "",
            )
            if part
        )
        return f"{what}{model} at {self.url}" + (f" ({started})" if started else "")


def running_records() -> list[ServerRecord]:
    """The records of servers workbench started that still run, newest first (unreadable
    records, and those whose process is gone or is now another process, are left out)."""
    found = []
    for path in state_dir().glob("*.json"):
        try:
            record = ServerRecord.from_json(path.read_text())
        except (OSError, ValueError):
            continue
        if record.server.mismatch() is None:
            found.append(record)
    return sorted(found, key=lambda r: r.started_at, reverse=True)


def find_server(config: Config, *, run_dir: str | Path | None = None) -> ServerRecord | None:
    """A running server of this project's model that workbench started (the launch panel's, in
    another kernel; ``workbench serve``): the Bento the launch stage serves first, then any
    version of the model; the newest first. ``None`` when there is none."""
    try:
        wanted: str | None = served_tag(config, run_dir=run_dir)
    except WorkbenchError:  # not packaged yet, or inputs changed since: any version will do
        wanted = None
    ours = [r for r in running_records() if r.bento_tag.partition(":")[0] == config.name]
    exact = [r for r in ours if r.bento_tag == wanted]
    return next(iter(exact or ours), None)


def connect(url: str, key: str = "", *, record: ServerRecord | None = None) -> Service:
    """Check that a workbench service answers at ``url`` with ``key`` and say what it serves
    (its model card); ``record``: the server's record when workbench started it."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ServingError(f"{url!r} is not a URL; give one such as http://127.0.0.1:3000")
    try:
        answer = httpx.get(f"{url}{METADATA_PATH}", headers=auth_headers(key), timeout=10)
    except httpx.HTTPError as exc:
        raise ServingError(f"{url}: no answer ({type(exc).__name__}); is it running?") from exc
    if answer.status_code == 401:
        raise ServingError(f"{url} refused the key (401); give the key it was started with")
    if answer.status_code != 200:
        raise ServingError(
            f"{url}{METADATA_PATH}: HTTP {answer.status_code}; not a service workbench packaged?"
        )
    try:
        model_tag = str(answer.json().get("model_tag", ""))
    except ValueError as exc:
        raise ServingError(
            f"{url}{METADATA_PATH} did not answer JSON: not a service workbench packaged?"
        ) from exc
    return Service(
        url=url,
        key=key,
        model_tag=model_tag,
        bento_tag=record.bento_tag if record else "",
        pid=record.server.pid if record else None,
        origin=record.origin if record else "",
    )


def service_alive(url: str, *, timeout: float = 2.0) -> bool:
    """Whether the service at ``url`` still answers its liveness route."""
    try:
        return httpx.get(f"{url.rstrip('/')}/livez", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
