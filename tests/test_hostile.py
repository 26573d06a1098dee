"""The runtime against a hostile client (issue 29), in process: the numbered findings each have a
test here that failed on the code before the fix. The served ones (slowloris, SIGTERM, memory
after abuse) are in tests/test_abuse.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
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
from workbench.runtime.columns import MAX_CATEGORY_CHARS
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
    validation metrics, prediction shares, label counts, the status and its data-quality alarms)
    need the key, or ``public_metrics``."""
    monkeypatch.setenv(API_KEY_ENV, KEY)
    app = asgi_app(started(tmp_path, auth="api_key"))
    run(call(app, "POST", "/predict", json=PREDICT_BODY, headers=GOOD))
    opened = run(call(app, "GET", "/metrics"))
    assert opened.status_code == 200 and opened.headers["content-type"].startswith("text/plain")
    assert "bentoml_service_request_total" in opened.text
    assert "workbench_monitor_" not in opened.text
    keyed = run(call(app, "GET", "/metrics", headers=GOOD)).text
    assert "workbench_monitor_window_rows" in keyed and "workbench_monitor_prediction" in keyed
    assert 'workbench_monitor_status{status="PASS"} 1.0' in keyed  # the verdict: keyed too
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
    checking every row; a row with thousands of unknown fields has its first ones named."""
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
    detail = answer.json()["detail"]
    assert len(detail) == MAX_DETAIL
    assert detail[0] == {
        "type": "extra_forbidden",
        "loc": ["rows", 1, "field0"],
        "msg": "Extra inputs are not permitted",
    }
    one_more = {**PREDICT_BODY["rows"][0], "weight": 1}  # as pydantic says it
    answer = run(call(app, "POST", "/predict", json={"rows": [one_more]}))
    assert answer.json()["detail"] == [{**detail[0], "loc": ["rows", 0, "weight"]}]
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


# --- finding 2: the window keeps a bounded number of bytes whatever clients send ---------------


def test_finding_2_long_and_unseen_values_are_kept_short_and_echoed_short(tmp_path):
    """Unseen category values of the most characters a category takes (MAX_CATEGORY_CHARS, ASCII
    and not) are warned about with a
    short prefix (a small answer) and kept in the window as a short stand-in; answers are not
    kept as text; seen categories are kept as the training value itself."""
    serving = started(tmp_path)
    app = asgi_app(serving)
    sizes = []
    for i, char in enumerate("xé🙂" * 10):
        value = char * (MAX_CATEGORY_CHARS - 10) + f"{i:010d}"
        answer = run(
            call(app, "POST", "/predict", json={"rows": [{"size cm": 1.0, "colour": value}]})
        )
        assert answer.status_code == 200
        sizes.append(len(answer.content))
        (warning,) = answer.json()[0]["warnings"]
        assert (
            warning.startswith("colour: unseen category '")
            and f"({MAX_CATEGORY_CHARS:,} characters)" in warning
        )
        assert len(warning) < 120
    assert max(sizes) < 1000  # (a 400 KB value of emoji made a 1.1 MB answer)
    red = run(call(app, "POST", "/predict", json={"rows": [{"size cm": 1.0, "colour": "red"}]}))
    assert red.status_code == 200
    monitor = serving.monitor
    assert monitor is not None
    window = monitor.window
    kept = [window.columns["colour"][s] for s in window.order()]
    assert len(set(kept[:-1])) == 30  # distinct values stay distinct
    assert max(len(v) for v in kept) <= 40
    assert kept[-1] is next(v for v in serving.settings.categories["colour"] if v == "red")
    assert not hasattr(window, "answers")
    assert {type(p) for p in window.predictions[window.order()]} == {str}


def test_finding_2_text_columns_are_kept_as_their_lengths(tmp_path):
    from workbench.runtime.monitoring.window import Intake

    intake = Intake(["t", "c"], {"t": "text", "c": "category"}, {"c": ["a"]}, [])
    columns = intake.columns([("z" * 100_000, "a"), (None, "b" * 65), ("short", "q")])
    assert columns.numbers[:, 0].tolist()[::2] == [100_000, 5]  # a text is kept as its length
    assert np.isnan(columns.numbers[1, 0])  # and a missing one as NaN
    (category,) = columns.others
    assert category[0] == "a" and category[2] == "q"
    assert category[1].startswith("b" * 16 + "…#") and len(category[1]) < 40


def test_finding_2_a_long_training_category_is_seen_and_a_long_unseen_one_is_not(tmp_path):
    """A category value over the window's kept characters is compared with training's before it
    is digested: a training category of 200 characters is seen by the data-quality ``unseen``
    check, the drift's unseen share and the unseen-rows count; a long value training never saw
    is unseen in all three (a digest is never a training value)."""
    from workbench.runtime.settings import DRIFT_REFERENCE_FILE
    from workbench.validation.reference import build_reference

    long_seen, long_unseen = "L" * 199 + "!", "L" * 199 + "?"
    training = pd.DataFrame(
        {"size cm": [1.0, 2.0, 3.0, 4.0] * 30, "colour": ["red", "blue", long_seen] * 40}
    )
    reference = build_reference(training, {"size cm": "number", "colour": "category"})
    (tmp_path / DRIFT_REFERENCE_FILE).write_text(json.dumps(reference))
    spec = settings(tmp_path, categories={"colour": ["blue", long_seen, "red"]})
    serving = Serving(Row, spec)
    serving.start(mixed_model(), freeze=False)
    app = asgi_app(serving)

    def unseen_after(value: str) -> tuple[Any, Any, Any]:
        rows = [{"size cm": 1.0, "colour": value}] * 40
        assert run(call(app, "POST", "/predict", json={"rows": rows})).status_code == 200
        assert serving.monitor is not None
        serving.monitor.cache = None
        report = run(serving.monitor.report())
        (check,) = [
            c
            for c in report["quality"]["checks"]
            if c["column"] == "colour" and c["check"] == "unseen"
        ]
        return check["value"], report["unseen"]["columns"]["colour"], report["unseen"]["rows_share"]

    assert unseen_after(long_seen) == (0.0, 0.0, 0.0)
    assert unseen_after(long_unseen) == (0.5, 0.5, 0.5)


# --- findings 3 and 5: unforgeable feedback, unknown ids at once ---------------------------------


ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{32}")


def classifier(tmp_path: Path, **service: Any) -> Serving:
    """A started worker's serving of the test classifier, its classes known (for feedback)."""
    spec = settings(tmp_path, service=service, classes=["no", "yes"], probabilities=True)
    serving = Serving(Row, spec)
    serving.start(mixed_model(), freeze=False)
    return serving


