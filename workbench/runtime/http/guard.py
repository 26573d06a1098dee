"""Failed API key checks per client address: answered at once at first, then slowly, then 429.

A client address (``scope["client"]``; behind a proxy, the address uvicorn trusts it to forward)
whose key was wrong or missing more than :data:`FREE_FAILURES` times within :data:`WINDOW_S` gets
each further 401 only after :data:`DELAY_S`; while :data:`MAX_WAITING` of its failures wait so,
every request from it to a protected route is answered 429 with ``Retry-After`` at once, before
its key is looked at. A guesser is held to about ``MAX_WAITING / DELAY_S`` guesses a second per
address; a client that sends the right key is never slowed, and is refused only while its
address is saturated by failures. The table holds at most :data:`MAX_CLIENTS` addresses (the one
that failed least recently is dropped first): its memory is bounded whatever the number of
addresses a client uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

FREE_FAILURES = 300
WINDOW_S = 60.0
DELAY_S = 1.0
MAX_WAITING = 4
MAX_CLIENTS = 4096


@dataclass(slots=True)
class Failures:
    """One address's failures since ``since`` and how many of them are being delayed now."""

    since: float
    count: int = 0
    waiting: int = 0


@dataclass
class AuthGuard:
    """The failed key checks of the last :data:`MAX_CLIENTS` addresses."""

    free_failures: int = FREE_FAILURES
    window_s: float = WINDOW_S
    delay_s: float = DELAY_S
    max_waiting: int = MAX_WAITING
    max_clients: int = MAX_CLIENTS
    clock: Callable[[], float] = time.monotonic
    clients: dict[str, Failures] = field(default_factory=dict)

    def saturated(self, client: str) -> bool:
        """Whether ``client`` has as many failures waiting as it may (429 at once)."""
        entry = self.clients.get(client)
        return entry is not None and entry.waiting >= self.max_waiting

    def failed(self, client: str) -> Failures | None:
        """A failed key check from ``client``: None (answer 401 now), or its entry (answer
        after ``delay_s``, counted in ``waiting`` meanwhile)."""
        now = self.clock()
        entry = self.clients.pop(client, None)  # put back last: the order is of last failure
        if entry is None:
            entry = Failures(now)
        elif now - entry.since > self.window_s:
            entry.since, entry.count = now, 0
        entry.count += 1
        self.clients[client] = entry
        if len(self.clients) > self.max_clients:
            del self.clients[next(iter(self.clients))]
        return None if entry.count <= self.free_failures else entry


__all__ = ["DELAY_S", "FREE_FAILURES", "MAX_CLIENTS", "MAX_WAITING", "WINDOW_S", "AuthGuard"]
