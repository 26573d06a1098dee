"""The service's HTTP metrics, counted by the dispatcher, and the text of ``GET /metrics``.

BentoML's own metrics middleware is turned off in every generated service (``metrics:
{enabled: false}``): it labelled each request with its raw path before any user middleware ran,
so every request to a new path, even one answered 401, added series for good (issue 29). The
dispatcher, which sits in front of BentoML's whole app, counts every request instead, under the
metric names and labels BentoML used (dashboards keep working) but labelled with the **route
table's path**: a path not in the table is counted under :data:`UNMATCHED`, so the series are
bounded by the table whatever clients send.

- ``bentoml_service_request_total`` (counter) and ``bentoml_service_request_duration_seconds``
  (histogram, Prometheus' default buckets as BentoML's): labels ``endpoint``, ``service_name``,
  ``service_version``, ``http_response_code``, ``runner_name``;
- ``bentoml_service_request_in_progress`` (gauge, summed over live workers);
- ``bentoml_service_last_request_timestamp_seconds`` (gauge, the latest over workers; health,
  readiness and metrics requests do not set it, as in BentoML);
- ``workbench_auth_failures_total`` (counter, label ``action``: ``refused`` 401, ``delayed`` 401
  answered late, ``limited`` 429; see :mod:`.guard`).

Under ``bentoml serve`` the workers write their values to ``PROMETHEUS_MULTIPROC_DIR`` (BentoML
sets it) and any worker answers for all (prometheus_client's multiprocess collector); elsewhere
(tests) each :class:`Traffic` keeps its own registry.

A request is tallied in plain Python (a count, a sum and a bucket per endpoint and status, the
requests in progress, the latest time): prometheus_client's multiprocess values write a memory-
mapped file under a lock on every change, six changes a request, about a sixth of a one-row
``/predict``'s CPU when measured. The tallies go into the series at most :data:`FLUSH_S` after
a request, before this worker answers ``/metrics`` and when it exits; another worker's series
can be as old as that.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

NAMESPACE = "bentoml_service"
UNMATCHED = "(unmatched)"
"""The ``endpoint`` label of every request to a path not in the route table."""
#: Paths whose requests do not move ``last_request_timestamp_seconds`` (BentoML's skip list).
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/livez", "/readyz"})
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
AUTH_ACTIONS = ("refused", "delayed", "limited")
FLUSH_S = 1.0
"""How long a request's tallies may wait before they go into the series."""
ACCESS_LOG = logging.getLogger("bentoml.access")


def _histogram_order(sample: Any) -> tuple[tuple[tuple[str, str], ...], int, float]:
    """Buckets, then count, then sum, per label set (the multiprocess collector mixes them)."""
    labels = tuple((k, v) for k, v in sorted(sample.labels.items()) if k != "le")
    if sample.name.endswith("_bucket"):
        return labels, 0, float(sample.labels.get("le", 0))
    return labels, 1 if sample.name.endswith("_count") else 2, 0.0


class AllWorkers(Collector):
    """Every worker's series from the multiprocess folder, each histogram's samples in the
    order of the exposition format (buckets, count, sum; the plain collector mixes them)."""

    def __init__(self) -> None:
        self.files = MultiProcessCollector(None)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        for metric in self.files.collect():  # type: ignore[no-untyped-call]
            if metric.type == "histogram":
                metric.samples.sort(key=_histogram_order)
            yield metric


