"""The model's input schema: inferred from the training frame, checked against new frames.

The schema is the contract between the stages: validation infers it, packaging turns it into the
typed request model of the service, launching uses it to build requests.

**Text or category.** A string column is ``text`` (free text, identifiers: typed as a string in
the service, no training value written anywhere) rather than a ``category`` when

1. the model feeds it to a text vectorizer (``TfidfVectorizer``, ``CountVectorizer``,
   ``HashingVectorizer``) through a ``ColumnTransformer``: the pipeline wins over the values, so
   a vectorized column is text even when the training set repeats a few sentences, and a column
   the model one-hot, ordinal or target encodes is a category however many values it has; else
2. its non-missing training values hold more than :data:`MAX_CATEGORIES` distinct values, or at
   least :data:`TEXT_MIN_DISTINCT` distinct values that are more than :data:`TEXT_DISTINCT_SHARE`
   of the non-missing values (most values are one-offs: names, identifiers, sentences).

A pandas ``category`` dtype is the user's own declaration and stays a category unless the model
vectorizes it. **Dates and times** are refused (:func:`check_supported`): there is no faithful
way to type them in a request for every way a model may have been fed them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataError
from workbench.runtime.columns import Column, InputSchema, Kind

__all__ = [
    "MAX_CATEGORIES",
    "Column",
    "InputSchema",
    "Kind",
    "check_columns",
    "check_supported",
    "infer_schema",
    "pipeline_encoders",
]
MAX_CATEGORIES = 1000
"""A string column with more distinct training values than this is text, not a category (one
the model encodes, or of pandas ``category`` dtype, stays a category without its values listed)."""
TEXT_MIN_DISTINCT = 20
TEXT_DISTINCT_SHARE = 0.5
"""A string column with at least :data:`TEXT_MIN_DISTINCT` distinct values making up more than
this share of its non-missing training values is text (a category's values repeat)."""
#: An ISO-8601 date or date-time as text (what a CSV holds for a datetime column).
ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?"
)
_DATE_VALUES = ("datetime", "datetime64", "date", "time", "timedelta", "timedelta64", "period")


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


def _text_reason(series: pd.Series, encoder: tuple[Kind, str] | None) -> str | None:
    """Why a string column is text (see the module docstring), or None for a category."""
    if encoder is not None:
        kind, name = encoder
        return f"the model feeds it to a {name}" if kind == "text" else None
    if isinstance(series.dtype, pd.CategoricalDtype):
        return None
    present = series.dropna()
    distinct = int(present.nunique())
    if distinct > MAX_CATEGORIES or (
        distinct >= TEXT_MIN_DISTINCT and distinct > TEXT_DISTINCT_SHARE * len(present)
    ):
        return f"{distinct:,} distinct values in {len(present):,} non-missing training values"
    return None


def _date_example(series: pd.Series) -> Any:
    """A value showing that ``series`` holds dates or times, or None when it does not."""
    dtype = series.dtype
    present = series.dropna()
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    ):
        return str(present.iloc[0]) if len(present) else str(dtype)
    if (
        not len(present)
        or pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    ):
        return None
    categorical = isinstance(dtype, pd.CategoricalDtype)
    values = pd.Series(present.cat.categories) if categorical else present
    held = pd.api.types.infer_dtype(values, skipna=True)
    if held in _DATE_VALUES:
        return str(values.iloc[0])
    if held != "string" or not values.head(100).str.fullmatch(ISO_DATE).all():  # cheap first
        return None
    distinct = pd.Series(pd.unique(np.asarray(values, dtype=object)), dtype=object)
    return str(distinct.iloc[0]) if distinct.str.fullmatch(ISO_DATE).all() else None


def check_supported(frame: pd.DataFrame, *, what: str) -> None:
    """Raise :class:`DataError` naming every date or time column of ``frame``.

    A column is one when its dtype is datetime, timedelta or period, when it holds date/time
    objects, or when every non-missing value is an ISO-8601 date or date-time string (a
    datetime column read from CSV). Such a column is neither a number nor a category: typed as
    a category it would refuse every future date, and the model would see it as text.
    """
    found = {}
    for name in frame.columns:
        example = _date_example(frame[name])
        if example is not None:
            found[str(name)] = example
    if found:
        named = ", ".join(f"{name!r} (e.g. {value!r})" for name, value in list(found.items())[:5])
        raise DataError(
            f"{what}: {'column' if len(found) == 1 else 'columns'} {named} "
            f"{'holds' if len(found) == 1 else 'hold'} dates or times, which workbench cannot "
            "type in a request; derive numeric features from them before training (e.g. year, "
            "month, day of week, days since a fixed date), fit the model on those columns and "
            "drop the date columns from the data"
        )


