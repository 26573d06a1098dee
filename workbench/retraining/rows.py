"""The new labelled rows of a retrain: read from a file or the capture, checked against the
training data and the promoted model, and split by the seed.

The split keeps identical rows together (traffic repeats rows, and a row on both sides would be
tested on what the model was fitted on) and splits each class apart, so every class the new rows
hold is on both sides when it has two distinct rows. Distinct rows are taken in the order of
their content hash, so the split depends on the seed and on the set of rows, not on the file's
row order. Each part's sha256 is that of its bytes as written into the run folder.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from workbench.artifacts import sha256_file
from workbench.config import Config
from workbench.data import load_frame
from workbench.errors import DataError
from workbench.results import NewRows
from workbench.retraining.capture import PATTERN as CAPTURE_PATTERN
from workbench.retraining.capture import read_capture
from workbench.runtime.settings import CAPTURE_DIR_ENV
from workbench.validation.metrics import align_labels

PARQUET = (".parquet", ".pq")


@dataclass(frozen=True)
class Rows:
    """The new rows, checked and split: what the retrain adds to the project's data."""

    record: NewRows
    frame: pd.DataFrame
    """Every new row, in the training data's column order, labels as the model's classes."""
    train: pd.DataFrame
    test: pd.DataFrame
    recent: pd.DataFrame | None
    """Every captured request row, oldest first, with its label where feedback gave one (when
    a capture folder holds requests)."""
    suffix: str
    """The format the parts are written in: the project's training file's (.csv, .parquet)."""


def frame_bytes(frame: pd.DataFrame, suffix: str) -> bytes:
    """The bytes ``frame`` is written as (hashed before writing, so the record and the file
    agree)."""
    if suffix in PARQUET:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    return frame.to_csv(index=False).encode()


def capture_folder(given: str | Path | None) -> Path | None:
    """The capture folder: the one given, else ``$WORKBENCH_CAPTURE_DIR``, else none."""
    chosen = given or os.environ.get(CAPTURE_DIR_ENV, "").strip()
    return Path(chosen).expanduser().resolve() if chosen else None


def read_new_rows(  # noqa: PLR0913 - keyword-only: the sources, the seed and the model's labels
    config: Config,
    reference: pd.DataFrame,
    *,
    data: Path | None,
    capture: Path | None,
    seed: int,
    task: str,
    classes: list[object] | None,
) -> Rows:
    """Read the new rows (``data``, else the labelled rows of ``capture``), check them against
    the training data (``reference``: its columns and their types) and the model's ``classes``,
    and split them by ``seed``.

    Every problem is one :class:`~workbench.errors.DataError`: no source, other columns, rows
    without a label, values of another kind, unknown classes, fewer distinct rows than
    ``retrain.min_rows``.
    """
    target = config.data.target
    found = _source(data, capture, target=target)
    where = found.where
    frame = checked_rows(
        found.frame, reference, where=where, target=target, task=task, classes=classes
    )
    recent = None if found.recent is None else _traffic(found.recent, reference, where=where)
    keys = _row_keys(frame)
    distinct = len(np.unique(keys))
    _require_enough(config, distinct, where=where)
    suffix = config.train_path.suffix.lower() if config.train_path.suffix else ".csv"
    is_test = split_mask(
        frame,
        keys,
        target=target,
        share=config.retrain.test_share,
        seed=seed,
        by_class=task == "classification",
    )
    train, test = frame[~is_test], frame[is_test]
    labels = frame[target].astype(str).value_counts().sort_index() if classes else None
    record = NewRows(
        source=found.kind,
        path=where,
        files=found.files,
        sha256=found.files[where] if found.kind == "file" else _sha256(frame_bytes(frame, suffix)),
        rows=len(frame),
        distinct=distinct,
        labels={} if labels is None else {str(k): int(v) for k, v in labels.items()},
        skipped=found.skipped,
        seed=seed,
        test_share=config.retrain.test_share,
        train_rows=len(train),
        test_rows=len(test),
        train_sha256=_sha256(frame_bytes(train, suffix)),
        test_sha256=_sha256(frame_bytes(test, suffix)),
    )
    return Rows(record, frame, train, test, recent, suffix)


@dataclass(frozen=True)
class _Source:
    """The new rows as read, before any check, and recent traffic when there is a capture."""

    kind: Literal["file", "capture"]
    where: str
    frame: pd.DataFrame
    files: dict[str, str]
    skipped: dict[str, int]
    recent: pd.DataFrame | None


def _source(data: Path | None, capture: Path | None, *, target: str) -> _Source:
    """``data``'s rows (and the capture's traffic, when it has any), else the capture's
    labelled rows; neither is one message saying what to give."""
    if data is not None:
        frame = load_frame(data, what="new rows", fix="check the path given as --data")
        has_traffic = capture is not None and any(capture.glob(CAPTURE_PATTERN))
        recent = read_capture(capture, target=target).recent if capture and has_traffic else None
        return _Source("file", str(data), frame, {str(data): sha256_file(data)}, {}, recent)
    if capture is None:
        raise DataError(
            "no new rows to retrain on: give --data FILE (CSV or Parquet with the training "
            f"data's columns, the label in {target!r}) or --capture DIR (the labelled rows a "
            f"served Bento captured; default ${CAPTURE_DIR_ENV})"
        )
    captured = read_capture(capture, target=target)
    if captured.labelled.empty:
        raise DataError(
            f"the capture in {capture} holds {len(captured.recent):,} request rows and no "
            "label: send the true labels with POST /feedback (docs/bento.md#feedback), or give "
            "labelled rows with --data FILE"
        )
    return _Source(
        "capture",
        str(capture),
        captured.labelled,
        captured.files,
        captured.skipped,
        captured.recent,
    )


