"""What packaging takes from the last validation: its record, and the files written beside it.

The record must be of this config's files, gates and options, with every gate passed. Beside it
the validate stage wrote the drift reference (it ships in the Bento) and, where the model
compiles to an ONNX graph that answers every test row as it does, that graph: packaging ships
the very graph validation checked, by sha256, and compiles nothing again (the parity was checked
on the rows as the Bento feeds them, ``schema.as_served``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.artifacts import read_record, sha256_text
from workbench.compilation import CompiledModel, Mode, compile_model, for_mode
from workbench.config import Config
from workbench.errors import StageOrderError
from workbench.results import RuntimeResult, ValidationResult
from workbench.runtime.settings import DRIFT_REFERENCE_FILE, ONNX_FILE

REDO = "run the validate stage again before packaging"


def passed_validation(config: Config, folder: Path) -> ValidationResult:
    """The last validation record, refused unless it was made of this config's files, gates and
    options and every gate passed."""
    validation = ValidationResult.model_validate(
        read_record(folder, "validation", needed_by="package")
    )
    validation.raise_for_inputs(config, needed_by="packaging", redo=REDO)
    validation.raise_for_settings(config, needed_by="packaging")
    validation.raise_for_gates()
    return validation


def drift_reference(folder: Path, validation: ValidationResult) -> str:
    """The drift reference the validate stage wrote beside its record (it ships in the Bento)."""
    path = folder / DRIFT_REFERENCE_FILE
    text = path.read_text() if path.is_file() else ""
    if not text or sha256_text(text) != validation.drift_reference_sha256:
        raise StageOrderError(
            f"{path} is missing or is not the one the last validation wrote; {REDO}"
        )
    return text


def served_graph(
    folder: Path, validation: ValidationResult, model: Any, X_test: pd.DataFrame, *, mode: Mode
) -> tuple[CompiledModel, str]:
    """What the Bento serves under ``mode`` (``service.runtime``), and where that was decided.

    The validation's decision and graph when it made one (it compiled under ``auto`` unless the
    config said ``sklearn`` then); ``onnx`` refuses its decision to serve scikit-learn with the
    reason. Otherwise ``model`` is compiled here, on ``X_test`` as the Bento feeds it, and the
    second value says why. A graph that is missing or differs from the one the validation
    recorded is refused (:class:`StageOrderError`)."""
    recorded = validation.compiled
    if mode == "sklearn":
        compiled = compile_model(model, X_test, task=validation.task, mode=mode)
        return compiled, "not compiled: service.runtime is sklearn"
    if recorded is not None and recorded.mode == "auto":
        graph = _recorded_graph(folder, recorded)
        reused = f"its graph (sha256 {(recorded.onnx_sha256 or '')[:12]}) and parity"
        evidence = reused if graph is not None else "its parity evidence (no graph kept)"
        return for_mode(recorded.compiled_model(graph), mode), f"validation: {evidence}"
    served = validation.input_schema.as_served(X_test)
    compiled = compile_model(model, served, task=validation.task, mode=mode)
    why = (
        "the validation record predates recorded graphs"
        if recorded is None or recorded.mode is None
        else "the last validation ran under service.runtime: sklearn and converted nothing"
    )
    return compiled, f"packaging: {why}"


def _recorded_graph(folder: Path, recorded: RuntimeResult) -> bytes | None:
    """The graph the validation kept, checked against the sha256 it recorded (None: none)."""
    if recorded.onnx_sha256 is None:
        return None
    path = folder / ONNX_FILE
    data = path.read_bytes() if path.is_file() else b""
    if hashlib.sha256(data).hexdigest() != recorded.onnx_sha256:
        raise StageOrderError(
            f"{path} is missing or is not the graph the last validation kept (sha256 "
            f"{recorded.onnx_sha256[:12]}...); {REDO}"
        )
    return data
