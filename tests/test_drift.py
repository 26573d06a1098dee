"""Input drift (workbench.runtime.drift) and its reference (workbench.validation.reference).

Each statistic is checked against scipy on the same data (exactly when the reference sketch is
exact, within the documented bound when it is a quantile sketch); then the test chosen per kind
and reference size, the verdicts on same-distribution and shifted data, unseen categories, text
lengths and missing shares, merged worker windows, and the edge cases that must not raise.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats  # type: ignore[import-untyped]
from scipy.spatial import distance  # type: ignore[import-untyped]

from workbench.errors import DataError
from workbench.runtime.drift import DriftOptions, column_drift, dataset_drift
from workbench.runtime.sketch import ColumnWindow, merge_windows, summarize_window
from workbench.validation.reference import build_reference

# A divide-by-zero or invalid-value warning is a bug here: every edge case is handled.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

Q = 1000
KINDS = {
    "x": "number",
    "skewed": "number",
    "count": "integer",
    "level": "integer",
    "colour": "category",
    "flag": "boolean",
}


def make_frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Six columns of the kinds above; ``shift`` moves ``x`` (std 1) by that much."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, rows),
            "skewed": rng.lognormal(0.0, 0.75, rows),
            "count": rng.poisson(4.0, rows),
            "level": rng.integers(0, 4, rows),
            "colour": rng.choice(["red", "green", "blue", "grey"], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "flag": rng.random(rows) < 0.3,
        }
    )


def ref_column(values: Any, kind: str) -> dict[str, Any]:
    """The reference entry of one column holding ``values``."""
    reference = build_reference(pd.DataFrame({"c": values}), {"c": kind})
    column: dict[str, Any] = reference["columns"]["c"]
    return column


FORCE_KS = DriftOptions(small_reference_rows=10**9)
FORCE_DISTANCES = DriftOptions(small_reference_rows=0)


# ---------------------------------------------------------------- the reference


def test_build_reference_is_deterministic_json_for_the_same_frame() -> None:
    frame = make_frame(5000, seed=1)
    first = json.dumps(build_reference(frame, KINDS))
    assert json.dumps(build_reference(frame.copy(), KINDS)) == first
    assert json.loads(first) == build_reference(frame, KINDS)


def test_a_numeric_sketch_is_q_plus_one_quantiles_from_min_to_max_with_mean_and_std() -> None:
    values = np.random.default_rng(2).normal(10.0, 3.0, 20_000)
    column = ref_column(values, "number")
    sketch = column["sketch"]
    assert len(sketch["points"]) == Q + 1
    assert sketch["points"][0] == values.min() and sketch["points"][-1] == values.max()
    assert sketch["points"] == pytest.approx(np.quantile(values, np.linspace(0, 1, Q + 1)))
    assert sketch["mean"] == pytest.approx(values.mean()) and sketch["std"] == np.std(values)
    assert sketch["counts"] is None  # many distinct values: no counts
    # Finer quantiles in the end cells: 2**-j / Q for j = 1..5 (20,000 / 1000 < 2**5).
    tail = 2.0 ** -np.arange(1, 6) / Q
    assert sketch["tails"]["low"] == pytest.approx(np.quantile(values, tail[::-1]))
    assert sketch["tails"]["high"] == pytest.approx(np.quantile(values, 1 - tail))
    assert (column["rows"], column["missing"], column["missing_share"]) == (20_000, 0, 0.0)


def test_a_small_numeric_column_keeps_every_value_sorted_and_counts_few_distinct_values() -> None:
    column = ref_column([3, 1, None, 2, 1, np.inf], "integer")
    assert column["sketch"]["points"] == [1.0, 1.0, 2.0, 3.0]  # exact: the values themselves
    assert column["sketch"]["tails"] is None
    assert column["sketch"]["counts"] == {"1.0": 2, "2.0": 1, "3.0": 1}
    assert column["missing"] == 2  # None and +inf
    assert column["missing_share"] == pytest.approx(2 / 6)


def test_categories_are_counted_as_text_most_frequent_first_and_booleans_as_true_false() -> None:
    colour = ref_column(["b", "a", "b", None, "c", "a", "b"], "category")
    assert list(colour["counts"].items()) == [("b", 3), ("a", 2), ("c", 1)]
    assert ref_column([True, False, True, None], "boolean")["counts"] == {"true": 2, "false": 1}


def test_a_category_with_more_than_1000_values_becomes_text_with_a_length_sketch() -> None:
    words = [f"w{i}" for i in range(1500)] + [None] * 500
    column = ref_column(words, "category")
    assert column["kind"] == "text" and "counts" not in column
    assert column["missing_share"] == 0.25
    assert column["lengths"]["points"][0] == 2.0 and column["lengths"]["points"][-1] == 5.0


def test_an_all_missing_column_has_no_sketch_and_bad_inputs_are_refused() -> None:
    assert ref_column([None, None], "number")["sketch"] is None
    assert ref_column([None, None], "category")["counts"] == {}
    with pytest.raises(DataError, match="lacks the columns"):
        build_reference(pd.DataFrame({"a": [1]}), {"b": "number"})
    with pytest.raises(ValueError, match="unknown column kinds"):
        build_reference(pd.DataFrame({"a": [1]}), {"a": "float"})


# ---------------------------------------------------------------- statistics against scipy


def test_ks_from_an_exact_sketch_is_scipys_asymptotic_ks_2samp_on_the_raw_reference() -> None:
    rng = np.random.default_rng(3)
    raw, live = rng.normal(0, 1, 800), rng.normal(0.1, 1, 900)
    result = column_drift("c", ref_column(raw, "number"), live)
    expected = stats.ks_2samp(raw, live, method="asymp")
    assert result.test == "ks"
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-15)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)


def test_ks_from_a_quantile_sketch_is_within_1_over_q_plus_1_over_n_of_scipy_on_raw_data() -> None:
    rng = np.random.default_rng(4)
    raw, live = rng.gamma(2.0, 1.0, 50_000), rng.gamma(2.0, 1.05, 1000)
    result = column_drift("c", ref_column(raw, "number"), live, FORCE_KS)
    expected = stats.ks_2samp(raw, live, method="asymp")
    bound = 1 / Q + 1 / len(raw)
    assert result.test == "ks" and result.statistic is not None
    assert abs(result.statistic - expected.statistic) <= bound
    # The p-value is Smirnov's with the true sizes, so it moves only as far as the statistic.
    effective = round(len(raw) * len(live) / (len(raw) + len(live)))
    low, high = (stats.kstwo.sf(expected.statistic + s * bound, effective) for s in (1, -1))
    assert low <= result.p_value <= high


def test_wasserstein_from_a_quantile_sketch_is_within_its_bound_of_scipy_on_raw_data() -> None:
    rng = np.random.default_rng(5)
    raw, live = rng.normal(5, 2, 20_000), rng.normal(5.1, 2.2, 1000)
    result = column_drift("c", ref_column(raw, "number"), live)
    expected = stats.wasserstein_distance(raw, live) / np.std(raw)
    bound = (raw.max() - raw.min()) * (5 / (4 * Q) + 2 / len(raw)) / np.std(raw)
    assert result.test == "wasserstein" and result.statistic is not None
    assert abs(result.statistic - expected) <= bound
    assert abs(result.statistic - expected) < 1e-3  # far inside the bound in practice


@pytest.mark.parametrize("shape", [1.1, 1.5, 2.5])
def test_wasserstein_from_a_sketch_stays_accurate_on_heavy_tailed_pareto_data(
    shape: float,
) -> None:
    """The tail quantiles keep the error near 0.003 std where the uniform points alone give
    about 0.06 (half an end cell's mass on the maximum)."""
    rng = np.random.default_rng(int(shape * 10))
    raw, live = rng.pareto(shape, 20_000), rng.pareto(shape, 1000)
    result = column_drift("c", ref_column(raw, "number"), live)
    expected = stats.wasserstein_distance(raw, live) / np.std(raw)
    assert result.statistic is not None and abs(result.statistic - expected) < 0.005


def test_wasserstein_from_an_exact_sketch_is_scipys_on_the_raw_reference() -> None:
    rng = np.random.default_rng(6)
    raw, live = rng.exponential(1.0, 700), rng.exponential(1.2, 500)
    result = column_drift("c", ref_column(raw, "number"), live, FORCE_DISTANCES)
    expected = stats.wasserstein_distance(raw, live) / np.std(raw)
    assert result.statistic == pytest.approx(expected, rel=1e-12)


def test_chisquare_is_pearsons_two_sample_homogeneity_test_as_scipy_computes_it() -> None:
    ref_values = ["a"] * 300 + ["b"] * 200 + ["c"] * 100 + ["d"] * 50
    live_values = ["a"] * 250 + ["b"] * 260 + ["c"] * 90 + ["d"] * 40
    result = column_drift("c", ref_column(ref_values, "category"), live_values)
    table = np.array([[300, 200, 100, 50], [250, 260, 90, 40]])
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    flat = stats.chisquare(table.ravel(), expected.ravel(), ddof=table.shape[1])
    assert result.test == "chisquare"
    assert result.statistic == pytest.approx(flat.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(flat.pvalue, rel=1e-9)
    assert result.p_value == pytest.approx(stats.chi2_contingency(table).pvalue, rel=1e-9)


def test_the_z_test_for_two_values_is_the_two_proportion_test_and_its_square_the_chisquare() -> (
    None
):
    reference = ref_column([True] * 300 + [False] * 700, "boolean")
    result = column_drift("c", reference, [True] * 360 + [False] * 640)
    p1, p2, pooled = 0.3, 0.36, 0.33
    z = (p2 - p1) / np.sqrt(pooled * (1 - pooled) * (2 / 1000))
    table = np.array([[300, 700], [360, 640]])
    assert result.test == "z" and result.statistic == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)
    assert result.p_value == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9
    )


