"""Data-quality checks beside drift: what a broken feed looks like, one registry entry each.

Drift asks whether live values are distributed as in training; these checks ask whether the
inputs arrive at all, and as values the model was trained on. Each :class:`QualityCheck` names
the column kinds it applies to and its threshold (a :class:`QualityOptions` field), and reads
only what the drift windows already hold (:class:`~.sketch.ColumnWindow`: counts, sorted
values, missing and non-finite counts), so the live window, a file and a scored batch are
checked by the same code, lazily (never per request). :data:`QUALITY_CHECKS` holds them by name;
reports, gauges and the docs take their labels from it.

=========== ============================ ==================================================
check       fails a column when          test (one-sided; H0: the window is drawn as training)
=========== ============================ ==================================================
absent      it is not in the file        none: an input column the file lacks
missing     its missing share is above   Fisher's exact test of (missing, present) in the
            training's                   window against the reference
constant    it is entirely missing, or   the chance, under training's shares, that every row
            one value, where training    is missing / every value is the same one
            was not
unseen      categories training never    Fisher's exact test of the window's unseen share
            saw arrive                   against the reference's own (its values seen once:
                                         Good-Turing's estimate of the unseen mass)
range       numbers are +-inf or beyond  the exact law of the count beyond the extremes of
            training's minimum/maximum   a sample of N: Beta-binomial(n, 2, N - 1)
=========== ============================ ==================================================

**Thresholds.** A check's threshold is the false-alarm rate it allows over a whole window, each
column tested at the threshold over the number of columns the check applies to (Bonferroni).
The default, 0.001, is measured in ``benchmarks/drift.py``.

**Verdicts** (:data:`Status`): ``FAIL`` when the test rejects; ``INCONCLUSIVE`` when it could
not have at this size whatever the data (``needed``: the rows, or values, it lacks; a column of
one value so far that training's shares do not yet make unlikely is INCONCLUSIVE too); ``PASS``
otherwise. A check is left out where training had no values to compare with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .sketch import COUNTED_KINDS, KINDS, NUMERIC_KINDS, ColumnWindow, reference_columns
from .stattests import all_beyond_p, all_of_p, beyond_p, fisher_greater

Status = Literal["PASS", "FAIL", "INCONCLUSIVE"]
"""The verdict of a check, of a report and of a command: ``INCONCLUSIVE`` is "not enough data",
never a pass."""
STATUSES: tuple[Status, ...] = ("PASS", "FAIL", "INCONCLUSIVE")
MAX_ROWS_NEEDED = 10**9
"""Beyond this many rows a check is said never to decide (``needed`` None)."""


def worst(statuses: Iterable[Status | None]) -> Status:
    """FAIL if any failed, else INCONCLUSIVE if any was, else PASS (None: no verdict, ignored)."""
    given = set(statuses)
    return "FAIL" if "FAIL" in given else "INCONCLUSIVE" if "INCONCLUSIVE" in given else "PASS"


def _threshold(description: str) -> Any:
    return Field(default=0.001, gt=0, lt=1, description=f"data quality: {description}")


class QualityOptions(BaseModel):
    """The checks' thresholds: each the false-alarm rate allowed over a window (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    missing_p_value: float = _threshold(
        "a column fails when its missing share is above training's with p < this / the "
        "columns checked (Fisher's exact test, one-sided)"
    )
    constant_p_value: float = _threshold(
        "a column entirely missing, or of one value, where training was not, fails when that "
        "is this unlikely under training's shares (/ the columns checked)"
    )
    unseen_p_value: float = _threshold(
        "a category column fails when its share of values unseen in training is above "
        "training's own with p < this / the columns checked"
    )
    range_p_value: float = _threshold(
        "a number column fails when its share of +-inf and values beyond training's "
        "minimum/maximum has p < this / the columns checked"
    )


DEFAULT_QUALITY = QualityOptions()


