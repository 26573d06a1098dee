"""Whether an ONNX graph, run as the served Bento runs it, answers like the scikit-learn model.

Every test row is compared: ``predict`` labels must be equal and ``predict_proba`` (or regression
``predict``) values within an absolute tolerance; the first differing rows are kept to be shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from workbench.runtime.onnx_model import OnnxModel

TOLERANCE = 1e-6
"""Largest absolute difference allowed between scikit-learn's and the graph's numbers."""
PARITY_CHUNK_ROWS = 4096
"""Test rows compared per call, to bound the memory of the comparison."""
SHOWN_ROWS = 3
"""Differing rows described in a result (the first ones, in test-set order)."""


@dataclass(frozen=True)
class RowDifference:
    """One test row where the graph and scikit-learn disagree."""

    row: int
    """Position in the test rows (0-based)."""
    index: str
    """The test frame's index label of that row."""
    sklearn: str
    """scikit-learn's answer: the label and/or the numbers."""
    onnx: str
    """The graph's answer, in the same form."""
    difference: float | None
    """Largest absolute difference of the numbers on that row (None: labels only)."""

    def describe(self) -> str:
        return f"row {self.row} (index {self.index}): scikit-learn {self.sklearn}, ONNX {self.onnx}"


@dataclass(frozen=True)
class Parity:
    """How a graph's answers compare with scikit-learn's on the test rows."""

    rows_checked: int
    tolerance: float
    labels_checked: bool
    """Classifiers: the labels were compared (regressors have none)."""
    label_mismatches: int = 0
    rows_differing: int = 0
    """Rows whose label differs or whose numbers differ by more than ``tolerance``."""
    max_difference: float | None = None
    """Largest absolute difference of probabilities or regression values (None: labels only)."""
    worst_row: int | None = None
    """Position of the row with ``max_difference``."""
    first_rows: tuple[RowDifference, ...] = ()

    @property
    def holds(self) -> bool:
        return self.rows_differing == 0

    def describe(self) -> str:
        figures = []
        if self.labels_checked:
            mismatches = self.label_mismatches
            figures.append(f"{mismatches} labels differ" if mismatches else "labels equal")
        if self.max_difference is not None:
            at = "" if self.holds or self.worst_row is None else f" at row {self.worst_row}"
            sign = "<=" if self.max_difference <= self.tolerance else ">"
            difference = f"max |difference| {self.max_difference:.3g}{at}"
            figures.append(f"{difference} {sign} tolerance {self.tolerance:g}")
        if self.holds:
            return f"matches on all {self.rows_checked} test rows ({', '.join(figures)})"
        shown = "; ".join(row.describe() for row in self.first_rows)
        return (
            f"differs on {self.rows_differing} of {self.rows_checked} test rows "
            f"({', '.join(figures)}); first: {shown}"
        )


def _answer_text(label: Any, values: NDArray[np.float64] | None) -> str:
    parts = [] if label is None else [repr(label.item() if hasattr(label, "item") else label)]
    if values is not None and np.ndim(values) == 0:
        parts.append(f"{float(values):.9g}")
    elif values is not None:
        parts.append("[" + ", ".join(f"{v:.9g}" for v in np.ravel(values)) + "]")
    return " ".join(parts)


def _row_differences(expected: NDArray[np.float64], got: NDArray[np.float64]) -> NDArray[Any]:
    """Largest absolute difference per row; NaN on both sides is equal, on one side infinite."""
    if expected.shape != got.shape:
        raise ValueError(
            f"the ONNX graph answered shape {got.shape} where scikit-learn answered "
            f"{expected.shape}"
        )
    with np.errstate(invalid="ignore"):
        diff = np.abs(expected - got)
    nan = np.isnan(diff)
    diff[nan] = np.where(np.isnan(expected) & np.isnan(got), 0.0, np.inf)[nan]
    return np.asarray(diff.reshape(len(diff), -1).max(axis=1, initial=0.0))


