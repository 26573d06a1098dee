"""Data-quality checks (:mod:`workbench.runtime.quality`) and the PASS/FAIL/INCONCLUSIVE verdict.

Each check is computed by the runtime from the drift windows' summaries (merged as the workers
merge them) and compared with scipy's test on the raw data; the failures the issue lists each
fail their check at 1,000 rows; too little data is INCONCLUSIVE with what it still needs, never
a pass; and the verdict over drift, quality and gates (:mod:`~workbench.runtime.monitoring.
judgement`) reaches ``GET /monitor``'s JSON and the Prometheus gauges.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats  # type: ignore[import-untyped]

from workbench.runtime.card import ModelCard
from workbench.runtime.drift import dataset_drift
from workbench.runtime.monitoring.gauges import QUALITY_SERIES, prometheus_text
from workbench.runtime.monitoring.judgement import judge_report
from workbench.runtime.monitoring.report import ReportBuilder
from workbench.runtime.quality import (
    QUALITY_CHECKS,
    CheckResult,
    DataQuality,
    QualityOptions,
    beyond_p,
    dataset_quality,
    get_check,
)
from workbench.runtime.settings import Gate, MonitorSettings, Settings
from workbench.runtime.sketch import ColumnWindow, merge_windows, summarize_window
from workbench.validation.reference import build_reference

KINDS = {"gappy": "number", "count": "integer", "colour": "category", "flag": "boolean"}


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """Four columns: a number 20 % missing, an integer, a long-tailed category, a boolean."""
    rng = np.random.default_rng(seed)
    gappy = rng.normal(50.0, 10.0, rows)
    gappy[rng.random(rows) < 0.2] = np.nan
    tail = [f"rare{i}" for i in rng.integers(0, 400, rows)]
    common = rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2])
    return pd.DataFrame(
        {
            "gappy": gappy,
            "count": rng.poisson(6.0, rows),
            "colour": np.where(rng.random(rows) < 0.05, tail, common),
            "flag": rng.random(rows) < 0.3,
        }
    )


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return make_frame(5000, seed=1)


@pytest.fixture(scope="module")
def reference(training: pd.DataFrame) -> dict[str, Any]:
    return build_reference(training, KINDS)


def checks_of(quality: DataQuality) -> dict[tuple[str, str], CheckResult]:
    return {(c.check, c.column): c for c in quality.checks}


def by_workers(reference: dict[str, Any], frame: pd.DataFrame) -> dict[str, ColumnWindow]:
    """The frame summarised in three parts and merged, as three workers' windows are."""
    parts = np.array_split(np.arange(len(frame)), 3)
    return merge_windows(*[summarize_window(reference, frame.iloc[p]) for p in parts])


# ---------------------------------------------------------------- the registry


def test_each_check_is_registered_with_its_kinds_threshold_and_a_monitor_setting():
    """The registry names the checks in report order; each test's threshold is a QualityOptions
    field whose default is the check's, declared once and reused by ``monitor:``; an unknown
    name is one error listing the known ones."""
    assert list(QUALITY_CHECKS) == ["absent", "missing", "constant", "unseen", "range"]
    for check in QUALITY_CHECKS.values():
        if check.threshold_option is None:
            assert check.name == "absent" and check.default_threshold is None
            continue
        assert check.default_threshold == 0.001
        field = MonitorSettings.model_fields[check.threshold_option]
        assert field.default == QualityOptions.model_fields[check.threshold_option].default
    assert QUALITY_CHECKS["range"].kinds == {"number", "integer"}
    assert QUALITY_CHECKS["unseen"].kinds == {"category", "boolean"}
    monitor = MonitorSettings(range_p_value=0.01)
    assert monitor.quality == QualityOptions(range_p_value=0.01)
    with pytest.raises(ValueError, match="the checks are absent, missing, constant, unseen"):
        get_check("nulls")


