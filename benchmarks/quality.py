"""Data-quality checks (``workbench.runtime.quality``): false alarms, detection, verdicts, cost.

Run by ``benchmarks/drift.py`` (its results go into ``drift.json`` and ``drift.md``). The drift
benchmark's eleven columns plus two that a pipeline breaks: ``patchy`` (a number, 20 % missing)
and ``tail`` (a category with a long tail of rare values, so the reference holds values seen
once and the unseen check meets new values by chance). Both reference regimes (20,000 and 1,000
rows); a fresh reference and window per trial, seeded:

* **false alarms**: same-distribution windows of 1,000 rows; per check, the share of windows in
  which it fails any column (target: at most 1 %), and the status over drift and quality;
* **detection**: each failure of issue 25 put into a fresh 1,000-row window; the share of
  windows in which the right check fails the right column (target: at least 99 %);
* **verdicts by window size**: the status of same-distribution windows from 100 rows (the
  example's 143 test rows among them) to 1,000: INCONCLUSIVE until drift can be judged;
* **cost**: ``dataset_quality`` on a 1,000-row window's summaries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import drift as bench  # benchmarks/drift.py: the columns, the regimes, Wilson intervals
import numpy as np
import pandas as pd

from workbench.runtime.drift import dataset_drift
from workbench.runtime.monitoring.judgement import judge_report
from workbench.runtime.quality import QUALITY_CHECKS, dataset_quality
from workbench.runtime.sketch import summarize_window
from workbench.validation.reference import build_reference

SIZES = (100, 143, 300, 500, 700, 1_000)
KINDS = {**bench.KINDS, "patchy": "number", "tail": "category"}
CHECKS = [name for name in QUALITY_CHECKS if name != "absent"]


def frame(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """The drift benchmark's columns, ``patchy`` and ``tail``."""
    out = bench.frame(rng, rows)
    patchy = rng.normal(0.0, 1.0, rows)
    patchy[rng.random(rows) < 0.2] = np.nan
    common = rng.choice(["p", "q", "r", "s"], rows, p=[0.4, 0.3, 0.2, 0.1])
    rare = np.asarray([f"t{i}" for i in rng.integers(0, 2_000, rows)])
    out["patchy"] = patchy
    out["tail"] = np.where(rng.random(rows) < 0.05, rare, common)
    return out


Break = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


def _set(column: str, values: Callable[[pd.DataFrame, np.random.Generator], Any]) -> Break:
    return lambda f, rng: f.assign(**{column: values(f, rng)})


def _fill(column: str, value: Any) -> Break:
    """Every row of ``column`` set to ``value``."""
    return lambda f, _rng: f.assign(**{column: value})


def _some(share: float, value: Any, column: str) -> Break:
    return _set(column, lambda f, rng: np.where(rng.random(len(f)) < share, value, f[column]))


EMPTY = _fill("patchy", np.nan)
FAILURES: dict[str, tuple[str, str, Break]] = {
    "patchy 20 % -> 100 % missing": ("missing", "patchy", EMPTY),
    "patchy entirely missing (constant)": ("constant", "patchy", EMPTY),
    "patchy 20 % -> 50 % missing": ("missing", "patchy", _some(0.375, np.nan, "patchy")),
    "colour: 5 % unseen values": ("unseen", "colour", _some(0.05, "violet", "colour")),
    "tail: 5 % unseen (harder: a long tail)": ("unseen", "tail", _some(0.05, "violet", "tail")),
    "normal: +inf in 10 % of rows": ("range", "normal", _some(0.10, np.inf, "normal")),
    "uniform: 5 % beyond training's maximum": ("range", "uniform", _some(0.05, 150.0, "uniform")),
    "uniform: 2 % beyond training's maximum (harder)": (
        "range",
        "uniform",
        _some(0.02, 150.0, "uniform"),
    ),
    "flag: one value (all true)": ("constant", "flag", _fill("flag", True)),
    "age: one value": ("constant", "age", _fill("age", 40)),
    "colour: absent from the file": ("absent", "colour", lambda f, _rng: f.drop(columns="colour")),
}  # fmt: skip


def status_of(reference: dict[str, Any], window: pd.DataFrame) -> str:
    """The verdict over drift and quality (``workbench drift``'s, with its defaults)."""
    windows = summarize_window(reference, window)
    report = {
        "drift": dataset_drift(reference, windows).to_dict(),
        "quality": dataset_quality(reference, windows).to_dict(),
    }
    return judge_report(report).status


