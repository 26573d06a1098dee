"""What monitoring found: a file of live inputs (or a service's window) against a Bento's training
reference, drift and data quality, and the verdict over them (PASS, FAIL, INCONCLUSIVE)."""

from __future__ import annotations

from typing import Any, Literal

from workbench.results.base import Result
from workbench.runtime.quality import Status

DriftVerdict = Literal["drift", "no drift", "not enough data"]


class DriftTestResult(Result):
    """One statistical test: drifted when ``p_value < threshold`` (tests with a p-value) or
    ``statistic >= threshold`` (distances, ``p_value`` None)."""

    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool


class ColumnDriftResult(Result):
    """One input column of the file against the reference.

    ``test`` / ``statistic`` / ``threshold`` / ``drifted`` are None when the column could not be
    tested, and ``reason`` says why (e.g. fewer non-missing values than ``min_window_rows``).
    ``test``: ``ks``, ``chisquare``, ``z`` (p-values) or ``wasserstein``, ``jensenshannon``
    (distances). ``unseen_share``: share of the file's non-missing values the reference never
    saw (categories, booleans, numbers with few distinct values; None otherwise). Text columns
    also test their missing share (``missing_share_test``) and drift when either test does.
    """

    column: str
    kind: str
    test: str | None
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool | None
    rows: int
    """Rows of the file (missing values included)."""
    reference_rows: int
    missing_share_reference: float
    missing_share_live: float | None
    unseen_share: float | None = None
    missing_share_test: DriftTestResult | None = None
    reason: str | None = None
    status: Status | None = None
    """FAIL (drifted), PASS, INCONCLUSIVE (untested for want of values) or None (the reference
    has no values for it)."""
    values_needed: int | None = None
    """INCONCLUSIVE: the non-missing values it still needs to be tested."""


class QualityCheckResult(Result):
    """One data-quality check of one column (``workbench.runtime.quality``): ``value`` the
    file's (or window's) figure, ``expected`` training's, ``count`` the rows or values judged,
    ``needed`` (INCONCLUSIVE) how many more it needs before it could fail."""

    check: str
    column: str
    status: Status
    value: float | None
    expected: float | None
    p_value: float | None
    threshold: float | None
    count: int
    needed: int | None = None
    note: str | None = None


class QualityResult(Result):
    """Every data-quality check of every column, and their verdict (FAIL if any failed, else
    INCONCLUSIVE if any could not decide yet, else PASS)."""

    checks: list[QualityCheckResult]
    status: Status
    failed: int
    inconclusive: int
    options: dict[str, float]
    """The thresholds used (``workbench.runtime.quality.QualityOptions``' fields)."""


class DriftResult(Result):
    """A file of live inputs checked for drift and data quality against the reference shipped in
    a Bento.

    ``verdict``: ``drift`` when at least ``threshold`` of the testable columns drifted, ``no
    drift`` when fewer would have even if every untested one had, else ``not enough data`` (with
    ``reason``). ``status``: the verdict over drift and the data-quality checks, with its
    ``failures`` and ``inconclusive`` reasons (``workbench.runtime.monitoring.judgement``).
    """

    bento_tag: str
    bento_path: str
    """The Bento's ``src`` folder the model card and the reference were read from."""
    model_tag: str
    file: str
    file_sha256: str
    file_bytes: int
    rows: int
    """Rows read from the file."""
    ignored_columns: list[str]
    """Columns of the file that are not model inputs (a target, an id): not checked."""
    reference_rows: int
    columns: list[ColumnDriftResult]
    tested_columns: int
    drifted_columns: int
    drifted_share: float | None
    threshold: float
    verdict: DriftVerdict
    reason: str | None = None
    values_needed: int | None = None
    """``not enough data``: the most non-missing values an untested column still needs."""
    options: dict[str, int | float]
    """The thresholds and cut-offs used (``workbench.runtime.drift.DriftOptions``' fields)."""
    quality: QualityResult | None = None
    status: Status = "INCONCLUSIVE"
    failures: list[str] = []
    inconclusive: list[str] = []
    notes: list[str] = []
    checked_at: str
    """When the check ran (UTC, ISO 8601)."""
    seconds: float

    @property
    def drifted(self) -> bool | None:
        """True for drift, False for no drift, None when nothing could be tested."""
        return None if self.verdict == "not enough data" else self.verdict == "drift"

    @property
    def drifted_column_names(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]


class ReplayResult(Result):
    """A file sent through a running service at a bounded rate, its labels as feedback."""

    file: str
    rows: int
    """Rows sent (and answered 200)."""
    requests: int
    failed_requests: int
    """Requests not answered 200 (their rows are not in the window)."""
    first_errors: list[str] = []
    """What the first few failed requests were answered (``HTTP 400: ...``)."""
    feedback: int
    """Labels sent to ``POST /feedback`` (0 when the file has no target column)."""
    feedback_unknown: int
    rate: float
    """The bound, in rows per second."""
    seconds: float
    stopped_by: str = "file"
    """``file`` (every row sent), ``max_rows`` or ``max_seconds``."""


class MonitorResult(Result):
    """A service's monitoring report (``GET /monitor``) judged by the project's ``monitor:``.

    ``status``: FAIL when the dataset drifted (``monitor.fail_on_drift``), a data-quality check
    failed (``monitor.fail_on_quality``), a live-metric gate failed or the service refused
    requests of the replay (``failures`` says which); else INCONCLUSIVE when something lacked
    data (the drift verdict "not enough data", a check that cannot decide yet, a gate without
    enough labelled rows; ``inconclusive`` says what and how much more); else PASS. ``passed``
    is ``status == "PASS"``: not enough data is never a pass.
    """

    url: str
    model_tag: str
    verdict: DriftVerdict | None
    """The dataset drift verdict (None: the service ships no drift reference)."""
    columns: list[ColumnDriftResult]
    quality: QualityResult | None = None
    report: dict[str, Any]
    """``GET /monitor`` as the service answered it."""
    replay: ReplayResult | None = None
    status: Status = "INCONCLUSIVE"
    failures: list[str]
    inconclusive: list[str] = []
    notes: list[str] = []
    passed: bool
    checked_at: str
    seconds: float
