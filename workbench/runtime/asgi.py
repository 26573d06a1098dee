"""The ASGI routes and middlewares every generated service adds in front of BentoML's router.

- :class:`PredictRoute` answers ``POST /predict`` with a JSON body: the body is validated by the
  same pydantic ``Row`` model the typed API declares (the same 400s, ``loc`` naming the row and the
  field), handed to the batcher, and the answers are written as JSON. BentoML's metrics, timeout and
  auth middlewares still wrap it; its per-request JSON-schema work and routing do not. Other
  content types go on to BentoML's typed API, which runs the same batcher.
- :class:`MetadataRoute` answers ``GET /metadata`` with the model card.
- :class:`ApiKeyAuth` requires ``Authorization: Bearer <key>`` on every API route when the key is
  set (compared in constant time); health, metrics, the docs and CORS preflights stay open.

User middlewares sit outside BentoML's CORS middleware, so the routes add the CORS headers of a
simple response themselves (:func:`cors_headers`).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from pydantic import ValidationError

from .batching import Batcher, Overloaded
from .settings import API_KEY_ENV, METADATA_PATH, OPEN_PATHS, PREDICT_PATH, Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("bentoml.service")


class Serving(Protocol):
    """What the routes need of the service (:class:`~.service.Serving` in a real worker)."""

    settings: Settings
    card: dict[str, Any]
    batcher: Batcher | None

    def parse(self, body: bytes) -> list[Any]: ...


UNEXPECTED = "An unexpected error has occurred, please check the server log."


def header(scope: Scope, name: bytes) -> bytes | None:
    """The value of one request header (lower-case name), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def cors_headers(scope: Scope, origins: list[str]) -> list[tuple[bytes, bytes]]:
    """What BentoML's CORS middleware adds to a simple (non-preflight) response."""
    origin = header(scope, b"origin")
    if not origins or origin is None:
        return []
    if "*" in origins:
        return [(b"access-control-allow-origin", b"*")]
    if origin.decode("latin-1") in origins:
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
    return []


async def send_body(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
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


async def send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_body(send, status, json.dumps(payload).encode(), headers)


class MetadataRoute:
    """``GET /metadata``: the model card this Bento was built with."""

    def __init__(self, app: ASGIApp, *, serving: Serving) -> None:
        self.app = app
        self.serving = serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == METADATA_PATH and scope["method"] == "GET":
            origins = self.serving.settings.cors_origins
            await send_json(send, 200, self.serving.card, cors_headers(scope, origins))
            return
        await self.app(scope, receive, send)


class PredictRoute:
    """``POST /predict`` with a JSON body: validate, batch, answer."""

    def __init__(self, app: ASGIApp, *, serving: Serving) -> None:
        self.app = app
        self.serving = serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        batcher = self.serving.batcher
        if (
            batcher is None
            or scope["type"] != "http"
            or scope["path"] != PREDICT_PATH
            or scope["method"] != "POST"
        ):
            await self.app(scope, receive, send)
            return
        kind = header(scope, b"content-type")
        if kind is not None and kind.split(b";")[0].strip().lower() != b"application/json":
            await self.app(scope, receive, send)  # BentoML serves other content types
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        cors = cors_headers(scope, self.serving.settings.cors_origins)
        try:
            rows = self.serving.parse(b"".join(chunks) or b"{}")
        except ValidationError as exc:  # the same 400 BentoML gives for its typed API
            detail = exc.errors(include_context=False, include_input=False)
            error = f"{exc.error_count()} validation error for {exc.title}"
            await send_json(send, 400, {"error": error, "detail": detail}, cors)
            return
        if not rows:
            await send_body(send, 200, b"[]", cors)
            return
        try:
            answers = await batcher.submit(rows)
        except Overloaded:
            await send_json(send, 503, {"error": "process is overloaded"}, cors)
            return
        except Exception:  # noqa: BLE001 - logged; the client gets BentoML's generic 500
            logger.exception("Exception on %s [POST]", PREDICT_PATH)
            await send_json(send, 500, {"error": UNEXPECTED}, cors)
            return
        await send_body(send, 200, ("[" + ",".join(answers) + "]").encode(), cors)


class ApiKeyAuth:
    """Bearer-key auth for every API route when ``WORKBENCH_API_KEY`` is set."""

    def __init__(self, app: ASGIApp, *, serving: Serving) -> None:
        self.app = app
        self.serving = serving
        key = os.environ.get(API_KEY_ENV, "")
        self.expected = f"Bearer {key}".encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.expected is None
            or scope["type"] != "http"
            or scope["method"] == "OPTIONS"  # CORS preflight carries no credentials
            or scope["path"] == "/"
            or scope["path"].startswith(OPEN_PATHS)
            or scope["path"].startswith("/static_content/")
        ):
            await self.app(scope, receive, send)
            return
        given = header(scope, b"authorization") or b""
        if not hmac.compare_digest(given, self.expected):
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


#: In the order they are added: the first added is the outermost, so auth sees every request.
MIDDLEWARES = (ApiKeyAuth, MetadataRoute, PredictRoute)
