"""A worker's window of recent traffic: the last ``capacity`` answered rows, column by column in
arrays allocated once (a ring), with each row's answer and, once feedback gives it, its label.

Nothing is kept per request but slots in these arrays: a number column is one float64 array
(``None`` as NaN); the other columns, the answers' JSON text and the labels are object arrays
holding values the requests already made (strings and numbers, which the garbage collector does
not track). The size is fixed when the worker starts. On the reference forest at c=32
(``benchmarks/monitoring.py``, ``docs/benchmarks.md``) this measured a few points better than
the window it replaced (an entry object per request in a dict), within the noise of one run.

**Positions.** Every row gets the next position (0, 1, 2, ... for the worker's life); position
``p`` lives in slot ``p % capacity`` until ``capacity`` more rows arrive. A request is named by
the position of its first row, so ``(request, row)`` finds its slot with no index: it is still in
the window when its position is, and the slot's recorded request is that request.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

MISSING = object()
"""A row with no label (yet)."""


class Window:
    """The last ``capacity`` rows: values of the columns asked for, answers, labels, times."""

    def __init__(self, capacity: int, names: Sequence[str], numeric: Collection[str]) -> None:
        self.capacity = capacity
        self.names = list(names)
        self.columns: dict[str, np.ndarray] = {
            name: np.full(capacity, np.nan) if name in numeric else np.full(capacity, None)
            for name in names
        }
        self.answers = np.full(capacity, None)
        # Each answer's prediction (a number or a label, not a container), read from the answer's
        # JSON once, by the first report that sees it.
        self.predictions = np.full(capacity, MISSING)
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
        columns: Sequence[Sequence[Any]],
        answers: Sequence[str],
        starts: Sequence[int],
        now: float,
    ) -> int:
        """Append rows: ``columns`` in :attr:`names` order (each as long as ``answers``), and the
        offsets where each request starts among them (the first is 0). Returns the position of
        the first row: request ``i`` is named ``that + starts[i]``."""
        n = len(answers)
        first = self.end
        self.end += n
        requests = np.repeat(
            np.asarray(starts, dtype=np.int64) + first, np.diff([*starts, n]).astype(np.int64)
        )
        kept = n - min(n, self.capacity)  # more rows than the window holds: the last ones stay
        for lo, hi in self._slots(first + kept, self.end):
            rows = slice(kept, kept + hi - lo)
            kept += hi - lo
            for name, values in zip(self.names, columns, strict=True):
                self.columns[name][lo:hi] = values[rows]
            self.answers[lo:hi] = answers[rows]
            self.predictions[lo:hi] = MISSING
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
