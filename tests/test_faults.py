"""The served Bento under faults and hostile clients, on a real `bentoml serve`: concurrent
clients never get each other's answers, a killed worker is replaced, SIGTERM answers every request
already accepted, an oversized body costs nothing, health keeps answering during a maximal
request, and the service refuses to start without its key or with a tampered model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import edit_config
from prometheus_client.parser import text_string_to_metric_families
from sklearn.ensemble import RandomForestClassifier
from test_service import mixed_project

from workbench import load_config, package, validate
from workbench.runtime import API_KEY_ENV, MODEL_FILE
from workbench.serving import Server
from workbench.serving.checks import auth_headers
from workbench.serving.network import free_port
from workbench.serving.processes import terminate_tree

pytestmark = pytest.mark.serve
FIGURES: dict[str, Any] = {}


def rss_mb(pid: int) -> float:
    parent = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20


def workers_of(server: Server) -> list[psutil.Process]:
    """The live worker processes of a server (a killed one is a zombie until it is reaped)."""
    found = []
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "_bentoml_impl.worker" in " ".join(
                child.cmdline()
            ):
                found.append(child)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> Path:
    """The example project with a 200-tree forest: slow enough per call to keep requests in
    flight."""
    from conftest import copy_project

    folder = copy_project(example_files, tmp_path_factory.mktemp("forest"))
    train = pd.read_csv(folder / "data" / "train.csv")
    model = RandomForestClassifier(n_estimators=200, max_depth=8, random_state=0)
    model.fit(train.drop(columns="target"), train["target"])
    joblib.dump(model, folder / "models" / "model.joblib")
    config = load_config(folder / "workbench.yaml")
    validate(config).raise_for_gates()
    package(config)
    return folder


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline over numbers, counts, flags and categories with gaps, served by 2 workers."""
    folder = mixed_project(
        tmp_path_factory.mktemp("mixed"), handle_unknown="ignore", name="faults_mixed"
    )
    edit_config(folder, service={"cors_origins": ["http://notebook.example"], "workers": 2})
    config = load_config(folder / "workbench.yaml")
    validate(config).raise_for_gates()
    package(config)
    return folder


def bento_tag(project: Path) -> str:
    return json.loads((project / ".workbench" / "package.json").read_text())["bento_tag"]


@pytest.fixture
def serving(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    project: Path = request.getfixturevalue(request.param)
    with Server.start(bento_tag(project), log_dir=tmp_path) as server:
        yield server, project


def expected_answers(project: Path, rows: list[dict[str, Any]]) -> tuple[list[Any], np.ndarray]:
    model = joblib.load(project / "models" / "model.joblib")
    frame = pd.DataFrame(rows).astype({c: float for c in rows[0] if c == "size cm"})
    return model.predict(frame).tolist(), model.predict_proba(frame)


@pytest.mark.parametrize("serving", ["forest", "mixed"], indirect=True)
def test_concurrent_clients_each_get_the_answers_for_their_own_rows(serving):
    """24 clients send different rows (1 to 5 per request) at once, 20 requests each: every answer
    equals the in-process prediction of the rows that request sent, so batching never mixes
    them up (a numeric forest, and a pipeline with categories and missing values)."""
    server, project = serving
    records = records_of(project)
    labels, proba = expected_answers(project, records)
    classes = [str(c) for c in joblib.load(project / "models" / "model.joblib").classes_]
    rng = np.random.default_rng(0)
    plans = [
        [rng.choice(len(records), size=int(rng.integers(1, 6)), replace=False) for _ in range(20)]
        for _ in range(24)
    ]
    start = threading.Barrier(len(plans))

    def client(plan: list[np.ndarray]) -> list[str]:
        problems = []
        with httpx.Client(base_url=server.url, headers=auth_headers(server.api_key)) as http:
            start.wait()
            for picks in plan:
                answer = http.post("/predict", json={"rows": [records[i] for i in picks]})
                assert answer.status_code == 200, answer.text
                for i, row in zip(picks, answer.json(), strict=True):
                    got = [row["probabilities"][c] for c in classes]
                    if row["prediction"] != labels[i] or np.max(np.abs(got - proba[i])) > 1e-6:
                        problems.append(f"row {i}: served {row}, expected {labels[i]}")
        return problems

    with ThreadPoolExecutor(len(plans)) as pool:
        problems = [p for found in pool.map(client, plans) for p in found]
    assert problems == []


def load_until(stop: threading.Event, url: str, key: str, row: dict[str, Any]) -> dict[str, int]:
    """One client sending one-row requests until ``stop`` (or 60 s): counts by outcome."""
    counts = {"ok": 0, "failed": 0}
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, headers=auth_headers(key), timeout=10) as http:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                ok = http.post("/predict", json={"rows": [row]}).status_code == 200
            except httpx.HTTPError:
                ok = False
            counts["ok" if ok else "failed"] += 1
    return counts


