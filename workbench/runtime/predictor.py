"""The model and the one function that answers a batch of rows (it runs in the model thread).

Rows arrive validated (pydantic models of the generated ``Row`` class). With all-float columns the
rows of a batch become one float array (a DataFrame with the training column names when the model
was fitted on one): no per-row DataFrame or dtype casts. Other schemas go through records cast to
the training dtypes, once per batch, with unseen categories passed on or replaced (and flagged).

Rows the schema accepts can still be refused by the model (an extreme value overflowing a scaler,
say) or give a non-finite answer. Then the rows at fault are found by halving the batch (at most
:data:`MAX_ISOLATION_CALLS` more calls) and :class:`RowsRefused` names them, so the client gets a
400 naming the rows rather than a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter
from typing import Any, overload

import numpy as np
import pandas as pd
from pydantic import BaseModel

from .settings import Settings

MAX_ISOLATION_CALLS = 16
SHOWN_CHARS = 40
"""An unseen category's warning shows at most this many of its characters (a client's value is
never echoed whole: it could be 100,000 characters)."""


def unseen_warning(name: str, value: Any, replaced_by: str | None) -> str:
    """The warning of a row whose column ``name`` holds the unseen category ``value``."""
    text = str(value)
    shown = repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…")
    if len(text) > SHOWN_CHARS:
        shown += f" ({len(text):,} characters)"
    message = f"{name}: unseen category {shown}"
    return message if replaced_by is None else f"{message} replaced by {replaced_by!r}"


class Answers(Sequence[str]):
    """A model call's answers: each row's JSON text (what the client gets) and, for the
    monitoring window, each prediction and the class probabilities (rows x classes, the model's
    class order; None without) as the model gave them. Slices are Answers."""

    __slots__ = ("inputs", "predictions", "probabilities", "texts")

    def __init__(
        self, texts: list[str], predictions: list[Any], probabilities: Any, inputs: Any = None
    ) -> None:
        self.texts = texts
        self.predictions = predictions
        self.probabilities = probabilities
        self.inputs = inputs
        """The rows as one float array (rows x columns, the row model's order), when every
        column is a float: set on a whole model call's answers (slices and joins leave it
        None)."""

    def __len__(self) -> int:
        return len(self.texts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Answers: ...

    def __getitem__(self, index: int | slice) -> str | Answers:
        if isinstance(index, slice):
            proba = self.probabilities
            return Answers(
                self.texts[index], self.predictions[index], None if proba is None else proba[index]
            )
        return self.texts[index]

    @staticmethod
    def join(parts: Sequence[Sequence[str]]) -> Sequence[str]:
        """The answers of several calls in order (Answers when every part is)."""
        if len(parts) == 1:
            return parts[0]
        if parts and all(isinstance(part, Answers) for part in parts):
            answers = [part for part in parts if isinstance(part, Answers)]
            probas = [a.probabilities for a in answers]
            return Answers(
                [t for a in answers for t in a.texts],
                [p for a in answers for p in a.predictions],
                None if any(p is None for p in probas) else np.concatenate(probas),
            )
        return [text for part in parts for text in part]


class AnswerTexts:
    """Each row's answer as JSON text, ``{"prediction", "probabilities", "warnings"}``, exactly
    as ``json.dumps`` writes it, from parts made once (the class keys, each string label) and
    ``float.__repr__`` (what ``json`` writes for a finite float; the predictor refuses others):
    half the time of ``json.dumps`` on a dict per row."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.keys = [json.dumps(c) + ": " for c in classes]
        self.labels: dict[str, str] = {}

    def label(self, value: Any) -> str:
        if type(value) is not str:
            return json.dumps(value)
        text = self.labels.get(value)
        if text is None:
            text = json.dumps(value)
            if len(self.labels) < 10_000:
                self.labels[value] = text
        return text

    def classified(
        self, values: list[Any], table: list[list[float]], warnings: list[list[str]] | None
    ) -> list[str]:
        keys, label, number = self.keys, self.label, float.__repr__
        return [
            '{"prediction": '
            + label(value)
            + ', "probabilities": {'
            + ", ".join([key + number(p) for key, p in zip(keys, probs, strict=True)])
            + '}, "warnings": '
            + ("[]" if warnings is None else json.dumps(warnings[i]))
            + "}"
            for i, (value, probs) in enumerate(zip(values, table, strict=True))
        ]

    def estimated(self, values: list[Any], warnings: list[list[str]] | None) -> list[str]:
        return [
            '{"prediction": '
            + json.dumps(value)
            + ', "probabilities": null, "warnings": '
            + ("[]" if warnings is None else json.dumps(warnings[i]))
            + "}"
            for i, value in enumerate(values)
        ]


