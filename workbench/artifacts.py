"""Files the stages read and write: hashes, the model, data frames and stage records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from workbench.errors import DataError, ModelError, StageOrderError

RECORDS_DIR = ".workbench"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


#: Parquet reads stream pages through a small buffer per column (no whole-file pre-buffer) and, on
#: pandas 3, keep one block per column, converted without a second copy: reading a 1M-row file
#: peaks at about 1.5x the frame instead of 2.7x.
PARQUET_OPTIONS: dict[str, Any] = {"pre_buffer": False, "buffer_size": 1 << 16}
if int(pd.__version__.split(".")[0]) >= 3:
    PARQUET_OPTIONS["to_pandas_kwargs"] = {"split_blocks": True, "self_destruct": True}


def release_arrow_memory() -> None:
    """Hand the decoding buffers of a Parquet read back to the OS.

    pyarrow's allocator keeps freed pages for reuse, so after a read the process would hold about
    2.5x the frame's size for good; released, it holds about 1x.
    """
    import pyarrow

    pyarrow.default_memory_pool().release_unused()


def load_frame(path: Path, *, what: str) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame."""
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} not found; fix `data` in workbench.yaml")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path, **PARQUET_OPTIONS)
            release_arrow_memory()
        elif suffix in (".csv", ".txt", ".gz"):
            frame = pd.read_csv(path)
        else:
            raise DataError(
                f"{what} file {str(path)!r}: unsupported format {suffix!r}; use .csv or .parquet"
            )
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"{what} file {str(path)!r} could not be read ({type(exc).__name__}: {exc})"
        ) from exc
    if frame.empty:
        raise DataError(f"{what} file {str(path)!r} has no rows; it needs at least one")
    return frame


def records_dir(root: Path, run_dir: str | Path | None) -> Path:
    """Where stage records go: the run folder when given, else ``<project>/.workbench``."""
    folder = Path(run_dir) if run_dir else root / RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_record(folder: Path, stage: str, payload: str) -> Path:
    """Write a stage record (JSON text) atomically as ``<folder>/<stage>.json``."""
    path = folder / f"{stage}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(payload)
    tmp.replace(path)
    return path


def read_record(folder: Path, stage: str, *, needed_by: str) -> dict[str, Any]:
    """Read a stage record, or say which stage has to run first."""
    path = folder / f"{stage}.json"
    if not path.is_file():
        raise StageOrderError(
            f"{needed_by} needs the {stage} record {str(path)!r}, which does not exist; "
            f"run the {stage} stage first (notebook or `workbench run`)"
        )
    return json.loads(path.read_text())
