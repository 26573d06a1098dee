"""Batch scoring speed and memory: `workbench score` in process and on a local Dask cluster of
2 workers, against the in-process batch ceiling of the same model, measured in the same run.

    .venv/bin/python benchmarks/scoring.py [--rows 10000000] [--small 1000000] [--out FILE]

One run, everything under a temporary folder (a BentoML store, the data, the outputs) deleted at
the end:

- the reference forest of ``benchmarks/serving.py`` (RandomForestClassifier(n_estimators=100,
  max_depth=10), 20 numeric features, seeded), validated and packaged by workbench with
  ``service.runtime: auto`` (the Bento serves the ONNX graph when it answers as scikit-learn);
- Parquet files of ``--small`` and ``--rows`` rows of its 20 features (row groups of 1M rows);
- the ceiling: the Bento's model alone (what ``workbench score`` loads, the same predictor
  call), on one 65,536-row float64 frame already in memory, best of 5 passes: rows/s;
- ``workbench score`` on each file in process and with ``--workers 2``, each a fresh process
  tree: rows/s from its ``score.json`` (read, checked, predicted, written, drift-sketched; the
  model load included), the seconds from the command's start to its first scored rows (its
  first progress line under ``CI=true``), and the peak RSS of every process of the tree (sampled
  every 0.1 s).

The machine may be shared: the load average before and after is recorded with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHUNK = 65_536


def _write_rows(path: Path, rows: int, columns: list[str]) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        table = pa.table({c: rng.normal(0, 1.5, n) for c in columns})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def _ceiling(src: str, columns: list[str], vouched: Any) -> float:
    """Rows/s of the Bento's model alone on a 65,536-row frame in memory (best of 5)."""
    import numpy as np
    import pandas as pd

    from workbench.scoring.model import load_bento_model

    model = load_bento_model(src, vouched)
    frame = pd.DataFrame(
        np.random.default_rng(2).normal(0, 1.5, (CHUNK, len(columns))), columns=columns
    )
    X, _ = model.predictor.frame_inputs(frame)
    model.predictor.predict(X)
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        model.predictor.predict(X)
        best = max(best, CHUNK / (time.perf_counter() - started))
    return best


def _watch(pid: int, peaks: dict[int, tuple[str, float]], stop: threading.Event) -> None:
    import psutil

    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for proc in procs:
            try:
                rss = proc.memory_info().rss / 2**20
                name = " ".join(proc.cmdline()[1:3])[-60:]
            except psutil.Error:
                continue
            if rss > peaks.get(proc.pid, ("", 0.0))[1]:
                peaks[proc.pid] = (name, rss)
        stop.wait(0.1)


def _score(
    tag: str, file: Path, out: Path, extra: list[str], env: dict[str, str]
) -> dict[str, Any]:
    command = [
        str(Path(sys.executable).with_name("workbench")),
        "score",
        tag,
        str(file),
        "--out",
        str(out),
        "--chunk-rows",
        str(CHUNK),
        *extra,
    ]
    peaks: dict[int, tuple[str, float]] = {}
    stop = threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watcher = threading.Thread(target=_watch, args=(proc.pid, peaks, stop), daemon=True)
    watcher.start()
    lines, first_rows = [], None
    assert proc.stdout is not None
    for raw in proc.stdout:  # under CI=true a line per chunk (per task on Dask): "scored N/M rows"
        if first_rows is None and raw.startswith(b"scored "):
            first_rows = time.perf_counter() - started
        lines.append(raw)
    proc.wait()
    output = b"".join(lines)
    stop.set()
    watcher.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output.decode()[-2000:]}")
    record = json.loads(out.with_name(out.name + ".score.json").read_text())
    return {
        "rows": record["rows_scored"],
        "rows_per_s": record["rows_per_second"],
        "steady_rows_per_s": record["scoring_rows_per_second"],
        "startup_s": record["startup_seconds"],
        "seconds": record["seconds"],
        "wall_s": wall,
        "first_rows_s": first_rows,
        "engine": record["engine"],
        "worker_processes": record["worker_processes"],
        "peak_rss_mb": sorted((round(rss), name) for name, rss in peaks.values())[::-1][:4],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--only-dask", action="store_true", help="skip the in-process runs (Dask's start-up only)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="workbench-scoring-bench-"))
    env = {
        **os.environ,
        "BENTOML_HOME": str(work / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "CI": "true",
    }
    os.environ.update(env)
    try:
        sys.path.insert(0, str(HERE))
        from serving import make_project  # the reference forest, as the serving benchmark has it

        from workbench import load_config, package, validate
        from workbench.monitoring import find_bento

        load_before = os.getloadavg()
        make_project(work / "project", "forest", name="scoring_bench")
        config = load_config(work / "project" / "scoring_bench.yaml")
        validate(config).raise_for_gates()
        tag = package(config).bento_tag
        source = find_bento(tag)
        card = json.loads((source.src / "model_card.json").read_text())
        columns = [c["name"] for c in card["input_schema"]["columns"]]
        print(f"Bento {tag}, runtime {card['runtime']['runtime']}", flush=True)
        from workbench.integrity import verify_bento

        vouched = verify_bento(config.root, tag)  # the ledger the package stage wrote
        ceiling = _ceiling(str(source.src), columns, vouched)
        print(f"ceiling: {ceiling:,.0f} rows/s", flush=True)
        figures: dict[str, Any] = {
            "bento": tag,
            "runtime": card["runtime"]["runtime"],
            "ceiling_rows_per_s": ceiling,
            "runs": {},
        }
        for rows in (args.small, args.rows):
            file = work / f"rows-{rows}.parquet"
            _write_rows(file, rows, columns)
            engines: list[tuple[str, list[str]]] = [("dask 2 workers", ["--workers", "2"])]
            if not args.only_dask:
                engines.insert(0, ("in process", []))
            for label, extra in engines:
                out = work / f"out-{rows}-{len(extra)}-{len(figures['runs'])}.parquet"
                # the project's records vouch for the Bento's bytes (workbench.integrity)
                vouch = ["--config", str(work / "project" / "scoring_bench.yaml")]
                run = _score(tag, file, out, [*vouch, *extra], env)
                cores = 2 if extra else 1
                run["per_core_vs_ceiling"] = run["rows_per_s"] / cores / ceiling
                run["steady_per_core_vs_ceiling"] = run["steady_rows_per_s"] / cores / ceiling
                figures["runs"][f"{rows} {label}"] = run
                print(
                    f"{rows:,} rows, {label}: {run['rows_per_s']:,.0f} rows/s "
                    f"({run['per_core_vs_ceiling']:.0%} of the ceiling per core); steady "
                    f"{run['steady_rows_per_s']:,.0f} ({run['steady_per_core_vs_ceiling']:.0%}), "
                    f"start-up {run['startup_s']:.1f} s, first rows at "
                    f"{run['first_rows_s']:.1f} s, peak RSS {run['peak_rss_mb']}",
                    flush=True,
                )
                out.unlink(missing_ok=True)
            file.unlink()
        figures["load_average_before"] = load_before
        figures["load_average_after"] = os.getloadavg()
        figures["cpus"] = os.cpu_count()
        print(json.dumps(figures, indent=2))
        if args.out:
            args.out.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
