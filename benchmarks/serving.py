"""Serving speed, side by side: the generated service, hand-written BentoML and a raw ASGI ceiling.

The generated service against hand-written BentoML baselines and a raw ASGI constant endpoint on
the same HTTP stack.

    .venv/bin/python benchmarks/serving.py [--quick] [--models forest,pipeline,lightgbm,regressor]
        [--rounds N] [--seconds S] [--workers 1,2] [--profile SECONDS] [--out DIR]

One run trains and packages (workbench validate + package: the generated service) up to four
models, each in a temporary BentoML store:

- ``forest``, the reference model: RandomForestClassifier(n_estimators=100, max_depth=10), 20
  numeric features, binary, seeded;
- ``pipeline``: a Pipeline of a ColumnTransformer (StandardScaler on 10 numbers,
  OneHotEncoder(handle_unknown="ignore") on 3 text categories) and a LogisticRegression;
- ``lightgbm``: the pipeline's data through OneHotEncoder and an LGBMClassifier (100 trees): a
  model with more than scikit-learn, compiled through onnxmltools' converter where parity holds;
- ``regressor``: Ridge on 20 numeric features.

Each model is packaged with ``service.runtime: auto`` (``generated``: the ONNX graph in
onnxruntime when it answers every test row as scikit-learn does, which workbench decides and the
report states) and ``service.runtime: sklearn`` (``generated_sklearn``), and with every
``--workers`` count (``generated_w2``: the auto runtime with 2 workers). For the forest only, the
hand-written baselines in ``benchmarks/baselines/`` are built next to it (``plain``,
``plain_batched``, ``previous``, ``noop``, ``noop_typed``), and ``raw_asgi``: a tiny ASGI app
(no BentoML) in uvicorn with uvloop and httptools, answering ``POST /predict`` with a constant
JSON body, the ceiling every other server's req/s is divided by (``×raw``). Then, on 127.0.0.1
only:

- in-process cost of what the service runs per request (single-row calls of the scikit-learn
  model and of the ONNX graph the Bento serves, rows/s in batches of 64 and 1024);
- each server (started with :class:`workbench.serving.Server`, or for ``raw_asgi`` as its own
  process; free port, every process stopped by PID, also on failure): cold start to ``/readyz``
  200, closed-loop load of one-row JSON requests at concurrency 1, 8 and 32 (req/s,
  p50/p95/p99, errors; each level bounded in requests *and* seconds), server CPU per request,
  resident memory of all its processes, whether uvloop and httptools are loaded in its workers,
  and for several workers how the connections and the CPU split between them;
- exact parity of each generated service on the test rows (first round), and (full runs) the
  headless pipeline on the bundled example, wall time;
- with ``--profile S``: py-spy (``record --nonblocking``) on the generated workers for S seconds
  under c=32 load, after the rounds: collapsed stacks and a text top list in the out folder.

Servers run one at a time, in rounds (all servers of all models, then again), and each figure is
the median over rounds: other load on the machine then hits every server alike. The load
generator is wrk (``apt-get install -y wrk``) when installed, else an asyncio client (stated in
the results). Writes ``serving.json`` and ``serving.md`` to ``--out`` (``benchmarks/results``;
``--quick`` defaults to a folder under /tmp, so a quick run never replaces the published figures).
Not a test: nothing asserts on time.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "workbench-serving-quick"
BASELINES = HERE / "baselines"
RAW_APP = BASELINES / "raw_asgi" / "app.py"
MODEL_NAME = "serving_bench"
FEATURES = 20
SEED = 0
LEVELS = (1, 8, 32)
#: Each level is bounded in time and in requests; the request bound is set far above what the
#: time bound lets the fastest server (the raw ASGI endpoint, ~20,000-40,000 req/s here) answer, so
#: every server is measured over the same time (the load generator reports the true duration when
#: a level stops early at the request bound: ``stopped_early`` in the JSON).
QUICK = {"rounds": 1, "seconds": 3.0, "max_requests": 200_000}
FULL = {"rounds": 3, "seconds": 8.0, "max_requests": 500_000}
#: The models a run can measure (``--models``): what each is, its Bento name, task and gates.
MODELS: dict[str, dict[str, Any]] = {
    "forest": {
        "what": "RandomForestClassifier(n_estimators=100, max_depth=10), 20 numeric features, "
        "binary",
        "name": MODEL_NAME,
        "task": "classification",
        "gates": {"roc_auc": {"min": 0.8}},
    },
    "pipeline": {
        "what": "Pipeline(ColumnTransformer(StandardScaler on 10 numbers, "
        "OneHotEncoder(handle_unknown='ignore') on 3 text categories), LogisticRegression), binary",
        "name": "serving_bench_pipeline",
        "task": "classification",
        "gates": {"roc_auc": {"min": 0.7}},
    },
    "lightgbm": {
        "what": "Pipeline(ColumnTransformer(OneHotEncoder(handle_unknown='ignore') on 3 text "
        "categories, 10 numbers passed through), LGBMClassifier(n_estimators=100, "
        "num_leaves=31)), binary (the pipeline's data)",
        "name": "serving_bench_lightgbm",
        "task": "classification",
        "gates": {"roc_auc": {"min": 0.7}},
    },
    "regressor": {
        "what": "Ridge(alpha=1.0), 20 numeric features",
        "name": "serving_bench_ridge",
        "task": "regression",
        "gates": {"r2": {"min": 0.5}},
    },
}
MODELS_QUICK = ("forest",)
MODELS_FULL = ("forest", "pipeline", "lightgbm", "regressor")
#: The generated service, per ``service.runtime``.
GENERATED = {"generated": "auto", "generated_sklearn": "sklearn"}
RAW = "raw_asgi"
SERVERS_QUICK = ("generated", "generated_sklearn", "plain", "noop", RAW)
SERVERS_FULL = (
    "generated",
    "generated_sklearn",
    "previous",
    "plain",
    "plain_batched",
    "noop",
    "noop_typed",
    RAW,
)
#: ``--ablation``: the generated service with one piece of the speed work undone: (file in the
#: service folder, text, replacement).
ABLATIONS = {
    "gen_api_path": (
        "workbench_runtime/http/handlers.py",
        '            PREDICT_PATH: Route(frozenset({"POST"}), h.predict, doc=openapi.predict),\n',
        "            PREDICT_PATH: Route(None, doc=openapi.predict),  # ablation: typed API\n",
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
        "settings.json",
        '"access_log": false,\n    "tracing": false,',
        '"access_log": true,\n    "tracing": true,',
    ),
}
CEILING = RAW
BENTOML_CEILING = "forest/noop"
BASELINE = "forest/plain"
#: The issue's targets for the reference forest's generated service.
TARGET_RPS_C32 = 5000.0
TARGET_P99_C32_MS = 15.0
TARGET_P50_C1_MS = 1.0


@dataclass
class Entry:
    """One server of the run."""

    key: str
    """``<model>/<server>`` (``raw_asgi`` alone: it serves no model)."""
    model: str
    server: str
    """``generated``, ``generated_sklearn``, a baseline kind, an ablation, or ``raw_asgi``."""
    workers: int
    tag: str
    """The Bento tag (``raw_asgi``: the app's path)."""
    runtime: str
    """What answers: ``onnx`` or ``sklearn`` (generated), ``sklearn`` (baselines), ``none``."""


# --------------------------------------------------------------------------------------------
# set-up: the models, the workbench projects, the baselines


def _train_test(kind: str) -> tuple[Any, Any, Any]:
    """(train frame, test frame, fitted model) for ``kind``, seeded; the target is ``target``."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification, make_regression

    if kind == "forest":
        from sklearn.ensemble import RandomForestClassifier

        X, y = make_classification(
            n_samples=6000, n_features=FEATURES, n_informative=10, random_state=SEED
        )
        columns = [f"f{i:02d}" for i in range(FEATURES)]
        frame = pd.DataFrame(X, columns=columns)
        model: Any = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=SEED)
    elif kind in ("pipeline", "lightgbm"):
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        X, y = make_classification(
            n_samples=6000, n_features=10, n_informative=6, random_state=SEED
        )
        numbers = [f"n{i:02d}" for i in range(10)]
        frame = pd.DataFrame(X, columns=numbers)
        rng = np.random.default_rng(SEED)
        categories = {"colour": 4, "region": 8, "plan": 16}
        for name, levels in categories.items():
            codes = rng.integers(0, levels, size=len(y))
            # the category leans towards the label: the low half of the codes for class 1
            lean = (y == 1) & (rng.random(len(y)) < 0.5)
            codes = np.where(lean, codes % max(1, levels // 2), codes)
            frame[name] = [f"{name}_{c}" for c in codes]
        encode = OneHotEncoder(handle_unknown="ignore")
        if kind == "lightgbm":
            from lightgbm import LGBMClassifier

            columns = ColumnTransformer(
                [("categories", encode, list(categories))], remainder="passthrough"
            )
            final: Any = LGBMClassifier(
                n_estimators=100, num_leaves=31, random_state=SEED, verbose=-1
            )
        else:
            columns = ColumnTransformer(
                [("numbers", StandardScaler(), numbers), ("categories", encode, list(categories))]
            )
            final = LogisticRegression(max_iter=1000)
        model = Pipeline([("columns", columns), ("model", final)])
    elif kind == "regressor":
        from sklearn.linear_model import Ridge

        X, y = make_regression(
            n_samples=6000, n_features=FEATURES, n_informative=10, noise=10.0, random_state=SEED
        )
        frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(FEATURES)])
        model = Ridge(alpha=1.0)
    else:
        raise ValueError(f"unknown model {kind!r}; known: {', '.join(MODELS)}")
    features = list(frame.columns)
    frame["target"] = y
    train, test = frame.iloc[:5000], frame.iloc[5000:]
    model.fit(train[features], train["target"])
    return train, test, model


def make_project(
    folder: Path, kind: str = "forest", *, name: str, workers: int = 1, runtime: str = "auto"
) -> None:
    """The model of ``kind`` and its data (once per folder), and ``<name>.yaml`` for it."""
    import joblib
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "model.joblib").is_file():
        train, test, model = _train_test(kind)
        (folder / "data").mkdir(exist_ok=True)
        train.to_csv(folder / "data" / "train.csv", index=False)
        test.to_csv(folder / "data" / "test.csv", index=False)
        joblib.dump(model, folder / "model.joblib")
    spec = MODELS[kind]
    config = {
        "name": name,
        "model": "model.joblib",
        "data": {"train": "data/train.csv", "test": "data/test.csv", "target": "target"},
        "task": spec["task"],
        "gates": spec["gates"],
        "validation": {"cv_folds": 0, "importance_top": 0, "champion": False},
        # The baselines have no auth: the generated service is measured without it as well.
        "service": {"workers": workers, "auth": "none", "runtime": runtime},
        "launch": {"probe_requests": 0},
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def variant_name(kind: str, runtime: str, workers: int) -> str:
    """The Bento name of the generated service of ``kind`` with ``runtime`` and ``workers``."""
    base = MODELS[kind]["name"]
    return (
        base
        + ("_sklearn" if runtime == "sklearn" else "")
        + (f"_w{workers}" if workers != 1 else "")
    )


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


def service_call(model: Any) -> Callable[[Any], Any]:
    """What the generated service runs on one batch: an ONNX graph's one run, ``predict_proba``
    (plus ``predict`` unless the labels follow from it), or ``predict``."""
    from workbench.packaging.plan import labels_from_proba

    if not (hasattr(model, "predict_proba") and hasattr(model, "classes_")):
        return model.predict
    both = getattr(model, "predict_both", None)
    if both is not None:
        return both
    if labels_from_proba(model):
        return model.predict_proba
    return lambda X: (model.predict_proba(X), model.predict(X))


def in_process(model: Any, X: Any, *, seconds: float) -> dict[str, Any]:
    """The model alone: single-row calls and rows/s in batches (bounded loops)."""
    import pandas as pd

    call = service_call(model)
    singles = [X.iloc[[i]] for i in range(min(len(X), 200))]
    index = iter(range(10**9))
    one = _bounded_times(
        lambda: call(singles[next(index) % len(singles)]), count=2000, seconds=seconds
    )
    out: dict[str, Any] = {
        "single_row_p50_ms": round(statistics.median(one) * 1000, 3),
        "single_row_calls_per_s": round(len(one) / sum(one), 1),
        "single_row_calls": len(one),
    }
    for size in (64, 1024):
        batch = pd.concat([X] * (size // len(X) + 1)).head(size)
        times = _bounded_times(lambda b=batch: call(b), count=200, seconds=seconds)
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


def http_stack(workers: list[Any]) -> dict[str, bool]:
    """Whether every worker has uvloop's loop and httptools' parser loaded (its memory maps)."""
    import psutil

    found = {"uvloop": bool(workers), "httptools": bool(workers)}
    for proc in workers:
        try:
            paths = {m.path for m in proc.memory_maps()}
        except psutil.Error:
            continue
        found["uvloop"] &= any("/uvloop/loop." in p for p in paths)
        found["httptools"] &= any("/httptools/parser/parser." in p for p in paths)
    return found


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


def _wait_ready(url: str, alive: Callable[[], bool], timeout: float) -> bool:
    """Poll ``/readyz`` every 20 ms until it answers 200 (True) or the process exits (False)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    return False


def start_server(tag: str, log_dir: Path) -> tuple[Any, float]:
    """Start with :class:`Server`, polling readiness every 20 ms for a finer cold-start figure."""
    from workbench.serving import Server

    class FineServer(Server):
        def wait_ready(self, timeout: float) -> None:
            if not _wait_ready(self.url, lambda: self.process.poll() is None, timeout):
                super().wait_ready(0.5)  # raises with the log tail

    started = time.perf_counter()
    server = FineServer.start(tag, log_dir=log_dir, timeout=120)
    return server, time.perf_counter() - started


class RawServer:
    """The raw ASGI app in its own process group on 127.0.0.1; stopped by PID, with its tree
    (:func:`workbench.serving.server.terminate_tree`, as :class:`Server` stops a Bento)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        from workbench.serving.processes import terminate_tree

        self.process, self.port, self.log_path = process, port, log_path
        self.api_key = ""  # no auth: the header is sent and ignored, as by the open Bentos
        self._at_exit = lambda: terminate_tree(process.pid, grace=5.0)
        atexit.register(self._at_exit)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        from workbench.serving.processes import terminate_tree

        terminate_tree(self.pid, grace=5.0)
        self.process.wait(timeout=5)
        atexit.unregister(self._at_exit)

    @classmethod
    def start(cls, log_dir: Path, *, timeout: float = 60.0) -> tuple[RawServer, float]:
        from workbench.serving.network import free_port

        port = free_port()
        log_path = log_dir / f"serve-raw-asgi-{port}.log"
        started = time.perf_counter()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(RAW_APP), "--host", "127.0.0.1", "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=RAW_APP.parent,
            )
        server = cls(process, port, log_path)
        try:
            if not _wait_ready(server.url, lambda: process.poll() is None, timeout):
                tail = log_path.read_text(errors="replace").strip().splitlines()[-20:]
                raise RuntimeError("the raw ASGI app did not get ready:\n" + "\n".join(tail))
        except BaseException:
            server.stop()
            raise
        return server, time.perf_counter() - started


def start_entry(entry: Entry, log_dir: Path) -> tuple[Any, float, list[Any]]:
    """(server, cold start in s, the processes that answer requests)."""
    if entry.server == RAW:
        raw, cold = RawServer.start(log_dir)
        return raw, cold, tree(raw.pid)[:1]
    server, cold = start_server(entry.tag, log_dir)
    return server, cold, workers_of(server.pid)


def measure_server(
    entry: Entry,
    body: bytes,
    *,
    log_dir: Path,
    seconds: float,
    max_requests: int,
    generator: str,
    after: Callable[[Any], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Cold start, then every level: load, server CPU per request, worker balance; then memory
    (and ``after(server)``, e.g. a parity check, before the server is stopped)."""
    from loadgen import load

    server, cold, workers = start_entry(entry, log_dir)
    extra: dict[str, Any] = {}
    try:
        procs = tree(server.pid)
        url = f"{server.url}/predict"
        # Server.start gives every server a key (WORKBENCH_API_KEY or a fresh one); the servers
        # without auth ignore the header, the previous template turns its auth on with a key.
        key = {"Authorization": f"Bearer {server.api_key}"}
        load(
            url,
            body,
            concurrency=8,
            max_requests=2000,
            seconds=1.0,
            generator=generator,
            headers=key,
        )
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
                headers=key,
                concurrency=concurrency,
                max_requests=max_requests,
                seconds=seconds,
                generator=generator,
            )
            sampler.cancel()
            after_cpu = cpu_seconds(procs)
            spent = {pid: after_cpu[pid] - before.get(pid, 0.0) for pid in after_cpu}
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
        stack = http_stack(workers)
        if after is not None:
            extra = after(server)
    finally:
        server.stop()
    return {
        "tag": entry.tag,
        "cold_start_s": round(cold, 3),
        "workers": len(workers),
        "levels": levels,
        "http_stack": stack,
        **memory,
        **extra,
    }


