"""The OpenAPI document of the service generated for a schema, made in this process as a Bento
makes it, without building one: the generated ``service.py`` (rendered from the inferred schema,
the runtime beside it) imported, and its service object's ``openapi_spec`` read, which is what
``/docs.json`` answers and ``bentoml build`` writes into ``apis/openapi.yaml``."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd

from workbench.packaging.sources import (
    AUTH_DOC,
    TEMPLATE,
    class_name,
    label_type,
    row_fields,
    runtime_files,
)
from workbench.runtime.settings import CARD_FILE, SETTINGS_FILE, Settings
from workbench.schema import infer_schema

SERVICE = {
    "runtime": "sklearn",
    "max_batch_size": 64,
    "max_latency_ms": 1000,
    "max_queue_rows": 8192,
}


def schema_frame(kind: str, rows: int = 60) -> tuple[pd.DataFrame, str, list[Any] | None]:
    """Training inputs of one kind of schema: (features, task, classes)."""
    rng = np.random.default_rng(0)
    numbers = rng.normal(size=rows)
    if kind == "nullable":  # every column kind with gaps: Optional fields
        frame = pd.DataFrame(
            {
                "size cm": np.where(numbers > 1, np.nan, numbers),
                "count": pd.array(rng.integers(0, 9, rows), dtype="Int64").astype(float),
                "flag": [None if i % 7 == 0 else bool(i % 2) for i in range(rows)],
                "colour": [None if i % 5 == 0 else ["red", "blue"][i % 2] for i in range(rows)],
            }
        )
        frame.loc[3, "count"] = np.nan
        return frame, "classification", ["no", "yes"]
    if kind == "category":
        colours = rng.choice(["red", "green", "blue"], size=rows)
        return pd.DataFrame({"a": numbers, "colour": colours}), "classification", [0, 1]
    if kind == "text":
        notes = [f"note {i} about {w}" for i, w in enumerate(rng.choice(["x", "y"], rows))]
        return pd.DataFrame({"a": numbers, "note": notes}), "classification", [0, 1]
    if kind == "datetime":  # dates become numbers before training (their refusal says so)
        days = pd.date_range("2026-01-01", periods=rows, freq="D")
        frame = pd.DataFrame({"year": days.year, "month": days.month, "weekday": days.weekday})
        return frame, "regression", None
    if kind == "regression":
        return pd.DataFrame({"a": numbers, "b": numbers * 2}), "regression", None
    if kind == "multi-class":
        return (
            pd.DataFrame({"a": numbers, "n": rng.integers(0, 5, rows)}),
            "classification",
            [
                0,
                1,
                2,
            ],
        )
    raise AssertionError(kind)


def service_document(
    folder: Path, frame: pd.DataFrame, task: str, classes: list[Any] | None, **settings: Any
) -> dict[str, Any]:
    """The OpenAPI document of the service generated for ``frame``'s schema, as the Bento's
    service object makes it (``openapi_spec``), through JSON as served."""
    schema = infer_schema(frame)
    folder.mkdir()
    for path, text in runtime_files().items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    (folder / CARD_FILE).write_text(json.dumps({"model_tag": "m:1", "task": task}))
    packaged = Settings.model_validate(
        {
            "model_tag": "m:1",
            "task": task,
            "columns": schema.names,
            "dtypes": schema.request_dtypes(),
            "classes": classes,
            "probabilities": classes is not None,
            "categories": {c.name: c.categories for c in schema.columns if c.categories},
            **settings,
            "service": {**SERVICE, **settings.get("service", {})},
        }
    )
    (folder / SETTINGS_FILE).write_text(packaged.write())
    name = f"kind_{uuid.uuid4().hex[:8]}"
    source = Template(TEMPLATE.read_text()).substitute(
        name=name,
        class_name=class_name(name),
        label_type=label_type(task, classes),
        fields=row_fields(schema),
        auth_doc=AUTH_DOC[packaged.service.auth],
    )
    (folder / "service.py").write_text(source)
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, folder / "service.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
        for loaded in [m for m in sys.modules if m.split(".")[0] == "workbench_runtime"]:
            del sys.modules[loaded]  # the next service imports its own copy
    service = getattr(module, class_name(name))
    return json.loads(json.dumps(service.openapi_spec.asdict()))


def walk(node: Any, where: str = "") -> Any:
    """Every (location, dict) of a document."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{where}/{i}")
