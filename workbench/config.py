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

#: Metrics the validate stage computes, by task. A gate may name any of them.
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1", "roc_auc"),
    "regression": ("mae", "rmse", "r2"),
}
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
    timeout: int = Field(default=30, ge=1, le=3600, description="request timeout in seconds")


class LaunchOptions(_Strict):
    ready_timeout: float = Field(
        default=90.0, gt=0, le=3600, description="seconds to wait for /readyz"
    )
    probe_requests: int = Field(default=200, ge=0, le=100_000, description="0 skips the load probe")
    probe_concurrency: int = Field(default=4, ge=1, le=256)
    probe_seconds: float = Field(default=20.0, gt=0, le=300, description="time bound of the probe")


class Config(_Strict):
    """One model project, as written in ``workbench.yaml``."""

    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    model: str
    data: DataSpec
    task: Task | None = None
    gates: dict[str, Gate] = Field(default_factory=dict)
    service: ServiceOptions = Field(default_factory=ServiceOptions)
    launch: LaunchOptions = Field(default_factory=LaunchOptions)
    root: Path = Field(default=Path("."), exclude=True)
    """The folder the config file lives in; relative paths resolve against it."""

    @model_validator(mode="after")
    def _known_metrics(self) -> Config:
        known = {m for names in METRICS.values() for m in names}
        for metric in self.gates:
            if metric not in known:
                raise ValueError(
                    f"gate on unknown metric {metric!r}; known metrics: {', '.join(sorted(known))}"
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