# ---------------------------------------------------------------- each check against scipy


def test_the_missing_check_is_fishers_exact_test_on_the_raw_counts(reference, training):
    """Merged workers' windows give the p-value scipy's one-sided Fisher's exact test gives on
    the raw (missing, present) counts of the window and of training; a share well above
    training's fails, training's own share passes."""
    for share, expected in ((0.2, "PASS"), (0.3, "FAIL")):
        frame = make_frame(1000, seed=2)
        rng = np.random.default_rng(3)
        frame["gappy"] = np.where(rng.random(1000) < share, np.nan, rng.normal(50, 10, 1000))
        check = checks_of(dataset_quality(reference, by_workers(reference, frame)))[
            ("missing", "gappy")
        ]
        hits, ref_hits = int(frame["gappy"].isna().sum()), int(training["gappy"].isna().sum())
        table = [[hits, 1000 - hits], [ref_hits, 5000 - ref_hits]]
        scipy_p = stats.fisher_exact(table, alternative="greater").pvalue
        assert check.p_value == pytest.approx(scipy_p, rel=1e-12)
        assert check.value == hits / 1000 and check.expected == ref_hits / 5000
        assert check.status == expected, check


def test_the_unseen_check_compares_with_the_references_own_values_seen_once(reference, training):
    """The window's share of categories training never saw against training's share of values
    seen once (Good-Turing's unseen mass), by scipy's Fisher's exact test on the raw values: the
    long tail's new values pass, 5 % of a new category fails."""
    counts = training["colour"].value_counts()
    once = int((counts == 1).sum())
    for extra, expected in ((0.0, "PASS"), (0.05, "FAIL")):
        frame = make_frame(1000, seed=4)
        frame.loc[: int(1000 * extra) - 1, "colour"] = "violet"
        check = checks_of(dataset_quality(reference, by_workers(reference, frame)))[
            ("unseen", "colour")
        ]
        unseen = int((~frame["colour"].isin(counts.index)).sum())
        table = [[unseen, 1000 - unseen], [once, 5000 - once]]
        assert check.p_value == pytest.approx(
            stats.fisher_exact(table, alternative="greater").pvalue, rel=1e-12
        )
        assert check.value == unseen / 1000 and check.status == expected, check


def test_the_range_check_is_the_exact_law_of_new_values_beyond_a_samples_extremes():
    """Beyond the minimum/maximum of N values, n new values of the same continuous law fall K
    times with P(K >= k) = Beta-binomial(n, 2, N - 1): checked against every arrangement of
    N + n ranks (all equally likely), then against scipy on a raw file where +-inf count too."""
    for n_ref, n in ((4, 3), (6, 5), (3, 6)):
        outcomes = []
        for window_ranks in itertools.combinations(range(n_ref + n), n):
            ref_ranks = sorted(set(range(n_ref + n)) - set(window_ranks))
            outcomes.append(sum(r < ref_ranks[0] or r > ref_ranks[-1] for r in window_ranks))
        for k in range(n + 1):
            exact = sum(o >= k for o in outcomes) / len(outcomes)
            assert beyond_p(k, n, n_ref) == pytest.approx(exact, rel=1e-9), (n_ref, n, k)

    rng = np.random.default_rng(5)
    train = pd.DataFrame({"x": rng.normal(size=2000)})
    reference = build_reference(train, {"x": "number"})
    live = rng.normal(size=1000) * 1.6
    live[:30] = np.inf
    check = dataset_quality(reference, summarize_window(reference, {"x": live})).checks[-1]
    beyond = int(((live < train["x"].min()) | (live > train["x"].max())).sum())  # inf included
    assert check.check == "range" and check.count == 1000 and check.value == beyond / 1000
    assert check.p_value == pytest.approx(stats.betabinom.sf(beyond - 1, 1000, 2, 1999))
    assert check.status == "FAIL" and check.expected == pytest.approx(2 / 2001)


