"""The launch stage: run ``bentoml serve`` in the background, check it, always stop it.

A :class:`Server` is a ``bentoml serve`` process group on 127.0.0.1. It never blocks the caller,
is stopped with every worker (SIGTERM to the group, a grace period, then SIGKILL to whatever is
left of the tree), and is stopped when the owning interpreter (a notebook kernel) exits.
Each server is recorded in a state folder so one whose owner died can be found and stopped.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bentoml
import httpx
import numpy as np
import pandas as pd
import psutil
from prometheus_client.parser import text_string_to_metric_families

from workbench.artifacts import load_frame, load_model, read_record, records_dir, write_record
from workbench.config import Config
from workbench.errors import ServingError
from workbench.probe import probe
from workbench.reports import CheckResult, LaunchResult, PackageResult, ValidationResult
from workbench.schema import InputSchema
from workbench.sources import API_KEY_ENV
from workbench.validation import split_features

HOST = "127.0.0.1"
HEALTH = {"/livez", "/readyz", "/healthz", "/metrics"}
PARITY_TOLERANCE = 1e-9
PARITY_CHUNK = 256


def state_dir() -> Path:
    """Where running servers are recorded (``$WORKBENCH_STATE_DIR``, else ``~/.workbench``)."""
    root = Path(os.environ.get("WORKBENCH_STATE_DIR", Path.home() / ".workbench")).expanduser()
    folder = root / "servers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def terminate_tree(pid: int, *, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, wait ``grace`` s, then SIGKILL what remains.

    The descendants are collected first: SIGKILL on the parent alone would orphan the workers.
    """
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        for proc in procs:
            with suppress(psutil.Error):
                proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def _stop_at_exit(pid: int, record: Path) -> None:
    terminate_tree(pid, grace=5.0)
    record.unlink(missing_ok=True)


