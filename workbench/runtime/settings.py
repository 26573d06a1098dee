"""What the generated ``service.py`` tells the runtime about its model: one frozen value.

Everything here was decided at packaging time from the validated schema and the model's measured
cost; ``model_card.json`` in the Bento says what was chosen and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_KEY_ENV = "WORKBENCH_API_KEY"
"""Set this where the Bento runs to require ``Authorization: Bearer <key>`` on every API route."""
PREDICT_PATH = "/predict"
METADATA_PATH = "/metadata"
#: Routes that stay open when an API key is set: health, metrics and the API docs.
OPEN_PATHS = ("/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json")


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
    """Most rows in one model call."""
    max_queue_ms: int = 1000
    """A request queued longer than this is answered 503 (overloaded)."""
    example: dict[str, Any] = field(default_factory=dict)
    """One synthetic row (from the schema, no training data) that warms the model up at start."""
    cors_origins: list[str] = field(default_factory=list)
