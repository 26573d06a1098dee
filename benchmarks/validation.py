"""Validation wall time and peak memory on 10k, 100k and 1M-row synthetic test sets.

    .venv/bin/python benchmarks/validation.py [--sizes 10000,100000,1000000] [--train-rows 20000]

The model is a logistic regression on 20 numeric features (``make_classification``, seeded). The
test set grows; the training set stays at ``--train-rows`` so the figures show what the test set
costs (cross-validation, the profile and the schema work on the training data). One more row,
``train = test = largest``, shows that cross-validation stays bounded on big training data
(``validation.cv_max_rows``). The data is Parquet, plus one row reading the largest test set from
CSV; the config is the default one (5-fold CV, permutation importance, round trip, latency; the
champion store is an empty temporary one).

Each size runs in a fresh subprocess, twice, after a warm-up validation of a 500-row project
(imports and first-call caches are not the data's cost): once for wall time and peak memory, once
under ``tracemalloc`` (which sees Python and NumPy allocations but not pyarrow's). Peak memory is
the kernel's high-water mark of the resident set (``VmHWM``, reset through ``clear_refs`` just
before ``validate`` and again once the inputs are read) minus the RSS just before ``validate``:
``ru_maxrss`` would not do, it is inherited across fork and exec. "data" is the memory of the
loaded train and test frames. Writes ``benchmarks/results/validation.json`` and ``.md`` and the
"Validation" section of ``docs/benchmarks.md``. Not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOCS = REPO / "docs" / "benchmarks.md"
FEATURES = 20
SEED = 0


def make_project(folder: Path, *, train_rows: int, test_rows: int, fmt: str = "parquet") -> int:
    """Write model, data and workbench.yaml under ``folder``; return the bytes of loaded data."""
    import joblib
    import numpy as np
    import pandas as pd
    import yaml
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(
        n_samples=train_rows + test_rows,
        n_features=FEATURES,
        n_informative=8,
        random_state=SEED,
    )
    columns = [f"x{i:02d}" for i in range(FEATURES)]
    frame = pd.DataFrame(X, columns=columns)
    frame["target"] = y.astype(np.int64)
    train, test = frame.iloc[:train_rows], frame.iloc[train_rows:]
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("test", test)):
        if fmt == "csv":
            part.to_csv(folder / "data" / f"{name}.csv", index=False)
        else:
            part.to_parquet(folder / "data" / f"{name}.parquet", index=False)
    model = LogisticRegression(max_iter=1000).fit(train[columns], train["target"])
    joblib.dump(model, folder / "model.joblib")
    config = {
        "name": "bench",
        "model": "model.joblib",
        "data": {"train": f"data/train.{fmt}", "test": f"data/test.{fmt}", "target": "target"},
        "task": "classification",
        "gates": {"roc_auc": {"min": 0.8}, "cv_roc_auc": {"min": 0.8}},
    }
    (folder / "workbench.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return int(train.memory_usage(deep=True).sum() + test.memory_usage(deep=True).sum())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> None:
    """Reset this process's high-water mark (Linux >= 4.0). ``ru_maxrss`` would not do: it is
    inherited across fork and exec, so a child would report its parent's peak."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(folder: Path, mode: str) -> dict[str, Any]:
    """Run one validation in this (fresh) process and measure it."""
    from workbench import load_config, validate

    # Warm-up on a tiny project: imports and first-call caches are not the data's cost.
    validate(load_config(folder / "warm-up" / "workbench.yaml"), run_dir=folder / "run-warm-up")
    config = load_config(folder / "workbench.yaml")
    out: dict[str, Any] = {}
    if mode == "memory":
        tracemalloc.start()
        validate(config, run_dir=folder / "run-memory")
        out["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out
    _reset_peak_rss()
    before = _rss_bytes()
    peaks: dict[str, int] = {}

    def on_progress(step: str, _fraction: float) -> None:
        if "load" not in peaks and not step.startswith("loading"):
            peaks["load"] = _peak_rss_bytes()  # reading and checking the inputs
            _reset_peak_rss()

    started = time.perf_counter()
    result = validate(config, run_dir=folder / "run-time", on_progress=on_progress)
    out["seconds"] = time.perf_counter() - started
    peaks["compute"] = _peak_rss_bytes()
    out["rss_before"] = before
    out["rss_peak"] = max(peaks.values())
    out["rss_load_peak"] = peaks["load"]
    out["rss_compute_peak"] = peaks["compute"]
    out["steps_s"] = result.steps_s
    out["passed"] = result.passed
    return out


def run_child(folder: Path, mode: str) -> dict[str, Any]:
    env = {**os.environ, "BENTOML_HOME": str(folder / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(folder), mode],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed ({folder}, {mode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(train_rows: int, test_rows: int, fmt: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        folder = Path(tmp)
        data_bytes = make_project(folder, train_rows=train_rows, test_rows=test_rows, fmt=fmt)
        make_project(folder / "warm-up", train_rows=500, test_rows=500)
        timed = run_child(folder, "time")
        traced = run_child(folder, "memory")
    rss_delta = timed["rss_peak"] - timed["rss_before"]
    return {
        "format": fmt,
        "train_rows": train_rows,
        "test_rows": test_rows,
        "features": FEATURES,
        "data_mb": data_bytes / 2**20,
        "seconds": timed["seconds"],
        "us_per_test_row": timed["seconds"] / test_rows * 1e6,
        "rss_peak_delta_mb": rss_delta / 2**20,
        "rss_ratio": rss_delta / data_bytes,
        "rss_load_ratio": (timed["rss_load_peak"] - timed["rss_before"]) / data_bytes,
        "rss_compute_ratio": (timed["rss_compute_peak"] - timed["rss_before"]) / data_bytes,
        "traced_peak_mb": traced["traced_peak"] / 2**20,
        "traced_ratio": traced["traced_peak"] / data_bytes,
        "steps_s": timed["steps_s"],
        "passed": timed["passed"],
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| file | train rows | test rows | data (MB) | wall (s) | µs / test row | peak RSS Δ (MB) "
        "| RSS Δ / data | reading / data | after reading / data | traced / data "
        "| slowest steps (s) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        steps = sorted(r["steps_s"].items(), key=lambda kv: -kv[1])[:3]
        lines.append(
            f"| {r['format']} | {r['train_rows']:,} | {r['test_rows']:,} | {r['data_mb']:.1f} "
            f"| {r['seconds']:.2f} "
            f"| {r['us_per_test_row']:.2f} | {r['rss_peak_delta_mb']:.1f} | {r['rss_ratio']:.2f} "
            f"| {r['rss_load_ratio']:.2f} | {r['rss_compute_ratio']:.2f} "
            f"| {r['traced_ratio']:.2f} | " + ", ".join(f"{k} {v:.2f}" for k, v in steps) + " |"
        )
    return head + "\n".join(lines) + "\n"


def write_docs(table: str, machine: str) -> None:
    section = (
        "## Validation\n\n"
        "`validate()` on synthetic data: logistic regression, 20 numeric features, Parquet files, "
        "default `validation:` options (5-fold CV on at most 100,000 training rows, permutation "
        "importance on 2,000 test rows, round trip and latency on 1,000). Each row is a fresh "
        "process; peak RSS Δ is the high-water mark minus the RSS just before `validate()`, "
        "traced peak is `tracemalloc`'s, data is the memory of the loaded train and test frames. "
        "Regenerate with `.venv/bin/python benchmarks/validation.py`.\n\n"
        f"{table}\n{machine}\n\n"
        "Reading it: the time per test row falls as the test set grows, because the fixed costs "
        "(cross-validation on the training rows, permutation importance, round trip, latency) are "
        "amortised; from 100,000 to 1,000,000 test rows the wall time grows far less than tenfold. "
        "The per-row work is one pass per model (candidate, Dummy baseline, champion) plus the "
        "metrics and curves, all linear or `n log n`. With a million test rows the peak stays "
        "near 2x the loaded data: Parquet is read one block per column and joined once (2x for a "
        "moment), then predictions and metrics add a fraction of one copy. At 10,000 and 100,000 "
        "rows a fixed 15-40 MB (pyarrow's allocator, the CV fits, importance) dominates the ratio. "
        "The CSV row is pandas' C parser, which peaks at about 4.3x the frame while reading; after "
        "reading, validation itself stays near 2x. Prefer Parquet for test sets in the millions.\n"
    )
    text = DOCS.read_text() if DOCS.is_file() else "# Benchmarks\n\n"
    pattern = re.compile(r"## Validation\n.*?(?=\n## |\Z)", re.S)
    text = pattern.sub(section.rstrip("\n"), text) if pattern.search(text) else text + section
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument(
        "--no-extra", action="store_true", help="skip the big-training and the CSV rows"
    )
    parser.add_argument("--child", nargs=2, metavar=("DIR", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1])))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    plan = [(args.train_rows, n, "parquet") for n in sizes]
    if not args.no_extra:
        plan.append((sizes[-1], sizes[-1], "parquet"))
        plan.append((args.train_rows, sizes[-1], "csv"))
    rows = []
    for train_rows, test_rows, fmt in plan:
        print(f"{fmt:<8} train {train_rows:>9,}  test {test_rows:>9,} ...", end=" ", flush=True)
        row = measure(train_rows, test_rows, fmt)
        print(f"{row['seconds']:.2f} s, RSS Δ {row['rss_ratio']:.2f}x data", flush=True)
        rows.append(row)
    machine = (
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.machine()}, {time.strftime('%Y-%m-%d')}."
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "validation.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n"
    )
    table = markdown(rows)
    (RESULTS / "validation.md").write_text(table + "\n" + machine + "\n")
    write_docs(table, machine)
    print(table)


if __name__ == "__main__":
    main()