def test_the_constant_check_is_the_chance_every_value_is_the_same_under_trainings_shares(
    reference, training
):
    """One value where training had several fails with p = sum of each value's share^n (scipy's
    multinomial at every all-one-value outcome); a column entirely missing fails with Fisher's
    exact p of the all-missing table; a column varying as in training passes."""
    frame = make_frame(40, seed=6)
    frame["colour"] = "red"
    frame["gappy"] = np.nan
    checks = checks_of(dataset_quality(reference, by_workers(reference, frame)))
    one = checks[("constant", "colour")]
    shares = training["colour"].value_counts(normalize=True).to_numpy()
    multinomial = sum(
        stats.multinomial.pmf(40 * np.eye(len(shares))[i], 40, shares) for i in range(len(shares))
    )
    assert one.note == "one value" and one.p_value == pytest.approx(multinomial, rel=1e-9)
    assert one.status == "FAIL"
    empty = checks[("constant", "gappy")]
    ref_missing = int(training["gappy"].isna().sum())
    table = [[40, 0], [ref_missing, 5000 - ref_missing]]
    assert empty.note == "entirely missing" and empty.status == "FAIL"
    assert empty.p_value == pytest.approx(stats.fisher_exact(table, "greater").pvalue, rel=1e-9)
    assert checks[("constant", "count")].status == "PASS"


# ---------------------------------------------------------------- the failures, and too little


def test_each_failure_of_a_broken_feed_fails_its_check_at_1000_rows(reference):
    """The issue's failures, each in one file of 1,000 rows: a 20 %-missing column arriving
    100 % missing, its share going to 50 %, 5 % unseen categories, +-inf in 10 % of a number
    column's rows, a constant column, a column absent; nothing else fails."""
    base = make_frame(1000, seed=7)
    rng = np.random.default_rng(8)
    cases = {
        ("missing", "gappy"): lambda f: f.assign(gappy=np.nan),
        ("constant", "gappy"): lambda f: f.assign(gappy=np.nan),
        ("missing", "count"): lambda f: f.assign(
            count=np.where(rng.random(1000) < 0.5, np.nan, f["count"])
        ),
        ("unseen", "colour"): lambda f: f.assign(
            colour=np.where(np.arange(1000) < 50, "violet", f["colour"])
        ),
        ("range", "gappy"): lambda f: f.assign(
            gappy=np.where(np.arange(1000) < 100, np.inf, f["gappy"])
        ),
        ("constant", "flag"): lambda f: f.assign(flag=True),
        ("absent", "colour"): lambda f: f.drop(columns="colour"),
    }
    assert dataset_quality(reference, summarize_window(reference, base)).status == "PASS"
    for (check, column), broken in cases.items():
        quality = dataset_quality(reference, summarize_window(reference, broken(base)))
        failed = {(c.check, c.column) for c in quality.checks if c.status == "FAIL"}
        assert (check, column) in failed, (check, column, failed)
        assert {c for _, c in failed} == {column}, failed
        assert quality.status == "FAIL"


def test_too_few_rows_are_inconclusive_with_the_rows_still_needed_never_a_pass(reference):
    """An empty window: every check INCONCLUSIVE; a column 20 % missing in training needs as
    many rows as it takes an entirely missing window to fail (found by trying each size), and
    the drift verdict is "not enough data" with the values still needed."""
    empty = dataset_quality(reference, summarize_window(reference, make_frame(0, seed=9)))
    assert empty.status == "INCONCLUSIVE" and empty.failed == 0
    assert {c.status for c in empty.checks} == {"INCONCLUSIVE"}
    missing = checks_of(empty)[("missing", "gappy")]
    ref_missing = int(reference["columns"]["gappy"]["missing"])
    smallest = next(
        n
        for n in range(1, 100)
        if stats.fisher_exact([[n, 0], [ref_missing, 5000 - ref_missing]], "greater").pvalue
        < missing.threshold
    )
    assert missing.needed == smallest
    small = make_frame(143, seed=10)
    drift = dataset_drift(reference, small)
    assert drift.verdict == "not enough data" and drift.status == "INCONCLUSIVE"
    assert drift.values_needed == 500 - int(small.notna().sum().min())


