"""What the canary router costs: ``/predict`` straight to a version and through the router.

    .venv/bin/python benchmarks/rollout.py [--rounds 3] [--requests 2000] [--concurrency 16]

Two versions of the bundled example (the second a refit with another C) are packaged into a
store of their own, the first promoted, and the second rolled out at share 0.5
(:func:`workbench.versions.serve_rollout`, both served from this environment). Interleaved
rounds of one-row predictions (closed loop, loopback): straight to the promoted version, and
through the router. Also the router's resident memory and how long the three servers took to be
ready. Writes ``benchmarks/results/rollout.json`` and ``.md``. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="workbench-bench-store-"))
os.environ.setdefault("WORKBENCH_STATE_DIR", tempfile.mkdtemp(prefix="workbench-bench-state-"))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "examples"))

RESULTS = REPO / "benchmarks" / "results"


def project() -> tuple[Any, str, str]:
    """The example project packaged twice (config, first tag, second tag), the first promoted."""
    import joblib
    import pandas as pd
    import yaml
    from breast_cancer import write_example
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from workbench import load_config, package, promote, validate

    folder = Path(tempfile.mkdtemp(prefix="workbench-rollout-bench-"))
    write_example(folder)
    raw = yaml.safe_load((REPO / "workbench.yaml").read_text())
    raw["validation"] = {"cv_folds": 0, "importance_top": 0, "explain_rows": 0}
    raw["launch"] = {"portable": False}
    (folder / "workbench.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(folder / "workbench.yaml")
    validate(config)
    first = package(config).bento_tag
    train = pd.read_csv(folder / "data" / "train.csv")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    joblib.dump(
        model.fit(train.drop(columns="target"), train["target"]), folder / "models" / "model.joblib"
    )
    validate(config)
    second = package(config).bento_tag
    promote(config, first, reason="benchmark", force=True)
    return config, first, second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    import pandas as pd
    import psutil
    from loadgen import load

    from workbench.versions import serve_rollout

    config, _, second = project()
    started = time.perf_counter()
    canary, _ = serve_rollout(config, second, share=0.5)
    ready_s = time.perf_counter() - started
    runs: dict[str, list[dict[str, Any]]] = {"direct": [], "router": []}
    try:
        rows = pd.read_csv(config.test_path).drop(columns="target").head(1)
        body = json.dumps({"rows": rows.to_dict(orient="records")}).encode()
        headers = {"Authorization": f"Bearer {canary.api_key}", "Content-Type": "application/json"}
        targets = {"direct": canary.primary.url, "router": canary.url}
        for _ in range(args.rounds):
            for name, url in targets.items():
                result = load(
                    f"{url}/predict",
                    body,
                    concurrency=args.concurrency,
                    max_requests=args.requests,
                    seconds=60,
                    headers=headers,
                )
                runs[name].append(result.to_dict())
        router_mb = psutil.Process(canary.router.pid).memory_info().rss / 2**20
    finally:
        canary.stop()
        shutil.rmtree(config.root, ignore_errors=True)
    report = {
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "date": date.today().isoformat(),
        "concurrency": args.concurrency,
        "ready_s": round(ready_s, 1),
        "router_rss_mb": round(router_mb, 1),
        "runs": runs,
    }
    lines = ["| path | req/s (rounds) | p50 (ms) | p99 (ms) |", "|---|---|---:|---:|"]
    for name, results in runs.items():
        rates = ", ".join(f"{r['requests_per_s']:.0f}" for r in results)
        p50 = statistics.median(r["p50_ms"] for r in results)
        p99 = statistics.median(r["p99_ms"] for r in results)
        lines.append(f"| {name} | {rates} | {p50:.1f} | {p99:.1f} |")
    lines += [
        "",
        f"Three servers ready in {report['ready_s']} s; the router's RSS "
        f"{report['router_rss_mb']} MB. c={args.concurrency}, one row a request, "
        f"{report['machine']}, {report['date']}.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rollout.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "rollout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