def test_jensen_shannon_is_scipys_distance_base_2_over_the_shares() -> None:
    rng = np.random.default_rng(7)
    ref_values = rng.choice(list("abcd"), 5000, p=[0.4, 0.3, 0.2, 0.1])
    live_values = rng.choice(list("abcd"), 1000, p=[0.25, 0.25, 0.25, 0.25])
    result = column_drift("c", ref_column(ref_values, "category"), live_values)
    ref_share = pd.Series(ref_values).value_counts(normalize=True).sort_index()
    live_share = pd.Series(live_values).value_counts(normalize=True).sort_index()
    expected = distance.jensenshannon(ref_share, live_share, base=2)
    assert result.test == "jensenshannon"
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.drifted is bool(expected >= 0.1)


# ---------------------------------------------------------------- which test


@pytest.mark.parametrize(
    ("kind", "ref_rows", "values", "test"),
    [
        ("number", 1000, "normal", "ks"),
        ("number", 1001, "normal", "wasserstein"),
        ("integer", 500, "poisson", "ks"),
        ("integer", 5000, "poisson", "wasserstein"),
        ("integer", 500, "four", "chisquare"),  # at most 5 distinct values: categories
        ("integer", 5000, "four", "jensenshannon"),
        ("integer", 500, "two", "z"),
        ("category", 1000, "four", "chisquare"),
        ("category", 1001, "four", "jensenshannon"),
        ("category", 800, "two", "z"),
        ("boolean", 800, "two", "z"),
        ("boolean", 5000, "two", "jensenshannon"),
    ],
)
def test_the_test_is_chosen_by_kind_distinct_values_and_reference_size_as_evidently_does(
    kind: str, ref_rows: int, values: str, test: str
) -> None:
    rng = np.random.default_rng(8)

    def draw(n: int) -> np.ndarray[Any, Any]:
        if values == "normal":
            return rng.normal(0, 1, n)
        if values == "poisson":
            return rng.poisson(6, n)
        return rng.integers(0, 4 if values == "four" else 2, n)

    ref = draw(ref_rows)
    result = column_drift(
        "c", ref_column(ref.astype(str) if kind == "category" else ref, kind), draw(600)
    )
    assert result.test == test


