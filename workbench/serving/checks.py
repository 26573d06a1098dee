"""Checks against a live server: health, metadata, a prediction, malformed requests, parity.

Each check sends what a real client would (httpx, BentoML's own client) and, when
``WORKBENCH_API_KEY`` is set here, the same bearer key the server then requires.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bentoml
import httpx
import numpy as np
import pandas as pd

from workbench.compilation import TOLERANCE
from workbench.errors import ServingError
from workbench.results import CheckResult
from workbench.runtime import API_KEY_ENV
from workbench.runtime.card import ModelCard
from workbench.runtime.settings import PREDICT_PATH
from workbench.schema import InputSchema

#: The served answers are compared with the in-memory scikit-learn model at the tolerance that
#: decided whether the compiled (ONNX) model may serve it.
PARITY_TOLERANCE = TOLERANCE
PARITY_CHUNK = 256


def auth_headers(key: str) -> dict[str, str]:
    """The bearer header for ``key`` (none for an empty key)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


@contextmanager
def client_for(url: str, key: str, *, timeout: float = 30) -> Iterator[bentoml.SyncHTTPClient]:
    """BentoML's own client, sending ``key`` as its bearer token; closed after use together with
    the ``bentoml-client-*`` folder it makes for uploads, which BentoML 1.4's ``close()`` leaves
    to the garbage collector (a kernel stopped before a collection left it in the temp folder)."""
    client = bentoml.SyncHTTPClient(url, token=key or None, timeout=timeout)
    try:
        yield client
    finally:
        client.close()
        uploads = getattr(client, "_temp_dir", None)
        if uploads is not None:
            uploads.cleanup()


def snippets(url: str, row: dict[str, Any], *, auth: bool) -> dict[str, str]:
    """Copy-ready calls of the service: curl and ``bentoml.SyncHTTPClient``.

    When the service requires a key both read it from ``$WORKBENCH_API_KEY`` (never written
    out). The curl line is shell-safe for any row value (each argument quoted with
    :func:`shlex.quote`; the key is expanded inside double quotes, so its value is never split
    or expanded again); the Python one writes the row as a literal (:func:`repr`).
    """
    body = json.dumps({"rows": [row]}, allow_nan=False)
    header = f' -H "Authorization: Bearer ${API_KEY_ENV}"' if auth else ""
    token = f", token=os.environ[{API_KEY_ENV!r}]" if auth else ""
    return {
        "curl": f"curl -s -X POST {shlex.quote(url + PREDICT_PATH)} "
        f"-H 'content-type: application/json'{header} \\\n     -d {shlex.quote(body)}",
        "python": ("import os\n\n" if auth else "") + "import bentoml\n\n"
        f"with bentoml.SyncHTTPClient({url!r}{token}) as client:\n"
        f"    answer = client.predict(rows=[{row!r}])\n"
        "print([row['prediction'] for row in answer])",
    }


def _bad_value(kind: str) -> Any:
    return {"boolean": "maybe", "category": 12345, "text": 12345, "integer": 1.5}.get(
        kind, "not-a-number"
    )


def bad_requests(url: str, row: dict[str, Any], schema: InputSchema, key: str) -> str:
    """Malformed requests must be 4xx: 400 with a ``detail`` naming the row and the field, 415
    for a body that is not JSON."""
    first = schema.columns[0]
    cases: dict[str, tuple[dict[str, Any], list[Any]]] = {
        "unparseable value": (
            {"rows": [{**row, first.name: _bad_value(first.kind)}]},
            ["rows", 0, first.name],
        ),
        "unknown field": ({"rows": [{**row, "__unknown__": 1}]}, ["rows", 0, "__unknown__"]),
        "no rows key": ({"data": [row]}, ["rows"]),
    }
    required = next((c.name for c in schema.columns if not c.nullable), None)
    if required is not None:
        missing = {k: v for k, v in row.items() if k != required}
        cases["missing field"] = ({"rows": [row, missing]}, ["rows", 1, required])
    number = next((c.name for c in schema.columns if c.kind == "number"), None)
    wrong = []
    headers = auth_headers(key)
    for name, (payload, loc) in cases.items():
        response = httpx.post(f"{url}/predict", json=payload, headers=headers, timeout=10)
        if response.status_code != 400:
            wrong.append(f"{name}: HTTP {response.status_code}")
        elif loc not in [d.get("loc") for d in response.json().get("detail", [])]:
            wrong.append(f"{name}: 400 without a detail at {loc}")
    if number is not None:
        text = json.dumps({"rows": [row]}).replace(json.dumps(row[number]), "Infinity", 1)
        infinite = httpx.post(
            f"{url}/predict",
            content=text.encode(),
            headers={**headers, "content-type": "application/json"},
            timeout=10,
        )
        if infinite.status_code != 400:
            wrong.append(f"infinite number: HTTP {infinite.status_code}")
    form = httpx.post(f"{url}/predict", data={"rows": "[]"}, headers=headers, timeout=10)
    if form.status_code != 415:
        wrong.append(f"form body: HTTP {form.status_code}, expected 415")
    if wrong:
        raise ServingError("malformed requests were not refused as expected: " + "; ".join(wrong))
    return (
        f"{len(cases) + (number is not None)} malformed bodies answered 400 naming the row and "
        "field; a form body 415"
    )


