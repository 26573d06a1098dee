"""Input columns: the five kinds in one table, the value type of each in a request row, and the
column model of the input schema.

:data:`COLUMN_KINDS` is the one place a kind's rules live: its row value type (what a request
accepts; BentoML documents the request body from it, so the OpenAPI schema follows), the pandas
dtype a request is cast to, how drift sketches summarise it, and which Parquet types can hold it.
``workbench.schema`` (inference), packaging (the generated ``Row`` model), the runtime (casts,
sketches) and batch scoring (the Parquet check) read it.

What each value type accepts (deliberately):

- ``number``: a JSON number (an integer is taken as a float); never a string, a boolean,
  ``NaN`` or ``Infinity`` (send ``null`` for a missing value where the column allows it). A
  column with a training range also refuses values beyond :func:`number_bound` (a million
  times the training values' order of magnitude): past it a model's arithmetic overflows
  (``1.7e308`` through a scaler gives non-finite probabilities), and the OpenAPI document
  states the bound, so every value it calls valid is answered.
- ``integer``: a JSON integer within int64, or a number with no fraction (``3.0``, as pandas writes
  an integer column with gaps); never ``3.5``, ``"3"`` or ``true``.
- ``boolean``: JSON ``true`` or ``false`` only; ``"yes"``, ``"true"``, ``1`` are refused.
- ``category``: a JSON string of at most :data:`MAX_CATEGORY_CHARS` characters (an unseen value
  is echoed in the row's warnings and listed in the monitoring report, so it is bounded; far
  below text's bound, so a body of category values stays far below the body limit); a number
  is refused (send ``"1"`` for the category ``1``).
- ``text``: a JSON string of at most :data:`MAX_TEXT_CHARS` characters (free text, identifiers);
  a number is refused. Any string is passed to the model as it is: there is no list of values
  to check it against, and so no "unseen" warning or replacement.

A nullable column also takes ``null`` or may be left out. Anything else is a 400 naming the row
and the field.
"""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TEXT_CHARS = 100_000
"""Longest value of a ``text`` field (characters); a longer one is a 400 naming the field."""
MAX_CATEGORY_CHARS = 1_000
"""Longest value of a ``category`` field (characters); a longer one is a 400 naming the field.
One escaped astral character is 12 bytes of JSON: a few values at text's bound pass the 4 MiB
body limit, which a fuzzer's invalid (over-long) value then meets as 413 instead of 400."""
RANGE_FACTOR_DIGITS = 6
"""A number column takes values up to ``10**RANGE_FACTOR_DIGITS`` times the order of magnitude
of its training values (:func:`number_bound`)."""


MAX_BOUND_DIGITS = 300
"""Past ``1e300`` a bound means nothing (training values that large): no bound then."""


def number_bound(low: float | None, high: float | None) -> float | None:
    """The largest magnitude a number column with training range ``low``..``high`` takes: the
    next power of ten at or above its largest training magnitude (at least 1), times
    ``10**RANGE_FACTOR_DIGITS``; None without a range or past ``1e300``. A power of ten keeps
    the generated source (and so the Bento's version) stable and the bound readable."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    magnitude = max(abs(low), abs(high), 1.0)
    digits = math.ceil(math.log10(magnitude)) + RANGE_FACTOR_DIGITS
    return float(10**digits) if digits <= MAX_BOUND_DIGITS else None


def _whole(value: Any) -> Any:
    """``3.0`` -> ``3``; anything else is left to the integer check (which refuses it)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Integer = Annotated[int, Field(strict=True, ge=INT64_MIN, le=INT64_MAX), BeforeValidator(_whole)]
Boolean = Annotated[bool, Field(strict=True)]
Category = Annotated[str, Field(strict=True, max_length=MAX_CATEGORY_CHARS)]
Text = Annotated[str, Field(strict=True, max_length=MAX_TEXT_CHARS)]

Kind = Literal["number", "integer", "boolean", "category", "text"]


