"""What monitoring costs a served model: throughput with it on and off, and memory over a long run.

    .venv/bin/python benchmarks/monitoring.py [--rounds N] [--seconds S] [--requests N]
        [--memory-only] [--variants on,off,plain] [--profile S] [--out DIR]
    .venv/bin/python benchmarks/monitoring.py --rounds 0 --variants "" --profile 10 \
        --out /tmp/wb-monitor-profile     # the profiles alone: ~2 min
    .venv/bin/python benchmarks/monitoring.py --rounds 0 --variants "" \
        --out /tmp/wb-monitor-lazy        # the lazy work alone: ~1.5 min

The reference model of ``benchmarks/serving.py`` (``forest``: RandomForestClassifier, 100 trees,
depth 10, 20 numeric features; served by onnxruntime) is packaged twice in a temporary BentoML
store: with the default ``monitor:`` section (a 10,000-row window) and with
``monitor.window_rows: 0`` (monitoring off: no request ids, no window). Then, on 127.0.0.1:

- **throughput**: each server in turn (rounds alternate on, off, on, off, ...; the figure is the
  median over rounds, so the machine's other load hits both alike), one-row JSON requests with
  wrk at concurrency 32, each level bounded in requests and seconds; while the monitored server
  is loaded, a client reads ``GET /monitor`` and ``/metrics`` every second, as a dashboard would;
- **lazy work**: on the monitored server, idle with a full window, the worker's CPU time for a
  rebuilt report, a cached ``/monitor``, ``/metrics`` and an idle second (:func:`lazy_costs`);
- **memory**: each server's resident memory (all its processes) after 10,000, 100,000 and
  300,000 requests and after ``--requests`` (1,000,000 by default): monitoring on (``/monitor``
  read every 5 s throughout), monitoring off, and ``plain``, the hand-written BentoML service of
  ``baselines/plain`` (what BentoML itself grows by under the same load).

With ``--profile S``, each server (on, then off) is also profiled under c=32 for S seconds by
py-spy (``record --nonblocking --threads``, as ``benchmarks/serving.py --profile`` does):
``profile-forest-monitor_<on|off>-*.collapsed.txt`` and ``-top.txt`` in ``--out``, and in the
JSON the samples per package and every runtime monitoring frame's inclusive share, so the
difference between on and off is read frame by frame.

The machine's load average is recorded before and after. Writes ``monitoring.json`` and
``monitoring.md`` to ``--out`` (default ``benchmarks/results``); the temporary store is deleted.
Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))


def poller(url: str, key: str, every: float, stop: threading.Event, seen: list[float]) -> None:
    """Read /monitor and /metrics every ``every`` seconds until ``stop``; keep each duration."""
    import httpx

    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        while not stop.wait(every):
            started = time.perf_counter()
            client.get(f"{url}/monitor").raise_for_status()
            client.get(f"{url}/metrics").raise_for_status()
            seen.append(time.perf_counter() - started)


def first_read(url: str, key: str) -> float:
    """Seconds the worker's first ``GET /monitor`` (its first report) took."""
    import httpx

    started = time.perf_counter()
    httpx.get(
        f"{url}/monitor", headers={"Authorization": f"Bearer {key}"}, timeout=60
    ).raise_for_status()
    return time.perf_counter() - started


