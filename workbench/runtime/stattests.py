"""The drift tests, one registry entry each (as Evidently's ``stattests/registry.py``).

A :class:`StatTest` names a test, says which column kinds and which data it applies to (a
reference sketch against the window's values, or aligned counts), where its threshold is set
(a :class:`DriftOptions` field, whose default is the test's default threshold) and how it
decides (``p < threshold`` for tests with a p-value, ``statistic >= threshold`` for distances).
:data:`STATTESTS` holds them by name; :func:`default_stattest` is the one chooser of the test
for a column (Evidently's default selection, see :mod:`.drift`); :func:`get_stattest` refuses an
unknown name with the list of the known ones. Reports, gauges and the shadow comparison take
their labels from here.

scipy is imported by the tests themselves, at the first report: a served model that nobody
monitors starts faster and smaller without it (60 MiB less peak memory per process).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from .sketch import KINDS, NUMERIC_KINDS, Floats, weighted_sketch

Ints = npt.NDArray[np.int64]
WASSERSTEIN_MIN_NORM = 0.001
"""Evidently's floor for the reference standard deviation that norms the Wasserstein distance
(a constant reference has std 0)."""


class DriftOptions(BaseModel):
    """Thresholds and cut-offs; the defaults are Evidently's, plus ``min_window_rows``.

    ``min_window_rows``: the distances have no sample-size calibration: on same-distribution
    windows against a 20,000-row reference, their per-column false-alarm rate is about 3 % on
    average (6 % at worst, a skewed column) at 500 rows, but 11 % (18 %) at 300 and 49 % (76 %)
    at 100 (``benchmarks/drift.py``). KS, chi-square and Z keep their 5 % at any size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    small_reference_rows: int = Field(
        default=1000,
        ge=0,
        description="a reference with at most this many non-missing values is tested with "
        "p-values (KS, chi-square, Z); a larger one with distances (Wasserstein, Jensen-Shannon)",
    )
    p_value_threshold: float = Field(
        default=0.05, gt=0, lt=1, description="a test with a p-value drifts when p < this"
    )
    wasserstein_threshold: float = Field(
        default=0.1, gt=0, description="Wasserstein distance / reference std that drifts"
    )
    jensenshannon_threshold: float = Field(
        default=0.1, gt=0, description="Jensen-Shannon distance (base 2) that drifts"
    )
    drift_share: float = Field(
        default=0.5, gt=0, le=1, description="the dataset drifts when this share of columns does"
    )
    min_window_rows: int = Field(
        default=500,
        ge=1,
        description="a column is tested for drift once the window holds this many of its values",
    )


DEFAULT_OPTIONS = DriftOptions()


@dataclass(frozen=True)
class TestOutcome:
    """One statistical test: ``drifted`` is ``p_value < threshold`` for tests with a p-value,
    ``statistic >= threshold`` for distances (``p_value`` None)."""

    __test__ = False  # not a pytest class, despite the name

    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class Counts:
    """Aligned counts of the same values in the reference and the window (no value absent from
    both)."""

    reference: Ints
    window: Ints


@dataclass(frozen=True)
class Values:
    """A reference's quantile sketch (:mod:`.sketch`) and the window's finite values."""

    sketch: Mapping[str, Any]
    reference_rows: int
    """The reference's non-missing values (the sketch summarises them)."""
    window: Floats


@dataclass(frozen=True)
class StatTest:
    """One drift test: what it applies to, where its threshold is set, how it decides."""

    name: str
    display_name: str
    kinds: frozenset[str]
    """The column kinds it may test."""
    data: Literal["values", "counts"]
    """What it compares: :class:`Values` or :class:`Counts`."""
    threshold_option: str
    """The :class:`DriftOptions` field that holds its threshold."""
    func: Callable[[Any, float], TestOutcome]

    @property
    def p_value(self) -> bool:
        """Drifts when ``p < threshold`` (else when ``statistic >= threshold``)."""
        return self.threshold_option == "p_value_threshold"

    @property
    def default_threshold(self) -> float:
        return float(DriftOptions.model_fields[self.threshold_option].default)

    @property
    def description(self) -> str:
        rule = "p < threshold" if self.p_value else ">= threshold"
        return f"{self.display_name} (drift when {rule})"

    def run(self, data: Counts | Values, options: DriftOptions) -> TestOutcome:
        return self.func(data, float(getattr(options, self.threshold_option)))


