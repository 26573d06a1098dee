"""``bentos/<name>/release/promotions.yaml``: which version is promoted, and its whole history.

A plain file in the project, reviewed and versioned in git like code (GitOps): the ``promoted``
pointer names the Bento tag that serves, ``history`` lists every promotion and rollback (who,
when, from which run and commit, why, whether it was forced and the gate verdicts that let it
through). Beside it, ``release/kubernetes.yaml`` is the promoted Bento's own manifest.

The file is edited round-trip (ruamel.yaml): a comment someone wrote in it survives the next
promotion. Both files are rendered in full before either is touched and replaced by rename, so a
failure leaves them as they were. A promotion or rollback holds a lock file beside the history
(``release/.promotions.lock``, ignored by git) from reading the pointer to renaming the files, so
two at once (two terminals, a CI job and a notebook) are serialised: the second finds the pointer
moved and is refused, rather than both passing the check and one history entry being lost.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from workbench.errors import VersionError

RELEASE_DIR = "release"
HISTORY_FILE = "promotions.yaml"
MANIFEST_FILE = "kubernetes.yaml"
LOCK_FILE = ".promotions.lock"
#: How long a promotion waits for another one of the same model to finish, in seconds.
LOCK_WAIT_S = 30.0
HEADER = (
    "Which version of this model serves, and every promotion and rollback: written by\n"
    "`workbench promote` / `workbench rollback` (or the versions panel). Review it like code.\n"
)


class Promotion(BaseModel):
    """One change of the promoted pointer."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action: Literal["promote", "rollback"]
    version: str
    """The Bento tag promoted (``name:version``)."""
    previous: str | None = None
    """The tag that was promoted before (``None`` for the first promotion)."""
    at: str
    """UTC time, ISO 8601."""
    by: str
    reason: str
    forced: bool = False
    """Promoted although a gate failed (``--force``); the failed gates are in ``gates``."""
    run: str | None = None
    """The run folder the Bento came from, when a run recorded it."""
    git_commit: str | None = None
    gates: list[str] = []
    """The verdicts checked at promotion, one line each (``champion PASS +0.0031 ...``)."""
    model_tag: str | None = None
    """The model the version serves; with the two hashes below, an anchor outside the BentoML
    store for its bytes (:mod:`workbench.integrity`): a clone of the project vouches for what it
    promoted."""
    model_sha256: str | None = None
    """sha256 of the model's pickle when it was promoted (checked before it was)."""
    bento_sha256: str | None = None
    """Digest of the Bento's files when promoted (:func:`workbench.integrity.tree_digest`)."""


class PromotionHistory(BaseModel):
    """The promoted pointer of one model and the changes that led to it, oldest first."""

    model_config = ConfigDict(frozen=True)

    name: str
    promoted: str | None = None
    history: list[Promotion] = []

    @property
    def lineage(self) -> list[str]:
        """The promoted versions a rollback steps back through: promote pushes, rollback pops."""
        stack: list[str] = []
        for change in self.history:
            if change.action == "promote":
                stack.append(change.version)
            elif stack:
                stack.pop()
        return stack

    @property
    def rollback_target(self) -> str | None:
        """The version a rollback returns to, or ``None`` when there is no earlier one."""
        stack = self.lineage
        return stack[-2] if len(stack) >= 2 else None


def release_dir(root: Path, name: str) -> Path:
    return root / "bentos" / name / RELEASE_DIR


def history_path(root: Path, name: str) -> Path:
    return release_dir(root, name) / HISTORY_FILE


def round_trip_yaml() -> YAML:
    """The YAML reader and writer of the release files: comments and key order survive."""
    yaml = YAML()  # round-trip: comments and key order survive
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    return yaml


