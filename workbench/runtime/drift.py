"""Input drift: live values of each column against a reference of the training inputs.

One module serves the running model (a bounded window of recent request rows, summarised per
worker and merged), offline drift (a CSV/Parquet file against the reference) and batch scoring
(the scored frame against the reference). It imports nothing from workbench (standard library,
numpy, pandas, scipy only) because it ships inside every Bento. The reference and the windows it
compares are the summaries of :mod:`.sketch` (quantile sketches of numbers and text lengths,
counts of categories and booleans).

**Accuracy.** Counts are exact, so chi-square, Z and Jensen-Shannon are the statistics of the
raw data. With the default cut-off KS only meets exact sketches (at most 1,001 values), so it is
scipy's on the raw reference; on a quantile sketch its statistic is within ``1/Q + 1/n`` of the
raw one (:mod:`.stattests`). The Wasserstein distance on a quantile sketch is within
``W1(reference, sketch)`` of the raw one (the bound is in :mod:`.stattests`): measured, under 0.003
of the reference std even on Pareto(1.5) data, against a threshold of 0.1.

**Which test** (Evidently's default selection; ``n`` = the reference's non-missing values,
"small" = ``n <= small_reference_rows``, 1,000 by default):

============================== ============================= ===============================
column                         small reference               large reference
============================== ============================= ===============================
number, integer, text lengths  two-sample Kolmogorov-Smirnov Wasserstein distance / ref. std
(more than 5 distinct values)  (drift when p < 0.05)         (drift when >= 0.1)
categories, booleans, numbers  chi-square; Z-test for two    Jensen-Shannon distance, base 2
with at most 5 distinct values values (drift when p < 0.05)  (drift when >= 0.1)
============================== ============================= ===============================

"Distinct values" counts the reference's and the window's together, as Evidently does. A text
column also tests its missing share (the same categorical test on missing / present) and drifts
when either test does. The dataset drifts when at least ``drift_share`` (0.5) of the tested
columns drift. Missing values (None, NaN, and for numbers also +-inf, as Evidently drops them)
are left out of every test but that missing-share test; each result reports both missing shares.

Departures from Evidently, each measured in ``benchmarks/drift.py``:

* The chi-square test is Pearson's two-sample test of homogeneity (the 2 x k table of reference
  and window counts, :func:`scipy.stats.chi2_contingency`), not Evidently's goodness-of-fit test
  that takes the reference shares as exact: with a 1,000-row reference that one ignores half the
  sampling noise and raises about 30 % false alarms at a nominal 5 %. (The Z-test for two values
  is two-sample already: its square is this chi-square with one degree of freedom.)
* Window values a category reference never saw are pooled into one "unseen" bucket (reference
  count 0) rather than one bucket each: the Jensen-Shannon distance is the same either way, and
  the chi-square keeps its degrees of freedom bounded. :attr:`ColumnDrift.unseen_share` reports
  their share.
* KS p-values are Smirnov's asymptotic ones (see :mod:`.stattests`), never scipy's exact ones.
* A text column runs two tests, so with p-values each runs at half the threshold (Bonferroni);
  else the column would raise twice the nominal false alarms.
* Distances (Wasserstein, Jensen-Shannon) are not calibrated by sample size: a small window is
  far from any reference by chance alone. Columns with fewer than ``min_window_rows``
  non-missing values in the window are therefore not tested (``drifted`` is None, with a
  reason and the values they still need): their drift is INCONCLUSIVE, never a pass.
* The dataset verdict is given only once the untested columns could not change it: "drift"
  when at least ``drift_share`` of all the testable columns drifted, "no drift" when fewer would
  have even if every untested one drifted, else "not enough data" (Evidently tests every column,
  so its share over the tested ones is the same rule when none is left untested).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from .columns import COLUMN_KINDS
from .quality import Status
from .sketch import (
    DISCRETE_MAX_VALUES,
    ColumnWindow,
    Floats,
    WindowColumn,
    number_key,
    reference_columns,
)
from .stattests import (
    DEFAULT_OPTIONS,
    Counts,
    DriftOptions,
    Ints,
    TestOutcome,
    Values,
    default_stattest,
)

Verdict = Literal["drift", "no drift", "not enough data"]
STATUS: dict[Verdict, Status] = {
    "drift": "FAIL",
    "no drift": "PASS",
    "not enough data": "INCONCLUSIVE",
}


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift. ``test``/``statistic``/``threshold``/``drifted`` are None when the
    column could not be tested, and ``reason`` says why.

    For text, ``test`` and ``statistic`` are those of the string lengths, ``missing_share_test``
    is the test of the missing share, and ``drifted`` is true when either drifted.
    ``unseen_share``: share of the window's non-missing values that are not among the
    reference's counted values (categories, booleans, numbers with few distinct values; None
    for text). ``status``: FAIL (drifted), PASS, INCONCLUSIVE (too few values: ``values_needed``
    more non-missing values would test it; None when it never could, e.g. a column not in the
    window) or None (a reference with no values: nothing to test).
    """

    column: str
    kind: str
    test: str | None
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool | None
    window_rows: int
    reference_rows: int
    missing_share_reference: float
    missing_share_window: float | None
    unseen_share: float | None = None
    missing_share_test: TestOutcome | None = None
    reason: str | None = None
    status: Status | None = "INCONCLUSIVE"
    values_needed: int | None = None


