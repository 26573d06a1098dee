"""What a retrain of the bundled example costs: wall time by step, CPU, memory and disk.

    .venv/bin/python benchmarks/retrain.py [--rounds N] [--out DIR]

In a temporary folder with its own BentoML store, the example (``examples/breast_cancer.py``)
is validated, packaged and promoted with the config of the repository's ``workbench.yaml``
(cross-validation and importance as configured) and ``shadow: {min_advantage: 0}``. Then
``workbench retrain --data data/drifted.csv`` runs ``--rounds`` times as a user runs it (a
subprocess: the command, its kernel, its two shadow servers), each time after a rollback, so every
round challenges the same promoted version with the same rows (and builds the same Bento). Per
round: the wall time of the command, each step's seconds from ``retrain.json``, the CPU seconds
and peak resident memory of the command and everything it waited for (``getrusage`` of the
children: the largest single process, not the sum), the run folder's size and what the store
grew by. Writes ``retrain.json`` and ``retrain.md`` to ``--out`` (default
``benchmarks/results``); the temporary folder and store are deleted. Not a test: nothing
asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WORKBENCH = Path(sys.executable).parent / "workbench"


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def setup(root: Path, env: dict[str, str]) -> Path:
    """The example promoted in a fresh project under ``root``."""
    import yaml

    project = root / "project"
    subprocess.run([sys.executable, REPO / "examples" / "breast_cancer.py", project], check=True)
    raw = yaml.safe_load((REPO / "workbench.yaml").read_text())
    raw["shadow"] = {"min_advantage": 0.0}
    (project / "workbench.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    script = (
        "from workbench import load_config, package, promote, validate\n"
        f"c = load_config({str(project / 'workbench.yaml')!r})\n"
        "validate(c)\n"
        "promote(c, package(c).bento_tag, reason='first release')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=env)
    return project


def one_round(project: Path, env: dict[str, str], number: int) -> dict[str, Any]:
    """One ``workbench retrain`` as a subprocess, measured, then rolled back."""
    store = Path(env["BENTOML_HOME"])
    store_before = size(store)
    run = project / "runs" / f"round-{number}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [
            WORKBENCH,
            "retrain",
            "--config",
            project / "workbench.yaml",
            "--data",
            project / "data" / "drifted.csv",
            "--out",
            run,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"round {number}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    record = json.loads((run / "retrain.json").read_text())
    subprocess.run(
        [
            WORKBENCH,
            "rollback",
            record["name"],
            "--config",
            project / "workbench.yaml",
            "--reason",
            "benchmark round",
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    return {
        "wall_s": round(wall, 2),
        "steps_s": {s["name"]: s["seconds"] for s in record["steps"]},
        "in_notebook_s": record["seconds"],
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
        "peak_rss_mib": round(after.ru_maxrss / 1024, 1),
        "run_folder_mib": round(size(run) / 2**20, 2),
        "store_growth_mib": round((size(store) - store_before) / 2**20, 2),
        "bento_tag": record["bento_tag"],
        "model_sha256": record["model"]["sha256"],
    }


def markdown(rounds: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    steps = list(rounds[0]["steps_s"])

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    lines = [
        "| round | wall (s) | in the notebook (s) | "
        + " | ".join(f"{s} (s)" for s in steps)
        + " | CPU (s) | peak RSS (MiB) | run folder (MiB) | store growth (MiB) |",
        "|---:" * (7 + len(steps)) + "|",
    ]
    for i, r in enumerate(rounds, 1):
        lines.append(
            f"| {i} | {r['wall_s']:.1f} | {r['in_notebook_s']:.1f} | "
            + " | ".join(f"{r['steps_s'][s]:.1f}" for s in steps)
            + f" | {r['cpu_s']:.1f} | {r['peak_rss_mib']:.0f} | {r['run_folder_mib']:.2f} | "
            f"{r['store_growth_mib']:.2f} |"
        )
    same = len({(r["bento_tag"], r["model_sha256"]) for r in rounds}) == 1
    lines += [
        "",
        f"Median wall {median('wall_s'):.1f} s, CPU {median('cpu_s'):.1f} s. Every round built "
        f"{'the same Bento ' + rounds[0]['bento_tag'] if same else 'DIFFERENT Bentos'} from the "
        f"same model bytes. Machine: {meta['cpus']} CPUs, Python {meta['python']}, "
        f"load average {meta['load_before']} before and {meta['load_after']} after.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="workbench-retrain-bench-"))
    env = {
        **os.environ,
        "BENTOML_HOME": str(root / "bentoml"),
        "WORKBENCH_STATE_DIR": str(root / "state"),
        "BENTOML_DO_NOT_TRACK": "True",
        "CI": "true",
    }
    env.pop("WORKBENCH_CAPTURE_DIR", None)
    meta = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        project = setup(root, env)
        rounds = [one_round(project, env, i) for i in range(1, args.rounds + 1)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrain.json").write_text(json.dumps({"meta": meta, "rounds": rounds}, indent=2))
    (args.out / "retrain.md").write_text(markdown(rounds, meta))
    print(markdown(rounds, meta))


if __name__ == "__main__":
    main()
