"""The routes of a generated service: their handlers, and the table that lists them.

- ``POST /predict``: a body that is not JSON is 415; one over the size limit is 413 before it is
  read (from ``Content-Length``) or as soon as it passes the limit (chunked); more rows than the
  row limit is 413. Rows are validated by the generated ``Row`` model in slices, yielding to the
  event loop between them, so health checks keep answering while a large request is parsed;
  checking stops at the first :data:`MAX_DETAIL` errors (a small body of many bad rows costs
  what a few rows do). A request with more rows than one model batch goes to the model in
  several batches. A full queue
  is 429 and a request queued too long 503, both with ``Retry-After``.
- ``POST /explain`` (``service.explain: true``): each input column's contribution to each
  row's prediction (:mod:`..explainer`), at most ``max_rows`` rows, in a thread of its own.
- ``GET /metadata``: the model card this Bento was built with.
- ``POST /feedback`` and ``GET /monitor`` (monitoring on): true labels for answered rows, and the
  monitoring report (:mod:`..monitoring`).
- ``GET /docs.json`` and ``GET /schema.json``: BentoML's views of the OpenAPI document (the
  service's ``openapi_spec``, made to tell the truth: :mod:`.openapi`, :mod:`.edge`) and of its
  API schema (what ``bentoml.SyncHTTPClient`` reads first), open like the docs page.
- ``GET /metrics``: the HTTP series of every worker (:mod:`.traffic`), open; with monitoring on,
  the monitoring gauges (:mod:`..monitoring.gauges`) too, but only to a scrape with the API key
  unless ``monitor.public_metrics`` (or ``service.auth: none``).

:func:`route_table` is the table the dispatcher serves (:mod:`.routes`): adding a route is one
handler method of :class:`Handlers` and one entry of :func:`route_table`, with its OpenAPI path
item in :mod:`.openapi` (:mod:`.openapi_monitoring` for the monitoring routes).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import from_json

from ..batching import Batcher, Overloaded, QueueFull
from ..explainer import ExplainBusy, Explainer, ExplainRefused
from ..monitoring.feedback import FeedbackError
from ..monitoring.gauges import prometheus_text
from ..monitoring.monitor import Monitor, Watched
from ..predictor import Answers, RowsRefused
from ..settings import (
    DOCS_PATH,
    EXPLAIN_PATH,
    FEEDBACK_PATH,
    METADATA_PATH,
    MONITOR_PATH,
    PREDICT_PATH,
    REQUEST_ID_HEADER,
    Settings,
)
from . import openapi, openapi_monitoring
from .routes import FORWARD, ClientGone, Forward, Refusal, Request, Response, Route
from .traffic import CONTENT_TYPE, Traffic

logger = logging.getLogger("bentoml.service")

#: Rows validated between two yields to the event loop (about 5 ms of pydantic work each).
VALIDATION_SLICE = 500
#: The first slice's rows; each next slice twice the last, up to VALIDATION_SLICE. A failing
#: slice makes pydantic build the errors of all its rows: small first slices keep a refused
#: request's cost near that of its first bad rows.
FIRST_SLICE = 32
#: Checking a request's rows stops at this many errors, which a 400 lists: a body of a few KiB
#: with thousands of bad rows costs the errors of a few rows, not of all.
MAX_DETAIL = 100
LARGE_JOBS = "score large files offline in batches instead of over HTTP"
EXTRA = "Extra inputs are not permitted"
"""pydantic's message for a field the row model does not have."""
#: The largest ``POST /feedback`` body.
MAX_FEEDBACK_BYTES = 4 << 20


class Serving(Protocol):
    """What the handlers need of the service (:class:`~..service.Serving` in a real worker)."""

    settings: Settings
    card_json: bytes
    batcher: Batcher | None
    row_model: type[BaseModel]
    rows_adapter: TypeAdapter[list[Any]]
    monitor: Monitor | None
    explainer: Explainer | None

    async def explain(self, rows: list[Any]) -> list[str]: ...

    traffic: Traffic | None