def test_few_distinct_numbers_move_to_ks_when_the_window_brings_more_than_five_values() -> None:
    reference = ref_column([0, 1, 2] * 200, "integer")
    assert column_drift("c", reference, [0, 1, 2] * 200).test == "chisquare"
    result = column_drift("c", reference, list(range(9)) * 70)
    assert result.test == "ks" and result.drifted
    assert result.unseen_share == pytest.approx(6 / 9)


# ---------------------------------------------------------------- verdicts


@pytest.mark.parametrize("ref_rows", [1000, 20_000])
def test_a_window_from_the_training_distribution_does_not_drift(ref_rows: int) -> None:
    reference = build_reference(make_frame(ref_rows, seed=9), KINDS)
    result = dataset_drift(reference, make_frame(1000, seed=10))
    assert result.verdict == "no drift" and result.tested_columns == len(KINDS)
    assert result.drifted_share is not None and result.drifted_share < 0.5


@pytest.mark.parametrize("ref_rows", [1000, 20_000])
def test_a_half_std_shift_of_one_column_drifts_that_column_only_not_the_dataset(
    ref_rows: int,
) -> None:
    reference = build_reference(make_frame(ref_rows, seed=11), KINDS)
    result = dataset_drift(reference, make_frame(1000, seed=12, shift=0.5))
    by_name = {c.column: c for c in result.columns}
    assert by_name["x"].drifted
    assert result.drifted_columns < 3 and result.verdict == "no drift"  # 1 of 6 is not half


