"""The files generated for a Bento: ``service.py``, ``bentofile.yaml``, the model card, and the
Kubernetes manifests. Pure functions of their inputs, so the same inputs give the same bytes (and
so the same content-derived Bento version).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any

import pandas as pd
import yaml

from workbench.config import Config, ServiceOptions
from workbench.reports import ValidationResult
from workbench.schema import Column, InputSchema

API_KEY_ENV = "WORKBENCH_API_KEY"
"""Set this where the Bento runs to require ``Authorization: Bearer <key>`` on every API route."""
UNSEEN = "__workbench_unseen_category__"
HTTP_PORT = 3000
PREDICT_PATH = "/predict"
#: Adaptive batching: the largest batch worth having is where the model's fixed cost per call is at
#: most a tenth of the call (``9 x fixed / per row`` rows), and no larger than what one call can
#: answer in :data:`BATCH_BUDGET_S`. Rounded to a power of 4 between 1 and :data:`MAX_BATCH_ROWS`:
#: coarse steps keep the choice (and so the Bento version) the same from one packaging to the next,
#: as measured times vary by a few tens of percent.
BATCH_BUDGET_S = 0.1
MAX_BATCH_ROWS = 1024
MIN_QUEUE_MS = 1000
_PY_TYPES = {"number": "float", "integer": "int", "boolean": "bool", "category": "str"}


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


def request_dtypes(schema: InputSchema) -> dict[str, str]:
    """The dtype each request column is cast to, so the model sees what it saw in training."""
    out = {}
    for col in schema.columns:
        if col.kind == "category":
            out[col.name] = "category" if col.dtype == "category" else "object"
        elif col.kind == "boolean":
            out[col.name] = "object" if col.nullable else "bool"
        elif col.nullable:
            out[col.name] = "float64"  # NaN has no integer form
        else:
            out[col.name] = col.dtype
    return out


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


@dataclass(frozen=True)
class CallCost:
    """What one model call costs, measured at packaging time: ``fixed_s + per_row_s * rows``."""

    fixed_s: float
    per_row_s: float

    def seconds(self, rows: int) -> float:
        return self.fixed_s + self.per_row_s * rows


@dataclass(frozen=True)
class ServingPlan:
    """How the generated service feeds the model; written into ``service.py`` and the model card.

    Only decisions go into the generated files, never the measured times themselves (they vary
    from run to run and would change the content-derived Bento version).
    """

    max_batch_size: int
    max_latency_ms: int
    float_rows: bool
    frame_input: bool
    labels_from_proba: bool
    reasons: dict[str, str] = field(default_factory=dict)

    def card(self, options: ServiceOptions) -> dict[str, Any]:
        return {
            "max_batch_size": self.max_batch_size,
            "max_latency_ms": self.max_latency_ms,
            "rows": "one float array per batch" if self.float_rows else "records cast per batch",
            "model_input": "DataFrame" if self.frame_input else "array",
            "labels": "argmax of predict_proba" if self.labels_from_proba else "predict",
            "workers": options.workers,
            "access_log": options.access_log,
            "tracing": options.tracing,
            "why": dict(sorted(self.reasons.items())),
        }


#: Stand-ins when the model's cost cannot be measured at packaging time.
UNMEASURED = CallCost(fixed_s=0.01, per_row_s=0.001)
UNMEASURED_BATCH = 64


def _power_of_4(value: float, *, up: bool) -> int:
    if not math.isfinite(value) or value >= MAX_BATCH_ROWS:
        return MAX_BATCH_ROWS
    if value <= 1:
        return 1
    exponent = math.log(value, 4)
    return int(4 ** (math.ceil(exponent) if up else math.floor(exponent)))


def float_rows(schema: InputSchema) -> bool:
    """Every request column is cast to float64, so a batch can be one float array."""
    return all(dtype == "float64" for dtype in request_dtypes(schema).values())


def labels_from_proba(model: Any) -> bool:
    """True when the model's ``predict`` is, in its source, ``classes_[argmax(predict_proba)]``.

    Then one ``predict_proba`` call gives both answers, exactly. Decided from the code the model
    runs, not from a sample: scikit-learn's forests (``RandomForestClassifier``,
    ``ExtraTreesClassifier``) with one output, alone or as the last step of a ``Pipeline`` (whose
    ``predict`` and ``predict_proba`` apply the same transforms). Anything else is asked twice.
    """
    from sklearn.ensemble._forest import ForestClassifier
    from sklearn.pipeline import Pipeline

    final = model
    if isinstance(model, Pipeline):
        if type(model) is not Pipeline:  # a subclass may predict its own way
            return False
        final = model.steps[-1][1]
    return (
        isinstance(final, ForestClassifier)
        and type(final).predict is ForestClassifier.predict
        and getattr(final, "n_outputs_", None) == 1
    )


def frame_input_needed(model: Any) -> bool:
    """Whether the model gets a DataFrame (with the training column names) or a plain array.

    A scikit-learn estimator fitted on a DataFrame records ``feature_names_in_`` and warns when
    given an array, so it gets a DataFrame; one fitted on an array gets the array. Anything not
    from scikit-learn gets a DataFrame, as it did in training.
    """
    from sklearn.pipeline import Pipeline

    parts = [model, *(step for _, step in model.steps)] if isinstance(model, Pipeline) else [model]
    from_sklearn = all(
        step == "passthrough" or step is None or type(step).__module__.startswith("sklearn.")
        for step in parts
    )
    return hasattr(model, "feature_names_in_") or not from_sklearn


def plan_serving(
    model: Any, schema: InputSchema, options: ServiceOptions, cost: CallCost | None
) -> ServingPlan:
    """Batching limits from the measured cost (unless the config sets them) and the input path.

    ``cost`` is None when it could not be measured: then :data:`UNMEASURED` stands in for it.
    """
    reasons = {}
    if options.max_batch_size is not None:
        batch = options.max_batch_size
        reasons["max_batch_size"] = "set in workbench.yaml (service.max_batch_size)"
    elif cost is None:
        batch = UNMEASURED_BATCH
        reasons["max_batch_size"] = "the model's cost could not be measured on training rows"
    else:
        per_row = max(cost.per_row_s, 1e-9)
        amortized = _power_of_4(9 * cost.fixed_s / per_row, up=True)
        budget = _power_of_4((BATCH_BUDGET_S - cost.fixed_s) / per_row, up=False)
        batch = min(amortized, budget)
        budget_ms = f"{BATCH_BUDGET_S * 1000:.0f} ms"
        if batch == MAX_BATCH_ROWS:
            why = f"{batch} rows (the cap) answer within {budget_ms} in one call"
        elif amortized <= budget:
            why = f"at {batch} rows the fixed cost of a call is at most a tenth of it"
        else:
            why = f"{batch} rows is the most one call answers within {budget_ms}"
        reasons["max_batch_size"] = f"measured at packaging (powers of 4): {why}"
    if options.max_latency_ms is not None:
        latency = options.max_latency_ms
        reasons["max_latency_ms"] = "set in workbench.yaml (service.max_latency_ms)"
    else:
        full_batch_ms = 10 * (cost or UNMEASURED).seconds(batch) * 1000
        latency = MIN_QUEUE_MS
        while latency < full_batch_ms and latency < options.timeout * 1000:
            latency *= 2
        reasons["max_latency_ms"] = (
            f"a queued request is answered 503 after {latency} ms: at least {MIN_QUEUE_MS} ms "
            "and ten full-batch calls (doubling steps), at most the request timeout"
        )
    frame_input = frame_input_needed(model)
    from_proba = labels_from_proba(model)
    floats = float_rows(schema)
    reasons["rows"] = (
        "all columns are float64: the rows of a batch become one float array"
        if floats
        else "some columns are integer, boolean or category: records are cast to training dtypes"
    )
    reasons["labels"] = (
        "the model's predict is argmax of predict_proba: one call answers both"
        if from_proba
        else "predict and predict_proba are separate calls"
    )
    return ServingPlan(
        max_batch_size=batch,
        max_latency_ms=latency,
        float_rows=floats,
        frame_input=frame_input,
        labels_from_proba=from_proba,
        reasons=reasons,
    )


def example_row(schema: InputSchema, fallback: dict[str, str]) -> dict[str, Any]:
    """A synthetic row for the service's warm-up call, from the schema alone (no training data)."""
    row: dict[str, Any] = {}
    for col in schema.columns:
        if col.kind == "category":
            value: Any = fallback.get(col.name) or (col.categories[0] if col.categories else None)
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


