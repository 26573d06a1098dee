"""Drift sketches: a column's values as the keys, summaries and windows the drift tests compare.

The reference of the training inputs and every live window (the running model's recent request
rows, an offline CSV/Parquet file, a scored batch) are reduced here to the same canonical form;
:mod:`.drift` tests one against the other. It imports nothing from workbench (standard library,
numpy, pandas only) because it ships inside every Bento; ``workbench.validation.reference``
builds the reference with the summary functions defined here, so both sides canonicalise values
the same way.

**The reference** (JSON, one entry per column, built from the training frame) keeps per column
its kind, row count and missing count, and:

* numbers and integers: a *sketch* of the non-missing values, ``points`` = the quantiles at
  ``0, 1/Q, ..., 1`` (``Q`` = ``quantiles``, 1,000 by default; numpy's default "linear"
  quantiles, so the first and last points are the minimum and maximum) plus a few finer
  quantiles in each end cell (``tails``), or every value sorted when there are at most
  ``Q + 1`` of them (the sketch is then *exact*); plus the mean, the population standard
  deviation and, for at most :data:`DISCRETE_MAX_VALUES` distinct values, the count of each
  (:func:`numeric_summary`);
* booleans and categories: the count of each value as text (complete: a category column with
  more than 1,000 distinct values is *text*);
* text: the same sketch of the string lengths.

How closely each test on a quantile sketch follows the test on the raw data is in :mod:`.drift`.

**Mergeable windows.** :class:`ColumnWindow` reduces one column of a window to what the tests
need: numbers (and text lengths) as sorted values, categories as counts. Windows from several
server workers merge exactly (:meth:`ColumnWindow.merge`, :func:`merge_windows`; counts add,
sorted values concatenate, which stays small because windows are bounded) and travel as JSON
(:meth:`ColumnWindow.to_dict`). A quantile sketch of the window would merge too but would add an
approximation on the live side, where the exact form costs only the window itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import pandas as pd

from .columns import COLUMN_KINDS

REFERENCE_FORMAT = "workbench-drift-reference/1"
"""The ``format`` field of a reference; anything else is refused."""

KINDS = tuple(COLUMN_KINDS)
NUMERIC_KINDS = tuple(k.name for k in COLUMN_KINDS.values() if k.sketch == "numbers")
"""Kinds summarised as numbers (quantile sketches)."""
COUNTED_KINDS = tuple(k.name for k in COLUMN_KINDS.values() if k.sketch == "counts")
"""Kinds summarised as counts of their values."""

DISCRETE_MAX_VALUES = 5
"""A numeric column with at most this many distinct values (reference and window together) is
tested as categories, as Evidently does; the reference keeps its counts only up to this many."""

Floats = npt.NDArray[np.float64]
Values = Sequence[Any] | npt.NDArray[Any] | pd.Series
"""A column's raw values: a list, a 1-D array or a Series (None/NaN = missing)."""


# ---------------------------------------------------------------- canonical values


def number_key(value: float) -> str:
    """A number as the text key of the reference's counts (``3`` and ``3.0`` are ``"3.0"``)."""
    return repr(float(value))


_BOOLEAN_TEXT = {"1": "true", "1.0": "true", "0": "false", "0.0": "false"}


def _boolean_key(value: object) -> str:
    text = str(value).strip().lower()  # True and np.True_ -> "true"
    return _BOOLEAN_TEXT.get(text, text)


def count_values(kind: str, present: pd.Series) -> dict[str, int]:
    """Counts of non-missing boolean or category values, by the text the reference keys them by.

    Categories are ``str(value)``. Booleans are ``"true"``/``"false"`` whether they arrive as
    bools, 0/1 or text; anything else keeps its (lower-case) text and is unseen by a boolean
    reference. Counting the raw values first and turning only the distinct ones into text keeps
    this a hash pass over the rows. Values equal in Python (``1``, ``1.0``) count as one.
    """
    key = _boolean_key if kind == "boolean" else str
    counts: dict[str, int] = {}
    for value, count in present.value_counts(sort=False).items():
        if count:  # a categorical Series also lists its unused categories
            text = key(value)
            counts[text] = counts.get(text, 0) + int(count)
    return counts


