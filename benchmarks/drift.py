"""Drift detection quality and cost (``workbench.runtime.drift``), seeded.

    .venv/bin/python benchmarks/drift.py [--trials 500] [--detection-trials 300]

Eleven synthetic columns (five numbers, three integers, a category, a boolean, a text column;
see ``COLUMNS``) in two regimes: a 20,000-row reference (Wasserstein / Jensen-Shannon) and a
1,000-row reference (KS / chi-square / Z). Every trial draws a fresh reference and a fresh
1,000-row window from the same generator, so the rates are unconditional (over both samples):

* **false alarms**: same-distribution windows; the dataset verdict, any column, each column;
  and the same by window size (100 to 1,000 rows, prefixes of the trial's window, tested with
  ``min_window_rows=1``), which is what ``DriftOptions.min_window_rows`` is chosen from;
* **detection**: each numeric column (and the text lengths) shifted by about 0.5 of its
  standard deviation (integers by the nearest whole number), the boolean's share 0.3 -> 0.4,
  and 0.1 of the category's mass moved from its most to its least frequent value; the rate at
  which that column drifts;
* **Evidently's chi-square** (goodness of fit against the reference shares) on the same
  small-regime trials, for the category columns, to show why a two-sample test is used;
* **sketch accuracy**: the normed Wasserstein distance and the KS statistic from the sketch
  against scipy on the raw reference, on normal, lognormal and Pareto(1.5) data;
* **cost**: µs per column to summarise a 1,000-row window given as a Python list and to test
  it, reference JSON bytes per column, building the reference, and a 200,000-row offline file;
* **the data-quality checks** beside drift (``benchmarks/quality.py``): false alarms per check,
  detection of each failure of a broken feed, the verdict by window size, cost.

Rates come with Wilson 95 % intervals. Writes ``benchmarks/results/drift.json`` and ``.md``.
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.runtime.drift import DriftOptions, column_drift, dataset_drift  # noqa: E402
from workbench.runtime.sketch import ColumnWindow  # noqa: E402
from workbench.validation.reference import build_reference  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SEED = 20_240_601
REGIMES = {"large": 20_000, "small": 1_000}
WINDOW = 1_000
SIZES = (100, 200, 300, 500, 700, 1_000)
ANY_SIZE = DriftOptions(min_window_rows=1)

Draw = Callable[[np.random.Generator, int, bool], Any]


@dataclass(frozen=True)
class Column:
    """A synthetic column: ``draw(rng, n, shifted)`` and what the shift is."""

    name: str
    kind: str
    draw: Draw
    shift: str


def _shifted(values: np.ndarray[Any, Any], by: float, on: bool) -> np.ndarray[Any, Any]:
    return values + by if on else values


LOGNORMAL_STD = math.sqrt((math.exp(0.75**2) - 1) * math.exp(0.75**2))
AGE_STD = math.sqrt((73**2 - 1) / 12)  # discrete uniform on 18..90
TEXT_LENGTH_STD = math.sqrt(20.0)  # Poisson(20) letters after a fixed-width id


def _gappy(rng: np.random.Generator, n: int, on: bool) -> np.ndarray[Any, Any]:
    values = _shifted(rng.normal(0.0, 1.0, n), 0.5, on)
    values[rng.random(n) < 0.1] = np.nan
    return values


def _text(rng: np.random.Generator, n: int, on: bool) -> list[str | None]:
    letters = rng.poisson(20.0, n) + (round(0.5 * TEXT_LENGTH_STD) if on else 0)
    gaps = rng.random(n) < 0.05
    return [
        None if gap else f"{i:06d}-" + "x" * k
        for i, (k, gap) in enumerate(zip(letters, gaps, strict=True))
    ]


COLUMNS = [
    Column("normal", "number", lambda r, n, on: _shifted(r.normal(50, 10, n), 5, on), "+0.5 sd"),
    Column(
        "lognormal",
        "number",
        lambda r, n, on: _shifted(r.lognormal(0, 0.75, n), 0.5 * LOGNORMAL_STD, on),
        "+0.5 sd",
    ),
    Column(
        "uniform",
        "number",
        lambda r, n, on: _shifted(r.uniform(0, 100, n), 50 / math.sqrt(12), on),
        "+0.5 sd",
    ),
    Column(
        "bimodal",
        "number",
        lambda r, n, on: _shifted(
            np.where(r.random(n) < 0.6, r.normal(0, 1, n), r.normal(5, 1, n)),
            0.5 * math.sqrt(7),
            on,
        ),
        "+0.5 sd",
    ),
    Column("gappy", "number", _gappy, "+0.5 sd (10 % missing)"),
    Column(
        "poisson", "integer", lambda r, n, on: r.poisson(4.0, n) + (1 if on else 0), "+1 = 0.5 sd"
    ),
    Column(
        "age",
        "integer",
        lambda r, n, on: r.integers(18, 91, n) + (round(0.5 * AGE_STD) if on else 0),
        f"+{round(0.5 * AGE_STD)} = {round(0.5 * AGE_STD) / AGE_STD:.2f} sd",
    ),
    Column(
        "level",
        "integer",
        lambda r, n, _on: r.choice(4, n, p=[0.4, 0.3, 0.2, 0.1]),
        "none (4 values: tested as categories)",
    ),
    Column(
        "colour",
        "category",
        lambda r, n, on: r.choice(
            list("abcdef"),
            n,
            p=[0.2, 0.25, 0.2, 0.1, 0.1, 0.15] if on else [0.3, 0.25, 0.2, 0.1, 0.1, 0.05],
        ),
        "0.1 of the mass a -> f",
    ),
    Column(
        "flag", "boolean", lambda r, n, on: r.random(n) < (0.4 if on else 0.3), "share 0.3 -> 0.4"
    ),
    Column(
        "comment",
        "text",
        _text,
        f"+{round(0.5 * TEXT_LENGTH_STD)} chars = "
        f"{round(0.5 * TEXT_LENGTH_STD) / TEXT_LENGTH_STD:.2f} sd of the length",
    ),
]
KINDS = {c.name: c.kind for c in COLUMNS}
NAMES = [c.name for c in COLUMNS]
SHIFTED = [c.name for c in COLUMNS if c.name != "level"]


def frame(rng: np.random.Generator, rows: int, shifted: bool = False) -> pd.DataFrame:
    return pd.DataFrame({c.name: c.draw(rng, rows, shifted) for c in COLUMNS})


def wilson(hits: int, trials: int) -> dict[str, float]:
    """The rate and its Wilson 95 % interval."""
    if not trials:
        return {"rate": float("nan"), "low": float("nan"), "high": float("nan")}
    z, p = 1.959964, hits / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return {"rate": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half)}


def evidently_chisquare_p(reference: pd.Series, window: pd.Series) -> float:
    """Evidently's ``chisquare`` stattest: goodness of fit of the window to the reference shares."""
    ref, cur = reference.dropna().astype(str), window.dropna().astype(str)
    keys = sorted(set(ref) | set(cur))
    ref_counts, cur_counts = ref.value_counts(), cur.value_counts()
    expected = [ref_counts.get(k, 0) * len(cur) / len(ref) for k in keys]
    observed = [cur_counts.get(k, 0) for k in keys]
    return float(stats.chisquare(observed, expected).pvalue)