def _ks(data: Values, threshold: float) -> TestOutcome:
    """Two-sample KS between the reference (via its sketch) and the window.

    The statistic is scipy's ``ks_2samp`` between the sketch's points and the window: exactly
    the raw reference's when the sketch is exact; otherwise each point weighs ``1/(Q+1)`` and
    their empirical CDF is within ``1/Q + 1/n_ref`` of the reference's everywhere, so the
    statistic is within that of the raw one. The p-value is Smirnov's asymptotic one with the
    true sample sizes, ``kstwo.sf(D, round(n_ref * n / (n_ref + n)))`` (scipy's
    ``method="asymp"``), for exact sketches too: scipy's exact p-value (Evidently's default)
    fails with a warning for some sizes, and is about 4 % (relative) higher at 1,000 a side.
    """
    from scipy import stats  # type: ignore[import-untyped]

    points = np.asarray(data.sketch["points"], dtype=np.float64)
    live, n_ref = data.window, data.reference_rows
    statistic = float(stats.ks_2samp(points, live, method="asymp").statistic)
    effective = round(n_ref * len(live) / (n_ref + len(live)))
    p_value = float(stats.kstwo.sf(statistic, effective))
    return TestOutcome("ks", statistic, p_value, threshold, p_value < threshold)


def _wasserstein(data: Values, threshold: float) -> TestOutcome:
    """Wasserstein-1 distance between reference and window, divided by max(ref std, 0.001).

    scipy's ``wasserstein_distance`` between the window and :func:`~.sketch.weighted_sketch`:
    on the raw data for an exact sketch. Otherwise, by the triangle inequality, within
    ``W1(reference, sketch)`` of the raw distance (before norming), and that is at most
    ``5/4 * sum(cell mass * cell width) + 2 * (max - min) / n_ref`` (piecewise-linear
    interpolation of the linear quantile function, the trapezoid weights, and the linear
    quantiles' offset of under one order statistic from the empirical ones). Measured on 20,000
    values and 1,000-row windows: 0.0002 std at most for normal data, 0.003 for Pareto(1.5).
    """
    from scipy import stats

    values, weights = weighted_sketch(data.sketch)
    raw = float(stats.wasserstein_distance(values, data.window, u_weights=weights))
    statistic = raw / max(float(data.sketch["std"]), WASSERSTEIN_MIN_NORM)
    return TestOutcome("wasserstein", statistic, None, threshold, statistic >= threshold)


def _jensenshannon(data: Counts, threshold: float) -> TestOutcome:
    """Jensen-Shannon distance (base 2) between the two sides' shares."""
    from scipy.spatial import distance  # type: ignore[import-untyped]

    ref, live = data.reference, data.window
    js = float(distance.jensenshannon(ref / ref.sum(), live / live.sum(), base=2))
    return TestOutcome("jensenshannon", js, None, threshold, js >= threshold)


