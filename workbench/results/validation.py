"""What the validate stage measured and decided, as typed data (see :mod:`workbench.reports`)."""

from __future__ import annotations

from typing import Any

from workbench.errors import GateFailure
from workbench.results.base import Result
from workbench.results.profile import ReferenceProfile
from workbench.schema import InputSchema


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


class GateVerdict(Result):
    """One gate checked against one value.

    ``metric`` is the gate's name as written in ``workbench.yaml`` (``roc_auc``, ``cv_roc_auc``,
    ``beat_baseline``, ``champion``) or ``roundtrip``, the built-in check that the model survives
    being saved and reloaded. ``reason`` says why a gate failed (or why it passed without a value).
    """

    metric: str
    value: float | None
    min: float | None = None
    max: float | None = None
    passed: bool
    reason: str = ""

    @property
    def threshold(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


class Curve(Result):
    """A thinned ROC (x = false positive rate, y = true positive rate) or precision-recall curve
    (x = recall, y = precision) for one class, with its area (ROC-AUC or average precision)."""

    label: str
    x: list[float]
    y: list[float]
    area: float | None = None


class CVResult(Result):
    """k-fold cross-validation of a clone of the model on (a sample of) the training data."""

    folds: int
    splitter: str
    seed: int
    rows: int
    """Training rows used; fewer than the training data when it was sampled."""
    sampled: bool
    per_fold: list[dict[str, float | None]] = []
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = []


class BaselineResult(Result):
    """A Dummy estimator fitted on the training data, scored on the same test data."""

    estimator: str
    metrics: dict[str, float | None]


class ChampionResult(Result):
    """The model of the same name packaged last, scored on the same test data as the candidate.

    ``tag`` is ``None`` when there is no champion; ``error`` says why one could not be scored.
    """

    tag: str | None = None
    metrics: dict[str, float | None] = {}
    """Recomputed now, on the candidate's test data."""
    stored_metrics: dict[str, float | None] = {}
    """As recorded when the champion was packaged (its own test data at the time)."""
    note: str = ""
    error: str | None = None


class FeatureImportance(Result):
    feature: str
    mean: float
    std: float


class ImportanceResult(Result):
    """Permutation importance on a seeded sample of the test data, largest first."""

    metric: str
    rows: int
    repeats: int
    features: list[FeatureImportance]
    error: str | None = None


class RoundTripResult(Result):
    """The model saved with joblib, loaded back, and asked again: same predictions?"""

    passed: bool
    rows: int
    bytes: int = 0
    mismatches: int = 0
    max_proba_diff: float | None = None
    error: str | None = None


class LatencyResult(Result):
    """In-process prediction latency on test rows (no server, no serialisation)."""

    single_row_p50_ms: float
    single_row_p95_ms: float
    single_row_calls: int
    batch_rows: int
    batch_ms: float
    """Median time of one ``predict`` call on ``batch_rows`` rows."""


class RuntimeResult(Result):
    """Whether the model compiles to an ONNX graph that answers every test row as it does."""

    runtime: str
    """``onnx`` (the graph would serve) or ``sklearn``."""
    reason: str
    precision: str | None = None
    rows_checked: int = 0
    max_difference: float | None = None
    label_mismatches: int = 0
    seconds: float = 0.0


class ValidationResult(Result):
    """What the validate stage measured and decided.

    ``metrics`` are the holdout (test data) values; ``cv``, ``baseline`` and ``champion`` hold the
    same metrics for the cross-validation folds, a Dummy estimator and the champion. The plots are
    rendered on demand (:meth:`figures`) from the data kept here, so the JSON record stays small.
    """

    name: str
    task: str
    target: str
    metrics: dict[str, float | None]
    gates: list[GateVerdict]
    passed: bool
    input_schema: InputSchema
    classes: list[Any] | None = None
    rows: dict[str, int]
    inputs: dict[str, str]
    """sha256 of the model, train and test files."""
    seconds: float
    primary_metric: str | None = None
    """The metric ``beat_baseline`` and ``champion`` compare."""
    unavailable: dict[str, str] = {}
    """Metric -> why it is ``None`` for this model or data."""
    cv: CVResult | None = None
    baseline: BaselineResult | None = None
    champion: ChampionResult | None = None
    confusion: list[list[int]] | None = None
    """Rows: true class, columns: predicted class, both in ``classes`` order."""
    roc: list[Curve] = []
    pr: list[Curve] = []
    actual: list[float] = []
    """Regression: a seeded sample of test targets, paired with ``predicted``."""
    predicted: list[float] = []
    profile: ReferenceProfile | None = None
    drift_reference_sha256: str | None = None
    """sha256 of ``drift_reference.json``, the drift reference of the training inputs written
    beside this record (it ships in the Bento)."""
    """Training-input profile for drift checks (quantile bins, category shares)."""
    importance: ImportanceResult | None = None
    roundtrip: RoundTripResult | None = None
    latency: LatencyResult | None = None
    compiled: RuntimeResult | None = None
    """The ONNX compilation and its parity on the test rows (what ``service.runtime: auto``
    would serve with)."""
    onnx_latency: LatencyResult | None = None
    """The same latency figures for the compiled graph, when it holds parity."""
    steps_s: dict[str, float] = {}
    """Seconds spent in each step of the validation."""

    @property
    def failed(self) -> list[GateVerdict]:
        return [g for g in self.gates if not g.passed]

    def raise_for_gates(self) -> None:
        """Raise :class:`GateFailure` naming every failed gate and why (stops a headless run)."""
        if self.failed:
            names = [g.metric for g in self.failed]
            raise GateFailure(
                names,
                f"{self.name}: {len(names)} gate(s) failed: "
                + "; ".join(
                    f"{g.metric} = {_number(g.value)} (needs {g.threshold})"
                    + (f": {g.reason}" if g.reason else "")
                    for g in self.failed
                )
                + ". Improve the model or change the gates in workbench.yaml; "
                "nothing was packaged.",
            )
