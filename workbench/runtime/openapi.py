"""The OpenAPI document the service serves at ``/docs.json``, made to tell the truth.

BentoML generates the document from the typed API; it documents a 400 whose ``detail`` is a string
(the service sends a list), a 404 and a 500 that ``/predict`` does not send, and nothing of the
routes the runtime adds. :func:`document` patches BentoML's document: every route (``/predict``,
``/metadata``, health, metrics) with every status it can send and the body it really sends, and
the bearer scheme when an API key is required. There is no official hook for this in bentoml 1.4,
so :class:`~.asgi.OpenApiRoute` rewrites the answer of ``GET /docs.json``.
"""

from __future__ import annotations

import json
from typing import Any

from .settings import FEEDBACK_PATH, METADATA_PATH, MONITOR_PATH, PREDICT_PATH, Settings

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


def _api_errors(settings: Settings) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    if settings.auth == "api_key":
        errors["401"] = _error(
            "missing or wrong API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
        )
    errors["500"] = _error("an unexpected server fault (the model itself fails; see the log)")
    errors["504"] = _error("not answered within the request timeout (`service.timeout`)")
    return errors


def document(spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """BentoML's OpenAPI document with every route and status the service really has."""
    paths: dict[str, Any] = spec.setdefault("paths", {})
    predict = paths.get(PREDICT_PATH, {}).get("post", {})
    body = predict.get("requestBody")
    if body is not None:  # the body is required and holds `rows` only, as the service checks
        body["required"] = True
        for content in body.get("content", {}).values():
            content.get("schema", {})["additionalProperties"] = False
    ok = predict.get("responses", {}).get("200", {"description": "one answer per row"})
    predict["responses"] = {
        "200": ok,
        "400": {
            "description": "a malformed body or row (`loc` names the row and the field), or rows "
            "the model could not answer",
            "content": {JSON: {"schema": VALIDATION_ERROR}},
        },
        "413": _error(
            f"the body is over {settings.max_body_bytes:,} bytes or holds over "
            f"{settings.max_request_rows:,} rows: send fewer rows per request"
        ),
        "415": _error("the body is not `application/json`"),
        "429": _error("the queue is full: retry after `Retry-After` seconds", headers=RETRY_AFTER),
        "503": _error(
            f"queued longer than {settings.max_queue_ms} ms (overloaded): retry after "
            "`Retry-After` seconds",
            headers=RETRY_AFTER,
        ),
        **_api_errors(settings),
    }
    paths.setdefault(PREDICT_PATH, {})["post"] = predict
    paths[METADATA_PATH] = {
        # Other methods are answered 405 with `Allow: GET`.
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
                **_api_errors(settings),
            },
        }
    }
    for path in ("/livez", "/healthz", "/readyz", "/metrics"):
        operation = paths.get(path, {}).get("get")
        if operation is not None:
            operation["responses"]["200"]["content"] = TEXT
    readyz = paths.get("/readyz", {}).get("get")
    if readyz is not None:
        readyz["responses"]["503"] = {
            "description": "not ready: the warm-up prediction has not succeeded (see the log)",
            "content": TEXT,
        }
    secured = [(PREDICT_PATH, "post"), (METADATA_PATH, "get")]
    if settings.monitor_window_rows > 0:
        ok.setdefault("headers", {})["X-Request-Id"] = {
            "description": "this answer's id: what POST /feedback refers to",
            "schema": {"type": "string"},
        }
        _monitoring(paths, settings)
        secured += [(FEEDBACK_PATH, "post"), (MONITOR_PATH, "get")]
    if settings.auth == "api_key":
        components = spec.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "the key set in WORKBENCH_API_KEY where the service runs",
        }
        for path, method in secured:
            paths[path][method]["security"] = [{"bearerAuth": []}]
    return spec


FEEDBACK_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["feedback"],
    "additionalProperties": False,
    "properties": {
        "feedback": {
            "type": "array",
            "minItems": 1,
            "maxItems": 10_000,
            "items": {
                "type": "object",
                "required": ["request_id", "label"],
                "additionalProperties": False,
                "properties": {
                    "request_id": {"type": "string", "minLength": 1},
                    "row": {"type": "integer", "minimum": 0, "default": 0},
                    "label": {"description": "one of the model's classes, or the true value"},
                },
            },
        }
    },
}


def _feedback(settings: Settings) -> dict[str, Any]:
    """The feedback body, its ``label`` one of the classes (classifiers) or a number."""
    label: dict[str, Any] = (
        {"type": "number", "description": "the true value"}
        if settings.task == "regression"
        else {"enum": list(settings.classes or []), "description": "the true class"}
    )
    body = json.loads(json.dumps(FEEDBACK_BODY))
    body["properties"]["feedback"]["items"]["properties"]["label"] = label
    return dict(body)


def _monitoring(paths: dict[str, Any], settings: Settings) -> None:
    """``POST /feedback`` and ``GET /monitor``."""
    counts = {name: {"type": "integer"} for name in ("applied", "unchanged", "updated", "unknown")}
    paths[FEEDBACK_PATH] = {
        "post": {
            "summary": "true labels for answered rows, by request id",
            "description": "Repeats are idempotent; ids not in the window are reported unknown.",
            "tags": ["Service APIs"],
            "requestBody": {"required": True, "content": {JSON: {"schema": _feedback(settings)}}},
            "responses": {
                "200": {
                    "description": "how many items were applied, unchanged, updated, unknown",
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {**counts, "unknown_ids": {"type": "array"}},
                            }
                        }
                    },
                },
                "400": {
                    "description": "bad feedback: nothing was applied (`detail` names each item)",
                    "content": {JSON: {"schema": ERROR}},
                },
                "413": _error("the body is too large: send the labels in several requests"),
                "415": _error("the body is not `application/json`"),
                **_api_errors(settings),
            },
        }
    }
    paths[MONITOR_PATH] = {
        "get": {
            "summary": "the monitoring report of the recent window",
            "description": "Window, per-column drift, dataset verdict, predictions, missing and "
            f"unseen shares, live metrics; recomputed at most every "
            f"{settings.monitor_refresh_s:g} s.",
            "tags": ["Service APIs"],
            "responses": {
                "200": {
                    "description": "the report",
                    "content": {JSON: {"schema": {"type": "object"}}},
                },
                **_api_errors(settings),
            },
        }
    }
