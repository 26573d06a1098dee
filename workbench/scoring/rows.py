"""The service's row rules over a chunk of a file: column checks, the row model for the rest.

A file's column is checked as a whole against its kind (number, integer, boolean, category) and
nullability, as the Bento's model card gives them. Values that obviously pass are taken as they
are; every value in doubt (a null where none is allowed, an infinite number, a fraction for an
integer, text where a number belongs, a kind this module does not know) sends its row through the
Bento's own pydantic ``Row`` model, which accepts it or refuses it with the messages of the
service's 400s (``field: msg``). So a row is refused here exactly when the service would refuse it
as a request row, and it costs the row model only for the rows in doubt.

Conventions of files (where JSON has its own): a missing value is a null or a NaN; a CSV's cells
are text, so ``1.5`` in a CSV is the number 1.5 and ``True``/``false`` the booleans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from workbench.runtime.columns import MAX_CATEGORY_CHARS, number_bound

INT64_LIMIT = 2.0**63
TRUE_TEXT = frozenset({"true", "True", "TRUE"})
FALSE_TEXT = frozenset({"false", "False", "FALSE"})


@dataclass(frozen=True)
class CheckedRows:
    """A chunk's rows the row model accepts (their values) and those it refuses (why)."""

    values: pd.DataFrame
    """The accepted rows' input columns, holding what the row model's fields hold."""
    accepted: np.ndarray
    """Boolean mask over the chunk's rows."""
    refusals: list[tuple[int, str, str]]
    """(row within the chunk, field, message) for every error of every refused row."""


def _missing(values: pd.Series) -> np.ndarray:
    return np.asarray(values.isna().to_numpy(), dtype=bool)


def _as_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Floats (NaN where missing), and where a present value is not a finite number."""
    if values.dtype == bool or pd.api.types.is_bool_dtype(values.dtype):
        out = np.full(len(values), np.nan)
        return out, ~_missing(values)
    if pd.api.types.is_numeric_dtype(values.dtype):
        out = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return out, np.isinf(out)
    converted = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    doubtful = (~_missing(values) & np.isnan(converted)) | np.isinf(converted)
    if values.dtype == object:  # Python bools are numbers to pandas, not to the row model
        doubtful |= values.map(lambda v: isinstance(v, bool)).to_numpy(dtype=bool)
    return converted, doubtful


def _column(
    kind: str, nullable: bool, values: pd.Series, bound: float | None = None
) -> tuple[pd.Series, np.ndarray]:
    """The column as the row model's field holds it, and which rows are in doubt (a number
    beyond ``bound``, the row model's range, is)."""
    converted, doubtful = _converted(kind, nullable, values)
    if kind == "number" and bound is not None:
        with np.errstate(invalid="ignore"):
            doubtful = doubtful | (np.abs(converted.to_numpy(dtype=np.float64)) > bound)
    return converted, doubtful