def false_alarms(regime: str, trials: int) -> dict[str, Any]:
    ref_rows = REGIMES[regime]
    column_hits = {n: 0 for n in NAMES}
    tests: dict[str, set[str]] = {n: set() for n in NAMES}
    dataset_hits = any_hits = 0
    by_size = {s: {"dataset": 0, "any": 0, **{n: 0 for n in NAMES}} for s in SIZES}
    evidently_hits = {"colour": 0, "level": 0, "comment as category": 0}
    for trial in range(trials):
        rng = np.random.default_rng([SEED, 1, ref_rows, trial])
        reference_frame = frame(rng, ref_rows)
        reference = build_reference(reference_frame, KINDS)
        window = frame(rng, WINDOW)
        result = dataset_drift(reference, window)
        dataset_hits += result.verdict == "drift"
        any_hits += result.drifted_columns > 0
        for col in result.columns:
            column_hits[col.column] += bool(col.drifted)
            tests[col.column].add(str(col.test))
        for size in SIZES:
            sized = dataset_drift(reference, window.head(size), ANY_SIZE)
            counts = by_size[size]
            counts["dataset"] += sized.verdict == "drift"
            counts["any"] += sized.drifted_columns > 0
            for col in sized.columns:
                counts[col.column] += bool(col.drifted)
        if regime == "small":
            for name in ("colour", "level"):
                p = evidently_chisquare_p(reference_frame[name], window[name])
                evidently_hits[name] += p < 0.05
            # The schema's kind for the text column: with 1,000 rows it has under 1,001 values.
            as_category = build_reference(reference_frame, {"comment": "category"})["columns"]
            evidently_hits["comment as category"] += bool(
                column_drift("comment", as_category["comment"], window["comment"]).drifted
            )
    out: dict[str, Any] = {
        "reference_rows": ref_rows,
        "window_rows": WINDOW,
        "trials": trials,
        "dataset": wilson(dataset_hits, trials),
        "any_column": wilson(any_hits, trials),
        "columns": {
            n: {"test": "/".join(sorted(tests[n])), **wilson(column_hits[n], trials)} for n in NAMES
        },
        "by_window_size": {
            str(s): {k: wilson(v, trials)["rate"] for k, v in counts.items()}
            for s, counts in by_size.items()
        },
    }
    if regime == "small":
        out["evidently_chisquare"] = {n: wilson(h, trials) for n, h in evidently_hits.items()}
    return out


