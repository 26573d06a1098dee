"""What the generated ``service.py`` tells the runtime about its model: one frozen value.

Everything here was decided at packaging time from the validated schema, the model's measured
cost and ``service:`` in ``workbench.yaml``; ``model_card.json`` in the Bento says what was chosen
and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

API_KEY_ENV = "WORKBENCH_API_KEY"
"""Where the Bento runs, the bearer key every API route requires (``service.auth: api_key``)."""
PREDICT_PATH = "/predict"
METADATA_PATH = "/metadata"
DOCS_PATH = "/docs.json"
MODEL_FILE = "saved_model.pkl"
"""The file of a BentoML scikit-learn model that holds the pickled estimator."""
DRIFT_REFERENCE_FILE = "drift_reference.json"
"""The drift reference of the training inputs beside ``service.py`` (built by the validate
stage; :mod:`.drift` compares traffic, files and scored batches with it)."""
ONNX_FILE = "model.onnx"
"""The compiled model beside ``service.py`` when the Bento serves with onnxruntime."""
#: Routes that stay open when an API key is required: health, metrics and the API docs, matched
#: exactly; the docs page's assets are under :data:`DOCS_ASSETS`.
FEEDBACK_PATH = "/feedback"
MONITOR_PATH = "/monitor"
PREDICTION_REFERENCE_FILE = "prediction_reference.json"
"""The model's predictions on the test rows at packaging, as a one-column drift reference (the
column :data:`PREDICTION_COLUMN`): what ``GET /monitor`` compares live predictions with."""
PREDICTION_COLUMN = "prediction"
REQUEST_ID_HEADER = "x-request-id"
"""The response header of every ``POST /predict`` answer: the id ``POST /feedback`` refers to."""
CAPTURE_DIR_ENV = "WORKBENCH_CAPTURE_DIR"
"""Where the Bento runs, a folder to capture requests and feedback into (JSON lines, rotated by
size, total size capped); unset: nothing is written to disk."""
OPEN_PATHS = frozenset({"/", "/livez", "/readyz", "/healthz", "/metrics", DOCS_PATH})
DOCS_ASSETS = "/static_content/"


@dataclass(frozen=True)
class Settings:
    """The model-specific part of a generated service."""

    model_tag: str
    task: str
    columns: list[str]
    """Input columns in the order the model expects them."""
    dtypes: dict[str, str]
    """The dtype each column is cast to, so the model sees what it saw in training."""
    card_path: Path
    """``model_card.json`` beside ``service.py`` (answered by ``GET /metadata``)."""
    model_sha256: str = ""
    """sha256 of the stored model's :data:`MODEL_FILE` at packaging; the service refuses to start
    when the bytes differ."""
    runtime: Literal["sklearn", "onnx"] = "sklearn"
    """What answers: the scikit-learn model from the store, or :data:`ONNX_FILE` run by
    onnxruntime (chosen at packaging only where it answers every test row as scikit-learn)."""
    onnx_sha256: str = ""
    """sha256 of :data:`ONNX_FILE` at packaging (``runtime: onnx``)."""
    classes: list[Any] | None = None
    """The classifier's ``classes_`` (the ONNX graph answers indexes into them)."""
    probabilities: bool = False
    """The model has ``predict_proba``."""
    auth: Literal["api_key", "none"] = "api_key"
    """``api_key``: every API route requires the key from :data:`API_KEY_ENV`, and the service
    refuses to start without one; ``none``: the API is open (said in the log at start)."""
    categories: dict[str, list[str]] = field(default_factory=dict)
    """Category columns: the values seen in training."""
    fallback: dict[str, str] = field(default_factory=dict)
    """What replaces an unseen category when ``unseen_policy`` is ``replace``."""
    unseen_policy: str = "accept"
    """``accept``: the model handles unseen categories itself; ``replace``: use ``fallback``."""
    float_rows: bool = False
    """Every column is float64: the rows of a batch become one float array."""
    frame_input: bool = True
    """The model was fitted on a DataFrame: it gets one, with the training column names."""
    labels_from_proba: bool = False
    """``predict`` is ``classes_[argmax(predict_proba)]``: one call answers both."""
    max_batch_rows: int = 64
    """Most rows in one model call; a request with more is answered in several calls."""
    max_queue_ms: int = 1000
    """A request queued longer than this is answered 503 (overloaded), with ``Retry-After``."""
    max_queue_rows: int = 8192
    """Rows that may wait for the model; a request that would exceed it is answered 429."""
    max_body_bytes: int = 4 << 20
    """Largest request body; a larger one is answered 413 before it is read."""
    max_request_rows: int = 5000
    """Most rows in one request; more is answered 413."""
    example: dict[str, Any] = field(default_factory=dict)
    """One synthetic row (from the schema, no training data) that warms the model up at start;
    ``/readyz`` answers 503 until it has been predicted."""
    cors_origins: list[str] = field(default_factory=list)
    workers: int = 1
    """``bentoml serve`` worker processes (each keeps its share of the monitoring window)."""
    monitor_window_rows: int = 10_000
    """The last rows kept in memory for ``GET /monitor`` (all workers together); 0: no
    monitoring (no request ids, no ``/feedback`` or ``/monitor``)."""
    monitor_refresh_s: float = 5.0
    """Drift and live metrics are recomputed at most this often (on ``/monitor`` or ``/metrics``),
    never per request."""
    monitor_min_labelled_rows: int = 30
    """Live metrics are reported once the window holds this many labelled rows."""
    monitor_capture_file_bytes: int = 16 << 20
    """Capture (``WORKBENCH_CAPTURE_DIR``): a file is rotated when it reaches this size."""
    monitor_capture_total_bytes: int = 256 << 20
    """Capture: the oldest files are deleted while all of them together exceed this size."""
    monitor_gates: dict[str, dict[str, float]] = field(default_factory=dict)
    """Live-metric gates (``monitor.gates``): metric -> ``{"min": ..., "max": ...}``."""
    monitor_drift: dict[str, float] = field(default_factory=dict)
    """Drift options (``monitor.drift``) that differ from :class:`~.drift.DriftOptions`."""
