"""What the validate stage measured and decided, as typed data (see :mod:`workbench.reports`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from workbench.artifacts import sha256_file, sha256_text
from workbench.compilation import CompiledModel
from workbench.compilation.conversion import Precision
from workbench.config import Config
from workbench.errors import GateFailure, StageOrderError
from workbench.results.base import Result
from workbench.results.explanation import ExplanationResult
from workbench.results.profile import ReferenceProfile
from workbench.schema import InputSchema


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


class ValidationSettings(Result):
    """What a validation was made under besides its input files: the gates, the ``validation:``
    options, the task and the target, as flat ``section.key`` values with their sha256.

    A later stage compares it with the config it runs with (:meth:`differences`): a threshold
    lowered in the validate panel but never saved gives another hash than ``workbench.yaml``.
    """

    sha256: str
    values: dict[str, Any]
    """``gates.<name>.min``/``max``, ``validation.<option>``, ``task``, ``data.target``."""

    @classmethod
    def of(cls, config: Config) -> ValidationSettings:
        values: dict[str, Any] = {
            f"gates.{name}.{side}": bound
            for name, gate in sorted(config.gates.items())
            for side, bound in (("min", gate.min), ("max", gate.max))
            if bound is not None
        }
        values.update(
            {f"validation.{k}": v for k, v in config.validation.model_dump(mode="json").items()}
        )
        values.update({"task": config.task, "data.target": config.data.target})
        return cls(sha256=sha256_text(json.dumps(values, sort_keys=True)), values=values)

    def differences(self, current: ValidationSettings) -> list[str]:
        """Each setting that differs, as ``key: validated with A, the config has B``."""
        if current.sha256 == self.sha256:
            return []
        return [
            f"{key}: validated with {_setting(self.values, key)}, "
            f"the config has {_setting(current.values, key)}"
            for key in sorted(self.values.keys() | current.values.keys())
            if self.values.get(key, _UNSET) != current.values.get(key, _UNSET)
        ]


_UNSET = object()


def _setting(values: dict[str, Any], key: str) -> str:
    return json.dumps(values[key]) if key in values else "none"


#: The input files a validation record hashes, as its messages name them.
INPUT_FILES = {"model": "model file", "train": "training data", "test": "test data"}


def input_hashes(config: Config) -> dict[str, str]:
    """sha256 of the config's model, training and test files ("missing" for an absent file)."""
    paths = {"model": config.model_path, "train": config.train_path, "test": config.test_path}
    return {key: sha256_file(path) if path.is_file() else "missing" for key, path in paths.items()}


def changed_inputs(config: Config, recorded: dict[str, str], *, since: str) -> list[str]:
    """Each input file whose bytes differ from ``recorded``, naming the file and both hashes."""
    paths = {"model": config.model_path, "train": config.train_path, "test": config.test_path}
    return [
        f"the {INPUT_FILES[key]} {paths[key]} changed since {since} "
        f"(recorded sha256 {recorded.get(key, 'none')}, now {now})"
        for key, now in input_hashes(config).items()
        if recorded.get(key) != now
    ]


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
    precision: Precision | None = None
    rows_checked: int = 0
    max_difference: float | None = None
    label_mismatches: int = 0
    seconds: float = 0.0
    mode: str | None = None
    """What validation compiled under: ``auto`` (the decision packaging reuses) or ``sklearn``
    (``service.runtime: sklearn``, nothing converted); None in records older than this field."""
    onnx_sha256: str | None = None
    """sha256 of the kept graph, written beside this record as ``model.onnx`` (the graph
    packaging ships); None when no graph was kept."""

    @classmethod
    def of(cls, compiled: CompiledModel, *, mode: str) -> RuntimeResult:
        graph = compiled.onnx_bytes
        return cls(
            runtime=compiled.runtime,
            reason=compiled.reason,
            precision=compiled.precision,
            rows_checked=compiled.rows_checked,
            max_difference=compiled.max_difference,
            label_mismatches=compiled.label_mismatches,
            seconds=compiled.seconds,
            mode=mode,
            onnx_sha256=None if graph is None else hashlib.sha256(graph).hexdigest(),
        )

    def compiled_model(self, onnx_bytes: bytes | None) -> CompiledModel:
        """The decision as :class:`CompiledModel` again, with the graph it kept (``onnx_bytes``,
        checked against :attr:`onnx_sha256` by the caller)."""
        return CompiledModel(
            runtime="onnx" if self.runtime == "onnx" else "sklearn",
            reason=self.reason,
            onnx_bytes=onnx_bytes,
            precision=self.precision,
            rows_checked=self.rows_checked,
            max_difference=self.max_difference,
            label_mismatches=self.label_mismatches,
            seconds=self.seconds,
        )


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
    explanation: ExplanationResult | None = None
    """Each input column's contribution on a sample of test rows (``validation.explain_rows``)."""
    roundtrip: RoundTripResult | None = None
    latency: LatencyResult | None = None
    compiled: RuntimeResult | None = None
    """The ONNX compilation and its parity on the test rows (what ``service.runtime: auto``
    would serve with)."""
    onnx_latency: LatencyResult | None = None
    """The same latency figures for the compiled graph, when it holds parity."""
    steps_s: dict[str, float] = {}
    """Seconds spent in each step of the validation."""
    settings: ValidationSettings | None = None
    """The gates and options it was made under; ``None`` in records older than this field."""

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

    def raise_for_inputs(self, config: Config, *, needed_by: str, redo: str) -> None:
        """Raise :class:`StageOrderError` unless this record was made of ``config``'s name and
        files: each changed file is named with its recorded and current sha256. ``redo`` says
        what to run again (e.g. "run the validate stage again, then package")."""
        problems = changed_inputs(config, self.inputs, since="the last validation")
        if self.name != config.name:
            was, now = self.name, config.name
            problems.insert(0, f"the name changed since the last validation ({was!r}, now {now!r})")
        if problems:
            raise StageOrderError(f"{needed_by} refused: " + "; ".join(problems) + f"; {redo}")

    def raise_for_settings(self, config: Config, *, needed_by: str) -> None:
        """Raise :class:`StageOrderError` unless this record was made under ``config``'s gates
        and options (a threshold changed in the validate panel and not saved, say), naming each
        difference."""
        if self.settings is None:
            differences = ["the record does not say which gates and options it was made under"]
        else:
            differences = self.settings.differences(ValidationSettings.of(config))
        if differences:
            raise StageOrderError(
                f"{needed_by} refused: the last validation was made under other gates or options "
                "than workbench.yaml: " + "; ".join(differences) + "; save the gates or validate "
                "again"
            )