def predict_ids(app: Any, n: int) -> list[str]:
    body = {"rows": [{"size cm": 1.0, "colour": "red"}, {"size cm": 5.0, "colour": "blue"}]}
    return [run(call(app, "POST", "/predict", json=body)).headers["x-request-id"] for _ in range(n)]


def feedback(app: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    answer = run(call(app, "POST", "/feedback", json={"feedback": items}))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_finding_3_request_ids_are_unguessable_and_reveal_nothing(tmp_path):
    """Ids are the worker's random tag and 128 bits that look random: no pid, no position, no
    order; ids made up from seen ones (a digit changed, the pid or a count put in) are unknown."""
    import os

    app = asgi_app(classifier(tmp_path))
    ids = predict_ids(app, 20)
    assert all(ID.fullmatch(i) for i in ids)
    assert len({i.split("-")[0] for i in ids}) == 1 and len(set(ids)) == 20
    assert f"{os.getpid():x}" not in {i.split("-")[0] for i in ids}
    tag = ids[0].split("-")[0]
    bodies = sorted(i.split("-")[1] for i in ids)
    assert bodies != [i.split("-")[1] for i in ids]  # not in the order they were given
    forged = [
        ids[0][:-1] + ("0" if ids[0][-1] != "0" else "1"),
        f"{tag}-{0:032x}",
        f"{tag}-{1:032x}",
        f"{os.getpid():x}-0",
        f"{os.getpid():x}-2",
    ]
    answer = feedback(app, [{"request_id": f, "label": "yes"} for f in forged])
    assert (answer["applied"], answer["unknown"]) == (0, len(forged))


def test_finding_3_a_second_label_for_a_row_is_a_conflict_never_an_overwrite(tmp_path):
    serving = classifier(tmp_path)
    app = asgi_app(serving)
    (rid,) = predict_ids(app, 1)
    first = feedback(app, [{"request_id": rid, "row": r, "label": "yes"} for r in (0, 1)])
    assert (first["applied"], first["conflict"]) == (2, 0)
    again = feedback(app, [{"request_id": rid, "row": 0, "label": "yes"}])
    assert (again["applied"], again["unchanged"], again["conflict"]) == (0, 1, 0)
    flipped = feedback(app, [{"request_id": rid, "row": r, "label": "no"} for r in (0, 1)])
    assert (flipped["applied"], flipped["conflict"]) == (0, 2)
    assert flipped["conflict_ids"] == [{"request_id": rid, "row": 0}, {"request_id": rid, "row": 1}]
    monitor = serving.monitor
    assert monitor is not None
    labels = [monitor.window.labels[s] for s in monitor.window.order()]
    assert labels == ["yes", "yes"]  # the first label stands
    report = run(monitor.report())
    assert report["metrics"]["labelled_rows"] == 2
    assert report["feedback"]["conflict"] == 2 and report["feedback"]["applied"] == 2


@pytest.fixture
def two_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, Path]:
    """Two workers' monitors sharing a folder made by the deployment (in this process)."""
    from workbench.runtime.monitoring.monitor import Monitor
    from workbench.runtime.monitoring.sharing import FOLDER_ENV, create_folder

    monkeypatch.delenv(FOLDER_ENV, raising=False)
    folder = create_folder()
    monkeypatch.setenv(FOLDER_ENV, str(folder))  # undone after the test
    serving = classifier(tmp_path, workers=2)
    other = Monitor(serving.settings, Row, serving.card)
    return serving, other, folder


