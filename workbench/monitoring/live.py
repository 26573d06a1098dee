"""A running service's monitoring: replay a file through it, read ``GET /monitor``, apply gates.

:func:`replay` sends a CSV or Parquet file's rows to ``POST /predict`` at a bounded rate (rows per
second) and, when the file has the model's target column, each row's true label to
``POST /feedback`` under the answer's ``X-Request-Id``. :func:`check_service` reads the service's
report and judges it by ``monitor:`` (FAIL when the dataset drifted, a data-quality check or a
live-metric gate failed; INCONCLUSIVE without enough data): what ``workbench monitor`` exits on.
:func:`check_packaged` does the same through a fresh local server of the project's packaged
model, stopped after (the headless monitor notebook and ``workbench monitor --file``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from workbench.config import Config, MonitorSettings
from workbench.data import load_frame
from workbench.errors import DataError, ServingError
from workbench.monitoring.drift import column_result, find_bento, quality_result, read_model_card
from workbench.monitoring.traffic import Scrape, Traffic, scrape, traffic
from workbench.results import MonitorResult, ReplayResult
from workbench.runtime.card import ModelCard
from workbench.runtime.monitoring.judgement import judge_report
from workbench.runtime.settings import FEEDBACK_PATH, METADATA_PATH, MONITOR_PATH
from workbench.schema import InputSchema
from workbench.serving.launch import serve, served_tag
from workbench.serving.network import require_loopback
from workbench.serving.replay import REQUEST_TIMEOUT_S, Answers, Target
from workbench.serving.replay import replay as replay_rows
from workbench.serving.server import Server

#: Labels per ``POST /feedback``.
FEEDBACK_BATCH = 1000
#: The monitoring replay stops after this long (``--max-seconds``).
MAX_REPLAY_SECONDS = 600.0


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _get(client: httpx.Client, url: str, what: str) -> Any:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise ServingError(f"{url}: cannot reach the service ({exc}); is it running?") from exc
    if response.status_code == 401:
        raise ServingError(
            f"{url}: 401, the API key was refused; set WORKBENCH_API_KEY to the service's key"
        )
    if response.status_code == 404:
        raise ServingError(
            f"{url}: 404, this service has no {what} (packaged before monitoring existed, or "
            "with monitor.window_rows: 0); package the model again"
        )
    if response.status_code != 200:
        raise ServingError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
    return response.json()


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def replay_frame(file: Path, schema: InputSchema) -> pd.DataFrame:
    """The rows of a replay file, or one message when it cannot be read or lacks an input."""
    frame = load_frame(file, what="replay", fix="check the replay file's path")
    missing = [c for c in schema.names if c not in frame.columns]
    if missing:
        raise DataError(
            f"{file}: lacks the model's input columns {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}; replay a file of the model's inputs"
        )
    return frame


class _FeedbackSender:
    """Labels for ``POST /feedback``, sent :data:`FEEDBACK_BATCH` at a time."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.client, self.url = client, url
        self.pending: list[dict[str, Any]] = []
        self.sent = self.unknown = 0

    def add(self, items: Iterable[dict[str, Any]]) -> None:
        self.pending.extend(items)
        if len(self.pending) >= FEEDBACK_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        answer = self.client.post(f"{self.url}{FEEDBACK_PATH}", json={"feedback": self.pending})
        if answer.status_code != 200:
            raise ServingError(
                f"{self.url}{FEEDBACK_PATH}: HTTP {answer.status_code}: {answer.text[:300]}"
            )
        self.unknown += int(answer.json().get("unknown", 0))
        self.sent += len(self.pending)
        self.pending.clear()


def replay(  # noqa: PLR0913 - the public entry point's options, keyword-only
    url: str,
    file: Path,
    *,
    key: str = "",
    rate: float = 500.0,
    batch_rows: int = 20,
    max_rows: int | None = None,
    max_seconds: float = MAX_REPLAY_SECONDS,
    on_progress: Callable[[int, int], None] | None = None,
    frame: pd.DataFrame | None = None,
) -> ReplayResult:
    """Send ``file``'s rows through the service at ``url`` (on this machine), at most ``rate``
    rows per second in requests of ``batch_rows``; labels (when the file has the target
    column) go to ``/feedback``. ``max_rows`` and ``max_seconds`` bound the replay. ``frame``:
    the file's rows, when the caller has read and checked them (:func:`replay_frame`)."""
    require_loopback(url, what="the monitoring replay")
    with httpx.Client(headers=_headers(key), timeout=REQUEST_TIMEOUT_S) as client:
        card = ModelCard.model_validate(_get(client, f"{url}{METADATA_PATH}", "model card"))
        schema = card.input_schema
        if frame is None:
            frame = replay_frame(file, schema)
        target = card.target
        labels = frame[target].tolist() if target in frame.columns else None
        service = Target("service", url, key, schema.to_records(frame[schema.names]))
        sender = _FeedbackSender(client, url)

        def after(start: int, end: int, answers: dict[str, Answers]) -> None:
            request_id = answers[service.label].request_ids[-1]
            if labels is not None and request_id is not None:
                sender.add(
                    {"request_id": request_id, "row": i, "label": _json_value(labels[start + i])}
                    for i in range(end - start)
                )
            if on_progress is not None:
                on_progress(end, len(service.rows))

        done = replay_rows(
            [service],
            batch_rows=batch_rows,
            max_rows=len(service.rows) if max_rows is None else max_rows,
            max_seconds=max_seconds,
            rate=rate,
            on_batch=after,
            what="the monitoring replay",
        )
        sender.flush()
    answers = done.answers[service.label]
    return ReplayResult(
        file=str(file),
        rows=done.sent - sum(1 for a in answers.answers if a is None),
        requests=done.requests,
        failed_requests=answers.errors,
        first_errors=answers.first_errors,
        feedback=sender.sent,
        feedback_unknown=sender.unknown,
        rate=rate,
        seconds=done.seconds,
        stopped_by=done.stopped_by,
    )


