"""The files generated for a Bento: ``service.py``, ``bentofile.yaml``, the model card, and the
Kubernetes manifests. Pure functions of their inputs, so the same inputs give the same bytes (and
so the same content-derived Bento version).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any

import pandas as pd
import yaml

from workbench.config import Config
from workbench.reports import ValidationResult
from workbench.schema import Column, InputSchema

API_KEY_ENV = "WORKBENCH_API_KEY"
"""Set this where the Bento runs to require ``Authorization: Bearer <key>`` on every API route."""
UNSEEN = "__workbench_unseen_category__"
HTTP_PORT = 3000
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
class ServiceSpec:
    """Everything the generated service depends on (its content decides the Bento version)."""

    name: str
    model_tag: str
    validation: ValidationResult
    policy: str
    fallback: dict[str, str]


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
        max_batch_size=config.service.max_batch_size,
        max_latency_ms=config.service.max_latency_ms,
        cors=repr(cors),
        api_key_env=API_KEY_ENV,
    )


def render_bentofile(name: str, packages: list[str]) -> str:
    """The ``bentofile.yaml``: pinned packages, no lock against the live package index."""
    return yaml.safe_dump(
        {
            "service": f"service:{class_name(name)}",
            "name": name,
            "include": ["service.py", "model_card.json", "deploy/*"],
            "labels": {"generated-by": "workbench"},
            "python": {"packages": packages, "lock_packages": False},
            "docker": {"python_version": f"{sys.version_info.major}.{sys.version_info.minor}"},
        },
        sort_keys=False,
    )


def model_card(spec: ServiceSpec, packages: list[str]) -> dict[str, Any]:
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
        "model_card.json": json.dumps(model_card(spec, packages), indent=2) + "\n",
    }
