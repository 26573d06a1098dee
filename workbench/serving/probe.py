"""A bounded load probe against a local server: requests/s, latency percentiles, errors.

Loopback only, bounded in request count and in time: the probe stops at whichever comes first.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import numpy as np

from workbench.errors import ServingError
from workbench.results import ProbeResult
from workbench.serving.network import require_loopback

MAX_REQUESTS = 100_000
MAX_SECONDS = 300.0


def probe(
    url: str,
    rows: list[dict[str, Any]],
    *,
    requests: int = 200,
    concurrency: int = 4,
    time_limit: float = 20.0,
    headers: dict[str, str] | None = None,
) -> ProbeResult:
    """Send up to ``requests`` single-row ``/predict`` calls from ``concurrency`` threads."""
    require_loopback(url, what="the load probe")
    if not rows:
        raise ServingError("the load probe needs at least one row to send")
    requests = max(1, min(requests, MAX_REQUESTS))
    concurrency = max(1, min(concurrency, requests, 256))
    time_limit = max(0.1, min(time_limit, MAX_SECONDS))
    calls = _Calls(url, rows, requests, headers, deadline=time.monotonic() + time_limit)
    started = time.perf_counter()
    threads = [threading.Thread(target=calls.send, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=time_limit + 35)
    wall = time.perf_counter() - started
    latencies, errors = list(calls.latencies), list(calls.errors)
    values = np.array(latencies) if latencies else np.array([np.nan])
    p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
    return ProbeResult(
        url=url,
        requests=len(latencies),
        concurrency=concurrency,
        seconds=round(wall, 3),
        requests_per_s=round(len(latencies) / wall, 1) if wall > 0 else 0.0,
        p50_ms=round(p50, 2),
        p95_ms=round(p95, 2),
        p99_ms=round(p99, 2),
        errors=len(errors),
        error_kinds=sorted(set(errors)),
        latencies_ms=[round(v, 3) for v in latencies],
    )


class _Calls:
    """The probe's calls, shared by its threads: at most ``requests`` of them, none after the
    deadline; each one's latency (ms), and what went wrong with those that failed."""

    def __init__(
        self,
        url: str,
        rows: list[dict[str, Any]],
        requests: int,
        headers: dict[str, str] | None,
        *,
        deadline: float,
    ) -> None:
        self.url, self.rows, self.requests, self.headers = url, rows, requests, headers
        self.deadline = deadline
        self.lock = threading.Lock()
        self.issued = 0
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def _next(self) -> int | None:
        with self.lock:
            if self.issued >= self.requests:
                return None
            self.issued += 1
            return self.issued - 1

    def send(self) -> None:
        """One thread's calls, one row each, until the count or the deadline is reached."""
        with httpx.Client(base_url=self.url, timeout=30.0, headers=self.headers) as client:
            while time.monotonic() < self.deadline and (index := self._next()) is not None:
                body = {"rows": [self.rows[index % len(self.rows)]]}
                started = time.perf_counter()
                try:
                    response = client.post("/predict", json=body)
                    problem = (
                        None if response.status_code == 200 else f"HTTP {response.status_code}"
                    )
                except httpx.HTTPError as exc:
                    problem = type(exc).__name__
                elapsed = (time.perf_counter() - started) * 1000
                with self.lock:
                    self.latencies.append(elapsed)
                    if problem is not None:
                        self.errors.append(problem)
