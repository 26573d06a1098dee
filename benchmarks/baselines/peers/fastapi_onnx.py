"""Peer: a hand-written FastAPI service around onnxruntime, as its tutorials teach it.

A pydantic ``Row`` per request row, the reference forest's ONNX graph (``PEER_MODEL``) in one
onnxruntime session of one thread, labels and probabilities from one run, JSON answers of the
generated service's shape. Runs in the peers' environment (``make peers``):

    .venv/peers/bin/python -m uvicorn fastapi_onnx:app --host 127.0.0.1 --port 8124 \
        --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

COLUMNS = [f"f{i:02d}" for i in range(20)]
options = ort.SessionOptions()
options.intra_op_num_threads = 1
SESSION = ort.InferenceSession(
    os.environ["PEER_MODEL"], options, providers=["CPUExecutionProvider"]
)
INPUT = SESSION.get_inputs()[0]
DTYPE = np.float64 if "double" in INPUT.type else np.float32
CLASSES = os.environ.get("PEER_CLASSES", "0,1").split(",")


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    f00: float
    f01: float
    f02: float
    f03: float
    f04: float
    f05: float
    f06: float
    f07: float
    f08: float
    f09: float
    f10: float
    f11: float
    f12: float
    f13: float
    f14: float
    f15: float
    f16: float
    f17: float
    f18: float
    f19: float


class Request(BaseModel):
    rows: list[Row]


class Prediction(BaseModel):
    prediction: int
    probabilities: dict[str, float]
    warnings: list[str] = []


app = FastAPI()


@app.get("/readyz")
def ready() -> str:
    return "ok"


@app.post("/predict")
def predict(request: Request) -> list[Prediction]:
    X = np.array([[getattr(r, c) for c in COLUMNS] for r in request.rows], dtype=DTYPE)
    labels, proba = SESSION.run(None, {INPUT.name: X})
    return [
        Prediction(
            prediction=int(label), probabilities=dict(zip(CLASSES, map(float, p), strict=True))
        )
        for label, p in zip(labels, proba, strict=True)
    ]