@dataclass(frozen=True)
class DatasetDrift:
    """All columns' drift and the verdict (see the module): ``"not enough data"`` (with
    ``reason``, and ``values_needed`` by the untested column that needs the most) while the
    untested columns could change it. ``drifted_share`` is over the tested columns."""

    columns: tuple[ColumnDrift, ...]
    tested_columns: int
    drifted_columns: int
    drifted_share: float | None
    threshold: float
    verdict: Verdict
    reason: str | None = None
    values_needed: int | None = None

    @property
    def status(self) -> Status:
        return STATUS[self.verdict]

    @property
    def drifted(self) -> bool | None:
        return None if self.verdict == "not enough data" else self.verdict == "drift"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (every float is finite)."""
        return {**dataclasses.asdict(self), "status": self.status}


# ---------------------------------------------------------------- tests


def _counted(kind: str, ref: Ints, live: Ints, small: bool, options: DriftOptions) -> TestOutcome:
    """The default test (:func:`~.stattests.default_stattest`) on aligned counts, values absent
    from both dropped first (so every expected count is positive)."""
    keep = (ref + live) > 0
    counts = Counts(ref[keep], live[keep])
    test = default_stattest(kind, distinct=len(counts.reference), small=small)
    return test.run(counts, options)


def _numeric_test(
    kind: str, sketch: Mapping[str, Any], n_ref: int, live: Floats, options: DriftOptions
) -> tuple[TestOutcome, float | None]:
    """KS / Wasserstein on the sketch, or the categorical test when there are few distinct
    values; also the unseen share when the reference has counts."""
    small = n_ref <= options.small_reference_rows
    counts: Mapping[str, int] | None = sketch.get("counts")
    unseen: float | None = None
    if counts is not None:
        distinct, live_counts = np.unique(live, return_counts=True)
        live_map = {number_key(v): int(c) for v, c in zip(distinct, live_counts, strict=True)}
        unseen = sum(c for k, c in live_map.items() if k not in counts) / len(live)
        keys = sorted(set(counts) | set(live_map), key=float)
        if len(keys) <= DISCRETE_MAX_VALUES:
            ref = np.array([counts.get(k, 0) for k in keys], dtype=np.int64)
            win = np.array([live_map.get(k, 0) for k in keys], dtype=np.int64)
            return _counted(kind, ref, win, small, options), unseen
    test = default_stattest(kind, distinct=None, small=small)
    return test.run(Values(sketch, n_ref, live), options), unseen


def _category_test(
    counts: Mapping[str, int], window: ColumnWindow, small: bool, options: DriftOptions
) -> tuple[TestOutcome, float]:
    """Categorical test over the reference's values plus one pooled "unseen" bucket."""
    keys = list(counts)
    unseen = sum(c for k, c in window.counts.items() if k not in counts)
    ref = np.array([counts[k] for k in keys] + [0], dtype=np.int64)
    live = np.array([window.counts.get(k, 0) for k in keys] + [unseen], dtype=np.int64)
    return _counted(window.kind, ref, live, small, options), unseen / int(live.sum())


