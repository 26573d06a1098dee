"""The files generated for a Bento: ``service.py``, ``bentofile.yaml``, the model card, the
reference profile, and a copy of the runtime (``workbench_runtime/``). Pure functions of their
inputs, so the same inputs give the same bytes (and so the same content-derived Bento version).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd
import yaml

from workbench import runtime
from workbench.compilation import CompiledModel
from workbench.config import METRICS, Config
from workbench.errors import PackagingError
from workbench.packaging.guide import README_FILE, render_readme
from workbench.packaging.image import docker_options, image_files
from workbench.packaging.plan import ServingPlan, max_body_bytes
from workbench.results import ValidationResult
from workbench.runtime.drift import DriftOptions
from workbench.runtime.settings import (
    API_KEY_ENV,
    DRIFT_REFERENCE_FILE,
    ONNX_FILE,
    PREDICT_PATH,
    PREDICTION_COLUMN,
    PREDICTION_REFERENCE_FILE,
)
from workbench.runtime.sketch import REFERENCE_FORMAT, count_values, finite_numbers, numeric_summary
from workbench.schema import Column, InputSchema

UNSEEN = "__workbench_unseen_category__"
REFERENCE_QUANTILES = 1000
TEMPLATE = Path(__file__).with_name("service.py.tmpl")
AUTH_DOC = {
    "api_key": f"`Authorization: Bearer <key>`, the key from {API_KEY_ENV} where it runs;\n"
    "without one it refuses to start (service.auth: api_key).",
    "none": "none (service.auth: none): every route is open.",
}
RUNTIME_PACKAGE = "workbench_runtime"
"""The name the runtime has inside a Bento (beside ``service.py``)."""
#: The runtime's row value types (``workbench_runtime.fields``), by column kind.
_PY_TYPES = {
    "number": "Number",
    "integer": "Integer",
    "boolean": "Boolean",
    "category": "Category",
    "text": "Text",
}
WARM_UP_TEXT = "workbench warm-up text"
"""The warm-up row's value for a text column: synthesised, never a training value."""


def class_name(name: str) -> str:
    """``breast_cancer`` -> ``BreastCancer`` (the service class)."""
    parts = [p for p in name.replace("-", "_").replace(".", "_").split("_") if p]
    ident = "".join(p[:1].upper() + p[1:] for p in parts) or "Service"
    return ident if ident[0].isalpha() else f"Service{ident}"


def _field_line(column: Column, ident: str) -> str:
    py = _PY_TYPES[column.kind]
    annotation = f"Optional[{py}]" if column.nullable else py
    default = "None, " if column.nullable else ""
    return f"    {ident}: {annotation} = Field({default}alias={column.name!r})"


def unseen_policy(model: Any, train: pd.DataFrame, schema: InputSchema) -> str:
    """``accept`` when the model predicts on an unseen category itself, else ``replace``.

    Measured, not guessed from the estimator's parameters: one training row with every category
    column set to a value the model never saw is sent through ``predict``.
    """
    categorical = [c.name for c in schema.columns if c.kind == "category"]
    if not categorical:
        return "accept"
    row = train[schema.names].head(1).copy()
    for name in categorical:
        row[name] = row[name].astype(object)
        row.loc[row.index[0], name] = UNSEEN
    try:
        model.predict(row)
    except Exception:  # any estimator refusing the value counts as "cannot handle it"
        return "replace"
    return "accept"


def fallbacks(train: pd.DataFrame, schema: InputSchema) -> dict[str, str]:
    """Most frequent training value of each category column (replaces an unseen one)."""
    out = {}
    for col in schema.columns:
        if col.kind == "category" and col.categories:
            counts = train[col.name].dropna().astype(str).value_counts()
            out[col.name] = str(counts.index[0]) if len(counts) else col.categories[0]
    return out


def _label_type(validation: ValidationResult) -> str:
    if validation.task == "regression" or not validation.classes:
        return "float"
    kinds = {type(c).__name__ for c in validation.classes}
    return ", ".join(sorted(kinds & {"int", "str", "bool", "float"})) or "str"


def example_row(schema: InputSchema, fallback: dict[str, str]) -> dict[str, Any]:
    """A synthetic row for the service's warm-up call, from the schema alone (no training data
    but the most frequent value of a category column, whose values the service lists anyway;
    a text column gets :data:`WARM_UP_TEXT`)."""
    row: dict[str, Any] = {}
    for col in schema.columns:
        if col.kind == "text":
            value: Any = WARM_UP_TEXT
        elif col.kind == "category":
            value = fallback.get(col.name) or (col.categories[0] if col.categories else None)
        elif col.kind == "boolean":
            value = False
        elif col.min is not None and col.max is not None:
            middle = (col.min + col.max) / 2
            value = float(f"{middle:.6g}") if col.kind == "number" else int(math.floor(middle))
        else:
            value = 0.0 if col.kind == "number" else 0
        if value is None and not col.nullable:
            value = ""
        row[col.name] = value
    return row


