"""The reference profile of the training inputs: what "normal" input looks like, for drift checks.

Numbers get quantile bins (edges at the deciles of the training values, so each bin held about a
tenth of the rows) and the share of rows in each; categories and booleans get the share of each
value (the most frequent ones, 20 by default, the rest summed as ``other``); text columns (free
text, identifiers) get the same quantile bins over their string lengths, never their values.
Every column records its share of missing values. A later drift check bins new inputs with the
same edges and compares the shares. Building it (:mod:`workbench.validation.profile`) is linear
in the rows.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ColumnProfile(BaseModel):
    """One training column: missing share, and bins (numbers) or value shares (categories)."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: str
    missing: float
    """Share of rows with no value (0..1)."""
    edges: list[float] | None = None
    """Bin edges, increasing; bin ``i`` is ``[edges[i], edges[i+1])``, the last one closed (for a
    text column, edges of the string lengths in characters)."""
    shares: list[float] | None = None
    """Share of the non-missing rows in each bin (sums to 1)."""
    values: dict[str, float] | None = None
    """Share of the non-missing rows holding each of the most frequent values (as text)."""
    other: float | None = None
    """Share of the non-missing rows holding any other value."""


class ReferenceProfile(BaseModel):
    """The training inputs, column by column, in the model's column order."""

    model_config = ConfigDict(frozen=True)

    rows: int
    columns: list[ColumnProfile]

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)