@dataclass(frozen=True)
class ColumnKind:
    """What one kind of input column is, wherever a column is handled."""

    name: Kind
    row_type: Any
    """The request row's value type (:data:`Number`, ...)."""
    type_name: str
    """Its name, as the generated ``service.py`` imports it from ``workbench_runtime``."""
    dtype: str | None
    """The pandas dtype a request's column is cast to (None: the training dtype)."""
    nullable_dtype: str
    """The same for a nullable column (NaN has no integer form, None no bool one)."""
    kept_dtypes: tuple[str, ...]
    """Training dtypes a request keeps whatever else (a pandas ``category``)."""
    sketch: Literal["numbers", "counts", "lengths"]
    """How drift summaries keep it: a quantile sketch of the numbers, counts of the values, or a
    sketch of the string lengths (:mod:`.sketch`)."""
    parquet: tuple[str, ...]
    """The ``pyarrow.types`` predicates of the Parquet column types that hold it (a dictionary
    column is judged by its values; an all-null column holds any kind)."""
    parquet_values: str
    """What those types hold, as a message names them."""

    def request_dtype(self, dtype: str, *, nullable: bool) -> str:
        """The dtype of a request column of this kind whose training dtype was ``dtype``."""
        if dtype in self.kept_dtypes:
            return dtype
        if nullable:
            return self.nullable_dtype
        return self.dtype or dtype


_NUMERIC = ("is_integer", "is_floating")
_STRING = ("is_string", "is_large_string")
COLUMN_KINDS: dict[str, ColumnKind] = {
    kind.name: kind
    for kind in (
        ColumnKind("number", Number, "Number", None, "float64", (), "numbers", _NUMERIC, "numbers"),
        ColumnKind(
            "integer", Integer, "Integer", None, "float64", (), "numbers", _NUMERIC, "integers"
        ),
        ColumnKind(
            "boolean",
            Boolean,
            "Boolean",
            "bool",
            "object",
            (),
            "counts",
            ("is_boolean",),
            "booleans",
        ),
        ColumnKind(
            "category",
            Category,
            "Category",
            "object",
            "object",
            ("category",),
            "counts",
            _STRING,
            "text (a string column)",
        ),
        ColumnKind(
            "text",
            Text,
            "Text",
            "object",
            "object",
            (),
            "lengths",
            _STRING,
            "text (a string column)",
        ),
    )
}
"""Every column kind, by name."""


class Column(BaseModel):
    """One input column as the model saw it in training."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Kind
    dtype: str
    nullable: bool
    categories: list[str] | None = None
    """The distinct values seen (``category`` only; None above ``workbench.schema``'s
    ``MAX_CATEGORIES``)."""
    min: float | None = None
    max: float | None = None
    text_reason: str | None = None
    """Why a ``text`` column is text (the vectorizer, or its distinct values); never a value."""

    @property
    def field(self) -> str:
        """A valid Python identifier for this column (the request model's attribute name)."""
        ident = re.sub(r"\W", "_", self.name).strip("_") or "column"
        if ident[0].isdigit() or keyword.iskeyword(ident):
            ident = f"f_{ident}"
        return ident

    @property
    def request_dtype(self) -> str:
        return COLUMN_KINDS[self.kind].request_dtype(self.dtype, nullable=self.nullable)


class InputSchema(BaseModel):
    """Columns in the order the model expects them."""

    model_config = ConfigDict(frozen=True)

    columns: list[Column]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def fields(self) -> dict[str, str]:
        """Column name -> unique Python identifier."""
        out: dict[str, str] = {}
        taken: set[str] = set()
        for col in self.columns:
            ident, n = col.field, 2
            while ident in taken:
                ident, n = f"{col.field}_{n}", n + 1
            taken.add(ident)
            out[col.name] = ident
        return out

    def request_dtypes(self) -> dict[str, str]:
        """The dtype each column of a request is cast to in the service, so the model sees what
        it saw in training (:meth:`ColumnKind.request_dtype`)."""
        return {col.name: col.request_dtype for col in self.columns}

    def as_served(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame``'s columns in the model's order, cast as the service casts a request, so a
        compiled model is converted and checked on the inputs it will be fed. A column that
        cannot take its dtype (values the service would refuse) is left as it is."""
        served = frame[self.names].copy()
        for name, dtype in self.request_dtypes().items():
            try:
                served = served.astype({name: dtype})
            except (TypeError, ValueError):
                continue
            if dtype == "object":
                served[name] = served[name].where(served[name].notna(), np.nan)
        return served

    def to_records(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Rows of ``frame`` as JSON-ready dicts keyed by column name (NaN becomes null)."""
        rows = frame[self.names].astype(object).to_dict(orient="records")
        return [{str(k): _jsonable(v) for k, v in row.items()} for row in rows]


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


__all__ = [
    "COLUMN_KINDS",
    "MAX_CATEGORY_CHARS",
    "MAX_TEXT_CHARS",
    "RANGE_FACTOR_DIGITS",
    "Boolean",
    "Category",
    "Column",
    "ColumnKind",
    "InputSchema",
    "Integer",
    "Kind",
    "Number",
    "Text",
    "number_bound",
]
