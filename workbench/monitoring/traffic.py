"""A running service's traffic, from its Prometheus ``/metrics``: request counts by status and
the latency histogram of ``POST /predict``, and what changed between two scrapes (what the
monitor panel shows live)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx

from workbench.errors import ServingError
from workbench.runtime.settings import PREDICT_PATH

REQUESTS = "bentoml_service_request"
DURATION = "bentoml_service_request_duration_seconds"


@dataclass(frozen=True)
class Scrape:
    """The request counters and latency histogram of ``POST /predict`` at one moment."""

    at: float
    requests: dict[str, float]
    """HTTP status -> requests so far (all workers)."""
    buckets: list[tuple[float, float]]
    """(upper bound in seconds, requests at most that slow), ascending, ending at +inf."""


@dataclass(frozen=True)
class Traffic:
    """Traffic between two scrapes: rate, error share and latency quantiles (None: no requests)."""

    seconds: float
    requests: float
    requests_per_s: float
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def scrape(url: str, *, path: str = PREDICT_PATH, timeout: float = 10.0) -> Scrape:
    """Read ``/metrics`` (open, no key) and keep the figures of ``path``."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(f"{url.rstrip('/')}/metrics", timeout=timeout).text
    except httpx.HTTPError as exc:
        raise ServingError(f"{url}/metrics: cannot reach the service ({exc})") from exc
    requests: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("endpoint") != path:
                continue
            if sample.name == f"{REQUESTS}_total":
                code = sample.labels.get("http_response_code", "?")
                requests[code] = requests.get(code, 0.0) + sample.value
            elif sample.name == f"{DURATION}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Scrape(time.monotonic(), requests, sorted(buckets.items()))


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: linear within the bucket holding the quantile."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return None


def traffic(before: Scrape, after: Scrape) -> Traffic:
    """What happened between two scrapes (counters that went down, a restart, count from 0)."""
    seconds = max(after.at - before.at, 1e-9)
    codes = set(before.requests) | set(after.requests)
    delta = {c: after.requests.get(c, 0.0) - before.requests.get(c, 0.0) for c in codes}
    if any(v < 0 for v in delta.values()):
        delta = dict(after.requests)
    total = sum(delta.values())
    errors = sum(v for c, v in delta.items() if not c.startswith("2"))
    old = dict(before.buckets)
    window = [(b, max(0.0, c - old.get(b, 0.0))) for b, c in after.buckets]

    def ms(q: float) -> float | None:
        value = _quantile(q, window)
        return None if value is None else round(value * 1000, 3)

    return Traffic(
        seconds=round(seconds, 3),
        requests=total,
        requests_per_s=total / seconds,
        error_rate=errors / total if total else None,
        p50_ms=ms(0.5),
        p95_ms=ms(0.95),
        p99_ms=ms(0.99),
    )
