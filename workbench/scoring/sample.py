"""What the drift report of a scored file keeps of it: bounded, mergeable, the same in any order.

Counted columns (boolean, category) keep exact counts (:class:`ColumnWindow`, merged exactly).
Every other column keeps a uniform sample of at most ``size`` rows: each row draws a random key
(seeded by its row number, so a row draws the same key in process and on any worker) and the
``size`` rows with the smallest keys are kept (bottom-k sampling: merging two samples and keeping
the smallest keys gives the sample of the union). Row, missing and +-inf counts stay exact. So a
file of any length costs ``size`` values per column, and chunks and workers merge in any order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.runtime.sketch import COUNTED_KINDS, NUMERIC_KINDS, ColumnWindow

DEFAULT_SAMPLE_ROWS = 100_000
SEED = 20261202


@dataclass
class DriftSample:
    """The rows of a scored file the drift tests need, per column (see the module)."""

    kinds: dict[str, str]
    size: int = DEFAULT_SAMPLE_ROWS
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    sampled: dict[str, np.ndarray] = field(default_factory=dict)
    counted: dict[str, ColumnWindow] = field(default_factory=dict)
    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)

    def add(self, frame: pd.DataFrame, row_numbers: np.ndarray) -> None:
        """Take in scored rows (``row_numbers``: their input-wide numbers, for the keys)."""
        if not len(frame):
            return
        chunk = DriftSample(self.kinds, self.size)
        chunk.rows = len(frame)
        keys = _keys(row_numbers)
        if len(self.keys) >= self.size:  # only keys below the largest kept one can get in
            keep = np.flatnonzero(keys < self.keys.max())
        else:
            keep = np.arange(len(keys))
        if len(keep) > self.size:
            keep = keep[np.argpartition(keys[keep], self.size - 1)[: self.size]]
        chunk.keys = keys[keep]
        for name, kind in self.kinds.items():
            values = frame[name]
            if kind in COUNTED_KINDS:
                chunk.counted[name] = ColumnWindow.of(kind, values)
                continue
            if kind in NUMERIC_KINDS:  # missing: no finite value, +-inf apart (as ColumnWindow)
                numbers = pd.to_numeric(values, errors="coerce").to_numpy(
                    np.float64, na_value=np.nan
                )
                chunk.missing[name] = int((~np.isfinite(numbers)).sum())
                chunk.nonfinite[name] = int(np.isinf(numbers).sum())
            else:
                chunk.missing[name] = int(values.isna().sum())
            chunk.sampled[name] = values.to_numpy()[keep]
        self.merge(chunk)

    def merge(self, other: DriftSample) -> None:
        """Take in another sample's rows (another chunk, another worker)."""
        self.rows += other.rows
        for name, count in other.missing.items():
            self.missing[name] = self.missing.get(name, 0) + count
        for name, count in other.nonfinite.items():
            self.nonfinite[name] = self.nonfinite.get(name, 0) + count
        for name, window in other.counted.items():
            counted = self.counted.get(name)
            self.counted[name] = window if counted is None else counted.merge(window)
        if not len(other.keys) and set(other.sampled) <= set(self.sampled):
            return
        keys = np.concatenate([self.keys, other.keys])
        if len(keys) > self.size:  # the smallest keys, in no particular order
            keep = np.argpartition(keys, self.size - 1)[: self.size]
        else:
            keep = np.arange(len(keys))
        for name in other.sampled:
            mine = self.sampled.get(name)
            both = (
                other.sampled[name] if mine is None else np.concatenate([mine, other.sampled[name]])
            )
            self.sampled[name] = both[keep]
        self.keys = keys[keep]

    def windows(self) -> dict[str, ColumnWindow]:
        """Column -> window for :func:`workbench.runtime.drift.dataset_drift`: exact counts of
        rows and missing values, the sampled values."""
        out: dict[str, ColumnWindow] = dict(self.counted)
        for name, values in self.sampled.items():
            window = ColumnWindow.of(self.kinds[name], values)
            out[name] = ColumnWindow(
                window.kind,
                self.rows,
                self.missing.get(name, 0),
                window.values,
                window.counts,
                self.nonfinite.get(name, 0),
            )
        return out


def _keys(row_numbers: np.ndarray) -> np.ndarray:
    """A uniform key in [0, 1) per row, a function of the row number alone."""
    mixed = (row_numbers.astype(np.uint64) + np.uint64(SEED)) * np.uint64(0x9E3779B97F4A7C15)
    mixed ^= mixed >> np.uint64(31)
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(29)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def sample_kinds(reference: Mapping[str, Any], columns: list[str]) -> dict[str, str]:
    """Input column -> kind, for the columns the reference has."""
    specs = reference.get("columns", {})
    return {name: str(specs[name]["kind"]) for name in columns if name in specs}
