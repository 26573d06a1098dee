"""The model and the one function that answers a batch of rows (it runs in the model thread).

Rows arrive validated (pydantic models of the generated ``Row`` class). With all-float columns the
rows of a batch become one float array (a DataFrame with the training column names when the model
was fitted on one): no per-row DataFrame or dtype casts. Other schemas go through records cast to
the training dtypes, once per batch, with unseen categories passed on or replaced (and flagged).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from .settings import Settings


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class Predictor:
    """Answers rows with the model: prediction, class probabilities (classifiers) and warnings."""

    def __init__(self, model: Any, row_model: type[BaseModel], settings: Settings) -> None:
        self.model = model
        self.settings = settings
        classes = getattr(model, "classes_", None)
        self.classes = None if classes is None else [str(c) for c in np.asarray(classes).tolist()]
        self.proba = self.classes is not None and hasattr(model, "predict_proba")
        self.seen = {name: set(values) for name, values in settings.categories.items()}
        fields = list(row_model.model_fields)
        self.values: Callable[[BaseModel], Any] = attrgetter(*fields)

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
                        warnings[i].append(
                            f"{name}: unseen category {value!r} replaced by "
                            f"{settings.fallback[name]!r}"
                        )
                    else:
                        warnings[i].append(f"{name}: unseen category {value!r}")
        frame = pd.DataFrame.from_records(records, columns=settings.columns)
        return frame.astype(settings.dtypes), warnings

    def answer(self, rows: Sequence[BaseModel]) -> list[str]:
        """Each row's answer as JSON text, in order."""
        X, warnings = self.inputs(rows)
        none: list[str] = []
        if self.proba:
            proba = np.asarray(self.model.predict_proba(X), dtype=np.float64)
            if self.settings.labels_from_proba:
                labels = self.model.classes_.take(proba.argmax(axis=1), axis=0)
            else:
                labels = np.asarray(self.model.predict(X))
            table: list[list[Any]] = proba.tolist()
            if not np.isfinite(proba).all():
                table = [[_finite(p) for p in row] for row in table]
            classes = self.classes or []
            return [
                json.dumps(
                    {
                        "prediction": label,
                        "probabilities": dict(zip(classes, probs, strict=True)),
                        "warnings": none if warnings is None else warnings[i],
                    }
                )
                for i, (label, probs) in enumerate(zip(labels.tolist(), table, strict=True))
            ]
        labels = np.asarray(self.model.predict(X))
        values: list[Any] = labels.tolist()
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            values = [_finite(v) for v in values]
        return [
            json.dumps(
                {
                    "prediction": value,
                    "probabilities": None,
                    "warnings": none if warnings is None else warnings[i],
                }
            )
            for i, value in enumerate(values)
        ]
