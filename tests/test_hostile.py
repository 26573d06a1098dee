"""The runtime against a hostile client (issue 29), in process: the numbered findings each have a
test here that failed on the code before the fix. The served ones (slowloris, SIGTERM, memory
after abuse) are in tests/test_abuse.py."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from test_runtime import (
    PREDICT_BODY,
    Row,
    asgi_app,
    call,
    mixed_model,
    run,
    settings,
    started,
)

from workbench.runtime import API_KEY_ENV, Serving
from workbench.runtime.http.guard import AuthGuard
from workbench.runtime.http.handlers import MAX_DETAIL, route_table
from workbench.runtime.http.routes import Route
from workbench.runtime.http.traffic import UNMATCHED

KEY = "a-key-of-twenty-four-chars"
GOOD = {"authorization": f"Bearer {KEY}"}


def series(text: str, name: str) -> list[str]:
    """The samples of metric ``name`` in a Prometheus text exposition."""
    return [line for line in text.splitlines() if line.startswith(name + "{")]


async def status_of(app: Any, path: str, headers: dict[str, str] | None = None) -> int:
    """GET ``path`` straight through the ASGI app (no client: thousands stay quick); the status."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("10.1.2.3", 40000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


async def many(app: Any, paths: list[str], headers: dict[str, str] | None = None) -> list[int]:
    return [await status_of(app, path, headers) for path in paths]


def test_finding_1_requests_to_unknown_paths_add_no_metric_series(tmp_path, monkeypatch):
    """Requests to unique unknown paths, without the key (401) and with it (on to BentoML), are
    all counted under one ``endpoint`` label: the series do not grow with the paths."""
    monkeypatch.setenv(API_KEY_ENV, KEY)
    serving = started(tmp_path, auth="api_key")
    app = asgi_app(serving)
    app.guard = AuthGuard(free_failures=10**6)  # the failures' slowing is tested apart
    run(call(app, "GET", "/metrics"))  # the scrape counts itself from the next one on
    sizes = []
    for round_ in ("a", "b"):
        statuses = run(many(app, [f"/{round_}{i}" for i in range(3000)]))
        statuses += run(many(app, [f"/{round_}{i}/x" for i in range(3000)], GOOD))
        assert set(statuses) == {401, 200}  # (the stand-in for BentoML answers unknown paths)
        text = run(call(app, "GET", "/metrics")).text
        sizes.append(len(text.splitlines()))
    assert sizes[0] == sizes[1]  # 6,000 more unique paths: not one more line
    endpoints = set(re.findall(r'endpoint="([^"]*)"', text))
    assert endpoints <= {*route_table(serving), UNMATCHED}
    total = series(text, "bentoml_service_request_total")
    unmatched = [s for s in total if f'endpoint="{UNMATCHED}"' in s]
    assert sum(float(s.rsplit(" ", 1)[1]) for s in unmatched) == 12_000


def test_finding_8_metrics_show_model_quality_only_with_the_key_or_when_made_public(
    tmp_path, monkeypatch
):
    """Without the key ``/metrics`` has the HTTP series only; the monitoring gauges (live and
    validation metrics, prediction shares, label counts) need the key, or ``public_metrics``."""
    monkeypatch.setenv(API_KEY_ENV, KEY)
    app = asgi_app(started(tmp_path, auth="api_key"))
    run(call(app, "POST", "/predict", json=PREDICT_BODY, headers=GOOD))
    opened = run(call(app, "GET", "/metrics"))
    assert opened.status_code == 200 and opened.headers["content-type"].startswith("text/plain")
    assert "bentoml_service_request_total" in opened.text
    assert "workbench_monitor_" not in opened.text
    keyed = run(call(app, "GET", "/metrics", headers=GOOD)).text
    assert "workbench_monitor_window_rows" in keyed and "workbench_monitor_prediction" in keyed
    public = Serving(
        Row, settings(tmp_path, service={"auth": "api_key"}, monitor={"public_metrics": True})
    )
    public.start(mixed_model(), freeze=False)
    shown = run(call(asgi_app(public), "GET", "/metrics")).text
    assert "workbench_monitor_window_rows" in shown


