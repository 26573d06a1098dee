"""The served Bento's edge, on a real `bentoml serve`: a body over the limit is answered with a
413 the client can read whether or not it waits for ``100 Continue``, then the connection
closes, at no cost in memory; with several workers the connections spread across them.

Raw sockets, not an HTTP client library: what is tested is what the server writes and when it
closes, which a client library hides (``httpx`` retries a read after a failed write, ``requests``
does not).
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import copy_project, edit_config

from workbench import load_config, package, validate
from workbench.runtime.settings import REQUEST_ID_HEADER
from workbench.serving import Server

pytestmark = pytest.mark.serve

MIB = 1 << 20
#: The body of issue 24's finding: a client that sends 314 MiB without waiting for an answer.
HUGE = 314 * MIB
CHUNK = b" " * MIB
LIMIT = 4 * MIB  # service.max_body_mb's default


def one_row(project: Path) -> bytes:
    """A valid ``/predict`` body: the project's first test row."""
    test = pd.read_csv(project / "data" / "test.csv").drop(columns="target")
    return json.dumps({"rows": test.head(1).to_dict(orient="records")}).encode()


def rss_mib(pid: int) -> float:
    parent = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / MIB


@pytest.fixture(scope="module")
def served(packaged: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The packaged example (1 worker, the API key on) on 127.0.0.1."""
    tag = json.loads((packaged / ".workbench" / "package.json").read_text())["bento_tag"]
    with Server.start(tag, log_dir=tmp_path_factory.mktemp("edge_logs")) as server:
        yield server


def head(server: Server, extra: str, length: str) -> bytes:
    return (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Type: application/json\r\n"
        f"{length}{extra}\r\n"
    ).encode()


def connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def read_to_end(sock: socket.socket, deadline_s: float = 30.0) -> tuple[bytes, str]:
    """Everything the server sends until it closes: (bytes, "eof" | "reset" | "timeout")."""
    received, ends = b"", time.monotonic() + deadline_s
    while time.monotonic() < ends:
        try:
            data = sock.recv(1 << 16)
        except ConnectionResetError:
            return received, "reset"
        except TimeoutError:
            return received, "timeout"
        if not data:
            return received, "eof"
        received += data
    return received, "timeout"


def read_reply(sock: socket.socket) -> bytes:
    """One whole answer on a kept-alive connection: its head, then as many body bytes as its
    Content-Length says (TCP may deliver them in several pieces)."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(1 << 16)
        assert data, f"closed after {received[:200]!r}"
        received += data
    head_part, _, body = received.partition(b"\r\n\r\n")
    lines = head_part.split(b"\r\n")[1:]
    length = next(
        int(v)
        for n, _, v in (x.partition(b":") for x in lines)
        if n.strip().lower() == b"content-length"
    )
    while len(body) < length:
        data = sock.recv(1 << 16)
        assert data, f"closed after {received[:200]!r}"
        body += data
    return head_part + b"\r\n\r\n" + body


def answer_of(received: bytes) -> tuple[int, dict[str, object]]:
    status_line, _, rest = received.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body)


def send_all(sock: socket.socket, total: int, *, chunked: bool) -> str:
    """Send ``total`` bytes of body (as HTTP chunks when ``chunked``), not reading meanwhile, as
    a naive client does: "sent", or the error that stopped it."""
    sent = 0
    try:
        while sent < total:
            piece = CHUNK[: min(len(CHUNK), total - sent)]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError as exc:
        return f"{type(exc).__name__} after {sent / MIB:.0f} MiB"
    return "sent"


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_314_mib_body_sent_without_waiting_reads_its_413_then_the_connection_closes(
    served: Server, chunked: bool
):
    """A client sends a 314 MiB body (declared with Content-Length, or chunked) without reading
    until it has sent it all: the server answers 413 naming the limit, reads the rest of the
    body away instead of resetting the connection, so every byte is accepted and the client
    then reads the whole 413 followed by the server's close (no reset); the server's memory
    grows by less than 20 MiB."""
    before = rss_mib(served.pid)
    length = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {HUGE}\r\n"
    started = time.perf_counter()
    with connect(served) as sock:
        sock.sendall(head(served, "", length))
        sending = send_all(sock, HUGE, chunked=chunked)
        received, end = read_to_end(sock)
    took = time.perf_counter() - started
    grown = rss_mib(served.pid) - before
    print(
        f"\n314 MiB ({'chunked' if chunked else 'declared'}): {sending}, {end}, {took:.2f} s, "
        f"+{grown:.1f} MiB"
    )
    assert sending == "sent"
    status, body = answer_of(received)
    assert status == 413 and f"{LIMIT:,} bytes" in str(body["error"])
    assert b"connection: close" in received.lower()
    assert end == "eof"
    assert grown < 20


