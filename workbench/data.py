"""Data frames the stages read: loading CSV or Parquet, splitting off the target, seeded samples.

Every sample any stage takes (cross-validation on big training sets, permutation importance, the
round trip, plots) comes from :func:`sample_index`, so one seed gives the same rows everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataError

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


def load_frame(path: Path, *, what: str, fix: str = "fix `data` in workbench.yaml") -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame (``fix``: what to do when it is missing)."""
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} not found; {fix}")
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


def split_features(
    frame: pd.DataFrame, target: str, *, what: str
) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a frame, with a clear error when the target is unusable."""
    if target not in frame.columns:
        raise DataError(
            f"{what}: target column {target!r} not found (columns: {list(frame.columns)[:8]}...); "
            "fix `data.target` in workbench.yaml"
        )
    y = frame[target]
    if y.isna().all():
        raise DataError(
            f"{what}: target column {target!r} is entirely empty (NaN); fill in the labels or "
            "fix `data.target` in workbench.yaml"
        )
    if y.isna().any():
        raise DataError(
            f"{what}: target column {target!r} has {int(y.isna().sum())} missing values; "
            "drop or fill those rows"
        )
    return frame.drop(columns=[target]), y


def sample_index(total: int, rows: int, *, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of at most ``rows`` of ``total`` rows, no replacement.

    All positions, in order, when ``total <= rows``.
    """
    if total <= rows:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=rows, replace=False))