@dataclass(frozen=True)
class CheckResult:
    """One check of one column. ``value``: the window's figure (a share; ``constant``: the most
    frequent value's share, 1.0 = one value; None when there is none); ``expected``: the same
    figure in training; ``count``: the rows (or values) it was computed on; ``needed``: for
    INCONCLUSIVE, how many more the check needs before it could fail; ``note``: why, in words,
    when the figures do not say it."""

    check: str
    column: str
    status: Status
    value: float | None
    expected: float | None
    p_value: float | None
    threshold: float | None
    count: int
    needed: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class DataQuality:
    """Every check of every column and the verdict over them (:func:`worst`)."""

    checks: tuple[CheckResult, ...]
    status: Status
    failed: int
    inconclusive: int
    options: QualityOptions

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (every float is finite)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "options"}
        return {**out, "options": self.options.model_dump()}


Spec = Mapping[str, Any]
Verdict = tuple[Status, int | None]


# ---------------------------------------------------------------- the decision


def rows_needed(extreme: Callable[[int], float], alpha: float, have: int) -> int | None:
    """How many rows past ``have`` until ``extreme(n)`` (the p-value of the most extreme window
    of ``n`` rows, decreasing in ``n``) falls below ``alpha``; None: never within 10^9."""
    low, high = have, max(have, 1)
    while extreme(high) >= alpha:
        if high >= MAX_ROWS_NEEDED:
            return None
        low, high = high, min(high * 2, MAX_ROWS_NEEDED)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if extreme(mid) < alpha else (mid, high)
    return high - have


def decide(p_value: float, alpha: float, extreme: Callable[[int], float], n: int) -> Verdict:
    """FAIL when ``p < alpha``; INCONCLUSIVE (with the rows needed) when even the most extreme
    window of ``n`` rows would have passed; else PASS."""
    if p_value < alpha:
        return "FAIL", None
    if n and extreme(n) < alpha:
        return "PASS", None
    return "INCONCLUSIVE", rows_needed(extreme, alpha, n)


# ---------------------------------------------------------------- the checks


def _missing(name: str, spec: Spec, window: ColumnWindow, alpha: float) -> CheckResult:
    """Rows with no value (None, NaN; +-inf is the range check's) against training's share."""
    ref_rows, ref_missing = int(spec["rows"]), int(spec["missing"])
    n, hits = window.rows, window.missing - window.nonfinite
    p = fisher_greater(hits, n, ref_missing, ref_rows)
    status, needed = decide(p, alpha, all_of_p(ref_missing, ref_rows), n)
    share = hits / n if n else None
    return CheckResult("missing", name, status, share, ref_missing / ref_rows, p, alpha, n, needed)


def value_shares(spec: Spec) -> tuple[np.ndarray, float]:
    """The share of each distinct training value, and how far off it may be: exact (0.0) from
    counts or an exact sketch; from a quantile sketch of ``Q + 1`` points, ``c / Q`` for a value
    held by ``c`` points, within ``1 / Q``, and any value between the points under ``1 / Q``."""
    counts = spec.get("counts")
    sketch = spec.get("sketch") or {}
    if counts is None:
        counts = sketch.get("counts")
    if counts:
        shares = np.asarray(list(counts.values()), dtype=np.float64)
        return np.asarray(shares / shares.sum()), 0.0
    points = np.asarray(sketch.get("points") or [], dtype=np.float64)
    _, held = np.unique(points, return_counts=True)
    if sketch.get("tails") is None:
        return np.asarray(held / max(1, len(points))), 0.0
    quantiles = len(points) - 1
    return np.asarray(held / quantiles), 1 / quantiles