def detection(regime: str, trials: int) -> dict[str, Any]:
    ref_rows = REGIMES[regime]
    hits = {n: 0 for n in SHIFTED}
    for trial in range(trials):
        rng = np.random.default_rng([SEED, 2, ref_rows, trial])
        reference = build_reference(frame(rng, ref_rows), KINDS)
        result = dataset_drift(reference, frame(rng, WINDOW, shifted=True))
        for col in result.columns:
            if col.column in hits:
                hits[col.column] += bool(col.drifted)
    shifts = {c.name: c.shift for c in COLUMNS}
    return {n: {"shift": shifts[n], **wilson(h, trials)} for n, h in hits.items()}


SKETCHED: dict[str, Callable[[np.random.Generator, int], np.ndarray[Any, Any]]] = {
    "normal": lambda r, n: r.normal(0.0, 1.0, n),
    "lognormal(0, 1)": lambda r, n: r.lognormal(0.0, 1.0, n),
    "pareto(1.5)": lambda r, n: r.pareto(1.5, n),
}
FORCE_KS = DriftOptions(small_reference_rows=10**9)


def sketch_accuracy(trials: int) -> dict[str, Any]:
    """|sketch - raw| for the normed Wasserstein distance and the KS statistic (KS forced on a
    large reference, where the sketch is not exact), same-distribution windows."""
    out: dict[str, Any] = {}
    for name, draw in SKETCHED.items():
        wasserstein, ks = [], []
        for trial in range(trials):
            rng = np.random.default_rng([SEED, 5, trial])
            raw, live = draw(rng, REGIMES["large"]), draw(rng, WINDOW)
            spec = build_reference(pd.DataFrame({"c": raw}), {"c": "number"})["columns"]["c"]
            exact_w = stats.wasserstein_distance(raw, live) / np.std(raw)
            wasserstein.append(abs(column_drift("c", spec, live).statistic - exact_w))
            exact_d = stats.ks_2samp(raw, live, method="asymp").statistic
            ks.append(abs(column_drift("c", spec, live, FORCE_KS).statistic - exact_d))
        out[name] = {
            "trials": trials,
            "wasserstein_error_max": float(np.max(wasserstein)),
            "wasserstein_error_median": float(np.median(wasserstein)),
            "ks_error_max": float(np.max(ks)),
            "ks_bound": 1 / 1000 + 1 / REGIMES["large"],
        }
    return out


