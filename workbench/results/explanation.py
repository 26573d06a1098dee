"""What the validate stage's explanations found: the method, and the contributions of the input
columns on a sample of test rows (the method ``POST /explain`` uses when the Bento explains)."""

from __future__ import annotations

from typing import Any

from workbench.results.base import Result


class Contribution(Result):
    column: str
    contribution: float


class RowExplanation(Result):
    """One test row explained: the prediction, the explained output, base value and the largest
    contributions (the others summed as ``(others)``)."""

    row: int
    """The row's position in the test data."""
    prediction: Any
    output: str
    value: float
    base_value: float
    contributions: list[Contribution]


class ColumnImportance(Result):
    """The mean |contribution| of a column over the explained rows (the global summary)."""

    column: str
    mean_abs: float


class ExplanationResult(Result):
    """The explanation method chosen for the model and what it found on the test sample."""

    method: str
    output: str
    exact: bool
    reason: str
    library: str
    sample_size: int | None = None
    """Model evaluations behind each contribution (sampled methods); None: exact."""
    base_values: list[float] = []
    rows: int = 0
    additivity_error: float = 0.0
    """The largest |output - base value - sum of contributions| over the explained rows,
    relative to max(1, |output|)."""
    seconds: float = 0.0
    summary: list[ColumnImportance] = []
    """Every column by mean |contribution|, largest first."""
    examples: list[RowExplanation] = []
    """The explained rows (the first few are shown; the panel picks any)."""
    error: str | None = None
    """Why the model could not be explained (then the rest is empty)."""

    def example(self, row: int) -> RowExplanation:
        """The explained test row at position ``row`` (``KeyError`` when it was not explained)."""
        for example in self.examples:
            if example.row == row:
                return example
        raise KeyError(row)


__all__ = ["ColumnImportance", "Contribution", "ExplanationResult", "RowExplanation"]
