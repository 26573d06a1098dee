"""Build the reference profile of the training inputs (see :mod:`workbench.results.profile`).

Linear in the rows: one quantile pass per number column (and per text column, over the string
lengths), one value count per category column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.results.profile import ColumnProfile, ReferenceProfile
from workbench.runtime.sketch import text_lengths
from workbench.schema import InputSchema

BINS = 10
TOP_VALUES = 20


def _numeric(name: str, kind: str, series: pd.Series, missing: float, bins: int) -> ColumnProfile:
    values = series.to_numpy(dtype=float, na_value=np.nan)
    values = values[np.isfinite(values)]
    if not len(values):
        return ColumnProfile(name=name, kind=kind, missing=missing)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) == 1:  # a constant column: one bin holding everything
        return ColumnProfile(
            name=name, kind=kind, missing=missing, edges=[edges[0], edges[0]], shares=[1.0]
        )
    counts, _ = np.histogram(values, bins=edges)
    shares = counts / counts.sum()
    return ColumnProfile(
        name=name,
        kind=kind,
        missing=missing,
        edges=[float(e) for e in edges],
        shares=[round(float(s), 6) for s in shares],
    )


def _categorical(
    name: str, kind: str, series: pd.Series, missing: float, top: int
) -> ColumnProfile:
    counts = series.value_counts(dropna=True)  # count first, then name: O(rows), not O(rows) strs
    counts.index = counts.index.map(str)
    counts = counts.groupby(level=0).sum().sort_values(ascending=False, kind="stable")
    total = int(counts.sum())
    if not total:
        return ColumnProfile(name=name, kind=kind, missing=missing)
    head = counts.iloc[:top]
    return ColumnProfile(
        name=name,
        kind=kind,
        missing=missing,
        values={str(k): round(int(v) / total, 6) for k, v in head.items()},
        other=round(int(counts.iloc[top:].sum()) / total, 6),
    )


def build_profile(
    frame: pd.DataFrame, schema: InputSchema, *, bins: int = BINS, top: int = TOP_VALUES
) -> ReferenceProfile:
    """Profile the columns of ``frame`` named in ``schema`` (the training features)."""
    columns = []
    rows = len(frame)
    for col in schema.columns:
        series = frame[col.name]
        missing = round(float(series.isna().mean()), 6) if rows else 0.0
        if col.kind in ("number", "integer"):
            columns.append(_numeric(col.name, col.kind, series, missing, bins))
        elif col.kind == "text":  # string lengths only: no value of a text column is kept
            lengths = pd.Series(text_lengths(series[series.notna()]))
            columns.append(_numeric(col.name, col.kind, lengths, missing, bins))
        else:
            columns.append(_categorical(col.name, col.kind, series, missing, top))
    return ReferenceProfile(rows=rows, columns=columns)
