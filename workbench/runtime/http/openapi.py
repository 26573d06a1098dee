"""The OpenAPI document of the service (``/docs.json`` and the Bento's ``apis/openapi.yaml``),
made from the route table.

BentoML generates a document from the typed API; it documents a 400 whose ``detail`` is a string
(the service sends a list), a 404 and a 500 that ``/predict`` does not send, and nothing of the
routes the runtime adds. :func:`document` writes the paths of the route table instead
(:func:`~.handlers.route_table`), each documented route's path item made by its ``doc`` function
here from BentoML's (the request body of ``/predict`` comes from the generated ``Row`` model):
every status it can send and the body it really sends, an ``operationId`` named after the route
(what a generated client calls it), and, from ``route.auth``, the bearer scheme when an API key
is required; then the whole document in the OpenAPI 3.0 dialect (:mod:`.dialect`), with only
the component schemas it refers to. There is no official hook for this in bentoml 1.4: the
service object's ``openapi_spec``, which BentoML's ``/docs.json`` view and its build both read,
is made to return it (:mod:`.edge`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..settings import EXPLAIN_PATH, PREDICT_PATH, Settings
from .dialect import as_openapi30, prune_components
from .routes import Route

JSON = "application/json"
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what was wrong and what to do"}},
}
VALIDATION_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "how many errors, e.g. '1 validation error'"},
        "detail": {
            "type": "array",
            "description": "one entry per error; `loc` names the row and the field",
            "items": {
                "type": "object",
                "required": ["type", "loc", "msg"],
                "properties": {
                    "type": {"type": "string"},
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "description": 'e.g. ["rows", 1, "count"]',
                    },
                    "msg": {"type": "string"},
                },
            },
        },
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}
TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _error(description: str, *, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {JSON: {"schema": ERROR}}}
    if headers:
        answer["headers"] = headers
    return answer


SERVER_ERRORS: dict[str, Any] = {
    "500": _error("an unexpected server fault (the model itself fails; see the log)"),
    "504": _error("not answered within the request timeout (`service.timeout`)"),
}
UNAUTHORIZED = _error(
    "missing or wrong API key: send `Authorization: Bearer <key>`",
    headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
)
KEY_LIMITED = _error(
    "too many requests with a wrong API key from this address (their answers are slowed): "
    "retry after `Retry-After` seconds",
    headers=RETRY_AFTER,
)
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "the key set in WORKBENCH_API_KEY where the service runs",
}


def predict(item: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``POST /predict``: BentoML's operation (its request body is the ``Row`` model), with the
    body required and holding ``rows`` only, as the service checks, and every status."""
    operation = item.get("post", {})
    body = operation.get("requestBody")
    if body is not None:
        body["required"] = True
        for content in body.get("content", {}).values():
            content.get("schema", {})["additionalProperties"] = False
    ok = operation.get("responses", {}).get("200", {"description": "one answer per row"})
    if settings.monitor.enabled:
        ok.setdefault("headers", {})["X-Request-Id"] = {
            "description": "this answer's id: what POST /feedback refers to",
            "schema": {"type": "string"},
        }
    service = settings.service
    operation["responses"] = {
        "200": ok,
        "400": {
            "description": "a malformed body or row (`loc` names the row and the field), or rows "
            "the model could not answer",
            "content": {JSON: {"schema": VALIDATION_ERROR}},
        },
        "413": _error(
            f"the body is over {service.max_body_bytes:,} bytes or holds over "
            f"{service.max_request_rows:,} rows: send fewer rows per request"
        ),
        "415": _error("the body is not `application/json`"),
        "429": _error(
            "the queue is full"
            + (
                ", or too many requests with a wrong API key from this address"
                if service.auth == "api_key"
                else ""
            )
            + ": retry after `Retry-After` seconds",
            headers=RETRY_AFTER,
        ),
        "503": _error(
            f"queued longer than {service.max_latency_ms} ms (overloaded): retry after "
            "`Retry-After` seconds",
            headers=RETRY_AFTER,
        ),
        **SERVER_ERRORS,
    }
    return {"post": operation}