@dataclass
class Server:
    """A running ``bentoml serve`` of one Bento; use :meth:`start`, then :meth:`stop`."""

    bento_tag: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.time)
    _at_exit: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def record_path(self) -> Path:
        return state_dir() / f"{self.pid}.json"

    @classmethod
    def start(
        cls,
        bento_tag: str,
        *,
        port: int | None = None,
        timeout: float = 90.0,
        log_dir: Path | None = None,
    ) -> Server:
        """Start serving ``bento_tag`` on 127.0.0.1 and wait until ``/readyz`` answers 200."""
        if port is not None and not port_is_free(port):
            raise ServingError(
                f"port {port} on {HOST} is busy; choose another port or leave it empty "
                "for a free one"
            )
        port = port or free_port()
        log_dir = log_dir or state_dir()
        log_path = log_dir / f"serve-{bento_tag.replace(':', '-')}-{port}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - the child keeps writing after we return
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                bento_tag,
                "--host",
                HOST,
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "BENTOML_DO_NOT_TRACK": "True"},
        )
        log.close()
        server = cls(bento_tag=bento_tag, port=port, process=process, log_path=log_path)
        server.record_path.write_text(
            json.dumps(
                {
                    "pid": process.pid,
                    "owner": os.getpid(),
                    "bento_tag": bento_tag,
                    "url": server.url,
                    "log": str(log_path),
                    "started_at": server.started_at,
                }
            )
        )
        # Stopped when this interpreter exits (a kernel shutdown or restart), not when the handle
        # is dropped: `workbench.serve(config).url` must leave a running server behind.
        server._at_exit = functools.partial(_stop_at_exit, process.pid, server.record_path)
        atexit.register(server._at_exit)
        try:
            server.wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServingError(
                    f"`bentoml serve {self.bento_tag}` exited with code {self.process.returncode} "
                    f"before it was ready. Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ServingError(
            f"`bentoml serve {self.bento_tag}` was not ready after {timeout:.0f} s; "
            "it was stopped. "
            f"Last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def status(self) -> dict[str, Any]:
        """State, URL, PID, uptime and API requests served (from ``/metrics``)."""
        running = self.running
        return {
            "state": "running" if running else "stopped",
            "url": self.url,
            "pid": self.pid,
            "uptime_s": round(time.time() - self.started_at, 1) if running else 0.0,
            "requests_served": requests_served(self.url) if running else None,
            "bento_tag": self.bento_tag,
        }

    def stop(self, *, grace: float = 10.0) -> None:
        """Stop the server and all its workers (idempotent)."""
        terminate_tree(self.pid, grace=grace)
        self.process.wait(timeout=5)
        self.record_path.unlink(missing_ok=True)
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
            self._at_exit = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _auth() -> dict[str, str]:
    """The bearer header when ``WORKBENCH_API_KEY`` is set here (the server then requires it)."""
    key = os.environ.get(API_KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


def client_for(url: str, *, timeout: float = 30) -> bentoml.SyncHTTPClient:
    """BentoML's own client, with the API key when one is set."""
    return bentoml.SyncHTTPClient(url, token=os.environ.get(API_KEY_ENV) or None, timeout=timeout)


def requests_served(url: str) -> int | None:
    """API requests answered so far, summed from BentoML's Prometheus counters (health excluded)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "bentoml_service_request":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("endpoint") not in HEALTH:
                total += sample.value
    return int(total)


def snippets(url: str, row: dict[str, Any]) -> dict[str, str]:
    """Copy-ready calls of the service: curl and ``bentoml.SyncHTTPClient``."""
    body = json.dumps({"rows": [row]})
    auth = f' -H "Authorization: Bearer ${API_KEY_ENV}"' if os.environ.get(API_KEY_ENV) else ""
    return {
        "curl": f"curl -s -X POST {url}/predict -H 'content-type: application/json'{auth} \\\n"
        f"     -d '{body}'",
        "python": "import bentoml\n\n"
        f"with bentoml.SyncHTTPClient({url!r}) as client:\n"
        f"    answer = client.predict(rows=[{row!r}])\n"
        "print([row['prediction'] for row in answer])",
    }


def bad_requests(url: str, row: dict[str, Any], schema: InputSchema) -> str:
    """Malformed payloads must be answered 400 with a ``detail`` naming the row and the field."""
    first = schema.columns[0]
    bad_value = {"boolean": "maybe", "category": 12345}.get(first.kind, "not-a-number")
    cases: dict[str, tuple[dict[str, Any], list[Any]]] = {
        "unparseable value": ({"rows": [{**row, first.name: bad_value}]}, ["rows", 0, first.name]),
        "unknown field": ({"rows": [{**row, "__unknown__": 1}]}, ["rows", 0, "__unknown__"]),
        "no rows key": ({"data": [row]}, ["rows"]),
    }
    required = next((c.name for c in schema.columns if not c.nullable), None)
    if required is not None:
        missing = {k: v for k, v in row.items() if k != required}
        cases["missing field"] = ({"rows": [row, missing]}, ["rows", 1, required])
    wrong = []
    for name, (payload, loc) in cases.items():
        response = httpx.post(f"{url}/predict", json=payload, headers=_auth(), timeout=10)
        if response.status_code != 400:
            wrong.append(f"{name}: HTTP {response.status_code}")
        elif loc not in [d.get("loc") for d in response.json().get("detail", [])]:
            wrong.append(f"{name}: 400 without a detail at {loc}")
    if wrong:
        raise ServingError("malformed payloads were not refused as expected: " + "; ".join(wrong))
    return f"{len(cases)} malformed payloads answered 400 naming the row and field"


def _check(name: str, fn: Any) -> CheckResult:
    try:
        detail = fn()
    except Exception as exc:  # each check reports its own failure
        return CheckResult(name=name, passed=False, detail=f"{type(exc).__name__}: {exc}")
    return CheckResult(name=name, passed=True, detail=str(detail))


def smoke_test(url: str, rows: list[dict[str, Any]], *, model_tag: str) -> list[CheckResult]:
    """Health, readiness, metadata and one prediction request per given row."""

    def health(path: str) -> str:
        response = httpx.get(f"{url}{path}", timeout=10)
        response.raise_for_status()
        return f"HTTP {response.status_code}"

    def metadata() -> str:
        response = httpx.get(f"{url}/metadata", headers=_auth(), timeout=10)
        response.raise_for_status()
        card = response.json()
        if card.get("model_tag") != model_tag:
            raise ServingError(
                f"metadata names model {card.get('model_tag')}, expected {model_tag}"
            )
        return f"model {card['model_tag']}"

    def predict() -> str:
        with client_for(url) as client:
            answer = client.predict(rows=rows)
        return f"{len(rows)} rows -> {[a['prediction'] for a in answer]}"

    return [
        _check("livez", lambda: health("/livez")),
        _check("readyz", lambda: health("/readyz")),
        _check("metadata", metadata),
        _check("predict", predict),
    ]


def check_parity(
    url: str, model: Any, X: pd.DataFrame, schema: InputSchema
) -> list[dict[str, Any]]:
    """Send every row through the server; return the rows whose answer differs from in-process."""
    expected = np.asarray(model.predict(X)).tolist()
    has_proba = hasattr(model, "predict_proba") and hasattr(model, "classes_")
    expected_proba = model.predict_proba(X) if has_proba else None
    classes = [str(c) for c in np.asarray(getattr(model, "classes_", [])).tolist()]
    records = schema.to_records(X)
    mismatches: list[dict[str, Any]] = []
    with client_for(url, timeout=60) as client:
        for start in range(0, len(records), PARITY_CHUNK):
            answer = client.predict(rows=records[start : start + PARITY_CHUNK])
            for offset, row in enumerate(answer):
                i, served = start + offset, row["prediction"]
                problem = None
                if isinstance(served, float) or isinstance(expected[i], float):
                    if abs(float(served) - float(expected[i])) > PARITY_TOLERANCE:
                        problem = f"served {served!r}, in-process {expected[i]!r}"
                elif served != expected[i]:
                    problem = f"served {served!r}, in-process {expected[i]!r}"
                if problem is None and expected_proba is not None:
                    got = np.array([row["probabilities"][c] for c in classes])
                    diff = float(np.max(np.abs(got - expected_proba[i])))
                    if diff > PARITY_TOLERANCE:
                        problem = f"probabilities differ by {diff:.3g}"
                if problem:
                    mismatches.append({"row": i, "problem": problem})
    return mismatches


def sample_rows(X: pd.DataFrame, y: pd.Series, task: str) -> pd.DataFrame:
    """One row per class (classification) or the rows at the min, median and max target."""
    if task == "classification":
        picks = [int(np.flatnonzero(np.asarray(y) == label)[0]) for label in pd.unique(y)]
    else:
        order = np.argsort(np.asarray(y))
        picks = sorted({int(order[0]), int(order[len(order) // 2]), int(order[-1])})
    return X.iloc[picks]


def serve(config: Config, *, run_dir: str | Path | None = None, port: int | None = None) -> Server:
    """Start the Bento recorded by the package stage; the caller stops it (or uses ``with``)."""
    folder = records_dir(config.root, run_dir)
    packaged = PackageResult.model_validate(read_record(folder, "package", needed_by="launch"))
    return Server.start(
        packaged.bento_tag, port=port, timeout=config.launch.ready_timeout, log_dir=folder
    )


def check(server: Server, config: Config, *, run_dir: str | Path | None = None) -> LaunchResult:
    """Smoke and parity checks against a running server; writes ``launch.json``."""
    started = time.perf_counter()
    folder = records_dir(config.root, run_dir)
    packaged = PackageResult.model_validate(read_record(folder, "package", needed_by="launch"))
    validation = ValidationResult.model_validate(
        read_record(folder, "validation", needed_by="launch")
    )
    model = load_model(config.model_path)
    X, y = split_features(
        load_frame(config.test_path, what="test data"), config.data.target, what="test data"
    )
    schema = validation.input_schema
    X = X[schema.names]
    sample = schema.to_records(sample_rows(X, y, validation.task))
    checks = smoke_test(server.url, sample, model_tag=packaged.model_tag)
    checks.append(_check("bad requests", lambda: bad_requests(server.url, sample[0], schema)))
    mismatches: list[dict[str, Any]] = []
    parity = _check("parity", lambda: mismatches.extend(check_parity(server.url, model, X, schema)))
    if parity.passed:
        parity = CheckResult(
            name="parity",
            passed=not mismatches,
            detail=f"{len(X)} rows, {len(mismatches)} mismatches"
            + (f": {mismatches[:5]}" if mismatches else ""),
        )
    checks.append(parity)
    load = None
    if config.launch.probe_requests and parity.passed:
        load = probe(
            server.url,
            sample,
            requests=config.launch.probe_requests,
            concurrency=config.launch.probe_concurrency,
            time_limit=config.launch.probe_seconds,
            headers=_auth(),
        )
        checks.append(
            CheckResult(
                name="load probe",
                passed=load.errors == 0,
                detail=f"{load.requests} requests, {load.requests_per_s:.0f} req/s, "
                f"p99 {load.p99_ms:.1f} ms, {load.errors} errors",
            )
        )
    result = LaunchResult(
        bento_tag=packaged.bento_tag,
        url=server.url,
        checks=checks,
        parity_rows=len(X),
        mismatches=mismatches[:100],
        probe=load,
        snippets=snippets(server.url, sample[0]),
        passed=all(c.passed for c in checks),
        seconds=round(time.perf_counter() - started, 3),
    )
    write_record(folder, "launch", result.to_json())
    return result


def launch(
    config: Config, *, run_dir: str | Path | None = None, port: int | None = None
) -> LaunchResult:
    """Headless launch: start the packaged Bento, smoke-test it, check parity, stop it."""
    with serve(config, run_dir=run_dir, port=port) as server:
        return check(server, config, run_dir=run_dir)
