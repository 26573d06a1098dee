"""The drift reference of the training inputs: the JSON that ships in the Bento.

The runtime's drift checks (:mod:`workbench.runtime.drift`) compare live windows, files and
scored batches with it; the summaries are built by the runtime's own functions
(:mod:`workbench.runtime.sketch`) so that both sides turn values into keys the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from workbench.errors import DataError
from workbench.runtime.settings import DRIFT_REFERENCE_FILE
from workbench.runtime.sketch import (
    COUNTED_KINDS,
    KINDS,
    NUMERIC_KINDS,
    REFERENCE_FORMAT,
    count_values,
    finite_numbers,
    numeric_summary,
    text_lengths,
)
from workbench.schema import MAX_CATEGORIES, InputSchema

DRIFT_REFERENCE = DRIFT_REFERENCE_FILE.removesuffix(".json")
"""The stage record ``drift_reference.json`` (it ships in the Bento under the same name)."""


def drift_kinds(schema: InputSchema) -> dict[str, str]:
    """The drift kind of each input column: the schema's kind (``text`` columns are tested by
    their string lengths and missing share), or ``text`` for a pandas-category column with more
    distinct values than the schema lists."""
    return {
        c.name: "text" if c.kind == "category" and c.categories is None else c.kind
        for c in schema.columns
    }


def build_reference(
    frame: pd.DataFrame, kinds: Mapping[str, str], *, quantiles: int = 1000
) -> dict[str, Any]:
    """The JSON-ready drift reference of ``frame``'s columns named in ``kinds`` (in that order).

    ``kinds``: column -> ``"number"``, ``"integer"``, ``"boolean"``, ``"category"`` (the schema's
    kinds) or ``"text"``. A category column with more than 1,000 distinct values becomes text;
    a frame of at most 1,000 rows cannot have that many, so pass ``"text"`` for free text and
    identifiers there (as a category, every window value would be unseen and the column would
    always drift). The result::

        {"format": "workbench-drift-reference/1", "rows": N, "quantiles": Q,
         "columns": {name: {"kind": ..., "rows": N, "missing": m, "missing_share": m / N,
                            <summary>}}}

    where ``<summary>`` is ``"sketch"`` (numbers, integers), ``"counts"`` (booleans, categories:
    value as text -> count, most frequent first, all of them) or ``"lengths"`` (text: the sketch
    of the string lengths). A sketch (None when the column has no value) is ``{"points": [...],
    "tails": {"low": [...], "high": [...]} | None, "mean": ..., "std": ..., "counts": {...} |
    None}``: every value sorted when there are at most ``Q + 1`` (``tails`` None), else the
    ``Q + 1`` quantiles from the minimum to the maximum plus ``ceil(log2(n / Q))`` finer
    quantiles in each end cell; ``counts`` for at most 5 distinct values (see
    :func:`workbench.runtime.sketch.numeric_summary`).

    Deterministic: the same frame gives the same JSON (``json.dumps`` of the result). Cost: one
    sort per numeric or text column, one value count per category column (O(n log n) overall).

    **Size.** A numeric or text column holds ``min(n, Q + 1)`` floats, plus 2 x 5 tail values
    at 20,000 rows (2 x 10 at a million): about 20 bytes each as JSON, so 19-21 KB per
    continuous column at the default ``Q = 1000`` (5-6 KB for small integers and text
    lengths), plus about 100 bytes of fields. A category column holds its distinct values with
    their counts: their text plus about 10 bytes each (measured in ``benchmarks/drift.py``).

    **Privacy.** Per column only, marginal statistics: fine quantiles including the minimum and
    maximum, and in the tails quantiles close to the next few extreme values (the last ones
    fall between the two smallest and the two largest values); every value, sorted, for columns
    of at most ``Q + 1`` values; the mean and standard deviation; the count of every category
    value (a value seen once shows as count 1). Nothing links values across columns (no row
    can be rebuilt) and no raw rows are kept; text columns keep only string lengths, never
    their content. Do not ship it where the training inputs' marginal distributions, or their
    extremes, are themselves confidential.
    """
    unknown = {c: k for c, k in kinds.items() if k not in KINDS}
    if unknown:
        raise ValueError(f"unknown column kinds {unknown}; expected one of {KINDS}")
    absent = [c for c in kinds if c not in frame.columns]
    if absent:
        raise DataError(f"drift reference: the frame lacks the columns {absent[:5]}")
    rows = len(frame)
    columns = {
        str(name): _column(frame[name], kind, rows, quantiles) for name, kind in kinds.items()
    }
    return {"format": REFERENCE_FORMAT, "rows": rows, "quantiles": quantiles, "columns": columns}


def _column(series: pd.Series, kind: str, rows: int, quantiles: int) -> dict[str, Any]:
    if kind in NUMERIC_KINDS:
        values = finite_numbers(series)  # +-inf counts as missing, as in the runtime's windows
        return {
            "kind": kind,
            **_missing(rows, rows - len(values)),
            "sketch": numeric_summary(values, quantiles),
        }
    present = series[series.notna()]
    head = _missing(rows, rows - len(present))
    if kind in COUNTED_KINDS:
        counts = count_values(kind, present)
        if kind == "boolean" or len(counts) <= MAX_CATEGORIES:
            # Most frequent first, ties by value: readable and independent of row order.
            ordered = sorted(counts.items(), key=_by_count)
            return {"kind": kind, **head, "counts": dict(ordered)}
    return {"kind": "text", **head, "lengths": numeric_summary(text_lengths(present), quantiles)}


def _missing(rows: int, missing: int) -> dict[str, Any]:
    return {"rows": rows, "missing": missing, "missing_share": missing / rows if rows else 0.0}


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