EXPLANATION: dict[str, Any] = {
    "type": "object",
    "required": ["prediction", "output", "value", "base_value", "contributions", "warnings"],
    "properties": {
        "prediction": {"description": "the predicted label (or value)"},
        "output": {
            "type": "string",
            "description": "what is explained, in which units, e.g. `log-odds of class 1`",
        },
        "value": {"type": "number", "description": "the explained output for this row"},
        "base_value": {
            "type": "number",
            "description": "the output with no column known; value = base_value + the sum of "
            "the contributions",
        },
        "contributions": {
            "type": "array",
            "description": "input columns, largest |contribution| first (past 20: `(others)`)",
            "items": {
                "type": "object",
                "required": ["column", "contribution"],
                "properties": {
                    "column": {"type": "string"},
                    "contribution": {"type": "number"},
                },
            },
        },
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}


def explain(item: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``POST /explain``: ``/predict``'s request body (rows bounded by the explainer), each
    row's contributions."""
    spec = settings.explanation
    assert spec is not None, "documented only when the Bento explains"
    body = predict_request(item, settings)
    size = "exact" if spec.sample_size is None else f"{spec.sample_size} samples per column"
    service = settings.service
    return {
        "post": {
            "summary": "each input column's contribution to each row's prediction",
            "description": f"Method `{spec.method}` ({size}); output in {spec.output}. "
            f"{spec.reason}.",
            "tags": ["Service APIs"],
            **({"requestBody": body} if body else {}),
            "responses": {
                "200": {
                    "description": "one explanation per row, in order",
                    "content": {JSON: {"schema": {"type": "array", "items": EXPLANATION}}},
                },
                "400": {
                    "description": "a malformed body or row (`loc` names the row and the field)",
                    "content": {JSON: {"schema": VALIDATION_ERROR}},
                },
                "413": _error(
                    f"the body is over {service.max_body_bytes:,} bytes or holds over "
                    f"{spec.max_rows} rows: send fewer rows per request"
                ),
                "415": _error("the body is not `application/json`"),
                "429": _error(
                    "explanations already in progress: retry after `Retry-After` seconds",
                    headers=RETRY_AFTER,
                ),
                "503": _error("explanations are unavailable in this worker (see its log)"),
                **SERVER_ERRORS,
            },
        }
    }


def predict_request(item: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``POST /predict``'s request body as :func:`predict` documents it (empty when BentoML
    gave none)."""
    documented = predict(item, settings)["post"]
    body: dict[str, Any] = documented.get("requestBody", {})
    return body


def metadata(item: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``GET /metadata`` (other methods are answered 405 with ``Allow: GET``)."""
    return {
        "get": {
            "summary": "the model card",
            "description": "Model tag, task, input schema, metrics, gate verdicts, provenance and "
            "how the service was set up (`serving`).",
            "tags": ["Service APIs"],
            "responses": {
                "200": {
                    "description": "the model card",
                    "content": {JSON: {"schema": {"type": "object"}}},
                },
                **SERVER_ERRORS,
            },
        }
    }


def plain_text(item: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """BentoML's health routes as it documents them, answering plain text (absent when BentoML
    does not document the route)."""
    operation = item.get("get")
    if operation is None:
        return {}
    operation["responses"]["200"]["content"] = TEXT
    return {"get": operation}


def metrics(item: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``GET /metrics`` (the dispatcher answers it; BentoML's metrics are off)."""
    shown = (
        "for anyone (`monitor.public_metrics`)"
        if settings.monitor.public_metrics or settings.service.auth == "none"
        else "only to a scrape with the API key"
    )
    gauges = (
        f" With monitoring on, the monitoring gauges (`workbench_monitor_*`) too, {shown}."
        if settings.monitor.enabled
        else ""
    )
    return {
        "get": {
            "summary": "Prometheus metrics",
            "description": "Requests by route (`endpoint`: the route's path, `(unmatched)` for "
            "any other), their status and duration, requests in progress and failed API key "
            f"checks, all workers together.{gauges}",
            "tags": ["Infrastructure"],
            "responses": {"200": {"description": "the text exposition format", "content": TEXT}},
        }
    }


def readyz(item: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``/readyz``: 503 until the warm-up prediction has succeeded."""
    documented = plain_text(item, settings)
    if documented:
        documented["get"]["responses"]["503"] = {
            "description": "not ready: the warm-up prediction has not succeeded (see the log)",
            "content": TEXT,
        }
    return documented


def document(
    spec: dict[str, Any], routes: Mapping[str, Route], settings: Settings
) -> dict[str, Any]:
    """BentoML's OpenAPI document with exactly the documented routes of the table, every status
    they can send, and the bearer scheme on the routes that need the key."""
    given: dict[str, Any] = spec.get("paths", {})
    # /explain takes /predict's request body: its writer starts from BentoML's /predict item.
    given.setdefault(EXPLAIN_PATH, copy.deepcopy(given.get(PREDICT_PATH, {})))
    paths: dict[str, Any] = {}
    secured = settings.service.auth == "api_key"
    for path, route in routes.items():
        if route.doc is None:
            continue
        item = route.doc(given.get(path, {}), settings)
        if not item:
            continue
        name = path.strip("/").replace("/", "_").replace(".", "_")
        for method, operation in item.items():
            operation["operationId"] = name if len(item) == 1 else f"{method}_{name}"
            if route.auth and secured:
                operation["responses"]["401"] = copy.deepcopy(UNAUTHORIZED)
                operation["responses"].setdefault("429", copy.deepcopy(KEY_LIMITED))
                operation["security"] = [{"bearerAuth": []}]
        paths[path] = item
    spec["paths"] = paths
    if secured:
        components = spec.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearerAuth"] = BEARER
    return prune_components(as_openapi30(spec))


__all__ = ["document", "explain", "metadata", "plain_text", "predict", "readyz"]