def test_finding_5_with_two_workers_a_malformed_or_forged_id_is_unknown_at_once(two_workers):
    """Ids naming a pid beyond a C long, pid 0 or 1, no worker, or a live worker but forged are
    ``unknown`` at once, never a wait or a 5xx; a real id of the other worker reaches it."""
    import time

    serving, other, _ = two_workers
    app = asgi_app(serving)

    async def publish_other() -> str:
        rows = [Row.model_validate({"size cm": 2.0, "colour": "red"})]
        given = other.keep([rows], [['{"prediction": "no", "probabilities": null}']])[0]
        held, newest = other.window.request_rows(), other.window.end - 1
        other.sharing.publish_held(held, newest)
        return given

    real = run(publish_other())
    tag = real.split("-")[0]
    hostile = [
        f"{2**80:x}-0",
        "0-0",
        "1-0",
        "not an id",
        "../../etc-passwd",
        f"{tag}-{0:032x}",
        "00000000-" + real.split("-")[1],
    ]
    began = time.monotonic()
    answer = feedback(app, [{"request_id": h, "label": "yes"} for h in hostile])
    assert time.monotonic() - began < 1.0  # the bounded wait (2.5 s) is for real new ids only
    assert (answer["applied"], answer["unknown"]) == (0, len(hostile))
    forwarded = feedback(app, [{"request_id": real, "label": "yes"}])
    assert forwarded["applied"] == 1
    other._drain_inbox()
    assert [other.window.labels[s] for s in other.window.order()] == ["yes"]


# --- finding 6: the workers' folder is private and goes away ------------------------------------


def test_finding_6_the_shared_folder_is_private_and_its_files_too(two_workers):
    import stat

    serving, other, folder = two_workers
    assert folder.name.startswith("workbench-monitor-") and len(folder.name) > 20
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    run(other.report())  # publishes its summary
    other.sharing.publish_held({}, -1)
    files = list(folder.iterdir())
    assert {f.name.split("-")[0] for f in files} >= {"key", "serve.pid", "window", "worker"}
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), [
        (f.name, oct(f.stat().st_mode)) for f in files
    ]
    worker = next(f for f in files if f.name.startswith("worker-"))
    assert set(json.loads(worker.read_text())) == {"pid", "seq", "held"}  # no raw values


