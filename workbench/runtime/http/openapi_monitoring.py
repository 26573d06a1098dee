"""The OpenAPI path items of the monitoring routes, ``POST /feedback`` and ``GET /monitor``
(served with monitoring on; :func:`.openapi.document` puts them in the document with the others).
"""

from __future__ import annotations

import copy
from typing import Any

from ..monitoring.feedback import FEEDBACK_STATUSES
from ..settings import Settings
from .openapi import ERROR, JSON, SERVER_ERRORS, _error

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


JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
"""The OpenAPI type of a class label of each Python type (labels of one type get it)."""


def _feedback_body(settings: Settings) -> dict[str, Any]:
    """The feedback body, its ``label`` one of the classes (classifiers) or a number."""
    classes = list(settings.classes or [])
    label: dict[str, Any] = (
        {"type": "number", "description": "the true value"}
        if settings.task == "regression"
        else {"enum": classes, "description": "the true class"}
    )
    kinds = {JSON_TYPES.get(type(value)) for value in classes}
    if settings.task != "regression" and len(kinds) == 1 and None not in kinds:
        label["type"] = kinds.pop()
    body = copy.deepcopy(FEEDBACK_BODY)
    body["properties"]["feedback"]["items"]["properties"]["label"] = label
    return body


def feedback(item: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``POST /feedback``."""
    counts = {name: {"type": "integer"} for name in FEEDBACK_STATUSES}
    ref = {
        "type": "object",
        "properties": {"request_id": {"type": "string"}, "row": {"type": "integer"}},
    }
    listed = {"type": "array", "items": ref, "description": "the first 1,000"}
    answer = {
        "type": "object",
        "properties": {**counts, "unknown_ids": listed, "conflict_ids": listed},
    }
    return {
        "post": {
            "summary": "true labels for answered rows, by request id",
            "description": "A row's first label stands: the same again is `unchanged`, another "
            "is a `conflict` (counted and listed, never applied); ids not in the window, or "
            "not ids of this service, are `unknown`.",
            "tags": ["Service APIs"],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _feedback_body(settings)}},
            },
            "responses": {
                "200": {
                    "description": "how many items were applied, unchanged, conflicting, unknown",
                    "content": {JSON: {"schema": answer}},
                },
                "400": {
                    "description": "bad feedback: nothing was applied (`detail` names each item)",
                    "content": {JSON: {"schema": ERROR}},
                },
                "413": _error("the body is too large: send the labels in several requests"),
                "415": _error("the body is not `application/json`"),
                **SERVER_ERRORS,
            },
        }
    }


def monitor(item: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``GET /monitor``."""
    return {
        "get": {
            "summary": "the monitoring report of the recent window",
            "description": "Status (PASS, FAIL, INCONCLUSIVE = not enough data) and why, window, "
            "per-column drift, dataset verdict, data-quality checks, predictions, missing and "
            f"unseen shares, live metrics; recomputed at most every "
            f"{settings.monitor.refresh_seconds:g} s.",
            "tags": ["Service APIs"],
            "responses": {
                "200": {
                    "description": "the report",
                    "content": {JSON: {"schema": {"type": "object"}}},
                },
                **SERVER_ERRORS,
            },
        }
    }


__all__ = ["feedback", "monitor"]
