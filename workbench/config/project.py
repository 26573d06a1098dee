"""``workbench.yaml``'s model: the one file that describes a model project, validated.

The loaded :class:`Config` is frozen and passed explicitly to every stage. Relative paths in the
file resolve against the file's own folder, so a run works from any working directory. The
``service:`` and ``monitor:`` sections are the runtime's own settings models
(:class:`~workbench.runtime.settings.ServiceSettings`, :class:`~workbench.runtime.settings.
MonitorSettings`): what a person writes here is what the Bento reads, under the same names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from workbench.errors import ConfigError
from workbench.options import RetrainOptions
from workbench.project_code import CODE_KEY, entry_problem, import_roots
from workbench.project_code import module_name as code_module_name
from workbench.runtime.live_metrics import ALL_METRICS as ALL_METRICS
from workbench.runtime.live_metrics import LOWER_IS_BETTER as LOWER_IS_BETTER
from workbench.runtime.live_metrics import METRICS as METRICS
from workbench.runtime.settings import Gate as Gate
from workbench.runtime.settings import MonitorSettings as MonitorSettings
from workbench.runtime.settings import ServiceSettings as ServiceSettings
from workbench.runtime.settings import Strict

Task = Literal["classification", "regression"]

#: Metrics the validate stage computes on the holdout data, by task. A gate may name any of them.
#: Classification: precision, recall and F1 are for the positive class (the model's last class,
#: ``classes_[1]``) when there are two classes and macro-averaged otherwise; ROC-AUC is one-vs-rest
#: (macro) for more than two classes and uses ``predict_proba`` or else ``decision_function``;
#: ``log_loss`` and ``brier`` need ``predict_proba``. Regression: ``median_ae`` is the median
#: absolute error. (The table lives in the runtime, which scores the same metrics live.)
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
    return [*ALL_METRICS, *(CV_PREFIX + m for m in ALL_METRICS), BASELINE_GATE, CHAMPION_GATE]


def _require_known(names: Iterable[str], known: Iterable[str], *, what: str, hint: str) -> None:
    """One message, ``what`` and the first of ``names`` not ``known``, then ``hint``."""
    allowed = set(known)
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"{what} {unknown[0]!r}; {hint}")


NAME_PATTERN = r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$"


class DataSpec(Strict):
    """The data (``data:``, also written inline: ``{train: ..., test: ..., target: ...}``)."""

    train: str = Field(description="training data (CSV or Parquet); the input schema comes from it")
    test: str = Field(description="holdout data (CSV or Parquet) for metrics and serving checks")
    target: str = Field(min_length=1, description="name of the label column")


class LaunchOptions(Strict):
    """The launch stage (``launch:``): which Bento it serves, how long it waits for it, and the
    bounded load probe after the parity check."""

    ready_timeout: float = Field(
        default=90.0, gt=0, le=3600, description="seconds to wait for /readyz"
    )
    probe_requests: int = Field(
        default=200, ge=0, le=100_000, description="requests of the load probe; 0 skips it"
    )
    probe_concurrency: int = Field(
        default=4, ge=1, le=256, description="concurrent clients of the load probe"
    )
    probe_seconds: float = Field(
        default=20.0, gt=0, le=300, description="the probe also stops at this time bound"
    )
    portable: bool = Field(
        default=True,
        description="serve the Bento from a clean environment built offline from its own "
        "requirements (uv's cache), proving they suffice ('portable: proven' in launch.json); "
        "false: serve from this environment ('not proven')",
    )
    version: Literal["packaged", "promoted"] = Field(
        default="packaged",
        description="what the launch stage serves and checks: packaged: the Bento the package "
        "stage built last; promoted: the version promoted in bentos/<name>/release/promotions.yaml",
    )


class ShadowOptions(Strict):
    """``workbench shadow``: its bounds and the gates a challenger must pass (``shadow:``).

    Every gate is off until given a bound; ``workbench shadow`` exits 1 when one fails.
    """

    min_agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="gate: the share of replayed rows where the challenger answers as the "
        "champion (the same label; a regressor within `tolerance`)",
    )
    max_shift: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="gate: the prediction-distribution shift (Jensen-Shannon distance of the "
        "label shares, or the Kolmogorov-Smirnov statistic of a regressor's predictions)",
    )
    max_latency_ratio: float | None = Field(
        default=None, gt=0, description="gate: challenger p95 latency over champion p95"
    )
    min_advantage: float | None = Field(
        default=None,
        description="gate: challenger minus champion in the primary metric (positive: better), "
        "when the replay file holds the labels",
    )
    tolerance: float = Field(
        default=0.0, ge=0, description="regression: a difference up to this counts as agreement"
    )
    max_rows: int = Field(default=1_000, ge=1, le=1_000_000, description="rows replayed at most")
    max_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="the replay stops after this many seconds"
    )
    batch_rows: int = Field(
        default=1, ge=1, le=5_000, description="rows per request sent to both versions"
    )


class ValidationOptions(Strict):
    """How the validate stage measures the model (``validation:`` in ``workbench.yaml``); the
    gates stay under ``gates:``."""

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
    explain_rows: int = Field(
        default=100,
        ge=0,
        le=1_000,
        description="test rows explained (each input column's contribution, the method "
        "POST /explain uses) for the report's global summary and row plots; 0 skips it",
    )

    @model_validator(mode="after")
    def _sane(self) -> ValidationOptions:
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (no cross-validation) or at least 2")
        _require_known(
            [self.primary_metric] if self.primary_metric else [],
            ALL_METRICS,
            what="unknown primary metric",
            hint=f"known metrics: {', '.join(ALL_METRICS)}",
        )
        return self


class Config(Strict):
    """One model project, as written in ``workbench.yaml``."""

    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=63,
        description="the model and service name (lowercase letters, digits, `_`, `-`, `.`): the "
        "BentoML model, the Bento and `bentos/<name>/`",
    )
    model: str = Field(
        description="a fitted scikit-learn estimator or Pipeline saved with `joblib.dump`"
    )
    data: DataSpec = Field(description="the training and test data and the target column")
    task: Task | None = Field(
        default=None,
        description="classification or regression; inferred from the model when left out",
    )
    gates: dict[str, Gate] = Field(
        default_factory=dict,
        description="quality gates, name -> {min, max}: all must hold before anything is packaged",
    )
    validation: ValidationOptions = Field(
        default_factory=ValidationOptions, description="how the validate stage measures the model"
    )
    service: ServiceSettings = Field(
        default_factory=ServiceSettings, description="how the Bento serves: auth, runtime, limits"
    )
    launch: LaunchOptions = Field(
        default_factory=LaunchOptions, description="what the launch stage serves and probes"
    )
    monitor: MonitorSettings = Field(
        default_factory=MonitorSettings, description="the launched model's monitoring window"
    )
    shadow: ShadowOptions = Field(
        default_factory=ShadowOptions, description="`workbench shadow`: bounds and gates"
    )
    retrain: RetrainOptions = Field(
        default_factory=RetrainOptions,
        description="`workbench retrain`: how the challenger is fitted, the split of new rows",
    )
    code: list[str] = Field(
        default_factory=list,
        description="the project's other module files and package folders (as MLflow's "
        "code_paths): each imports under its own name wherever the model loads, and what the "
        "model uses of them ships in the Bento; the config's own folder always does",
    )
    root: SkipJsonSchema[Path] = Field(default=Path("."), exclude=True)
    """The folder the config file lives in; relative paths resolve against it (not a key of the
    file: set by :func:`load_config`)."""

    @model_validator(mode="after")
    def _known_metrics(self) -> Config:
        _require_known(
            self.gates,
            known_gates(),
            what="gate on unknown metric",
            hint=f"known metrics: {', '.join(ALL_METRICS)}; {CV_PREFIX}<metric> gates the "
            f"cross-validation mean; {BASELINE_GATE} and {CHAMPION_GATE} gate the advantage over "
            "a Dummy model and over the champion",
        )
        return self

    @model_validator(mode="after")
    def _code_exists(self) -> Config:
        seen: dict[str, str] = {}
        for value in self.code:
            entry = self.path(value)
            name = code_module_name(entry)
            problem = entry_problem(entry) or (
                f"it imports as {name!r}, as {seen[name]!r} does" if name in seen else None
            )
            if problem:
                raise ValueError(
                    f"`{CODE_KEY}` entry {value!r}: {problem}; list module files (.py) and "
                    "package folders, relative to workbench.yaml"
                )
            seen[name] = value
        return self

    @property
    def code_paths(self) -> list[Path]:
        """The ``code:`` entries, resolved."""
        return [self.path(value) for value in self.code]

    @property
    def import_roots(self) -> list[Path]:
        """Where the project's own modules import from: its folder, then the folders holding
        the ``code:`` entries."""
        return import_roots(self.root, self.code_paths)

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

    def with_gates(self, gates: Mapping[str, Gate | Mapping[str, float | None]]) -> Config:
        """A copy with other gates (the validate panel edits thresholds this way); an impossible
        gate (no bound, ``min`` above ``max``) is one :class:`ConfigError` naming it."""
        checked: dict[str, Gate] = {}
        for name, gate in gates.items():
            values = gate.model_dump() if isinstance(gate, Gate) else dict(gate)
            try:
                checked[name] = Gate.model_validate(values)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                shown = f" `{where}` (value: {first.get('input')!r})" if where else ""
                raise ConfigError(
                    f"gate `{name}`{shown}: {first['msg'].removeprefix('Value error, ')}; "
                    "change the threshold and retry"
                ) from exc
        return self.model_copy(update={"gates": checked})

    def to_yaml(self) -> str:
        """The config as YAML, paths as written (relative stays relative)."""
        data = self.model_dump(mode="json", exclude_none=True, exclude={"root"})
        data["gates"] = {k: g.model_dump(exclude_none=True) for k, g in self.gates.items()}
        return yaml.safe_dump(data, sort_keys=False)
