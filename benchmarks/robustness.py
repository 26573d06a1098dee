"""What a hostile client costs a served Bento (issue 29): memory, size and time under abuse.

    .venv/bin/python benchmarks/robustness.py [--paths N] [--window-rows N] [--seconds S]
        [--out DIR]

Two models of ``benchmarks/serving.py`` are packaged in a temporary BentoML store, each served
alone by one worker on 127.0.0.1 with ``service.auth: api_key``:

- **paths** (``forest``): ``--paths`` (30,000) `GET /x<i>` without the key over 64 kept-alive
  connections; the worker's resident memory and ``/metrics``' size and scrape time before and
  after;
- **refusals** (``forest``): the time to answer a body of 5,000 bad rows (``{"rows": [{}] *
  5000}``, 20 KB) against a valid body of the same size (sequential requests, the median of
  40 each), and a normal client's one-row latency (p50, p95, ``--seconds``) alone, beside four
  clients sending the bad body in a loop, and beside four sending the valid one;
- **strings** (``pipeline``, a window of ``--window-rows`` rows): as many rows and 5 % more
  whose ``colour`` is a unique 100,000-character non-ASCII value (15 rows a request); the
  worker's memory before and after, and the largest answer;
- **window** (in process, when the runtime has :class:`~workbench.runtime.monitoring.window.
  Intake`): the bytes a full default window (10,000 rows) holds for the forest, and for the
  pipeline with every ``colour`` a unique 100,000-character value (``tracemalloc``).

The machine's load average is recorded before and after. Writes ``robustness.json`` and
``robustness.md`` to ``--out`` (default ``benchmarks/results``); the temporary store is deleted.
Runs against any version of workbench that can package these models: the figures of the code
before issue 29 (``results/robustness-before.*``) were taken with this script and a checkout of
that code first on the import path (``PYTHONPATH=<checkout>``). Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
MIB = 1 << 20
try:
    from workbench.runtime.columns import MAX_CATEGORY_CHARS
except ImportError:  # the code before issue 24 on the path (the "before" runs): 100,000
    MAX_CATEGORY_CHARS = 100_000
LONG_CATEGORY = MAX_CATEGORY_CHARS - 10
"""The characters of a maximal category value before its 10-digit suffix."""


def rss_mib(server: Any) -> float:
    from serving import workers_of

    return round(sum(p.memory_info().rss for p in workers_of(server.pid)) / MIB, 1)


async def _gets(host: str, port: int, paths: list[str], out: Counter[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for path in paths:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            out[int((await reader.readline()).split()[1])] += 1
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
    finally:
        writer.close()


def unique_paths(url: str, count: int, connections: int = 64) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    paths = [f"/x{i}" for i in range(count)]
    out: Counter[int] = Counter()

    async def main() -> None:
        await asyncio.gather(
            *(_gets(host, int(port), paths[i::connections], out) for i in range(connections))
        )

    started = time.perf_counter()
    asyncio.run(main())
    return {"statuses": dict(out), "seconds": round(time.perf_counter() - started, 1)}


def scrape(url: str) -> tuple[int, float]:
    import httpx

    started = time.perf_counter()
    size = len(httpx.get(f"{url}/metrics", timeout=300).content)
    return size, round((time.perf_counter() - started) * 1000, 1)


def measure_paths(server: Any, count: int) -> dict[str, Any]:
    before = {"rss_mib": rss_mib(server), "metrics": scrape(server.url)}
    sent = unique_paths(server.url, count)
    after = {"rss_mib": rss_mib(server), "metrics": scrape(server.url)}
    return {"requests": count, **sent, "before": before, "after": after}


def timed(client: Any, url: str, body: bytes, n: int) -> float:
    """The median ms of ``n`` sequential POSTs of ``body``."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        client.post(url, content=body)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def normal_latency(
    url: str, headers: dict[str, str], body: bytes, seconds: float
) -> dict[str, Any]:
    import httpx
    import numpy as np

    times = []
    with httpx.Client(headers=headers, timeout=60) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            client.post(url, content=body)
            times.append(time.perf_counter() - started)
    ms = np.asarray(times) * 1000
    return {
        "requests": len(ms),
        "p50_ms": round(float(np.median(ms)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def measure_refusals(server: Any, rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {server.api_key}", "content-type": "application/json"}
    url = f"{server.url}/predict"
    bad = json.dumps({"rows": [{}] * 5000}).encode()
    n = 1
    while len(json.dumps({"rows": rows[: n + 1]})) <= len(bad) and n < len(rows):
        n += 1
    valid = json.dumps({"rows": rows[:n]}).encode()
    one = json.dumps({"rows": rows[:1]}).encode()
    with httpx.Client(headers=headers, timeout=120) as client:
        timed(client, url, valid, 5)
        out: dict[str, Any] = {
            "bad_body": {"bytes": len(bad), "median_ms": timed(client, url, bad, 40)},
            "valid_body": {
                "bytes": len(valid),
                "rows": n,
                "median_ms": timed(client, url, valid, 40),
            },
        }
    out["normal_alone"] = normal_latency(url, headers, one, seconds)

    def loop(body: bytes, stop: threading.Event) -> None:
        with httpx.Client(headers=headers, timeout=120) as client:
            while not stop.is_set():
                client.post(url, content=body)

    for name, body in (("normal_beside_4_abusers", bad), ("normal_beside_4_valid", valid)):
        stop = threading.Event()
        others = [threading.Thread(target=loop, args=(body, stop)) for _ in range(4)]
        for thread in others:
            thread.start()
        try:
            out[name] = normal_latency(url, headers, one, seconds)
        finally:
            stop.set()
            for thread in others:
                thread.join(timeout=180)
    return out


def measure_strings(server: Any, row: dict[str, Any], rows_needed: int) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {server.api_key}", "content-type": "application/json"}
    before = rss_mib(server)
    largest, statuses, sent = 0, Counter[int](), 0
    with httpx.Client(headers=headers, timeout=300) as client:
        for request in range(-(-rows_needed // 15)):
            batch = [
                {**row, "colour": "é" * LONG_CATEGORY + f"{request:05d}{i:05d}"} for i in range(15)
            ]
            answer = client.post(
                f"{server.url}/predict",
                content=json.dumps({"rows": batch}, ensure_ascii=False).encode(),
            )
            statuses[answer.status_code] += 1
            largest = max(largest, len(answer.content))
            sent += len(batch)
    time.sleep(2)
    return {
        "rows": sent,
        "statuses": dict(statuses),
        "answer_bytes_max": largest,
        "rss_mib": [before, rss_mib(server)],
    }


def window_bytes(folder: Path, row: dict[str, Any], *, long_colour: bool) -> float | None:
    """MiB a full 10,000-row window holds in process, the Bento's model answering (None: a
    runtime without ``Intake``, from before issue 29)."""
    import tracemalloc

    import bentoml
    from pydantic import ConfigDict, Field, create_model

    try:
        from workbench.runtime.monitoring.monitor import Monitor
        from workbench.runtime.monitoring.window import Intake  # noqa: F401 (the new runtime)
    except ImportError:
        return None
    from workbench.runtime.card import ModelCard
    from workbench.runtime.columns import COLUMN_KINDS
    from workbench.runtime.predictor import Predictor
    from workbench.runtime.settings import Settings

    read = Settings.read(folder)
    monitor = read.monitor.model_copy(update={"window_rows": 10_000})
    settings = read.model_copy(update={"monitor": monitor})
    card = ModelCard.read(settings.card_path)
    fields: dict[str, Any] = {
        f"c{i}": (COLUMN_KINDS[column.kind].row_type, Field(alias=column.name))
        for i, column in enumerate(card.input_schema.columns)
    }
    row_model = create_model("Row", __config__=ConfigDict(extra="forbid"), **fields)
    predictor = Predictor(bentoml.sklearn.load_model(settings.model_tag), row_model, settings)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    monitor = Monitor(settings, row_model, card)
    for i in range(100):
        rows = [
            row_model.model_validate(
                {**row, "colour": "é" * LONG_CATEGORY + f"{i:05d}{j:05d}"} if long_colour else row
            )
            for j in range(100)
        ]
        monitor.keep([rows], [predictor.answer(rows)])
        del rows
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return round(held / MIB, 2)


def package_model(project: Path, kind: str, name: str, **sections: Any) -> tuple[str, Path]:
    """Package ``kind`` as ``name`` with ``sections`` merged into its config; (tag, src)."""
    import bentoml
    import yaml
    from serving import make_project

    from workbench import load_config, package, validate

    make_project(project, kind, name=name)
    path = project / f"{name}.yaml"
    config = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        config.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    loaded = load_config(path)
    validate(loaded).raise_for_gates()
    tag = package(loaded).bento_tag
    return tag, Path(bentoml.get(tag).path) / "src"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=30_000)
    parser.add_argument("--window-rows", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wb-robustness-bench-"))
    try:
        return measure(args, work)
    finally:  # the temporary store, projects and logs
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path) -> int:
    os.environ["BENTOML_HOME"] = str(work / "bentoml")
    os.environ["WORKBENCH_STATE_DIR"] = str(work / "state")
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    import pandas as pd
    from serving import start_server

    load_start = os.getloadavg()
    keyed = {"service": {"auth": "api_key"}}
    forest, forest_src = package_model(work / "forest", "forest", "abuse_forest", **keyed)
    pipeline, pipeline_src = package_model(
        work / "pipeline",
        "pipeline",
        "abuse_pipeline",
        **keyed,
        monitor={"window_rows": args.window_rows},
    )
    logs = work / "logs"
    logs.mkdir()
    results: dict[str, Any] = {"load_before": [round(x, 2) for x in load_start]}
    test = pd.read_csv(work / "forest" / "data" / "test.csv").drop(columns="target")
    rows = json.loads(test.to_json(orient="records"))
    server, _ = start_server(forest, logs)
    try:
        results["refusals"] = measure_refusals(server, rows, args.seconds)
        print("refusals:", results["refusals"], flush=True)
        results["paths"] = measure_paths(server, args.paths)
        print("paths:", results["paths"], flush=True)
    finally:
        server.stop()
    mixed = pd.read_csv(work / "pipeline" / "data" / "test.csv").drop(columns="target")
    mixed_row = json.loads(mixed.head(1).to_json(orient="records"))[0]
    server, _ = start_server(pipeline, logs)
    try:
        results["strings"] = measure_strings(server, mixed_row, int(args.window_rows * 1.05))
        print("strings:", results["strings"], flush=True)
    finally:
        server.stop()
    results["window_mib"] = {
        "forest": window_bytes(forest_src, rows[0], long_colour=False),
        "pipeline_long_colour": window_bytes(pipeline_src, mixed_row, long_colour=True),
    }
    print("window:", results["window_mib"], flush=True)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "robustness.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "robustness.md").write_text(report(results))
    print(report(results))
    return 0


def report(r: dict[str, Any]) -> str:
    """The figures as the table of docs/robustness.md."""
    paths, refusals, strings = r["paths"], r["refusals"], r["strings"]
    lines = [
        "| abuse | measured |",
        "| --- | --- |",
        f"| {paths['requests']:,} anonymous `GET /x<i>` | statuses {paths['statuses']}, "
        f"{paths['seconds']} s; worker RSS {paths['before']['rss_mib']} -> "
        f"{paths['after']['rss_mib']} MiB; `/metrics` {paths['before']['metrics'][0]:,} -> "
        f"{paths['after']['metrics'][0]:,} bytes, scrape {paths['after']['metrics'][1]} ms |",
        f'| `{{"rows": [{{}}] * 5000}}` ({refusals["bad_body"]["bytes"]:,} B) | '
        f"{refusals['bad_body']['median_ms']} ms, against {refusals['valid_body']['median_ms']} "
        f"ms for {refusals['valid_body']['rows']} valid rows of the same size |",
        f"| a one-row client beside 4 such | p50 {refusals['normal_alone']['p50_ms']} -> "
        f"{refusals['normal_beside_4_abusers']['p50_ms']} ms, p95 "
        f"{refusals['normal_alone']['p95_ms']} -> {refusals['normal_beside_4_abusers']['p95_ms']} "
        f"ms (beside 4 sending the valid body: p50 "
        f"{refusals['normal_beside_4_valid']['p50_ms']}, p95 "
        f"{refusals['normal_beside_4_valid']['p95_ms']} ms) |",
        f"| {strings['rows']:,} rows of unique 100,000-character categories | largest answer "
        f"{strings['answer_bytes_max']:,} B; worker RSS {strings['rss_mib'][0]} -> "
        f"{strings['rss_mib'][1]} MiB |",
        f"| a full 10,000-row window (in process) | forest {r['window_mib']['forest']} MiB; "
        f"pipeline, every category 100,000 characters: "
        f"{r['window_mib']['pipeline_long_colour']} MiB |",
        "",
        f"Load average before {r['load_before']}, after {r['load_after']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