@overload
def finite_numbers(values: Values) -> Floats: ...
@overload
def finite_numbers(values: Values, *, infinite: Literal[True]) -> tuple[Floats, int]: ...
def finite_numbers(values: Values, *, infinite: bool = False) -> Floats | tuple[Floats, int]:
    """Finite values as float64, in input order (missing, non-numeric and +-inf dropped); with
    ``infinite``, also how many were +-inf."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):  # text or mixed objects: coerce what parses, drop the rest
        coerced = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        array = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(array)
    if not infinite:
        return array[finite]
    return array[finite], int(np.isinf(array).sum())


def text_lengths(present: pd.Series) -> Floats:
    """String lengths of non-missing values (``str(value)``), as float64."""
    return np.fromiter((len(str(v)) for v in present), dtype=np.float64, count=len(present))


def _tail_probabilities(halvings: int, quantiles: int) -> Floats:
    """``2**-j / Q`` for ``j = 1..halvings``: the end cell ``[0, 1/Q]`` halved again and again."""
    return np.asarray(2.0 ** -np.arange(1, halvings + 1) / quantiles, dtype=np.float64)


def numeric_summary(values: Floats, quantiles: int) -> dict[str, Any] | None:
    """The reference sketch of finite values (None when there are none).

    ``points``: every value sorted when there are at most ``quantiles + 1`` (the sketch is
    exact, ``tails`` None); else the ``Q + 1`` linear quantiles at ``0, 1/Q, ..., 1`` (minimum
    to maximum), and ``tails``: ``low`` / ``high``, the quantiles at ``2**-j / Q`` and
    ``1 - 2**-j / Q`` for ``j = 1..J`` in increasing order, halving the end cells until the
    last holds under one row (``J = ceil(log2(n / Q))``: 5 a side for 20,000 values, 10 for a
    million). The tails are what keeps the Wasserstein distance accurate on heavy-tailed data:
    with the uniform points alone, half an end cell's mass sits on the extreme value and the
    error reaches 0.06 std on a Pareto(1.5) column; with them, 0.003 std.

    ``std`` is the population standard deviation (as Evidently norms by ``np.std``).
    ``counts`` (value key -> count) only when there are at most :data:`DISCRETE_MAX_VALUES`
    distinct values, else None. Costs one sort: O(n log n).
    """
    if quantiles < 1:
        raise ValueError(f"quantiles must be >= 1, not {quantiles}")
    ordered = np.sort(values)
    if not len(ordered):
        return None
    tails = None
    if len(ordered) <= quantiles + 1:
        points = ordered
    else:
        points = np.quantile(ordered, np.linspace(0.0, 1.0, quantiles + 1))
        # The fewest halvings that leave under one value in the last cell.
        tail = _tail_probabilities(math.ceil(math.log2(len(ordered) / quantiles)), quantiles)
        tails = {
            "low": [float(v) for v in np.quantile(ordered, tail[::-1])],
            "high": [float(v) for v in np.quantile(ordered, 1.0 - tail)],
        }
    distinct, counts = np.unique(ordered, return_counts=True)
    return {
        "points": [float(p) for p in points],
        "tails": tails,
        "mean": float(ordered.mean()),
        "std": float(ordered.std()),
        "counts": (
            {number_key(v): int(c) for v, c in zip(distinct, counts, strict=True)}
            if len(distinct) <= DISCRETE_MAX_VALUES
            else None
        ),
    }


def weighted_sketch(sketch: Mapping[str, Any]) -> tuple[Floats, Floats | None]:
    """The sketch as a discrete distribution: its values in order, and their weights.

    Weights are None for an exact sketch (every value once). Otherwise each point carries half
    the probability of each cell it bounds (trapezoid weights over the grid ``0, tails, 1/Q,
    ..., 1 - 1/Q, tails, 1``): the discrete measure closest to the sketch's piecewise-linear
    quantile function, since each cell's mass moves to its two ends (cost: a quarter of the
    cell's width times its mass).
    """
    points = np.asarray(sketch["points"], dtype=np.float64)
    tails = sketch.get("tails")
    if tails is None:
        return points, None
    low = np.asarray(tails["low"], dtype=np.float64)
    high = np.asarray(tails["high"], dtype=np.float64)
    quantiles = len(points) - 1
    tail = _tail_probabilities(len(low), quantiles)
    grid = np.concatenate([[0.0], tail[::-1], np.arange(1, quantiles) / quantiles, 1 - tail, [1]])
    values = np.concatenate([points[:1], low, points[1:-1], high, points[-1:]])
    cells = np.diff(grid)
    weights = np.zeros(len(grid))
    weights[:-1] += cells / 2
    weights[1:] += cells / 2
    return values, weights


# ---------------------------------------------------------------- windows


def _frozen(array: Floats) -> Floats:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class ColumnWindow:
    """One column of a live window, reduced to what the tests need; merges exactly.

    ``values``: sorted finite numbers (number, integer) or string lengths (text); empty for
    boolean and category. ``counts``: value key -> count for boolean and category, else empty.
    ``rows`` counts every row of the window, ``missing`` those without a value (for numbers:
    without a finite value), ``nonfinite`` the +-inf among those (numbers; the data-quality
    checks count them as out of range, the drift tests as missing).
    """

    kind: str
    rows: int
    missing: int
    values: Floats = field(default_factory=lambda: _frozen(np.empty(0)))
    counts: Mapping[str, int] = field(default_factory=dict)
    nonfinite: int = 0

    @classmethod
    def of(cls, kind: str, values: Values) -> ColumnWindow:
        """Summarise one column's window values (a list, array or Series; None/NaN = missing)."""
        if kind not in KINDS:
            raise ValueError(f"unknown column kind {kind!r}; expected one of {KINDS}")
        if kind in NUMERIC_KINDS:
            finite, infinite = finite_numbers(values, infinite=True)
            missing = len(values) - len(finite)
            return cls(kind, len(values), missing, _frozen(np.sort(finite)), nonfinite=infinite)
        series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
        present = series[series.notna()]
        missing = len(series) - len(present)
        if kind == "text":
            return cls(kind, len(series), missing, _frozen(np.sort(text_lengths(present))))
        return cls(kind, len(series), missing, counts=count_values(kind, present))

    @classmethod
    def of_lengths(cls, lengths: Values) -> ColumnWindow:
        """A text column's window from its values' lengths (NaN: missing), as :meth:`of` makes
        it from the values (a window that keeps text as lengths, not as the text)."""
        finite = finite_numbers(lengths)
        return cls("text", len(lengths), len(lengths) - len(finite), _frozen(np.sort(finite)))

    def merge(self, other: ColumnWindow) -> ColumnWindow:
        """The window holding both windows' rows (the same column, e.g. from two workers)."""
        if other.kind != self.kind:
            raise ValueError(f"cannot merge a {self.kind} window with a {other.kind} window")
        counts = dict(self.counts)
        for key, count in other.counts.items():
            counts[key] = counts.get(key, 0) + count
        values = _frozen(np.sort(np.concatenate([self.values, other.values])))
        return ColumnWindow(
            self.kind,
            self.rows + other.rows,
            self.missing + other.missing,
            values,
            counts,
            self.nonfinite + other.nonfinite,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for workers to exchange their windows."""
        return {
            "kind": self.kind,
            "rows": self.rows,
            "missing": self.missing,
            "values": self.values.tolist(),
            "counts": dict(self.counts),
            "nonfinite": self.nonfinite,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnWindow:
        values = _frozen(np.sort(np.asarray(data["values"], dtype=np.float64)))
        counts = {str(k): int(v) for k, v in data["counts"].items()}
        nonfinite = int(data.get("nonfinite", 0))
        return cls(
            str(data["kind"]), int(data["rows"]), int(data["missing"]), values, counts, nonfinite
        )


WindowColumn = ColumnWindow | Values
"""What a column's window may be: a summary, or the raw values."""


def merge_windows(*windows: Mapping[str, ColumnWindow]) -> dict[str, ColumnWindow]:
    """Merge per-column windows (e.g. one mapping per server worker) column by column."""
    merged: dict[str, ColumnWindow] = {}
    for window in windows:
        for name, column in window.items():
            merged[name] = merged[name].merge(column) if name in merged else column
    return merged


def summarize_window(
    reference: Mapping[str, Any], window: pd.DataFrame | Mapping[str, WindowColumn]
) -> dict[str, ColumnWindow]:
    """Every reference column of ``window`` (a frame, or column -> values) as a ColumnWindow.

    Columns the window lacks are left out; :func:`.drift.dataset_drift` reports them as untested.
    """
    columns = reference_columns(reference)
    out: dict[str, ColumnWindow] = {}
    for name, spec in columns.items():
        if name in window:
            values = window[name]
            if not isinstance(values, ColumnWindow):
                values = ColumnWindow.of(spec["kind"], values)
            out[name] = values
    return out


def reference_columns(reference: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """The reference's columns (name -> spec); refuses anything but a drift reference."""
    if reference.get("format") != REFERENCE_FORMAT:
        raise ValueError(
            f"not a drift reference: format {reference.get('format')!r}, "
            f"expected {REFERENCE_FORMAT!r}"
        )
    columns: Mapping[str, Mapping[str, Any]] = reference["columns"]
    return columns


__all__ = [
    "COUNTED_KINDS",
    "DISCRETE_MAX_VALUES",
    "KINDS",
    "NUMERIC_KINDS",
    "REFERENCE_FORMAT",
    "ColumnWindow",
    "WindowColumn",
    "count_values",
    "finite_numbers",
    "merge_windows",
    "number_key",
    "numeric_summary",
    "reference_columns",
    "summarize_window",
    "text_lengths",
    "weighted_sketch",
]
