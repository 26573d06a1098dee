"""A ``bentoml serve`` process you can always stop: started in the background on 127.0.0.1.

A :class:`Server` is a ``bentoml serve`` process group on 127.0.0.1. It never blocks the caller,
is stopped with every worker (SIGTERM, a grace period, then SIGKILL to whatever is left), and is
stopped when the owning interpreter (a notebook kernel) exits: by ``atexit`` when it exits
normally, by a watchdog process when it is killed outright (:mod:`.processes`).
Each server is recorded in a state folder with the identity of its processes, so one whose owner
died can be found and stopped, and nothing else is ever signalled.
"""

from __future__ import annotations

import atexit
import errno
import functools
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from workbench.errors import ServingError
from workbench.runtime import API_KEY_ENV
from workbench.serving import processes
from workbench.serving.network import HOST, free_port, listens_on, port_is_free
from workbench.serving.portable import CleanEnvironment
from workbench.serving.processes import (
    MARKER_ENV,
    ProcessId,
    ServerRecord,
    terminate_tree,
)

#: Tries at a free port: another process can take the one chosen before ``bentoml`` binds it.
PORT_ATTEMPTS = 3
HEALTH = {"/livez", "/readyz", "/healthz", "/metrics"}
#: What a worker's log says when the service's start (importing it, loading the model) raised.
STARTUP_FAILED = "Application startup failed"
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")


def state_dir() -> Path:
    """Where running servers are recorded (``$WORKBENCH_STATE_DIR``, else ``~/.workbench``)."""
    root = Path(os.environ.get("WORKBENCH_STATE_DIR", Path.home() / ".workbench")).expanduser()
    folder = root / "servers"
    if not folder.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)  # records hold keys (each file 0600 as well)
    return folder


def bytecode_cache() -> Path:
    """The private bytecode cache of the servers workbench starts (beside their records)."""
    folder = state_dir().parent / "pycache"
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    return folder


