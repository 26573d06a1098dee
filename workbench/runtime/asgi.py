"""The ASGI routes and middlewares every generated service adds in front of BentoML's router.

In the order they are added (the first is the outermost, inside BentoML's metrics, timeout and
concurrency middlewares and outside its CORS middleware):

- :class:`ApiKeyAuth` (``service.auth: api_key``): every route but the open ones (health,
  metrics, the docs; matched exactly) needs ``Authorization: Bearer <key>``, compared in constant
  time. ``OPTIONS`` passes only as a CORS preflight, and only when CORS is on.
- :class:`OpenApiRoute`: ``GET /docs.json`` as BentoML makes it, patched to tell the truth
  (:mod:`.openapi`).
- :class:`MetadataRoute`: ``GET /metadata``, the model card.
- :class:`PredictRoute`: ``POST /predict``. A body that is not JSON is 415; one over the size
  limit is 413 before it is read (from ``Content-Length``) or as soon as it passes the limit
  (chunked); more rows than the row limit is 413. Rows are validated by the generated ``Row``
  model in slices, yielding to the event loop between them, so health checks keep answering while
  a large request is parsed; a request with more rows than one model batch goes to the model in
  several batches. A full queue is 429 and a request queued too long 503, both with
  ``Retry-After``. Every 4xx body is ``{"error": ..., "detail"?: [...]}`` (:mod:`.openapi`).

The routes add the CORS headers of a simple response themselves: BentoML's CORS middleware sits
inside them and never sees their answers.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import from_json

from .batching import Batcher, Overloaded, QueueFull
from .feedback import FeedbackError
from .monitor import Monitor
from .openapi import document
from .predictor import RowsRefused
from .settings import (
    API_KEY_ENV,
    DOCS_ASSETS,
    DOCS_PATH,
    FEEDBACK_PATH,
    METADATA_PATH,
    MONITOR_PATH,
    OPEN_PATHS,
    PREDICT_PATH,
    REQUEST_ID_HEADER,
    Settings,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

logger = logging.getLogger("bentoml.service")
UNEXPECTED = "An unexpected error has occurred, please check the server log."
#: Rows validated between two yields to the event loop (about 5 ms of pydantic work each).
VALIDATION_SLICE = 500
#: A 400 lists at most this many errors (its `error` line counts them all).
MAX_DETAIL = 100
LARGE_JOBS = "score large files offline in batches instead of over HTTP"
#: Response headers a browser script may read cross-origin (CORS hides all others).
EXPOSED = (b"access-control-expose-headers", b"Retry-After, WWW-Authenticate, X-Request-Id")
#: The largest ``POST /feedback`` body.
MAX_FEEDBACK_BYTES = 4 << 20


class Serving(Protocol):
    """What the routes need of the service (:class:`~.service.Serving` in a real worker)."""

    settings: Settings
    card: dict[str, Any]
    batcher: Batcher | None
    rows_adapter: TypeAdapter[list[Any]]
    monitor: Monitor | None


class Envelope(BaseModel):
    """``{"rows": [...]}``, the rows themselves checked apart (in slices)."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Any]


class Refusal(Exception):
    """A request answered with a 4xx: the status, the JSON body and any extra headers."""

    def __init__(self, status: int, payload: dict[str, Any], headers: Headers | None = None):
        super().__init__(payload.get("error", ""))
        self.status = status
        self.payload = payload
        self.headers = headers or []


class ClientGone(Exception):
    """The client disconnected before its body was read."""


def header(scope: Scope, name: bytes) -> bytes | None:
    """The value of one request header (lower-case name), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


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


async def send_body(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    """A complete JSON response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: Any, headers: Headers | None = None) -> None:
    await send_body(send, status, json.dumps(payload).encode(), headers)


def validation_error(errors: list[dict[str, Any]]) -> Refusal:
    count = len(errors)
    return Refusal(
        400,
        {
            "error": f"{count} validation error{'s' if count != 1 else ''} in the request",
            "detail": errors[:MAX_DETAIL],
        },
    )