def check_parity(
    model: Any,
    onnx_bytes: bytes,
    X_test: pd.DataFrame,
    *,
    task: str,
    tolerance: float = TOLERANCE,
    chunk_rows: int = PARITY_CHUNK_ROWS,
) -> Parity:
    """Compare the graph, run by :class:`OnnxModel` as the Bento runs it, with ``model`` on every
    row of ``X_test``: ``predict`` labels must be equal and ``predict_proba`` (or regression
    ``predict``) values within ``tolerance``. Rows go ``chunk_rows`` at a time.

    Raises what loading or running the graph raises (onnxruntime, or OnnxModel's ValueError).
    """
    classifier = task == "classification"
    probabilities = classifier and hasattr(model, "predict_proba")
    compiled = OnnxModel(
        onnx_bytes,
        classes=np.asarray(model.classes_) if classifier else None,
        probabilities=probabilities,
    )
    tally = _Tally(tolerance)
    for start in range(0, len(X_test), chunk_rows):
        chunk = X_test.iloc[start : start + chunk_rows]
        tally.add(
            start,
            chunk,
            _answers(model, chunk, classifier, probabilities),
            _answers(compiled, chunk, classifier, probabilities),
        )
    return Parity(
        rows_checked=len(X_test),
        tolerance=tolerance,
        labels_checked=classifier,
        label_mismatches=tally.label_mismatches,
        rows_differing=tally.rows_differing,
        max_difference=tally.max_difference,
        worst_row=tally.worst_row,
        first_rows=tuple(tally.shown),
    )


_Answer = tuple[NDArray[Any] | None, NDArray[np.float64] | None]
"""Labels (classifiers) and numbers (probabilities or regression values) of some rows."""


def _answers(model: Any, chunk: pd.DataFrame, classifier: bool, probabilities: bool) -> _Answer:
    """What ``model`` (scikit-learn's, or the graph in :class:`OnnxModel`) answers."""
    if isinstance(model, OnnxModel):
        if probabilities:
            labels, numbers = model.predict_both(chunk)
            return labels, numbers
        return (model.predict(chunk), None) if classifier else (None, model.predict(chunk))
    if probabilities:
        numbers = np.asarray(model.predict_proba(chunk), dtype=np.float64)
        return np.asarray(model.predict(chunk)), numbers
    if classifier:
        return np.asarray(model.predict(chunk)), None
    return None, np.asarray(model.predict(chunk), dtype=np.float64)


class _Tally:
    """Differences counted chunk by chunk: mismatched labels, rows out of tolerance, the worst
    difference and the first :data:`SHOWN_ROWS` differing rows."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.label_mismatches = self.rows_differing = 0
        self.max_difference: float | None = None
        self.worst_row: int | None = None
        self.shown: list[RowDifference] = []

    def add(self, start: int, chunk: pd.DataFrame, expected: _Answer, got: _Answer) -> None:
        bad = np.zeros(len(chunk), dtype=bool)
        if expected[0] is not None and got[0] is not None:
            mismatched = np.asarray(expected[0] != got[0], dtype=bool).reshape(len(chunk))
            self.label_mismatches += int(mismatched.sum())
            bad |= mismatched
        diffs = None
        if expected[1] is not None and got[1] is not None:
            diffs = _row_differences(expected[1], got[1])
            bad |= diffs > self.tolerance
            worst = int(diffs.argmax())
            if self.max_difference is None or diffs[worst] > self.max_difference:
                self.max_difference, self.worst_row = float(diffs[worst]), start + worst
        self.rows_differing += int(bad.sum())
        for i in np.flatnonzero(bad)[: SHOWN_ROWS - len(self.shown)].tolist():
            self.shown.append(
                RowDifference(
                    row=start + i,
                    index=repr(chunk.index[i]),
                    sklearn=_answer_text(*_row(expected, i)),
                    onnx=_answer_text(*_row(got, i)),
                    difference=None if diffs is None else float(diffs[i]),
                )
            )


def _row(answer: _Answer, i: int) -> tuple[Any, NDArray[np.float64] | None]:
    labels, numbers = answer
    return (None if labels is None else labels[i]), (None if numbers is None else numbers[i])