def test_finding_9_failed_keys_are_counted_then_slowed_then_limited_per_address(
    tmp_path, monkeypatch
):
    """Every failed key check is counted in ``/metrics``; past the free failures an address's
    401s come late, and while as many as allowed wait, it gets 429 at once, even with the right
    key; other addresses and the right key otherwise are not slowed."""
    monkeypatch.setenv(API_KEY_ENV, KEY)
    app = asgi_app(started(tmp_path, auth="api_key"))
    app.guard = AuthGuard(free_failures=3, delay_s=0.3, max_waiting=2)

    async def scenario() -> dict[str, Any]:
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
            free = [(await client.get("/metadata")).status_code for _ in range(3)]
            loop = asyncio.get_running_loop()
            begun = loop.time()
            late = [asyncio.ensure_future(client.get("/metadata")) for _ in range(2)]
            await asyncio.sleep(0.05)
            limited = await client.get("/metadata", headers=GOOD)  # saturated: 429, key unread
            answers = [await answer for answer in late]
            waited = loop.time() - begun
            served = await client.get("/metadata", headers=GOOD)
            metrics = (await client.get("/metrics")).text
        return locals()

    seen = run(scenario())
    assert seen["free"] == [401] * 3
    assert [a.status_code for a in seen["answers"]] == [401, 401] and seen["waited"] >= 0.3
    assert seen["limited"].status_code == 429 and seen["limited"].headers["retry-after"] == "1"
    assert seen["served"].status_code == 200
    counted = {
        re.search(r'action="(\w+)"', s).group(1): float(s.rsplit(" ", 1)[1])  # type: ignore[union-attr]
        for s in series(seen["metrics"], "workbench_auth_failures_total")
    }
    assert counted == {"refused": 3.0, "delayed": 2.0, "limited": 1.0}


def test_finding_9_the_failure_table_is_bounded_whatever_the_addresses():
    guard = AuthGuard(max_clients=100)
    for i in range(10_000):
        guard.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(guard.clients) == 100
    assert "10.0.39.15" in guard.clients  # the last one stays


def test_finding_4_checking_rows_stops_at_the_first_errors_it_reports(tmp_path):
    """5,000 bad rows in a small body are one 400 listing the first errors, found without
    checking every row; a row with thousands of unknown fields is one error, not thousands."""
    app = asgi_app(started(tmp_path))
    empty = run(call(app, "POST", "/predict", json={"rows": [{"colour": 1}] * 5000}))
    assert empty.status_code == 400
    assert empty.json()["error"] == (
        f"at least {MAX_DETAIL} validation errors in the request (checking stops at {MAX_DETAIL})"
    )
    detail = empty.json()["detail"]
    assert len(detail) == MAX_DETAIL and detail[-1]["loc"][:2] == ["rows", MAX_DETAIL - 1]
    wide = {f"field{i}": i for i in range(5000)}
    answer = run(call(app, "POST", "/predict", json={"rows": [PREDICT_BODY["rows"][0], wide]}))
    assert answer.status_code == 400
    assert answer.json()["detail"] == [
        {
            "type": "too_many_fields",
            "loc": ["rows", 1],
            "msg": "the row has 5,000 fields; the model has 2 columns",
        }
    ]
    few = run(
        call(app, "POST", "/predict", json={"rows": [{"colour": 1}, PREDICT_BODY["rows"][0]]})
    )
    assert few.json()["error"] == "1 validation error in the request"


def test_a_handler_slower_than_the_timeout_is_504(tmp_path: Path):
    """The dispatcher, now in front of BentoML's timeout middleware, answers 504 itself."""
    serving = started(tmp_path, timeout=1)
    app = asgi_app(serving)

    async def slow(request: Any) -> Any:
        await asyncio.sleep(5)

    app.routes["/metadata"] = Route(frozenset({"GET"}), slow)
    answer = run(call(app, "GET", "/metadata"))
    assert answer.status_code == 504
    assert answer.json() == {"error": "not answered within 1 s (service.timeout)"}