class Traffic:
    """The HTTP series of one worker: what :meth:`count` records, :meth:`exposition` answers."""

    def __init__(
        self, *, service_name: str, service_version: str, runner_name: str, paths: Iterable[str]
    ) -> None:
        self.registry = CollectorRegistry()
        self.multiproc = bool(os.environ.get(MULTIPROC_ENV))
        names = ["endpoint", "service_name", "service_version", "http_response_code"]
        self.fixed = {
            "service_name": service_name,
            "service_version": service_version,
            "runner_name": runner_name,
        }
        registry, namespace = self.registry, NAMESPACE
        self.requests = Counter(
            "request_total",
            "Total number of HTTP requests",
            [*names, "runner_name"],
            namespace=namespace,
            registry=registry,
        )
        self.duration = Histogram(
            "request_duration_seconds",
            "API HTTP request duration in seconds",
            [*names, "runner_name"],
            namespace=namespace,
            registry=registry,
        )
        self.in_progress = Gauge(
            "request_in_progress",
            "Total number of HTTP requests in progress now",
            ["endpoint", "service_name", "service_version", "runner_name"],
            multiprocess_mode="livesum",
            namespace=namespace,
            registry=registry,
        )
        self.last_request = Gauge(
            "last_request_timestamp_seconds",
            "Timestamp of the last received request",
            ["service_name", "service_version", "runner_name"],
            multiprocess_mode="max",
            namespace=namespace,
            registry=registry,
        ).labels(**self.fixed)
        self.auth_failures = Counter(
            "workbench_auth_failures_total",
            "Requests refused for a missing or wrong API key (action: refused = 401, delayed = "
            "401 answered late after repeated failures from the client, limited = 429)",
            ["action"],
            registry=self.registry,
        )
        self.answered: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.bounds = list(self.duration._upper_bounds)[:-1]  # the last is +Inf
        self.tallies: dict[tuple[str, int], list[float]] = {}
        """Per (endpoint, status) since the last flush: count, sum, then a count per bucket."""
        self.running: dict[str, int] = {}
        self.gauges: dict[str, Any] = {}
        self.shown: dict[str, int] = {}
        self.last_seen = self.last_shown = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._prime(paths)
        self.workers: CollectorRegistry | None = None
        if self.multiproc:
            self.workers = CollectorRegistry()
            self.workers.register(AllWorkers())
            atexit.register(mark_process_dead, os.getpid())  # this worker's live gauges go too
        atexit.register(self.flush)  # (before: atexit runs the last registered first)

    def _prime(self, paths: Iterable[str]) -> None:
        """Series at 0 for ``paths`` and the auth actions: a first request is a rate from 0, not
        a new series (as BentoML)."""
        for path in paths:
            for status in (200, 500):
                self._children(path, status)
        for action in AUTH_ACTIONS:
            self.auth_failures.labels(action)

    def _children(self, endpoint: str, status: int) -> tuple[Any, Any]:
        pair = self.answered.get((endpoint, status))
        if pair is None:
            labels = {"endpoint": endpoint, "http_response_code": str(status), **self.fixed}
            pair = (self.requests.labels(**labels), self.duration.labels(**labels))
            self.answered[(endpoint, status)] = pair
        return pair

    def started(self, endpoint: str) -> float:
        """A request to ``endpoint`` (a table path or :data:`UNMATCHED`) begins: its start."""
        running = self.running
        running[endpoint] = running.get(endpoint, 0) + 1
        if endpoint not in QUIET_PATHS:
            self.last_seen = time.time()
        if self.timer is None or self.loop is None or self.loop.is_closed():
            self._schedule()  # (a closed loop: tests run each request in a loop of its own)
        return time.perf_counter()

    def count(self, endpoint: str, status: int | None, started: float) -> None:
        """The request begun at ``started`` was answered ``status`` (None: not answered, the
        client left first; only no longer in progress)."""
        self.running[endpoint] -= 1
        if status is None:
            return
        seconds = max(time.perf_counter() - started, 0.0)
        tally = self.tallies.get((endpoint, status))
        if tally is None:
            tally = self.tallies[(endpoint, status)] = [0.0] * (len(self.bounds) + 3)
        tally[0] += 1
        tally[1] += seconds
        tally[2 + bisect.bisect_left(self.bounds, seconds)] += 1

    def _schedule(self) -> None:
        with contextlib.suppress(RuntimeError):  # no event loop: the next flush takes it
            self.loop = asyncio.get_running_loop()
            self.timer = self.loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        """Put the tallies into the series (what ``/metrics`` reads)."""
        self.timer = None
        for key, tally in self.tallies.items():
            if not tally[0]:
                continue
            total, duration = self._children(*key)
            total.inc(tally[0])
            # prometheus_client keeps a histogram's buckets apart (made cumulative when read)
            # and its sum: each takes its increase at once (observe() takes one value).
            duration._sum.inc(tally[1])
            for bucket, n in zip(duration._buckets, tally[2:], strict=True):
                if n:
                    bucket.inc(n)
            tally[:] = [0.0] * len(tally)
        for endpoint, n in self.running.items():
            if self.shown.get(endpoint) != n:
                gauge = self.gauges.get(endpoint)
                if gauge is None:
                    gauge = self.gauges[endpoint] = self.in_progress.labels(
                        endpoint=endpoint, **self.fixed
                    )
                gauge.set(n)
                self.shown[endpoint] = n
        if self.last_seen > self.last_shown:
            self.last_request.set(self.last_seen)
            self.last_shown = self.last_seen
        if any(self.running.values()):  # in progress still: shown again later
            self._schedule()

    def auth_failure(self, action: str) -> None:
        self.auth_failures.labels(action).inc()

    def exposition(self) -> bytes:
        """Every worker's series (one worker's outside ``bentoml serve``), as text."""
        self.flush()
        return bytes(generate_latest(self.workers or self.registry))


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def log_access(scope: Mapping[str, Any], start: Mapping[str, Any], started: float) -> None:
    """BentoML's access log line for one request (``service.access_log``), given the start of
    its answer (``{}``: none was sent)."""
    if scope["path"] in QUIET_PATHS:
        return
    client = scope.get("client")
    address = f"{client[0]}:{client[1]}" if client else "-"
    asked, answered = scope["headers"], start.get("headers", [])
    request = (
        f"scheme={scope.get('scheme', 'http')},method={scope['method']},path={scope['path']},"
        f"type={_header(asked, b'content-type')},length={_header(asked, b'content-length')}"
    )
    response = (
        f"status={start.get('status', '')},type={_header(answered, b'content-type')},"
        f"length={_header(answered, b'content-length')}"
    )
    ms = (time.perf_counter() - started) * 1000
    ACCESS_LOG.info("%s (%s) (%s) %.3fms", address, request, response, ms)


__all__ = ["CONTENT_TYPE", "UNMATCHED", "Traffic", "log_access"]