def test_finding_6_the_folder_goes_with_the_serve_process_and_a_killed_ones_next_time(tmp_path):
    import subprocess
    import sys

    code = (
        "from workbench.runtime.monitoring.sharing import create_folder; "
        "print(create_folder(), flush=True)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not Path(done.stdout.strip()).exists()  # removed at exit
    killed = subprocess.Popen(
        [sys.executable, "-c", code + "; import time; time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout is not None
    left = Path(killed.stdout.readline().strip())
    killed.kill()
    killed.wait()
    assert left.exists()
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert again.returncode == 0 and not left.exists()  # the next deployment removed it


# --- finding 10: the connection rules, on uvicorn itself (both of its HTTP parsers) -------------


@contextlib.contextmanager
def guarded_uvicorn(parser: str) -> Iterator[tuple[Any, int]]:
    """uvicorn serving a tiny app on loopback with the guarded protocol on ``parser`` (header
    deadline 0.5 s, idle grace 2 s): the server and its port; stopped and joined on exit."""
    import socket
    import threading
    import time

    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from workbench.runtime.http.connections import guarded_protocol

    base = HttpToolsProtocol if parser == "httptools" else H11Protocol
    protocol: Any = guarded_protocol(base)
    protocol.header_timeout, protocol.idle_grace = 0.5, 2.0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, http=protocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[listener])))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield server, port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_finding_10_headers_must_arrive_in_time_and_shutdown_answers_a_fresh_connection(
    parser: str,
):
    """uvicorn with the guarded protocol (header deadline 0.5 s here): a connection trickling
    its headers is closed with a 408; an idle one is closed; a normal request is answered; at
    shutdown a connection accepted just before, whose request comes after, is answered and then
    closed instead of being dropped."""
    import socket
    import time

    with guarded_uvicorn(parser) as (server, port):
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as normal:
            normal.sendall(request)
            assert normal.recv(1024).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(request[:5])
            time.sleep(0.2)
            slow.sendall(request[5:8])
            assert slow.recv(1024).startswith(b"HTTP/1.1 408")
            assert slow.recv(1024) == b""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as idle:
            began = time.monotonic()
            assert idle.recv(1024) == b"" and time.monotonic() - began < 3
        fresh = socket.create_connection(("127.0.0.1", port), timeout=5)
        time.sleep(0.1)
        server.should_exit = True  # uvicorn's graceful shutdown, as on SIGTERM
        time.sleep(0.3)
        fresh.sendall(request)
        answer = b""
        while chunk := fresh.recv(1024):  # answered, then closed by the server
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith((b"ok", b"0\r\n\r\n"))
        fresh.close()


def test_request_ids_are_the_siv_encryption_of_their_position():
    """An id is SIV over the position with keyed BLAKE2b, exactly: ``F1(position)`` then
    ``position XOR F2(F1(position))``, each function computed from scratch with its key (the
    service copies the keyed state instead of hashing the key again); each id deciphers to its
    position, and an id with any one of its 32 hex digits changed deciphers to nothing."""
    import hashlib

    from workbench.runtime.monitoring.ids import RequestIds

    ids = RequestIds(b"k" * 32, "0123abcd")
    check_key, mask_key = ids.keys

    def f(key: bytes, value: int) -> int:
        digest = hashlib.blake2b(value.to_bytes(8, "big"), key=key, digest_size=8)
        return int.from_bytes(digest.digest(), "big")

    def from_scratch(position: int) -> str:
        check = f(check_key, position)
        return f"0123abcd-{check:016x}{position ^ f(mask_key, check):016x}"

    for position in (0, 1, 4096, 2**63 - 1):
        given = ids.id_of(position)
        assert given == from_scratch(position)
        for i in range(9, len(given)):
            digit = "0" if given[i] != "0" else "1"
            assert ids.position_of(given[:i] + digit + given[i + 1 :]) is None
        assert ids.position_of(ids.id_of(position)) == position
