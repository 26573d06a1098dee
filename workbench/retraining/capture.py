"""Labelled rows and recent traffic from a served Bento's capture files (``WORKBENCH_CAPTURE_DIR``).

The one reader of the capture format in workbench, written against the lines
:mod:`workbench.runtime.monitoring.monitor` writes today (``capture-<time>-<pid>-<n>.jsonl``):

- a request: ``{"request_id": ID, "time": ISO, "rows": [{column: value}, ...], "answers": [...]}``
- a feedback: ``{"feedback": ID, "row": N, "label": VALUE, "time": ISO}``; a later feedback line
  for the same row replaces an earlier one.

A row is labelled when a feedback line names its request id and position. Lines that are not
JSON (a file cut short while being written), and feedback for requests no longer in the folder
(their file was rotated away), are counted and left out. Should the format change, this module
is the one place to follow it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.artifacts import sha256_file
from workbench.errors import DataError

PATTERN = "capture-*.jsonl"


@dataclass(frozen=True)
class Captured:
    """What a capture folder holds: its labelled rows, every request row, and what was read."""

    labelled: pd.DataFrame
    """Input columns and the target, for each captured row that has a label."""
    recent: pd.DataFrame
    """Every captured request row, oldest first: its inputs and its label (``None`` when no
    feedback gave one)."""
    files: dict[str, str]
    """Each capture file read -> its sha256."""
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class _Lines:
    rows: list[tuple[str, int, int, str, int, dict[str, Any]]] = field(default_factory=list)
    """(time, file index, line, request id, position, row) of each request row."""
    labels: dict[tuple[str, int], tuple[tuple[str, int, int], Any]] = field(default_factory=dict)
    """(request id, position) -> ((time, file index, line), label): the first feedback wins, as
    in the service (a later, different label is a ``conflict`` the service did not apply)."""
    unreadable: int = 0
    conflicts: int = 0


def read_capture(folder: Path, *, target: str) -> Captured:
    """Every request row of the capture files in ``folder`` and the labels feedback gave them."""
    if not folder.is_dir():
        raise DataError(
            f"capture folder {str(folder)!r} not found; give the folder the Bento wrote with "
            "WORKBENCH_CAPTURE_DIR set (docs/bento.md#capture), or --data FILE"
        )
    paths = sorted(folder.glob(PATTERN))
    if not paths:
        raise DataError(
            f"capture folder {folder} holds no {PATTERN} files; serve the Bento with "
            "WORKBENCH_CAPTURE_DIR set and send feedback (POST /feedback), or give --data FILE"
        )
    lines = _Lines()
    for index, path in enumerate(paths):
        _read_file(path, index, lines)
    lines.rows.sort(key=lambda row: row[:3])
    keys = [(row[3], row[4]) for row in lines.rows]
    known = set(keys)
    labels = pd.Series(
        [lines.labels[key][1] if key in lines.labels else None for key in keys], dtype=object
    )
    recent = pd.DataFrame([row[5] for row in lines.rows]).assign(**{target: labels})
    labelled_at = [i for i, key in enumerate(keys) if key in lines.labels]
    labelled = recent.iloc[labelled_at].reset_index(drop=True)
    skipped = {
        "request rows without a label": len(keys) - len(labelled_at),
        "labels for requests no longer captured": sum(k not in known for k in lines.labels),
        "unreadable lines": lines.unreadable,
        "labels the service refused (another label came first)": lines.conflicts,
    }
    return Captured(
        labelled=labelled,
        recent=recent,
        files={str(p): sha256_file(p) for p in paths},
        skipped={k: v for k, v in skipped.items() if v},
    )


def _read_file(path: Path, index: int, lines: _Lines) -> None:
    with path.open(encoding="utf-8") as fh:
        for number, text in enumerate(fh):
            try:
                item = json.loads(text)
            except json.JSONDecodeError:
                lines.unreadable += 1
                continue
            if not _take(item, (index, number), lines):
                lines.unreadable += 1


def _take(item: Any, where: tuple[int, int], lines: _Lines) -> bool:
    """Keep one line's request rows or label; False when it is neither."""
    if not isinstance(item, dict):
        return False
    when = str(item.get("time", ""))
    if "feedback" in item:
        position = item.get("row", 0)
        if type(position) is not int or "label" not in item:
            return False
        if item.get("conflict") is True:  # refused by the service: never a training label
            lines.conflicts += 1
            return True
        key = (str(item["feedback"]), position)
        if key not in lines.labels or (when, *where) < lines.labels[key][0]:
            lines.labels[key] = ((when, *where), item["label"])
        return True
    rows = item.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        return False
    for position, row in enumerate(rows):
        lines.rows.append((when, *where, str(item.get("request_id")), position, row))
    return True
