"""A worker's window of recent traffic: the last ``capacity`` answered rows, column by column in
arrays allocated once (a ring), with each row's prediction (and class probabilities) and, once
feedback gives it, its label.

Nothing is kept per request but slots in these arrays: a number column is one float64 array
(``None`` as NaN), and so are the predictions of a regressor and the class probabilities of a
classifier (one row of floats each); the other columns, a classifier's predictions and the
labels are object arrays holding strings and numbers (which the garbage collector does not
track). What a client sent is bounded before it gets here (:meth:`.monitor.Monitor.keep`): a
text value is kept as its length, a category seen in training as the training value, an unseen
one longer than a few dozen characters as a short digest; an answer's JSON text is not kept. The
size is fixed when the worker starts. On the reference forest at c=32
(``benchmarks/monitoring.py``, ``docs/benchmarks.md``) this measured a few points better than
the window it replaced (an entry object per request in a dict), within the noise of one run.

**Positions.** Every row gets the next position (0, 1, 2, ... for the worker's life); position
``p`` lives in slot ``p % capacity`` until ``capacity`` more rows arrive. A request is named by
the position of its first row, so ``(request, row)`` finds its slot with no index: it is still in
the window when its position is, and the slot's recorded request is that request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

from ..predictor import Answers
from ..sketch import NUMERIC_KINDS

MISSING = object()
"""A row with no label (yet)."""
KEPT_CHARS = 64
"""A string a client sent is kept in the window whole up to this many characters."""
MAX_KEPT_CLASSES = 100
"""The window keeps class probabilities for classifiers with at most this many classes."""


def stand_in(text: str) -> str:
    """What the window keeps of a string over :data:`KEPT_CHARS`: its first characters and a
    digest of it, so distinct values stay distinct in the counts (and the report shows no more
    of a client's value than this)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{text[:16]}…#{digest}"


class Kept(NamedTuple):
    """A model call's rows as a window keeps them (:meth:`Intake.columns`)."""

    numbers: np.ndarray
    """The number columns (:attr:`Window.number_names` order), rows x columns."""
    others: list[Sequence[Any]]
    """The other columns (:attr:`Window.other_names` order), each as long as the rows."""


class Intake:
    """What a window keeps of a model call's rows and answers, bounded whatever clients send:
    a text column's values as their lengths; in the other non-number columns a category seen in
    training as the training value (one object for all its rows) and any other string over
    :data:`KEPT_CHARS` characters as its :func:`stand_in`; a classifier's predictions as its
    class objects and its probabilities as floats (none above :data:`MAX_KEPT_CLASSES`)."""

    def __init__(
        self,
        names: Sequence[str],
        kinds: Mapping[str, str],
        categories: Mapping[str, Sequence[str]],
        classes: Sequence[Any],
    ) -> None:
        self.names = list(names)
        self.lengths = {n for n in names if kinds.get(n) == "text"}
        self.numeric = {n for n in names if kinds.get(n) in NUMERIC_KINDS} | self.lengths
        self.known = {name: {v: v for v in values} for name, values in categories.items()}
        self.keys = [str(c) for c in classes]
        self.class_of = {c: c for c in classes}
        at = {name: i for i, name in enumerate(self.names)}
        self.number_names = [n for n in self.names if n in self.numeric]
        self.other_names = [n for n in self.names if n not in self.numeric]
        self.other_at = [at[n] for n in self.other_names]
        picked = [at[n] for n in self.number_names]
        # Every number column as it came (no text kept as its length): one array, one call.
        self.pick = itemgetter(*picked) if picked and not self.lengths else None

    def window(self, capacity: int, *, probabilities: bool, regression: bool) -> Window:
        """An empty window of ``capacity`` rows for what this intake keeps."""
        kept = len(self.keys) if probabilities and len(self.keys) <= MAX_KEPT_CLASSES else 0
        return Window(capacity, self.names, self.numeric, classes=kept, regression=regression)

    @property
    def all_numbers(self) -> bool:
        """Whether every column is kept as the number it is (no text as its length, no other)."""
        return self.pick is not None and not self.other_names

    def columns(self, rows: Sequence[Sequence[Any]], numbers: Any = None) -> Kept:
        """The rows' values (each in :attr:`names` order) as kept: the number columns as one
        float array (rows x columns, None as NaN), the others column by column. ``numbers``:
        the rows as that array already (when :attr:`all_numbers`; ``rows`` are not read)."""
        if numbers is not None and self.all_numbers:
            return Kept(numbers, [])
        n, width = len(rows), len(self.number_names)
        if self.pick is not None:
            numbers = np.array([self.pick(row) for row in rows], dtype=np.float64)
            numbers = numbers.reshape(n, width)
        else:
            raw = list(zip(*rows, strict=True)) if rows else [()] * len(self.names)
            by_name = dict(zip(self.names, raw, strict=True))
            numbers = np.empty((n, width))
            for j, name in enumerate(self.number_names):
                numbers[:, j] = np.asarray(self.bounded(name, by_name[name]), dtype=np.float64)
        others = [
            self.bounded(name, [row[i] for row in rows])
            for name, i in zip(self.other_names, self.other_at, strict=True)
        ]
        return Kept(numbers, others)

    def bounded(self, name: str, values: Sequence[Any]) -> Sequence[Any]:
        if name in self.lengths:
            return [None if v is None else len(v) for v in values]
        if name in self.numeric:
            return values
        known = self.known.get(name, {})
        return [
            (known.get(v) or (v if len(v) <= KEPT_CHARS else stand_in(v))) if type(v) is str else v
            for v in values
        ]

    def predictions(self, answers: Sequence[Sequence[str]]) -> tuple[list[Any], Any]:
        """The predictions and class probabilities (rows x classes, or None) of answers."""
        if len(answers) == 1 and isinstance(answers[0], Answers):
            predictions, proba = list(answers[0].predictions), answers[0].probabilities
        elif all(isinstance(given, Answers) for given in answers):
            parts = [given for given in answers if isinstance(given, Answers)]
            predictions = [p for given in parts for p in given.predictions]
            probas = [given.probabilities for given in parts]
            proba = None if any(p is None for p in probas) else np.concatenate(probas)
        else:  # answers as JSON text (not from the predictor): read once here
            read = [json.loads(text) for given in answers for text in given]
            read = [a if isinstance(a, dict) else {} for a in read]
            predictions = [a.get("prediction") for a in read]
            proba = None
            if read and all(isinstance(a.get("probabilities"), dict) for a in read):
                proba = np.asarray([[a["probabilities"][k] for k in self.keys] for a in read])
        if self.class_of:
            predictions = [self.class_of.get(p, p) for p in predictions]
        return predictions, proba


class Window:
    """The last ``capacity`` rows: values of the columns asked for, predictions, labels, times."""

    def __init__(
        self,
        capacity: int,
        names: Sequence[str],
        numeric: Collection[str],
        *,
        classes: int = 0,
        regression: bool = False,
    ) -> None:
        """``numeric``: the columns kept as floats (numbers, text lengths); ``classes``: the
        width of the class probabilities kept per row (0: none); ``regression``: predictions
        are numbers."""
        self.capacity = capacity
        self.names = list(names)
        self.number_names = [name for name in names if name in numeric]
        self.other_names = [name for name in names if name not in numeric]
        self.numbers = np.full((capacity, len(self.number_names)), np.nan)
        views = {name: self.numbers[:, j] for j, name in enumerate(self.number_names)}
        self.columns: dict[str, np.ndarray] = {
            name: views[name] if name in views else np.full(capacity, None) for name in names
        }
        """Each column's values by name (a number column is a view of :attr:`numbers`)."""
        self.predictions = np.full(capacity, np.nan) if regression else np.full(capacity, None)
        self.probabilities = np.full((capacity, classes), np.nan) if classes else None
        self.labels = np.full(capacity, MISSING)
        self.requests = np.full(capacity, -1, dtype=np.int64)  # each row's request: its 1st row
        self.times = np.zeros(capacity)
        self.end = 0
        """Rows ever added: the next row's position."""

    @property
    def rows(self) -> int:
        return min(self.end, self.capacity)

    def add(
        self,
        columns: Kept,
        predictions: Sequence[Any],
        probabilities: Any,
        starts: Sequence[int],
        now: float,
    ) -> int:
        """Append rows: ``columns`` (:meth:`Intake.columns`) and ``probabilities`` (rows x
        classes, or None) each as long as ``predictions``, and the offsets where each request
        starts among them (the first is 0). Returns the position of the first row: request ``i``
        is named ``that + starts[i]``."""
        n = len(predictions)
        first = self.end
        self.end += n
        if len(starts) == n:  # a row a request (the usual): each row is its own request
            requests = np.arange(first, first + n, dtype=np.int64)
        else:
            requests = np.repeat(
                np.asarray(starts, dtype=np.int64) + first, np.diff([*starts, n]).astype(np.int64)
            )
        kept = n - min(n, self.capacity)  # more rows than the window holds: the last ones stay
        for lo, hi in self._slots(first + kept, self.end):
            rows = slice(kept, kept + hi - lo)
            kept += hi - lo
            self.numbers[lo:hi] = columns.numbers[rows]
            for name, values in zip(self.other_names, columns.others, strict=True):
                self.columns[name][lo:hi] = values[rows]
            self.predictions[lo:hi] = predictions[rows]
            if self.probabilities is not None:
                self.probabilities[lo:hi] = np.nan if probabilities is None else probabilities[rows]
            self.labels[lo:hi] = MISSING
            self.requests[lo:hi] = requests[rows]
            self.times[lo:hi] = now
        return first

    def _slots(self, start: int, end: int) -> list[tuple[int, int]]:
        """The slot ranges positions ``start`` to ``end`` (excluded) occupy: one or two."""
        if end <= start:
            return []
        lo, hi = start % self.capacity, (end - 1) % self.capacity + 1
        return [(lo, hi)] if lo < hi else [(lo, self.capacity), (0, hi)]

    def slot(self, request: int, row: int) -> int | None:
        """The slot of row ``row`` of the request starting at position ``request``, or None when
        the window no longer (or never) held it."""
        position = request + row
        if row < 0 or not self.end - self.capacity <= position < self.end:
            return None
        slot = position % self.capacity
        return slot if self.requests[slot] == request else None

    def order(self) -> np.ndarray:
        """The slots of the rows in the window, oldest first."""
        return np.arange(self.end - self.rows, self.end) % self.capacity

    def request_rows(self) -> dict[int, int]:
        """Each request in the window (its first row's position) -> its rows still held."""
        starts, counts = np.unique(self.requests[self.order()], return_counts=True)
        return dict(zip(starts.tolist(), counts.tolist(), strict=True))


__all__ = ["MISSING", "Window"]