def records_of(project: Path) -> list[dict[str, Any]]:
    test = pd.read_csv(project / "data" / "test.csv")
    return json.loads(test.drop(columns=test.columns[-1]).to_json(orient="records"))


@pytest.mark.parametrize("serving", ["forest", "mixed"], indirect=True)
def test_a_killed_worker_is_replaced_and_only_requests_in_flight_fail(serving):
    """SIGKILL a worker under load from 4 clients: the arbiter starts a new one on its own and the
    only failed requests are the few in flight at the kill. With 2 workers `/readyz` never stops
    answering; with 1 it is back once BentoML's arbiter (which looks every 10 s) has replaced the
    worker and the model is loaded. How long that takes is a figure (printed), not a bound: the
    test waits up to 45 s, as a loaded 2-core machine can take ~18 s to load the model again."""
    server, project = serving
    row = records_of(project)[0]
    workers = workers_of(server)
    victim = workers[0]
    stop = threading.Event()
    unready: list[float] = []
    with ThreadPoolExecutor(4) as pool:
        loads = [pool.submit(load_until, stop, server.url, server.api_key, row) for _ in range(4)]
        time.sleep(1.0)
        victim.kill()
        killed = time.monotonic()
        replaced_after = None
        ready_after = None
        while time.monotonic() - killed < 45:
            try:
                ready = httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ready = False
            now = time.monotonic() - killed
            if not ready:
                unready.append(now)
            elif ready_after is None and (len(workers) > 1 or unready):
                ready_after = unready[-1] if unready else 0.0
            if replaced_after is None and any(
                w.pid not in {x.pid for x in workers} for w in workers_of(server)
            ):
                replaced_after = now
            if ready_after is not None and replaced_after is not None and ready:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        stop.set()
        counts = [f.result() for f in loads]
    failed = sum(c["failed"] for c in counts)
    FIGURES[f"worker kill, {len(workers)} worker(s)"] = {
        "unready_s": round(max(unready, default=0.0), 2),
        "replaced_after_s": replaced_after,
        "failed": failed,
        "ok": sum(c["ok"] for c in counts),
    }
    print(f"\nworker SIGKILL: {FIGURES[f'worker kill, {len(workers)} worker(s)']}")
    assert replaced_after is not None
    assert failed <= 4 * 2, counts  # each client loses at most what it had in flight
    assert sum(c["ok"] for c in counts) > 0
    if len(workers) > 1:
        assert max(unready, default=0.0) < 10  # the other worker kept answering
    else:
        assert ready_after is not None


def in_progress(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == "bentoml_service_request_in_progress"
        for s in family.samples
        if s.labels.get("endpoint") == "/predict"
    )