def test_each_threshold_is_shared_among_the_columns_the_check_applies_to(reference):
    """Bonferroni: a check's threshold over a window is divided by the columns it tests, so
    more columns do not mean more false alarms."""
    quality = dataset_quality(reference, summarize_window(reference, make_frame(600, seed=11)))
    thresholds = {c.check: {*()} for c in quality.checks}
    for c in quality.checks:
        thresholds[c.check].add(c.threshold)
    assert thresholds == {
        "missing": {0.001 / 4},
        "constant": {0.001 / 4},
        "unseen": {0.001 / 2},
        "range": {0.001 / 2},
    }


def test_nonfinite_counts_merge_and_travel_with_the_window():
    """+-inf are counted apart (still missing for drift), add up across workers and survive
    the JSON the workers exchange."""
    one = ColumnWindow.of("number", [1.0, np.inf, None, -np.inf])
    two = ColumnWindow.of("number", [np.inf, 2.0])
    merged = one.merge(two)
    assert (one.missing, one.nonfinite, merged.nonfinite, merged.missing) == (3, 2, 3, 4)
    assert ColumnWindow.from_dict(merged.to_dict()).nonfinite == 3


# ---------------------------------------------------------------- drift's verdict


def test_the_dataset_drift_verdict_waits_until_the_untested_columns_could_not_change_it():
    """1 of 4 columns drifted and 3 untested (almost all missing): they could make it 4 of 4,
    so "not enough data", never "drift" on one column nor "no drift"; with 3 tested and none
    drifted, one untested column cannot reach half: "no drift"."""
    rng = np.random.default_rng(12)
    train = pd.DataFrame({f"c{i}": rng.normal(size=3000) for i in range(4)})
    reference = build_reference(train, dict.fromkeys(train, "number"))
    live = pd.DataFrame({f"c{i}": rng.normal(size=1000) for i in range(4)})
    live["c0"] += 3.0
    for name in ("c1", "c2", "c3"):
        live.loc[100:, name] = np.nan
    waiting = dataset_drift(reference, live)
    assert waiting.verdict == "not enough data" and waiting.tested_columns == 1
    assert waiting.drifted_columns == 1 and waiting.values_needed == 400
    assert waiting.reason is not None and "3 of 4 columns untested" in waiting.reason
    calm = pd.DataFrame({f"c{i}": rng.normal(size=1000) for i in range(4)})
    calm.loc[100:, "c3"] = np.nan
    decided = dataset_drift(reference, calm)
    assert decided.verdict == "no drift" and decided.tested_columns == 3


# ---------------------------------------------------------------- the verdict and /monitor


def report_of(reference: dict[str, Any], frame: pd.DataFrame, **monitor: Any) -> dict[str, Any]:
    """``GET /monitor``'s JSON for one worker whose window holds ``frame``."""
    settings = Settings.model_validate(
        {
            "model_tag": "m:1",
            "task": "classification",
            "columns": list(KINDS),
            "dtypes": {},
            "service": {
                "runtime": "sklearn",
                "max_batch_size": 64,
                "max_latency_ms": 1000,
                "max_queue_rows": 8192,
            },
            "monitor": monitor,
        }
    )
    columns = summarize_window(reference, frame) if len(frame) else {}
    summary = {
        "rows": len(frame),
        "requests": len(frame),
        "first": 1.0 if len(frame) else None,
        "last": 2.0 if len(frame) else None,
        "columns": {n: c.to_dict() for n, c in columns.items()},
        "predictions": ColumnWindow.of("category", ["0"] * len(frame)).to_dict(),
        "labelled": [],
        "unseen_rows": 0,
        "feedback": {},
    }
    card = ModelCard(model_tag="m:1", task="classification")
    return ReportBuilder(settings, card, reference, None).build([summary])


