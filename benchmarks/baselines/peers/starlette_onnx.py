"""Peer: the least a JSON model service can be, Starlette + orjson + onnxruntime.

No per-row model: the body is parsed by orjson, each row's values taken in column order into one
array (a missing or non-numeric value is a 400), the reference forest's ONNX graph
(``PEER_MODEL``) run in one onnxruntime session of one thread, the answer written by orjson.
Runs in the peers' environment (``make peers``):

    .venv/peers/bin/python -m uvicorn starlette_onnx:app --host 127.0.0.1 --port 8125 \
        --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

COLUMNS = [f"f{i:02d}" for i in range(20)]
options = ort.SessionOptions()
options.intra_op_num_threads = 1
SESSION = ort.InferenceSession(
    os.environ["PEER_MODEL"], options, providers=["CPUExecutionProvider"]
)
INPUT = SESSION.get_inputs()[0]
DTYPE = np.float64 if "double" in INPUT.type else np.float32
CLASSES = os.environ.get("PEER_CLASSES", "0,1").split(",")


async def predict(request: Request) -> Response:
    try:
        rows = orjson.loads(await request.body())["rows"]
        X = np.array([[row[c] for c in COLUMNS] for row in rows], dtype=DTYPE)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return Response(orjson.dumps({"error": str(exc)}), 400, media_type="application/json")
    labels, proba = SESSION.run(None, {INPUT.name: X})
    answer = [
        {
            "prediction": int(label),
            "probabilities": dict(zip(CLASSES, p.tolist(), strict=True)),
            "warnings": [],
        }
        for label, p in zip(labels, proba, strict=True)
    ]
    return Response(orjson.dumps(answer), media_type="application/json")


async def ready(_: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])