def _stop_at_exit(record: ServerRecord, path: Path) -> None:
    processes.stop(record, grace=5.0)
    path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Program:
    """What a :class:`Server` runs instead of ``bentoml serve`` (it must take ``--host`` and
    ``--port`` and answer ``/readyz``), and the environment it adds."""

    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    """A running ``bentoml serve`` of one Bento; use :meth:`start`, then :meth:`stop`."""

    bento_tag: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    api_key: str = field(default="", repr=False)
    """The key the server requires (``service.auth: api_key``): ``$WORKBENCH_API_KEY`` when set
    here, else one made for this server alone. It is kept in the server's record, a file only
    this user can read, so another notebook of the project can connect; never printed."""
    started_at: float = field(default_factory=time.time)
    server_id: str = field(default_factory=lambda: secrets.token_hex(8))
    """The marker every process of this server carries (:mod:`.processes`)."""
    environment: CleanEnvironment | None = None
    """The clean environment it serves from (:mod:`.portable`); ``None``: this one."""
    record: ServerRecord | None = field(default=None, repr=False)
    watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _at_exit: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def record_path(self) -> Path:
        return state_dir() / f"{self.pid}.json"

    @classmethod
    def start(
        cls,
        bento_tag: str,
        *,
        port: int | None = None,
        timeout: float = 90.0,
        log_dir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        environment: CleanEnvironment | None = None,
        api_key: str | None = None,
        program: Program | None = None,
    ) -> Server:
        """Start serving ``bento_tag`` on 127.0.0.1 and wait until ``/readyz`` answers 200; with
        an ``environment``, on its Python, in its folder, without PYTHONPATH (:mod:`.portable`);
        with a ``program``, that instead of ``bentoml serve`` (the canary router).

        The server gets ``api_key``, else the key of ``$WORKBENCH_API_KEY``, else a fresh random
        one (a Bento with ``service.auth: api_key`` refuses to start without a key). With no
        ``port``, a free one is chosen, and another when something took it before the server
        bound it (up to :data:`PORT_ATTEMPTS` tries).
        """
        if port is not None and not port_is_free(port):
            raise ServingError(
                f"port {port} on {HOST} is busy; choose another port or leave it empty "
                "for a free one"
            )
        for attempt in range(1, PORT_ATTEMPTS + 1):
            server = cls._spawn(
                bento_tag, port or free_port(), log_dir, extra_args, environment, api_key, program
            )
            try:
                server.wait_ready(timeout)
            except _PortTaken:
                server.stop()
                if port is not None or attempt == PORT_ATTEMPTS:
                    raise ServingError(
                        f"port {server.port} on {HOST} was taken by another process before "
                        f"`bentoml serve` could bind it ({attempt} tries); start again, or "
                        "choose another port"
                    ) from None
                continue
            except BaseException:
                server.stop()
                raise
            return server
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _spawn(
        cls,
        bento_tag: str,
        port: int,
        log_dir: Path | None,
        extra_args: tuple[str, ...],
        environment: CleanEnvironment | None,
        api_key: str | None = None,
        program: Program | None = None,
    ) -> Server:  # noqa: PLR0913 - start()'s options, passed on
        """Start ``bentoml serve`` and its watchdog, record both, register the exit hook."""
        api_key = api_key or os.environ.get(API_KEY_ENV) or secrets.token_urlsafe(24)
        server_id = secrets.token_hex(8)
        log_dir = log_dir or state_dir()
        log_path = log_dir / f"serve-{bento_tag.replace(':', '-')}-{port}.log"
        inherited = environment.process_env(os.environ) if environment else dict(os.environ)
        # The private cache below must be written to persist: PYTHONDONTWRITEBYTECODE (set in
        # many containers to keep __pycache__ out of source trees) would have every start
        # compile bentoml, scikit-learn, pandas... from source again; this cache is no source tree.
        inherited.pop("PYTHONDONTWRITEBYTECODE", None)
        env = {
            **inherited,
            "BENTOML_DO_NOT_TRACK": "True",
            # The Bento stays as verified (workbench.integrity): bytecode is read from and written
            # to a private cache of this user's (0700), never beside the Bento's sources, so a
            # planted __pycache__ is ignored. The cache persists: only the first start compiles
            # (an empty one cost 10-16 s more per start on 2 loaded cores).
            "PYTHONPYCACHEPREFIX": str(bytecode_cache()),
            API_KEY_ENV: api_key,
            MARKER_ENV: server_id,
            **(program.env if program else {}),
        }
        python = str(environment.python) if environment else sys.executable
        command = [python, "-m", "bentoml", "serve", bento_tag]
        command = list(program.command) if program else command
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [*command, "--host", HOST, "--port", str(port), *extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                # `-m` puts the working folder first on sys.path: the clean one imports nothing
                cwd=environment.path if environment else None,
            )
        server = cls(
            bento_tag=bento_tag,
            port=port,
            process=process,
            log_path=log_path,
            api_key=api_key,
            server_id=server_id,
            environment=environment,
        )
        server._record_and_watch()
        return server

    def _record_and_watch(self) -> None:
        """Record the server, and have it stopped when this interpreter exits or is killed."""
        record = ServerRecord(
            id=self.server_id,
            server=ProcessId.of(self.process.pid),
            owner=ProcessId.of(os.getpid()),
            bento_tag=self.bento_tag,
            url=self.url,
            log=str(self.log_path),
            started_at=self.started_at,
            api_key=self.api_key,
        )
        record.save(self.record_path)
        # Stopped when this interpreter exits (a kernel shutdown or restart), not when the handle
        # is dropped: `workbench.serve(config).url` must leave a running server behind.
        self._at_exit = functools.partial(_stop_at_exit, record, self.record_path)
        atexit.register(self._at_exit)
        # ... and by the watchdog when it is killed outright. A session of its own: a signal to
        # the owner's process group does not take the watchdog with it.
        with open(self.log_path, "ab") as log:
            self.watchdog = subprocess.Popen(
                [sys.executable, processes.__file__, "watch", str(self.record_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, MARKER_ENV: self.server_id},
            )
        with suppress(psutil.NoSuchProcess):  # the record stays valid without it
            record = replace(record, watchdog=ProcessId.of(self.watchdog.pid))
            record.save(self.record_path)
        self.record = record

    def set_origin(self, origin: str) -> None:
        """Say in the server's record what started it (shown to whoever finds it running)."""
        if self.record is not None:
            self.record = replace(self.record, origin=origin)
            self.record.save(self.record_path)

    def wait_ready(self, timeout: float) -> None:
        """Wait until ``/readyz`` answers 200 from this server's own processes.

        An answer from a socket another process holds does not count; when this server exits
        because another process took its port (the port is busy, or the log says the bind
        failed), :class:`_PortTaken` says so (``start`` retries).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if not port_is_free(self.port) or self._lost_the_port():
                    raise _PortTaken(self.port)
                raise ServingError(
                    f"`bentoml serve {self.bento_tag}` exited with code {self.process.returncode} "
                    f"before it was ready. Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready and listens_on(self._tree(), self.port):
                return
            failure = self._startup_failure()
            if failure is not None:
                raise ServingError(
                    f"`bentoml serve {self.bento_tag}` could not start its service ({failure}); "
                    f"it was stopped. Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.2)
        raise ServingError(
            f"`bentoml serve {self.bento_tag}` was not ready after {timeout:.0f} s; "
            "it was stopped. "
            f"Last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def _startup_failure(self) -> str | None:
        """The error that failed a worker's start, when the log says one did (BentoML then
        starts it again and again, and it fails the same way: there is no point waiting)."""
        tail = self.log_tail(80)  # read while starting, when the log is short
        if STARTUP_FAILED not in tail:
            return None
        errors = [line for line in tail.splitlines() if EXCEPTION_LINE.match(line)]
        return errors[-1].strip() if errors else STARTUP_FAILED

    def _lost_the_port(self) -> bool:
        """Whether the log says binding the port failed: the process that held it (often a
        client connection's ephemeral port) may have let it go before the exit was seen."""
        return f"[Errno {errno.EADDRINUSE}]" in self.log_tail(40)

    def _tree(self) -> set[int]:
        try:
            parent = psutil.Process(self.pid)
            return {self.pid, *(p.pid for p in parent.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def status(self) -> dict[str, Any]:
        """State, URL, PID, uptime and API requests served (from ``/metrics``)."""
        running = self.running
        return {
            "state": "running" if running else "stopped",
            "url": self.url,
            "pid": self.pid,
            "uptime_s": round(time.time() - self.started_at, 1) if running else 0.0,
            "requests_served": requests_served(self.url) if running else None,
            "bento_tag": self.bento_tag,
        }

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop the server, all its workers and its watchdog (idempotent)."""
        if self.record is not None:
            processes.stop(self.record, grace=grace)
        if self.process.poll() is None:  # not found by its marker: still our child, by PID
            terminate_tree(self.pid, grace=grace)
        self.process.wait(timeout=5)
        if self.watchdog is not None:
            self.watchdog.wait(timeout=5)
        self.record_path.unlink(missing_ok=True)
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
            self._at_exit = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _PortTaken(Exception):
    """``bentoml serve`` exited before it was ready and another process holds its port."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} was taken")
        self.port = port


def requests_served(url: str, *, timeout: float = 5.0) -> int | None:
    """API requests answered so far, summed from BentoML's Prometheus counters (health excluded)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=timeout).text
    except httpx.HTTPError:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "bentoml_service_request":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("endpoint") not in HEALTH:
                total += sample.value
    return int(total)