def _constant(name: str, spec: Spec, window: ColumnWindow, alpha: float) -> CheckResult:
    """Every row missing where training had values, or one value where it had several (numbers:
    one finite value; +-inf is the range check's)."""
    shares, off = value_shares(spec)
    several = len(shares) > 1 and float(shares.max()) + off < 1.0

    def same_p(k: int) -> float:
        """P(k values all the same one): sum of share^k, each share at its upper bound, plus
        at most (1/Q)^(k-1) for the values between a quantile sketch's points."""
        if not several:
            return 1.0
        between = off ** (k - 1) if off else 0.0
        return min(1.0, float(np.sum(np.minimum(shares + off, 1.0) ** k)) + between)

    empty_p = all_of_p(int(spec["missing"]), int(spec["rows"]))
    if window.counts or str(spec["kind"]) in COUNTED_KINDS:
        present, top = sum(window.counts.values()), max(window.counts.values(), default=0)
    else:
        present, top = len(window.values), _top_count(window.values)
    expected = float(shares.max()) if len(shares) else None
    rows = window.rows
    if rows and window.missing - window.nonfinite == rows:  # every row None or NaN
        status, needed = decide(empty_p(rows), alpha, empty_p, rows)
        return CheckResult(
            "constant", name, status, None, expected, empty_p(rows), alpha, rows, needed,
            "entirely missing",
        )  # fmt: skip
    if present and top == present and several:  # one value
        p = same_p(present)
        status, needed = decide(p, alpha, same_p, present)
        return CheckResult(
            "constant", name, status, 1.0, expected, p, alpha, present, needed, "one value"
        )
    if not rows:
        needed = rows_needed(empty_p, alpha, 0)
        return CheckResult("constant", name, "INCONCLUSIVE", None, expected, None, alpha, 0, needed)
    # Several values, one as in training, or only +-inf.
    top_share = top / present if present else None
    return CheckResult("constant", name, "PASS", top_share, expected, None, alpha, present)


def _top_count(values: np.ndarray) -> int:
    """How often the most frequent of the sorted ``values`` occurs."""
    if not len(values):
        return 0
    starts = np.flatnonzero(np.diff(values)) + 1
    return int(np.diff(np.concatenate([[0], starts, [len(values)]])).max())


def _unseen(name: str, spec: Spec, window: ColumnWindow, alpha: float) -> CheckResult:
    """Values training never saw, against training's own rate of values seen once."""
    known: Mapping[str, int] = spec.get("counts") or {}
    ref_total = sum(known.values())
    once = sum(1 for c in known.values() if c == 1)
    n = sum(window.counts.values())
    hits = sum(c for k, c in window.counts.items() if k not in known)
    p = fisher_greater(hits, n, once, ref_total)
    status, needed = decide(p, alpha, all_of_p(once, ref_total), n)
    share = hits / n if n else None
    return CheckResult("unseen", name, status, share, once / ref_total, p, alpha, n, needed)


def _range(name: str, spec: Spec, window: ColumnWindow, alpha: float) -> CheckResult:
    """+-inf and values beyond training's minimum/maximum (the sketch's first and last point).

    A scored batch keeps a sample of each number column (``workbench.scoring``): the count is
    then taken at the sample's scale."""
    points = spec["sketch"]["points"]
    ref_values = int(spec["rows"]) - int(spec["missing"])
    values = window.values
    outside = int(np.searchsorted(values, points[0], "left")) + int(
        len(values) - np.searchsorted(values, points[-1], "right")
    )
    finite = window.rows - window.missing
    scale = len(values) / finite if finite > len(values) else 1.0
    infinite = round(window.nonfinite * scale)
    n, hits = len(values) + infinite, outside + infinite
    p = beyond_p(hits, n, ref_values)
    status, needed = decide(p, alpha, all_beyond_p(ref_values), n)
    share = hits / n if n else None
    return CheckResult("range", name, status, share, 2 / (ref_values + 1), p, alpha, n, needed)


# ---------------------------------------------------------------- the registry


def _has_values(spec: Spec) -> bool:
    return int(spec["rows"]) > int(spec["missing"])


