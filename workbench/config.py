"""``workbench.yaml``: load, validate and save the one file that describes a model project.

The loaded :class:`Config` is frozen and passed explicitly to every stage. Relative paths in the
file resolve against the file's own folder, so a run works from any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workbench.errors import ConfigError

Task = Literal["classification", "regression"]

#: Metrics the validate stage computes on the holdout data, by task. A gate may name any of them.
#: Classification: precision, recall and F1 are for the positive class (the model's last class,
#: ``classes_[1]``) when there are two classes and macro-averaged otherwise; ROC-AUC is one-vs-rest
#: (macro) for more than two classes and uses ``predict_proba`` or else ``decision_function``;
#: ``log_loss`` and ``brier`` need ``predict_proba``. Regression: ``median_ae`` is the median
#: absolute error.
METRICS: dict[str, tuple[str, ...]] = {
    "classification": (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "brier",
    ),
    "regression": ("mae", "rmse", "r2", "median_ae"),
}
#: Metrics where smaller is better; for all others larger is better.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "mae", "rmse", "median_ae"})
#: Metrics that need ``predict_proba``.
NEEDS_PROBA = frozenset({"log_loss", "brier"})
#: Gate name prefix: ``cv_<metric>`` gates the mean over the cross-validation folds.
CV_PREFIX = "cv_"
#: Gate on the advantage of the model over a Dummy estimator in the primary metric.
BASELINE_GATE = "beat_baseline"
#: Gate on the advantage of the model over the champion (the model of the same name packaged
#: last) in the primary metric, both scored on the same test data.
CHAMPION_GATE = "champion"


def known_gates() -> list[str]:
    """Every gate name a config may use."""
    metrics = sorted({m for names in METRICS.values() for m in names})
    return [*metrics, *(CV_PREFIX + m for m in metrics), BASELINE_GATE, CHAMPION_GATE]


NAME_PATTERN = r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gate(_Strict):
    """A quality gate on one metric: the value must be ``>= min`` and/or ``<= max``."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError("a gate needs `min`, `max` or both, e.g. {min: 0.9}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class DataSpec(_Strict):
    train: str = Field(description="training data (CSV or Parquet); the input schema comes from it")
    test: str = Field(description="holdout data (CSV or Parquet) for metrics and serving checks")
    target: str = Field(min_length=1, description="name of the label column")


class ServiceOptions(_Strict):
    workers: int = Field(default=1, ge=1, le=64, description="`bentoml serve` worker processes")
    timeout: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="request timeout in seconds (504); never shorter than the queue bound",
    )
    auth: Literal["api_key", "none"] = Field(
        default="api_key",
        description="api_key: every API route requires 'Authorization: Bearer <key>' with the key "
        "from WORKBENCH_API_KEY where the Bento runs, and it refuses to start without one; none: "
        "an open API (the only way to serve without a key)",
    )
    runtime: Literal["auto", "sklearn", "onnx"] = Field(
        default="auto",
        description="what serves the model: auto: an ONNX graph (onnxruntime) when it answers "
        "every test row as scikit-learn does (labels equal, probabilities or values within 1e-6), "
        "else scikit-learn; onnx: the graph or a packaging error naming the rows; sklearn: never "
        "converted",
    )
    max_body_mb: float = Field(
        default=4.0,
        gt=0,
        le=1024,
        description="largest request body in MiB; larger is answered 413 before it is read",
    )
    max_request_rows: int = Field(
        default=5_000, ge=1, le=1_000_000, description="most rows in one request; more is 413"
    )
    max_queue_rows: int | None = Field(
        default=None,
        ge=1,
        description="rows that may wait for the model; a request that would exceed it is "
        "answered 429 with Retry-After; empty: eight full batches, at least max_request_rows",
    )
    max_batch_size: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="adaptive batching: most rows in one model call; empty: chosen at packaging "
        "from the model's measured cost per call and per row",
    )
    max_latency_ms: int | None = Field(
        default=None,
        ge=1,
        le=60_000,
        description="adaptive batching: a request queued longer is answered 503 (overloaded); "
        "empty: chosen at packaging (at least 1000)",
    )
    access_log: bool = Field(
        default=False,
        description="BentoML's access log line per request (off: /metrics still counts them)",
    )
    tracing: bool = Field(
        default=False,
        description="OpenTelemetry spans for /predict (BentoML exports spans only when a tracing "
        "exporter is configured)",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS; empty disables CORS"
    )

    @model_validator(mode="after")
    def _timeout_covers_the_queue(self) -> ServiceOptions:
        if self.max_latency_ms is not None and self.max_latency_ms > self.timeout * 1000:
            raise ValueError(
                f"max_latency_ms {self.max_latency_ms} (the queue bound) is longer than the "
                f"request timeout of {self.timeout} s: a queued request would time out (504) "
                "before it could be refused (503); raise `timeout` or lower `max_latency_ms`"
            )
        return self


class LaunchOptions(_Strict):
    ready_timeout: float = Field(
        default=90.0, gt=0, le=3600, description="seconds to wait for /readyz"
    )
    probe_requests: int = Field(default=200, ge=0, le=100_000, description="0 skips the load probe")
    probe_concurrency: int = Field(default=4, ge=1, le=256)
    probe_seconds: float = Field(default=20.0, gt=0, le=300, description="time bound of the probe")