def _median_us(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


def cost(repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for regime, ref_rows in REGIMES.items():
        rng = np.random.default_rng([SEED, 3, ref_rows])
        reference_frame = frame(rng, ref_rows)
        reference = build_reference(reference_frame, KINDS)
        window = frame(rng, WINDOW)
        columns: dict[str, Any] = {}
        for name in NAMES:
            spec = reference["columns"][name]
            values = window[name].tolist()
            summary = ColumnWindow.of(spec["kind"], values)
            test = column_drift(name, spec, summary).test
            columns[name] = {
                "test": test,
                "summarize_us": _median_us(partial(ColumnWindow.of, spec["kind"], values), repeats),
                "test_us": _median_us(partial(column_drift, name, spec, summary), repeats),
                "json_bytes": len(json.dumps(spec)),
            }
        out[regime] = {
            "reference_rows": ref_rows,
            "reference_json_bytes": len(json.dumps(reference)),
            "build_reference_ms": _median_us(partial(build_reference, reference_frame, KINDS), 5)
            / 1e3,
            "dataset_drift_ms": _median_us(partial(dataset_drift, reference, window), 20) / 1e3,
            "columns": columns,
        }
    rng = np.random.default_rng([SEED, 4])
    big = frame(rng, 200_000)
    reference = build_reference(frame(rng, REGIMES["large"]), KINDS)
    start = time.perf_counter()
    dataset_drift(reference, big)
    out["offline_200k_rows_s"] = time.perf_counter() - start
    return out


def _pct(rate: dict[str, float]) -> str:
    return f"{100 * rate['rate']:.1f} % [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"


def markdown(results: dict[str, Any]) -> str:
    fa, det, cost_ = results["false_alarms"], results["detection"], results["cost"]
    lines = [
        "# Drift detection: quality and cost",
        "",
        f"Seeded synthetic data (`benchmarks/drift.py`); windows of {WINDOW:,} rows; "
        "rates with Wilson 95 % intervals; a fresh reference and window per trial.",
        "",
        "## Dataset verdict on same-distribution windows (target: at most 5 %)",
        "",
        "| reference rows | trials | dataset verdict 'drift' | any column drifted |",
        "|---:|---:|---|---|",
    ]
    for regime in REGIMES:
        r = fa[regime]
        lines.append(
            f"| {r['reference_rows']:,} | {r['trials']} | {_pct(r['dataset'])} "
            f"| {_pct(r['any_column'])} |"
        )
    lines += [
        "",
        "## Per column: false alarms and detection (detection target: at least 95 %)",
        "",
        "| column | kind | test (20k / 1k ref) | false alarms, 20k ref | false alarms, 1k ref "
        "| shift | detected, 20k ref | detected, 1k ref |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in COLUMNS:
        large, small = fa["large"]["columns"][c.name], fa["small"]["columns"][c.name]
        d_large, d_small = det["large"].get(c.name), det["small"].get(c.name)
        lines.append(
            f"| {c.name} | {c.kind} | {large['test']} / {small['test']} | {_pct(large)} "
            f"| {_pct(small)} | {c.shift} | {_pct(d_large) if d_large else '-'} "
            f"| {_pct(d_small) if d_small else '-'} |"
        )
    lines += [
        "",
        "## False alarms by window size (`min_window_rows=1`)",
        "",
        "Per-column rates: the worst column and the mean over columns.",
        "",
        "| window rows | 20k ref: worst column | 20k ref: mean | 20k ref: dataset "
        "| 1k ref: worst column | 1k ref: mean | 1k ref: dataset |",
        "|---:|---|---:|---:|---|---:|---:|",
    ]
    for size in SIZES:
        cells = []
        for regime in REGIMES:
            rates = fa[regime]["by_window_size"][str(size)]
            per_column = {n: rates[n] for n in NAMES}
            worst = max(per_column, key=lambda n: per_column[n])
            cells += [
                f"{100 * per_column[worst]:.1f} % ({worst})",
                f"{100 * np.mean(list(per_column.values())):.1f} %",
                f"{100 * rates['dataset']:.1f} %",
            ]
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    ev = dict(fa["small"]["evidently_chisquare"])
    comment_as_category = ev.pop("comment as category")
    lines += [
        "",
        "## Chi-square on a 1,000-row reference: two-sample (ours) vs Evidently's goodness of fit",
        "",
        "| column | ours (false alarms) | Evidently's `chisquare` (false alarms) |",
        "|---|---|---|",
    ]
    for name in ev:
        lines.append(f"| {name} | {_pct(fa['small']['columns'][name])} | {_pct(ev[name])} |")
    lines += [
        "",
        "The text column left as the schema's `category` (a 1,000-row reference cannot have "
        "more than 1,000 distinct values, so it does not become text): false alarms "
        f"{_pct(comment_as_category)}; every window value is unseen.",
    ]
    lines += [
        "",
        f"## Sketch accuracy ({REGIMES['large']:,}-value reference, {WINDOW:,}-row windows)",
        "",
        "| data | trials | normed Wasserstein: max / median error | KS statistic: max error "
        "(bound 1/Q + 1/n) |",
        "|---|---:|---|---|",
    ]
    for name, acc in results["sketch_accuracy"].items():
        lines.append(
            f"| {name} | {acc['trials']} | {acc['wasserstein_error_max']:.5f} / "
            f"{acc['wasserstein_error_median']:.5f} | {acc['ks_error_max']:.5f} "
            f"({acc['ks_bound']:.5f}) |"
        )
    lines += [
        "",
        f"## Cost (median µs per column, {WINDOW:,}-row window given as a Python list)",
        "",
        "| column | test 20k / 1k | summarise (µs) | test 20k (µs) | test 1k (µs) "
        "| JSON bytes 20k | JSON bytes 1k |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in NAMES:
        large, small = cost_["large"]["columns"][name], cost_["small"]["columns"][name]
        lines.append(
            f"| {name} | {large['test']} / {small['test']} | {large['summarize_us']:.0f} "
            f"| {large['test_us']:.0f} | {small['test_us']:.0f} | {large['json_bytes']:,} "
            f"| {small['json_bytes']:,} |"
        )
    lines += [""]
    for regime in REGIMES:
        c = cost_[regime]
        lines.append(
            f"* {c['reference_rows']:,}-row reference: JSON {c['reference_json_bytes']:,} bytes, "
            f"built in {c['build_reference_ms']:.0f} ms; `dataset_drift` on a {WINDOW:,}-row "
            f"frame: {c['dataset_drift_ms']:.1f} ms."
        )
    lines += [
        f"* Offline: a 200,000-row frame against the 20,000-row reference: "
        f"{cost_['offline_200k_rows_s']:.2f} s.",
    ]
    if "quality" in results:
        import quality  # benchmarks/quality.py (it imports this module)

        lines += quality.markdown(results["quality"])
    lines += ["", f"Machine: {results['machine']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--detection-trials", type=int, default=300)
    parser.add_argument("--sketch-trials", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=200, help="timing repeats per column")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "false_alarms": {r: false_alarms(r, args.trials) for r in REGIMES},
        "detection": {r: detection(r, args.detection_trials) for r in REGIMES},
        "sketch_accuracy": sketch_accuracy(args.sketch_trials),
        "cost": cost(args.repeats),
    }
    import quality  # benchmarks/quality.py (it imports this module)

    results["quality"] = quality.run(args.trials, args.detection_trials, max(5, args.repeats // 10))
    results["machine"] = (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"{date.today().isoformat()}, {time.perf_counter() - started:.0f} s in all"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "drift.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "drift.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