def lazy_costs(tag: str, body: bytes, logs: Path, reads: int = 5) -> dict[str, Any]:
    """The monitored worker's CPU for each piece of lazy work, on an otherwise idle server whose
    window is full (12,000 one-row requests first): an uncached ``GET /monitor`` (the report
    rebuilt: the window summarised and tested), a cached one, ``GET /metrics`` (the gauges from
    the report) and an idle second (the background tick). Each figure is the worker process's
    CPU time (user + system, psutil, in clock ticks of 10 ms) across ``reads`` reads, the median;
    divided by ``monitor.refresh_seconds`` a rebuild is the share of a core a dashboard's reads
    cost."""
    import httpx
    from loadgen import load
    from serving import start_server, workers_of

    server, _ = start_server(tag, logs)
    try:
        key = {"Authorization": f"Bearer {server.api_key}"}
        load(
            f"{server.url}/predict",
            body,
            concurrency=32,
            max_requests=12_000,
            seconds=30.0,
            headers=key,
        )
        (worker,) = workers_of(server.pid)
        refresh = 5.0  # the default monitor.refresh_seconds the benchmark's Bento keeps

        def cpu() -> float:
            times = worker.cpu_times()
            return float(times.user + times.system)

        def cost(path: str, *, wait: float, times: int = reads) -> float:
            seen = []
            with httpx.Client(headers=key, timeout=60) as client:
                for _ in range(times):
                    time.sleep(wait)
                    before = cpu()
                    client.get(f"{server.url}{path}").raise_for_status()
                    seen.append(cpu() - before)
            return round(statistics.median(seen) * 1000, 1)

        first = cost(
            "/monitor", wait=0.0, times=1
        )  # the first report: scipy imported, caches warmed
        rebuild = cost("/monitor", wait=refresh + 0.2)
        cached = cost("/monitor", wait=0.2)
        metrics = cost("/metrics", wait=refresh + 0.2)
        before = cpu()
        time.sleep(10)
        idle = round((cpu() - before) / 10 * 1000, 1)
    finally:
        server.stop()
    return {
        "first_report_cpu_ms": first,
        "rebuild_cpu_ms": rebuild,
        "cached_read_cpu_ms": cached,
        "metrics_uncached_cpu_ms": metrics,
        "idle_cpu_ms_per_s": idle,
        "rebuild_share_of_a_core": round(rebuild / (refresh * 1000), 4),
    }


