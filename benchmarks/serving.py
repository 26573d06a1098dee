"""Serving speed, side by side: the generated service against hand-written BentoML baselines.

    .venv/bin/python benchmarks/serving.py [--quick] [--rounds N] [--seconds S] [--workers 1,2]

One run trains the reference model (RandomForestClassifier(n_estimators=100, max_depth=10), 20
numeric features, binary, seeded), packages it with workbench (validate, package: the generated
service) and builds the baselines in ``benchmarks/baselines/`` next to it, in a temporary BentoML
store. Then, on 127.0.0.1 only:

- in-process rates of the model: single-row ``predict_proba`` calls, rows/s in batches of 64
  and 1024;
- each server (a: ``generated``; b: ``plain``, hand-written BentoML; b': ``plain_batched``, the
  same with BentoML's adaptive batching; c: ``noop``, a BentoML endpoint doing nothing, the
  framework's ceiling; c': ``noop_typed``, the same without a declared media type), started with
  :class:`workbench.serving.Server` (free port, every process stopped by PID, also on failure):
  cold start to ready, closed-loop load of one-row JSON requests at concurrency 1, 8 and 32
  (req/s, p50/p95/p99, errors; each level bounded in requests *and* seconds), server CPU per
  request, resident memory of all its processes, and for several workers how the connections
  and the CPU split between them;
- exact parity of the generated service on the test rows (labels equal, probabilities within
  1e-9), and (full runs) the headless pipeline on the bundled example, wall time.

Servers run one at a time, in rounds (a, b, b', c, c', then again), and each figure is the median
over rounds: other load on the machine then hits every server alike. The load generator is wrk
(``apt-get install -y wrk``) when installed, else an asyncio client (stated in the results).
Writes ``benchmarks/results/serving.json`` and ``serving.md``. Not a test: nothing asserts on time.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BASELINES = HERE / "baselines"
MODEL_NAME = "serving_bench"
FEATURES = 20
SEED = 0
LEVELS = (1, 8, 32)
QUICK = {"rounds": 1, "seconds": 3.0, "max_requests": 20_000}
FULL = {"rounds": 3, "seconds": 8.0, "max_requests": 60_000}
SERVERS_QUICK = ("generated", "plain", "noop")
SERVERS_FULL = ("generated", "previous", "plain", "plain_batched", "noop", "noop_typed")
#: ``--ablation``: the generated service with one piece of the speed work undone: (file in the
#: service folder, text, replacement).
ABLATIONS = {
    "gen_api_path": (
        "workbench_runtime/asgi.py",
        "MIDDLEWARES = (ApiKeyAuth, MetadataRoute, PredictRoute)\n",
        "MIDDLEWARES = (ApiKeyAuth, MetadataRoute)  # ablation: BentoML's typed API path\n",
    ),
    "gen_greedy": (
        "workbench_runtime/batching.py",
        "        self.gap_s = gap_s\n        self.hold_factor = hold_factor\n",
        "        self.gap_s = 0.0\n        self.hold_factor = 0.0  # ablation: no hold\n",
    ),
    "gen_no_gc_freeze": (
        "workbench_runtime/service.py",
        "            gc.freeze()\n",
        "            pass  # ablation: no gc.freeze()\n",
    ),
    "gen_log_trace": (
        "service.py",
        "logging={\"access\": {\"enabled\": False}},\n    tracing={'excluded_urls': ['/predict']},",
        'logging={"access": {"enabled": True}},\n    tracing={},',
    ),
}
CEILING = "noop"
BASELINE = "plain"


# --------------------------------------------------------------------------------------------
# set-up: the model, the workbench project, the baselines


def make_project(folder: Path, name: str = MODEL_NAME, workers: int = 1) -> None:
    """The reference model and its data, and a workbench.yaml for it."""
    import joblib
    import pandas as pd
    import yaml
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "model.joblib").is_file():
        X, y = make_classification(
            n_samples=6000, n_features=FEATURES, n_informative=10, random_state=SEED
        )
        columns = [f"f{i:02d}" for i in range(FEATURES)]
        frame = pd.DataFrame(X, columns=columns)
        frame["target"] = y
        train, test = frame.iloc[:5000], frame.iloc[5000:]
        (folder / "data").mkdir(exist_ok=True)
        train.to_csv(folder / "data" / "train.csv", index=False)
        test.to_csv(folder / "data" / "test.csv", index=False)
        model = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=SEED)
        model.fit(train[columns], train["target"])
        joblib.dump(model, folder / "model.joblib")
    config = {
        "name": name,
        "model": "model.joblib",
        "data": {"train": "data/train.csv", "test": "data/test.csv", "target": "target"},
        "task": "classification",
        "gates": {"roc_auc": {"min": 0.8}},
        "validation": {"cv_folds": 0, "importance_top": 0, "champion": False},
        "service": {"workers": workers},
        "launch": {"probe_requests": 0},
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def build_baseline(kind: str, dest: Path, *, workers: int = 1) -> str:
    """Copy ``baselines/<kind>/service.py`` (with its worker count) and build it as a Bento."""
    from workbench.packaging.stage import build_bento

    folder = dest / f"{kind}_w{workers}"
    folder.mkdir(parents=True, exist_ok=True)
    source = (BASELINES / kind / "service.py").read_text()
    if workers != 1:
        source = source.replace("workers=1)", f"workers={workers})")
    (folder / "service.py").write_text(source)
    cls = next(  # the class decorated with @bentoml.service(...)
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef)
        and any("service" in ast.unparse(d) for d in node.decorator_list)
    )
    name = f"{kind.replace('_', '-')}-w{workers}"
    (folder / "bentofile.yaml").write_text(
        f'service: "service:{cls}"\nname: {name}\ninclude: ["service.py"]\n'
    )
    build_bento(folder, "bench")
    return f"{name}:bench"


def build_ablation(kind: str, generated_dir: Path, dest: Path) -> str:
    """The generated service with the ``ABLATIONS[kind]`` patch, built as its own Bento."""
    from workbench.packaging.stage import build_bento

    folder = dest / kind
    shutil.copytree(generated_dir, folder)
    relative, old, new = ABLATIONS[kind]
    source = (folder / relative).read_text()
    if source.count(old) != 1:
        raise SystemExit(f"ablation {kind}: the generated {relative} no longer contains {old!r}")
    (folder / relative).write_text(source.replace(old, new))
    bentofile = (folder / "bentofile.yaml").read_text()
    name = kind.replace("_", "-")
    (folder / "bentofile.yaml").write_text(
        bentofile.replace(f"name: {MODEL_NAME}\n", f"name: {name}\n")
    )
    build_bento(folder, "bench")
    return f"{name}:bench"


# --------------------------------------------------------------------------------------------
# measurements


def _bounded_times(fn: Any, *, count: int, seconds: float) -> list[float]:
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < count and time.perf_counter() < deadline:
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def in_process(model: Any, X: Any, *, seconds: float) -> dict[str, Any]:
    """The model alone: single-row ``predict_proba`` and rows/s in batches (bounded loops)."""
    import pandas as pd

    singles = [X.iloc[[i]] for i in range(min(len(X), 200))]
    index = iter(range(10**9))
    one = _bounded_times(
        lambda: model.predict_proba(singles[next(index) % len(singles)]),
        count=2000,
        seconds=seconds,
    )
    out: dict[str, Any] = {
        "single_row_p50_ms": round(statistics.median(one) * 1000, 3),
        "single_row_calls_per_s": round(len(one) / sum(one), 1),
        "single_row_calls": len(one),
    }
    for size in (64, 1024):
        batch = pd.concat([X] * (size // len(X) + 1)).head(size)
        times = _bounded_times(lambda b=batch: model.predict_proba(b), count=200, seconds=seconds)
        out[f"batch_{size}_rows_per_s"] = round(size / statistics.median(times), 0)
    return out


def tree(pid: int) -> list[Any]:
    import psutil

    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def workers_of(pid: int) -> list[Any]:
    """The worker processes of a ``bentoml serve`` (the ones running the service module)."""
    return [p for p in tree(pid)[1:] if "_bentoml_impl.worker" in " ".join(p.cmdline())]


def cpu_seconds(procs: list[Any]) -> dict[int, float]:
    import psutil

    out = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
        except psutil.Error:
            out[proc.pid] = 0.0
    return out


def memory_mib(procs: list[Any]) -> dict[str, float]:
    import psutil

    rss = uss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        uss += info.uss
    return {"rss_mib": round(rss / 2**20, 1), "uss_mib": round(uss / 2**20, 1)}


def connections_per_worker(workers: list[Any], port: int) -> list[int]:
    import psutil

    counts = []
    for proc in workers:
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.Error:
            counts.append(0)
            continue
        counts.append(
            sum(1 for c in conns if c.status == "ESTABLISHED" and c.laddr and c.laddr.port == port)
        )
    return counts


def start_server(tag: str, log_dir: Path) -> tuple[Any, float]:
    """Start with :class:`Server`, polling readiness every 20 ms for a finer cold-start figure."""
    import httpx

    from workbench.serving import Server

    class FineServer(Server):
        def wait_ready(self, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
            super().wait_ready(0.5)  # raises with the log tail

    started = time.perf_counter()
    server = FineServer.start(tag, log_dir=log_dir, timeout=120)
    return server, time.perf_counter() - started


def measure_server(
    tag: str,
    body: bytes,
    *,
    log_dir: Path,
    seconds: float,
    max_requests: int,
    generator: str,
) -> dict[str, Any]:
    """Cold start, then every level: load, server CPU per request, worker balance; then memory."""
    from loadgen import load

    server, cold = start_server(tag, log_dir)
    try:
        procs = tree(server.pid)
        workers = workers_of(server.pid)
        url = f"{server.url}/predict"
        load(url, body, concurrency=8, max_requests=2000, seconds=1.0, generator=generator)
        levels = []
        for concurrency in LEVELS:
            before = cpu_seconds(procs)
            seen: list[list[int]] = []
            sampler = threading.Timer(
                min(1.0, seconds / 2),
                lambda seen=seen: seen.append(connections_per_worker(workers, server.port)),
            )
            sampler.start()
            result = load(
                url,
                body,
                concurrency=concurrency,
                max_requests=max_requests,
                seconds=seconds,
                generator=generator,
            )
            sampler.cancel()
            after = cpu_seconds(procs)
            spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
            total = sum(spent.values())
            level = result.to_dict()
            level["server_cpu_us_per_request"] = (
                round(total / result.requests * 1e6, 1) if result.requests else None
            )
            if len(workers) > 1:
                level["worker_cpu_share"] = [
                    round(spent.get(w.pid, 0.0) / total, 3) if total else 0.0 for w in workers
                ]
                level["worker_connections"] = seen[0] if seen else None
            levels.append(level)
        memory = memory_mib(procs)
    finally:
        server.stop()
    return {
        "tag": tag,
        "cold_start_s": round(cold, 3),
        "workers": len(workers),
        "levels": levels,
        **memory,
    }


def headless_pipeline(work: Path) -> dict[str, Any]:
    """``workbench run`` (validate, package, launch with smoke, parity and probe) on the example."""
    sys.path.insert(0, str(REPO / "examples"))
    from breast_cancer import write_example

    project = work / "example"
    project.mkdir()
    write_example(project)
    shutil.copytree(REPO / "notebooks", project / "notebooks")
    shutil.copy(REPO / "workbench.yaml", project / "workbench.yaml")
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "run",
            "--config",
            "workbench.yaml",
            "--out",
            "run",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BENTOML_HOME": str(work / "bentoml-example")},
    )
    wall = time.perf_counter() - started
    return {
        "seconds": round(wall, 2),
        "exit_code": proc.returncode,
        "tail": (proc.stdout + proc.stderr).strip().splitlines()[-3:],
    }


# --------------------------------------------------------------------------------------------
# summary


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over rounds, per server and level (errors are summed)."""
    out: dict[str, Any] = {}
    for name, rounds in runs.items():
        levels = {}
        for i, concurrency in enumerate(LEVELS):
            samples = [r["levels"][i] for r in rounds]
            levels[str(concurrency)] = {
                key: _median([s[key] for s in samples])
                for key in (
                    "requests_per_s",
                    "p50_ms",
                    "p95_ms",
                    "p99_ms",
                    "server_cpu_us_per_request",
                )
            }
            levels[str(concurrency)]["errors"] = sum(s["errors"] for s in samples)
            levels[str(concurrency)]["requests"] = sum(s["requests"] for s in samples)
            levels[str(concurrency)]["rps_range"] = [
                min(s["requests_per_s"] for s in samples),
                max(s["requests_per_s"] for s in samples),
            ]
            if "worker_cpu_share" in samples[0]:
                levels[str(concurrency)]["worker_cpu_share"] = [
                    s["worker_cpu_share"] for s in samples
                ]
                levels[str(concurrency)]["worker_connections"] = [
                    s.get("worker_connections") for s in samples
                ]
        out[name] = {
            "workers": rounds[0]["workers"],
            "cold_start_s": _median([r["cold_start_s"] for r in rounds]),
            "rss_mib": _median([r["rss_mib"] for r in rounds]),
            "uss_mib": _median([r["uss_mib"] for r in rounds]),
            "levels": levels,
        }
    return out


