"""A worker's connections: request headers within a deadline, and a shutdown that stops the
listener first and answers every request it accepted.

BentoML's worker serves with uvicorn, whose HTTP protocols (httptools or h11) close a
connection only after a response, when it stays idle ``timeout_keep_alive`` seconds: a
connection that never completes its headers (one header byte a second, "slowloris") is held
forever, and none of it is settable through ``bentoml serve``. On SIGTERM uvicorn stops its own
accept loop and closes connections that have no request yet, while the listening socket, shared
with the other workers and BentoML's arbiter, keeps completing handshakes until the arbiter
exits: clients that connected after the signal were reset without an answer (issue 29).

- :func:`guarded_protocol` subclasses uvicorn's protocol: a request's headers must arrive
  within :data:`HEADER_TIMEOUT_S` of the connection (or of the previous answer on a kept-alive
  one), else the connection is closed (with a 408 when part of a request came). On shutdown a
  connection with no request yet gets :data:`IDLE_GRACE_S` to send one (answered with
  ``Connection: close``) instead of being closed under it.
- A request refused while its body is still coming (413 for a body over the limit, answered
  before the body is read) closes its connection by *lingering* (:class:`Lingering`, as
  nginx's ``lingering_close``): the answer is sent and the write side shut (FIN), then the rest
  of the body is read and thrown away for at most :data:`LINGER_S` seconds or
  :data:`LINGER_BYTES` bytes before the socket closes. Closed at once, the kernel would answer
  the unread bytes with a reset, and a client still sending (any that does not wait for
  ``100 Continue``) would lose the 413 it was sent. A client that sends
  ``Expect: 100-continue`` gets the 413 before it sends the body: uvicorn writes
  ``100 Continue`` only when the app first reads the body, which a refusal never does.
- :func:`stop_listening_on_exit` makes SIGTERM/SIGINT first take every connection the kernel
  has queued, then shut the shared listening socket down (a new client is refused at once, and
  can retry elsewhere), then hand over to uvicorn's graceful shutdown, which drains the requests
  in progress.

:mod:`.edge` installs both in each worker. They rely on uvicorn's protocol attributes
(``cycle``, ``transport``, ``loop``), tested against the pinned uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger("bentoml.service")

HEADER_TIMEOUT_S = 10.0
"""A request's line and headers must arrive within this many seconds."""
IDLE_GRACE_S = 1.0
"""On shutdown, how long a connection accepted with no request yet may take to send one."""
LINGER_S = 5.0
"""After a refusal, how long the rest of a request's body is read and thrown away at most."""
LINGER_BYTES = 1 << 30
"""After a refusal, how many bytes of the rest of a request's body are read at most."""
_LATE = f'{{"error": "the request headers did not arrive within {HEADER_TIMEOUT_S:g} s"}}'
TIMED_OUT = (
    "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    f"connection: close\r\ncontent-length: {len(_LATE)}\r\n\r\n{_LATE}"
).encode()


