"""What the launch stage checked against the served Bento."""

from __future__ import annotations

from typing import Any, Literal

from workbench.errors import ServingError
from workbench.results.base import Result


class ProbeResult(Result):
    """A bounded load probe: throughput, latency percentiles, errors and every latency."""

    url: str
    requests: int
    concurrency: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    error_kinds: list[str]
    latencies_ms: list[float]


class CheckResult(Result):
    """One check against the live server."""

    name: str
    passed: bool
    detail: str = ""


class LaunchResult(Result):
    """What the launch stage checked against the served Bento."""

    bento_tag: str
    url: str
    checks: list[CheckResult]
    parity_rows: int
    mismatches: list[dict[str, Any]]
    probe: ProbeResult | None = None
    snippets: dict[str, str] = {}
    passed: bool
    seconds: float
    portable: Literal["proven", "not proven"] = "not proven"
    """``proven``: served from a clean environment holding only the Bento's requirements, and
    every check passed there (``launch.portable``)."""
    portable_reason: str = ""

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def raise_for_checks(self) -> None:
        """Raise :class:`ServingError` naming every failed check (stops a headless run)."""
        if self.failed:
            raise ServingError(
                f"{self.bento_tag}: checks failed against the served Bento: "
                + "; ".join(f"{c.name}: {c.detail}" for c in self.failed)
            )


class ServerStatus(Result):
    """A served Bento as it stands at ``checked_at``: what the launch panel shows live."""

    state: Literal["running", "stopped"]
    bento_tag: str
    url: str
    pid: int
    uptime_s: float
    """Seconds since it was started (0 once it has stopped)."""
    requests_served: int | None
    """API requests answered (health and metrics routes excluded); ``None`` when ``/metrics``
    did not answer or the server is not running."""
    last_error: str | None = None
    """The last error line of the server's log, or how the process ended when it died."""
    checked_at: float
    """Unix time of this snapshot."""
