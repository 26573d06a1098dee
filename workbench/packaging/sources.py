"""The files generated for a Bento: ``service.py``, its ``settings.json`` (every setting of the
service, the runtime's :class:`~workbench.runtime.settings.Settings`), ``bentofile.yaml``, the
model card, the reference profile, and a copy of the runtime (``workbench_runtime/``). Pure
functions of their inputs, so the same inputs give the same bytes (and so the same
content-derived Bento version).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
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
from workbench.packaging.guide import render_readme
from workbench.packaging.image import docker_options, image_files
from workbench.packaging.observability import observability_files
from workbench.packaging.plan import ServingPlan
from workbench.packaging.requirements import ModelNeeds
from workbench.results import ValidationResult
from workbench.runtime.card import ModelCard, RuntimeCard
from workbench.runtime.columns import COLUMN_KINDS, number_bound
from workbench.runtime.explainer import BACKGROUND_FILE, ExplanationSpec
from workbench.runtime.settings import (
    API_KEY_ENV,
    CARD_FILE,
    DRIFT_REFERENCE_FILE,
    ONNX_FILE,
    PREDICTION_COLUMN,
    PREDICTION_REFERENCE_FILE,
    README_FILE,
    SETTINGS_FILE,
    PackagedService,
    Settings,
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
WARM_UP_TEXT = "workbench warm-up text"
"""The warm-up row's value for a text column: synthesised, never a training value."""


def class_name(name: str) -> str:
    """``breast_cancer`` -> ``BreastCancer`` (the service class)."""
    parts = [p for p in name.replace("-", "_").replace(".", "_").split("_") if p]
    ident = "".join(p[:1].upper() + p[1:] for p in parts) or "Service"
    return ident if ident[0].isalpha() else f"Service{ident}"


def _field_line(column: Column, ident: str) -> str:
    py = COLUMN_KINDS[column.kind].type_name
    annotation = f"Optional[{py}]" if column.nullable else py
    default = "None, " if column.nullable else ""
    bound = number_bound(column.min, column.max) if column.kind == "number" else None
    limits = f", ge={-bound:.0e}, le={bound:.0e}" if bound is not None else ""
    return f"    {ident}: {annotation} = Field({default}alias={column.name!r}{limits})"


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


def label_type(task: str, classes: list[Any] | None) -> str:
    """The generated ``Prediction.prediction``'s type(s): a regressor's float, or the Python
    types of the classifier's class labels."""
    if task == "regression" or not classes:
        return "float"
    kinds = {type(c).__name__ for c in classes}
    return ", ".join(sorted(kinds & {"int", "str", "bool", "float"})) or "str"


def row_fields(schema: InputSchema) -> str:
    """The generated ``Row`` model's field lines: one per column, typed by its kind
    (``Optional`` when nullable), aliased to its training name."""
    fields = schema.fields()
    return "\n".join(_field_line(c, fields[c.name]) for c in schema.columns)


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
    needs: ModelNeeds = field(default_factory=ModelNeeds)
    """Distributions and project modules the model needs beyond scikit-learn."""
    explanation: ExplanationSpec | None = None
    """How ``/explain`` explains a row (``service.explain: true``), checked on test rows."""
    background: str | None = None
    """The ``permutation`` method's background rows, as :data:`BACKGROUND_FILE` holds them."""

    @property
    def loads_pickle(self) -> bool:
        """Whether the Bento unpickles the model: scikit-learn serves it, or ``/explain``
        explains it (an ONNX-served Bento that does not explain never does)."""
        return self.compiled.runtime != "onnx" or self.explanation is not None


def render_service(spec: ServiceSpec, config: Config) -> str:
    """The generated ``service.py`` source: the model's row type; every setting is in
    ``settings.json`` (:func:`service_settings`)."""
    validation = spec.validation
    return Template(TEMPLATE.read_text()).substitute(
        name=spec.name,
        class_name=class_name(spec.name),
        label_type=label_type(validation.task, validation.classes),
        fields=row_fields(validation.input_schema),
        auth_doc=AUTH_DOC[config.service.auth],
    )


