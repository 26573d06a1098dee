"""What vouches for a version in the BentoML store, and the check before it is unpickled or run.

A Bento names its model's sha256 in its own ``settings.json``, and both live in the store:
whoever can rewrite one can rewrite the other. The hashes that decide are kept in the project
instead, outside the store. These records are the anchors:

- the package ledger ``.workbench/ledger.json``: the package stage adds every Bento it builds, in a
  notebook session or a run (the digest of its files, its model's tag and pickle sha256);
- the promotion history ``bentos/<name>/release/promotions.yaml``, reviewed in git: each promotion
  and rollback records the same hashes of the version it points at, so a fresh clone vouches for
  what it promoted on a machine that imported those Bentos (``bentoml import``);
- the manifests of runs, ``runs/*/manifest.json`` (``bento_files``, ``model_files``).

Every command that loads a stored model unpickles it through :func:`unpickle_verified` (the bytes
read once, hashed, compared, and those very bytes unpickled), and every command that serves a
Bento or imports its ``service.py`` first hashes its files and model (:func:`verify_bento`). A
version no anchor names is refused with how to vouch for it; one whose bytes equal no anchor of its
tag is refused as altered. Nothing of either is loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib
import yaml
from filelock import FileLock, Timeout

from workbench.artifacts import RECORDS_DIR, sha256_file, write_atomic
from workbench.errors import IntegrityError
from workbench.promotions import history_path, read_history
from workbench.runtime import MODEL_FILE

LEDGER_FILE = "ledger.json"
#: What to do about a version whose bytes are not the ones recorded.
REMEDY = (
    "Remove it from the store (`bentoml delete NAME:VERSION`, `bentoml models delete "
    "NAME:VERSION`) and package it again, or import it again from its archive (`bentoml import`)"
)
LOCK_WAIT_S = 30.0
PYCACHE = "__pycache__"
_TIME_KEYS = {"creation_time"}


@dataclass(frozen=True)
class Anchor:
    """One record of the project that says what a version's bytes are."""

    source: str
    """The record, relative to the project (``.workbench/ledger.json``, ...)."""
    model_tag: str
    model_sha256: str
    """sha256 of the stored model's pickle (``saved_model.pkl``)."""
    bento_tag: str | None = None
    bento_sha256: str | None = None
    """:func:`tree_digest` of the Bento's files (``None``: the record names only the model)."""


@dataclass(frozen=True)
class VouchedBento:
    """A Bento whose files and model equal what an anchor records: what a process that loads it
    checks again (a Dask worker may read another copy of the store)."""

    tag: str
    path: Path
    bento_sha256: str
    model_tag: str
    model_sha256: str


def find_project(start: Path | None = None) -> Path:
    """The project whose records vouch when none is named: the nearest folder at or above
    ``start`` (the current one) that holds a ``workbench.yaml``, else ``start`` itself."""
    here = (start or Path.cwd()).resolve()
    return next((p for p in (here, *here.parents) if (p / "workbench.yaml").is_file()), here)


def ledger_path(root: Path) -> Path:
    return root / RECORDS_DIR / LEDGER_FILE


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in _TIME_KEYS}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``; YAML manifests hashed without creation times (the
    only part of a Bento or stored model that is not content: a copy imported elsewhere has the
    same hashes). Bytecode caches (``__pycache__``) are left out: ``bentoml serve`` may write
    them into the Bento, and the processes workbench starts on a Bento never read them
    (``PYTHONPYCACHEPREFIX``), so a planted one cannot run."""
    hashes = {}
    files = (p for p in folder.rglob("*") if p.is_file() and not _cached(p.relative_to(folder)))
    for path in sorted(files):
        relative = path.relative_to(folder).as_posix()
        if path.name in ("bento.yaml", "model.yaml"):
            content = _without_times(yaml.safe_load(path.read_text()))
            canonical = json.dumps(content, sort_keys=True, default=str).encode()
            hashes[relative] = hashlib.sha256(canonical).hexdigest()
        else:
            hashes[relative] = sha256_file(path)
    return hashes


def _cached(relative: Path | str) -> bool:
    return PYCACHE in Path(relative).parts


def tree_digest(hashes: dict[str, str]) -> str:
    """One sha256 for a folder's :func:`tree_hashes` (names and contents; bytecode caches a
    manifest may list left out)."""
    digest = hashlib.sha256()
    for name in sorted(n for n in hashes if not _cached(n)):
        digest.update(f"{name}\0{hashes[name]}\n".encode())
    return digest.hexdigest()


def unpickle_verified(path: Path, accepted: Collection[str], *, what: str) -> Any:
    """The object pickled in ``path``, if the sha256 of its bytes is one of ``accepted``: the
    file is read once, and the bytes hashed are the bytes unpickled. Other bytes are refused
    without being loaded."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IntegrityError(
            f"{what}: {path} cannot be read ({exc.strerror or exc}); {REMEDY}"
        ) from exc
    found = hashlib.sha256(data).hexdigest()
    if found not in accepted:
        recorded = ", ".join(f"{h[:16]}…" for h in sorted(accepted))
        raise IntegrityError(
            f"{what}: {path} has sha256 {found[:16]}…, not what the project recorded when it "
            f"packaged it ({recorded}); it was altered in the BentoML store and was not loaded. "
            f"{REMEDY}"
        )
    return joblib.load(io.BytesIO(data))


