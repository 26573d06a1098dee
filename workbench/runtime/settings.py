"""The settings of a served model: one typed contract from ``workbench.yaml`` into the Bento.

``workbench.yaml``'s ``service:`` and ``monitor:`` sections *are* :class:`ServiceSettings` and
:class:`MonitorSettings` (``workbench.config`` reuses them): each setting has one name, one
default and one set of bounds, here. Packaging resolves what the config leaves to it (the batch
limits from the model's measured cost, ``runtime: auto``) and writes :class:`Settings` as
``settings.json`` beside ``service.py``, read back at start (:meth:`Settings.read`); units are
converted in one place each (the ``*_bytes`` and ``max_wait_s`` properties).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticUndefined

from .explainer import ExplanationSpec
from .live_metrics import ALL_METRICS
from .quality import QualityOptions
from .stattests import DriftOptions

API_KEY_ENV = "WORKBENCH_API_KEY"
"""Where the Bento runs, the bearer key every API route requires (``service.auth: api_key``)."""
PREDICT_PATH = "/predict"
METADATA_PATH = "/metadata"
FEEDBACK_PATH = "/feedback"
MONITOR_PATH = "/monitor"
EXPLAIN_PATH = "/explain"
DOCS_PATH = "/docs.json"
REQUEST_ID_HEADER = "x-request-id"
"""The response header of every ``POST /predict`` answer: the id ``POST /feedback`` refers to."""
CAPTURE_DIR_ENV = "WORKBENCH_CAPTURE_DIR"
"""A folder to capture requests and feedback into (JSON lines, capped); unset: none written."""

SETTINGS_FILE = "settings.json"
"""The complete :class:`Settings` beside ``service.py``."""
CARD_FILE = "model_card.json"
"""The model card beside ``service.py`` (:class:`~.card.ModelCard`, answered by ``/metadata``)."""
MODEL_FILE = "saved_model.pkl"
"""The file of a BentoML scikit-learn model that holds the pickled estimator."""
DRIFT_REFERENCE_FILE = "drift_reference.json"
"""The training inputs' drift reference beside ``service.py`` (built by the validate stage)."""
ONNX_FILE = "model.onnx"
"""The compiled model beside ``service.py`` when the Bento serves with onnxruntime."""
PREDICTION_REFERENCE_FILE = "prediction_reference.json"
"""The test rows' predictions at packaging: ``GET /monitor``'s reference for live predictions."""
README_FILE = "README.md"
"""The Bento's guide (the bentofile's description, its ``README.md``, the OpenAPI's)."""
PREDICTION_COLUMN, MIB = "prediction", 1 << 20


def field_of(model: type[BaseModel], name: str, **changes: Any) -> Any:
    """The field ``name`` of ``model`` (default, bounds, description), to declare the same
    setting in another model without writing it twice; ``changes`` override parts of it
    (``default=REQUIRED``: no default)."""
    info = copy.copy(model.model_fields[name])
    for key, value in changes.items():
        setattr(info, key, value)
    return info


REQUIRED: Any = PydanticUndefined


