"""Two versions of one model side by side: metrics re-scored on the same rows, and what changed.

Both are re-scored on the project's test data (not their model cards' copies, which may come from
other test data). The rest is read from the cards: the input schema (columns added, removed,
retyped, categories gained or lost, nullability), the pinned packages and the serving options.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from workbench.config import Config
from workbench.data import sample_index
from workbench.errors import VersionError
from workbench.results import ColumnChange, CompareResult
from workbench.runtime.card import ModelCard
from workbench.schema import InputSchema
from workbench.versions.catalog import StoredVersion, resolve_version
from workbench.versions.scoring import Scored, TestData, score_version

REGRESSION_TOLERANCE = 1e-6
"""Two regression predictions within this (absolute) count as the same answer."""
PLOT_ROWS = 500


def schema_changes(a: InputSchema, b: InputSchema) -> list[ColumnChange]:
    """What ``b``'s input columns change relative to ``a``'s."""
    old = {c.name: c for c in a.columns}
    new = {c.name: c for c in b.columns}
    changes = [
        ColumnChange(column=n, change="removed", detail=f"{old[n].kind} ({old[n].dtype})")
        for n in old
        if n not in new
    ]
    for name, column in new.items():
        before = old.get(name)
        if before is None:
            changes.append(
                ColumnChange(column=name, change="added", detail=f"{column.kind} ({column.dtype})")
            )
            continue
        if (before.kind, before.dtype) != (column.kind, column.dtype):
            detail = f"{before.kind} ({before.dtype}) -> {column.kind} ({column.dtype})"
            changes.append(ColumnChange(column=name, change="retyped", detail=detail))
        if before.nullable != column.nullable:
            detail = "now nullable" if column.nullable else "no longer nullable"
            changes.append(ColumnChange(column=name, change="nullable", detail=detail))
        if before.categories != column.categories and column.kind == "category":
            gained = sorted(set(column.categories or []) - set(before.categories or []))
            lost = sorted(set(before.categories or []) - set(column.categories or []))
            parts = [f"gained {gained[:10]}" if gained else "", f"lost {lost[:10]}" if lost else ""]
            detail = "; ".join(p for p in parts if p) or "category list changed"
            changes.append(ColumnChange(column=name, change="categories", detail=detail))
    return changes


def _packages(card: ModelCard) -> dict[str, str]:
    out = {}
    for pin in card.packages:
        name, _, version = str(pin).partition("==")
        out[name] = version
    return out


def package_changes(a: ModelCard, b: ModelCard) -> list[str]:
    """Pinned packages added, removed or at another version in ``b``'s card."""
    old, new = _packages(a), _packages(b)
    lines = [f"- {n}=={old[n]}" for n in sorted(old) if n not in new]
    lines += [f"+ {n}=={new[n]}" for n in sorted(new) if n not in old]
    lines += [f"{n} {old[n]} -> {new[n]}" for n in sorted(new) if n in old and old[n] != new[n]]
    return lines


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


def option_changes(a: ModelCard, b: ModelCard) -> dict[str, list[Any]]:
    """Serving options, runtime and row policy that differ between two cards."""

    def options(card: ModelCard) -> dict[str, Any]:
        return {
            **_flat(card.serving, "serving"),
            "runtime": card.runtime.runtime,
            "unseen_categories": card.unseen_categories,
        }

    old, new = options(a), options(b)
    return {
        k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
    }


def _agreement(a: Scored, b: Scored) -> float:
    pa, pb = a.outputs.predicted, b.outputs.predicted
    if a.version.task == "regression":
        return float(np.mean(np.abs(pa.astype(float) - pb.astype(float)) <= REGRESSION_TOLERANCE))
    return float(np.mean(pa.astype(str) == pb.astype(str)))


def _version(reference: str, config: Config) -> StoredVersion:
    return resolve_version(reference, name=None if ":" in reference else config.name)


def compare_versions(config: Config, a: str, b: str) -> CompareResult:
    """Versions ``a`` and ``b`` of ``config.name`` side by side on the project's test data."""
    first, second = _version(a, config), _version(b, config)
    if first.name != second.name:
        raise VersionError(
            f"{first.tag} and {second.tag} are versions of different models ({first.name!r}, "
            f"{second.name!r}); compare two versions of one model"
        )
    if first.name != config.name:
        raise VersionError(
            f"{first.tag} is not a version of {config.name!r} ({config.root / 'workbench.yaml'}); "
            "pass the --config of its project"
        )
    if first.task != second.task:
        raise VersionError(
            f"{first.tag} is a {first.task} model and {second.tag} a {second.task} model; their "
            "metrics cannot be compared"
        )
    data = TestData.load(config)
    sa, sb = score_version(first, data, config), score_version(second, data, config)
    result: dict[str, Any] = {}
    if first.task == "classification":
        labels = [str(c) for c in (first.card.classes or [])]
        result["classes"] = labels
        result["confusion_a"] = _confusion(sa)
        result["confusion_b"] = _confusion(sb)
    else:
        index = sample_index(len(sa.labels), PLOT_ROWS, seed=config.validation.seed)
        result["actual"] = [round(float(v), 6) for v in sa.labels[index]]
        result["predictions_a"] = [round(float(v), 6) for v in sa.outputs.predicted[index]]
        result["predictions_b"] = [round(float(v), 6) for v in sb.outputs.predicted[index]]
    return CompareResult(
        name=first.name,
        a=first.tag,
        b=second.tag,
        task=first.task,
        rows=len(data.features),
        test_data=data.path,
        metrics_a=sa.metrics,
        metrics_b=sb.metrics,
        primary_metric=sa.primary,
        schema_changes=schema_changes(first.schema, second.schema),
        package_changes=package_changes(first.card, second.card),
        option_changes=option_changes(first.card, second.card),
        agreement=_agreement(sa, sb),
        **result,
    )


def _confusion(scored: Scored) -> list[list[int]]:
    classes = scored.outputs.classes
    matrix: list[list[int]] = skm.confusion_matrix(
        scored.labels, scored.outputs.predicted, labels=classes
    ).tolist()
    return matrix