class Envelope(BaseModel):
    """``{"rows": [...]}``, the rows themselves checked apart (in slices)."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Any]


def validation_error(errors: list[dict[str, Any]], *, stopped: bool = False) -> Refusal:
    """A 400 listing ``errors`` (``stopped``: checking stopped there, there may be more)."""
    count = len(errors)
    what = f"{count} validation error{'s' if count != 1 else ''} in the request"
    if stopped:
        what = f"at least {what} (checking stops at {MAX_DETAIL})"
    return Refusal(400, {"error": what, "detail": errors[:MAX_DETAIL]})


def pydantic_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors as the 400 lists them: type, loc, msg."""
    return [
        {"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 415 when it is not JSON and 413 past ``limit`` bytes."""
    kind = request.header(b"content-type")
    close = [(b"connection", b"close")]
    if kind is not None and kind.split(b";")[0].strip().lower() != b"application/json":
        shown = kind.decode("latin-1")[:80]
        message = (
            f"Content-Type {shown!r} is not accepted: send the rows as JSON with "
            "'Content-Type: application/json'"
        )
        raise Refusal(415, {"error": message}, close)
    too_big = {
        "error": f"the request body is over this service's limit of {limit:,} bytes "
        f"(service.max_body_mb): send fewer rows per request, or {LARGE_JOBS}"
    }
    length = request.header(b"content-length")
    if length is not None:
        if not length.strip().isdigit():
            error = {"type": "content_length", "loc": [], "msg": "Content-Length is not a number"}
            raise validation_error([error])
        if int(length) > limit:
            raise Refusal(413, too_big, close)
    chunks, size, more = [], 0, True
    while more:
        received = await request.receive()
        if received["type"] == "http.disconnect":
            raise ClientGone
        chunk = received.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, too_big, close)
        chunks.append(chunk)
        more = received.get("more_body", False)
    return b"".join(chunks)


async def parse_rows(
    body: bytes, serving: Serving, *, limit: int | None = None, limit_name: str = ""
) -> list[Any]:
    """The validated rows of a ``{"rows": [...]}`` body, or a 400/413 :class:`Refusal`: more
    rows than ``limit`` (default ``service.max_request_rows``; ``limit_name`` says where that
    limit comes from) is 413."""
    try:
        data = from_json(body) if body.strip() else {}
    except ValueError as exc:
        error = {"type": "json_invalid", "loc": [], "msg": f"Invalid JSON: {exc}"}
        raise validation_error([error]) from None
    try:
        raw = Envelope.model_validate(data).rows
    except ValidationError as exc:
        raise validation_error(pydantic_errors(exc)) from None
    advice = "send fewer rows per request"
    if limit is None:
        limit, limit_name = serving.settings.service.max_request_rows, "service.max_request_rows"
        advice += f", or {LARGE_JOBS}"
    if len(raw) > limit:
        raise Refusal(
            413,
            {
                "error": f"{len(raw):,} rows are over this service's limit of {limit:,} rows per "
                f"request ({limit_name}): {advice}"
            },
        )
    rows: list[Any] = []
    errors: list[dict[str, Any]] = []
    wide = len(serving.row_model.model_fields) + MAX_DETAIL
    start, size = 0, FIRST_SLICE
    while start < len(raw):
        if start:
            await asyncio.sleep(0)  # let health checks and other requests in
        part = raw[start : start + size]
        try:
            if any(type(row) is dict and len(row) > wide for row in part):
                raise ValueError("a row with more unknown fields than a 400 lists")
            rows += serving.rows_adapter.validate_python(part)
        except (ValidationError, ValueError):
            errors += row_errors(part, start, serving.row_model, MAX_DETAIL - len(errors))
            if len(errors) >= MAX_DETAIL:
                raise validation_error(errors, stopped=True) from None
        start, size = start + size, min(2 * size, VALIDATION_SLICE)
    if errors:
        raise validation_error(errors)
    return rows


def row_errors(
    part: list[Any], start: int, row_model: type[BaseModel], room: int
) -> list[dict[str, Any]]:
    """The errors of rows ``part`` (the first at ``start``), one row at a time, stopping once
    ``room`` are found. A row with more unknown fields than a 400 lists (it could hold
    thousands) has its first unknown fields named without pydantic building an error for each."""
    fields = row_model.model_fields
    names = {field.alias or name for name, field in fields.items()}
    errors: list[dict[str, Any]] = []
    for i, row in enumerate(part, start):
        if type(row) is dict and len(row) > len(fields) + MAX_DETAIL:
            extra = (key for key in row if key not in names)
            for key, _ in zip(extra, range(room - len(errors)), strict=False):
                errors.append({"type": "extra_forbidden", "loc": ["rows", i, key], "msg": EXTRA})
        else:
            try:
                row_model.model_validate(row)
            except ValidationError as exc:
                for error in pydantic_errors(exc):
                    errors.append({**error, "loc": ["rows", i, *error["loc"]]})
        if len(errors) >= room:
            return errors[:room]
    return errors


def _retry(status: int, message: str, seconds: int) -> Refusal:
    return Refusal(status, {"error": message}, [(b"retry-after", str(seconds).encode())])


async def answer_rows(
    rows: list[Any], batcher: Batcher, batch_rows: int, *, context: Any = None
) -> Sequence[str]:
    """Each row's answer, the rows sent to the model at most ``batch_rows`` at a time (each
    part with ``context``, for the batcher's after-call hook)."""
    parts: list[Sequence[str]] = []
    for start in range(0, len(rows), batch_rows):
        try:
            parts.append(await batcher.submit(rows[start : start + batch_rows], context=context))
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
            message = f"the queue is full: retry in {exc.retry_after_s} s"
            raise _retry(429, message, exc.retry_after_s) from None
        except Overloaded as exc:
            message = f"overloaded: queued too long, retry in {exc.retry_after_s} s"
            raise _retry(503, message, exc.retry_after_s) from None
    return Answers.join(parts) if parts else []


class Handlers:
    """The handlers of the service's own routes, over its :class:`Serving`."""

    def __init__(self, serving: Serving) -> None:
        self.serving = serving
        self.rendered: dict[str, tuple[Any, bytes]] = {}
        """The monitoring report as last sent, per form: it changes at most every
        ``monitor.refresh_seconds``, a dashboard reads it every few seconds."""

    def render(self, form: str, report: dict[str, Any], write: Callable[[Any], str]) -> bytes:
        """``write(report)`` as bytes, written again only when the report is another."""
        last = self.rendered.get(form)
        if last is not None and last[0] is report:
            return last[1]
        data = write(report).encode()
        self.rendered[form] = (report, data)
        return data

    async def predict(self, request: Request) -> Response | Forward:
        serving = self.serving
        batcher = serving.batcher
        if batcher is None:  # not started: BentoML's typed API (Serving.predict) answers
            return FORWARD
        service = serving.settings.service
        body = await read_body(request, service.max_body_bytes)
        rows = await parse_rows(body, serving)
        monitor = serving.monitor
        batch = service.max_batch_size
        watched: Watched | None = None if monitor is None else monitor.watch(rows, batch)
        answers = await answer_rows(rows, batcher, batch, context=watched)
        headers = []
        if monitor is not None:
            request_id = monitor.request_id(watched, rows, answers)
            headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
        return Response(200, ("[" + ",".join(answers) + "]").encode(), headers)

    async def explain(self, request: Request) -> Response:
        """``{"rows": [...]}`` as ``/predict`` takes them, at most the explainer's ``max_rows``:
        per row the prediction, the explained output and its value, the base value and each input
        column's contribution, largest first (they add up to the value minus the base value). It
        runs in a thread of its own, never where ``/predict``'s model calls run."""
        serving = self.serving
        if serving.explainer is None:
            raise Refusal(503, {"error": "explanations are unavailable (see the server log)"})
        spec = serving.explainer.spec
        body = await read_body(request, serving.settings.service.max_body_bytes)
        rows = await parse_rows(body, serving, limit=spec.max_rows, limit_name="POST /explain")
        try:
            answers = await serving.explain(rows)
        except ExplainBusy as exc:
            raise _retry(429, f"{exc}: retry in 1 s", 1) from None
        except ExplainRefused as exc:
            error = {"type": "model_refused", "loc": ["rows"], "msg": f"not explained ({exc})"}
            raise validation_error([error]) from None
        return Response(200, ("[" + ",".join(answers) + "]").encode())

    async def metadata(self, request: Request) -> Response:
        return Response(200, self.serving.card_json)

    async def feedback(self, request: Request) -> Response | Forward:
        """``{"feedback": [{"request_id": "<X-Request-Id>", "row": 0, "label": <value>}]}``
        (``row``: the row's index in its request, default 0). Answers how many were ``applied``
        (the row's first label), ``unchanged`` (the same label again: repeats are idempotent),
        a ``conflict`` (another label: the first stands; never a silent overwrite) and
        ``unknown`` (not an id of this service, or no longer in the window: at once), listing
        the unknown and conflicting ids. Any bad item is one 400 naming each bad item, and
        nothing is applied."""
        monitor = self.serving.monitor
        if monitor is None:
            return FORWARD
        body = await read_body(request, MAX_FEEDBACK_BYTES)
        try:
            try:
                data = from_json(body) if body.strip() else None
            except ValueError as exc:
                raise FeedbackError(f"the body is not valid JSON ({exc})") from None
            items = monitor.check_feedback(data)
        except FeedbackError as exc:
            payload: dict[str, Any] = {"error": str(exc)}
            if exc.detail:
                payload["detail"] = exc.detail
            raise Refusal(400, payload) from None
        return Response.json(200, await monitor.give_feedback(items))

    async def monitor(self, request: Request) -> Response | Forward:
        """The monitoring report (recomputed at most every ``monitor.refresh_seconds``)."""
        monitor = self.serving.monitor
        if monitor is None:
            return FORWARD
        return Response(200, self.render("json", await monitor.report(), json.dumps))

    async def metrics(self, request: Request) -> Response:
        """Every worker's HTTP series; the monitoring gauges where :meth:`quality_shown`."""
        serving = self.serving
        text = b"" if serving.traffic is None else serving.traffic.exposition()
        monitor = serving.monitor
        if monitor is not None and self.quality_shown(request):
            try:
                report = await monitor.report()
            except Exception:  # noqa: BLE001 - /metrics keeps answering the HTTP series
                logger.exception("monitoring: the report for /metrics failed")
            else:
                text += self.render("prometheus", report, prometheus_text)
        return Response(200, text, content_type=CONTENT_TYPE.encode())

    def quality_shown(self, request: Request) -> bool:
        """Whether ``/metrics`` shows the monitoring gauges (model quality, drift, predictions,
        labels, and the status and data-quality alarms: an alarm anyone can read tells whoever
        shapes the inputs how far to go) to this request: with the key, or where the deployer
        made them public."""
        settings = self.serving.settings
        return (
            settings.service.auth == "none" or settings.monitor.public_metrics or request.authorized
        )


def route_table(serving: Serving) -> dict[str, Route]:
    """Every route of the service, ours and BentoML's (see :mod:`.routes`)."""
    h = Handlers(serving)
    table: dict[str, Route] = {
        PREDICT_PATH: Route(frozenset({"POST"}), h.predict, doc=openapi.predict),
        METADATA_PATH: Route(frozenset({"GET"}), h.metadata, doc=openapi.metadata),
        # BentoML's view of the service's openapi_spec: the document of this table (.edge)
        DOCS_PATH: Route(None, auth=False),
        "/livez": Route(None, auth=False, doc=openapi.plain_text),
        "/healthz": Route(None, auth=False, doc=openapi.plain_text),
        "/readyz": Route(None, auth=False, doc=openapi.readyz),
        "/metrics": Route(frozenset({"GET"}), h.metrics, auth=False, doc=openapi.metrics),
        "/": Route(None, auth=False),  # BentoML's docs page and its assets
        "/static_content/": Route(frozenset({"GET", "HEAD"}), auth=False, prefix=True),
        # BentoML's API schema, what its clients read first: as open as the OpenAPI document
        # (the same input schema; nothing secret), so a bad key is the API's 401 to them
        "/schema.json": Route(None, auth=False),
    }
    if serving.settings.explanation is not None:
        table[EXPLAIN_PATH] = Route(frozenset({"POST"}), h.explain, doc=openapi.explain)
    if serving.settings.monitor.enabled:
        monitoring = openapi_monitoring
        table[FEEDBACK_PATH] = Route(frozenset({"POST"}), h.feedback, doc=monitoring.feedback)
        table[MONITOR_PATH] = Route(frozenset({"GET"}), h.monitor, doc=monitoring.monitor)
    return table


__all__ = ["Handlers", "Serving", "route_table"]