def run_check(name: str, fn: Any) -> CheckResult:
    try:
        detail = fn()
    except Exception as exc:  # each check reports its own failure
        return CheckResult(name=name, passed=False, detail=f"{type(exc).__name__}: {exc}")
    return CheckResult(name=name, passed=True, detail=str(detail))


def smoke_test(
    url: str, rows: list[dict[str, Any]], *, model_tag: str, key: str
) -> list[CheckResult]:
    """Health, readiness, metadata and one prediction request per given row."""

    def health(path: str) -> str:
        response = httpx.get(f"{url}{path}", timeout=10)
        response.raise_for_status()
        return f"HTTP {response.status_code}"

    def metadata() -> str:
        response = httpx.get(f"{url}/metadata", headers=auth_headers(key), timeout=10)
        response.raise_for_status()
        card = ModelCard.model_validate(response.json())
        if card.model_tag != model_tag:
            raise ServingError(f"metadata names model {card.model_tag}, expected {model_tag}")
        return f"model {card.model_tag}"

    def predict() -> str:
        with client_for(url, key) as client:
            answer = client.predict(rows=rows)
        return f"{len(rows)} rows -> {[a['prediction'] for a in answer]}"

    return [
        run_check("livez", lambda: health("/livez")),
        run_check("readyz", lambda: health("/readyz")),
        run_check("metadata", metadata),
        run_check("predict", predict),
    ]


def check_parity(
    url: str, model: Any, X: pd.DataFrame, schema: InputSchema, key: str
) -> list[dict[str, Any]]:
    """Send every row through the server; return the rows whose answer differs from in-process."""
    expected = np.asarray(model.predict(X)).tolist()
    has_proba = hasattr(model, "predict_proba") and hasattr(model, "classes_")
    expected_proba = model.predict_proba(X) if has_proba else None
    classes = [str(c) for c in np.asarray(getattr(model, "classes_", [])).tolist()]
    records = schema.to_records(X)
    mismatches: list[dict[str, Any]] = []
    with client_for(url, key, timeout=60) as client:
        for start in range(0, len(records), PARITY_CHUNK):
            answer = client.predict(rows=records[start : start + PARITY_CHUNK])
            for offset, row in enumerate(answer):
                i, served = start + offset, row["prediction"]
                problem = None
                if isinstance(served, float) or isinstance(expected[i], float):
                    if abs(float(served) - float(expected[i])) > PARITY_TOLERANCE:
                        problem = f"served {served!r}, in-process {expected[i]!r}"
                elif served != expected[i]:
                    problem = f"served {served!r}, in-process {expected[i]!r}"
                if problem is None and expected_proba is not None:
                    got = np.array([row["probabilities"][c] for c in classes])
                    diff = float(np.max(np.abs(got - expected_proba[i])))
                    if diff > PARITY_TOLERANCE:
                        problem = f"probabilities differ by {diff:.3g}"
                if problem:
                    mismatches.append({"row": i, "problem": problem})
    return mismatches


def representative_rows(X: pd.DataFrame, y: pd.Series, task: str) -> pd.DataFrame:
    """One row per class (classification) or the rows at the min, median and max target."""
    if task == "classification":
        picks = [int(np.flatnonzero(np.asarray(y) == label)[0]) for label in pd.unique(y)]
    else:
        order = np.argsort(np.asarray(y))
        picks = sorted({int(order[0]), int(order[len(order) // 2]), int(order[-1])})
    return X.iloc[picks]
