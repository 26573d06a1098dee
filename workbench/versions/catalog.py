"""The packaged versions of a model: Bentos in the BentoML store, joined with the run records.

Read-only. A version is a Bento built by workbench (label ``generated-by: workbench``); what it
says about itself comes from the model card it carries (``src/model_card.json``), where it came
from from the manifests of the project's runs (``runs/*/manifest.json``) and the notebook
session's record (``.workbench/package.json``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any

import bentoml

from workbench.artifacts import RECORDS_DIR
from workbench.config import NAME_PATTERN
from workbench.errors import VersionError
from workbench.promotions import history_path, read_history
from workbench.results import GateVerdict, VersionInfo, VersionsResult
from workbench.runtime.card import ModelCard
from workbench.runtime.settings import CARD_FILE
from workbench.schema import InputSchema

CARD = Path("src") / CARD_FILE
MANIFEST = Path("src") / "deploy" / "kubernetes.yaml"


@dataclass(frozen=True)
class StoredVersion:
    """A Bento of the store and its model card."""

    tag: str
    path: Path
    created: str
    card: ModelCard

    @property
    def name(self) -> str:
        return self.tag.split(":", 1)[0]

    @property
    def schema(self) -> InputSchema:
        return self.card.input_schema

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def gates(self) -> list[GateVerdict]:
        return [GateVerdict.model_validate(g) for g in self.card.gates]

    @property
    def runtime(self) -> str:
        return self.card.runtime.runtime

    @property
    def manifest(self) -> str | None:
        path = self.path / MANIFEST
        return path.read_text() if path.is_file() else None


def _stored(bento: Any) -> StoredVersion | None:
    path = Path(str(bento.path))
    card_path = path / CARD
    if bento.info.labels.get("generated-by") != "workbench" or not card_path.is_file():
        return None
    created = bento.info.creation_time.astimezone(timezone.utc)
    return StoredVersion(
        tag=str(bento.tag),
        path=path,
        created=created.isoformat(timespec="seconds"),
        card=ModelCard.read(card_path),
    )


#: BentoML's bound on a tag's name and on its version.
TAG_PART_MAX = 63


def check_reference(reference: str) -> str:
    """``reference`` if it is a model name, ``NAME:VERSION`` or a version; anything else (a path
    such as ``../x``, spaces, capitals, a second colon) is a :class:`VersionError` before it is
    used to find a file or a version."""
    parts = reference.split(":", 1)
    for part in parts:
        if len(part) > TAG_PART_MAX or not re.fullmatch(NAME_PATTERN, part):
            raise VersionError(
                f"{reference!r} is not a model name or NAME:VERSION: a name and a version are "
                f"lowercase letters, digits, `_`, `-` and `.`, start and end with a letter or "
                f"digit, at most {TAG_PART_MAX} characters; `workbench versions NAME` lists them"
            )
    return reference


def stored_versions(name: str) -> list[StoredVersion]:
    """Every workbench-built Bento of ``name`` in the store, newest first."""
    check_reference(name)
    try:
        bentos = bentoml.bentos.list(name)
    except bentoml.exceptions.NotFound:
        bentos = []
    found = [v for v in (_stored(b) for b in bentos) if v is not None and v.name == name]
    return sorted(found, key=lambda v: v.created, reverse=True)


def resolve_version(reference: str, *, name: str | None = None) -> StoredVersion:
    """The stored version ``reference`` names (``name:version``, or a version of ``name``).

    An unknown tag, a Bento workbench did not build or one of another model is a
    :class:`VersionError` listing what there is.
    """
    check_reference(reference)
    tag = reference if ":" in reference else f"{name}:{reference}" if name else reference
    model, _, version = tag.partition(":")
    if not version:
        raise VersionError(
            f"{reference!r} names no version; give NAME:VERSION (see `workbench versions NAME`)"
        )
    if name is not None and model != name:
        raise VersionError(
            f"{tag} is a version of {model!r}, not of {name!r}; give a version of {name!r} "
            f"(see `workbench versions {name}`)"
        )
    known = stored_versions(model)
    matches = [v for v in known if v.tag == tag or v.tag.split(":", 1)[1].startswith(version)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise VersionError(
            f"version {version!r} of {model!r} is ambiguous ({', '.join(v.tag for v in matches)});"
            " give more of it"
        )
    listed = ", ".join(v.tag.split(":", 1)[1] for v in known[:8]) or "none"
    raise VersionError(
        f"unknown version {tag!r}: the BentoML store has no workbench-built Bento of that tag "
        f"(versions of {model!r}: {listed}); run `workbench versions {model}` or package it first"
    )


def run_records(root: Path) -> dict[str, tuple[str, str | None, bool | None]]:
    """Bento tag -> (run folder, git commit, dirty) from the runs' manifests and the session."""
    found: dict[str, tuple[str, str | None, bool | None]] = {}
    session = root / RECORDS_DIR / "package.json"
    if session.is_file():
        try:
            tag = json.loads(session.read_text()).get("bento_tag")
        except (json.JSONDecodeError, AttributeError):
            tag = None
        if tag:
            found[str(tag)] = (RECORDS_DIR, None, None)
    runs = sorted((root / "runs").glob("*/manifest.json")) if (root / "runs").is_dir() else []
    for manifest_path in runs:  # oldest first: the first run that built a Bento wins
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            continue
        tag = manifest.get("bento_tag") if isinstance(manifest, dict) else None
        if not tag or (tag in found and found[tag][0] != RECORDS_DIR):
            continue
        git = manifest.get("git") or {}
        run = manifest_path.parent.relative_to(root).as_posix()
        found[str(tag)] = (run, git.get("commit"), git.get("dirty"))
    return found


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_versions(root: Path, name: str) -> VersionsResult:
    """Every packaged version of ``name``, newest first, with its run, commit and the pointer."""
    check_reference(name)
    history = read_history(root, name)
    runs = run_records(root)
    versions = []
    for stored in stored_versions(name):
        run, commit, dirty = runs.get(stored.tag, (None, None, None))
        card = stored.card
        versions.append(
            VersionInfo(
                tag=stored.tag,
                created=stored.created,
                model_tag=card.model_tag,
                task=stored.task,
                metrics=card.metrics,
                gates=stored.gates,
                passed=card.passed,
                size_bytes=_size(stored.path),
                runtime=stored.runtime,
                run=run,
                git_commit=commit,
                git_dirty=dirty,
                promoted=stored.tag == history.promoted,
            )
        )
    task = versions[0].task if versions else None
    return VersionsResult(
        name=name,
        versions=versions,
        promoted=history.promoted,
        rollback_target=history.rollback_target,
        history_file=str(history_path(root, name)),
        primary_metric={"classification": "roc_auc", "regression": "r2"}.get(task or ""),
    )