def _z(data: Counts, threshold: float) -> TestOutcome:
    """Two-proportion Z-test (two-sample) on two values; one value on both sides cannot differ
    (Evidently's p = 1)."""
    from scipy import stats

    ref, live = data.reference, data.window
    if len(ref) <= 1:
        return TestOutcome("z", 0.0, 1.0, threshold, False)
    n1, n2 = float(ref.sum()), float(live.sum())
    p1, p2 = ref[0] / n1, live[0] / n2
    pooled = (ref[0] + live[0]) / (n1 + n2)
    z = abs(p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = float(2 * stats.norm.sf(z))
    return TestOutcome("z", float(z), p_value, threshold, p_value < threshold)


def _chisquare(data: Counts, threshold: float) -> TestOutcome:
    """Pearson's two-sample chi-square test of homogeneity on the 2 x k table of counts."""
    from scipy import stats

    result = stats.chi2_contingency(np.vstack([data.reference, data.window]), correction=False)
    p_value = float(result.pvalue)
    return TestOutcome(
        "chisquare", float(result.statistic), p_value, threshold, p_value < threshold
    )


_SKETCHED = frozenset({*NUMERIC_KINDS, "text"})  # numbers, and text lengths
STATTESTS: dict[str, StatTest] = {
    test.name: test
    for test in (
        StatTest(
            "ks", "two-sample Kolmogorov-Smirnov", _SKETCHED, "values", "p_value_threshold", _ks
        ),
        StatTest(
            "chisquare",
            "chi-square test of homogeneity",
            frozenset(KINDS),
            "counts",
            "p_value_threshold",
            _chisquare,
        ),
        StatTest("z", "two-proportion Z-test", frozenset(KINDS), "counts", "p_value_threshold", _z),
        StatTest(
            "wasserstein",
            "Wasserstein distance / reference std",
            _SKETCHED,
            "values",
            "wasserstein_threshold",
            _wasserstein,
        ),
        StatTest(
            "jensenshannon",
            "Jensen-Shannon distance",
            frozenset(KINDS),
            "counts",
            "jensenshannon_threshold",
            _jensenshannon,
        ),
    )
}
"""Every drift test, by name."""


def get_stattest(name: str) -> StatTest:
    """The test named ``name``; an unknown name is one error listing the known ones."""
    try:
        return STATTESTS[name]
    except KeyError:
        raise ValueError(
            f"unknown drift test {name!r}; the drift tests are {', '.join(STATTESTS)}"
        ) from None


def default_stattest(kind: str, *, distinct: int | None, small: bool) -> StatTest:
    """The test of a ``kind`` column (Evidently's default selection): ``distinct`` is how many
    values the counts being compared hold (None: values against a sketch), ``small`` whether
    the reference is small (:attr:`DriftOptions.small_reference_rows`). Counts: Z for at most
    two values and chi-square for more on a small reference, else Jensen-Shannon; values: KS on
    a small reference, else Wasserstein."""
    if distinct is None:
        name = "ks" if small else "wasserstein"
    elif not small:
        name = "jensenshannon"
    else:
        name = "z" if distinct <= 2 else "chisquare"
    test = STATTESTS[name]
    if kind not in test.kinds:
        raise ValueError(f"the {test.display_name} does not test {kind} columns")
    return test


# ---------------------------------------------------------------- one-sided exact tests
# (the data-quality checks of :mod:`.quality`)


def all_of_p(hits: int, total: int) -> Callable[[int], float]:
    """Fisher's exact p-value of a window whose ``n`` rows are all hits, against a reference
    with ``hits`` of ``total`` (``C(h + n, n) / C(T + n, n)``), in closed form."""

    def p(n: int) -> float:
        log = (
            math.lgamma(hits + n + 1)
            + math.lgamma(total + 1)
            - math.lgamma(hits + 1)
            - math.lgamma(total + n + 1)
        )
        return math.exp(log)

    return p


def fisher_greater(hits: int, n: int, ref_hits: int, ref_total: int) -> float:
    """One-sided Fisher's exact test: the window's share of hits above the reference's."""
    if not hits:
        return 1.0
    from scipy import stats

    table = [[hits, n - hits], [ref_hits, ref_total - ref_hits]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def all_beyond_p(ref_values: int) -> Callable[[int], float]:
    """:func:`beyond_p` of ``n`` values all beyond, in closed form: ``(n + 1)! N! / (n + N)!``."""

    def p(n: int) -> float:
        log = math.lgamma(n + 2) + math.lgamma(ref_values + 1) - math.lgamma(n + ref_values + 1)
        return math.exp(log)

    return p


def beyond_p(beyond: int, n: int, ref_values: int) -> float:
    """P(at least ``beyond`` of ``n`` new values fall outside the minimum-maximum of
    ``ref_values`` values from the same continuous law): Beta-binomial(n, 2, N - 1), exact (the
    share outside is Beta(2, N - 1)); with ties it only overstates the chance (conservative)."""
    if not beyond:
        return 1.0
    from scipy import stats

    return float(stats.betabinom.sf(beyond - 1, n, 2, ref_values - 1))


__all__ = [
    "DEFAULT_OPTIONS",
    "STATTESTS",
    "Counts",
    "DriftOptions",
    "StatTest",
    "TestOutcome",
    "Values",
    "all_beyond_p",
    "all_of_p",
    "beyond_p",
    "default_stattest",
    "fisher_greater",
    "get_stattest",
]
