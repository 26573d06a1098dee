"""Versions of a model: the list, a comparison of two, a promotion, a shadow replay."""

from __future__ import annotations

from typing import Any

from workbench.results.base import Result
from workbench.results.validation import GateVerdict


class VersionInfo(Result):
    """One packaged version (a Bento in the store) and where it came from."""

    tag: str
    created: str
    """UTC time the Bento was built, ISO 8601."""
    model_tag: str
    task: str
    metrics: dict[str, float | None]
    """As recorded at packaging (the model card), on the test data of that time."""
    gates: list[GateVerdict]
    passed: bool
    size_bytes: int
    runtime: str
    run: str | None = None
    """The run folder whose manifest names this Bento (``.workbench`` for a notebook session)."""
    git_commit: str | None = None
    git_dirty: bool | None = None
    promoted: bool = False


class VersionsResult(Result):
    """Every packaged version of a model, newest first, and the promoted one."""

    name: str
    versions: list[VersionInfo]
    promoted: str | None = None
    rollback_target: str | None = None
    history_file: str
    primary_metric: str | None = None
    """The metric shown first in the table (the primary one of the newest version's task)."""


class PromotionResult(Result):
    """What a promotion or rollback did, with the gate verdicts that allowed it."""

    name: str
    action: str
    version: str
    previous: str | None
    reason: str
    forced: bool = False
    gates: list[GateVerdict] = []
    metrics: dict[str, float | None] = {}
    """The promoted version re-scored on the project's test data."""
    champion_metrics: dict[str, float | None] = {}
    """The version promoted before, re-scored on the same rows (empty for the first)."""
    history_file: str
    manifest_file: str | None = None


class ColumnChange(Result):
    """One difference between two input schemas."""

    column: str
    change: str
    """``added``, ``removed``, ``retyped``, ``categories`` or ``nullable``."""
    detail: str


class CompareResult(Result):
    """Two versions of one model side by side, re-scored on the same test data."""

    name: str
    a: str
    b: str
    task: str
    rows: int
    test_data: str
    metrics_a: dict[str, float | None]
    metrics_b: dict[str, float | None]
    primary_metric: str
    schema_changes: list[ColumnChange]
    package_changes: list[str]
    """``numpy 2.1.0 -> 2.2.0``, ``+ onnxruntime==1.20``, ``- ...``."""
    option_changes: dict[str, list[Any]]
    """Service option -> [value in A, value in B], only where they differ."""
    agreement: float | None = None
    """Share of test rows where the two predict the same label (classification) or within
    1e-6 (regression)."""
    classes: list[str] = []
    confusion_a: list[list[int]] = []
    """Classification: rows true class, columns predicted class, in ``classes`` order."""
    confusion_b: list[list[int]] = []
    predictions_a: list[float] = []
    """Regression: a seeded sample of predictions for the plots, paired with ``actual``."""
    predictions_b: list[float] = []
    actual: list[float] = []


class LatencySummary(Result):
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None


class ShadowGateVerdict(Result):
    name: str
    value: float | None
    threshold: str
    passed: bool
    reason: str = ""


class ShadowResult(Result):
    """The same requests sent to a champion and a challenger served side by side."""

    name: str
    champion: str
    challenger: str
    task: str
    replay: str
    rows_in_file: int
    rows_sent: int
    """Rows both versions answered (the replay stops at ``max_rows`` or ``max_seconds``)."""
    stopped_by: str
    """``file`` (all rows sent), ``max_rows`` or ``max_seconds``."""
    batch_rows: int
    seconds: float
    agreement: float | None
    """Share of rows where both gave the same label (classification) or predictions within
    ``tolerance`` (regression)."""
    tolerance: float = 0.0
    labels: list[str] = []
    """Classification: the labels in the confusion table, in order."""
    confusion: list[list[int]] = []
    """Rows: champion's label, columns: challenger's label."""
    difference: dict[str, float] = {}
    """Regression: challenger minus champion (mean, std, min, quantiles, max)."""
    difference_histogram: dict[str, list[float]] = {}
    """Regression: ``edges`` and ``counts`` of the differences."""
    shares: dict[str, dict[str, float]] = {}
    """Classification: each version's share of each label."""
    shift: float | None = None
    """Prediction-distribution shift: Jensen-Shannon distance of the label shares (base 2,
    classification) or the two-sample Kolmogorov-Smirnov statistic (regression)."""
    shift_test: str = ""
    latency: dict[str, LatencySummary]
    """``champion`` and ``challenger``."""
    metrics: dict[str, dict[str, float | None]] = {}
    """With labels in the replay: ``champion`` and ``challenger`` metrics on the rows sent."""
    metric_deltas: dict[str, float | None] = {}
    """Challenger minus champion, per metric."""
    primary_metric: str | None = None
    gates: list[ShadowGateVerdict] = []
    passed: bool = True
    disagreements: list[dict[str, Any]] = []
    """Up to 20 rows where they disagree: row number, champion and challenger predictions."""

    @property
    def failed(self) -> list[ShadowGateVerdict]:
        return [g for g in self.gates if not g.passed]