def test_an_empty_window_is_inconclusive_in_monitor_and_its_gauges_never_pass(reference):
    """/monitor on an empty window: status INCONCLUSIVE, "the window is empty" and the rows drift
    needs; the gauges' state set says INCONCLUSIVE, not PASS."""
    report = report_of(reference, make_frame(0, seed=13))
    assert report["status"] == "INCONCLUSIVE"
    assert report["judgement"]["inconclusive"] == [
        "the window is empty (500 rows before drift is tested)"
    ]
    text = prometheus_text(report)
    assert 'workbench_monitor_status{status="INCONCLUSIVE"} 1.0' in text
    assert 'workbench_monitor_status{status="PASS"} 0.0' in text


def test_a_broken_feed_fails_monitor_with_each_check_in_the_gauges(reference):
    """A window of 1,000 rows with a column entirely missing: FAIL, the failure names the check
    and the column; each check has its gauge per column (and every quality series is listed in
    one place)."""
    frame = make_frame(1000, seed=14).assign(gappy=np.nan)
    report = report_of(reference, frame)
    assert report["status"] == "FAIL" and report["quality"]["failed"] == 2
    failures = report["judgement"]["failures"]
    assert any(
        f.startswith("data quality, missing share above training's: gappy 100.0%") for f in failures
    )
    text = prometheus_text(report)
    assert 'workbench_monitor_column_quality_failed{column="gappy",check="missing"} 1.0' in text
    assert 'workbench_monitor_column_quality_failed{column="flag",check="unseen"} 0.0' in text
    assert 'workbench_monitor_column_quality_value{column="gappy",check="missing"} 1.0' in text
    assert "workbench_monitor_quality_failed_checks 2.0" in text
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert {f"workbench_monitor_{name}" for name in QUALITY_SERIES} <= families


def test_the_settings_decide_what_fails_and_what_is_only_noted(reference):
    """fail_on_quality and fail_on_drift off turn a failed check and a drifted dataset into notes
    (PASS when nothing else is wrong); a gate without enough labelled rows is INCONCLUSIVE with
    the rows it needs; a failed gate and refused replay requests fail."""
    frame = make_frame(1000, seed=15).assign(flag=True)
    report = report_of(reference, frame, fail_on_quality=False)
    assert report["status"] == "FAIL" and report["quality"]["status"] == "FAIL"
    assert report["judgement"]["failures"][0].startswith("the dataset drifted: 2 of 4")
    report = report_of(reference, frame, fail_on_quality=False, fail_on_drift=False)
    assert report["status"] == "PASS" and not report["judgement"]["failures"]
    notes = report["judgement"]["notes"]
    assert [n.rsplit("; ", 1)[1] for n in notes] == [
        "monitor.fail_on_drift is off",
        "monitor.fail_on_quality is off",
    ]
    calm = report_of(reference, make_frame(1000, seed=16), gates={"accuracy": {"min": 0.9}})
    assert calm["status"] == "INCONCLUSIVE"
    assert calm["judgement"]["inconclusive"] == [
        "gate accuracy: no live value (0 labelled rows, 30 needed)"
    ]
    metrics = {"live": {"accuracy": 0.5}, "validation": {"accuracy": 0.95}}
    failed = judge_report({**calm, "metrics": metrics}, gates={"accuracy": Gate(min=0.9)})
    assert failed.status == "FAIL"
    assert failed.failures == ["live accuracy 0.5 fails its gate (min 0.9; 0.95 at validation)"]
    refused = judge_report(report_of(reference, make_frame(0, seed=17)), failures=["refused"])
    assert refused.status == "FAIL" and refused.failures == ["refused"]
