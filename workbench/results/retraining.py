"""A retrain: the new labelled rows and their split, the challenger fitted on them, and the
verdict of each step (validate, package, shadow, promote) that let it through or stopped it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from workbench.errors import GateFailure
from workbench.results.base import Result
from workbench.results.validation import ValidationResult
from workbench.results.versions import PromotionResult, ShadowResult


class NewRows(Result):
    """The new labelled rows, checked against the training data and split by the seed (what
    **Check rows** shows; ``retrain.json`` keeps it)."""

    source: Literal["file", "capture"]
    path: str
    """The file, or the capture folder, the rows came from."""
    files: dict[str, str]
    """Each file read -> its sha256 (the data file, or every capture file)."""
    sha256: str
    """The new rows by content: the data file's sha256, or that of the labelled rows assembled
    from the capture (written as ``data/new.<suffix>`` in the run folder)."""
    rows: int
    distinct: int
    """Rows that differ in some value (identical rows stay on one side of the split)."""
    labels: dict[str, int] = {}
    """Rows per class (a classifier's new rows)."""
    skipped: dict[str, int] = {}
    """Capture: what was left out and how often (requests without feedback, unreadable lines)."""
    seed: int
    test_share: float
    train_rows: int
    test_rows: int
    train_sha256: str
    """sha256 of the part added to the training data, as written (``data/new-train.*``)."""
    test_sha256: str
    """sha256 of the part added to the test data, as written (``data/new-test.*``)."""


class FittedModel(Result):
    """How the challenger was made."""

    how: Literal["clone", "script"]
    source: str
    """``clone of <model tag> (<estimator>)`` or the training script's path."""
    script_sha256: str | None = None
    seeded: list[str] = []
    """Parameters named ``random_state`` that were unset and got the seed (a reproducible fit)."""
    rows: int
    """Training rows it was fitted on (the project's and the new ones)."""
    file: str
    sha256: str


StepName = Literal["rows", "fit", "validate", "package", "shadow", "promote"]
#: The steps of a retrain, in order.
STEPS: tuple[StepName, ...] = ("rows", "fit", "validate", "package", "shadow", "promote")
StepStatus = Literal["passed", "failed", "skipped"]


class RetrainStep(Result):
    """One step of a retrain and its verdict."""

    name: StepName
    status: StepStatus
    detail: str
    record: str | None = None
    """The step's record in the run folder (``validation.json``, ...)."""
    seconds: float = 0.0


Outcome = Literal["promoted", "refused", "unchanged"]


class RetrainResult(Result):
    """What a retrain did: ``promoted``, ``refused`` (a gate failed: nothing promoted) or
    ``unchanged`` (the challenger is the promoted version itself, byte for byte)."""

    name: str
    run_dir: str
    outcome: Outcome
    refused_by: list[str] = []
    """``step: gate`` for each failed gate (``validate: champion``, ``shadow: min_advantage``)."""
    champion: str
    """The promoted version the retrain challenged."""
    new_rows: NewRows
    model: FittedModel
    data: dict[str, str]
    """``train`` / ``test`` -> the data the stages ran on (the project's rows and the new)."""
    data_sha256: dict[str, str]
    bento_tag: str | None = None
    model_tag: str | None = None
    model_out: str | None = None
    """Where the promoted challenger's model file was written (``None`` unless promoted)."""
    steps: list[RetrainStep]
    config: dict[str, Any]
    """The config the stages ran with: the project's, with the run's model and data and the
    ``champion`` gate (``min: 0`` unless set)."""
    inputs: dict[str, str]
    """Name -> path of each file the retrain depends on (the manifest hashes them)."""
    seconds: float
    validation: ValidationResult | None = Field(default=None, exclude=True)
    """The stage results themselves, for display; their records are beside ``retrain.json``."""
    shadow: ShadowResult | None = Field(default=None, exclude=True)
    promotion: PromotionResult | None = Field(default=None, exclude=True)

    def raise_for_gates(self) -> None:
        """Raise :class:`GateFailure` naming the failed gates when the retrain was refused
        (stops a headless run with exit code 1)."""
        if self.outcome == "refused":
            raise GateFailure(
                self.refused_by,
                f"{self.name}: the retrained model was not promoted: "
                + "; ".join(self.refused_by)
                + f". {self.champion} still serves; the run folder {self.run_dir} holds what "
                "was measured",
            )