def _vouch_advice(root: Path, name: str) -> str:
    return (
        f"no record of the project {root} vouches for its bytes (the package ledger "
        f"{RECORDS_DIR}/{LEDGER_FILE}, runs/*/manifest.json, "
        f"{history_path(root, name).relative_to(root)}), so nothing of it was loaded. Package it "
        "again from this project (`workbench run`, or the package notebook) to record its hashes, "
        "or run this in the project that packaged it (--config)"
    )


def _ledger_anchors(root: Path) -> list[Anchor]:
    path = ledger_path(root)
    try:
        entries = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        entries = {}  # a damaged ledger vouches for nothing; packaging writes it anew
    source = path.relative_to(root).as_posix()
    return [
        Anchor(source, str(e["model_tag"]), str(e["model_sha256"]), tag, str(e["bento_sha256"]))
        for tag, e in (entries.items() if isinstance(entries, dict) else [])
        if isinstance(e, dict) and {"model_tag", "model_sha256", "bento_sha256"} <= set(e)
    ]


def _manifest_anchors(root: Path) -> list[Anchor]:
    found = []
    for path in sorted((root / "runs").glob("*/manifest.json")):
        try:
            manifest = json.loads(path.read_text())
            model_tag = str(manifest["model_tag"])
            model_sha = str(manifest["model_files"][MODEL_FILE])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        bento_files = manifest.get("bento_files")
        bento_sha = tree_digest(bento_files) if isinstance(bento_files, dict) else None
        source = path.relative_to(root).as_posix()
        found.append(Anchor(source, model_tag, model_sha, manifest.get("bento_tag"), bento_sha))
    return found


def _history_anchors(root: Path, name: str) -> list[Anchor]:
    source = history_path(root, name).relative_to(root).as_posix()
    return [
        Anchor(source, c.model_tag, c.model_sha256, c.version, c.bento_sha256)
        for c in read_history(root, name).history
        if c.model_tag and c.model_sha256 and c.bento_sha256
    ]


def anchors(root: Path, name: str) -> list[Anchor]:
    """Every record of the project at ``root`` about versions of the model ``name``."""
    every = [*_ledger_anchors(root), *_manifest_anchors(root), *_history_anchors(root, name)]
    return [a for a in every if a.model_tag.split(":", 1)[0] == name]


def stored_model_path(model_tag: str) -> Path:
    """The pickle of a model in the BentoML store."""
    import bentoml

    try:
        return Path(str(bentoml.models.get(model_tag).path)) / MODEL_FILE
    except bentoml.exceptions.NotFound as exc:
        raise IntegrityError(
            f"model {model_tag} is not in the BentoML store; import its Bento again "
            "(bentoml import) or package it again"
        ) from exc


def load_stored_model(root: Path, model_tag: str) -> Any:
    """A stored model, unpickled only if a record of the project at ``root`` vouches for its
    bytes."""
    name = model_tag.split(":", 1)[0]
    recorded = {a.model_sha256 for a in anchors(root, name) if a.model_tag == model_tag}
    if not recorded:
        raise IntegrityError(f"model {model_tag}: {_vouch_advice(root, name)}")
    return unpickle_verified(stored_model_path(model_tag), recorded, what=f"model {model_tag}")


def bento_digest(path: Path) -> str:
    return tree_digest(tree_hashes(path))


