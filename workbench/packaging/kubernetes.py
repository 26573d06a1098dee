"""The Kubernetes manifests in the Bento: Deployment, Service, HorizontalPodAutoscaler,
NetworkPolicy and PodDisruptionBudget; and a rollout's recipe: both versions' Deployments and
Services and a Gateway API ``HTTPRoute`` that splits the traffic between them by weight.

The pod runs as the image's numeric non-root user (:data:`~workbench.packaging.image.IMAGE_UID`)
with no privilege escalation, every capability dropped, the runtime's default seccomp profile, a
read-only root filesystem and no service-account token. What ``bentoml serve`` writes at run time
goes to an ``emptyDir`` at ``/tmp``: its Unix sockets to the workers, the Prometheus multiprocess
folder (``$BENTOML_HOME`` is read-only, so BentoML makes it under ``/tmp``), the runtime's
cross-worker files and onnxruntime's cache (the image sets ``HOME=/tmp``). Measured: ``strace``
of ``bentoml serve`` on a Bento, serving requests and ``/metrics``, shows no other write (but
bytecode beside the sources, which the image turns off: ``PYTHONDONTWRITEBYTECODE``). The
NetworkPolicy admits traffic to the HTTP port only and lets the pod open no connection (it needs
none); the PodDisruptionBudget lets a drain take one pod at a time.
"""

from __future__ import annotations

from typing import Any

import yaml

from workbench.config import Config
from workbench.packaging.image import IMAGE_UID
from workbench.runtime import API_KEY_ENV

HTTP_PORT = 3000
"""The port ``bentoml serve`` listens on inside the image."""
PRE_STOP_S = 5
"""Seconds a stopping pod keeps serving while it leaves the Service's endpoints."""
TMP_SIZE = "256Mi"
"""The ``emptyDir`` at ``/tmp`` (sockets, Prometheus files, cross-worker files): counted in the
pod's memory when the node backs it with RAM, so bounded."""
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": IMAGE_UID,
    "runAsGroup": IMAGE_UID,
    "fsGroup": IMAGE_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": IMAGE_UID,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def render_kubernetes(name: str, bento_version: str, config: Config) -> str:
    """Deployment (probes on the health endpoints), Service, HorizontalPodAutoscaler,
    NetworkPolicy and PodDisruptionBudget.

    The image is the one ``bentoml containerize <name>:<version>`` tags. With ``service.auth:
    api_key`` the key comes from a Secret the cluster owner creates (never from this file), and the
    Secret is required: without it the pod does not start, rather than serving an open API.
    Shutdown: the pod leaves the Service's endpoints (``preStop`` pause), then in-flight requests
    finish within the request timeout before the grace period ends.
    """
    k8s_name = name.replace("_", "-").replace(".", "-")
    labels = {"app.kubernetes.io/name": k8s_name, "app.kubernetes.io/version": bento_version}
    documents = [
        _deployment(
            k8s_name, labels, _container(k8s_name, f"{name}:{bento_version}", config), config
        ),
        _service(k8s_name, labels),
        _autoscaler(k8s_name, labels),
        _network_policy(k8s_name, labels),
        _disruption_budget(k8s_name, labels),
    ]
    return yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False)


def _container(
    k8s_name: str, image: str, config: Config, *, secret_name: str | None = None
) -> dict[str, Any]:
    """The serving container: its port, the API key from the Secret (``<name>-api-key``, or
    ``secret_name``), its security context and writable ``/tmp``, probes and resources."""
    # A large request holds the worker's event loop for up to ~0.1 s: probes get 5 s to answer.
    probe = {
        "httpGet": {"path": "/livez", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
    }
    secret = {"name": secret_name or f"{k8s_name}-api-key", "key": "key", "optional": False}
    env = [{"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": secret}}]
    return {
        "name": k8s_name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        "env": env if config.service.auth == "api_key" else [],
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_S)]}}},
        "resources": {
            "requests": {"cpu": str(config.service.workers), "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        },
        "startupProbe": {**probe, "failureThreshold": 30},
        "livenessProbe": probe,
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "timeoutSeconds": 5,
            "periodSeconds": 5,
        },
    }


def _deployment(
    k8s_name: str, labels: dict[str, str], container: dict[str, Any], config: Config
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": k8s_name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": _selector(k8s_name),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": PRE_STOP_S + config.service.timeout + 10,
                    "automountServiceAccountToken": False,
                    "securityContext": POD_SECURITY,
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}],
                    "containers": [container],
                },
            },
        },
    }


