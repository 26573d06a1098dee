"""One launch panel's server: at most one at a time, its status kept fresh in the background.

:class:`LaunchSession` is what the launch panel's buttons call (start, check, stop), so the rules
live here and not in the view: a second start while the server runs starts nothing, and a
:class:`StatusWatcher` thread polls the server's status while it runs. The watcher is bounded: one
poll every ``interval`` seconds, each with a short HTTP timeout, for at most ``max_seconds``; it
ends by itself when the server stops (after one last report), and :meth:`StatusWatcher.stop`
ends it at once and waits for it, so no report follows a stop.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from workbench.config import Config
from workbench.errors import ServingError
from workbench.results import LaunchResult, ServerStatus
from workbench.serving.launch import check, serve
from workbench.serving.server import Server, requests_served

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
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.on_status = on_status
        self.interval = interval
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

    def stop(self) -> None:
        """Stop the status watcher, then the server and all its workers (idempotent)."""
        self.close()
        if self.server is not None:
            self.server.stop()

    def close(self) -> None:
        """Stop watching (the server keeps running; it stops with the kernel or :meth:`stop`)."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
