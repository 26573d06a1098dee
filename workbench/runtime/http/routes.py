"""The route table and the one dispatcher that serves it, in front of BentoML's whole app.

A table maps each path to a :class:`Route`: the methods it answers, its handler and whether it
needs the API key. BentoML's own routes (health, the docs page) are entries too, with no
handler: they are passed inward, to BentoML. :class:`Dispatcher`, a plain ASGI app taking the table
and the settings (put in front of BentoML's app and its middlewares by :mod:`.edge`), counts
every request under its table path (:mod:`.traffic`) and decides it in one place, in this order:

1. the route: the path's entry, exactly (``/static_content/`` by prefix); a path not in the table
   is handed inward to BentoML, after the API key check (an unknown path is not told apart from a
   protected one);
2. a CORS preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) goes
   inward to BentoML's CORS middleware, only when CORS is on;
3. ``route.auth`` with ``service.auth: api_key``: ``Authorization: Bearer <key>``, compared in
   constant time, else 401 with ``WWW-Authenticate`` (before the method check: nothing about a
   protected route is told without the key); an address that keeps failing is answered late,
   then 429 (:mod:`.guard`);
4. a method the route does not answer: 405 with ``Allow`` from ``route.methods``;
5. the handler, within ``service.timeout`` (else 504, :class:`Deadlines`): a plain async function
   of the :class:`Request` that returns a :class:`Response` (or :data:`FORWARD`, to hand the
   request to BentoML) or raises a :class:`Refusal` (a 4xx); any other exception is logged and
   answered 500.

CORS: the headers of a simple response are decided once per request and added to every answer the
dispatcher makes (BentoML's CORS middleware sits inside and never sees them). Every error body is
``{"error": ..., "detail"?: [...]}`` (:mod:`.openapi`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..settings import API_KEY_ENV, Settings
from .guard import AuthGuard
from .traffic import UNMATCHED, Traffic, log_access

T = TypeVar("T")


class Deadlines:
    """Each request's handler within ``seconds``, else ``asyncio.TimeoutError``: one timer for
    all the requests in flight, a sweep every ``tick`` (at most a quarter second) while any are,
    instead of a timer made and cancelled per request (``asyncio.timeout``: 6 % of a one-row
    ``/predict``'s CPU when measured). An overdue handler is cancelled at its next sweep, so it
    is answered within ``seconds`` plus ``tick``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tick = min(0.25, seconds / 4)
        self.running: dict[asyncio.Task[Any], float] = {}
        """Each request's task and its deadline (in the order they began: the same bound)."""
        self.expired: set[asyncio.Task[Any]] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop the sweep runs in (one per worker; a new one, as in tests, starts its own)."""

    async def within(self, awaitable: Awaitable[T]) -> T:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - a handler always runs in a task
            return await awaitable
        loop = task.get_loop()
        self.running[task] = loop.time() + self.seconds
        if self.timer is None or self.loop is not loop:
            self.loop, self.timer = loop, loop.call_later(self.tick, self.sweep, loop)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if task not in self.expired:
                raise  # not ours: cancelled from outside
            raise asyncio.TimeoutError from None
        finally:
            self.running.pop(task, None)
            if self.expired and task in self.expired:
                self.expired.discard(task)
                if sys.version_info >= (3, 11):
                    task.uncancel()

    def sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now, overdue = loop.time(), []
        for task, deadline in self.running.items():
            if deadline > now:
                break  # the rest began later
            overdue.append(task)
        for task in overdue:
            del self.running[task]
            self.expired.add(task)
            task.cancel()
        self.timer = loop.call_later(self.tick, self.sweep, loop) if self.running else None


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

logger = logging.getLogger("bentoml.service")
UNEXPECTED = "An unexpected error has occurred, please check the server log."
#: Response headers a browser script may read cross-origin (CORS hides all others).
EXPOSED = (b"access-control-expose-headers", b"Retry-After, WWW-Authenticate, X-Request-Id")


class Refusal(Exception):
    """A request answered with a 4xx: the status, the JSON body and any extra headers."""

    def __init__(self, status: int, payload: dict[str, Any], headers: Headers | None = None):
        super().__init__(payload.get("error", ""))
        self.status = status
        self.payload = payload
        self.headers = headers or []


class ClientGone(Exception):
    """The client disconnected before its body was read."""


@dataclass(slots=True)
class Response:
    """A complete JSON answer. ``relayed``: an answer of BentoML's passed on as it is, its own
    headers (content type, length and CORS) included."""

    status: int
    body: bytes
    headers: Headers = field(default_factory=list)
    relayed: bool = False
    content_type: bytes = b"application/json"

    @classmethod
    def json(cls, status: int, payload: Any, headers: Headers | None = None) -> Response:
        return cls(status, json.dumps(payload).encode(), headers or [])

    @classmethod
    def relay(cls, start: Message, body: bytes) -> Response:
        return cls(int(start["status"]), body, list(start.get("headers", [])), relayed=True)


class Forward:
    """What a handler returns to hand the request on to BentoML (:data:`FORWARD`)."""


FORWARD = Forward()


def header(scope: Scope, name: bytes) -> bytes | None:
    """The value of one request header (lower-case name), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


@dataclass(slots=True)
class Request:
    """What a handler gets: the ASGI scope and body, and BentoML behind it."""

    scope: Scope
    receive: Receive
    inward: ASGIApp
    check: Callable[[Scope], bool] = lambda _scope: False
    """The dispatcher's API key check."""

    @property
    def authorized(self) -> bool:
        """Whether the request carries the API key (whatever its route requires)."""
        return self.check(self.scope)

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    def header(self, name: bytes) -> bytes | None:
        return header(self.scope, name)

    async def call_inward(self) -> tuple[Message, bytes]:
        """BentoML's answer to this request, kept (its start message and its body)."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.inward(self.scope, self.receive, capture)
        return start, b"".join(chunks)


Handler = Callable[[Request], Awaitable["Response | Forward"]]
Operation = Callable[[dict[str, Any], Settings], dict[str, Any]]
"""A route's OpenAPI path item (method -> operation), given BentoML's for that path (or {})."""


@dataclass(frozen=True)
class Route:
    """One path: the methods it answers (None: any, BentoML's route decides), its handler (None:
    BentoML's own route, passed inward), whether it needs the API key, and its OpenAPI path item
    (None: not documented)."""

    methods: frozenset[str] | None
    handler: Handler | None = None
    auth: bool = True
    doc: Operation | None = None
    prefix: bool = False
    """The entry matches every path under it (its key ends in ``/``)."""


Routes = Mapping[str, Route]
#: Where a path not in the table goes: inward to BentoML (its 404), after the API key check.
UNKNOWN = Route(methods=None, auth=True)


def cors_headers(scope: Scope, origins: list[str]) -> Headers:
    """What BentoML's CORS middleware adds to a simple (non-preflight) response."""
    origin = header(scope, b"origin")
    if not origins or origin is None:
        return []
    if "*" in origins:
        return [(b"access-control-allow-origin", b"*"), EXPOSED]
    if origin.decode("latin-1") in origins:
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"), EXPOSED]
    return []


async def send_response(send: Send, response: Response) -> None:
    headers = response.headers
    if not response.relayed:
        length = str(len(response.body)).encode()
        headers = [(b"content-type", response.content_type), (b"content-length", length), *headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def _with_headers(send: Send, extra: Headers) -> Send:
    """``send`` adding ``extra`` to the response's headers."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


def _noting(send: Send, answered: Message) -> Send:
    """``send`` keeping the start of the answer (status and headers) in ``answered``."""

    async def noting(message: Message) -> None:
        if message["type"] == "http.response.start":
            answered.update(message)
        await send(message)

    return noting


def _after_start_up(send: Send, hook: Callable[[], None]) -> Send:
    """``send`` calling ``hook`` when the lifespan start-up completes."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            try:
                hook()
            except Exception:  # noqa: BLE001 - the service serves without it; the log says so
                logger.exception("the start-up hook failed")
        await send(message)

    return wrapped


class Dispatcher:
    """The route table served in one place (see the module docstring for the order), each
    request counted under its table path (:mod:`.traffic`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Routes,
        settings: Settings,
        traffic: Traffic | None = None,
        started: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.started = started
        """Called once the lifespan start-up is complete (in the event loop)."""
        self.routes = routes
        self.prefixes = [(path, route) for path, route in routes.items() if route.prefix]
        self.origins = list(settings.service.cors_origins)
        self.auth = settings.service.auth == "api_key"
        self.timeout = float(settings.service.timeout)
        self.deadlines = Deadlines(self.timeout)
        self.traffic = traffic
        self.guard = AuthGuard()
        self.access_log = settings.service.access_log
        # A Secret made with `kubectl create secret --from-file` usually ends in a newline. With
        # no key at all (the start-up check refuses that, but another entry point might skip it)
        # every protected request is 401: it fails closed.
        key = os.environ.get(API_KEY_ENV, "").strip()
        self.expected = key.encode() if key else None

    def match(self, path: str) -> tuple[str, Route]:
        """The route of ``path`` and its table path (:data:`UNMATCHED` for none)."""
        route = self.routes.get(path)
        if route is not None and not route.prefix:
            return path, route
        for prefix, candidate in self.prefixes:
            if path.startswith(prefix):
                return prefix, candidate
        return UNMATCHED, UNKNOWN

    def authorized(self, scope: Scope) -> bool:
        scheme, _, given = (header(scope, b"authorization") or b"").partition(b" ")
        return (
            self.expected is not None
            and scheme.lower() == b"bearer"
            and hmac.compare_digest(given.strip(), self.expected)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and self.started is not None:
                send = _after_start_up(send, self.started)
            await self.app(scope, receive, send)
            return
        label, route = self.match(scope["path"])
        traffic = self.traffic
        if traffic is None and not self.access_log:
            await self.dispatch(route, scope, receive, send)
            return
        started = time.perf_counter() if traffic is None else traffic.started(label)
        answered: Message = {}  # the start of the answer (its status at least)
        try:
            if self.access_log:  # the whole start message: its headers are logged
                await self.dispatch(route, scope, receive, _noting(send, answered), answered)
            else:
                await self.dispatch(route, scope, receive, send, answered)
        finally:
            status = answered.get("status")
            if traffic is not None:
                traffic.count(label, status, started)
            if self.access_log:
                log_access(scope, answered, started)

    async def dispatch(
        self,
        route: Route,
        scope: Scope,
        receive: Receive,
        send: Send,
        answered: Message | None = None,
    ) -> None:
        """Answer the request (see the module docstring); ``answered`` gets the status sent."""
        if answered is None:
            answered = {}
        path, method = scope["path"], scope["method"]
        if (
            self.origins
            and method == "OPTIONS"
            and header(scope, b"origin") is not None
            and header(scope, b"access-control-request-method") is not None
        ):
            await self._inward(scope, receive, send, answered)  # BentoML's CORS middleware
            return
        cors = cors_headers(scope, self.origins)
        ours = _with_headers(send, cors) if cors else send
        if route.auth and self.auth:
            refused = await self.refuse(scope)
            if refused is not None:
                answered.setdefault("status", refused.status)
                await send_response(ours, refused)
                return
        if route.methods is not None and method not in route.methods:
            allowed = ", ".join(sorted(route.methods))
            error = {"error": f"{method} is not allowed on {path}: use {allowed}"}
            answered.setdefault("status", 405)
            await send_response(ours, Response.json(405, error, [(b"allow", allowed.encode())]))
            return
        if route.handler is None:
            await self._inward(scope, receive, send, answered)
            return
        try:
            request = Request(scope, receive, self.app, self.authorized)
            answer = await self.deadlines.within(route.handler(request))
        except Refusal as refusal:
            answer = Response.json(refusal.status, refusal.payload, refusal.headers)
        except ClientGone:
            return
        except asyncio.TimeoutError:
            message = f"not answered within {self.timeout:g} s (service.timeout)"
            answer = Response.json(504, {"error": message})
        except Exception:  # noqa: BLE001 - logged; the client gets a generic 500
            logger.exception("Exception on %s [%s]", path, method)
            answer = Response.json(500, {"error": UNEXPECTED})
        if isinstance(answer, Forward):
            await self._inward(scope, receive, send, answered)
        else:
            answered.setdefault("status", answer.status)
            await send_response(send if answer.relayed else ours, answer)

    async def _inward(self, scope: Scope, receive: Receive, send: Send, answered: Message) -> None:
        """The request handed to BentoML's app, the status it answers noted in ``answered``."""
        await self.app(scope, receive, send if "status" in answered else _noting(send, answered))

    async def refuse(self, scope: Scope) -> Response | None:
        """None when the request has the key, else the answer: 401 (late after repeated
        failures), or 429 while its address has as many failures waiting as it may
        (:mod:`.guard`, checked before the key)."""
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        guard = self.guard
        if guard.saturated(address):
            self._note_failure("limited")
            message = f"too many requests with a wrong API key from {address}: retry later"
            retry = [(b"retry-after", str(math.ceil(guard.delay_s)).encode())]
            return Response.json(429, {"error": message}, retry)
        if self.authorized(scope):
            return None
        entry = guard.failed(address)
        self._note_failure("refused" if entry is None else "delayed")
        if entry is not None:
            entry.waiting += 1
            try:
                await asyncio.sleep(guard.delay_s)
            finally:
                entry.waiting -= 1
        error = {"error": "missing or wrong API key: send 'Authorization: Bearer <key>'"}
        return Response.json(401, error, [(b"www-authenticate", b"Bearer")])

    def _note_failure(self, action: str) -> None:
        if self.traffic is not None:
            self.traffic.auth_failure(action)


__all__ = [
    "FORWARD",
    "ClientGone",
    "Dispatcher",
    "Forward",
    "Refusal",
    "Request",
    "Response",
    "Route",
    "Routes",
    "cors_headers",
]
