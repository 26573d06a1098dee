"""The generated Bento beside the servers a user would pick instead, same model, one run.

    make peers                                        # once: .venv/peers (MLServer, FastAPI, ...)
    .venv/bin/python benchmarks/peers.py --quick      # 1 round of 3 s a level: ~4 min (to /tmp)
    .venv/bin/python benchmarks/peers.py              # 3 rounds of 8 s a level: ~15 min

The reference model of ``benchmarks/serving.py`` (``forest``: RandomForestClassifier, 100
trees, depth 10, 20 numeric features, binary) is served by, in turn:

- ``workbench``: the generated Bento (default ``service:`` but ``auth: none``, as the peers have
  none; onnxruntime);
- ``fastapi_onnx``: a hand-written FastAPI service, pydantic rows, onnxruntime
  (``baselines/peers``);
- ``starlette_onnx``: a minimal Starlette + orjson + onnxruntime app (``baselines/peers``);
- ``mlserver``: MLServer 1.7.1's scikit-learn runtime on the joblib file, adaptive batching off;
- ``mlserver_batching``: the same with adaptive batching (``max_batch_size`` 32,
  ``max_batch_time`` 1 ms);
- ``bentoml_batching``: BentoML by hand with its adaptive batching
  (``baselines/plain_batched``, scikit-learn);
- ``raw_asgi``: a constant ASGI endpoint on uvicorn + uvloop + httptools: the ceiling.

The ONNX peers run the graph workbench compiles (double precision, one thread); MLServer and
BentoML's batching run scikit-learn, as those products do by default. Each request is one row
(MLServer: the V2 inference protocol, asking for ``predict`` and ``predict_proba``); every
server answers a label and the class probabilities. The peers run from their own environment
(``.venv/peers``, ``make peers``; MLServer pins its own FastAPI, Starlette and uvicorn), the
Bentos from ``.venv``. Rounds go over every server in turn, each started afresh (cold start
recorded), warmed, then loaded with wrk at c=1 and c=32 (bounded in requests and seconds);
medians over rounds. Servers bind 127.0.0.1 on free ports and are stopped with their children.
Writes ``peers.json`` and ``peers.md`` to ``--out``. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
PEERS_APPS = HERE / "baselines" / "peers"
PEERS_PYTHON = REPO / ".venv" / "peers" / "bin" / "python"
QUICK = {"rounds": 1, "seconds": 3.0, "max_requests": 100_000}
FULL = {"rounds": 3, "seconds": 8.0, "max_requests": 400_000}
LEVELS = (1, 32)
SERVERS = (
    "workbench",
    "fastapi_onnx",
    "starlette_onnx",
    "mlserver",
    "mlserver_batching",
    "bentoml_batching",
    "raw_asgi",
)


@dataclass
class Peer:
    """One server of the run: how to start it and what to send it."""

    name: str
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    path: str = "/predict"
    ready: str = "/readyz"
    body: bytes = b""
    bento: str | None = None
    """A Bento tag: started with ``workbench.serving.Server`` instead of ``command``."""


def free_port() -> int:
    from workbench.serving.network import free_port as port

    return port()


def prepare(work: Path) -> tuple[dict[str, Peer], dict[str, Any]]:
    """Train, convert, package and write every server's files; the peers by name."""
    import bentoml
    import joblib
    import yaml
    from serving import MODEL_NAME, _train_test, build_baseline, make_project

    from workbench import load_config, package, validate
    from workbench.compilation.conversion import to_onnx_bytes

    train, test, model = _train_test("forest")
    features = [c for c in train.columns if c != "target"]
    project = work / "project"
    make_project(project, "forest", name="peers_workbench")
    config = load_config(project / "peers_workbench.yaml")
    validate(config).raise_for_gates()
    tag = package(config).bento_tag
    bentoml.sklearn.save_model(MODEL_NAME, joblib.load(project / "model.joblib"))
    batched = build_baseline("plain_batched", work / "baselines")
    onnx_file = work / "model.onnx"
    onnx_file.write_bytes(
        to_onnx_bytes(model, train[features], task="classification", precision="double")
    )
    row = test[features].iloc[0].to_dict()
    rows_body = json.dumps({"rows": [row]}).encode()
    classes = ",".join(str(c) for c in model.classes_)
    v2 = {
        "inputs": [
            {
                "name": "input",
                "shape": [1, len(features)],
                "datatype": "FP64",
                "data": [row[c] for c in features],
            }
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    peers = {
        "workbench": Peer("workbench", bento=tag, body=rows_body),
        "bentoml_batching": Peer("bentoml_batching", bento=batched, body=rows_body),
    }
    onnx_env = {"PEER_MODEL": str(onnx_file), "PEER_CLASSES": classes}
    for name in ("fastapi_onnx", "starlette_onnx"):
        peers[name] = Peer(
            name,
            command=[
                str(PEERS_PYTHON),
                "-m",
                "uvicorn",
                f"{name}:app",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=onnx_env,
            cwd=PEERS_APPS,
            body=rows_body,
        )
    for name, batch in (("mlserver", 1), ("mlserver_batching", 32)):
        folder = work / name / "forest"
        folder.mkdir(parents=True)
        shutil.copy(project / "model.joblib", folder / "model.joblib")
        settings = {
            "name": "forest",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }
        if batch > 1:
            settings |= {"max_batch_size": batch, "max_batch_time": 0.001}
        (folder / "model-settings.json").write_text(json.dumps(settings))
        peers[name] = Peer(
            name,
            command=[str(PEERS_PYTHON), "-m", "mlserver.cli.main", "start", str(folder.parent)],
            cwd=folder.parent,
            path="/v2/models/forest/infer",
            ready="/v2/health/ready",
            body=json.dumps(v2).encode(),
        )
    peers["raw_asgi"] = Peer(
        "raw_asgi",
        command=[
            sys.executable,
            str(HERE / "baselines" / "raw_asgi" / "app.py"),
            "--port",
            "{port}",
        ],
        body=rows_body,
    )
    facts = {
        "bento": tag,
        "bentoml_batching": batched,
        "onnx_bytes": onnx_file.stat().st_size,
        "config": yaml.safe_load((project / "peers_workbench.yaml").read_text()),
    }
    return peers, facts


class Running:
    """A started peer: its URL and how to stop it."""

    def __init__(self, peer: Peer, logs: Path) -> None:
        self.peer = peer
        self.server: Any = None
        self.process: subprocess.Popen[bytes] | None = None
        started = time.perf_counter()
        if peer.bento is not None:
            from serving import start_server

            self.server, _ = start_server(peer.bento, logs)
            self.url = self.server.url
        else:
            port = free_port()
            env = {**os.environ, **peer.env}
            if peer.name.startswith("mlserver"):  # every port MLServer opens: free, loopback
                env |= {
                    "MLSERVER_HOST": "127.0.0.1",
                    "MLSERVER_HTTP_PORT": str(port),
                    "MLSERVER_GRPC_PORT": str(free_port()),
                    "MLSERVER_METRICS_PORT": str(free_port()),
                }
            command = [part.replace("{port}", str(port)) for part in peer.command]
            log = (logs / f"{peer.name}-{port}.log").open("wb")
            self.process = subprocess.Popen(
                command,
                cwd=peer.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.url = f"http://127.0.0.1:{port}"
            self.wait_ready()
        self.cold_s = time.perf_counter() - started

    def wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.peer.name} exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + self.peer.ready, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.peer.name} not ready in {timeout} s")

    def pid(self) -> int:
        return int(self.server.pid if self.server is not None else self.process.pid)  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        elif self.process is not None:
            from workbench.serving.processes import terminate_tree

            terminate_tree(self.process.pid)
            self.process.wait(timeout=30)


def measure(peer: Peer, logs: Path, args: argparse.Namespace) -> dict[str, Any]:
    from loadgen import load
    from serving import memory_mib, tree

    running = Running(peer, logs)
    try:
        url = running.url + peer.path
        warm = load(url, peer.body, concurrency=8, max_requests=2000, seconds=1.0)
        if warm.errors:
            raise RuntimeError(f"{peer.name} answered errors while warming: {warm.error_kinds}")
        levels = {
            str(c): load(
                url,
                peer.body,
                concurrency=c,
                max_requests=args.max_requests,
                seconds=args.seconds,
                cpus=args.wrk_cpus,
            ).to_dict()
            for c in LEVELS
        }
        return {
            "cold_s": round(running.cold_s, 2),
            "levels": levels,
            **memory_mib(tree(running.pid())),
        }
    finally:
        running.stop()


def markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    ceiling = summary.get("raw_asgi", {}).get("c32_rps")
    ours = summary.get("workbench", {}).get("c32_rps")
    lines = [
        "# Peers side by side",
        "",
        f"{report['model']}; wrk pinned to CPU(s) {report['wrk_cpus']}; {report['rounds']} "
        f"round(s) of {report['seconds']} s a level; {report['cpus']} CPUs; load average "
        f"{report['loadavg_start'][0]:.2f} at the start, "
        f"{report['loadavg_end'][0]:.2f} at the end.",
        "",
        "| server | c=1 p50 ms | c=32 req/s | c=32 p99 ms | errors | ×workbench | ×raw | cold s "
        "| RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        ratio = f"{s['c32_rps'] / ours:.2f}" if ours else "–"
        raw = f"{s['c32_rps'] / ceiling:.2f}" if ceiling else "–"
        lines.append(
            f"| {name} | {s['c1_p50_ms']:.2f} | {s['c32_rps']:,.0f} | {s['c32_p99_ms']:.1f} "
            f"| {s['errors']} | {ratio} | {raw} | {s['cold_s']:.2f} | {s['rss_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    def med(name: str, pick: Any) -> float:
        return float(statistics.median(pick(r) for r in runs[name]))

    return {
        name: {
            "c1_p50_ms": med(name, lambda r: r["levels"]["1"]["p50_ms"]),
            "c32_rps": med(name, lambda r: r["levels"]["32"]["requests_per_s"]),
            "c32_p99_ms": med(name, lambda r: r["levels"]["32"]["p99_ms"]),
            "errors": sum(r["levels"][c]["errors"] for r in runs[name] for c in r["levels"]),
            "cold_s": med(name, lambda r: r["cold_s"]),
            "rss_mib": med(name, lambda r: r["rss_mib"]),
        }
        for name in runs
        if runs[name]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s a level")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--max-requests", type=int)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--wrk-cpus", default=str((os.cpu_count() or 1) - 1))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not PEERS_PYTHON.exists():
        print(f"the peers' environment is missing: run `make peers` ({PEERS_PYTHON})")
        return 2
    out = args.out or (Path(tempfile.gettempdir()) / "workbench-peers" if args.quick else RESULTS)
    work = Path(tempfile.mkdtemp(prefix="wb-peers-bench-"))
    os.environ["BENTOML_HOME"] = str(work / "bentoml")
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    try:
        load_start = os.getloadavg()
        peers, facts = prepare(work)
        chosen = [s for s in args.servers.split(",") if s in peers]
        logs = work / "logs"
        logs.mkdir()
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
        for round_ in range(args.rounds):
            order = chosen if round_ % 2 == 0 else chosen[::-1]
            for name in order:
                result = measure(peers[name], logs, args)
                runs[name].append(result)
                c32 = result["levels"]["32"]
                print(
                    f"round {round_ + 1} {name}: c=32 {c32['requests_per_s']:,.0f} req/s, "
                    f"p99 {c32['p99_ms']:.1f} ms, errors {c32['errors']}",
                    flush=True,
                )
        report = {
            "model": "forest (RandomForestClassifier 100 trees, depth 10, 20 features), one row "
            "a request",
            "rounds": args.rounds,
            "seconds": args.seconds,
            "wrk_cpus": args.wrk_cpus,
            "summary": summarize(runs),
            "runs": runs,
            "facts": facts,
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "cpus": os.cpu_count(),
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "peers.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (out / "peers.md").write_text(markdown(report))
        print(markdown(report))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
