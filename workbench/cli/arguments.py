"""What several commands parse and write: counts and bounded numbers, the ``--out DIR`` folder."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from workbench.artifacts import write_atomic
from workbench.errors import DataError, VersionError
from workbench.versions.catalog import check_reference


def rows(text: str) -> int:
    """A whole number of rows, at least one (an argparse type)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of rows >= 1")
    return int(text)


def model_reference(text: str) -> str:
    """A model name, ``NAME:VERSION`` or a version, never a path (an argparse type)."""
    try:
        return check_reference(text)
    except VersionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def model_name(text: str) -> str:
    """A model name alone (an argparse type)."""
    if ":" in text:
        raise argparse.ArgumentTypeError(f"{text!r}: give the model name without a version")
    return model_reference(text)


def number_in(high: float, *, what: str, example: str) -> Callable[[str], float]:
    """An argparse type: a number above 0 and at most ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r}: give {what} in (0, {high:g}], e.g. {example}"
            )
        return value

    return parse


#: A share of something (the drift threshold).
share = number_in(1, what="a share", example="0.5")
#: A time bound of a replay.
seconds = number_in(3600, what="seconds", example="60")
#: A replay's rate bound.
rate = number_in(100_000, what="rows per second", example="500")


def report_folder(out: str | None, kind: str, *, under: Path | None = None) -> Path:
    """``--out`` when given, else ``<under>/<kind>-<UTC time>`` (``under``: the working
    directory by default); it must not be a file."""
    if out:
        folder = Path(out)
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        folder = (under or Path.cwd()) / f"{kind}-{stamp}"
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--out {folder} is a file; give a folder path")
    return folder


def write_report(folder: Path, files: dict[str, str]) -> None:
    """Write each named text into ``folder`` (created), every file atomically."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_atomic(folder / name, text)
    except OSError as exc:
        raise DataError(f"could not write the report into {folder} ({exc})") from exc