@dataclass(frozen=True)
class ServiceSpec:
    """Everything the generated service depends on (its content decides the Bento version)."""

    name: str
    model_tag: str
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
        }
        if config.service.cors_origins
        else {"enabled": False}
    )
    template = Template(
        resources.files("workbench").joinpath("templates/service.py.tmpl").read_text()
    )
    return template.substitute(
        name=spec.name,
        class_name=class_name(spec.name),
        model_tag=spec.model_tag,
        task=spec.validation.task,
        columns=repr(schema.names),
        dtypes=repr(request_dtypes(schema)),
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
        float_rows=spec.plan.float_rows,
        frame_input=spec.plan.frame_input,
        labels_from_proba=spec.plan.labels_from_proba,
        example=repr(example_row(schema, spec.fallback)),
        cors=repr(cors),
        cors_origins=repr(list(config.service.cors_origins)),
        access_log=config.service.access_log,
        tracing=repr({} if config.service.tracing else {"excluded_urls": [PREDICT_PATH]}),
        api_key_env=API_KEY_ENV,
    )


def render_bentofile(name: str, packages: list[str]) -> str:
    """The ``bentofile.yaml``: pinned packages, no lock against the live package index."""
    return yaml.safe_dump(
        {
            "service": f"service:{class_name(name)}",
            "name": name,
            "include": ["service.py", "model_card.json", "reference_profile.json", "deploy/*"],
            "labels": {"generated-by": "workbench"},
            "python": {"packages": packages, "lock_packages": False},
            "docker": {"python_version": f"{sys.version_info.major}.{sys.version_info.minor}"},
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
        "metrics": v.metrics,
        "gates": [g.model_dump(mode="json") for g in v.gates],
        "passed": v.passed,
        "inputs_sha256": v.inputs,
        "packages": packages,
        "auth": f"set {API_KEY_ENV} to require 'Authorization: Bearer <key>'",
    }


def render_kubernetes(name: str, bento_version: str, config: Config) -> str:
    """Deployment (probes on the health endpoints), Service and HorizontalPodAutoscaler.

    The image is the one ``bentoml containerize <name>:<version>`` tags; the API key, if any,
    comes from a Secret the cluster owner creates (never from this file).
    """
    k8s_name = name.replace("_", "-").replace(".", "-")
    labels = {"app.kubernetes.io/name": k8s_name, "app.kubernetes.io/version": bento_version}
    cpu = str(config.service.workers)
    probe = {"httpGet": {"path": "/livez", "port": "http"}, "periodSeconds": 10}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": k8s_name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": k8s_name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": k8s_name,
                            "image": f"{name}:{bento_version}",
                            "ports": [{"name": "http", "containerPort": HTTP_PORT}],
                            "env": [
                                {
                                    "name": API_KEY_ENV,
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": f"{k8s_name}-api-key",
                                            "key": "key",
                                            "optional": True,
                                        }
                                    },
                                }
                            ],
                            "resources": {
                                "requests": {"cpu": cpu, "memory": "512Mi"},
                                "limits": {"memory": "2Gi"},
                            },
                            "startupProbe": {**probe, "failureThreshold": 30},
                            "livenessProbe": probe,
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 5,
                            },
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": k8s_name, "labels": labels},
        "spec": {
            "selector": {"app.kubernetes.io/name": k8s_name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": k8s_name, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": k8s_name},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }
    return yaml.dump_all([deployment, service, autoscaler], Dumper=_PlainDumper, sort_keys=False)


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated values out in full: manifests read better without YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def service_files(spec: ServiceSpec, config: Config, packages: list[str]) -> dict[str, str]:
    """``bentos/<name>/`` as relative path -> text (without the Kubernetes manifests)."""
    return {
        "service.py": render_service(spec, config),
        "bentofile.yaml": render_bentofile(spec.name, packages),
        "model_card.json": json.dumps(model_card(spec, config, packages), indent=2) + "\n",
        # The training-input profile (quantile bins, category shares) for drift checks later.
        "reference_profile.json": (
            spec.validation.profile.model_dump_json(indent=2) + "\n"
            if spec.validation.profile is not None
            else "null\n"
        ),
    }