def test_the_dataset_drifts_when_at_least_the_drift_share_of_columns_drift() -> None:
    reference = build_reference(make_frame(5000, seed=13), KINDS)
    window = make_frame(1000, seed=14, shift=2.0)
    window["skewed"] *= 3
    window["count"] += 3
    result = dataset_drift(reference, window)
    assert result.drifted_columns == 3 and result.drifted_share == 0.5
    assert result.verdict == "drift" and result.drifted is True
    assert dataset_drift(reference, window, DriftOptions(drift_share=0.6)).verdict == "no drift"
    json.dumps(result.to_dict())  # JSON-ready


def test_unseen_categories_are_reported_and_pooled_into_one_bucket_of_the_test() -> None:
    reference = ref_column(["a"] * 3000 + ["b"] * 2000, "category")
    window = ["a"] * 350 + ["b"] * 250 + [f"new{i}" for i in range(400)]
    result = column_drift("c", reference, window)
    assert result.unseen_share == pytest.approx(0.4)
    expected = distance.jensenshannon([0.6, 0.4, 0.0], [0.35, 0.25, 0.4], base=2)
    assert result.statistic == pytest.approx(expected, rel=1e-12) and result.drifted
    small = column_drift("c", ref_column(["a"] * 300 + ["b"] * 300, "category"), window)
    assert small.test == "chisquare" and small.drifted  # three buckets: a, b, unseen


def test_booleans_are_categories_whatever_form_the_window_sends_them_in() -> None:
    reference = ref_column([True] * 400 + [False] * 600, "boolean")
    forms: list[list[Any]] = [
        [True] * 400 + [False] * 600,
        [1] * 400 + [0] * 600,
        ["True"] * 400 + ["false"] * 600,
    ]
    results = [column_drift("c", reference, form) for form in forms]
    assert all(r.test == "z" and r.statistic == 0.0 and r.unseen_share == 0 for r in results)


def test_text_drifts_on_string_lengths_and_on_the_missing_share() -> None:
    rng = np.random.default_rng(15)
    words = ["x" * int(n) for n in rng.integers(1, 30, 5000)]
    reference = ref_column([f"{i}:{w}" for i, w in enumerate(words)], "category")
    assert reference["kind"] == "text"
    same = [f"{i}:{w}" for i, w in enumerate(words[:1000])]
    assert column_drift("c", reference, same).drifted is False
    longer = column_drift("c", reference, [w + "y" * 10 for w in same])
    assert longer.test == "wasserstein" and longer.drifted
    assert longer.missing_share_test is not None and not longer.missing_share_test.drifted
    gaps = column_drift("c", reference, same[:600] + [None] * 400)
    assert gaps.missing_share_window == 0.4 and gaps.drifted
    assert gaps.missing_share_test is not None and gaps.missing_share_test.drifted
    assert gaps.statistic is not None and gaps.statistic < 0.1  # the lengths did not move


def test_text_runs_each_p_value_test_at_half_the_threshold_so_the_column_keeps_its_rate() -> None:
    words = [f"{i}:" + "x" * (i % 20) for i in range(800)] + [None] * 200
    reference = ref_column(words, "text")
    result = column_drift("c", reference, words)
    assert result.test == "ks" and result.threshold == 0.025 and result.drifted is False
    assert result.missing_share_test is not None
    assert result.missing_share_test.test == "z" and result.missing_share_test.threshold == 0.025