def test_a_client_that_expects_100_continue_gets_the_413_before_sending_its_body(
    served: Server,
):
    """``Expect: 100-continue`` with a declared 314 MiB: the server answers 413 at once, never
    ``100 Continue``, so the client never sends the body; the server then closes."""
    with connect(served) as sock:
        sock.sendall(head(served, "Expect: 100-continue\r\n", f"Content-Length: {HUGE}\r\n"))
        started = time.perf_counter()
        first = sock.recv(1 << 16)
        waited = time.perf_counter() - started
        sock.shutdown(socket.SHUT_WR)  # the client gives up on the body, as curl does
        rest, end = read_to_end(sock)
    assert not first.startswith(b"HTTP/1.1 100")
    status, body = answer_of(first + rest)
    assert status == 413 and "max_body_mb" in str(body["error"])
    assert end == "eof"
    assert waited < 5


def test_a_body_under_the_limit_on_the_same_connection_is_answered_as_before(
    served: Server, packaged: Path
):
    """Lingering is only for a refused body still coming: a valid request keeps its keep-alive
    connection and a second request on it is answered."""
    rows = one_row(packaged)
    with connect(served) as sock:
        for _ in range(2):
            sock.sendall(head(served, "", f"Content-Length: {len(rows)}\r\n") + rows)
            reply = read_reply(sock)
            assert reply.split(b" ", 2)[1] == b"200", reply[:200]
            assert b"connection: close" not in reply.lower()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> Iterator[Server]:
    """The example with ``service.workers: 2``, served."""
    folder = copy_project(example_files, tmp_path_factory.mktemp("two_workers"))
    edit_config(folder, service={"workers": 2}, validation={"cv_folds": 0, "importance_top": 0})
    config = load_config(folder / "workbench.yaml")
    validate(config).raise_for_gates()
    tag = package(config).bento_tag
    with Server.start(tag, log_dir=tmp_path_factory.mktemp("two_workers_logs")) as server:
        yield server


def worker_of_new_connection(server: Server, row: bytes) -> str:
    """The worker tag of the request id a fresh connection's one request is answered with."""
    with connect(server) as sock:
        sock.sendall(head(server, "", f"Content-Length: {len(row)}\r\n") + row)
        reply = read_reply(sock)
    for line in reply.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == REQUEST_ID_HEADER.lower().encode():
            return value.strip().decode().split("-")[0]
    raise AssertionError(f"no {REQUEST_ID_HEADER} in {reply[:300]!r}")


def test_with_two_workers_new_connections_spread_across_both(two_workers: Server, packaged: Path):
    """With ``workers: 2`` each worker listens on a socket of its own (``SO_REUSEPORT``), so the
    kernel spreads connections: of 32 new connections each worker gets at least 4 (with one
    shared socket, one worker took all of them at c=8 and c=32 in 10 of 12 measured levels)."""
    row = one_row(packaged)  # the same example data
    deadline = time.monotonic() + 60  # both workers listening (the second may start later)
    seen: set[str] = set()
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(worker_of_new_connection(two_workers, row))
    assert len(seen) == 2, "only one worker ever answered"
    spread = Counter(worker_of_new_connection(two_workers, row) for _ in range(32))
    print(f"\n32 connections over 2 workers: {sorted(spread.values())}")
    assert len(spread) == 2 and min(spread.values()) >= 4, spread
