"""The observability bundle in every Bento (``deploy/``), made from its settings: Prometheus
alerting rules, a scrape config that feeds them and a Grafana dashboard.

Alerts (each with ``severity`` and ``service`` labels, a summary and what to look at next):

- ``WorkbenchErrorRate``: over 1 % of ``/predict`` answers are 5xx (faults, overload 503,
  timeouts 504) for 5 minutes;
- ``WorkbenchLatencySLO``: the p99 of answered ``/predict`` requests is above the batching
  latency bound (``service.max_latency_ms``) for 10 minutes;
- ``WorkbenchNoTraffic``: no ``/predict`` request reached the service (or no scrape did) for
  15 minutes;
- with monitoring on: ``WorkbenchDatasetDrift`` (the window drifted), ``WorkbenchDataQuality``
  (a data-quality check fails, per column and check) and one ``WorkbenchLiveMetricGate`` per
  ``monitor.gates`` entry (the live metric is out of its bounds), each for 10 minutes.

Every expression selects the scrape job named after the Bento (``job="<name>"``), as the scrape
config in the bundle names it; the monitoring series are there only for a scrape with the API
key (or ``monitor.public_metrics``). ``promtool check rules`` and a real Prometheus scraping a
served Bento test them (``tests/test_observability.py``).
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from workbench.runtime.settings import PREDICT_PATH, Settings

RULES_FILE = "deploy/prometheus-rules.yaml"
SCRAPE_FILE = "deploy/prometheus-scrape.yaml"
DASHBOARD_FILE = "deploy/grafana-dashboard.json"
ERROR_RATIO = 0.01
"""The share of 5xx answers of ``/predict`` that alerts."""
#: How long each condition must hold before its alert fires.
HOLD = {"errors": "5m", "latency": "10m", "traffic": "15m", "monitor": "10m"}
REQUESTS = "bentoml_service_request_total"
DURATION = "bentoml_service_request_duration_seconds_bucket"


def _selector(name: str, **labels: str) -> str:
    """``{job="<name>", ...}`` (values are a Bento's name and fixed route and status texts)."""
    pairs = {"job": f'"{name}"', **labels}
    return "{" + ",".join(f"{k}={v}" for k, v in pairs.items()) + "}"


def _rule(
    alert: str, expr: str, *, hold: str, severity: str, summary: str, what: str
) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": hold,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": what},
    }


def _http_rules(name: str, settings: Settings) -> list[dict[str, Any]]:
    predict = _selector(name, endpoint=f'"{PREDICT_PATH}"')
    errors = _selector(name, endpoint=f'"{PREDICT_PATH}"', http_response_code='~"5.."')
    answered = _selector(name, endpoint=f'"{PREDICT_PATH}"', http_response_code='"200"')
    slo = settings.service.max_latency_ms / 1000
    return [
        _rule(
            "WorkbenchErrorRate",
            f"sum(rate({REQUESTS}{errors}[5m])) / sum(rate({REQUESTS}{predict}[5m])) "
            f"> {ERROR_RATIO}",
            hold=HOLD["errors"],
            severity="critical",
            summary=f"{name}: {{{{ $value | humanizePercentage }}}} of /predict answers are 5xx",
            what="500: see the server log; 503: overloaded (add workers or replicas); 504: answers "
            "slower than service.timeout.",
        ),
        _rule(
            "WorkbenchLatencySLO",
            f"histogram_quantile(0.99, sum by (le) (rate({DURATION}{answered}[5m]))) > {slo:g}",
            hold=HOLD["latency"],
            severity="warning",
            summary=f"{name}: p99 of /predict is {{{{ $value | humanizeDuration }}}}, "
            f"over {slo:g} s",
            what="The batching latency bound (service.max_latency_ms) is the objective: requests "
            "queue behind the model; add workers or replicas, or lower max_batch_size.",
        ),
        _rule(
            "WorkbenchNoTraffic",
            f"(sum(rate({REQUESTS}{predict}[15m])) or vector(0)) == 0",
            hold=HOLD["traffic"],
            severity="warning",
            summary=f"{name}: no /predict request for {HOLD['traffic']}",
            what="Its callers stopped, or the service (or its scrape) is down: check the "
            "job's `up`.",
        ),
    ]