class ValidationOptions(_Strict):
    """How the validate stage measures the model (``validation:`` in ``workbench.yaml``).

    Gates stay under ``gates:``. Besides the metric names (holdout value) they accept
    ``cv_<metric>`` (the cross-validation mean; needs ``cv_folds >= 2``), ``beat_baseline`` and
    ``champion``. The last two gate an *advantage* in the primary metric, positive when the model
    is better (for error metrics such as ``rmse`` the sign is flipped, so positive still means
    better): ``beat_baseline: {min: 0.05}`` asks for 0.05 more than a Dummy estimator fitted on the
    training data; ``champion: {min: -0.01}`` lets the model be at most 0.01 worse than the model of
    the same name packaged last (a champion gate passes when there is no champion yet). The margin
    and the tolerance are these gate bounds, so the validate panel edits them like any other.
    """

    cv_folds: int = Field(
        default=5,
        ge=0,
        le=20,
        description="k-fold cross-validation of a clone on the training data; 0 disables it",
    )
    cv_max_rows: int = Field(
        default=100_000,
        ge=100,
        description="cross-validation uses a seeded sample of at most this many training rows",
    )
    seed: int = Field(default=0, ge=0, description="seed of folds, samples and permutations")
    primary_metric: str | None = Field(
        default=None,
        description="the metric beat_baseline and champion compare; default roc_auc for a "
        "classifier with scores (balanced_accuracy without), r2 for a regressor",
    )
    champion: bool = Field(
        default=True,
        description="compare with the latest other model of this name in the BentoML store",
    )
    importance_top: int = Field(
        default=10, ge=0, le=1000, description="features listed by importance; 0 skips it"
    )
    importance_repeats: int = Field(default=5, ge=1, le=100, description="permutations per feature")
    importance_max_rows: int = Field(
        default=2_000, ge=10, description="permutation importance uses a seeded test sample"
    )

    @model_validator(mode="after")
    def _sane(self) -> ValidationOptions:
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (no cross-validation) or at least 2")
        known = {m for names in METRICS.values() for m in names}
        if self.primary_metric is not None and self.primary_metric not in known:
            raise ValueError(
                f"unknown primary metric {self.primary_metric!r}; known metrics: "
                f"{', '.join(sorted(known))}"
            )
        return self


class Config(_Strict):
    """One model project, as written in ``workbench.yaml``."""

    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    model: str
    data: DataSpec
    task: Task | None = None
    gates: dict[str, Gate] = Field(default_factory=dict)
    validation: ValidationOptions = Field(default_factory=ValidationOptions)
    service: ServiceOptions = Field(default_factory=ServiceOptions)
    launch: LaunchOptions = Field(default_factory=LaunchOptions)
    root: Path = Field(default=Path("."), exclude=True)
    """The folder the config file lives in; relative paths resolve against it."""

    @model_validator(mode="after")
    def _known_metrics(self) -> Config:
        known = known_gates()
        metrics = sorted({m for names in METRICS.values() for m in names})
        for metric in self.gates:
            if metric not in known:
                raise ValueError(
                    f"gate on unknown metric {metric!r}; known metrics: {', '.join(metrics)}; "
                    f"{CV_PREFIX}<metric> gates the cross-validation mean; {BASELINE_GATE} and "
                    f"{CHAMPION_GATE} gate the advantage over a Dummy model and over the champion"
                )
        return self

    def path(self, value: str) -> Path:
        """Resolve a path written in the config against the config file's folder."""
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else (self.root / candidate).resolve()

    @property
    def model_path(self) -> Path:
        return self.path(self.model)

    @property
    def train_path(self) -> Path:
        return self.path(self.data.train)

    @property
    def test_path(self) -> Path:
        return self.path(self.data.test)

    def with_gates(self, gates: dict[str, Gate]) -> Config:
        """A copy with other gates (the validate panel edits thresholds this way)."""
        return self.model_copy(update={"gates": gates})

    def to_yaml(self) -> str:
        """The config as YAML, paths as written (relative stays relative)."""
        data = self.model_dump(mode="json", exclude_none=True, exclude={"root"})
        data["gates"] = {k: g.model_dump(exclude_none=True) for k, g in self.gates.items()}
        return yaml.safe_dump(data, sort_keys=False)


def load_config(path: str | Path) -> Config:
    """Read and validate ``workbench.yaml``; any problem is one :class:`ConfigError`."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(
            f"config file {str(path)!r} not found; pass --config PATH or create workbench.yaml "
            "(see README.md for the keys)"
        )
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc}); fix the syntax and retry") from exc
    return parse_config(raw, root=file.parent, source=str(file))


def parse_config(raw: Any, *, root: Path, source: str = "workbench.yaml") -> Config:
    """Validate an already-parsed mapping as a :class:`Config`."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of keys (name, model, data, ...), got "
            f"{type(raw).__name__}; see README.md for an example"
        )
    try:
        return Config.model_validate({**raw, "root": root})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        value = first.get("input")
        shown = "" if first["type"] == "missing" else f" (value: {value!r})"
        raise ConfigError(
            f"{source}: field `{field}`: {first['msg']}{shown}; fix that field and retry"
        ) from exc


def save_config(config: Config, path: str | Path) -> Path:
    """Write ``config`` to ``path`` (what a person clicked becomes what CI re-runs)."""
    file = Path(path)
    tmp = file.with_suffix(file.suffix + ".tmp")
    tmp.write_text(
        "# workbench.yaml: one model project. Relative paths resolve against this file's folder.\n"
        + config.to_yaml()
    )
    tmp.replace(file)
    return file
