"""The model card: what a Bento says about itself (``model_card.json`` beside ``service.py``,
answered by ``GET /metadata``), typed for every reader.

Packaging writes it; the runtime, the versions catalog and comparison, monitoring, batch scoring
and the launch checks read it. A card from an older workbench may lack fields (they take their
defaults) and a newer one may carry more (kept as they are, and answered by ``/metadata``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .columns import InputSchema


class RuntimeCard(BaseModel):
    """What serves the model (scikit-learn or an ONNX graph) and the evidence for it."""

    model_config = ConfigDict(frozen=True, extra="allow")

    runtime: str = "sklearn"
    why: str | None = None
    precision: str | None = None
    rows_checked: int = 0
    max_difference: float | None = None
    label_mismatches: int = 0
    onnx_sha256: str | None = None


class ModelCard(BaseModel):
    """The card's fields, in the order the file lists them."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = ""
    model_tag: str = ""
    task: str = ""
    target: str | None = None
    classes: list[Any] | None = None
    input_schema: InputSchema = Field(default_factory=lambda: InputSchema(columns=[]))
    unseen_categories: str = "accept"
    serving: dict[str, Any] = Field(default_factory=dict)
    """How the service was set up, for people: the batch limits and why, the body and row
    limits, the input path (the settings themselves are ``settings.json``)."""
    runtime: RuntimeCard = Field(default_factory=RuntimeCard)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    gates: list[dict[str, Any]] = Field(default_factory=list)
    """The gate verdicts at validation (``workbench.results.GateVerdict``)."""
    passed: bool = False
    inputs_sha256: dict[str, str] = Field(default_factory=dict)
    packages: list[str] = Field(default_factory=list)
    auth: str = ""
    model_sha256: str = ""
    monitor: dict[str, Any] = Field(default_factory=dict)
    explanation: dict[str, Any] | None = None
    """``POST /explain``'s method, output units, base values, sample size and additivity
    (:meth:`~.explainer.ExplanationSpec.card`); None: the Bento does not explain."""
    model_needs: dict[str, Any] = Field(default_factory=dict)
    """What the model's pickle references: each package pinned (``packages``: the pin, the
    modules it was found from, whether the Bento installs it) and each project file shipped
    (``code``: its sha256 and modules); see ``packaging/requirements.py``."""
    """The monitoring settings (``monitor:`` in ``workbench.yaml``) it was packaged with."""

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        """The card in ``path``; ``ValueError`` (naming the file) when it is not one."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ValueError(f"{path} is not a model card: `{where}`: {first['msg']}") from None

    def write(self) -> str:
        """The text of ``model_card.json`` (the same card gives the same bytes)."""
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"

    @property
    def input_columns(self) -> list[str]:
        return self.input_schema.names


__all__ = ["ModelCard", "RuntimeCard"]