@dataclass(frozen=True)
class QualityCheck:
    """One data-quality check: what it applies to, where its threshold is set, how it decides."""

    name: str
    display_name: str
    kinds: frozenset[str]
    figure: str
    """What its ``value`` is, as a report's column names it."""
    threshold_option: str | None
    """The :class:`QualityOptions` field of its threshold (None: no test, e.g. ``absent``)."""
    applies: Callable[[Spec], bool]
    """Whether it can apply to a column, from the column's reference."""
    func: Callable[[str, Spec, ColumnWindow, float], CheckResult] | None

    @property
    def default_threshold(self) -> float | None:
        if self.threshold_option is None:
            return None
        return float(QualityOptions.model_fields[self.threshold_option].default)


QUALITY_CHECKS: dict[str, QualityCheck] = {
    check.name: check
    for check in (
        QualityCheck(
            "absent", "column missing from the file", frozenset(KINDS), "in the file", None,
            lambda _spec: True, None,
        ),
        QualityCheck(
            "missing", "missing share above training's", frozenset(KINDS), "missing share",
            "missing_p_value", lambda spec: int(spec["rows"]) > 0 and _has_values(spec),
            _missing,
        ),
        QualityCheck(
            "constant", "entirely missing or one value, where training was not",
            frozenset({*NUMERIC_KINDS, *COUNTED_KINDS}), "top value share", "constant_p_value",
            _has_values, _constant,
        ),
        QualityCheck(
            "unseen", "categories unseen in training", frozenset({"category", "boolean"}),
            "unseen share", "unseen_p_value", lambda spec: bool(spec.get("counts")), _unseen,
        ),
        QualityCheck(
            "range", "+-inf or beyond training's minimum/maximum", frozenset(NUMERIC_KINDS),
            "share out of range", "range_p_value",
            lambda spec: int(spec["rows"]) - int(spec["missing"]) >= 2, _range,
        ),
    )
}  # fmt: skip
"""Every data-quality check, by name, in the order reports show them."""


def _applies(check: QualityCheck, spec: Spec) -> bool:
    return str(spec["kind"]) in check.kinds and check.applies(spec)


def dataset_quality(
    reference: Mapping[str, Any],
    windows: Mapping[str, ColumnWindow],
    options: QualityOptions = DEFAULT_QUALITY,
) -> DataQuality:
    """Every check of every reference column of ``windows`` (column -> summary; a column it
    lacks fails ``absent``, the only result of that check, and is not checked further). Each
    check's threshold is divided by the number of columns it applies to."""
    specs = reference_columns(reference)
    results: list[CheckResult] = []
    for check in QUALITY_CHECKS.values():
        columns = [name for name, spec in specs.items() if _applies(check, spec)]
        if check.func is None or check.threshold_option is None:  # absent: said when it fails
            results += [
                CheckResult(
                    check.name, name, "FAIL", None, None, None, None, 0, None, "not in the file"
                )
                for name in columns
                if name not in windows
            ]
            continue
        alpha = float(getattr(options, check.threshold_option)) / max(1, len(columns))
        results += [
            check.func(name, specs[name], windows[name], alpha)
            for name in columns
            if name in windows
        ]
    statuses = [r.status for r in results]
    return DataQuality(
        checks=tuple(results),
        status=worst(statuses),
        failed=statuses.count("FAIL"),
        inconclusive=statuses.count("INCONCLUSIVE"),
        options=options,
    )


def get_check(name: str) -> QualityCheck:
    """The check named ``name``; an unknown name is one error listing the known ones."""
    try:
        return QUALITY_CHECKS[name]
    except KeyError:
        raise ValueError(
            f"unknown data-quality check {name!r}; the checks are {', '.join(QUALITY_CHECKS)}"
        ) from None


__all__ = [
    "DEFAULT_QUALITY",
    "QUALITY_CHECKS",
    "STATUSES",
    "CheckResult",
    "DataQuality",
    "QualityCheck",
    "QualityOptions",
    "Status",
    "beyond_p",
    "dataset_quality",
    "get_check",
    "worst",
]
