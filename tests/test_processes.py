"""Only workbench's own servers are ever signalled, and none outlives its owner or its arbiter."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psutil
import pytest
from conftest import kernel_serving
from test_serving import package_tag

from workbench.errors import ServingError
from workbench.serving import Server
from workbench.serving.network import free_port
from workbench.serving.processes import ProcessId, ServerRecord, members
from workbench.serving.server import _PortTaken, state_dir

WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def servers_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real `workbench servers` command, on this session's state folder."""
    return subprocess.run(
        [*WORKBENCH, "servers", *args], capture_output=True, text=True, timeout=120
    )


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def write_record(server: ProcessId, owner: ProcessId) -> Path:
    record = ServerRecord(
        id=secrets.token_hex(8),
        server=server,
        owner=owner,
        bento_tag="iris:abc",
        url="http://127.0.0.1:1",
        log="/dev/null",
        started_at=time.time(),
    )
    path = state_dir() / f"{server.pid}.json"
    record.save(path)
    return path


def live(procs: list[psutil.Process]) -> list[int]:
    out = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_a_process_is_still_itself_after_the_wall_clock_is_stepped():
    """psutil's create time moves with the boot time when the wall clock is stepped (NTP, a
    resumed VM); a record made before the step still names the same process, and a process
    started at another moment is still another one. (A watchdog that compared wall-clock create
    times stopped healthy servers: they exited 0 before they were ready.)"""
    proc = sleeper()
    try:
        recorded = ProcessId.of(proc.pid)
        assert recorded.since_boot is not None
        stepped = replace(recorded, create_time=recorded.create_time - 1.0)
        assert stepped.mismatch() is None
        other = replace(recorded, since_boot=recorded.since_boot - 1.0)
        assert other.mismatch() is not None and "another process" in other.mismatch()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("same_start", [False, True], ids=["other-create-time", "same-start"])
def test_a_recorded_pid_now_held_by_another_process_is_not_signalled(same_start: bool):
    """A record whose PID now belongs to an unrelated process (another create time and command
    line, or even the same ones but without the server's marker): `servers --stop` says it skipped
    it and why, and that process survives."""
    bystander = sleeper()
    try:
        real = ProcessId.of(bystander.pid)
        recorded = (
            real
            if same_start
            else ProcessId(
                pid=real.pid,
                create_time=real.create_time - 3600,
                cmdline=(sys.executable, "-m", "bentoml", "serve", "iris:abc"),
            )
        )
        path = write_record(recorded, owner=ProcessId(pid=real.pid, create_time=1.0))
        done = servers_cli("--stop")
        assert done.returncode == 0, done.stderr
        if not same_start:
            assert f"skipped: pid {real.pid} not signalled: now another process" in done.stdout
        assert "nothing of it was running; record removed" in done.stdout
        assert bystander.poll() is None  # alive: not signalled
        assert not path.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_zombie_owner_is_reported_dead():
    """An owner that exited but was not reaped by its parent (a zombie) is listed as dead."""
    owner = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        owner_id = ProcessId.of(owner.pid)
        assert owner.stdin is not None
        owner.stdin.close()
        deadline = time.monotonic() + 10
        while psutil.Process(owner.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        path = write_record(ProcessId(pid=owner.pid, create_time=1.0), owner=owner_id)
        done = servers_cli()
        assert f"owner {owner.pid} (dead)" in done.stdout, done.stdout
        path.unlink()
    finally:
        owner.wait()


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_readiness_only_counts_an_answer_from_the_servers_own_socket(tmp_path: Path):
    """Another process answering 200 on the server's port is not the server being ready; when
    the server exits because that process holds its port, start() is told to retry."""
    other = HTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = other.server_address[1]
    child = sleeper()
    server = Server(bento_tag="iris:abc", port=port, process=child, log_path=tmp_path / "log")
    try:
        with pytest.raises(ServingError, match="was not ready after 2 s"):
            server.wait_ready(timeout=2)
        child.kill()
        child.wait()
        with pytest.raises(_PortTaken):
            server.wait_ready(timeout=2)
    finally:
        child.kill()
        child.wait()
        other.shutdown()
        other.server_close()


def test_a_server_that_could_not_bind_a_port_freed_since_is_told_to_retry(tmp_path: Path):
    """The process that held the port (often a client connection's ephemeral port) may let it go
    before the exit is seen: a log that says the bind failed is enough for start() to retry, and
    any other early exit is an error that quotes the log."""
    import errno

    log = tmp_path / "log"
    port = free_port()
    for text, expected in [
        (f"OSError: [Errno {errno.EADDRINUSE}] Address already in use\n", _PortTaken),
        ("ModuleNotFoundError: No module named 'service'\n", ServingError),
    ]:
        log.write_text(text)
        child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
        child.wait()
        server = Server(bento_tag="iris:abc", port=port, process=child, log_path=log)
        with pytest.raises(expected) as raised:
            server.wait_ready(timeout=5)
        if expected is ServingError:
            assert "exited with code 1" in str(raised.value)
            assert "No module named" in str(raised.value)


@pytest.mark.serve
def test_workers_of_a_sigkilled_arbiter_are_found_and_stopped(packaged: Path):
    """SIGKILL the arbiter (and the watchdog that would clean up after it): the orphaned workers
    keep running, and `servers --stop` finds them by the server's marker and stops them all."""
    server = Server.start(package_tag(packaged))
    try:
        assert server.record is not None and server.watchdog is not None
        procs = members(server.record)
        workers = [p for p in procs if p.pid not in (server.pid, server.watchdog.pid)]
        assert workers, [p.cmdline() for p in procs]
        os.kill(server.watchdog.pid, signal.SIGKILL)
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        time.sleep(1.0)
        assert live(workers) == [w.pid for w in workers]  # orphaned, still running
        done = servers_cli("--stop")
        assert done.returncode == 0, done.stderr
        assert "stopped pids" in done.stdout
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert live(alive) == []
        assert not server.record_path.exists()
    finally:
        server.stop(grace=2)


@pytest.mark.serve
def test_a_kernel_killed_outright_takes_its_server_down_within_seconds(packaged: Path):
    """A real Jupyter kernel starts a server and is killed with SIGKILL (as the out-of-memory
    killer does; no atexit runs): the watchdog stops the arbiter and its workers in seconds."""
    with kernel_serving(package_tag(packaged)) as (km, server_pid):
        record = ServerRecord.from_json((state_dir() / f"{server_pid}.json").read_text())
        procs = members(record)
        assert len(procs) >= 3  # arbiter, worker, watchdog
        kernel_pid = km.provisioner.process.pid  # type: ignore[union-attr]
        assert record.owner.pid == kernel_pid
        killed = time.monotonic()
        os.kill(kernel_pid, signal.SIGKILL)
        _, alive = psutil.wait_procs(procs, timeout=15)
        took = time.monotonic() - killed
        assert live(alive) == [], [p.cmdline() for p in alive]
        assert took < 10, f"the server outlived its kernel by {took:.1f} s"
        assert not (state_dir() / f"{server_pid}.json").exists()


def test_a_busy_port_asked_for_is_refused_in_one_message():
    """A port asked for that something already holds is one clear error, before any start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServingError, match=f"port {port} on 127.0.0.1 is busy"):
            Server.start("iris:abc", port=port)
