"""Baseline (before): the service workbench generated before the serving-speed work.

Rendered from the previous template (git history of ``workbench/templates/service.py.tmpl``) for
the benchmark model, with the model tag and the model card inlined. BentoML's adaptive batching
over a list of typed rows, a DataFrame cast per batch, ``predict`` and ``predict_proba`` called
separately, access log and tracing as BentoML sets them.
"""

# ruff: noqa: B905, UP007, UP045 - kept as generated

import hmac
import json
import os
from typing import Any, Optional, Union

import bentoml
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

MODEL_TAG = "serving_bench:latest"
TASK = "classification"
COLUMNS: list[str] = [
    "f00",
    "f01",
    "f02",
    "f03",
    "f04",
    "f05",
    "f06",
    "f07",
    "f08",
    "f09",
    "f10",
    "f11",
    "f12",
    "f13",
    "f14",
    "f15",
    "f16",
    "f17",
    "f18",
    "f19",
]
DTYPES: dict[str, str] = {
    "f00": "float64",
    "f01": "float64",
    "f02": "float64",
    "f03": "float64",
    "f04": "float64",
    "f05": "float64",
    "f06": "float64",
    "f07": "float64",
    "f08": "float64",
    "f09": "float64",
    "f10": "float64",
    "f11": "float64",
    "f12": "float64",
    "f13": "float64",
    "f14": "float64",
    "f15": "float64",
    "f16": "float64",
    "f17": "float64",
    "f18": "float64",
    "f19": "float64",
}
# Category columns: the values seen in training, and what replaces an unseen one when the model
# cannot handle unknown categories itself (UNSEEN_POLICY == "replace"; "accept" passes it on).
CATEGORIES: dict[str, list[str]] = {}
FALLBACK: dict[str, str] = {}
UNSEEN_POLICY = "accept"
CARD = {"model_tag": MODEL_TAG}
API_KEY_ENV = "WORKBENCH_API_KEY"
OPEN_PATHS = ("/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json")


class Row(BaseModel):
    """One input row; field aliases are the training column names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    f00: float = Field(alias="f00")
    f01: float = Field(alias="f01")
    f02: float = Field(alias="f02")
    f03: float = Field(alias="f03")
    f04: float = Field(alias="f04")
    f05: float = Field(alias="f05")
    f06: float = Field(alias="f06")
    f07: float = Field(alias="f07")
    f08: float = Field(alias="f08")
    f09: float = Field(alias="f09")
    f10: float = Field(alias="f10")
    f11: float = Field(alias="f11")
    f12: float = Field(alias="f12")
    f13: float = Field(alias="f13")
    f14: float = Field(alias="f14")
    f15: float = Field(alias="f15")
    f16: float = Field(alias="f16")
    f17: float = Field(alias="f17")
    f18: float = Field(alias="f18")
    f19: float = Field(alias="f19")


class Prediction(BaseModel):
    prediction: Union[int]
    probabilities: Optional[dict[str, float]] = None
    warnings: list[str] = []


async def _send_json(send: Any, status: int, payload: Any, headers: tuple = ()) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MetadataRoute:
    """`GET /metadata`: the model card this Bento was built with."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/metadata" and scope["method"] == "GET":
            await _send_json(send, 200, CARD)
            return
        await self.app(scope, receive, send)


class ApiKeyAuth:
    """Bearer-key auth for every API route when WORKBENCH_API_KEY is set (constant-time compare)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        key = os.environ.get(API_KEY_ENV, "")
        self.expected = f"Bearer {key}".encode() if key else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
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
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            await _send_json(
                send,
                401,
                {"error": "missing or wrong API key: send 'Authorization: Bearer <key>'"},
                ((b"www-authenticate", b"Bearer"),),
            )
            return
        await self.app(scope, receive, send)


@bentoml.service(
    name="previous",
    workers=1,
    traffic={"timeout": 30},
    http={"cors": {"enabled": False}},
)
class Previous:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)
        classes = getattr(self.model, "classes_", None)
        self.classes = None if classes is None else [str(c) for c in np.asarray(classes).tolist()]
        self.proba = self.classes is not None and hasattr(self.model, "predict_proba")
        self.seen = {name: set(values) for name, values in CATEGORIES.items()}

    def frame(self, rows: list[Row]) -> tuple[pd.DataFrame, list[list[str]]]:
        """Rows as a DataFrame in training order and dtypes, with per-row warnings."""
        records = [row.model_dump(by_alias=True) for row in rows]
        warnings: list[list[str]] = [[] for _ in records]
        for name, seen in self.seen.items():
            for i, record in enumerate(records):
                value = record[name]
                if value is not None and value not in seen:
                    if UNSEEN_POLICY == "replace":
                        record[name] = FALLBACK[name]
                        warnings[i].append(
                            f"{name}: unseen category {value!r} replaced by {FALLBACK[name]!r}"
                        )
                    else:
                        warnings[i].append(f"{name}: unseen category {value!r}")
        frame = pd.DataFrame.from_records(records, columns=COLUMNS).astype(DTYPES)
        return frame, warnings

    @bentoml.api(batchable=True, max_batch_size=128, max_latency_ms=1000)
    def predict(self, rows: list[Row]) -> list[Prediction]:
        """Predict each row; classifiers also return class probabilities keyed by class label."""
        if not rows:
            return []
        frame, warnings = self.frame(rows)
        labels = np.asarray(self.model.predict(frame)).tolist()
        if self.proba:
            proba = self.model.predict_proba(frame).tolist()
            return [
                Prediction(prediction=label, probabilities=dict(zip(self.classes, p)), warnings=w)
                for label, p, w in zip(labels, proba, warnings)
            ]
        return [Prediction(prediction=label, warnings=w) for label, w in zip(labels, warnings)]


# The first middleware added is the outermost: auth sees every request before the metadata route.
Previous.add_asgi_middleware(ApiKeyAuth)
Previous.add_asgi_middleware(MetadataRoute)
