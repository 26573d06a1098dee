"""Which input column each feature of a Pipeline's last step comes from, found by experiment.

A Pipeline's last step sees transformed features (a one-hot column per category, scaled numbers,
a vectorizer's terms), and an explanation must speak of the request's fields. Rather than read
each transformer's private layout, the steps before the last are run on a few training rows with
one input column changed at a time, through every value the column can take (each category, 32
quantiles of a number, missing when the column has gaps, text seen in training): a feature that
moves belongs to that column. The mapping is refused, naming the feature, when a feature moves
with two columns (a PCA, an interaction) or moves in training but with no single column tried
(then the whole model is explained over its input columns instead).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.runtime.explainer import dense
from workbench.schema import Column, InputSchema

BASE_ROWS = 4
"""Training rows each column's values are tried on."""
NUMBER_VALUES = 32
"""Quantiles tried for a number column."""
TEXT_VALUES = 32
CATEGORY_VALUES = 512


class Unmapped(ValueError):
    """The features cannot each be given one input column: why, naming the feature."""


def _values(column: Column, values: pd.Series) -> list[Any]:
    """The values tried for ``column`` (``values``: its training values, as served)."""
    present = values.dropna()
    if column.kind == "category" and column.categories:
        tried: list[Any] = list(column.categories[:CATEGORY_VALUES])
    elif column.kind == "boolean":
        tried = [True, False]
    elif column.kind in ("number", "integer") and len(present):
        quantiles = np.quantile(present.astype(float), np.linspace(0, 1, NUMBER_VALUES))
        tried = sorted(set(quantiles.tolist()))
        if column.kind == "integer":
            tried = sorted({float(round(v)) for v in tried})
    else:
        tried = list(dict.fromkeys(present.tolist()))[:TEXT_VALUES]
    if column.nullable or values.isna().any():
        tried.append(None)
    return tried


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality that counts NaN equal to NaN."""
    equal = a == b
    if a.dtype.kind == "f":
        equal |= np.isnan(a) & np.isnan(b)
    return np.asarray(equal)


def _transform(pre: Any, frame: pd.DataFrame) -> np.ndarray:
    out = np.asarray(dense(pre.transform(frame)))
    return out.astype(np.float64) if out.dtype.kind in "biuf" else out


def feature_sources(pre: Any, sample: pd.DataFrame, schema: InputSchema) -> list[int]:
    """The input column (index in ``schema``) each feature ``pre`` makes comes from, -1 for a
    feature constant over ``sample``; :class:`Unmapped` when there is no such mapping.

    ``sample`` is training rows as the service feeds them to the model (``as_served``).
    """
    base = sample.head(BASE_ROWS).reset_index(drop=True)
    reference = _transform(pre, base)
    width = reference.shape[1]
    moved_by = np.zeros((len(schema.columns), width), dtype=bool)
    for j, column in enumerate(schema.columns):
        tried = _values(column, sample[column.name])
        if not tried:
            continue
        block = base.loc[np.repeat(base.index, len(tried))].reset_index(drop=True)
        block[column.name] = pd.Series(np.tile(np.array(tried, dtype=object), len(base)))
        block = block.astype({column.name: base[column.name].dtype}, errors="ignore")
        if block[column.name].dtype == object:
            block[column.name] = block[column.name].where(block[column.name].notna(), np.nan)
        out = _transform(pre, block)
        repeated = np.repeat(reference, len(tried), axis=0)
        moved_by[j] = ~_same(out, repeated).all(axis=0)
    sources = []
    whole = _transform(pre, sample)
    varies = ~np.asarray(_same(whole, whole[:1]).all(axis=0))
    for feature in range(width):
        owners = np.flatnonzero(moved_by[:, feature]).tolist()
        if len(owners) > 1:
            names = [schema.columns[j].name for j in owners[:4]]
            raise Unmapped(f"transformed feature {feature} depends on several columns {names}")
        if not owners and varies[feature]:
            raise Unmapped(
                f"transformed feature {feature} varies in training but with no single column"
            )
        sources.append(owners[0] if owners else -1)
    return sources


__all__ = ["Unmapped", "feature_sources"]