# --------------------------------------------------------------------------------------------
# py-spy

_LINE = re.compile(r":\d+\)$")
#: Where a thread's own work starts: the event loop's run, a thread's run.
ROOT_FRAMES = frozenset({"Runner.run (asyncio/runners.py)", "Thread.run (threading.py)"})


def _frame_name(frame: str) -> str:
    """``func (…/site-packages/pkg/mod.py:12)`` as ``func (pkg/mod.py)``: lines merged."""
    frame = _LINE.sub(")", frame)
    match = re.match(r"^(.*) \((.*)\)$", frame)
    if not match:
        return frame
    func, path = match.groups()
    for marker in ("site-packages/", "/lib/python3.", "/src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = "stdlib/" + path.split("/", 1)[-1]
            break
    return f"{func} ({path})"


def _area(frame: str) -> str:
    """The package a frame's code belongs to."""
    match = re.search(r"\((.*)\)$", frame)
    path = match.group(1) if match else frame
    if path.startswith("stdlib/"):
        rest = path[len("stdlib/") :]
        return "stdlib/" + rest.split("/")[0].removesuffix(".py")
    return path.split("/")[0].removesuffix(".py")


def top_frames(collapsed: list[Path], *, top: int = 25) -> dict[str, Any]:
    """Samples per thread, per package (innermost frame), and the top frames by self and
    inclusive samples, from py-spy's raw (collapsed) output with ``--threads``."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for path in collapsed:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            thread = frames[0] if frames[0].startswith(("thread ", "process ")) else "?"
            frames = [f for f in frames if not f.startswith(("thread ", "process "))]
            if not frames:
                continue
            names = [_frame_name(f) for f in frames]
            total += count
            threads[thread] += count
            own[names[-1]] += count
            areas[_area(names[-1])] += count
            # inclusive: only the frames below the event loop's run or the thread's start (those
            # above are in every sample and say nothing about where the time goes)
            roots = [i for i, name in enumerate(names) if name in ROOT_FRAMES]
            for name in set(names[roots[-1] + 1 if roots else 0 :]):
                inclusive[name] += count

    def share(counter: Counter[str], n: int) -> list[list[Any]]:
        return [
            [k, v, round(100 * v / total, 1) if total else 0.0] for k, v in counter.most_common(n)
        ]

    return {
        "samples": total,
        "threads": share(threads, 10),
        "packages": share(areas, 15),
        "self": share(own, top),
        "inclusive": share(inclusive, top),
    }


def top_text(key: str, profile: dict[str, Any]) -> str:
    lines = [
        f"py-spy profile of {key}: {profile['samples']} samples of active threads "
        f"({profile['rate']} Hz, {profile['seconds']:.0f} s, --nonblocking, "
        f"{'threads holding the GIL only' if profile.get('gil') else 'idle excluded'}); "
        f"load during the profile: {profile['load']}",
        "",
    ]
    for title, rows in (
        ("threads", profile["threads"]),
        ("package of the innermost frame (self)", profile["packages"]),
        ("top frames by self samples", profile["self"]),
        ("top frames by inclusive samples", profile["inclusive"]),
    ):
        lines += [title + ":"] + [f"  {pct:5.1f} %  {n:6d}  {name}" for name, n, pct in rows] + [""]
    return "\n".join(lines)


def profile_server(
    entry: Entry,
    body: bytes,
    *,
    log_dir: Path,
    out: Path,
    seconds: float,
    generator: str,
    rate: int = 100,
    gil: bool = False,
) -> dict[str, Any]:
    """py-spy ``record --nonblocking`` on every worker of ``entry`` for ``seconds`` under c=32
    load; writes the collapsed stacks (flamegraph.pl, speedscope) and a text top list."""
    from loadgen import load

    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    slug = entry.key.replace("/", "-")
    server, _, workers = start_entry(entry, log_dir)
    outputs, finished = [], {}
    try:
        url = f"{server.url}/predict"
        # Server.start gives every server a key (WORKBENCH_API_KEY or a fresh one); the servers
        # without auth ignore the header, the previous template turns its auth on with a key.
        key = {"Authorization": f"Bearer {server.api_key}"}
        load(
            url,
            body,
            concurrency=8,
            max_requests=2000,
            seconds=1.0,
            generator=generator,
            headers=key,
        )
        loader = threading.Thread(
            target=lambda: finished.update(
                result=load(
                    url,
                    body,
                    headers=key,
                    concurrency=32,
                    max_requests=10**8,
                    seconds=seconds + 2,
                    generator=generator,
                )
            )
        )
        loader.start()
        time.sleep(1.0)
        spies = []
        for stale in out.glob(f"profile-{slug}-*.collapsed.txt"):  # a previous run's workers
            stale.unlink()
        for worker in workers:
            path = out / f"profile-{slug}-{worker.pid}.collapsed.txt"
            spies.append(
                subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "--nonblocking",
                        "--threads",
                        *(["--gil"] if gil else []),
                        "--rate",
                        str(rate),
                        "--duration",
                        str(max(1, round(seconds))),
                        "--format",
                        "raw",
                        "--pid",
                        str(worker.pid),
                        "--output",
                        str(path),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
            outputs.append(path)
        logs = [spy.communicate(timeout=seconds + 60)[0] for spy in spies]
        loader.join(timeout=seconds + 60)
    finally:
        server.stop()
    present = [p for p in outputs if p.is_file()]
    if not present:
        raise RuntimeError("py-spy wrote nothing: " + " | ".join(x.strip()[-300:] for x in logs))
    result = finished.get("result")
    profile = {
        **top_frames(present),
        "rate": rate,
        "seconds": seconds,
        "gil": gil,
        "files": [str(p) for p in present],
        "load": (
            f"c=32 {result.requests_per_s:.0f} req/s, p99 {result.p99_ms:.1f} ms"
            if result
            else "n/a"
        ),
    }
    text_path = out / f"profile-{slug}-top.txt"
    text_path.write_text(top_text(entry.key, profile))
    profile["top_file"] = str(text_path)
    return profile


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


def summarize(runs: dict[str, list[dict[str, Any]]], entries: dict[str, Entry]) -> dict[str, Any]:
    """Medians over rounds, per server and level (errors are summed)."""
    out: dict[str, Any] = {}
    for name, rounds in runs.items():
        if not rounds:
            continue
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
            levels[str(concurrency)]["stopped_early"] = any(s.get("stopped_early") for s in samples)
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
        entry = entries[name]
        out[name] = {
            "model": entry.model,
            "server": entry.server,
            "runtime": entry.runtime,
            "workers": rounds[0]["workers"],
            "cold_start_s": _median([r["cold_start_s"] for r in rounds]),
            "rss_mib": _median([r["rss_mib"] for r in rounds]),
            "uss_mib": _median([r["uss_mib"] for r in rounds]),
            "http_stack": {
                k: all(r["http_stack"][k] for r in rounds) for k in rounds[0]["http_stack"]
            },
            "levels": levels,
        }
        parity = next((r["parity"] for r in rounds if "parity" in r), None)
        if parity is not None:
            out[name]["parity"] = parity
    return out


def targets(summary: dict[str, Any], inproc: dict[str, Any], extra: dict[str, Any]) -> list[dict]:
    """The issue's goals for the generated service, each with the measured value and a verdict."""
    gen, plain = summary.get("forest/generated"), summary.get(BASELINE)
    raw = summary.get(CEILING)
    rows = []
    if gen:
        c32, c1 = gen["levels"]["32"], gen["levels"]["1"]
        ceiling = raw["levels"]["32"]["requests_per_s"] if raw else None
        forest = inproc.get("forest", {})
        compiled = forest.get("onnx") or forest.get("sklearn") or {}
        raw_c1 = f"; raw-ASGI {raw['levels']['1']['p50_ms']:.2f} ms" if raw else ""
        rows += [
            {
                "goal": f"reference forest ({gen['runtime']}), c=32: >= {TARGET_RPS_C32:,.0f} "
                f"req/s with p99 <= {TARGET_P99_C32_MS:.0f} ms, no errors",
                "measured": f"{c32['requests_per_s']:.0f} req/s (×raw "
                f"{_ratio(c32['requests_per_s'], ceiling)}), p99 {c32['p99_ms']:.1f} ms, "
                f"{c32['errors']} errors",
                "met": c32["requests_per_s"] >= TARGET_RPS_C32
                and c32["p99_ms"] <= TARGET_P99_C32_MS
                and c32["errors"] == 0,
            },
            {
                "goal": f"reference forest ({gen['runtime']}), c=1: p50 <= "
                f"{TARGET_P50_C1_MS:.1f} ms",
                "measured": f"p50 {c1['p50_ms']:.2f} ms (in-process model call "
                f"{compiled.get('single_row_p50_ms', float('nan')):.2f} ms{raw_c1})",
                "met": c1["p50_ms"] <= TARGET_P50_C1_MS,
            },
        ]
        if plain:
            rows += [
                {
                    "goal": "cold start no worse than the hand-written BentoML service (plain)",
                    "measured": f"{gen['cold_start_s']:.2f} s vs {plain['cold_start_s']:.2f} s",
                    "met": gen["cold_start_s"] <= plain["cold_start_s"] * 1.05,
                },
                {
                    "goal": "resident memory no worse than the hand-written BentoML service",
                    "measured": f"RSS {gen['rss_mib']:.0f} MiB vs {plain['rss_mib']:.0f} MiB "
                    f"(USS {gen['uss_mib']:.0f} vs {plain['uss_mib']:.0f})",
                    "met": gen["rss_mib"] <= plain["rss_mib"] * 1.05,
                },
            ]
    for name, s in summary.items():
        if "parity" in s:
            p = s["parity"]
            rows.append(
                {
                    "goal": f"{name} ({s['runtime']}): served answers equal in-process "
                    "scikit-learn (labels, values within 1e-6)",
                    "measured": f"{p['rows']} rows, {p['mismatches']} mismatches",
                    "met": p["mismatches"] == 0,
                }
            )
    if "pipeline" in extra:
        p = extra["pipeline"]
        rows.append(
            {
                "goal": "headless pipeline on the bundled example under 30 s wall",
                "measured": f"{p['seconds']:.1f} s (exit code {p['exit_code']})",
                "met": p["seconds"] < 30 and p["exit_code"] == 0,
            }
        )
    return rows


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value and base else "–"


def markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    plain, raw = summary.get(BASELINE), summary.get(CEILING)
    models = report["models"]

    def raw_rps(c: str) -> float | None:
        return raw["levels"][c]["requests_per_s"] if raw else None

    def rows_of(model: str) -> list[tuple[str, dict[str, Any]]]:
        own = [(k, s) for k, s in summary.items() if s["model"] == model]
        return own + ([(CEILING, raw)] if raw and model != "-" else [])

    lines = [
        "Summary: one-row requests; ×raw = req/s over the raw-ASGI constant endpoint's at the "
        "same concurrency (uvicorn + uvloop + httptools, no BentoML).",
        "",
        "| model | server | runtime | workers | c=1 p50 ms | c=1 ×raw | c=32 req/s | c=32 ×raw "
        "| c=32 p99 ms | errors | cold start s | RSS MiB | USS MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in models:
        for _, s in rows_of(model):
            c1, c32 = s["levels"]["1"], s["levels"]["32"]
            errors = sum(s["levels"][c]["errors"] for c in map(str, LEVELS))
            lines.append(
                f"| {model} | {s['server']} | {s['runtime']} | {s['workers']} "
                f"| {c1['p50_ms']:.2f} | {_ratio(c1['requests_per_s'], raw_rps('1'))} "
                f"| {c32['requests_per_s']:.0f} | {_ratio(c32['requests_per_s'], raw_rps('32'))} "
                f"| {c32['p99_ms']:.1f} | {errors} | {s['cold_start_s']:.2f} "
                f"| {s['rss_mib']:.0f} | {s['uss_mib']:.0f} |"
            )
    lines += [
        "",
        "Every level:",
        "",
        "| model | server | runtime | workers | c | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| × plain | × raw | server CPU µs/req |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in [*models, "-"]:
        chosen = [(k, s) for k, s in summary.items() if s["model"] == model]
        for _, s in chosen:
            for c in map(str, LEVELS):
                lv = s["levels"][c]
                base = plain["levels"][c]["requests_per_s"] if plain and model == "forest" else None
                lines.append(
                    f"| {model} | {s['server']} | {s['runtime']} | {s['workers']} | {c} "
                    f"| {lv['requests_per_s']:.0f} | {lv['p50_ms']:.2f} | {lv['p95_ms']:.1f} "
                    f"| {lv['p99_ms']:.1f} | {lv['errors']} | {_ratio(lv['requests_per_s'], base)} "
                    f"| {_ratio(lv['requests_per_s'], raw_rps(c))} "
                    f"| {lv['server_cpu_us_per_request'] or 0:.0f} |"
                )
    missing = [
        f"{k} ({', '.join(x for x, ok in s['http_stack'].items() if not ok)})"
        for k, s in summary.items()
        if not all(s["http_stack"].values())
    ]
    lines += [
        "",
        "HTTP stack: uvloop and httptools loaded in every worker of every server"
        if not missing
        else "HTTP stack: **not** loaded in " + "; ".join(missing),
        "",
    ]
    for model in models:
        packaged = report["packaging"].get(model, {})
        for variant, info in packaged.items():
            lines.append(f"- {model} `{variant}`: runtime {info['runtime']}: {info['reason']}")
    lines.append("")
    for model, ip in report["in_process"].items():
        for runtime, figures in ip.items():
            lines.append(
                f"- In process, {model} ({runtime}): one row p50 "
                f"{figures['single_row_p50_ms']:.3f} ms "
                f"({figures['single_row_calls_per_s']:,.0f} calls/s); "
                f"{figures['batch_64_rows_per_s']:,.0f} rows/s in batches of 64; "
                f"{figures['batch_1024_rows_per_s']:,.0f} in batches of 1024"
            )
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['goal']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    for key, profile in report.get("profiles", {}).items():
        if "error" in profile:
            lines += ["", f"Profile of {key}: failed ({profile['error']})"]
            continue
        lines += [
            "",
            f"Profile of {key} (py-spy, {profile['seconds']:.0f} s under c=32, "
            f"{profile['load']}; {profile['samples']} samples; "
            f"`{Path(profile['top_file']).name}`):",
            "",
            "- threads: " + ", ".join(f"{name} {pct} %" for name, _, pct in profile["threads"][:4]),
            "- by package (innermost frame): "
            + ", ".join(f"{name} {pct} %" for name, _, pct in profile["packages"][:8]),
            "- top self frames: "
            + "; ".join(f"{name} {pct} %" for name, _, pct in profile["self"][:8]),
        ]
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
        f"scikit-learn {m['sklearn']}, onnxruntime {m['onnxruntime']}, uvicorn {m['uvicorn']}, "
        f"uvloop {m['uvloop']}, httptools {m['httptools']}; load generator {report['generator']}; "
        f"{report['settings']['rounds']} round(s) of {report['settings']['seconds']:.0f} s per "
        f"level, medians; load average {m['loadavg_start']} at start, {m['loadavg_end']} at end; "
        f"{report['date']}.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 3 s per level, 5 servers")
    parser.add_argument("--rounds", type=int, help="rounds over all servers (medians)")
    parser.add_argument("--seconds", type=float, help="time bound of each load level")
    parser.add_argument("--max-requests", type=int, help="request bound of each load level")
    parser.add_argument(
        "--models",
        help="comma-separated subset of " + ",".join(MODELS) + " (default: all; --quick: forest)",
    )
    parser.add_argument("--servers", help="comma-separated subset of " + ",".join(SERVERS_FULL))
    parser.add_argument(
        "--workers",
        default="1",
        help="worker counts to run generated (auto runtime, every model) and plain with, e.g. 1,2",
    )
    parser.add_argument("--generator", choices=("auto", "wrk", "asyncio"), default="auto")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also run the forest's generated service with one change undone",
    )
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after the rounds, py-spy on the generated workers for SECONDS under c=32 load",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="py-spy --gil: sample only the thread holding the GIL (default: every active thread)",
    )
    parser.add_argument(
        "--profile-servers",
        help="comma-separated <model>/<server> keys to profile (default: <model>/generated)",
    )
    parser.add_argument("--no-pipeline", action="store_true", help="skip the headless example run")
    parser.add_argument(
        "--out", type=Path, help=f"results folder (default {RESULTS}; --quick: {QUICK_RESULTS})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    preset = QUICK if args.quick else FULL
    rounds = args.rounds or preset["rounds"]
    seconds = args.seconds or preset["seconds"]
    max_requests = args.max_requests or preset["max_requests"]
    out_dir: Path = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    servers = (
        tuple(args.servers.split(","))
        if args.servers
        else (SERVERS_QUICK if args.quick else SERVERS_FULL)
    )
    models = (
        tuple(args.models.split(","))
        if args.models
        else (MODELS_QUICK if args.quick else MODELS_FULL)
    )
    for name in models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    for name in servers:
        if name not in SERVERS_FULL:
            parser.error(f"unknown server {name!r}; known: {', '.join(SERVERS_FULL)}")
    worker_counts = [int(w) for w in args.workers.split(",")]

    work = Path(tempfile.mkdtemp(prefix="wb-serving-bench-"))
    os.environ["BENTOML_HOME"] = str(work / "bentoml")
    os.environ["WORKBENCH_STATE_DIR"] = str(work / "state")
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    sys.path.insert(0, str(HERE))
    import bentoml  # after BENTOML_HOME is set
    import joblib
    import numpy as np
    import pandas as pd
    import sklearn
    from loadgen import WRK_INSTALL, wrk_path

    from workbench import load_config, package, validate
    from workbench.results import ValidationResult
    from workbench.runtime.settings import ONNX_FILE
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
    started_run = time.perf_counter()
    try:
        entries: dict[str, Entry] = {}
        bodies: dict[str, bytes] = {}
        checks: dict[str, tuple[Any, Any, Any]] = {}  # key -> (model, X test, schema)
        packaging: dict[str, dict[str, Any]] = {}
        packaging_s: dict[str, float] = {}
        inproc: dict[str, dict[str, Any]] = {}
        service_dirs: dict[str, Path] = {}
        generated = [s for s in servers if s in GENERATED]
        for kind in models:
            project = work / f"project-{kind}"
            print(f"{kind}: training and packaging ({MODELS[kind]['what']}) ...", flush=True)
            variants = [
                (server, GENERATED[server], w)
                for server in generated
                for w in (worker_counts if GENERATED[server] == "auto" else [1])
            ]
            for server, runtime, workers in variants:
                name = variant_name(kind, runtime, workers)
                make_project(project, kind, name=name, workers=workers, runtime=runtime)
                config = load_config(project / f"{name}.yaml")
                started = time.perf_counter()
                validate(config).raise_for_gates()
                packaged = package(config)
                packaging_s[name] = round(time.perf_counter() - started, 2)
                suffix = "" if workers == 1 else f"_w{workers}"
                entry = Entry(
                    key=f"{kind}/{server}{suffix}",
                    model=kind,
                    server=f"{server}{suffix}",
                    workers=workers,
                    tag=packaged.bento_tag,
                    runtime=packaged.runtime,
                )
                entries[entry.key] = entry
                service_dirs[entry.key] = Path(packaged.service_dir)
                packaging.setdefault(kind, {})[f"{server}{suffix}"] = {
                    "requested": runtime,
                    "runtime": packaged.runtime,
                    "reason": packaged.runtime_reason,
                    "bento_tag": packaged.bento_tag,
                    "serving_plan": json.loads(
                        (Path(packaged.service_dir) / "model_card.json").read_text()
                    ).get("serving"),
                }
                print(
                    f"  {entry.key}: {packaged.bento_tag}, runtime {packaged.runtime} "
                    f"({packaging_s[name]:.1f} s): {packaged.runtime_reason[:160]}",
                    flush=True,
                )
            if not (project / "model.joblib").is_file():  # no generated server asked for
                make_project(project, kind, name=MODELS[kind]["name"])
            model = joblib.load(project / "model.joblib")
            test = pd.read_csv(project / "data" / "test.csv").drop(columns="target")
            record_path = project / ".workbench" / "validation.json"
            if record_path.is_file():
                schema = ValidationResult.model_validate_json(record_path.read_text()).input_schema
                X = test[schema.names]
            else:  # only baselines: the test frame's own columns
                schema, X = None, test
            bodies[kind] = json.dumps(
                {"rows": schema.to_records(X.head(1)) if schema else X.head(1).to_dict("records")}
            ).encode()
            for key, entry in entries.items():
                if entry.model == kind and entry.workers == 1 and schema is not None:
                    checks[key] = (model, X, schema)
            print(f"  in-process cost of {kind} ...", flush=True)
            inproc[kind] = {"sklearn": in_process(model, X, seconds=1.5 if args.quick else 4.0)}
            graph = next(
                (
                    service_dirs[k] / ONNX_FILE
                    for k, e in entries.items()
                    if e.model == kind and e.runtime == "onnx"
                ),
                None,
            )
            if graph is not None and graph.is_file():
                from workbench.runtime.onnx_model import OnnxModel

                classes = getattr(model, "classes_", None)
                compiled = OnnxModel(
                    graph.read_bytes(),
                    classes=None if classes is None else np.asarray(classes),
                    probabilities=hasattr(model, "predict_proba"),
                )
                inproc[kind]["onnx"] = in_process(compiled, X, seconds=1.5 if args.quick else 4.0)
            print(f"    {inproc[kind]}", flush=True)
            if kind != "forest":
                continue
            for server in servers:
                if server in GENERATED or server == RAW:
                    continue
                counts = worker_counts if f"forest/{server}" == BASELINE else [1]
                for workers in counts:
                    suffix = "" if workers == 1 else f"_w{workers}"
                    print(f"  building baseline {server}{suffix} ...", flush=True)
                    entry = Entry(
                        key=f"forest/{server}{suffix}",
                        model="forest",
                        server=f"{server}{suffix}",
                        workers=workers,
                        tag=build_baseline(server, work / "baselines", workers=workers),
                        runtime="none" if server.startswith("noop") else "sklearn",
                    )
                    entries[entry.key] = entry
            if args.ablation and "forest/generated" in entries:
                for ablation in ABLATIONS:
                    print(f"  building ablation {ablation} ...", flush=True)
                    entry = Entry(
                        key=f"forest/{ablation}",
                        model="forest",
                        server=ablation,
                        workers=1,
                        tag=build_ablation(
                            ablation, service_dirs["forest/generated"], work / "ablation"
                        ),
                        runtime=entries["forest/generated"].runtime,
                    )
                    entries[entry.key] = entry
        if RAW in servers:
            entries[RAW] = Entry(
                key=RAW, model="-", server=RAW, workers=1, tag=str(RAW_APP), runtime="none"
            )
            bodies["-"] = bodies[models[0]]

        order = list(entries)
        per_server = 3 * seconds + 7
        estimate = rounds * len(order) * per_server + args.profile * len(models) * 2
        print(
            f"{len(order)} servers x {rounds} round(s), {seconds:.0f} s per level: about "
            f"{estimate / 60:.0f} min from here",
            flush=True,
        )

        def parity_after(key: str) -> Callable[[Any], dict[str, Any]]:
            model, X, schema = checks[key]

            def run(server: Any) -> dict[str, Any]:
                try:
                    mismatches = check_parity(server.url, model, X, schema, "")
                except Exception as exc:  # noqa: BLE001 - reported as a failed goal
                    return {"parity": {"rows": len(X), "mismatches": -1, "error": str(exc)[:300]}}
                return {"parity": {"rows": len(X), "mismatches": len(mismatches)}}

            return run

        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
        for r in range(rounds):
            for name in order:
                entry = entries[name]
                print(f"round {r + 1}/{rounds}: {name} ...", end=" ", flush=True)
                result = measure_server(
                    entry,
                    bodies[entry.model],
                    log_dir=work,
                    seconds=seconds,
                    max_requests=max_requests,
                    generator=generator,
                    after=parity_after(name) if r == 0 and name in checks else None,
                )
                result["loadavg"] = os.getloadavg()[0]
                runs[name].append(result)
                print(
                    ", ".join(
                        f"c={lv['concurrency']} {lv['requests_per_s']:.0f}/s "
                        f"p50 {lv['p50_ms']:.2f} p99 {lv['p99_ms']:.1f} ms"
                        for lv in result["levels"]
                    )
                    + f"; start {result['cold_start_s']:.2f} s, RSS {result['rss_mib']:.0f} MiB"
                    + (f"; parity {result['parity']}" if "parity" in result else ""),
                    flush=True,
                )

        out_dir.mkdir(parents=True, exist_ok=True)
        profiles: dict[str, Any] = {}
        if args.profile > 0:
            keys = (
                args.profile_servers.split(",")
                if args.profile_servers
                else [f"{m}/generated" for m in models if f"{m}/generated" in entries]
            )
            for key in keys:
                if key not in entries:
                    print(f"profile: no server {key!r}", flush=True)
                    continue
                print(f"profiling {key} with py-spy for {args.profile:.0f} s ...", flush=True)
                try:
                    profiles[key] = profile_server(
                        entries[key],
                        bodies[entries[key].model],
                        log_dir=work,
                        out=out_dir,
                        seconds=args.profile,
                        generator=generator,
                        gil=args.profile_gil,
                    )
                except Exception as exc:  # noqa: BLE001 - the rest of the report still counts
                    profiles[key] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"  {profiles[key].get('top_file', profiles[key].get('error'))}", flush=True)

        extra: dict[str, Any] = {}
        if not args.quick and not args.no_pipeline:
            print("headless pipeline on the bundled example ...", flush=True)
            extra["pipeline"] = headless_pipeline(work)
            print(f"  {extra['pipeline']}", flush=True)

        summary = summarize(runs, entries)
        report: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "generator": generator,
            "settings": {
                "rounds": rounds,
                "seconds": seconds,
                "max_requests": max_requests,
                "levels": list(LEVELS),
                "quick": args.quick,
                "models": list(models),
                "servers": list(servers),
                "workers": worker_counts,
                "profile_s": args.profile,
                "wall_s": round(time.perf_counter() - started_run, 1),
            },
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "bentoml": bentoml.__version__,
                "sklearn": sklearn.__version__,
                "onnxruntime": _version("onnxruntime"),
                "uvicorn": _version("uvicorn"),
                "uvloop": _version("uvloop"),
                "httptools": _version("httptools"),
                "loadavg_start": loadavg_start,
                "loadavg_end": " ".join(f"{v:.2f}" for v in os.getloadavg()),
            },
            "models": list(models),
            "model_descriptions": {m: MODELS[m]["what"] for m in models},
            "request": "one row per request, JSON",
            "entries": {k: asdict(e) for k, e in entries.items()},
            "packaging": packaging,
            "packaging_s": packaging_s,
            "in_process": inproc,
            "summary": summary,
            "profiles": profiles,
            "runs": runs,
            **extra,
        }
        report["targets"] = targets(summary, inproc, extra)
        (out_dir / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
        text = markdown(report)
        (out_dir / "serving.md").write_text(text)
        print()
        print(text)
        print(
            f"wrote {out_dir / 'serving.json'} and {out_dir / 'serving.md'} "
            f"({(time.perf_counter() - started_run) / 60:.1f} min)"
        )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
