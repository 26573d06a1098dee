"""The launch stage against real `bentoml serve` processes: lifecycle, checks, bad requests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import joblib
import psutil
import pytest
from conftest import kernel_serving, session_processes
from sklearn.linear_model import LogisticRegression

from workbench.artifacts import read_record
from workbench.config import load_config
from workbench.errors import ServingError, StageOrderError
from workbench.reports.plots import latency_histogram_png
from workbench.serving import Server, check, launch, serve
from workbench.serving.checks import auth_headers, check_parity, client_for
from workbench.serving.probe import probe
from workbench.serving.server import bytecode_cache, state_dir

pytestmark = pytest.mark.serve


def package_tag(project: Path) -> str:
    return read_record(project / ".workbench", "package", needed_by="test")["bento_tag"]


def tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def test_launch_serves_checks_and_stops_every_process(
    packaged: Path, monkeypatch: pytest.MonkeyPatch
):
    """The launch checks pass against a real server and every process is stopped after. Under
    ``PYTHONDONTWRITEBYTECODE`` (containers, CI) the server still writes its private bytecode
    cache, or every start compiles from source. The checks' BentoML client leaves no
    ``bentoml-client-*`` upload folder behind, even while something still holds the client (its
    ``close()`` leaves the folder to the garbage collector; a kernel keeps it until it exits)."""
    config = load_config(packaged / "workbench.yaml")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    with serve(config) as server:
        assert server.url.startswith("http://127.0.0.1:")
        processes = tree(server.pid)
        assert len(processes) >= 2  # the arbiter and at least one worker
        for process in processes:
            env = process.environ()
            assert "PYTHONDONTWRITEBYTECODE" not in env
            assert env["PYTHONPYCACHEPREFIX"] == str(bytecode_cache())
        result = check(server, config)
        with client_for(server.url, server.api_key) as client:
            uploads = Path(client._temp_dir.name)  # BentoML's private upload folder
            assert uploads.is_dir()
        assert not uploads.exists()  # removed on leaving, though `client` still holds it
        assert result.passed, result.checks
        assert [c.name for c in result.checks] == [
            "livez",
            "readyz",
            "metadata",
            "predict",
            "bad requests",
            "parity",
            "load probe",
        ]
        assert result.parity_rows == 143 and result.mismatches == []
        assert result.probe is not None and result.probe.errors == 0
        assert result.probe.requests == config.launch.probe_requests
        assert "curl -s -X POST" in result.snippets["curl"]
        status = server.status()
        assert status["state"] == "running" and status["pid"] == server.pid
        # smoke + bad requests + parity + probe, all counted by the server's own /metrics
        assert status["requests_served"] >= result.probe.requests + 1
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)
    assert server.status()["state"] == "stopped"
    assert not server.record_path.exists()


def test_bad_requests_get_400_naming_the_row_and_field(packaged: Path):
    config = load_config(packaged / "workbench.yaml")
    with serve(config) as server:
        url = f"{server.url}/predict"
        key = auth_headers(server.api_key)
        bad_value = httpx.post(url, json={"rows": [{"mean radius": "abc"}]}, headers=key)
        assert bad_value.status_code == 400
        detail = bad_value.json()["detail"]
        assert {"loc": ["rows", 0, "mean radius"]}.items() <= detail[0].items()
        assert any(d["type"] == "missing" and d["loc"][:2] == ["rows", 0] for d in detail)
        not_json = httpx.post(
            url, content=b"{oops", headers={**key, "content-type": "application/json"}
        )
        assert not_json.status_code == 400
        unknown = httpx.post(url, json={"rows": [{"colour": "red"}]}, headers=key)
        assert unknown.status_code == 400
        assert any(d["loc"] == ["rows", 0, "colour"] for d in unknown.json()["detail"])


def test_a_busy_port_is_a_clear_error_not_a_hang(packaged: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ServingError, match=f"port {port} on 127.0.0.1 is busy"):
            Server.start(package_tag(packaged), port=port)
        assert time.monotonic() - started < 5


def test_a_server_not_ready_in_time_is_stopped_with_its_log(packaged: Path):
    before = {p.pid for p in session_processes()}
    with pytest.raises(ServingError, match=r"was not ready after 0 s; it was stopped.*Last lines"):
        Server.start(package_tag(packaged), timeout=0.3)
    time.sleep(0.5)
    started = [p for p in session_processes() if p.pid not in before]  # this session's only
    assert not started, [(p.pid, p.cmdline()) for p in started]


def test_a_bento_that_cannot_start_shows_the_log(packaged: Path):
    with pytest.raises(ServingError, match=r"exited with code .* Last lines of"):
        Server.start("no_such_bento:0123456789abcdef", timeout=60)


def test_a_model_altered_after_packaging_is_refused_and_parity_catches_it(project: Path):
    """Launch refuses a model file changed since validation; the parity check itself, run on
    the served Bento with the altered model in memory, reports every differing row."""
    from workbench import package, validate

    config = load_config(project / "workbench.yaml")
    validation = validate(config)
    package(config)
    # The in-memory model the data scientist holds now differs from the one in the Bento.
    model = joblib.load(project / "models" / "model.joblib")
    model.set_params(logisticregression=LogisticRegression(C=0.001, max_iter=1000))
    frame = __import__("pandas").read_csv(project / "data" / "train.csv")
    model.fit(frame.drop(columns="target"), frame["target"])
    joblib.dump(model, project / "models" / "model.joblib")
    with pytest.raises(StageOrderError, match="model file .* changed since the last validation"):
        launch(config)
    test = __import__("pandas").read_csv(project / "data" / "test.csv").drop(columns="target")
    with Server.start(package_tag(project)) as server:
        mismatches = check_parity(server.url, model, test, validation.input_schema, server.api_key)
    assert mismatches and "probabilities differ" in mismatches[0]["problem"]


def test_a_server_is_stopped_when_its_owner_exits_normally(packaged: Path):
    code = (
        "import sys\nfrom workbench.serving import Server\n"
        "print(Server.start(sys.argv[1]).pid, flush=True)\n"
    )
    owner = subprocess.run(
        [sys.executable, "-c", code, package_tag(packaged)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )
    server_pid = int(owner.stdout.strip())
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == "zombie"


def test_the_probe_is_bounded_in_count_and_time_and_loopback_only(packaged: Path):
    config = load_config(packaged / "workbench.yaml")
    with pytest.raises(ServingError, match="only targets this machine"):
        probe("http://10.0.0.1:3000", [{"a": 1}])
    with serve(config) as server:
        row = read_record(packaged / ".workbench", "validation", needed_by="test")
        names = [c["name"] for c in row["input_schema"]["columns"]]
        sample = {name: 1.0 for name in names}
        key = auth_headers(server.api_key)
        refused = probe(server.url, [sample], requests=5, concurrency=1, time_limit=60)
        assert refused.errors == 5 and refused.error_kinds == ["HTTP 401"]  # no key: refused
        counted = probe(
            server.url, [sample], requests=30, concurrency=3, time_limit=60, headers=key
        )
        assert counted.requests == 30 and counted.errors == 0
        assert counted.p50_ms <= counted.p95_ms <= counted.p99_ms
        timed = probe(
            server.url, [sample], requests=100_000, concurrency=2, time_limit=1.0, headers=key
        )
        assert 0 < timed.requests < 100_000 and timed.seconds < 10
        assert latency_histogram_png(timed).startswith(b"\x89PNG")


def test_shutting_down_the_kernel_stops_its_server(packaged: Path):
    with kernel_serving(package_tag(packaged)) as (km, server_pid):
        processes = tree(server_pid)
        url = json.loads((state_dir() / f"{server_pid}.json").read_text())["url"]
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        km.shutdown_kernel()  # graceful, as JupyterLab's "Shut Down Kernel" or a restart
    gone, alive = psutil.wait_procs(processes, timeout=15)
    assert not alive, [p.pid for p in alive]