def _missing_test(
    reference: Mapping[str, Any], window: ColumnWindow, options: DriftOptions
) -> TestOutcome:
    """The categorical test on (missing, present) counts, sized by all rows."""
    ref_rows, ref_missing = int(reference["rows"]), int(reference["missing"])
    ref = np.array([ref_missing, ref_rows - ref_missing], dtype=np.int64)
    live = np.array([window.missing, window.rows - window.missing], dtype=np.int64)
    small = ref_rows <= options.small_reference_rows
    return _counted(window.kind, ref, live, small, options)


def column_drift(
    name: str,
    reference: Mapping[str, Any],
    window: WindowColumn,
    options: DriftOptions = DEFAULT_OPTIONS,
) -> ColumnDrift:
    """Test one column's window against its reference (``reference["columns"][name]``).

    ``window``: a :class:`ColumnWindow` or the raw values (None/NaN = missing). Never raises for
    data: an empty window, a column missing everywhere, a reference without values or a window
    smaller than ``options.min_window_rows`` give ``drifted=None`` and a ``reason``.
    """
    kind = str(reference["kind"])
    if not isinstance(window, ColumnWindow):
        window = ColumnWindow.of(kind, window)
    elif window.kind != kind:
        raise ValueError(f"column {name!r}: a {window.kind} window for a {kind} reference")
    n_ref = int(reference["rows"]) - int(reference["missing"])
    missing_test = None
    if kind == "text":
        # Two tests on one column: each at half the p-value threshold (Bonferroni), so the
        # column's false-alarm rate stays at the threshold.
        options = options.model_copy(update={"p_value_threshold": options.p_value_threshold / 2})
        if window.rows >= options.min_window_rows and reference["rows"]:
            missing_test = _missing_test(reference, window, options)
    untestable = _untestable(window, n_ref, options)
    if untestable is not None:
        reason, needed = untestable
        untested = _untested(name, reference, window, reason, needed)
        if missing_test is None:
            return untested
        return dataclasses.replace(  # the lengths are INCONCLUSIVE unless the missing share drifted
            untested,
            reason=f"{reason}: only the missing share was tested",
            drifted=missing_test.drifted,
            missing_share_test=missing_test,
            status="FAIL" if missing_test.drifted else untested.status,
        )

    small = n_ref <= options.small_reference_rows
    unseen: float | None
    summary = COLUMN_KINDS[kind].sketch
    if summary == "counts":
        outcome, unseen = _category_test(reference["counts"], window, small, options)
    else:
        sketch = reference["lengths" if summary == "lengths" else "sketch"]
        outcome, unseen = _numeric_test(kind, sketch, n_ref, window.values, options)
    drifted = outcome.drifted or (missing_test is not None and missing_test.drifted)
    return dataclasses.replace(
        _untested(name, reference, window, None, None),
        test=outcome.test,
        statistic=outcome.statistic,
        p_value=outcome.p_value,
        threshold=outcome.threshold,
        drifted=drifted,
        unseen_share=None if kind == "text" else unseen,  # a length is never "unseen"
        missing_share_test=missing_test,
        status="FAIL" if drifted else "PASS",
    )