def _monitor_rules(name: str, settings: Settings) -> list[dict[str, Any]]:
    job = _selector(name)
    hold = HOLD["monitor"]
    rules = [
        _rule(
            "WorkbenchDatasetDrift",
            f"max by (instance) (workbench_monitor_dataset_drift{job}) == 1",
            hold=hold,
            severity="warning",
            summary=f"{name}: the recent inputs drifted from training",
            what="GET /monitor names the drifted columns and their statistics; a retraining "
            "trigger.",
        ),
        _rule(
            "WorkbenchDataQuality",
            f"max by (instance, column, check) (workbench_monitor_column_quality_failed{job}) == 1",
            hold=hold,
            severity="warning",
            summary=f"{name}: column {{{{ $labels.column }}}} fails the "
            "{{ $labels.check }} check",
            what="A broken feed (missing, constant, unseen or out-of-range values): GET /monitor "
            "shows the figure against training's.",
        ),
    ]
    for metric, gate in settings.monitor.gates.items():
        bounds = " and ".join(
            f"{word} {value:g}"
            for word, value in (("at least", gate.min), ("at most", gate.max))
            if value is not None
        )
        selector = _selector(name, metric=f'"{metric}"')
        rules.append(
            _rule(
                "WorkbenchLiveMetricGate",
                f"min by (instance, metric) (workbench_monitor_gate_passed{selector}) == 0",
                hold=hold,
                severity="critical",
                summary=f"{name}: live {metric} is out of its gate ({bounds})",
                what=f"Over the labelled rows of the window (POST /feedback) {metric} must be "
                f"{bounds} (monitor.gates).",
            )
        )
    return rules


def alert_rules(name: str, settings: Settings) -> dict[str, Any]:
    """The Prometheus rule file of the Bento ``name`` (see the module docstring)."""
    rules = _http_rules(name, settings)
    if settings.monitor.enabled:
        rules += _monitor_rules(name, settings)
    for rule in rules:
        rule["labels"]["service"] = name
    return {"groups": [{"name": f"workbench-{name}", "rules": rules}]}


def scrape_config(name: str, settings: Settings) -> dict[str, Any]:
    """A Prometheus config that scrapes the Bento (its Kubernetes Service; with the API key
    from a file where auth is on) and loads the rules beside it."""
    job: dict[str, Any] = {
        "job_name": name,
        "metrics_path": "/metrics",
        "static_configs": [{"targets": [f"{name.replace('_', '-').replace('.', '-')}:80"]}],
    }
    if settings.service.auth == "api_key":
        job["authorization"] = {"type": "Bearer", "credentials_file": "/etc/prometheus/api-key"}
    return {"rule_files": ["prometheus-rules.yaml"], "scrape_configs": [job]}