def checked_rows(  # noqa: PLR0913 - keyword-only: what the rows are checked against
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    where: str,
    target: str,
    task: str,
    classes: list[object] | None,
) -> pd.DataFrame:
    """``frame`` with the training data's columns in their order, numbers where it has numbers,
    and its labels as the model's classes (a regressor's as numbers), or one :class:`DataError`
    saying what does not fit."""
    columns = list(reference.columns)
    missing = [c for c in columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in columns]
    if missing or extra:
        parts = [
            f"missing {missing[:5]}" if missing else "",
            f"unknown {extra[:5]}" if extra else "",
        ]
        raise DataError(
            f"new rows in {where}: their columns are not the training data's "
            f"({'; '.join(p for p in parts if p)}); give rows with exactly the columns of the "
            f"training data: the model's inputs and the label {target!r}"
        )
    frame = frame[columns].reset_index(drop=True)
    for column in columns:
        if column != target and pd.api.types.is_numeric_dtype(reference[column]):
            frame[column] = _numbers(frame[column], where=where)
    unlabelled = int(frame[target].isna().sum())
    if unlabelled:
        raise DataError(
            f"new rows in {where}: {unlabelled} of {len(frame)} have no label in {target!r}; "
            "a retrain learns only from labelled rows: drop those rows or label them"
        )
    frame[target] = _labels(frame[target], where=where, target=target, task=task, classes=classes)
    return frame


def _traffic(recent: pd.DataFrame, reference: pd.DataFrame, *, where: str) -> pd.DataFrame:
    """The captured request rows with the training data's columns (the label where known)."""
    missing = [c for c in reference.columns if c not in recent.columns]
    if missing:
        raise DataError(
            f"the capture in {where} holds requests without the columns {missing[:5]}: it was "
            "written by a service of another model; give the capture folder of this model's "
            "service, or none"
        )
    return recent[list(reference.columns)]


def _numbers(values: pd.Series, *, where: str) -> pd.Series:
    """A column the training data holds as numbers, as numbers (or one error naming a value)."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    wrong = numbers.isna() & values.notna()
    if wrong.any():
        raise DataError(
            f"new rows in {where}: column {values.name!r} holds {values[wrong].iloc[0]!r} where "
            "the training data holds numbers; fix those values or drop the rows"
        )
    return numbers


def _labels(
    y: pd.Series, *, where: str, target: str, task: str, classes: list[object] | None
) -> pd.Series:
    if task == "regression" or classes is None:
        values = pd.to_numeric(y, errors="coerce")
        if values.isna().any():
            raise DataError(
                f"new rows in {where}: the label {target!r} holds {y[values.isna()].iloc[0]!r}, "
                "not a number; a regressor learns from numeric labels"
            )
        return values
    known = np.asarray(classes)
    aligned, unseen = align_labels(y, known)
    if unseen:
        raise DataError(
            f"new rows in {where}: classes {unseen[:5]} in {target!r} are not classes of the "
            f"promoted model (it knows {known.tolist()[:10]}); a retrain keeps the model's "
            "classes (a new class changes what the service answers: validate and package a new "
            "model with `workbench run`), so drop those rows or fix their labels"
        )
    return pd.Series(aligned, index=y.index)


def _require_enough(config: Config, distinct: int, *, where: str) -> None:
    options = config.retrain
    if distinct < options.min_rows:
        held_out = int(np.ceil(options.min_rows * options.test_share))
        raise DataError(
            f"new rows in {where}: {distinct} distinct labelled rows, and a retrain needs at "
            f"least {options.min_rows} (`retrain.min_rows`): {options.test_share:.0%} of them "
            f"are held out to test the retrained model, and fewer than {held_out} test rows "
            "cannot tell a better model from a worse one (one row moves accuracy by "
            f"{100 / held_out:.0f} points). Collect more labelled rows"
        )


def _row_keys(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit content hash per row: identical rows, identical keys."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def split_mask(  # noqa: PLR0913 - keyword-only: how the split is drawn
    frame: pd.DataFrame,
    keys: np.ndarray,
    *,
    target: str,
    share: float,
    seed: int,
    by_class: bool,
) -> np.ndarray:
    """True for the rows held out for testing: ``share`` of the distinct rows (of each class
    when ``by_class``), drawn by ``seed``; at least one of a group of two or more, never all."""
    distinct, first = np.unique(keys, return_index=True)  # sorted by key: order-independent
    if by_class:
        labels = frame[target].to_numpy()[first].astype(str)
        groups = [distinct[labels == label] for label in sorted(set(labels))]
    else:
        groups = [distinct]
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for group in groups:
        n = int(round(share * len(group)))
        n = min(max(n, 1), len(group) - 1) if len(group) > 1 else 0
        held.append(group[rng.permutation(len(group))[:n]])
    return np.isin(keys, np.concatenate(held) if held else np.array([], dtype=keys.dtype))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