class RowsRefused(ValueError):
    """Rows the model could not answer: row index (within the rows asked) -> why."""

    def __init__(self, rows: dict[int, str]) -> None:
        super().__init__(f"the model could not answer {len(rows)} row(s)")
        self.rows = rows


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Predictor:
    """Answers rows with the model: prediction, class probabilities (classifiers) and warnings."""

    def __init__(self, model: Any, row_model: type[BaseModel], settings: Settings) -> None:
        self.model = model
        self.settings = settings
        self.row_model = row_model
        classes = getattr(model, "classes_", None)
        self.classes = None if classes is None else [str(c) for c in np.asarray(classes).tolist()]
        self.proba = self.classes is not None and hasattr(model, "predict_proba")
        self.both: Callable[[Any], tuple[Any, Any]] | None = getattr(model, "predict_both", None)
        self.seen = {name: set(values) for name, values in settings.categories.items()}
        self.object_columns = [c for c, dtype in settings.dtypes.items() if dtype == "object"]
        fields = list(row_model.model_fields)
        self.values: Callable[[BaseModel], Any] = attrgetter(*fields)
        self.texts = AnswerTexts(self.classes or [])

    def inputs(self, rows: Sequence[BaseModel]) -> tuple[Any, list[list[str]] | None]:
        """The model's input for ``rows`` in training order and dtypes, and per-row warnings."""
        settings = self.settings
        if settings.float_rows:  # one float array; a nullable column's None becomes NaN
            values = np.array([self.values(row) for row in rows], dtype=np.float64)
            values = values.reshape(len(rows), len(settings.columns))
            if settings.frame_input:
                return pd.DataFrame(values, columns=settings.columns, copy=False), None
            return values, None
        records = [row.model_dump(by_alias=True) for row in rows]
        warnings: list[list[str]] = [[] for _ in records]
        for name, seen in self.seen.items():
            for i, record in enumerate(records):
                value = record[name]
                if value is not None and value not in seen:
                    if settings.unseen_policy == "replace":
                        record[name] = settings.fallback[name]
                        warnings[i].append(unseen_warning(name, value, settings.fallback[name]))
                    else:
                        warnings[i].append(unseen_warning(name, value, None))
        frame = pd.DataFrame.from_records(records, columns=settings.columns)
        return self._cast(frame), warnings

    def frame_inputs(self, frame: pd.DataFrame) -> tuple[Any, list[list[str]] | None]:
        """The model's input for a frame of rows the row model accepted, and per-row warnings:
        what :meth:`inputs` gives for the same rows, built column by column (batch scoring).

        ``frame`` has every input column, by training name, holding what the row model's fields
        hold: floats with NaN for a missing number, ints, bools (object with None when
        nullable), strings (object with None).
        """
        settings = self.settings
        if settings.float_rows:
            values = np.ascontiguousarray(frame[settings.columns].to_numpy(dtype=np.float64))
            if settings.frame_input:
                return pd.DataFrame(values, columns=settings.columns, copy=False), None
            return values, None
        frame = frame[settings.columns].copy()
        warnings: list[list[str]] = [[] for _ in range(len(frame))]
        for name, seen in self.seen.items():
            column = frame[name]
            unseen = (column.notna() & ~column.isin(seen)).to_numpy()
            replaced_by = settings.fallback[name] if settings.unseen_policy == "replace" else None
            for i in np.flatnonzero(unseen).tolist():
                warnings[i].append(unseen_warning(name, column.iat[i], replaced_by))
            if settings.unseen_policy == "replace" and unseen.any():
                frame[name] = column.where(~unseen, settings.fallback[name])
        return self._cast(frame), warnings

    def _cast(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` in the training dtypes, a missing text value NaN."""
        frame = frame.astype(self.settings.dtypes)
        for name in self.object_columns:
            # A missing text value is NaN, as in the training frame read from CSV or Parquet: left
            # as None (what a batch of only nulls becomes), an imputer would not see it missing.
            column = frame[name]
            missing = column.isna()
            if missing.any():
                frame[name] = column.where(~missing, np.nan)
        return frame

    def answer(self, rows: Sequence[BaseModel]) -> Answers:
        """Each row's answer as JSON text, in order; :class:`RowsRefused` names the rows the model
        could not answer."""
        try:
            return self._answer(rows)
        except Exception as exc:
            refused = self._refused(rows, exc)
            if len(refused) == len(rows) and not self._answers_example():
                raise  # the model fails on its own warm-up row too: a server fault, not the rows
            raise RowsRefused(refused) from exc

    def _answers_example(self) -> bool:
        """Whether the model still answers the warm-up row (if not, the fault is the model's)."""
        try:
            self._answer([self.row_model.model_validate(self.settings.example)])
        except Exception:  # noqa: BLE001 - any failure means the model itself is broken
            return False
        return True

    def _refused(self, rows: Sequence[BaseModel], first: BaseException) -> dict[int, str]:
        """Which rows fail on their own, found by halving; when the budget of calls runs out, the
        rows left are all named (with the first error)."""
        if len(rows) == 1:
            return {0: _why(first)}
        found: dict[int, str] = {}
        budget, middle = MAX_ISOLATION_CALLS, len(rows) // 2
        pending = [(0, middle), (middle, len(rows))]
        while pending:
            start, end = pending.pop()
            if budget <= 0:
                found.update({i: _why(first) for i in range(start, end)})
                continue
            budget -= 1
            try:
                self._answer(rows[start:end])
            except Exception as exc:  # noqa: BLE001 - a failing part is split again
                if end - start == 1:
                    found[start] = _why(exc)
                else:
                    middle = (start + end) // 2
                    pending += [(start, middle), (middle, end)]
        return found or {i: _why(first) for i in range(len(rows))}

    def predict(self, X: Any) -> tuple[Any, Any]:
        """Labels (or values) and, for a classifier with ``predict_proba``, the class
        probabilities (float64, :attr:`classes` order; else None) for the model input ``X``.
        Raises ``ValueError`` for a non-finite answer."""
        if self.proba:
            if self.both is not None:  # an ONNX graph: labels and probabilities from one run
                labels, proba = self.both(X)
            else:
                proba = np.asarray(self.model.predict_proba(X), dtype=np.float64)
                if self.settings.labels_from_proba:
                    labels = self.model.classes_.take(proba.argmax(axis=1), axis=0)
                else:
                    labels = np.asarray(self.model.predict(X))
            if not np.isfinite(proba).all():
                raise ValueError("the model answered non-finite probabilities")
            return labels, proba
        labels = np.asarray(self.model.predict(X))
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            raise ValueError("the model answered a non-finite value")
        return labels, None

    def _answer(self, rows: Sequence[BaseModel]) -> Answers:
        X, warnings = self.inputs(rows)
        numbers = None  # the float rows, for the monitoring window (the frame's own array)
        if self.settings.float_rows:
            numbers = X.to_numpy() if isinstance(X, pd.DataFrame) else X
        labels, proba = self.predict(X)
        values: list[Any] = labels.tolist()
        if proba is not None:
            table: list[list[float]] = proba.tolist()
            texts = self.texts.classified(values, table, warnings)
            return Answers(texts, values, proba, numbers)
        return Answers(self.texts.estimated(values, warnings), values, None, numbers)