def long_run(
    tag: str, body: bytes, logs: Path, marks: list[int], rate: float, *, poll: bool
) -> dict[str, Any]:
    """One server loaded up to each mark of requests in turn; its memory after each."""
    from loadgen import load
    from serving import memory_mib, start_server, tree

    memory: dict[str, Any] = {}
    server, _ = start_server(tag, logs)
    try:
        key = {"Authorization": f"Bearer {server.api_key}"}
        url = f"{server.url}/predict"
        procs = tree(server.pid)
        stop = threading.Event()
        polls: list[float] = []
        thread = threading.Thread(
            target=poller, args=(server.url, server.api_key, 5.0, stop, polls)
        )
        if poll:
            thread.start()
        sent = 0
        started = time.perf_counter()
        # wrk runs for its whole -d time even when its request bound stops it early: size each
        # chunk's time from the measured rate, at most a minute.
        for mark in marks:
            while sent < mark:
                left = mark - sent
                seconds = min(60.0, left / rate + 1.0)
                result = load(
                    url, body, concurrency=32, max_requests=left, seconds=seconds, headers=key
                )
                sent += result.requests
                if result.requests == 0:
                    break
            time.sleep(6)  # a refresh of the report, the capture flush, the collector
            memory[str(mark)] = {**memory_mib(procs), "requests": sent}
            print(f"{tag}: after {sent:,} requests: {memory[str(mark)]}", flush=True)
        stop.set()
        if poll:
            thread.join()
        memory["seconds"] = round(time.perf_counter() - started, 1)
        memory["monitor_read_ms_median"] = (
            round(statistics.median(polls) * 1000, 1) if polls else None
        )
    finally:
        server.stop()
    return memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=60_000)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--memory-only", action="store_true", help="only the long runs (memory, on and off)"
    )
    parser.add_argument(
        "--profile", type=float, default=0.0, help="py-spy each server for S seconds at c=32"
    )
    parser.add_argument(
        "--variants",
        default="on,off,plain",
        help="long runs: on, off (monitoring) and plain (a hand-written BentoML service)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wb-monitor-bench-"))
    try:
        return measure(args, work)
    finally:  # the temporary store, projects and logs
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path) -> int:
    """Throughput rounds, then the long runs; the results into ``args.out``."""
    os.environ["BENTOML_HOME"] = str(work / "bentoml")
    os.environ["WORKBENCH_STATE_DIR"] = str(work / "state")
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    import pandas as pd
    import yaml
    from loadgen import load
    from serving import make_project, start_server

    from workbench import load_config, package, validate

    load_start = os.getloadavg()
    project = work / "project"
    tags = {}
    for variant, window in (("on", 10_000), ("off", 0)):
        name = f"monitor_{variant}"
        make_project(project, "forest", name=name)
        path = project / f"{name}.yaml"
        config = yaml.safe_load(path.read_text())
        config["monitor"] = {"window_rows": window}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        loaded = load_config(path)
        validate(loaded).raise_for_gates()
        tags[variant] = package(loaded).bento_tag
        print(f"packaged {variant}: {tags[variant]}", flush=True)
    row = pd.read_csv(project / "data" / "test.csv").drop(columns="target").iloc[0].to_dict()
    body = json.dumps({"rows": [row]}).encode()
    logs = work / "logs"
    logs.mkdir()

    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    polls: list[float] = []
    first_reads: list[float] = []
    for round_ in range(0 if args.memory_only else args.rounds):
        for variant in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
            server, _ = start_server(tags[variant], logs)
            try:
                key = {"Authorization": f"Bearer {server.api_key}"}
                url = f"{server.url}/predict"
                load(url, body, concurrency=8, max_requests=2000, seconds=1.0, headers=key)
                stop = threading.Event()
                thread = None
                if variant == "on":
                    # The worker's first report imports scipy and warms its caches (a one-time
                    # cost, measured apart): the rounds measure the steady state.
                    first_reads.append(first_read(server.url, server.api_key))
                    thread = threading.Thread(
                        target=poller, args=(server.url, server.api_key, 1.0, stop, polls)
                    )
                    thread.start()
                result = load(
                    url,
                    body,
                    concurrency=32,
                    max_requests=args.max_requests,
                    seconds=args.seconds,
                    headers=key,
                )
                stop.set()
                if thread is not None:
                    thread.join()
                runs[variant].append(result.to_dict())
                print(
                    f"round {round_ + 1} {variant}: {result.requests_per_s:.0f} req/s", flush=True
                )
            finally:
                server.stop()

    def median(variant: str, field: str) -> float:
        return float(statistics.median(r[field] for r in runs[variant]))

    fields = ("requests_per_s", "p50_ms", "p95_ms", "p99_ms")
    throughput = {v: {f: median(v, f) for f in fields} for v in runs if runs[v]}
    change = (
        throughput["on"]["requests_per_s"] / throughput["off"]["requests_per_s"] - 1
        if throughput
        else None
    )

    rate = max(100.0, throughput["on"]["requests_per_s"]) if runs["on"] else 1000.0
    marks = sorted(m for m in {10_000, 100_000, 300_000, args.requests} if m <= args.requests)
    variants = args.variants.split(",")
    if "plain" in variants:  # BentoML as the quickstart teaches it: what the baseline grows by
        import bentoml
        import joblib
        from serving import MODEL_NAME, build_baseline

        bentoml.sklearn.save_model(MODEL_NAME, joblib.load(project / "model.joblib"))
        tags["plain"] = build_baseline("plain", work / "baselines")
    memory = {
        variant: long_run(tags[variant], body, logs, marks, rate, poll=variant == "on")
        for variant in variants
        if variant
    }
    profiles = profile_variants(tags, body, logs, args) if args.profile else {}
    lazy = lazy_costs(tags["on"], body, logs)
    print(f"lazy work of the monitored worker: {lazy}", flush=True)

    report = {
        "model": "forest (RandomForestClassifier 100 trees, depth 10, 20 features), onnxruntime",
        "generator": "wrk, one-row JSON requests, concurrency 32",
        "rounds": args.rounds,
        "seconds_per_level": args.seconds,
        "throughput": throughput,
        "throughput_change": change,
        "runs": runs,
        "monitor_and_metrics_read_ms_median": round(statistics.median(polls) * 1000, 1)
        if polls
        else None,
        "first_monitor_read_ms": [round(s * 1000) for s in first_reads],
        "memory": memory,
        "lazy_work": lazy,
        "profiles": profiles,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "monitoring.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "monitoring.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def profile_variants(
    tags: dict[str, str], body: bytes, logs: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """py-spy on the monitored and the unmonitored server under c=32 (see the module's doc)."""
    from serving import Entry, profile_server

    out: dict[str, Any] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in ("on", "off"):
        entry = Entry(f"forest/monitor_{variant}", "forest", "generated", 1, tags[variant], "onnx")
        profile = profile_server(
            entry, body, log_dir=logs, out=args.out, seconds=args.profile, generator="auto"
        )
        monitoring = [row for row in profile["inclusive"] if "/monitoring/" in row[0]]
        out[variant] = {
            "load": profile["load"],
            "samples": profile["samples"],
            "packages": profile["packages"],
            "monitoring_frames": monitoring,
            "top_file": profile["top_file"],
        }
        print(f"profile {variant}: {profile['load']}, {profile['samples']} samples", flush=True)
    return out


def memory_lines(runs: dict[str, Any]) -> list[str]:
    """The memory table of the long runs."""
    lines: list[str] = []
    names = {"on": "monitoring on", "off": "monitoring off", "plain": "hand-written BentoML"}
    lines += [
        "Memory of the server (all processes), RSS / USS MiB, as requests accumulate: "
        + ", ".join(
            {
                "on": "the generated service with monitoring on (`/monitor` read every 5 s)",
                "off": "with monitoring off",
                "plain": "the hand-written BentoML service of `baselines/plain`",
            }.get(v, v)
            for v in runs
        )
        + ":",
        "",
        "| requests | " + " | ".join(names.get(v, v) for v in runs) + " |",
        "| ---: | " + " | ".join("---:" for _ in runs) + " |",
    ]
    marks = [m for m in next(iter(runs.values())) if m.isdigit()]
    for mark in marks:
        cells = []
        for v in runs:
            m = runs[v].get(mark)
            cells.append(f"{m['rss_mib']} / {m['uss_mib']}" if m else "")
        lines.append(f"| {int(mark):,} | " + " | ".join(cells) + " |")
    took = ", ".join(f"{names.get(v, v)} {runs[v].get('seconds')} s" for v in runs)
    lines += ["", f"The long runs took {took}.", ""]
    return lines


def markdown(r: dict[str, Any]) -> str:
    t = r["throughput"]
    lines = [
        "# Monitoring costs",
        "",
        f"{r['model']}; {r['generator']}. Machine: {r['cpus']} CPUs, load average "
        f"{' '.join(f'{v:.2f}' for v in r['loadavg_start'])} at the start and "
        f"{' '.join(f'{v:.2f}' for v in r['loadavg_end'])} at the end.",
        "",
    ]
    if t:
        lines += [
            f"Throughput: median of {r['rounds']} alternating rounds of "
            f"{r['seconds_per_level']:g} s.",
            "",
            "| monitoring | req/s | p50 ms | p95 ms | p99 ms |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for v, label in (("off", "off (window_rows: 0)"), ("on", "on (10,000-row window)")):
            lines.append(
                f"| {label} | {t[v]['requests_per_s']:.0f} | {t[v]['p50_ms']:.2f} | "
                f"{t[v]['p95_ms']:.2f} | {t[v]['p99_ms']:.2f} |"
            )
        lines += [
            "",
            f"Throughput with monitoring on: **{r['throughput_change']:+.1%}** (while `/monitor` "
            f"and `/metrics` were read every second; a read took "
            f"{r['monitor_and_metrics_read_ms_median']} ms, median). Per round: "
            + ", ".join(
                f"{v} {x['requests_per_s']:.0f}" for v in ("on", "off") for x in r["runs"][v]
            )
            + " req/s.",
            "",
        ]
        if r.get("first_monitor_read_ms"):
            lines += [
                "Before each monitored round, one `GET /monitor` (the worker's first report: it "
                "imports scipy and warms the tests; once per worker) took "
                + ", ".join(f"{ms:,} ms" for ms in r["first_monitor_read_ms"])
                + ".",
                "",
            ]
    if r["memory"]:
        lines += memory_lines(r["memory"])
    if r.get("lazy_work"):
        w = r["lazy_work"]
        lines += [
            "The monitored worker's CPU per piece of lazy work (idle server, full window, median "
            f"of 5): the report rebuilt {w['rebuild_cpu_ms']} ms (the first "
            f"{w['first_report_cpu_ms']} ms), a cached `/monitor` {w['cached_read_cpu_ms']} ms, "
            f"`/metrics` after the cache expired {w['metrics_uncached_cpu_ms']} ms, an idle "
            f"second {w['idle_cpu_ms_per_s']} ms. A dashboard reading every second rebuilds "
            f"once per `refresh_seconds` (5 s): {w['rebuild_share_of_a_core']:.1%} of a core.",
            "",
        ]
    for variant, profile in (r.get("profiles") or {}).items():
        lines += [
            f"py-spy, monitoring {variant} ({profile['load']}, {profile['samples']} samples): "
            + ", ".join(f"{name} {pct} %" for name, _, pct in profile["packages"][:8])
            + "; monitoring frames (inclusive): "
            + (
                ", ".join(f"{name} {pct} %" for name, _, pct in profile["monitoring_frames"])
                or "none"
            ),
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