#: The dashboard's panels: title, unit, legend -> PromQL (``{job}``: the job's selector,
#: ``{predict}``: its /predict requests, ``{window}``: its window series, ``{slo}``: the bound).
HTTP_PANELS: list[tuple[str, str, dict[str, str]]] = [
    (
        "Requests by route and status",
        "reqps",
        {
            "{{endpoint}} {{http_response_code}}": "sum by (endpoint, http_response_code) "
            f"(rate({REQUESTS}{{job}}[5m]))"
        },
    ),
    (
        "/predict latency",
        "s",
        {
            "p50": f"histogram_quantile(0.5, sum by (le) (rate({DURATION}{{predict}}[5m])))",
            "p99": f"histogram_quantile(0.99, sum by (le) (rate({DURATION}{{predict}}[5m])))",
            "objective": "vector({slo})",
        },
    ),
    (
        "Requests in progress",
        "short",
        {"{{endpoint}}": "sum by (endpoint) (bentoml_service_request_in_progress{job})"},
    ),
    (
        "Failed API key checks",
        "reqps",
        {"{{action}}": "sum by (action) (rate(workbench_auth_failures_total{job}[5m]))"},
    ),
]
MONITOR_PANELS: list[tuple[str, str, dict[str, str]]] = [
    (
        "Monitor status (1 = current)",
        "short",
        {"{{status}}": "max by (status) (workbench_monitor_status{job})"},
    ),
    (
        "Dataset drift and drifted columns",
        "short",
        {
            "dataset drift": "max(workbench_monitor_dataset_drift{job})",
            "drifted columns": "max(workbench_monitor_drifted_columns{job})",
        },
    ),
    (
        "Column drift statistic",
        "short",
        {
            "{{column}} ({{test}})": "max by (column, test) "
            "(workbench_monitor_column_drift_statistic{job})"
        },
    ),
    (
        "Missing and unseen values in the window",
        "percentunit",
        {
            "missing {{column}}": "max by (column) "
            "(workbench_monitor_column_missing_ratio{window})",
            "unseen rows": "max(workbench_monitor_unseen_rows_ratio{job})",
        },
    ),
    (
        "Failed data-quality checks",
        "short",
        {"failed": "max(workbench_monitor_quality_failed_checks{job})"},
    ),
    (
        "Live metrics against validation",
        "short",
        {"{{metric}} {{source}}": "max by (metric, source) (workbench_monitor_metric{job})"},
    ),
    (
        "Feedback items",
        "reqps",
        {"{{status}}": "sum by (status) (rate(workbench_monitor_feedback_items_total{job}[5m]))"},
    ),
    (
        "Window rows",
        "short",
        {
            "rows": "sum(workbench_monitor_window_rows{job})",
            "labelled": "sum(workbench_monitor_labelled_rows{job})",
        },
    ),
]


def dashboard_queries(name: str, settings: Settings) -> list[tuple[str, str, dict[str, str]]]:
    """The dashboard's panels of this Bento: title, unit, legend -> PromQL."""
    fill = {
        "job": _selector(name),
        "predict": _selector(name, endpoint=f'"{PREDICT_PATH}"'),
        "window": _selector(name, source='"window"'),
        "slo": f"{settings.service.max_latency_ms / 1000:g}",
    }
    chosen = HTTP_PANELS + (MONITOR_PANELS if settings.monitor.enabled else [])
    return [
        (title, unit, {legend: expr.format(**fill) for legend, expr in exprs.items()})
        for title, unit, exprs in chosen
    ]


def _panel(i: int, title: str, unit: str, exprs: dict[str, str]) -> dict[str, Any]:
    """One time-series panel, two to a row."""
    return {
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "targets": [
            {"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend}
            for j, (legend, expr) in enumerate(exprs.items())
        ],
    }


def grafana_dashboard(name: str, settings: Settings) -> dict[str, Any]:
    """A Grafana dashboard (JSON model; import it and pick the Prometheus data source)."""
    return {
        "title": f"workbench: {name}",
        "uid": f"workbench-{name}"[:40],
        "tags": ["workbench", "bentoml"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]
        },
        "panels": [_panel(i, *panel) for i, panel in enumerate(dashboard_queries(name, settings))],
    }


def observability_files(name: str, settings: Settings) -> dict[str, str]:
    """The bundle, as relative path -> text."""
    return {
        RULES_FILE: yaml.safe_dump(alert_rules(name, settings), sort_keys=False, width=120),
        SCRAPE_FILE: yaml.safe_dump(scrape_config(name, settings), sort_keys=False, width=120),
        DASHBOARD_FILE: json.dumps(grafana_dashboard(name, settings), indent=2) + "\n",
    }


__all__ = [
    "DASHBOARD_FILE",
    "RULES_FILE",
    "SCRAPE_FILE",
    "alert_rules",
    "dashboard_queries",
    "grafana_dashboard",
    "observability_files",
    "scrape_config",
]