def _converted(kind: str, nullable: bool, values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    index = values.index
    if kind == "number" and values.dtype == np.float64:  # the common case, without copies
        numbers = values.to_numpy()
        doubtful = np.isinf(numbers)
        if not nullable:
            doubtful |= np.isnan(numbers)
        return values, doubtful
    missing = _missing(values)
    not_allowed = missing if not nullable else np.zeros(len(values), dtype=bool)
    if kind == "number":
        numbers, doubtful = _as_numbers(values)
        return pd.Series(numbers, index=index), doubtful | not_allowed
    if kind == "integer":
        if pd.api.types.is_integer_dtype(values.dtype) and not missing.any():
            return values.astype(np.int64), not_allowed
        numbers, doubtful = _as_numbers(values)
        whole = (
            np.isfinite(numbers) & (np.floor(numbers) == numbers) & (np.abs(numbers) < INT64_LIMIT)
        )
        doubtful |= ~missing & ~whole
        if nullable:
            return pd.Series(numbers, index=index), doubtful
        ok = ~(doubtful | missing)
        filled = np.where(ok, numbers, 0).astype(np.int64)
        return pd.Series(filled, index=index), doubtful | not_allowed
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(values.dtype) and values.dtype != object:
            return values.astype(bool), not_allowed
        present = values.to_numpy(dtype=object)
        out = np.empty(len(values), dtype=object)
        doubtful = np.zeros(len(values), dtype=bool)
        for i, value in enumerate(present):
            if missing[i]:
                out[i] = None
            elif isinstance(value, (bool, np.bool_)):
                out[i] = bool(value)
            elif value in TRUE_TEXT:
                out[i] = True
            elif value in FALSE_TEXT:
                out[i] = False
            else:
                doubtful[i] = True
        series = pd.Series(out, index=index, dtype=object)
        return (series if nullable else series.astype(object)), doubtful | not_allowed
    if kind == "category":
        text = values.astype(object).where(~missing, None)
        is_text = text.map(
            lambda v: v is None or (isinstance(v, str) and len(v) <= MAX_CATEGORY_CHARS)
        ).to_numpy(dtype=bool)
        return text, ~is_text | not_allowed
    # A kind this module does not know: every row goes through the row model.
    return values.astype(object).where(~missing, None), np.ones(len(values), dtype=bool)


def _python(value: Any) -> Any:
    """A file's value as JSON would carry it to the service (NaN and NA are null)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _as_sent(kind: str, value: Any) -> Any:
    """A value in doubt as a client would send it: a CSV's number text as that number (JSON
    ``2.5``, ``3``), anything else as it is."""
    value = _python(value)
    if kind in ("number", "integer") and isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return value
    return value


def _frame(converted: dict[str, pd.Series], names: list[str], index: pd.Index) -> pd.DataFrame:
    """The converted columns as one frame; all float64: one block, one copy (column by column
    into a Fortran-order array, which pandas keeps as its one block without another)."""
    if not all(v.dtype == np.float64 for v in converted.values()):
        return pd.DataFrame(converted, index=index)
    stacked = np.empty((len(index), len(names)), dtype=np.float64, order="F")
    for i, column_values in enumerate(converted.values()):
        stacked[:, i] = column_values.to_numpy()
    return pd.DataFrame(stacked, columns=names, index=index, copy=False)


def check_rows(
    frame: pd.DataFrame,
    columns: Sequence[Mapping[str, Any]],
    row_model: type[BaseModel],
) -> CheckedRows:
    """Check a chunk's rows (``frame``, every input column present) against the schema's
    ``columns`` (the model card's ``input_schema.columns``) and the Bento's ``row_model``."""
    names = [str(c["name"]) for c in columns]
    kinds = [str(c["kind"]) for c in columns]
    converted: dict[str, pd.Series] = {}
    doubts: list[np.ndarray] = []
    for column in columns:
        name = str(column["name"])
        bound = number_bound(column.get("min"), column.get("max"))
        column_values, doubt = _column(
            str(column["kind"]), bool(column["nullable"]), frame[name], bound
        )
        converted[name] = column_values
        doubts.append(doubt)
    in_doubt = np.column_stack(doubts) if doubts else np.zeros((len(frame), 0), dtype=bool)
    doubtful = in_doubt.any(axis=1)
    values = _frame(converted, names, frame.index)
    accepted = np.ones(len(frame), dtype=bool)
    refusals: list[tuple[int, str, str]] = []
    rows = np.flatnonzero(doubtful)
    if len(rows):
        raw = frame[names].iloc[rows].astype(object).to_numpy()
        typed = {n: values[n].dtype for n in names if values[n].dtype != object}
        values = values.astype({n: object for n in typed})
        held = values.iloc[rows].to_numpy()
        for position, row, row_held, doubt in zip(
            rows.tolist(), raw, held, in_doubt[rows], strict=True
        ):
            # The cells in doubt as the file has them; the others as already converted (a
            # CSV's text "1.5" is the number 1.5).
            record = {
                name: _as_sent(kind, value) if doubted else _python(kept)
                for name, kind, value, kept, doubted in zip(
                    names, kinds, row, row_held, doubt, strict=True
                )
            }
            try:
                valid = row_model.model_validate(record)
            except ValidationError as exc:
                accepted[position] = False
                for error in exc.errors(include_url=False, include_context=False):
                    field = ".".join(str(p) for p in error["loc"]) or "(row)"
                    refusals.append((position, field, str(error["msg"])))
                continue
            dumped = valid.model_dump(by_alias=True)
            for i, name in enumerate(names):
                values.iat[position, i] = dumped[name]
        return CheckedRows(values[accepted].astype(typed), accepted, refusals)
    return CheckedRows(values, accepted, refusals)