def pydantic_errors(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """pydantic's errors as the 400 lists them: type, loc (under ``prefix``), msg."""
    return [
        {"type": e["type"], "loc": [*prefix, *e["loc"]], "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused with 415 when it is not JSON and 413 past ``limit`` bytes."""
    kind = header(scope, b"content-type")
    close = [(b"connection", b"close")]
    if kind is not None and kind.split(b";")[0].strip().lower() != b"application/json":
        shown = kind.decode("latin-1")[:80]
        raise Refusal(
            415,
            {
                "error": f"Content-Type {shown!r} is not accepted: send the rows as JSON with "
                "'Content-Type: application/json'"
            },
            close,
        )
    too_big = {
        "error": f"the request body is over this service's limit of {limit:,} bytes "
        f"(service.max_body_mb): send fewer rows per request, or {LARGE_JOBS}"
    }
    length = header(scope, b"content-length")
    if length is not None:
        if not length.strip().isdigit():
            error = {"type": "content_length", "loc": [], "msg": "Content-Length is not a number"}
            raise validation_error([error])
        if int(length) > limit:
            raise Refusal(413, too_big, close)
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, too_big, close)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def parse_rows(body: bytes, serving: Serving) -> list[Any]:
    """The validated rows of a ``{"rows": [...]}`` body, or a 400/413 :class:`Refusal`."""
    try:
        data = from_json(body) if body.strip() else {}
    except ValueError as exc:
        error = {"type": "json_invalid", "loc": [], "msg": f"Invalid JSON: {exc}"}
        raise validation_error([error]) from None
    try:
        raw = Envelope.model_validate(data).rows
    except ValidationError as exc:
        raise validation_error(pydantic_errors(exc)) from None
    limit = serving.settings.max_request_rows
    if len(raw) > limit:
        raise Refusal(
            413,
            {
                "error": f"{len(raw):,} rows are over this service's limit of {limit:,} rows per "
                f"request (service.max_request_rows): send fewer rows per request, or {LARGE_JOBS}"
            },
        )
    rows: list[Any] = []
    errors: list[dict[str, Any]] = []
    for start in range(0, len(raw), VALIDATION_SLICE):
        if start:
            await asyncio.sleep(0)  # let health checks and other requests in
        try:
            rows += serving.rows_adapter.validate_python(raw[start : start + VALIDATION_SLICE])
        except ValidationError as exc:
            for error in pydantic_errors(exc):
                index, *field = error["loc"]
                loc: list[Any] = ["rows", start + int(index), *field]
                errors.append({**error, "loc": loc})
    if errors:
        raise validation_error(errors)
    return rows


async def answer_rows(
    rows: list[Any], batcher: Batcher, batch_rows: int, *, keep: bool = False
) -> tuple[list[str], str]:
    """Each row's answer, the rows sent to the model at most ``batch_rows`` at a time; with
    ``keep``, rows that fit one call are kept by the batcher and their tag comes back (else "")."""
    answers: list[str] = []
    tag = ""
    for start in range(0, len(rows), batch_rows):
        try:
            part, tag = await batcher.answer(
                rows[start : start + batch_rows], keep=keep and len(rows) <= batch_rows
            )
            answers += part
        except RowsRefused as exc:
            raise validation_error(
                [
                    {
                        "type": "model_refused",
                        "loc": ["rows", start + i],
                        "msg": f"the model could not answer this row ({why}); check that its "
                        "values are within the ranges seen in training",
                    }
                    for i, why in sorted(exc.rows.items())
                ]
            ) from None
        except QueueFull as exc:
            raise Refusal(
                429,
                {"error": f"the queue is full: retry in {exc.retry_after_s} s"},
                [(b"retry-after", str(exc.retry_after_s).encode())],
            ) from None
        except Overloaded as exc:
            raise Refusal(
                503,
                {"error": f"overloaded: queued too long, retry in {exc.retry_after_s} s"},
                [(b"retry-after", str(exc.retry_after_s).encode())],
            ) from None
    return answers, tag


class PredictRoute:
    """``POST /predict``: read, validate, batch, answer (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, serving: Serving) -> None:
        self.app = app
        self.serving = serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        serving = self.serving
        if (
            serving.batcher is None
            or scope["type"] != "http"
            or scope["path"] != PREDICT_PATH
            or scope["method"] != "POST"
        ):
            await self.app(scope, receive, send)
            return
        settings = serving.settings
        cors = cors_headers(scope, settings.cors_origins)
        try:
            body = await read_body(scope, receive, settings.max_body_bytes)
            rows = await parse_rows(body, serving)
            monitor = serving.monitor
            watched = monitor is not None and monitor.enabled
            answers, request_id = await answer_rows(
                rows, serving.batcher, settings.max_batch_rows, keep=watched
            )
            if monitor is not None and watched:
                monitor.start()
                request_id = request_id or monitor.record(rows, answers)
                cors = [(REQUEST_ID_HEADER.encode(), request_id.encode()), *cors]
        except Refusal as refusal:
            await send_json(send, refusal.status, refusal.payload, [*refusal.headers, *cors])
            return
        except ClientGone:
            return
        except Exception:  # noqa: BLE001 - logged; the client gets a generic 500
            logger.exception("Exception on %s [POST]", PREDICT_PATH)
            await send_json(send, 500, {"error": UNEXPECTED}, cors)
            return
        await send_body(send, 200, ("[" + ",".join(answers) + "]").encode(), cors)


class FeedbackRoute:
    """``POST /feedback``: true labels (or values) for answered rows, by request id.

    ``{"feedback": [{"request_id": "<X-Request-Id>", "row": 0, "label": <value>}, ...]}``
    (``row``: the row's index in its request, default 0). Answers 200 with how many were
    ``applied`` (first label), ``unchanged`` (the same label again: repeats are idempotent),
    ``updated`` (another label: the last one counts) and ``unknown`` (an id not in the window, or
    already dropped from it), listing the unknown ids. Any bad item is one 400 naming each bad
    item, and nothing is applied.
    """

    def __init__(self, app: ASGIApp, *, serving: Serving) -> None:
        self.app = app
        self.serving = serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        monitor = self.serving.monitor
        if scope["type"] != "http" or scope["path"] != FEEDBACK_PATH or monitor is None:
            await self.app(scope, receive, send)
            return
        cors = cors_headers(scope, self.serving.settings.cors_origins)
        if scope["method"] != "POST":
            if scope["method"] == "OPTIONS" and header(scope, b"origin") is not None:
                await self.app(scope, receive, send)
                return
            error = {"error": f"{scope['method']} is not allowed on {FEEDBACK_PATH}: use POST"}
            await send_json(send, 405, error, [(b"allow", b"POST"), *cors])
            return
        try:
            body = await read_body(scope, receive, MAX_FEEDBACK_BYTES)
            try:
                data = from_json(body) if body.strip() else None
            except ValueError as exc:
                raise FeedbackError(f"the body is not valid JSON ({exc})") from None
            items = monitor.check_feedback(data)
            answer = await monitor.give_feedback(items)
        except FeedbackError as exc:
            payload: dict[str, Any] = {"error": str(exc)}
            if exc.detail:
                payload["detail"] = exc.detail
            await send_json(send, 400, payload, cors)
            return
        except Refusal as refusal:
            await send_json(send, refusal.status, refusal.payload, [*refusal.headers, *cors])
            return
        except ClientGone:
            return
        await send_json(send, 200, answer, cors)


class MonitorRoute:
    """``GET /monitor``: the monitoring report of the window (recomputed at most every
    ``monitor_refresh_s`` seconds; see :mod:`.monitor`)."""

    def __init__(self, app: ASGIApp, *, serving: Serving) -> None:
        self.app = app
        self.serving = serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        monitor = self.serving.monitor
        if scope["type"] != "http" or scope["path"] != MONITOR_PATH or monitor is None:
            await self.app(scope, receive, send)
            return
        cors = cors_headers(scope, self.serving.settings.cors_origins)
        if scope["method"] != "GET":
            if scope["method"] == "OPTIONS" and header(scope, b"origin") is not None:
                await self.app(scope, receive, send)
                return
            error = {"error": f"{scope['method']} is not allowed on {MONITOR_PATH}: use GET"}
            await send_json(send, 405, error, [(b"allow", b"GET"), *cors])
            return
        try:
            report = await monitor.report()
        except Exception:  # noqa: BLE001 - logged; the client gets a generic 500
            logger.exception("Exception on %s [GET]", MONITOR_PATH)
            await send_json(send, 500, {"error": UNEXPECTED}, cors)
            return
        await send_json(send, 200, report, cors)


class MetadataRoute:
    """``GET /metadata``: the model card this Bento was built with (other methods: 405)."""

    def __init__(self, app: ASGIApp, *, serving: Serving) -> None:
        self.app = app
        self.serving = serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != METADATA_PATH:
            await self.app(scope, receive, send)
            return
        cors = cors_headers(scope, self.serving.settings.cors_origins)
        if scope["method"] == "GET":
            await send_json(send, 200, self.serving.card, cors)
        elif scope["method"] == "OPTIONS" and header(scope, b"origin") is not None:
            await self.app(scope, receive, send)  # a CORS preflight, for BentoML's CORS
        else:
            error = {"error": f"{scope['method']} is not allowed on {METADATA_PATH}: use GET"}
            await send_json(send, 405, error, [(b"allow", b"GET"), *cors])


class OpenApiRoute:
    """``GET /docs.json``: BentoML's document, patched by :func:`.openapi.document`."""

    def __init__(self, app: ASGIApp, *, serving: Serving) -> None:
        self.app = app
        self.serving = serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != DOCS_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start.get("status") != 200:
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(chunks)})
            return
        spec = document(json.loads(b"".join(chunks)), self.serving.settings)
        await send_json(send, 200, spec, cors_headers(scope, self.serving.settings.cors_origins))


class ApiKeyAuth:
    """Bearer-key auth for every route but the open ones (``service.auth: api_key``).

    Fails closed: with no key in the environment (the start-up check refuses that, but another
    entry point might skip it) every protected request is 401.
    """

    def __init__(self, app: ASGIApp, *, serving: Serving) -> None:
        self.app = app
        self.serving = serving
        # A Secret made with `kubectl create secret --from-file` usually ends in a newline.
        key = os.environ.get(API_KEY_ENV, "").strip()
        self.expected = key.encode() if key else None

    def is_open(self, scope: Scope) -> bool:
        path, method = scope["path"], scope["method"]
        if path in OPEN_PATHS or (path.startswith(DOCS_ASSETS) and method in ("GET", "HEAD")):
            return True
        preflight = (
            method == "OPTIONS"
            and header(scope, b"origin") is not None
            and header(scope, b"access-control-request-method") is not None
        )
        return preflight and bool(self.serving.settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.is_open(scope):
            await self.app(scope, receive, send)
            return
        scheme, _, given = (header(scope, b"authorization") or b"").partition(b" ")
        if (
            self.expected is None
            or scheme.lower() != b"bearer"
            or not hmac.compare_digest(given.strip(), self.expected)
        ):
            await send_json(
                send,
                401,
                {"error": "missing or wrong API key: send 'Authorization: Bearer <key>'"},
                [
                    (b"www-authenticate", b"Bearer"),
                    *cors_headers(scope, self.serving.settings.cors_origins),
                ],
            )
            return
        await self.app(scope, receive, send)


def middlewares(settings: Settings) -> tuple[type[Any], ...]:
    """The middleware classes in the order to add them (the first added is the outermost)."""
    routes: tuple[type[Any], ...] = (OpenApiRoute, MetadataRoute, PredictRoute)
    if settings.monitor_window_rows > 0:
        routes = (*routes, FeedbackRoute, MonitorRoute)
    return (ApiKeyAuth, *routes) if settings.auth == "api_key" else routes
