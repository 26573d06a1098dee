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
from workbench.serving.server import require_loopback

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
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    issued = 0
    deadline = time.monotonic() + time_limit

    def worker() -> None:
        nonlocal issued
        with httpx.Client(base_url=url, timeout=30.0, headers=headers) as client:
            while time.monotonic() < deadline:
                with lock:
                    if issued >= requests:
                        return
                    index = issued
                    issued += 1
                body = {"rows": [rows[index % len(rows)]]}
                started = time.perf_counter()
                try:
                    response = client.post("/predict", json=body)
                    ok = response.status_code == 200
                    problem = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    ok, problem = False, type(exc).__name__
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        errors.append(problem)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=time_limit + 35)
    wall = time.perf_counter() - started
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