def pipeline_encoders(model: Any) -> dict[str, tuple[Kind, str]]:
    """Input columns ``model`` feeds to a text vectorizer or a categorical encoder through a
    ColumnTransformer: column -> ``("text", "TfidfVectorizer")``, ``("category",
    "OneHotEncoder")``... (the kind it makes the column, and the class that decides it; a
    vectorizer wins over an encoder reading the same column). Columns given by position, a
    boolean mask or a slice are resolved against the names the transformer was fitted on."""
    from sklearn.base import BaseEstimator
    from sklearn.compose import ColumnTransformer

    parts = [model, *model.get_params(deep=True).values()] if hasattr(model, "get_params") else []
    found: dict[str, tuple[Kind, str]] = {}
    for part in parts:
        if not isinstance(part, ColumnTransformer) or not hasattr(part, "transformers_"):
            continue
        names = [str(n) for n in getattr(part, "feature_names_in_", [])]
        for _, transformer, columns in part.transformers_:
            if not isinstance(transformer, BaseEstimator):
                continue  # "drop", "passthrough"
            role = _role(transformer)
            for column in _column_names(columns, names) if role else []:
                if role is not None and found.get(column, ("",))[0] != "text":
                    found[column] = role
    return found


def _role(transformer: Any) -> tuple[Kind, str] | None:
    """What the first vectorizer (else encoder) inside ``transformer`` makes of its columns."""
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

    inner = [transformer, *transformer.get_params(deep=True).values()]
    kinds: tuple[tuple[Kind, tuple[type, ...]], ...] = (
        ("text", (CountVectorizer, HashingVectorizer)),
        ("category", (OneHotEncoder, OrdinalEncoder, TargetEncoder)),
    )
    for kind, classes in kinds:
        match = next((p for p in inner if isinstance(p, classes)), None)
        if match is not None:
            return kind, type(match).__name__
    return None


def _column_names(columns: Any, names: list[str]) -> list[str]:
    """A ColumnTransformer's column selection as names (``names``: those it was fitted on)."""
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, int | np.integer):
        return [names[int(columns)]] if names else []
    if isinstance(columns, slice):
        if isinstance(columns.start, str) or isinstance(columns.stop, str):  # by name, inclusive
            first = names.index(columns.start) if columns.start is not None else 0
            last = names.index(columns.stop) + 1 if columns.stop is not None else len(names)
            return names[first:last]
        return names[columns]
    selected = list(np.asarray(columns).tolist()) if not callable(columns) else []
    if selected and all(isinstance(c, bool) for c in selected):
        return [n for n, keep in zip(names, selected, strict=False) if keep]
    return [names[c] if isinstance(c, int) and names else str(c) for c in selected]


def infer_schema(
    frame: pd.DataFrame, *, encoders: Mapping[str, tuple[Kind, str]] | None = None
) -> InputSchema:
    """Describe every column of ``frame`` (features only: drop the target first).

    ``encoders``: the vectorizer or encoder the model feeds each column to
    (:func:`pipeline_encoders`), which decides text or category whatever the values. Ranges
    (``min``/``max``) are over the values seen; ``categories`` lists the distinct values of a
    category column as text (``None`` when there are more than :data:`MAX_CATEGORIES`, which
    only a pandas ``category`` dtype or an encoded column can have: any other string column
    with that many is text); ``dtype`` is the dtype as loaded, so an integer column with gaps
    read from CSV says ``float64``. Date and time columns are refused (:func:`check_supported`).
    """
    check_supported(frame, what="input schema")
    encoders = encoders or {}
    columns = []
    for name in frame.columns:
        series = frame[name]
        kind = _kind(series)
        extra: dict[str, Any] = {}
        if kind in ("number", "integer") and series.notna().any():
            extra = {"min": float(series.min()), "max": float(series.max())}
        if kind == "category":
            reason = _text_reason(series, encoders.get(str(name)))
            if reason is not None:
                kind, extra = "text", {"text_reason": reason}
            else:
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
