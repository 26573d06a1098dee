"""The champion: the promoted version's model (``bentos/<name>/release/promotions.yaml``), else
the model of the same name packaged last, re-scored on the candidate's test data.

Read-only: the BentoML store is listed and the champion loaded, nothing is written. Only models
saved by workbench count (label ``generated-by: workbench``) that a record of the project vouches
for (:mod:`workbench.integrity`: packaged by this project), and a stored model made from the very
same model file as the candidate is skipped (comparing a model with itself says nothing). Anything
that stops the comparison (another task, columns the test data lacks, classes it does not know, a
model that no longer loads) is reported in :class:`ChampionResult.error`, never raised; except a
champion whose bytes are not the ones the project recorded: that is an
:class:`~workbench.errors.IntegrityError`, raised before it is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import IntegrityError
from workbench.integrity import anchors, load_stored_model
from workbench.results import ChampionResult
from workbench.runtime.card import ModelCard
from workbench.runtime.settings import CARD_FILE
from workbench.validation.metrics import align_labels, metric_values, model_outputs

TestRows = Callable[[list[str]], pd.DataFrame]
"""Returns the test-data columns asked for (the features a model needs)."""


def _promoted_model(promoted: str | None) -> str | None:
    """The model tag the promoted Bento serves (from its model card), if it is in the store."""
    import bentoml

    if promoted is None:
        return None
    try:
        card = Path(str(bentoml.bentos.get(promoted).path)) / "src" / CARD_FILE
        return ModelCard.read(card).model_tag or None
    except (bentoml.exceptions.NotFound, OSError, ValueError):
        return None


def find_champion(
    name: str, *, root: Path, candidate_sha: str, promoted: str | None = None
) -> tuple[Any | None, str]:
    """The promoted version's model when there is one (``promoted``: its Bento tag), else the
    latest workbench-saved ``name`` model the project at ``root`` packaged; never one made from
    ``candidate_sha``. And a note."""
    import bentoml

    try:
        stored = bentoml.models.list(name)
    except bentoml.exceptions.NotFound:
        stored = []
    vouched = {a.model_tag for a in anchors(root, name)}
    workbench_saved = [m for m in stored if m.info.labels.get("generated-by") == "workbench"]
    ours = [m for m in workbench_saved if str(m.tag) in vouched]
    others = [m for m in ours if _model_sha(m.info.metadata) != candidate_sha]
    promoted_model = _promoted_model(promoted)
    for model in others:
        if str(model.tag) == promoted_model:
            return model, f"the promoted version {promoted}"
    unvouched = len(workbench_saved) - len(ours)
    unknown = (
        f"; skipped {unvouched} stored model(s) of that name no record of this project vouches for"
        if unvouched
        else ""
    )
    if not others:
        why = (
            f"the only stored {name!r} model is this very model file"
            if ours
            else f"no model named {name!r} has been packaged yet"
        )
        return None, why + unknown
    latest = max(others, key=lambda m: m.info.creation_time)
    skipped = len(ours) - len(others)
    note = f"packaged {latest.info.creation_time:%Y-%m-%d %H:%M} UTC"
    if skipped:
        note += f"; skipped {skipped} stored version(s) made from this very model file"
    return latest, note + unknown


def _model_sha(metadata: Any) -> str | None:
    """The sha256 of the model file a stored model was made from (packaging records it)."""
    hashes = metadata.get("inputs_sha256")
    return hashes.get("model") if isinstance(hashes, dict) else None


def _features(model: Any, metadata: dict[str, Any]) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    schema = json.loads(metadata.get("input_schema") or '{"columns": []}')
    return [c["name"] for c in schema["columns"]]


def _stored_metrics(metadata: dict[str, Any]) -> dict[str, float | None]:
    raw = metadata.get("metrics") or {}
    return {str(k): (None if v is None else float(v)) for k, v in raw.items()}


def evaluate_champion(
    name: str,
    *,
    root: Path,
    task: str,
    candidate_sha: str,
    y: pd.Series,
    test_rows: TestRows,
    promoted: str | None = None,
) -> ChampionResult:
    """Find the champion and compute its metrics on the same test rows as the candidate."""
    found, note = find_champion(name, root=root, candidate_sha=candidate_sha, promoted=promoted)
    if found is None:
        return ChampionResult(note=note)
    tag = str(found.tag)
    metadata = dict(found.info.metadata)
    result = ChampionResult(tag=tag, stored_metrics=_stored_metrics(metadata), note=note)
    stored_task = metadata.get("task") or found.info.labels.get("task")
    if stored_task and stored_task != task:
        return result.model_copy(
            update={"error": f"it is a {stored_task} model and the candidate a {task} model"}
        )
    try:
        model = load_stored_model(root, tag)
        features = _features(model, metadata)
        X = test_rows(features)
        if task == "classification":
            classes = np.asarray(model.classes_)
            labels, unseen = align_labels(y, classes)
            if unseen:
                return result.model_copy(
                    update={"error": f"the test data holds classes {unseen[:5]} it never saw"}
                )
        else:
            labels = y.to_numpy(dtype=float)
        out = model_outputs(model, X, task, what=f"champion {tag}")
        values, _ = metric_values(task, labels, out)
    except IntegrityError:
        raise
    except Exception as exc:
        return result.model_copy(
            update={"error": f"it could not be scored ({type(exc).__name__}: {str(exc)[:300]})"}
        )
    return result.model_copy(update={"metrics": values})