def targets(summary: dict[str, Any], inproc: dict[str, Any], extra: dict[str, Any]) -> list[dict]:
    """The issue's goals for the generated service, each with the measured value and a verdict."""
    gen, plain, noop = summary["generated"], summary.get(BASELINE), summary.get(CEILING)
    c32, c1 = gen["levels"]["32"], gen["levels"]["1"]
    ceiling = noop["levels"]["32"]["requests_per_s"] if noop else None
    need = 1500.0 if ceiling is None or ceiling >= 1500 else 0.85 * ceiling
    rows = [
        {
            "goal": "c=32: >= 1,500 req/s (or >= 85 % of the no-op ceiling when that is lower), "
            "p99 < 60 ms, no errors",
            "measured": f"{c32['requests_per_s']:.0f} req/s (needed {need:.0f}; no-op "
            f"{ceiling or 0:.0f}), p99 {c32['p99_ms']:.1f} ms, {c32['errors']} errors",
            "met": c32["requests_per_s"] >= need and c32["p99_ms"] < 60 and c32["errors"] == 0,
        },
        {
            "goal": "c=1: p50 within 1.5 ms of the in-process single-row call",
            "measured": f"p50 {c1['p50_ms']:.2f} ms vs in-process "
            f"{inproc['single_row_p50_ms']:.2f} ms "
            f"(+{c1['p50_ms'] - inproc['single_row_p50_ms']:.2f} ms)",
            "met": c1["p50_ms"] - inproc["single_row_p50_ms"] <= 1.5,
        },
    ]
    if plain:
        rows += [
            {
                "goal": "cold start no worse than the plain BentoML service",
                "measured": f"{gen['cold_start_s']:.2f} s vs {plain['cold_start_s']:.2f} s",
                "met": gen["cold_start_s"] <= plain["cold_start_s"] * 1.05,
            },
            {
                "goal": "resident memory no worse than the plain BentoML service",
                "measured": f"RSS {gen['rss_mib']:.0f} MiB vs {plain['rss_mib']:.0f} MiB "
                f"(USS {gen['uss_mib']:.0f} vs {plain['uss_mib']:.0f})",
                "met": gen["rss_mib"] <= plain["rss_mib"] * 1.05,
            },
        ]
    if "pipeline" in extra:
        p = extra["pipeline"]
        rows.append(
            {
                "goal": "headless pipeline on the bundled example under 30 s wall",
                "measured": f"{p['seconds']:.1f} s (exit code {p['exit_code']})",
                "met": p["seconds"] < 30 and p["exit_code"] == 0,
            }
        )
    if "parity" in extra:
        rows.append(
            {
                "goal": "parity exact (labels equal, probabilities within 1e-9)",
                "measured": f"{extra['parity']['rows']} rows, "
                f"{extra['parity']['mismatches']} mismatches",
                "met": extra["parity"]["mismatches"] == 0,
            }
        )
    return rows


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value and base else "–"


def markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    plain, noop = summary.get(BASELINE), summary.get(CEILING)
    lines = [
        "| server | workers | c | req/s | p50 ms | p95 ms | p99 ms | errors | × plain | × no-op "
        "| server CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        for c in map(str, LEVELS):
            lv = s["levels"][c]
            base = plain["levels"][c]["requests_per_s"] if plain else None
            ceiling = noop["levels"][c]["requests_per_s"] if noop else None
            lines.append(
                f"| {name} | {s['workers']} | {c} | {lv['requests_per_s']:.0f} "
                f"| {lv['p50_ms']:.2f} | {lv['p95_ms']:.1f} | {lv['p99_ms']:.1f} | {lv['errors']} "
                f"| {_ratio(lv['requests_per_s'], base)} | {_ratio(lv['requests_per_s'], ceiling)} "
                f"| {lv['server_cpu_us_per_request'] or 0:.0f} |"
            )
    lines += [
        "",
        "| server | cold start to ready (s) | RSS all processes (MiB) | USS (MiB) |",
        "|---|---:|---:|---:|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['cold_start_s']:.2f} | {s['rss_mib']:.0f} | {s['uss_mib']:.0f} |"
        )
    ip = report["in_process"]
    lines += [
        "",
        f"In process: single-row `predict_proba` p50 {ip['single_row_p50_ms']:.2f} ms "
        f"({ip['single_row_calls_per_s']:.0f} calls/s); "
        f"{ip['batch_64_rows_per_s']:,.0f} rows/s in batches of 64; "
        f"{ip['batch_1024_rows_per_s']:,.0f} rows/s in batches of 1024.",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
    ]
    for t in report["targets"]:
        lines.append(f"| {t['goal']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    balance = [
        (name, c, s["levels"][c])
        for name, s in summary.items()
        if s["workers"] > 1
        for c in map(str, LEVELS)
    ]
    if balance:
        lines += ["", "Worker balance (share of server CPU; established connections per worker):"]
        for name, c, lv in balance:
            lines.append(
                f"- {name} c={c}: CPU {lv['worker_cpu_share']}, "
                f"connections {lv['worker_connections']}"
            )
    m = report["machine"]
    lines += [
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, bentoml {m['bentoml']}, "
        f"scikit-learn {m['sklearn']}; load generator {report['generator']}; "
        f"{report['settings']['rounds']} round(s) of {report['settings']['seconds']:.0f} s per "
        f"level, medians; load average {m['loadavg_start']} at start, {m['loadavg_end']} at end; "
        f"{report['date']}.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 3 s per level, 3 servers")
    parser.add_argument("--rounds", type=int, help="rounds over all servers (medians)")
    parser.add_argument("--seconds", type=float, help="time bound of each load level")
    parser.add_argument("--max-requests", type=int, help="request bound of each load level")
    parser.add_argument("--servers", help="comma-separated subset of " + ",".join(SERVERS_FULL))
    parser.add_argument(
        "--workers", default="1", help="worker counts to run generated and plain with, e.g. 1,2"
    )
    parser.add_argument("--generator", choices=("auto", "wrk", "asyncio"), default="auto")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also run the generated service with one change undone",
    )
    parser.add_argument("--no-pipeline", action="store_true", help="skip the headless example run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    preset = QUICK if args.quick else FULL
    rounds = args.rounds or preset["rounds"]
    seconds = args.seconds or preset["seconds"]
    max_requests = args.max_requests or preset["max_requests"]
    servers = (
        tuple(args.servers.split(","))
        if args.servers
        else (SERVERS_QUICK if args.quick else SERVERS_FULL)
    )
    worker_counts = [int(w) for w in args.workers.split(",")]

    work = Path(tempfile.mkdtemp(prefix="wb-serving-bench-"))
    os.environ["BENTOML_HOME"] = str(work / "bentoml")
    os.environ["WORKBENCH_STATE_DIR"] = str(work / "state")
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    sys.path.insert(0, str(HERE))
    import bentoml  # after BENTOML_HOME is set
    import joblib
    import pandas as pd
    import sklearn
    from loadgen import WRK_INSTALL, wrk_path

    from workbench import load_config, package, validate
    from workbench.results import ValidationResult
    from workbench.serving.checks import check_parity

    generator = args.generator
    if generator == "wrk" and wrk_path() is None:
        print(f"wrk is not installed: {WRK_INSTALL}", file=sys.stderr)
        return 2
    if generator == "auto":
        generator = "wrk" if wrk_path() else "asyncio"
        if generator == "asyncio":
            print(f"wrk not found, using the asyncio client (install wrk: {WRK_INSTALL})")
    loadavg_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    try:
        project = work / "project"
        print(f"work folder {work}; training the reference model ...", flush=True)
        tags: dict[str, str] = {}
        packaging_s = {}
        for workers in worker_counts:
            name = MODEL_NAME if workers == 1 else f"{MODEL_NAME}_w{workers}"
            make_project(project, name=name, workers=workers)
            config = load_config(project / f"{name}.yaml")
            started = time.perf_counter()
            validate(config).raise_for_gates()
            packaged = package(config)
            packaging_s[name] = round(time.perf_counter() - started, 2)
            suffix = "" if workers == 1 else f"_w{workers}"
            tags[f"generated{suffix}"] = packaged.bento_tag
        config = load_config(project / f"{MODEL_NAME}.yaml")
        model = joblib.load(project / "model.joblib")
        test = pd.read_csv(project / "data" / "test.csv").drop(columns="target")
        record = json.loads((project / ".workbench" / "validation.json").read_text())
        schema = ValidationResult.model_validate(record).input_schema
        body = json.dumps({"rows": schema.to_records(test.head(1))}).encode()
        for kind in servers:
            if kind == "generated":
                continue
            counts = worker_counts if kind == BASELINE else [1]
            for workers in counts:
                suffix = "" if workers == 1 else f"_w{workers}"
                print(f"building baseline {kind}{suffix} ...", flush=True)
                tags[f"{kind}{suffix}"] = build_baseline(kind, work / "baselines", workers=workers)
        order = [
            f"{kind}{'' if w == 1 else f'_w{w}'}"
            for kind in servers
            for w in (worker_counts if kind in ("generated", BASELINE) else [1])
        ]
        if args.ablation:
            for kind in ABLATIONS:
                print(f"building ablation {kind} ...", flush=True)
                tags[kind] = build_ablation(
                    kind, project / "bentos" / MODEL_NAME, work / "ablation"
                )
                order.append(kind)

        print("in-process rates ...", flush=True)
        inproc = in_process(model, test, seconds=3.0 if args.quick else 6.0)
        print(f"  {inproc}", flush=True)

        extra: dict[str, Any] = {}
        server, _ = start_server(tags["generated"], work)
        try:
            mismatches = check_parity(server.url, model, test[schema.names], schema)
        finally:
            server.stop()
        extra["parity"] = {"rows": len(test), "mismatches": len(mismatches)}
        print(f"parity: {extra['parity']}", flush=True)

        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
        for r in range(rounds):
            for name in order:
                print(f"round {r + 1}/{rounds}: {name} ...", end=" ", flush=True)
                result = measure_server(
                    tags[name],
                    body,
                    log_dir=work,
                    seconds=seconds,
                    max_requests=max_requests,
                    generator=generator,
                )
                result["loadavg"] = os.getloadavg()[0]
                runs[name].append(result)
                print(
                    ", ".join(
                        f"c={lv['concurrency']} {lv['requests_per_s']:.0f}/s "
                        f"p99 {lv['p99_ms']:.0f} ms"
                        for lv in result["levels"]
                    )
                    + f"; start {result['cold_start_s']:.2f} s, RSS {result['rss_mib']:.0f} MiB",
                    flush=True,
                )
        if not args.quick and not args.no_pipeline:
            print("headless pipeline on the bundled example ...", flush=True)
            extra["pipeline"] = headless_pipeline(work)
            print(f"  {extra['pipeline']}", flush=True)

        summary = summarize(runs)
        report: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "generator": generator,
            "settings": {
                "rounds": rounds,
                "seconds": seconds,
                "max_requests": max_requests,
                "levels": list(LEVELS),
                "quick": args.quick,
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "bentoml": bentoml.__version__,
                "sklearn": sklearn.__version__,
                "loadavg_start": loadavg_start,
                "loadavg_end": " ".join(f"{v:.2f}" for v in os.getloadavg()),
            },
            "model": "RandomForestClassifier(n_estimators=100, max_depth=10), 20 numeric "
            "features, binary; one row per request",
            "bento_tags": tags,
            "packaging_s": packaging_s,
            "serving_plan": json.loads(
                (project / "bentos" / MODEL_NAME / "model_card.json").read_text()
            )["serving"],
            "in_process": inproc,
            "summary": summary,
            "runs": runs,
            **extra,
        }
        report["targets"] = targets(summary, inproc, extra)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
        text = markdown(report)
        (args.out / "serving.md").write_text(text)
        print()
        print(text)
        print(f"wrote {args.out / 'serving.json'} and {args.out / 'serving.md'}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
