"""Files the stages read and write: hashes, the model and the stage records."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import joblib
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from workbench.errors import ModelError, StageOrderError
from workbench.project_code import missing_module_advice
from workbench.runtime import file_sha256

RECORDS_DIR = ".workbench"
sha256_file = file_sha256
"""Hex sha256 of a file's bytes: the runtime's own, so workbench and the Bento hash alike."""


def sha256_text(*parts: str) -> str:
    """Hex sha256 of text parts, each length-prefixed so boundaries count."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def load_model(path: Path) -> Any:
    """Load a fitted scikit-learn estimator saved with joblib or pickle."""
    if not path.is_file():
        raise ModelError(f"model file {str(path)!r} not found; fix `model` in workbench.yaml")
    try:
        model = joblib.load(path)
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"model file {str(path)!r} could not be loaded: it needs the module {exc.name!r}, "
            f"which does not import here; {missing_module_advice(exc.name or '')}"
        ) from exc
    except AttributeError as exc:  # a class pickled from __main__: "Can't get attribute ..."
        if "__main__" not in str(exc):
            raise ModelError(
                f"model file {str(path)!r} could not be loaded (AttributeError: {exc}); the "
                "module it names no longer defines that class: save the model again with the "
                "code it was fitted with"
            ) from exc
        raise ModelError(
            f"model file {str(path)!r} could not be loaded ({exc}): "
            f"{missing_module_advice('__main__')}"
        ) from exc
    except Exception as exc:  # joblib raises anything the pickle contains
        raise ModelError(
            f"model file {str(path)!r} could not be loaded ({type(exc).__name__}: {exc}); "
            "save the fitted estimator with joblib.dump(model, path)"
        ) from exc
    if not (isinstance(model, BaseEstimator) and hasattr(model, "predict")):
        raise ModelError(
            f"model file {str(path)!r} holds a {type(model).__name__}, not a scikit-learn "
            "estimator with predict(); save the fitted estimator or Pipeline itself"
        )
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise ModelError(
            f"model {type(model).__name__} in {str(path)!r} is not fitted; call fit() before "
            "saving it"
        ) from exc
    return model


def records_dir(root: Path, run_dir: str | Path | None) -> Path:
    """Where stage records go, as an absolute path: the run folder when given (a relative one
    against the working directory), else ``<project>/.workbench``. Absolute because BentoML
    exports the Bento's archive there and resolves a relative path against ``/`` (fsspec)."""
    folder = Path(run_dir).expanduser().resolve() if run_dir else root.resolve() / RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_record(folder: Path, stage: str, payload: str) -> Path:
    """Write a stage record (JSON text) atomically as ``<folder>/<stage>.json``."""
    path = folder / f"{stage}.json"
    write_atomic(path, payload)
    return path


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write ``content`` (text as UTF-8) to a unique temporary name beside ``path``, flush it to
    the disk, then rename it into place: readers see the old file or the new one, never half of
    one, and a failure (a full disk, a file-size limit) leaves the old one and no temporary.
    The error names ``path``, not the temporary."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        sync_folder(path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def replace_atomic(tmp: Path, path: Path) -> None:
    """Move a finished file written under the temporary name ``tmp`` (beside ``path``) into
    place, flushed to the disk first; the error names ``path``."""
    try:
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
        sync_folder(path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to the disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder: the rename still holds
    finally:
        os.close(fd)


def read_record(folder: Path, stage: str, *, needed_by: str) -> dict[str, Any]:
    """Read a stage record, or say which stage has to run first."""
    path = folder / f"{stage}.json"
    if not path.is_file():
        raise StageOrderError(
            f"{needed_by} needs the {stage} record {str(path)!r}, which does not exist; "
            f"run the {stage} stage first (notebook or `workbench run`)"
        )
    record: dict[str, Any] = json.loads(path.read_text())
    return record