@pytest.mark.parametrize("serving", ["forest"], indirect=True)
def test_sigterm_answers_every_request_already_accepted_and_exits_in_time(serving):
    """8 clients send 1,000-row requests one after another (together just under the queue
    bound; at most 200 each, until the signal); once at least 4 are in progress (counted by the
    server itself), SIGTERM goes to `bentoml serve` alone, as an orchestrator sends it. Every
    request in progress at the signal is answered 200 (none lost, none 5xx) and the server exits
    within its grace period."""
    server, project = serving
    test = pd.read_csv(project / "data" / "test.csv").drop(columns="target")
    rows = json.loads(pd.concat([test] * 10).head(1000).to_json(orient="records"))
    answers: list[tuple[int, float]] = []  # (status or -1 for no answer, when)
    stop = threading.Event()  # set just before the signal: no new request after it

    def send() -> None:
        # One request at a time, so the load lasts until the signal however fast the server is.
        with httpx.Client(headers=auth_headers(server.api_key), timeout=60) as http:
            for _ in range(200):
                if stop.is_set():
                    return
                try:
                    status = http.post(f"{server.url}/predict", json={"rows": rows}).status_code
                except httpx.HTTPError:
                    status = -1
                answers.append((status, time.monotonic()))
                if status != 200:
                    return

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while (accepted := in_progress(server.url)) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    os.kill(server.pid, signal.SIGTERM)
    signalled = time.monotonic()
    server.process.wait(timeout=30)
    exited = time.monotonic() - signalled
    for thread in threads:
        thread.join(timeout=60)
    statuses = [status for status, _ in answers]
    FIGURES["sigterm"] = {
        "in_progress_at_signal": accepted,
        "answered": statuses.count(200),
        "answered_after_signal": sum(1 for s, when in answers if s == 200 and when > signalled),
        "not_answered": statuses.count(-1),
        "exit_s": round(exited, 2),
    }
    print(f"\nSIGTERM: {FIGURES['sigterm']}")
    # The gauge was read just before the signal: requests it counted either finished before the
    # signal or after it, and each of them must have been answered.
    assert accepted >= 4
    assert statuses.count(200) >= accepted, answers
    assert set(statuses) <= {200, -1}, answers  # never a 5xx; -1 only for one never accepted
    assert exited < 30


