"""Where a worker's connections meet the route table: the dispatcher in front of BentoML's whole
app, and the connection rules under it.

BentoML builds each worker's ASGI app in ``Service.to_asgi()`` and hands it to uvicorn
(``_bentoml_impl/worker/service.py``). A middleware added with ``add_asgi_middleware`` runs
inside BentoML's own (metrics, tracing, access log, timeout), so whatever BentoML does per
request happens before the route table is consulted: its metrics labelled every unknown path
(issue 29), and every ``/predict`` paid for five middlewares it does not need. :func:`install`
puts the dispatcher outside instead: it gives the service object a subclass of its class whose
``to_asgi`` wraps BentoML's app. ``Service`` is a slotted attrs class (an instance attribute
cannot shadow a method), so the subclass declares ``__slots__ = ()`` and is assigned to the
object's ``__class__``; everything else about the service is BentoML's. This relies on how
bentoml 1.4.39 (the version every Bento pins) starts a worker; ``tests/test_service.py`` and
``tests/test_faults.py`` serve Bentos for real.

In each worker ``to_asgi`` also:

- counts every request under its table path (:class:`~.traffic.Traffic`; BentoML's metrics
  middleware is turned off in the generated service);
- makes uvicorn's ``"auto"`` HTTP protocol the guarded one (:mod:`.connections`: header deadline,
  shutdown): BentoML creates the worker's ``uvicorn.Config`` right after ``to_asgi`` with the
  default ``http="auto"``, and uvicorn looks the name up in ``uvicorn.config.HTTP_PROTOCOLS``;
- with several workers, listens on a socket of its own (:func:`listen_apart`): BentoML's workers
  all accept from one shared socket, and the first to wake takes every pending connection, so
  keep-alive clients landed on one worker (issue 24). Each worker's own socket on the same
  address with ``SO_REUSEPORT`` has the kernel spread new connections across the workers;
- at lifespan start-up (uvicorn's signal handlers are in place by then), stops the worker's
  listening socket (its ``--fd``) on SIGTERM before uvicorn drains (:mod:`.connections`);
- with ``service.tracing``, opens an OpenTelemetry span per request with BentoML's tracer
  provider (BentoML's own tracing middleware, behind, excludes every URL).

The subclass also gives the service object an ``openapi_spec`` that is the route table's
document (:mod:`.openapi`): BentoML's ``/docs.json`` view answers it (as UTF-8 JSON, unescaped:
Starlette's ``JSONResponse``) and ``bentoml build`` writes it as the Bento's
``apis/openapi.yaml``, so the static document is the served one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import yaml

from ..settings import PREDICT_PATH, Settings
from .connections import HeaderDeadline, guarded_protocol, stop_listening_on_exit
from .routes import ASGIApp
from .traffic import Traffic

logger = logging.getLogger("bentoml.service")
BACKLOG = 2048
"""A worker's own listening socket's backlog when its arguments name none (BentoML's default)."""


class Serving(Protocol):
    """What the edge needs of the service (:class:`~..service.Serving`)."""

    settings: Settings

    def app(
        self,
        inner: ASGIApp,
        *,
        traffic: Traffic | None = None,
        started: Callable[[], None] | None = None,
    ) -> ASGIApp: ...

    def document(self, spec: dict[str, Any], *, built: bool = True) -> dict[str, Any]:
        """The service's OpenAPI document, given BentoML's (``built``: of a Bento, not of a
        build under way)."""
        ...


class Document(dict[str, Any]):
    """The OpenAPI document as BentoML's readers of ``openapi_spec`` take it: ``asdict()`` for
    the ``/docs.json`` view, a plain YAML mapping for the build's ``apis/openapi.yaml``."""

    def asdict(self) -> dict[str, Any]:
        return dict(self)


def _represent(dumper: yaml.Dumper, document: Document) -> Any:
    return dumper.represent_dict(document.asdict())


# PyYAML (bentoml's own dependency) looks representers up by exact type.
yaml.add_representer(Document, _represent)


def listener_fd(argv: Sequence[str]) -> int | None:
    """The listening socket BentoML's arbiter passed this worker (``--fd N``), if it is one."""
    fd = flag_value(argv, "--fd")
    if fd is None:
        return None
    try:
        with socket.socket(fileno=os.dup(fd)) as probe:
            listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        return None
    return fd if listening else None


def flag_value(argv: Sequence[str], flag: str) -> int | None:
    """The integer after the last ``flag`` in ``argv`` (BentoML's worker arguments), if any."""
    found = None
    for name, value in zip(argv, argv[1:], strict=False):
        if name == flag and value.isdigit():
            found = int(value)
    return found


def listen_apart(fd: int, backlog: int) -> bool:
    """Put a listening socket of this worker's own in place of the shared one at ``fd``.

    The shared socket (made by BentoML's arbiter, open in every worker) gets ``SO_REUSEPORT``
    and is shut for reading, which takes it out of the accept path (it stays bound, so the
    address stays this service's); the new socket is bound to the same address with
    ``SO_REUSEPORT`` and takes its number with ``dup2``, so BentoML hands it to uvicorn as if
    it were the shared one. Linux then spreads new connections across the workers' sockets
    by a hash of the client's address and port. A worker the arbiter starts again later does
    the same. False (nothing changed) where the system has no ``SO_REUSEPORT``, or the bind
    is refused."""
    reuse_port = getattr(socket, "SO_REUSEPORT", None)
    if reuse_port is None:  # pragma: no cover - Linux and the BSDs have it
        return False
    try:
        with socket.socket(fileno=os.dup(fd)) as shared:
            address, family = shared.getsockname(), shared.family
            shared.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
            with contextlib.suppress(OSError):  # another worker shut it already
                shared.shutdown(socket.SHUT_RD)
        own = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        logger.warning("workers share one listening socket: %s", exc)
        return False
    with own:
        try:
            own.setsockopt(socket.SOL_SOCKET, reuse_port, 1)  # never SO_REUSEADDR: see docs
            own.bind(address)
            own.listen(backlog)
        except OSError as exc:
            logger.warning("workers share one listening socket: %s", exc)
            return False
        os.dup2(own.fileno(), fd)
    return True


def install_protocol() -> type[HeaderDeadline] | None:
    """uvicorn's ``"auto"`` HTTP protocol made the guarded one; the class (None: no uvicorn)."""
    try:
        from uvicorn import config
        from uvicorn.protocols.http.auto import AutoHTTPProtocol
    except ImportError:  # pragma: no cover - BentoML's worker always has uvicorn
        return None
    guarded = guarded_protocol(AutoHTTPProtocol)
    # uvicorn's Config.load passes a class given in place of an import string through as it is.
    config.HTTP_PROTOCOLS["auto"] = guarded  # type: ignore[assignment]
    return guarded  # type: ignore[return-value]


def traced(app: ASGIApp) -> ASGIApp:
    """``app`` with an OpenTelemetry span per request, exported as BentoML's tracing config says."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    provider = BentoMLContainer.tracer_provider.get()
    wrapped: ASGIApp = OpenTelemetryMiddleware(app, tracer_provider=provider)
    return wrapped


def edge_app(serving: Serving, inner: ASGIApp, service: Any) -> ASGIApp:
    """The worker's app: the dispatcher in front of BentoML's ``inner`` app (see above)."""
    bento = getattr(service, "bento", None)
    traffic = Traffic(
        service_name=bento.tag.name if bento is not None else service.name,
        service_version=(bento.tag.version or "not available") if bento else "not available",
        runner_name=service.name,
        paths=[PREDICT_PATH],
    )
    protocol = install_protocol()
    fd = listener_fd(sys.argv)
    if fd is not None and serving.settings.service.workers > 1:
        listen_apart(fd, flag_value(sys.argv, "--backlog") or BACKLOG)
    started = None
    if protocol is not None and fd is not None:

        def started() -> None:
            stop_listening_on_exit(fd, protocol)

    app: ASGIApp = serving.app(inner, traffic=traffic, started=started)
    if serving.settings.service.tracing:
        with contextlib.suppress(ImportError):
            app = traced(app)
    return app


def install(service: Any, serving: Serving) -> None:
    """Serve ``service`` (BentoML's service object) behind ``serving``'s route table: its class
    becomes a subclass whose ``to_asgi`` is :func:`edge_app` around BentoML's app and whose
    ``openapi_spec`` is ``serving``'s document."""

    class WorkbenchService(type(service)):  # type: ignore[misc]
        __slots__ = ()  # the same layout as BentoML's slotted Service: __class__ can be set

        def to_asgi(self, is_main: bool = True) -> ASGIApp:
            return edge_app(serving, super().to_asgi(is_main=is_main), self)

        @property
        def openapi_spec(self) -> Document:
            # as BentoML would serve it: through JSON (its status codes are int keys until then)
            spec = json.loads(json.dumps(super().openapi_spec.asdict()))
            return Document(serving.document(spec, built=self.bento is not None))

    service.__class__ = WorkbenchService


__all__ = ["edge_app", "install", "install_protocol", "listen_apart", "listener_fd"]