def _service(k8s_name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": k8s_name, "labels": labels},
        "spec": {
            "selector": {"app.kubernetes.io/name": k8s_name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def _autoscaler(k8s_name: str, labels: dict[str, str]) -> dict[str, Any]:
    cpu = {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": k8s_name, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": k8s_name},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": cpu}],
        },
    }


def _network_policy(k8s_name: str, labels: dict[str, str]) -> dict[str, Any]:
    """Traffic in to the HTTP port only; no connection out (the pod needs none)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": k8s_name, "labels": labels},
        "spec": {
            "podSelector": _selector(k8s_name),
            "policyTypes": ["Ingress", "Egress"],
            # Narrow `from` to the callers (an ingress controller, a namespace) where it is known.
            "ingress": [{"ports": [{"protocol": "TCP", "port": HTTP_PORT}]}],
            "egress": [],
        },
    }


def _disruption_budget(k8s_name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A drain takes one pod at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": k8s_name, "labels": labels},
        "spec": {"maxUnavailable": 1, "selector": _selector(k8s_name)},
    }


def _selector(k8s_name: str) -> dict[str, Any]:
    return {"matchLabels": {"app.kubernetes.io/name": k8s_name}}


ROLLOUT_WEIGHT = 10_000
"""The two weights of the HTTPRoute add up to this: shares to 0.01 %."""
GATEWAY = "workbench-gateway"
"""The Gateway the HTTPRoute attaches to (``parentRefs``): the cluster's own, set its name."""
ROLLOUT_HEADER = (
    "# The rollout of {name}: {primary} (primary) and {challenger} (challenger, {percent} of\n"
    "# requests), behind one Gateway API HTTPRoute with weighted backendRefs. Written by\n"
    "# `workbench serve --canary` / `workbench rollout advance|abort` beside rollout.yaml; needs\n"
    "# the Gateway API CRDs and a Gateway named {gateway} (change parentRefs to yours), and the\n"
    "# Secret {secret}. Each answer says which version answered (X-Workbench-Version).\n"
)


def render_rollout(name: str, primary: str, challenger: str, share: float, config: Config) -> str:
    """Both versions (Bento versions ``primary`` and ``challenger``) as a Deployment and a Service
    each, and an HTTPRoute sending ``share`` of the requests to the challenger."""
    k8s_name = name.replace("_", "-").replace(".", "-")
    challenger_weight = round(share * ROLLOUT_WEIGHT)
    documents: list[dict[str, Any]] = []
    backends = []
    for arm, version, weight in (
        ("primary", primary, ROLLOUT_WEIGHT - challenger_weight),
        ("challenger", challenger, challenger_weight),
    ):
        deployment, service, backend = _arm(name, arm, version, weight, config)
        documents += [deployment, service]
        backends.append(backend)
    everything = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": k8s_name, "labels": {"app.kubernetes.io/name": k8s_name}},
        "spec": {
            "parentRefs": [{"name": GATEWAY}],
            "rules": [{**everything, "backendRefs": backends}],
        },
    }
    text = yaml.dump_all([*documents, route], Dumper=_PlainDumper, sort_keys=False)
    head = ROLLOUT_HEADER.format(
        name=name,
        primary=primary,
        challenger=challenger,
        percent=f"{challenger_weight / ROLLOUT_WEIGHT:.2%}",
        gateway=GATEWAY,
        secret=f"{k8s_name}-api-key",
    )
    return head + text


def _arm(
    name: str, arm: str, version: str, weight: int, config: Config
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One version's Deployment and Service (selected by ``instance``, sharing the model's
    Secret) and its weighted backendRef, which adds ``X-Workbench-Version`` to its answers."""
    k8s_name = name.replace("_", "-").replace(".", "-")
    arm_name = f"{k8s_name}-{arm}"
    labels = {
        "app.kubernetes.io/name": k8s_name,
        "app.kubernetes.io/instance": arm_name,
        "app.kubernetes.io/version": version,
    }
    image = f"{name}:{version}"
    container = _container(k8s_name, image, config, secret_name=f"{k8s_name}-api-key")
    deployment = _deployment(arm_name, labels, container, config)
    deployment["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/instance": arm_name}}
    service = _service(arm_name, labels)
    service["spec"]["selector"] = {"app.kubernetes.io/instance": arm_name}
    header = {"name": "X-Workbench-Version", "value": image}
    backend = {
        "name": arm_name,
        "port": 80,
        "weight": weight,
        "filters": [
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [header]}}
        ],
    }
    return deployment, service, backend


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated values out in full: manifests read better without YAML anchors."""

    def ignore_aliases(self, _data: Any) -> bool:
        return True