def check_warm_up(model: Any, schema: InputSchema, row: dict[str, Any]) -> None:
    """The service's warm-up row must predict: ``/readyz`` stays 503 until it has."""
    frame = pd.DataFrame([row], columns=schema.names).astype(schema.request_dtypes())
    try:
        model.predict(frame)
    except Exception as exc:
        raise PackagingError(
            f"the model refuses the service's synthetic warm-up row {row} "
            f"({type(exc).__name__}: {exc}); the Bento would never be ready. Check the input "
            "schema in validation.json matches what the model takes"
        ) from exc


@dataclass(frozen=True)
class ServiceSpec:
    """Everything the generated service depends on (its content decides the Bento version)."""

    name: str
    model_tag: str
    model_sha256: str
    """sha256 of the stored model's pickle: the service refuses to start on other bytes."""
    compiled: CompiledModel
    """What serves the model (scikit-learn or an ONNX graph) and why."""
    probabilities: bool
    """The model has ``predict_proba``."""
    validation: ValidationResult
    policy: str
    fallback: dict[str, str]
    plan: ServingPlan


def render_service(spec: ServiceSpec, config: Config) -> str:
    """The generated ``service.py`` source."""
    schema = spec.validation.input_schema
    fields = schema.fields()
    cors = (
        {
            "enabled": True,
            "access_control_allow_origins": config.service.cors_origins,
            "access_control_allow_methods": ["GET", "POST", "OPTIONS"],
            "access_control_allow_headers": ["Authorization", "Content-Type"],
            "access_control_expose_headers": ["Retry-After", "WWW-Authenticate"],
        }
        if config.service.cors_origins
        else {"enabled": False}
    )
    return Template(TEMPLATE.read_text()).substitute(
        name=spec.name,
        class_name=class_name(spec.name),
        model_tag=spec.model_tag,
        task=spec.validation.task,
        columns=repr(schema.names),
        dtypes=repr(schema.request_dtypes()),
        categories=repr(
            {c.name: c.categories for c in schema.columns if c.kind == "category" and c.categories}
        ),
        fallback=repr(spec.fallback),
        unseen_policy=spec.policy,
        label_type=_label_type(spec.validation),
        fields="\n".join(_field_line(c, fields[c.name]) for c in schema.columns),
        workers=config.service.workers,
        timeout=config.service.timeout,
        max_batch_size=spec.plan.max_batch_size,
        max_latency_ms=spec.plan.max_latency_ms,
        max_queue_rows=spec.plan.max_queue_rows,
        max_body_bytes=max_body_bytes(config.service),
        max_request_rows=config.service.max_request_rows,
        model_sha256=spec.model_sha256,
        runtime=spec.compiled.runtime,
        onnx_sha256=onnx_sha256(spec.compiled),
        classes=repr(spec.validation.classes),
        probabilities=spec.probabilities,
        auth=config.service.auth,
        auth_doc=AUTH_DOC[config.service.auth],
        float_rows=spec.plan.float_rows,
        frame_input=spec.plan.frame_input,
        labels_from_proba=spec.plan.labels_from_proba,
        example=repr(example_row(schema, spec.fallback)),
        cors=repr(cors),
        cors_origins=repr(list(config.service.cors_origins)),
        access_log=config.service.access_log,
        tracing=repr({} if config.service.tracing else {"excluded_urls": [PREDICT_PATH]}),
    )


def monitor_settings(config: Config, validation: ValidationResult) -> dict[str, Any]:
    """The monitoring settings of the service (``monitor:`` in workbench.yaml), as
    :class:`~workbench.runtime.settings.Settings` fields; the model card's ``monitor`` section,
    which the runtime reads at start."""
    monitor = config.monitor
    drift: dict[str, float] = {}
    if monitor.min_window_rows != DriftOptions.min_window_rows:
        drift["min_window_rows"] = monitor.min_window_rows
    if monitor.drift_share != DriftOptions.drift_share:
        drift["drift_share"] = monitor.drift_share
    for metric in monitor.gates:
        if metric not in METRICS[validation.task]:
            raise PackagingError(
                f"monitor.gates: {metric!r} is not a {validation.task} metric; live metrics of "
                f"a {validation.task} model are {', '.join(METRICS[validation.task])}. Change it "
                "in workbench.yaml"
            )
    gates = {metric: gate.model_dump(exclude_none=True) for metric, gate in monitor.gates.items()}
    return {
        "workers": config.service.workers,
        "monitor_window_rows": monitor.window_rows,
        "monitor_refresh_s": float(monitor.refresh_seconds),
        "monitor_min_labelled_rows": monitor.min_labelled_rows,
        "monitor_capture_file_bytes": int(monitor.capture_file_mb * (1 << 20)),
        "monitor_capture_total_bytes": int(monitor.capture_total_mb * (1 << 20)),
        "monitor_gates": gates,
        "monitor_drift": drift,
    }


