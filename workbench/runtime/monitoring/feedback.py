"""``POST /feedback``: the body checked, each label read as the model's class or true value."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

#: The most items one ``POST /feedback`` may carry.
MAX_FEEDBACK_ITEMS = 10_000
#: What became of a feedback item: its label ``applied`` (the row's first), ``unchanged`` (the
#: same label again), a ``conflict`` (another label for a labelled row: counted, not applied), or
#: ``unknown`` (no such request or row in the window).
FEEDBACK_STATUSES = ("applied", "unchanged", "conflict", "unknown")
#: The feedback counts each worker keeps and the report adds up.
FEEDBACK_COUNTS = ("received", *FEEDBACK_STATUSES)


class FeedbackError(ValueError):
    """Bad feedback: one message, and the items at fault."""

    def __init__(self, message: str, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or []


def read_feedback(body: Any, task: str, classes: Sequence[Any]) -> list[tuple[str, int, Any]]:
    """``{"feedback": [{"request_id", "row"?, "label"}]}`` as (id, row, label), or one
    :class:`FeedbackError` naming every bad item."""
    example = '{"feedback": [{"request_id": "<X-Request-Id>", "row": 0, "label": <value>}]}'
    if not isinstance(body, dict) or set(body) != {"feedback"}:
        raise FeedbackError(f"the body must be {example}")
    items = body["feedback"]
    if not isinstance(items, list) or not items:
        raise FeedbackError(f"`feedback` must be a non-empty list: {example}")
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise FeedbackError(
            f"{len(items):,} feedback items are over the limit of {MAX_FEEDBACK_ITEMS:,} "
            "per request: send them in several requests"
        )
    out, errors = [], []
    for i, item in enumerate(items):
        problem = None
        if not isinstance(item, dict) or not {"request_id", "label"} <= set(item):
            problem = "needs `request_id` and `label` (and `row` for a multi-row request)"
        elif set(item) - {"request_id", "row", "label"}:
            problem = f"unknown keys {sorted(set(item) - {'request_id', 'row', 'label'})}"
        elif not isinstance(item["request_id"], str) or not item["request_id"]:
            problem = "`request_id` must be the X-Request-Id of a prediction answer"
        elif type(item.get("row", 0)) is not int or item.get("row", 0) < 0:
            problem = "`row` must be the row's index in its request (0, 1, ...)"
        else:
            label, problem = true_label(item["label"], task, classes)
        if problem is not None:
            errors.append({"type": "feedback", "loc": ["feedback", i], "msg": problem})
            continue
        out.append((item["request_id"], int(item.get("row", 0)), label))
    if errors:
        raise FeedbackError(
            f"{len(errors)} bad feedback item{'s' if len(errors) != 1 else ''}: nothing was "
            "applied",
            errors[:100],
        )
    return out


def true_label(value: Any, task: str, classes: Sequence[Any]) -> tuple[Any, str | None]:
    """``value`` as the true value of a row of ``task`` (a class of ``classes`` as the model
    has it), or None and why not."""
    if task == "regression":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"the label must be a number (the true value), not {value!r}"
        if not math.isfinite(value):
            return None, f"the label must be a finite number, not {value!r}"
        return float(value), None
    for known in classes:  # as JSON has it: 1 is not "1", and true is not 1
        same_kind = type(value) is type(known) or (type(known) is float and type(value) is int)
        if same_kind and value == known:
            return known, None
    shown = ", ".join(json.dumps(c) for c in classes[:20])
    return None, f"the label {json.dumps(value)} is not one of the model's classes ({shown})"


__all__ = [
    "FEEDBACK_COUNTS",
    "FEEDBACK_STATUSES",
    "MAX_FEEDBACK_ITEMS",
    "FeedbackError",
    "read_feedback",
    "true_label",
]