def _untestable(
    window: ColumnWindow, n_ref: int, options: DriftOptions
) -> tuple[str, int | None] | None:
    """Why the column's values cannot be tested, and the values it still needs (None: it never
    can); None when they can be tested."""
    present = window.rows - window.missing
    if not n_ref:
        return "the reference has no values for this column", None
    if not window.rows:
        return "the window is empty", options.min_window_rows
    if present < options.min_window_rows:
        reason = (
            f"{present} non-missing value(s), fewer than the "
            f"min_window_rows={options.min_window_rows} a test needs"
        )
        return reason, options.min_window_rows - present
    return None


def _untested(
    name: str,
    reference: Mapping[str, Any],
    window: ColumnWindow | None,
    reason: str | None,
    needed: int | None,
) -> ColumnDrift:
    """The column's sizes, missing shares and (for a category) the share of unseen values, with
    no test (``window`` None: not in it): INCONCLUSIVE, or no verdict when the reference has no
    values to test against."""
    rows, missing = int(reference["rows"]), int(reference["missing"])
    unseen = None
    if window is not None and str(reference["kind"]) == "category" and window.counts:
        known = reference.get("counts") or {}
        present = sum(window.counts.values())
        unseen = sum(c for k, c in window.counts.items() if k not in known) / present
    return ColumnDrift(
        column=name,
        kind=str(reference["kind"]),
        test=None,
        statistic=None,
        p_value=None,
        threshold=None,
        drifted=None,
        window_rows=0 if window is None else window.rows,
        reference_rows=rows,
        missing_share_reference=missing / rows if rows else 0.0,
        missing_share_window=window.missing / window.rows if window and window.rows else None,
        unseen_share=unseen,
        reason=reason,
        status=None if rows == missing else "INCONCLUSIVE",
        values_needed=needed,
    )


def dataset_drift(
    reference: Mapping[str, Any],
    window: pd.DataFrame | Mapping[str, WindowColumn],
    options: DriftOptions = DEFAULT_OPTIONS,
) -> DatasetDrift:
    """Test every reference column of ``window`` and give the dataset verdict.

    ``window``: a frame (a file, a scored batch) or column -> :class:`ColumnWindow` / raw values
    (e.g. :func:`merge_windows` of the workers' windows). A reference column the window lacks
    is reported untested. Untested columns do not count towards the drifted share.
    """
    results = []
    for name, spec in reference_columns(reference).items():
        if name in window:
            results.append(column_drift(name, spec, window[name], options))
        else:
            results.append(_untested(name, spec, None, "the column is not in the window", None))
    return _verdict(results, options.drift_share)


def _verdict(results: list[ColumnDrift], share: float) -> DatasetDrift:
    """The dataset verdict, given only where the untested columns could not change it."""
    tested = [r for r in results if r.status in ("PASS", "FAIL")]
    pending = [r for r in results if r.status == "INCONCLUSIVE"]
    drifted = sum(1 for r in tested if r.status == "FAIL")
    testable = len(tested) + len(pending)
    if tested and drifted / testable >= share:
        verdict: Verdict = "drift"
    elif tested and (drifted + len(pending)) / testable < share:
        verdict = "no drift"
    else:
        verdict = "not enough data"
    reason = None
    if verdict == "not enough data":
        reasons = sorted({r.reason for r in pending if r.reason})
        reason = (
            "no column could be tested: " + ("; ".join(reasons) or "no columns")
            if not tested
            else f"{len(pending)} of {testable} columns untested could still change the verdict "
            f"({drifted} of {len(tested)} tested drifted; the dataset drifts at {share:.0%})"
        )
    needed = [r.values_needed for r in pending if r.values_needed is not None]
    return DatasetDrift(
        columns=tuple(results),
        tested_columns=len(tested),
        drifted_columns=drifted,
        drifted_share=drifted / len(tested) if tested else None,
        threshold=share,
        verdict=verdict,
        reason=reason,
        values_needed=max(needed) if verdict == "not enough data" and needed else None,
    )


__all__ = [
    "DEFAULT_OPTIONS",
    "ColumnDrift",
    "DatasetDrift",
    "DriftOptions",
    "TestOutcome",
    "column_drift",
    "dataset_drift",
]