def fetch_report(url: str, *, key: str = "", timeout: float = 30.0) -> dict[str, Any]:
    """``GET /monitor`` of the service at ``url``."""
    with httpx.Client(headers=_headers(key), timeout=timeout) as client:
        report: dict[str, Any] = _get(client, f"{url}{MONITOR_PATH}", f"{MONITOR_PATH} route")
    return report


def judge(
    url: str,
    report: Mapping[str, Any],
    options: MonitorSettings,
    *,
    model_tag: str = "",
    replayed: ReplayResult | None = None,
    seconds: float = 0.0,
) -> MonitorResult:
    """The report judged by ``options`` (drift, data quality, live-metric gates:
    :func:`~workbench.runtime.monitoring.judgement.judge_report`) and a replay's refused
    requests."""
    refused = []
    if replayed is not None and replayed.failed_requests:
        first = replayed.first_errors[0] if replayed.first_errors else "no answer"
        refused.append(
            f"the service refused {replayed.failed_requests:,} of {replayed.requests:,} replayed "
            f"requests, so their rows are not in the window (first: {first}); `workbench score` "
            f"of {replayed.file} with --on-error skip lists every refused row and why"
        )
    judged = judge_report(
        report,
        fail_on_drift=options.fail_on_drift,
        fail_on_quality=options.fail_on_quality,
        gates=options.gates,
        failures=refused,
    )
    drift, quality = report.get("drift"), report.get("quality")
    return MonitorResult(
        url=url,
        model_tag=model_tag,
        verdict=None if drift is None else drift["verdict"],
        columns=[column_result(c) for c in (drift or {}).get("columns", [])],
        quality=None if quality is None else quality_result(quality),
        report=dict(report),
        replay=replayed,
        status=judged.status,
        failures=judged.failures,
        inconclusive=judged.inconclusive,
        notes=judged.notes,
        passed=judged.status == "PASS",
        checked_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        seconds=round(seconds, 3),
    )


def check_service(
    url: str,
    options: MonitorSettings,
    *,
    key: str = "",
    file: Path | None = None,
    rate: float = 500.0,
    max_rows: int | None = None,
    max_seconds: float = MAX_REPLAY_SECONDS,
    frame: pd.DataFrame | None = None,
) -> MonitorResult:
    """Optionally replay ``file`` (``frame``: its rows, already read) through the service, then
    read and judge its report."""
    started = time.perf_counter()
    url = url.rstrip("/")
    replayed = None
    if file is not None:
        replayed = replay(
            url,
            file,
            key=key,
            rate=rate,
            max_rows=max_rows,
            max_seconds=max_seconds,
            frame=frame,
        )
    with httpx.Client(headers=_headers(key), timeout=30) as client:
        card = ModelCard.model_validate(_get(client, f"{url}{METADATA_PATH}", "model card"))
    report = fetch_report(url, key=key)
    if replayed is not None:
        # The report is recomputed at most every refresh_seconds (and feedback another worker
        # received reaches the owner at its next refresh): read it once more after that.
        wait = float(report.get("options", {}).get("refresh_seconds", 0) or 0)
        if wait:
            time.sleep(min(wait, 10))
            report = fetch_report(url, key=key)
    return judge(
        url,
        report,
        options,
        model_tag=card.model_tag,
        replayed=replayed,
        seconds=time.perf_counter() - started,
    )


def check_packaged(
    config: Config,
    file: Path,
    *,
    run_dir: str | Path | None = None,
    rate: float = 500.0,
    max_rows: int | None = None,
    max_seconds: float = MAX_REPLAY_SECONDS,
    on_serve: Callable[[Server], None] | None = None,
) -> MonitorResult:
    """Serve the project's packaged Bento on 127.0.0.1, replay ``file`` through it, judge its
    report by ``config.monitor``; the server is stopped after, whatever happens. ``on_serve`` is
    told the server once it is ready. The file is read and checked against the Bento's inputs
    before any server starts."""
    tag = served_tag(config, run_dir=run_dir)
    schema = read_model_card(find_bento(tag)).input_schema
    frame = replay_frame(file, schema)
    with serve(config, run_dir=run_dir, bento_tag=tag) as server:
        if on_serve is not None:
            on_serve(server)
        return check_service(
            server.url,
            config.monitor,
            key=server.api_key,
            file=file,
            rate=rate,
            max_rows=max_rows,
            max_seconds=max_seconds,
            frame=frame,
        )


# ---------------------------------------------------------------- traffic from /metrics


@dataclass(frozen=True)
class LiveCheck:
    """One refresh of a live view: the traffic since the last scrape and the judged report."""

    scrape: Scrape
    """This refresh's scrape of ``/metrics`` (the next refresh's ``since``)."""
    traffic: Traffic | None
    """Since ``since``; None on the first refresh."""
    result: MonitorResult


def check_live(
    url: str, options: MonitorSettings, *, key: str = "", since: Scrape | None = None
) -> LiveCheck:
    """Scrape ``/metrics`` (traffic since ``since``), then read and judge ``GET /monitor``."""
    now = scrape(url)
    return LiveCheck(
        scrape=now,
        traffic=None if since is None else traffic(since, now),
        result=check_service(url, options, key=key),
    )