@pytest.mark.parametrize("serving", ["forest"], indirect=True)
def test_a_body_ten_times_the_limit_is_413_at_once_and_costs_no_memory(serving):
    """A 40 MiB body against the 4 MiB limit, declared (Content-Length) and chunked: a 413 the
    client reads (at once when declared; a chunked body is read away first, within the lingering
    bound), and the server's memory grows by less than 20 MB."""
    server, _ = serving
    limit = 4 << 20
    before = rss_mb(server.pid)
    body = b'{"rows": [' + b",".join([b'{"mean radius": 1.0}'] * (10 * limit // 20)) + b"]}"
    assert len(body) > 10 * limit
    headers = {**auth_headers(server.api_key), "content-type": "application/json"}
    started = time.perf_counter()
    declared = httpx.post(f"{server.url}/predict", content=body, headers=headers, timeout=30)
    declared_s = time.perf_counter() - started

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 16):
            yield body[start : start + 1 << 16]

    started = time.perf_counter()
    try:
        chunked = httpx.post(f"{server.url}/predict", content=pieces(), headers=headers, timeout=30)
        chunked_status = chunked.status_code
    except httpx.HTTPError as exc:  # the server may close while the rest is still being sent
        chunked_status = getattr(getattr(exc, "response", None), "status_code", 413)
    chunked_s = time.perf_counter() - started
    grown = rss_mb(server.pid) - before
    FIGURES["oversized body"] = {
        "declared_s": declared_s,
        "chunked_s": chunked_s,
        "rss_growth_mb": grown,
    }
    print(
        f"\n40 MiB body: 413 in {declared_s:.3f} s (declared), {chunked_s:.3f} s (chunked), "
        f"+{grown:.1f} MB"
    )
    assert declared.status_code == 413 and "4,194,304 bytes" in declared.json()["error"]
    assert chunked_status == 413
    # Declared: answered from Content-Length. Chunked: the rest of the body is read away (at most
    # 5 s, runtime/http/connections.py) so that the client, which sends it all before reading,
    # gets its 413 instead of a reset: seconds on a loaded machine, never the whole timeout.
    assert declared_s < 1 and chunked_s < 10
    assert grown < 20


@pytest.mark.parametrize("serving", ["forest"], indirect=True)
def test_health_keeps_answering_while_a_maximal_request_is_served(serving):
    """A request at the row limit (5,000 rows, under the body limit) while /livez is asked every
    20 ms: the slowest health answer stays far below the old multi-second stall (the measured
    figure is in docs/robustness.md; this asserts a generous bound, not the target)."""
    server, project = serving
    test = pd.read_csv(project / "data" / "test.csv").drop(columns="target")
    rows = json.loads(pd.concat([test] * 40).head(5000).to_json(orient="records"))
    done = threading.Event()
    status: list[int] = []

    def big() -> None:
        with httpx.Client(headers=auth_headers(server.api_key), timeout=60) as http:
            status.append(http.post(f"{server.url}/predict", json={"rows": rows}).status_code)
        done.set()

    latencies = []
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.get("/livez")
        thread = threading.Thread(target=big)
        thread.start()
        while not done.is_set():
            started = time.perf_counter()
            http.get("/livez")
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
        thread.join()
    FIGURES["health during maximal request"] = {"probes": len(latencies), "max_ms": max(latencies)}
    print(
        f"\n/livez during a 5,000-row request: {len(latencies)} probes, max {max(latencies):.1f} ms"
    )
    assert status == [200]
    assert max(latencies) < 500


def serve_directly(tag: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    port = free_port()
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                tag,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


@pytest.mark.parametrize(
    ("key", "said"),
    [
        (None, [f"{API_KEY_ENV} is not set", "service.auth: none"]),
        ("a", ["1 characters long", "at least 16", "secrets.token_urlsafe"]),  # issue 29
    ],
)
def test_without_a_key_or_with_a_short_one_the_bento_refuses_to_start_with_one_clear_line(
    forest: Path, tmp_path: Path, key: str | None, said: list[str]
):
    """`service.auth: api_key` and no WORKBENCH_API_KEY, or one under 16 characters: `bentoml
    serve` exits 1 before any worker starts, saying what to set (never an open or weakly keyed
    server)."""
    env = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}
    if key is not None:
        env[API_KEY_ENV] = key
    process = serve_directly(bento_tag(forest), env, tmp_path / "serve.log")
    try:
        code = process.wait(timeout=60)
    finally:
        terminate_tree(process.pid, grace=5)
    log = (tmp_path / "serve.log").read_text()
    assert code == 1, log
    assert all(words in log for words in said), log
    assert "Traceback" not in log


def test_a_tampered_model_refuses_to_start_naming_both_hashes(forest: Path, tmp_path):
    """One changed byte in the stored model (in a copy of the store): `bentoml serve` exits 1
    naming the sha256 found and the one recorded at packaging."""
    store = tmp_path / "store"
    shutil.copytree(os.environ["BENTOML_HOME"], store, ignore=shutil.ignore_patterns("prometheus*"))
    tag = bento_tag(forest)
    name, version = tag.split(":")
    card = json.loads((store / "bentos" / name / version / "src" / "model_card.json").read_text())
    model_name, model_version = card["model_tag"].split(":")
    pickled = store / "models" / model_name / model_version / MODEL_FILE
    data = bytearray(pickled.read_bytes())
    data[-2] ^= 0xFF
    pickled.write_bytes(bytes(data))
    env = {**os.environ, "BENTOML_HOME": str(store), API_KEY_ENV: "k3y-of-sixteen-chars"}
    process = serve_directly(tag, env, tmp_path / "serve.log")
    try:
        code = process.wait(timeout=60)
    finally:
        terminate_tree(process.pid, grace=5)
    log = (tmp_path / "serve.log").read_text()
    assert code == 1, log
    assert card["model_sha256"] in log and "altered or corrupted" in log