def render_bentofile(name: str, packages: list[str], *, onnx: bool) -> str:
    """The ``bentofile.yaml``: pinned packages, no lock against the live package index."""
    return yaml.safe_dump(
        {
            "service": f"service:{class_name(name)}",
            "name": name,
            # The Bento's README, the text of `/` and the OpenAPI description (packaging/guide.py)
            "description": f"file:./{README_FILE}",
            "include": [
                "service.py",
                f"{RUNTIME_PACKAGE}/*.py",
                "model_card.json",
                "reference_profile.json",
                DRIFT_REFERENCE_FILE,
                PREDICTION_REFERENCE_FILE,
                "deploy/*",
                *([ONNX_FILE] if onnx else []),
            ],
            "labels": {"generated-by": "workbench"},
            "python": {"packages": packages, "lock_packages": False},
            "docker": docker_options(),  # the two-stage, pinned image (packaging/image.py)
        },
        sort_keys=False,
    )


def model_card(spec: ServiceSpec, config: Config, packages: list[str]) -> dict[str, Any]:
    """What the Bento says about itself (``GET /metadata``); deterministic for its inputs."""
    v = spec.validation
    return {
        "name": spec.name,
        "model_tag": spec.model_tag,
        "task": v.task,
        "target": v.target,
        "classes": v.classes,
        "input_schema": v.input_schema.model_dump(mode="json"),
        "unseen_categories": spec.policy,
        "serving": spec.plan.card(config.service),
        "runtime": {**spec.compiled.card(), "onnx_sha256": onnx_sha256(spec.compiled) or None},
        "metrics": v.metrics,
        "gates": [g.model_dump(mode="json") for g in v.gates],
        "passed": v.passed,
        "inputs_sha256": v.inputs,
        "packages": packages,
        "auth": AUTH_DOC[config.service.auth].replace("\n", " "),
        "model_sha256": spec.model_sha256,
        "monitor": monitor_settings(config, v),
    }


def prediction_reference(model: Any, X_test: pd.DataFrame, task: str) -> str:
    """The model's predictions on the test rows as a one-column drift reference (JSON): what
    ``GET /monitor`` compares the live predictions with (class counts, or a quantile sketch of
    predicted values)."""
    predicted = pd.Series(np.asarray(model.predict(X_test)))
    rows = len(predicted)
    if task == "regression":
        values = finite_numbers(predicted.astype(float))
        column: dict[str, Any] = {
            "kind": "number",
            "rows": rows,
            "missing": rows - len(values),
            "missing_share": (rows - len(values)) / rows if rows else 0.0,
            "sketch": numeric_summary(values, REFERENCE_QUANTILES),
        }
    else:
        counts = count_values("category", predicted)
        column = {
            "kind": "category",
            "rows": rows,
            "missing": 0,
            "missing_share": 0.0,
            "counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    reference = {
        "format": REFERENCE_FORMAT,
        "rows": rows,
        "quantiles": REFERENCE_QUANTILES,
        "columns": {PREDICTION_COLUMN: column},
    }
    return json.dumps(reference) + "\n"


def onnx_sha256(compiled: CompiledModel) -> str:
    """sha256 of the graph the Bento ships as ``model.onnx`` (empty when scikit-learn serves)."""
    if compiled.onnx_bytes is None:
        return ""
    return hashlib.sha256(compiled.onnx_bytes).hexdigest()


def runtime_files() -> dict[str, str]:
    """The runtime's modules as they go into the Bento (``workbench_runtime/<module>.py``)."""
    folder = Path(runtime.__file__).parent
    return {
        f"{RUNTIME_PACKAGE}/{path.name}": path.read_text() for path in sorted(folder.glob("*.py"))
    }


def service_files(spec: ServiceSpec, config: Config, packages: list[str]) -> dict[str, str]:
    """``bentos/<name>/`` as relative path -> text (without the Kubernetes manifests)."""
    return {
        "service.py": render_service(spec, config),
        **runtime_files(),
        "bentofile.yaml": render_bentofile(
            spec.name, packages, onnx=spec.compiled.runtime == "onnx"
        ),
        "model_card.json": json.dumps(model_card(spec, config, packages), indent=2) + "\n",
        **image_files(),
        README_FILE: render_readme(
            config,
            model_tag=spec.model_tag,
            task=spec.validation.task,
            runtime=spec.compiled.runtime,
        ),
        # The training-input profile (quantile bins, category shares) for drift checks later.
        "reference_profile.json": (
            spec.validation.profile.model_dump_json(indent=2) + "\n"
            if spec.validation.profile is not None
            else "null\n"
        ),
    }