def service_settings(spec: ServiceSpec, config: Config) -> Settings:
    """Everything the service reads at start (``settings.json``): ``service:`` and ``monitor:``
    of ``workbench.yaml`` with what packaging decided (what serves the model, the batch
    limits), and what the validated schema and the model say."""
    v = spec.validation
    schema = v.input_schema
    for metric in config.monitor.gates:
        if metric not in METRICS[v.task]:
            raise PackagingError(
                f"monitor.gates: {metric!r} is not a {v.task} metric; live metrics of "
                f"a {v.task} model are {', '.join(METRICS[v.task])}. Change it "
                "in workbench.yaml"
            )
    service = PackagedService.model_validate(
        {
            **config.service.model_dump(),
            "runtime": spec.compiled.runtime,
            "max_batch_size": spec.plan.max_batch_size,
            "max_latency_ms": spec.plan.max_latency_ms,
            "max_queue_rows": spec.plan.max_queue_rows,
        }
    )
    return Settings.model_validate(
        dict(
            model_tag=spec.model_tag,
            task=v.task,
            columns=schema.names,
            dtypes=schema.request_dtypes(),
            model_sha256=spec.model_sha256,
            onnx_sha256=onnx_sha256(spec.compiled),
            classes=v.classes,
            probabilities=spec.probabilities,
            categories={
                c.name: c.categories
                for c in schema.columns
                if c.kind == "category" and c.categories
            },
            fallback=spec.fallback,
            unseen_policy=spec.policy,
            float_rows=spec.plan.float_rows,
            frame_input=spec.plan.frame_input,
            labels_from_proba=spec.plan.labels_from_proba,
            example=example_row(schema, spec.fallback),
            service=service,
            monitor=config.monitor,
            explanation=spec.explanation,
        )
    )


def render_bentofile(
    name: str, packages: list[str], *, onnx: bool, code: Iterable[str] = ()
) -> str:
    """The ``bentofile.yaml``: pinned packages, no lock against the live package index."""
    return yaml.safe_dump(
        {
            "service": f"service:{class_name(name)}",
            "name": name,
            # The Bento's README, the text of `/` and the OpenAPI description (packaging/guide.py)
            "description": f"file:./{README_FILE}",
            "include": [
                "service.py",
                SETTINGS_FILE,
                f"{RUNTIME_PACKAGE}/**/*.py",
                CARD_FILE,
                "reference_profile.json",
                DRIFT_REFERENCE_FILE,
                PREDICTION_REFERENCE_FILE,
                "deploy/*",
                *([ONNX_FILE] if onnx else []),
                *sorted(code),
            ],
            "labels": {"generated-by": "workbench"},
            "python": {"packages": packages, "lock_packages": False},
            "docker": docker_options(),  # the two-stage, pinned image (packaging/image.py)
        },
        sort_keys=False,
    )


def model_card(spec: ServiceSpec, config: Config, packages: list[str]) -> ModelCard:
    """What the Bento says about itself (``GET /metadata``); deterministic for its inputs."""
    v = spec.validation
    return ModelCard(
        name=spec.name,
        model_tag=spec.model_tag,
        task=v.task,
        target=v.target,
        classes=v.classes,
        input_schema=v.input_schema,
        unseen_categories=spec.policy,
        serving=spec.plan.card(config.service),
        runtime=RuntimeCard(**spec.compiled.card(), onnx_sha256=onnx_sha256(spec.compiled) or None),
        metrics=v.metrics,
        gates=[g.model_dump(mode="json") for g in v.gates],
        passed=v.passed,
        inputs_sha256=v.inputs,
        packages=packages,
        auth=AUTH_DOC[config.service.auth].replace("\n", " "),
        model_sha256=spec.model_sha256,
        monitor=config.monitor.model_dump(mode="json"),
        model_needs=spec.needs.card(installed=spec.loads_pickle),
        explanation=None if spec.explanation is None else spec.explanation.card(),
    )


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
    """The runtime's modules as they go into the Bento (``workbench_runtime/<module>.py``, its
    subpackages' beside them)."""
    folder = Path(runtime.__file__).parent
    return {
        f"{RUNTIME_PACKAGE}/{path.relative_to(folder).as_posix()}": path.read_text()
        for path in sorted(folder.rglob("*.py"))
    }


def service_files(spec: ServiceSpec, config: Config, packages: list[str]) -> dict[str, str]:
    """``bentos/<name>/`` as relative path -> text (without the Kubernetes manifests)."""
    extra = {BACKGROUND_FILE: spec.background} if spec.background is not None else {}
    settings = service_settings(spec, config)
    return {
        **extra,
        "service.py": render_service(spec, config),
        SETTINGS_FILE: settings.write(),
        # Prometheus rules, scrape config, Grafana dashboard (deploy/; packaging/observability.py)
        **observability_files(spec.name, settings),
        **runtime_files(),
        **{path: source.read_text(encoding="utf-8") for path, source in spec.needs.code.items()},
        "bentofile.yaml": render_bentofile(
            spec.name,
            packages,
            onnx=spec.compiled.runtime == "onnx",
            code=[*spec.needs.code, *extra],
        ),
        CARD_FILE: model_card(spec, config, packages).write(),
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
