"""``bentos/<name>/release/rollout.yaml``: a challenger's share of live traffic, and its history.

Beside ``promotions.yaml`` (the promoted pointer), a plain file reviewed in git: which version is
rolled out (``challenger``) against which promoted one (``promoted``), the share of requests it
gets, whether the rollout is ``active`` or was ``aborted``, and every change (``start``,
``advance``, ``abort``: who, when, why, the share before and after). The canary router reads
``share`` and ``state`` from it while it serves (``workbench/serving/router.py``), so ``rollout
advance`` and ``abort`` take effect without a restart. Beside it, ``rollout-kubernetes.yaml`` is
the same split for a cluster (two Deployments and a Gateway API HTTPRoute with weights).

As with promotions: edited round-trip (comments survive), both files rendered in full and renamed
into place (the manifest put back if the history cannot be), changes serialised by a lock file
(``release/.rollout.lock``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from workbench.errors import VersionError
from workbench.promotions import (
    LOCK_WAIT_S,
    plain_data,
    release_dir,
    restore_file,
    round_trip_yaml,
    write_beside,
)

ROLLOUT_FILE = "rollout.yaml"
ROLLOUT_MANIFEST_FILE = "rollout-kubernetes.yaml"
LOCK_FILE = ".rollout.lock"
HEADER = (
    "A challenger's share of live traffic, and every change to it: written by `workbench serve\n"
    "NAME --canary VERSION` and `workbench rollout advance|abort`. The canary router reads\n"
    "`share` and `state` while it serves. Review it like code.\n"
)


class RolloutChange(BaseModel):
    """One change of a rollout."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action: Literal["start", "advance", "abort"]
    share: float = Field(ge=0.0, le=1.0)
    """The challenger's share after the change."""
    previous_share: float | None = None
    challenger: str
    promoted: str
    at: str
    by: str
    reason: str = ""


class Rollout(BaseModel):
    """The rollout of one model: its state now and the changes that led to it, oldest first."""

    model_config = ConfigDict(frozen=True)

    name: str
    state: Literal["active", "aborted"] = "aborted"
    promoted: str | None = None
    """The version that answers the rest of the traffic (promoted when the rollout started)."""
    challenger: str | None = None
    share: float = Field(default=0.0, ge=0.0, le=1.0)
    history: list[RolloutChange] = []

    @property
    def active(self) -> bool:
        return self.state == "active" and self.challenger is not None

    @property
    def served_share(self) -> float:
        """The challenger's share of the traffic a router sends now (0 unless active)."""
        return self.share if self.active else 0.0


def rollout_path(root: Path, name: str) -> Path:
    return release_dir(root, name) / ROLLOUT_FILE


def _load(path: Path) -> CommentedMap | None:
    if not path.is_file():
        return None
    try:
        document = round_trip_yaml().load(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        raise VersionError(
            f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix it by hand or restore it "
            "from git (`git checkout -- <file>`)"
        ) from exc
    if document is not None and not isinstance(document, CommentedMap):
        raise VersionError(f"{path} holds a {type(document).__name__}, not a rollout; restore it")
    return document


def _parse(document: CommentedMap | None, name: str, path: Path) -> Rollout:
    if document is None:
        return Rollout(name=name)
    try:
        rollout = Rollout.model_validate({"name": name, **plain_data(document)})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise VersionError(
            f"{path}: field `{field}`: {first['msg']}; fix it by hand or restore it from git"
        ) from exc
    if rollout.name != name:
        raise VersionError(f"{path} is the rollout of {rollout.name!r}, not of {name!r}")
    return rollout


def read_rollout(root: Path, name: str) -> Rollout:
    """The rollout of ``name`` in the project at ``root`` (none yet: an aborted, empty one)."""
    path = rollout_path(root, name)
    return _parse(_load(path), name, path)


def record_rollout(
    root: Path, name: str, change: RolloutChange, *, expected: Rollout, manifest: str
) -> Rollout:
    """Apply ``change`` (the rollout must still be ``expected``: another change in between is
    refused), append it to the history and write the cluster recipe beside it."""
    lock_path = release_dir(root, name) / LOCK_FILE
    lock = FileLock(lock_path, timeout=LOCK_WAIT_S)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise VersionError(
            f"another rollout change of {name!r} has held {lock_path} for {LOCK_WAIT_S:.0f} s; "
            "let it finish and run this again (nothing was changed)"
        ) from None
    try:
        return _record(root, name, change, expected=expected, manifest=manifest)
    finally:
        lock.release()


def _record(
    root: Path, name: str, change: RolloutChange, *, expected: Rollout, manifest: str
) -> Rollout:
    path = rollout_path(root, name)
    document = _load(path)
    current = _parse(document, name, path)
    if current.model_dump(exclude={"history"}) != expected.model_dump(exclude={"history"}):
        raise VersionError(
            f"the rollout of {name!r} changed while this {change.action} was checked "
            f"({path}); run it again"
        )
    if document is None:
        document = CommentedMap()
        document["name"] = name
        document.yaml_set_start_comment(HEADER)
    document["state"] = "aborted" if change.action == "abort" else "active"
    document["promoted"] = change.promoted
    document["challenger"] = change.challenger
    document["share"] = change.share
    entries = document.get("history")
    if not isinstance(entries, CommentedSeq):
        entries = CommentedSeq()
        document["history"] = entries
    entries.append(CommentedMap(change.model_dump(mode="json", exclude_none=True)))
    buffer = io.StringIO()
    round_trip_yaml().dump(document, buffer)
    text = buffer.getvalue()
    updated = _parse(round_trip_yaml().load(text), name, path)
    manifest_path = release_dir(root, name) / ROLLOUT_MANIFEST_FILE
    before = manifest_path.read_bytes() if manifest_path.is_file() else None
    temps: list[Path] = []
    try:
        temps.append(write_beside(path, text))
        temps.append(write_beside(manifest_path, manifest))
        os.replace(temps[1], manifest_path)
        try:
            os.replace(temps[0], path)
        except BaseException:
            restore_file(manifest_path, before)
            raise
    except OSError as exc:
        raise VersionError(
            f"could not write {path} ({exc}); nothing was changed, fix the folder and retry"
        ) from exc
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return updated


__all__ = [
    "ROLLOUT_FILE",
    "ROLLOUT_MANIFEST_FILE",
    "Rollout",
    "RolloutChange",
    "read_rollout",
    "record_rollout",
    "rollout_path",
]