def verify_bento(root: Path, tag: str, *, path: Path | None = None) -> VouchedBento:
    """The Bento ``tag`` of the store (or its copy in the folder ``path``), if its files and its
    model's pickle equal what a record of the project at ``root`` says they were; else
    :class:`IntegrityError`, before anything of it is imported, served or unpickled."""
    import bentoml

    if path is None:
        try:
            stored = bentoml.bentos.get(tag)
        except (bentoml.exceptions.NotFound, ValueError) as exc:
            raise IntegrityError(
                f"Bento {tag} is not in the BentoML store; see `bentoml list`"
            ) from exc
        path, tag = Path(str(stored.path)), str(stored.tag)
    elif not (path / "bento.yaml").is_file():
        raise IntegrityError(
            f"{path} is not a built Bento (no bento.yaml), so no record vouches for it; give the "
            "tag of a Bento in the BentoML store, or the folder of one"
        )
    name = tag.split(":", 1)[0]
    known = [a for a in anchors(root, name) if a.bento_tag == tag and a.bento_sha256]
    if not known:
        raise IntegrityError(f"Bento {tag}: {_vouch_advice(root, name)}")
    digest = bento_digest(path)
    matching = [a for a in known if a.bento_sha256 == digest]
    if not matching:
        check_bento_files(path, str(known[0].bento_sha256), tag=tag, source=known[0].source)
    anchor = matching[0]
    model = stored_model_path(anchor.model_tag)
    found = sha256_file(model) if model.is_file() else "(no such file)"
    if found != anchor.model_sha256:
        raise IntegrityError(
            f"model {anchor.model_tag} of Bento {tag}: {model} has sha256 {found[:16]}…, not the "
            f"{anchor.model_sha256[:16]}… {anchor.source} recorded; it was altered in the BentoML "
            f"store and was not loaded. {REMEDY}"
        )
    return VouchedBento(tag, path, digest, anchor.model_tag, anchor.model_sha256)


def is_vouched(root: Path, tag: str) -> bool:
    """Whether a record of the project names the Bento ``tag`` at all (it is then checked:
    :func:`verify_bento`); ``False`` for a Bento of unknown origin."""
    name = tag.split(":", 1)[0]
    return any(a.bento_tag == tag and a.bento_sha256 for a in anchors(root, name))


def check_stored_pickle(model_tag: str, expected_sha256: str) -> None:
    """Refuse a stored model whose pickle is not the model file it was made from: the package
    stage stores that file byte for byte, so the stored copy's sha256 must be the file's, which
    is also what the content-derived tag was made from. The stored copy is hashed, never
    unpickled."""
    path = stored_model_path(model_tag)
    found = sha256_file(path) if path.is_file() else "(no such file)"
    if found != expected_sha256:
        raise IntegrityError(
            f"model {model_tag}: {path} has sha256 {found[:16]}…, but the model file it was "
            f"made from has {expected_sha256[:16]}…; the stored copy was altered and is not "
            f"used. {REMEDY}"
        )


def vouch_packaged(
    root: Path, tag: str, *, model_tag: str, model_sha256: str, built: bool, records: str
) -> VouchedBento:
    """Record in the package ledger the Bento the package stage built (``built``) or found in the
    store, which must then be as a record of the project already says (:func:`verify_bento`)."""
    import bentoml

    if built:
        path = Path(str(bentoml.bentos.get(tag).path))
        vouched = VouchedBento(tag, path, bento_digest(path), model_tag, model_sha256)
    else:
        vouched = verify_bento(root, tag)
    record_packaged(root, vouched, records=records)
    return vouched


def record_packaged(root: Path, bento: VouchedBento, *, records: str) -> None:
    """Add (or renew) the package ledger's entry for a Bento the package stage built."""
    path = ledger_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.with_name(f".{LEDGER_FILE}.lock"), timeout=LOCK_WAIT_S)
    try:
        with lock:
            try:
                entries = json.loads(path.read_text()) if path.is_file() else {}
            except ValueError:
                entries = {}
            if not isinstance(entries, dict):
                entries = {}
            entries[bento.tag] = {
                "model_tag": bento.model_tag,
                "model_sha256": bento.model_sha256,
                "bento_sha256": bento.bento_sha256,
                "packaged_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "records": records,
            }
            write_atomic(path, json.dumps(entries, indent=2, sort_keys=True) + "\n")
    except Timeout:
        raise IntegrityError(
            f"another packaging has held {lock.lock_file} for {LOCK_WAIT_S:.0f} s; let it finish "
            "and package again"
        ) from None


def check_bento_files(path: Path, bento_sha256: str, *, tag: str, source: str) -> None:
    """Refuse a Bento folder whose files are not the ones ``source`` recorded (a Dask worker
    checks the copy of the store it reads with the hashes the job verified)."""
    digest = bento_digest(path)
    if digest != bento_sha256:
        raise IntegrityError(
            f"Bento {tag}: its files in {path} are not the ones {source} recorded (digest "
            f"{digest[:16]}…, recorded {bento_sha256[:16]}…); it was altered in the BentoML store "
            f"and nothing of it was loaded. {REMEDY}"
        )
