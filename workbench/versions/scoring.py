"""A stored version re-scored on the project's test data (never the metrics copied from its card).

The model each Bento serves is loaded from the store, unpickled only when its bytes are the ones
a record of the project vouches for (:func:`workbench.integrity.load_stored_model`), and scored
with the validate stage's metric code on the rows of ``data.test`` in ``workbench.yaml``, so two
versions are always compared on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.config import Config
from workbench.data import load_frame, split_features
from workbench.errors import DataError, VersionError, WorkbenchError
from workbench.integrity import load_stored_model
from workbench.validation.metrics import (
    Metrics,
    Outputs,
    align_labels,
    capabilities,
    metric_values,
    model_outputs,
    primary_metric,
)
from workbench.versions.catalog import StoredVersion


@dataclass(frozen=True)
class TestData:
    """The project's test rows, read once and shared by every version scored on them."""

    features: pd.DataFrame
    target: pd.Series
    path: str

    @classmethod
    def load(cls, config: Config) -> TestData:
        frame = load_frame(config.test_path, what="test data")
        X, y = split_features(frame, config.data.target, what="test data")
        return cls(features=X, target=y, path=str(config.test_path))


@dataclass(frozen=True)
class Scored:
    """One version's outputs and metrics on the test rows."""

    version: StoredVersion
    model: Any
    outputs: Outputs
    labels: np.ndarray
    metrics: Metrics
    unavailable: dict[str, str]
    primary: str


def load_version_model(version: StoredVersion, root: Path) -> Any:
    """The scikit-learn model a version's Bento serves, from the store, if the project at
    ``root`` vouches for its bytes (:class:`~workbench.errors.IntegrityError` otherwise)."""
    model_tag = version.card.model_tag
    try:
        return load_stored_model(root, model_tag)
    except WorkbenchError:
        raise
    except Exception as exc:
        raise VersionError(
            f"the model {model_tag!r} of {version.tag} cannot be loaded from the store "
            f"({type(exc).__name__}: {str(exc)[:200]}); package that version again"
        ) from exc


def score_version(version: StoredVersion, data: TestData, config: Config) -> Scored:
    """Re-score ``version`` on ``data`` with every metric of its task."""
    names = version.schema.names
    missing = [c for c in names if c not in data.features.columns]
    if missing:
        raise DataError(
            f"the test data {data.path} lacks columns {version.tag} needs: {missing[:5]}; "
            "compare versions on test data with every column both were trained on"
        )
    model = load_version_model(version, config.root)
    task = version.task
    if task == "classification":
        labels, unseen = align_labels(data.target, np.asarray(model.classes_))
        if unseen:
            raise DataError(
                f"the test data {data.path} holds classes {unseen[:5]} that {version.tag} never "
                "saw; it cannot be scored on these rows"
            )
    else:
        labels = data.target.to_numpy(dtype=float)
    outputs = model_outputs(model, data.features[names], task, what=version.tag)
    values, unavailable = metric_values(task, labels, outputs)
    proba, scores = capabilities(model, task)
    primary = primary_metric(task, config.validation.primary_metric, proba=proba, scores=scores)
    return Scored(
        version=version,
        model=model,
        outputs=outputs,
        labels=labels,
        metrics=values,
        unavailable=unavailable,
        primary=primary,
    )
