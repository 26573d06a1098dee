"""A bounded replay: rows sent to one or more servers on this machine, answers and latency kept.

Rows go out as ``POST /predict`` requests of ``batch_rows`` rows. With several targets, each
request goes to every target one after the other (the order alternates, so none always meets a
warm cache first). The loop stops after ``max_rows`` rows or ``max_seconds``, whichever comes
first, keeps to ``rate`` rows per second when given, and only ever targets 127.0.0.1.

The monitoring replay (one target; labels go to ``/feedback`` from ``on_batch``) and the shadow
replay (a champion and a challenger in lockstep) are both this loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from workbench.errors import DataError
from workbench.runtime.settings import PREDICT_PATH, REQUEST_ID_HEADER
from workbench.serving.network import require_loopback

REQUEST_TIMEOUT_S = 30.0
#: Messages kept of a target's failed requests.
FIRST_ERRORS = 3


@dataclass(frozen=True)
class Target:
    """One server to replay to, and the rows as it takes them (its own input columns)."""

    label: str
    url: str
    key: str
    rows: Sequence[dict[str, Any]]


@dataclass
class Answers:
    """What one server said: one answer per row sent (``None`` where the request failed)."""

    answers: list[dict[str, Any] | None] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    request_ids: list[str | None] = field(default_factory=list)
    """One per request: the answer's ``X-Request-Id`` (``None`` where it failed)."""
    errors: int = 0
    """Requests not answered 200 with one answer per row."""
    first_errors: list[str] = field(default_factory=list)


@dataclass
class Replay:
    sent: int
    """Rows sent to every target."""
    requests: int
    """Requests sent to each target."""
    stopped_by: str
    """``file`` (every row), ``max_rows`` or ``max_seconds``."""
    seconds: float
    answers: dict[str, Answers]


def _post(client: httpx.Client, target: Target, rows: list[dict[str, Any]], into: Answers) -> None:
    headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
    started = time.perf_counter()
    request_id = None
    try:
        response = client.post(f"{target.url}{PREDICT_PATH}", json={"rows": rows}, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        body = response.json() if response.status_code == 200 else None
        request_id = response.headers.get(REQUEST_ID_HEADER)
    except (httpx.HTTPError, ValueError) as exc:
        elapsed, body = (time.perf_counter() - started) * 1000, None
        message = f"{type(exc).__name__}: {exc}"
    else:
        message = f"HTTP {response.status_code}: {response.text[:300]}"
    into.latency_ms.append(elapsed)
    if isinstance(body, list) and len(body) == len(rows):
        into.answers.extend(body)
        into.request_ids.append(request_id)
        return
    into.errors += 1
    into.answers.extend([None] * len(rows))
    into.request_ids.append(None)
    if len(into.first_errors) < FIRST_ERRORS:
        into.first_errors.append(message)


def replay(
    targets: Sequence[Target],
    *,
    batch_rows: int,
    max_rows: int,
    max_seconds: float,
    rate: float | None = None,
    on_batch: Callable[[int, int, dict[str, Answers]], None] | None = None,
    what: str = "the replay",
) -> Replay:
    """Send each target its rows, ``batch_rows`` per request, within the bounds.

    ``on_batch(start, end, answers)`` runs after rows ``start:end`` went to every target: their
    answers are the last of each target's :class:`Answers`. ``what`` names the loop in messages.
    """
    if not targets:
        raise DataError(f"{what}: no server to send the rows to")
    if batch_rows < 1 or max_rows < 1 or max_seconds <= 0 or (rate is not None and rate <= 0):
        raise DataError(
            f"{what}: batch_rows ({batch_rows}) and max_rows ({max_rows}) must be >= 1, "
            f"max_seconds ({max_seconds}) and the rate ({rate}) > 0"
        )
    for target in targets:
        require_loopback(target.url, what=what)
    total = min(len(targets[0].rows), max_rows)
    answers = {t.label: Answers() for t in targets}
    started = time.monotonic()
    sent, requests = 0, 0
    stopped_by = "file" if total == len(targets[0].rows) else "max_rows"
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for number, start in enumerate(range(0, total, batch_rows)):
            if rate is not None:
                wait = started + start / rate - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, max(0.0, started + max_seconds - time.monotonic())))
            if time.monotonic() - started > max_seconds:
                stopped_by = "max_seconds"
                break
            end = min(start + batch_rows, total)
            order = targets if number % 2 == 0 else list(reversed(targets))
            for target in order:
                _post(client, target, list(target.rows[start:end]), answers[target.label])
            sent, requests = end, requests + 1
            if on_batch is not None:
                on_batch(start, end, answers)
    return Replay(
        sent=sent,
        requests=requests,
        stopped_by=stopped_by,
        seconds=round(time.monotonic() - started, 3),
        answers=answers,
    )


__all__ = ["Answers", "Replay", "Target", "replay"]