# ---------------------------------------------------------------- edge cases


def test_an_empty_window_gives_not_enough_data_with_a_reason() -> None:
    reference = build_reference(make_frame(2000, seed=16), KINDS)
    result = dataset_drift(reference, make_frame(0, seed=17))
    assert result.verdict == "not enough data" and result.drifted is None
    assert result.reason is not None and "the window is empty" in result.reason
    assert all(c.drifted is None and c.missing_share_window is None for c in result.columns)


def test_all_missing_columns_on_either_side_are_untested_with_a_reason() -> None:
    reference = ref_column(np.random.default_rng(18).normal(size=2000), "number")
    result = column_drift("c", reference, [None] * 500)
    assert result.drifted is None and result.missing_share_window == 1.0
    assert result.reason is not None and "0 non-missing value(s)" in result.reason
    empty = column_drift("c", ref_column([None] * 50, "category"), ["a"] * 500)
    assert empty.drifted is None and empty.missing_share_reference == 1.0
    assert empty.reason == "the reference has no values for this column"


def test_a_window_below_min_window_rows_or_without_the_column_is_not_tested() -> None:
    reference = build_reference(make_frame(2000, seed=19), KINDS)
    small = column_drift("x", reference["columns"]["x"], np.zeros(50))
    assert small.drifted is None and small.reason is not None and "fewer than" in small.reason
    assert column_drift("x", reference["columns"]["x"], np.zeros(50), FORCE_KS).drifted is None
    allowed = DriftOptions(min_window_rows=10)
    assert column_drift("x", reference["columns"]["x"], np.zeros(50), allowed).drifted
    partial = dataset_drift(reference, make_frame(1000, seed=20).drop(columns="flag"))
    flag = next(c for c in partial.columns if c.column == "flag")
    assert flag.reason == "the column is not in the window" and partial.tested_columns == 5


def test_a_category_window_too_small_to_test_still_reports_its_unseen_share() -> None:
    """Too few rows for a drift test is no reason to hide what is known exactly: the share of
    the window's values that training never saw (the report's unseen table agrees with its
    unseen rows)."""
    reference = ref_column(["red", "green"] * 500, "category")
    small = column_drift("c", reference, ["red", "purple", "purple", None])
    assert small.drifted is None and small.reason is not None and "fewer than" in small.reason
    assert small.unseen_share == pytest.approx(2 / 3)
    assert column_drift("c", reference, ["red"] * 3).unseen_share == 0.0


def test_a_constant_reference_column_neither_raises_nor_drifts_on_the_same_constant() -> None:
    reference = ref_column([7.0] * 5000, "number")
    assert reference["sketch"]["std"] == 0.0
    same = column_drift("c", reference, [7.0] * 1000)
    assert same.test == "jensenshannon" and same.drifted is False
    spread = column_drift("c", reference, np.arange(1000.0))
    assert spread.test == "wasserstein" and spread.drifted  # normed by the 0.001 floor


def test_a_reference_of_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="not a drift reference"):
        dataset_drift({"columns": {}}, {})


# ---------------------------------------------------------------- windows from several workers


def test_merged_worker_windows_give_the_same_drift_as_one_window_of_all_their_rows() -> None:
    reference = build_reference(make_frame(20_000, seed=21), KINDS)
    rows = make_frame(1200, seed=22, shift=0.2)
    rows.loc[::7, "x"] = np.nan
    parts = [summarize_window(reference, rows.iloc[i::3]) for i in range(3)]
    shipped = [
        {name: ColumnWindow.from_dict(json.loads(json.dumps(w.to_dict()))) for name, w in p.items()}
        for p in parts
    ]  # exchanged as JSON
    merged = dataset_drift(reference, merge_windows(*shipped))
    whole = dataset_drift(reference, rows)
    assert merged == whole
    assert merge_windows(*parts)["colour"].counts == rows["colour"].value_counts().to_dict()


def test_windows_of_different_kinds_do_not_merge() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        ColumnWindow.of("number", [1.0]).merge(ColumnWindow.of("category", ["a"]))