class Strict(BaseModel):
    """Frozen, and an unknown key is an error naming it (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Gate(Strict):
    """A quality gate: the value must be ``>= min`` and/or ``<= max``.

    A metric's name gates its value on the test data; ``cv_<metric>`` gates its mean over the
    cross-validation folds (needs ``validation.cv_folds >= 2``). ``beat_baseline`` and
    ``champion`` gate an *advantage* in the primary metric, positive when the model is better (for
    error metrics such as ``rmse`` the sign is flipped, so positive still means better):
    ``beat_baseline: {min: 0.05}`` asks for 0.05 more than a Dummy estimator fitted on the
    training data; ``champion: {min: -0.01}`` lets the model be at most 0.01 worse than the
    champion (a champion gate passes when there is no champion yet). The margin and the tolerance
    are these gate bounds, so the validate panel edits them like any other.
    """

    min: float | None = Field(default=None, description="the lowest value that passes")
    max: float | None = Field(default=None, description="the highest value that passes")

    @model_validator(mode="after")
    def _has_a_bound(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError("a gate needs `min`, `max` or both, e.g. {min: 0.9}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ServiceSettings(Strict):
    """How the Bento serves (``service:`` in ``workbench.yaml``): written into the Bento at
    packaging; its ``GET /metadata`` shows the values it was built with."""

    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="`bentoml serve` worker processes; above 1 each listens on its own "
        "SO_REUSEPORT socket, so connections spread across them",
    )
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
        default=5_000,
        ge=1,
        le=1_000_000,
        description="most rows in one request; more is 413 (score big files with `workbench "
        "score`)",
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
        description="BentoML's access log line per request (costs throughput; off: /metrics "
        "still counts them)",
    )
    tracing: bool = Field(
        default=False,
        description="OpenTelemetry spans for /predict (costs throughput; BentoML exports spans "
        "only when a tracing exporter is configured)",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS; empty disables CORS"
    )
    explain: bool = Field(
        default=False,
        description="POST /explain: per-row contributions of each input column (exact TreeSHAP "
        "or coefficients where the model allows, else sampled Shapley values); a scikit-learn "
        "tree ensemble's Bento then installs shap (~190 MB, ~4 s more start-up)",
    )

    @model_validator(mode="after")
    def _timeout_covers_the_queue(self) -> ServiceSettings:
        if self.max_latency_ms is not None and self.max_latency_ms > self.timeout * 1000:
            raise ValueError(
                f"max_latency_ms {self.max_latency_ms} (the queue bound) is longer than the "
                f"request timeout of {self.timeout} s: a queued request would time out (504) "
                "before it could be refused (503); raise `timeout` or lower `max_latency_ms`"
            )
        return self

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * MIB)


class PackagedService(ServiceSettings):
    """``service:`` with every choice made at packaging: what serves the model and the batch
    limits (what ``settings.json`` holds)."""

    runtime: Literal["sklearn", "onnx"] = field_of(ServiceSettings, "runtime", default=REQUIRED)
    max_queue_rows: int = field_of(ServiceSettings, "max_queue_rows", default=REQUIRED)
    max_batch_size: int = field_of(ServiceSettings, "max_batch_size", default=REQUIRED)
    max_latency_ms: int = field_of(ServiceSettings, "max_latency_ms", default=REQUIRED)

    @property
    def max_wait_s(self) -> float:
        """:attr:`max_latency_ms` in seconds (the batcher's queue bound)."""
        return self.max_latency_ms / 1000

    def cors(self) -> dict[str, Any]:
        """BentoML's ``http.cors`` configuration for :attr:`cors_origins`."""
        if not self.cors_origins:
            return {"enabled": False}
        return {
            "enabled": True,
            "access_control_allow_origins": list(self.cors_origins),
            "access_control_allow_methods": ["GET", "POST", "OPTIONS"],
            "access_control_allow_headers": ["Authorization", "Content-Type"],
            "access_control_expose_headers": ["Retry-After", "WWW-Authenticate"],
        }


class MonitorSettings(Strict):
    """Monitoring of the launched model (``monitor:`` in ``workbench.yaml``): the window the Bento
    keeps, drift options, live-metric gates and capture files (docs/monitoring.md)."""

    window_rows: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="the last rows kept in memory (all workers together) for GET /monitor; 0 "
        "turns monitoring off (no request ids, /feedback or /monitor)",
    )
    refresh_seconds: float = Field(
        default=5.0,
        ge=0.1,
        le=3600,
        description="drift and live metrics are recomputed at most this often, never per request",
    )
    min_window_rows: int = field_of(DriftOptions, "min_window_rows")
    drift_share: float = field_of(DriftOptions, "drift_share")
    min_labelled_rows: int = Field(
        default=30, ge=1, description="live metrics are reported from this many labelled rows"
    )
    public_metrics: bool = Field(
        default=False,
        description="the monitoring gauges (the status, drift, data-quality checks, prediction "
        "shares, live and validation metrics, label counts) in GET /metrics for anyone; false: "
        "only a scrape with the API key gets them (without it, /metrics has the HTTP series "
        "alone)",
    )
    fail_on_drift: bool = Field(
        default=True, description="`workbench monitor` exits 1 when the dataset drifted"
    )
    missing_p_value: float = field_of(QualityOptions, "missing_p_value")
    constant_p_value: float = field_of(QualityOptions, "constant_p_value")
    unseen_p_value: float = field_of(QualityOptions, "unseen_p_value")
    range_p_value: float = field_of(QualityOptions, "range_p_value")
    fail_on_quality: bool = Field(
        default=True,
        description="`workbench monitor` and `workbench drift` exit 1 when a data-quality check "
        "fails",
    )
    fail_on_inconclusive: bool = Field(
        default=True,
        description="`workbench monitor` and `workbench drift` exit 3 when the verdict is "
        "INCONCLUSIVE (not enough data to judge); false: exit 0",
    )
    gates: dict[str, Gate] = Field(
        default_factory=dict,
        description="gates on live metrics (over the labelled rows of the window), e.g. "
        "{accuracy: {min: 0.9}}; `workbench monitor` exits 1 when one fails",
    )
    capture_file_mb: float = Field(
        default=16.0,
        gt=0,
        le=10_240,
        description="capture (when WORKBENCH_CAPTURE_DIR is set where the Bento runs): a file "
        "is rotated at this size",
    )
    capture_total_mb: float = Field(
        default=256.0,
        gt=0,
        le=1_048_576,
        description="capture: the oldest files are deleted while all together exceed this",
    )

    @model_validator(mode="after")
    def _consistent(self) -> MonitorSettings:
        unknown = [name for name in self.gates if name not in ALL_METRICS]
        if unknown:
            raise ValueError(
                f"gate on unknown live metric {unknown[0]!r}; live metrics are the validation "
                f"metrics: {', '.join(ALL_METRICS)}"
            )
        if 0 < self.window_rows < self.min_window_rows:
            raise ValueError(
                f"window_rows {self.window_rows} is smaller than min_window_rows "
                f"{self.min_window_rows}: no column could ever be tested for drift; raise "
                "window_rows or lower min_window_rows"
            )
        if self.capture_total_mb < self.capture_file_mb:
            raise ValueError(
                f"capture_total_mb {self.capture_total_mb} is smaller than capture_file_mb "
                f"{self.capture_file_mb}: the cap must hold at least one file"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.window_rows > 0

    @property
    def drift(self) -> DriftOptions:
        """The drift options these settings choose (the others at their defaults)."""
        return DriftOptions(min_window_rows=self.min_window_rows, drift_share=self.drift_share)

    @property
    def quality(self) -> QualityOptions:
        """The data-quality thresholds these settings choose."""
        return QualityOptions(**{k: getattr(self, k) for k in QualityOptions.model_fields})

    @property
    def capture_file_bytes(self) -> int:
        return int(self.capture_file_mb * MIB)

    @property
    def capture_total_bytes(self) -> int:
        return int(self.capture_total_mb * MIB)


class Settings(Strict):
    """Everything a generated service knows about its model, decided at packaging from the
    validated schema, the model's measured cost and ``workbench.yaml`` (``settings.json``)."""

    model_tag: str
    task: Literal["classification", "regression"]
    columns: list[str]
    """Input columns in the order the model expects them."""
    dtypes: dict[str, str]
    """The dtype each column is cast to, so the model sees what it saw in training."""
    model_sha256: str = ""
    """sha256 of the stored model's :data:`MODEL_FILE` at packaging; the service refuses to start
    when the bytes differ."""
    onnx_sha256: str = ""
    """sha256 of :data:`ONNX_FILE` at packaging (``service.runtime: onnx``)."""
    classes: list[Any] | None = None
    """The classifier's ``classes_`` (the ONNX graph answers indexes into them)."""
    probabilities: bool = False
    """The model has ``predict_proba``."""
    categories: dict[str, list[str]] = Field(default_factory=dict)
    """Category columns: the values seen in training."""
    fallback: dict[str, str] = Field(default_factory=dict)
    """What replaces an unseen category when ``unseen_policy`` is ``replace``."""
    unseen_policy: Literal["accept", "replace"] = "accept"
    """``accept``: the model handles unseen categories itself; ``replace``: use ``fallback``."""
    float_rows: bool = False
    """Every column is float64: the rows of a batch become one float array."""
    frame_input: bool = True
    """The model was fitted on a DataFrame: it gets one, with the training column names."""
    labels_from_proba: bool = False
    """``predict`` is ``classes_[argmax(predict_proba)]``: one call answers both."""
    example: dict[str, Any] = Field(default_factory=dict)
    """One synthetic row (from the schema, no training data) that warms the model up at start;
    ``/readyz`` answers 503 until it has been predicted."""
    service: PackagedService
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    explanation: ExplanationSpec | None = None
    """How ``POST /explain`` explains a row (``service.explain: true``; None: not served)."""
    folder: Path = Field(default=Path(), exclude=True)
    """Where ``settings.json`` is: the model card, the references and the ONNX graph are beside
    it (set by :meth:`read`; not written)."""

    @classmethod
    def read(cls, folder: Path) -> Settings:
        """The settings in ``folder``'s :data:`SETTINGS_FILE` (a Bento's ``src``)."""
        settings = cls.model_validate_json((folder / SETTINGS_FILE).read_bytes())
        return settings.model_copy(update={"folder": folder})

    def write(self) -> str:
        """The text of :data:`SETTINGS_FILE` (the same settings give the same bytes)."""
        return self.model_dump_json(indent=2) + "\n"

    @property
    def card_path(self) -> Path:
        return self.folder / CARD_FILE


__all__ = [
    "API_KEY_ENV",
    "MODEL_FILE",
    "SETTINGS_FILE",
    "Gate",
    "MonitorSettings",
    "PackagedService",
    "ServiceSettings",
    "Settings",
    "field_of",
]
