"""The model's input schema: inferred from the training frame, checked against new frames.

The schema is the contract between the stages: validation infers it, packaging turns it into the
typed request model of the service, launching uses it to build requests.
"""

from __future__ import annotations

import keyword
import math
import re
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from workbench.errors import DataError

Kind = Literal["number", "integer", "boolean", "category"]
MAX_CATEGORIES = 1000


class Column(BaseModel):
    """One input column as the model saw it in training."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Kind
    dtype: str
    nullable: bool
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None

    @property
    def field(self) -> str:
        """A valid Python identifier for this column (the request model's attribute name)."""
        ident = re.sub(r"\W", "_", self.name).strip("_") or "column"
        if ident[0].isdigit() or keyword.iskeyword(ident):
            ident = f"f_{ident}"
        return ident


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
        it saw in training: categories as object (or category), booleans as bool (object when
        nullable), nullable numbers as float64 (NaN has no integer form)."""
        out = {}
        for col in self.columns:
            if col.kind == "category":
                out[col.name] = "category" if col.dtype == "category" else "object"
            elif col.kind == "boolean":
                out[col.name] = "object" if col.nullable else "bool"
            elif col.nullable:
                out[col.name] = "float64"
            else:
                out[col.name] = col.dtype
        return out

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


def _kind(series: pd.Series) -> Kind:
    """The column's kind, seeing through what a CSV reader does to missing values.

    A column of whole numbers with gaps is read as float (NaN has no integer form): it is an
    ``integer`` column whose dtype stays float. A column of True/False with gaps is read as
    object: it is ``boolean``. Pandas categoricals and strings are ``category``.
    """
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if isinstance(series.dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_float_dtype(series):
        present = series.dropna().to_numpy(dtype=float, na_value=np.nan)
        gaps = 0 < len(present) < len(series)
        if gaps and np.all(np.isfinite(present)) and np.array_equal(present, np.round(present)):
            return "integer"
        return "number"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    if series.dtype == object:
        seen = series.dropna().unique()
        if len(seen) and all(isinstance(v, (bool, np.bool_)) for v in seen):
            return "boolean"
    return "category"


def infer_schema(frame: pd.DataFrame) -> InputSchema:
    """Describe every column of ``frame`` (features only: drop the target first).

    Ranges (``min``/``max``) are over the values seen; ``categories`` lists the distinct values
    seen as text (``None`` when there are more than :data:`MAX_CATEGORIES`); ``dtype`` is the
    dtype as loaded, so an integer column with gaps read from CSV says ``float64``.
    """
    columns = []
    for name in frame.columns:
        series = frame[name]
        kind = _kind(series)
        extra: dict[str, Any] = {}
        if kind in ("number", "integer") and series.notna().any():
            extra = {"min": float(series.min()), "max": float(series.max())}
        if kind == "category":
            seen = sorted({str(v) for v in series.dropna().unique()})
            extra = {"categories": seen if len(seen) <= MAX_CATEGORIES else None}
        columns.append(
            Column(
                name=str(name),
                kind=kind,
                dtype=str(series.dtype),
                nullable=bool(series.isna().any()),
                **extra,
            )
        )
    return InputSchema(columns=columns)


def check_columns(frame: pd.DataFrame, expected: list[str], *, what: str) -> None:
    """Raise :class:`DataError` when ``frame`` lacks or adds columns relative to ``expected``."""
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        raise DataError(
            f"{what}: columns do not match what the model was fitted on ({'; '.join(parts)}); "
            "use the same feature columns as in training"
        )