def false_alarms(regime: str, trials: int) -> dict[str, Any]:
    ref_rows = bench.REGIMES[regime]
    hits = dict.fromkeys(CHECKS, 0)
    statuses = {"PASS": 0, "FAIL": 0, "INCONCLUSIVE": 0}
    by_size = {s: dict(statuses) for s in SIZES}
    for trial in range(trials):
        rng = np.random.default_rng([bench.SEED, 11, ref_rows, trial])
        reference = build_reference(frame(rng, ref_rows), KINDS)
        window = frame(rng, bench.WINDOW)
        quality = dataset_quality(reference, summarize_window(reference, window))
        for check in {c.check for c in quality.checks if c.status == "FAIL"}:
            hits[check] += 1
        statuses[status_of(reference, window)] += 1
        for size in SIZES:
            by_size[size][status_of(reference, window.head(size))] += 1
    return {
        "reference_rows": ref_rows,
        "trials": trials,
        "checks": {c: bench.wilson(h, trials) for c, h in hits.items()},
        "status": {s: bench.wilson(h, trials) for s, h in statuses.items()},
        "by_window_size": {
            str(s): {k: v / trials for k, v in c.items()} for s, c in by_size.items()
        },
    }


def detection(regime: str, trials: int) -> dict[str, Any]:
    ref_rows = bench.REGIMES[regime]
    hits = dict.fromkeys(FAILURES, 0)
    for trial in range(trials):
        rng = np.random.default_rng([bench.SEED, 12, ref_rows, trial])
        reference = build_reference(frame(rng, ref_rows), KINDS)
        window = frame(rng, bench.WINDOW)
        for name, (check, column, broken) in FAILURES.items():
            windows = summarize_window(reference, broken(window, rng))
            failed = {(c.check, c.column) for c in dataset_quality(reference, windows).checks
                      if c.status == "FAIL"}  # fmt: skip
            hits[name] += (check, column) in failed
    return {
        name: {"check": FAILURES[name][0], **bench.wilson(h, trials)} for name, h in hits.items()
    }


def cost(repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for regime, ref_rows in bench.REGIMES.items():
        rng = np.random.default_rng([bench.SEED, 13, ref_rows])
        reference = build_reference(frame(rng, ref_rows), KINDS)
        windows = summarize_window(reference, frame(rng, bench.WINDOW))
        out[regime] = {
            "columns": len(windows),
            "dataset_quality_ms": bench._median_us(
                partial(dataset_quality, reference, windows), repeats
            )
            / 1e3,
            "dataset_drift_ms": bench._median_us(
                partial(dataset_drift, reference, windows), repeats
            )
            / 1e3,
        }
    return out


def run(trials: int, detection_trials: int, repeats: int) -> dict[str, Any]:
    started = time.perf_counter()
    results = {
        "false_alarms": {r: false_alarms(r, trials) for r in bench.REGIMES},
        "detection": {r: detection(r, detection_trials) for r in bench.REGIMES},
        "cost": cost(repeats),
    }
    results["seconds"] = round(time.perf_counter() - started)
    return results


def markdown(results: dict[str, Any]) -> list[str]:
    fa, det, cost_ = results["false_alarms"], results["detection"], results["cost"]
    pct = bench._pct
    regimes = " | ".join(f"{fa[r]['reference_rows']:,}-row reference" for r in fa)
    lines = [
        "",
        "## Data-quality checks",
        "",
        f"The drift columns plus `patchy` (a number, 20 % missing) and `tail` (a category with "
        f"a long tail of rare values); windows of {bench.WINDOW:,} rows; thresholds at their "
        "defaults (0.001 per check over a window, shared among its columns).",
        "",
        "### False alarms on same-distribution windows (target: at most 1 % per check)",
        "",
        f"| check | {regimes} |",
        "|---|" + "---|" * len(fa),
    ]
    for check in CHECKS:
        lines.append(f"| {check} | " + " | ".join(pct(fa[r]["checks"][check]) for r in fa) + " |")
    for status in ("FAIL", "INCONCLUSIVE"):
        lines.append(
            f"| status {status} (drift and quality) | "
            + " | ".join(pct(fa[r]["status"][status]) for r in fa)
            + " |"
        )
    lines += [
        "",
        f"### Detection at {bench.WINDOW:,} rows (target: at least 99 %)",
        "",
        f"| failure | check | {regimes} |",
        "|---|---|" + "---|" * len(fa),
    ]
    for name in FAILURES:
        row = [pct(det[r][name]) for r in det]
        lines.append(f"| {name} | {FAILURES[name][0]} | " + " | ".join(row) + " |")
    lines += [
        "",
        "### The verdict of same-distribution windows by size (share PASS / INCONCLUSIVE / FAIL)",
        "",
        f"| window rows | {regimes} |",
        "|---:|" + "---|" * len(fa),
    ]
    for size in SIZES:
        cells = []
        for r in fa:
            s = fa[r]["by_window_size"][str(size)]
            cells.append(
                f"{100 * s['PASS']:.1f} / {100 * s['INCONCLUSIVE']:.1f} / {100 * s['FAIL']:.1f} %"
            )
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    lines += [""]
    for regime, c in cost_.items():
        lines.append(
            f"* {bench.REGIMES[regime]:,}-row reference, {c['columns']} columns, a "
            f"{bench.WINDOW:,}-row window's summaries: `dataset_quality` "
            f"{c['dataset_quality_ms']:.1f} ms (`dataset_drift` {c['dataset_drift_ms']:.1f} ms)."
        )
    lines.append(f"* This section: {results['seconds']} s.")
    return lines


__all__ = ["markdown", "run"]