class Lingering:
    """A connection's transport as uvicorn's protocol sees it: :meth:`close` while the request's
    body is still coming shuts the write side and reads the rest away first (see above)."""

    def __init__(self, transport: asyncio.Transport, protocol: HeaderDeadline) -> None:
        self.transport = transport
        self.protocol = protocol
        self.lingering = False
        self.drained = 0
        self.timer: asyncio.TimerHandle | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self.transport.is_closing()

    def close(self) -> None:
        if self.lingering or self.transport.is_closing():
            return
        cycle = self.protocol.cycle
        if cycle is None or not getattr(cycle, "more_body", False) or not self.can_write_eof():
            self.transport.close()
            return
        self.lingering = True  # the answer is written: FIN after it, then read until EOF
        self.transport.write_eof()
        self.transport.resume_reading()
        self.timer = self.protocol.loop.call_later(LINGER_S, self.transport.close)

    def can_write_eof(self) -> bool:
        with contextlib.suppress(NotImplementedError, AttributeError):
            return bool(self.transport.can_write_eof())
        return False

    def drain(self, data: bytes) -> None:
        """Bytes that came while lingering: thrown away, the socket closed past the bound."""
        self.drained += len(data)
        if self.drained > LINGER_BYTES:
            self.transport.close()

    def closed(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class HeaderDeadline:
    """Mixed in before uvicorn's HTTP protocol class (see :func:`guarded_protocol`)."""

    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    lingering: Lingering
    spawn: Callable[[], Any] | None = None
    """Makes another connection of this worker (for the connections taken at shutdown)."""
    header_timeout: float = HEADER_TIMEOUT_S
    idle_grace: float = IDLE_GRACE_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(self).spawn is None:  # uvicorn's arguments are the same for every connection
            type(self).spawn = functools.partial(type(self), *args, **kwargs)
        self.deadline: asyncio.TimerHandle | None = None
        self.waiting_since: float | None = None
        """When the connection began waiting for a request's headers (None: not waiting)."""
        self.partial = False  # part of a request came, its headers are not complete
        self.draining = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self.lingering = Lingering(self.transport, self)
        # uvicorn's request cycles write and close through the protocol's transport attribute
        self.transport = self.lingering  # type: ignore[assignment]
        self.arm()

    def arm(self) -> None:
        """Wait for the next request's headers, for at most ``header_timeout``. The timer is
        made once and, when it fires early (the connection answered requests meanwhile), set
        again for what is left: no timer is made and cancelled per request."""
        self.partial = False
        self.waiting_since = self.loop.time()
        if self.deadline is None:
            self.deadline = self.loop.call_later(self.header_timeout, self.expire)

    def disarm(self) -> None:
        self.waiting_since = None

    def stop_timer(self) -> None:
        self.waiting_since = None
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def waiting(self) -> bool:
        """No request is being answered: the connection waits for the next one's headers."""
        return self.cycle is None or bool(self.cycle.response_complete)

    def data_received(self, data: bytes) -> None:
        if self.lingering.lingering:
            self.lingering.drain(data)
            return
        self.partial = self.waiting_since is not None
        super().data_received(data)  # type: ignore[misc]
        if not self.waiting():  # a request's headers are complete
            self.disarm()
            if self.draining:
                self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self.waiting() and not self.transport.is_closing() and self.waiting_since is None:
            self.arm()

    def expire(self) -> None:
        self.deadline = None
        if self.waiting_since is None or self.transport.is_closing():
            return  # answering a request, or closed: armed again after the answer
        left = self.waiting_since + self.header_timeout - self.loop.time()
        if left > 0:  # it began waiting after the timer was set
            self.deadline = self.loop.call_later(left, self.expire)
            return
        if not self.waiting():
            return
        if self.partial:
            self.transport.write(TIMED_OUT)
        self.transport.close()

    def eof_received(self) -> bool | None:
        if self.lingering.lingering:  # the client has sent all: close now
            self.lingering.transport.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_timer()
        self.lingering.closed()
        super().connection_lost(exc)  # type: ignore[misc]

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: a connection with no request yet may still send one."""
        if self.waiting() and not self.transport.is_closing():
            if self.partial:  # its headers are on their way: the deadline still holds
                self.draining = True
                return
            if self.cycle is None:  # accepted, nothing sent yet
                self.draining = True
                self.loop.call_later(self.idle_grace, self.close_idle)
                return
        super().shutdown()  # type: ignore[misc]

    def close_idle(self) -> None:
        if self.waiting() and not self.partial and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """uvicorn's protocol class ``base`` with :class:`HeaderDeadline`."""
    return type(f"Guarded{base.__name__}", (HeaderDeadline, base), {})


def take_queued(listener: socket.socket) -> list[socket.socket]:
    """The connections the kernel completed on ``listener`` and no worker accepted yet."""
    taken: list[socket.socket] = []
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:  # BlockingIOError: none left; anything else: nothing more to take
            return taken
        connection.setblocking(False)
        taken.append(connection)


def stop_listening(listener: socket.socket, protocol: type[HeaderDeadline]) -> int:
    """Take the queued connections, shut the shared listening socket down (new clients are
    refused from now on), and serve what was taken; how many were taken."""
    taken = take_queued(listener)
    with contextlib.suppress(OSError):  # another worker was first
        listener.shutdown(socket.SHUT_RD)
    spawn, loop = protocol.spawn, asyncio.get_running_loop()
    for connection in taken:
        if spawn is None:
            connection.close()
        else:
            loop.create_task(loop.connect_accepted_socket(spawn, connection))
    return len(taken)


def stop_listening_on_exit(fd: int, protocol: type[HeaderDeadline]) -> None:
    """On SIGTERM or SIGINT, :func:`stop_listening` on the listening socket ``fd`` before the
    handler that was in place (uvicorn's) starts the graceful shutdown. Call it in the event
    loop once uvicorn has set its handlers (at lifespan start-up)."""
    listener = socket.socket(fileno=os.dup(fd))  # ours: uvicorn closes its own at shutdown
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    stopping: list[bool] = []

    def stop() -> None:
        taken = stop_listening(listener, protocol)
        listener.close()
        logger.info("stopped listening; %d queued connection(s) taken to be answered", taken)

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(number: int, frame: FrameType | None, previous: Any = previous) -> None:
            if not stopping:  # runs between two bytecodes: only schedule the work in the loop
                stopping.append(True)
                loop.call_soon_threadsafe(stop)
            if callable(previous):
                previous(number, frame)

        signal.signal(signum, handler)


__all__ = [
    "HEADER_TIMEOUT_S",
    "IDLE_GRACE_S",
    "LINGER_BYTES",
    "LINGER_S",
    "HeaderDeadline",
    "Lingering",
    "guarded_protocol",
    "stop_listening",
    "stop_listening_on_exit",
]