def _load_document(path: Path) -> CommentedMap | None:
    if not path.is_file():
        return None
    try:
        document = round_trip_yaml().load(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        raise VersionError(
            f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix it by hand or restore it "
            "from git (`git checkout -- <file>`)"
        ) from exc
    if document is None:
        return None
    if not isinstance(document, CommentedMap):
        raise VersionError(
            f"{path} holds a {type(document).__name__}, not the mapping of `name`, `promoted`, "
            "`history`; restore it from git"
        )
    return document


def _parse(document: CommentedMap | None, name: str, path: Path) -> PromotionHistory:
    if document is None:
        return PromotionHistory(name=name)
    try:
        data = {"name": name, **plain_data(document)}
        history = PromotionHistory.model_validate(data, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise VersionError(
            f"{path}: field `{field}`: {first['msg']}; fix it by hand or restore it from git"
        ) from exc
    if str(document.get("name", name)) != name:
        raise VersionError(
            f"{path} is the history of {document.get('name')!r}, not of {name!r}; it is in the "
            "wrong folder"
        )
    return history


def plain_data(value: Any) -> Any:
    """A round-trip document as plain dicts and lists (for pydantic)."""
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    return value


def read_history(root: Path, name: str) -> PromotionHistory:
    """The promotion history of ``name`` in the project at ``root`` (empty when none yet)."""
    path = history_path(root, name)
    return _parse(_load_document(path), name, path)


def promoted_tag(root: Path, name: str) -> str | None:
    """The Bento tag promoted for ``name``, or ``None`` when nothing was promoted yet."""
    return read_history(root, name).promoted


def write_beside(path: Path, text: str) -> Path:
    """Write ``text`` beside ``path`` under a temporary name; the caller renames it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(tmp)


def record_change(
    root: Path, name: str, change: Promotion, *, manifest: str | None
) -> PromotionHistory:
    """Append ``change``, move the pointer to ``change.version`` and write the promoted manifest.

    Both texts are rendered before anything is written; the manifest is renamed into place first
    and put back as it was if the history cannot be, so the two never disagree.
    """
    path = release_dir(root, name) / LOCK_FILE
    lock = FileLock(path, timeout=LOCK_WAIT_S)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise VersionError(
            f"another promotion or rollback of {name!r} has held {path} for {LOCK_WAIT_S:.0f} s; "
            "let it finish and run this again (nothing was changed)"
        ) from None
    except OSError as exc:
        raise VersionError(
            f"could not lock {path} ({exc}); nothing was changed, fix the folder and retry"
        ) from exc
    try:
        return _record_change(root, name, change, manifest=manifest)
    finally:
        lock.release()


def _record_change(
    root: Path, name: str, change: Promotion, *, manifest: str | None
) -> PromotionHistory:
    path = history_path(root, name)
    document = _load_document(path)
    current = _parse(document, name, path)  # refuse to extend a file that is already damaged
    if current.promoted != change.previous:
        raise VersionError(
            f"the promoted version of {name!r} changed to {current.promoted} while this "
            f"{change.action} was checked (it expected {change.previous}); run it again"
        )
    if document is None:
        document = CommentedMap()
        document["name"] = name
        document.yaml_set_start_comment(HEADER)
    document["promoted"] = change.version
    entries = document.get("history")
    if not isinstance(entries, CommentedSeq):
        entries = CommentedSeq()
        document["history"] = entries
    entries.append(CommentedMap(change.model_dump(mode="json", exclude_none=True)))
    buffer = io.StringIO()
    round_trip_yaml().dump(document, buffer)
    text = buffer.getvalue()
    updated = _parse(round_trip_yaml().load(text), name, path)

    manifest_path = release_dir(root, name) / MANIFEST_FILE
    previous_manifest = manifest_path.read_bytes() if manifest_path.is_file() else None
    temps: list[Path] = []
    try:
        history_tmp = write_beside(path, text)
        temps.append(history_tmp)
        if manifest is not None:
            manifest_tmp = write_beside(manifest_path, manifest)
            temps.append(manifest_tmp)
            os.replace(manifest_tmp, manifest_path)
        try:
            os.replace(history_tmp, path)
        except BaseException:
            if manifest is not None:
                restore_file(manifest_path, previous_manifest)
            raise
    except OSError as exc:
        raise VersionError(
            f"could not write {path} ({exc}); nothing was changed, fix the folder and retry"
        ) from exc
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return updated


def restore_file(path: Path, content: bytes | None) -> None:
    """Put ``path`` back as it was (``None``: it did not exist)."""
    if content is None:
        path.unlink(missing_ok=True)
        return
    tmp = write_beside(path, "")
    tmp.write_bytes(content)
    os.replace(tmp, path)
