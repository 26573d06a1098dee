"""The split of one rollout: which arm a request goes to, what the router saw of each arm,
and the challenger's share as the rollout file says now."""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ARMS = ("primary", "challenger")
SHARE_EVERY_S = 0.5
LATENCIES = 10_000
"""Latencies kept per arm for the quantiles of ``/rollout`` and ``/monitor``."""
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Paths counted by name in ``workbench_rollout_requests_total`` (others as ``other``).
COUNTED = frozenset({"/predict", "/explain", "/feedback", "/metadata", "/monitor"})


def key_point(key: bytes) -> float:
    """``key``'s place in [0, 1): its SHA-256 read as a fraction (uniform over keys)."""
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def arm_for(key: bytes | None, share: float, draw: Callable[[], float] = random.random) -> str:
    """``challenger`` when the key's point (or, without a key, a random draw) is below
    ``share``, else ``primary``."""
    point = key_point(key) if key else draw()
    return "challenger" if point < share else "primary"


@dataclass
class Arm:
    """One version behind the router and what the router saw of it."""

    name: str
    tag: str
    url: str
    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(path, status) -> requests answered."""
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCIES))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    seconds: float = 0.0

    def observe(self, path: str, status: int, seconds: float) -> None:
        self.counts[(path if path in COUNTED else "other", status)] += 1
        self.latencies.append(seconds)
        self.seconds += seconds
        self.buckets[next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))] += 1

    def summary(self) -> dict[str, Any]:
        """Requests, errors and latency quantiles (ms) of this arm, as the router measured."""
        total = sum(self.counts.values())
        ordered = sorted(self.latencies)

        def quantile(q: float) -> float | None:
            return (
                round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)
                if ordered
                else None
            )

        return {
            "version": self.tag,
            "requests": total,
            "server_errors": sum(n for (_, s), n in self.counts.items() if s >= 500),
            "client_errors": sum(n for (_, s), n in self.counts.items() if 400 <= s < 500),
            "p50_ms": quantile(0.5),
            "p95_ms": quantile(0.95),
            "p99_ms": quantile(0.99),
        }


class ShareFile:
    """The challenger's share as the rollout file says now (re-read when it changed, at most
    every :data:`SHARE_EVERY_S`); 0 when the rollout is not active or names another challenger."""

    def __init__(self, path: Path, challenger: str) -> None:
        self.path = path
        self.challenger = challenger
        self.share = 0.0
        self.state = "unread"
        self.read_at = 0.0
        self.stamp: tuple[float, int] | None = None

    def current(self) -> float:
        now = time.monotonic()
        if now - self.read_at < SHARE_EVERY_S:
            return self.share
        self.read_at = now
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if stamp != self.stamp:
                data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
                active = data.get("state") == "active" and data.get("challenger") == self.challenger
                self.share = min(1.0, max(0.0, float(data.get("share", 0.0)))) if active else 0.0
                self.state = str(data.get("state")) if active else "not active"
                self.stamp = stamp
        except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
            # A file half-edited by hand: keep the last share read, and say so.
            print(f"[workbench router] {self.path}: {exc}; keeping share {self.share}", flush=True)
        return self.share
