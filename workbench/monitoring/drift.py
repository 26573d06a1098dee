"""Offline drift and data quality: a CSV or Parquet file of live inputs against the reference a
Bento ships.

Every Bento built by the package stage carries ``src/drift_reference.json`` (the training inputs'
summaries, :func:`workbench.validation.reference.build_reference`) beside ``src/model_card.json``
(whose ``input_schema`` names the model's input columns) and ``src/settings.json`` (its
``monitor:`` settings). :func:`drift_report` reads them, notes the input columns the file lacks
(the ``absent`` check fails them; other columns, such as a target or an id, are ignored and
reported) and runs :func:`workbench.runtime.drift.dataset_drift` and
:func:`workbench.runtime.quality.dataset_quality`, judged by
:func:`workbench.runtime.monitoring.judgement.judge_report`: the code the running service uses
on its windows, with the settings it was packaged with.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bentoml
import pandas as pd
import yaml

from workbench.artifacts import sha256_file
from workbench.data import load_frame
from workbench.errors import ConfigError, DataError
from workbench.results import (
    ColumnDriftResult,
    DriftResult,
    DriftTestResult,
    QualityCheckResult,
    QualityResult,
)
from workbench.runtime.card import ModelCard
from workbench.runtime.drift import (
    ColumnDrift,
    DatasetDrift,
    DriftOptions,
    TestOutcome,
    dataset_drift,
)
from workbench.runtime.monitoring.judgement import Judgement, judge_report
from workbench.runtime.quality import DataQuality, dataset_quality
from workbench.runtime.settings import (
    CARD_FILE,
    DRIFT_REFERENCE_FILE,
    SETTINGS_FILE,
    MonitorSettings,
)
from workbench.runtime.sketch import (
    REFERENCE_FORMAT,
    ColumnWindow,
    WindowColumn,
    summarize_window,
)

REFERENCE_FILE = DRIFT_REFERENCE_FILE
"""The reference's name in a Bento's ``src`` folder (``drift_reference.json``)."""


@dataclasses.dataclass(frozen=True)
class BentoSource:
    """Where a Bento's files are: its tag and its ``src`` folder."""

    tag: str
    src: Path


def find_bento(bento: str | Path) -> BentoSource:
    """The Bento named by a tag in the BentoML store, or by the path of its folder (or ``src``).

    A string is a path when something exists there (or it contains a slash), else a tag
    (``name:version``, or ``name`` for the latest version).
    """
    text = str(bento)
    if isinstance(bento, Path) or Path(text).exists() or "/" in text:
        return _bento_folder(Path(text))
    try:
        stored = bentoml.bentos.get(text)
    except (bentoml.exceptions.BentoMLException, ValueError) as exc:
        raise ConfigError(
            f"Bento {text!r} is not in the BentoML store ({exc}); give a tag from "
            "`bentoml list` or the path of a Bento folder"
        ) from exc
    return BentoSource(str(stored.tag), Path(str(stored.path)) / "src")


def _bento_folder(folder: Path) -> BentoSource:
    if not folder.is_dir():
        raise ConfigError(
            f"{str(folder)!r} is neither a Bento folder nor a Bento tag in the BentoML store"
        )
    if (folder / "src" / CARD_FILE).is_file():
        root: Path | None = folder
        src = folder / "src"
    elif (folder / CARD_FILE).is_file():
        src = folder
        root = folder.parent if (folder.parent / "bento.yaml").is_file() else None
    else:
        raise ConfigError(
            f"{str(folder)!r} is not a workbench Bento folder: it has no {CARD_FILE} "
            f"(nor src/{CARD_FILE})"
        )
    if root is not None:
        tag = _folder_tag(root)
    else:  # e.g. the generated service folder bentos/<name>/, before `bentoml build`
        tag = (src.resolve().parent if src.name == "src" else src.resolve()).name
    return BentoSource(tag, src)


def _folder_tag(root: Path) -> str:
    """``name:version`` from a Bento folder's ``bento.yaml`` (the folder's name if unreadable)."""
    try:
        info = yaml.safe_load((root / "bento.yaml").read_text())
        return f"{info['name']}:{info['version']}"
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return root.resolve().name


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{what} {str(path)!r} could not be read ({type(exc).__name__}: {exc})"
        ) from exc


def read_reference(source: BentoSource) -> dict[str, Any]:
    """The Bento's drift reference, or a clear error for Bentos built before references."""
    path = source.src / REFERENCE_FILE
    if not path.is_file():
        raise DataError(
            f"Bento {source.tag} has no {REFERENCE_FILE}: it was packaged before drift references "
            "existed; package the model again (`workbench run --stages validate,package`) and "
            "check the new Bento"
        )
    reference = _read_json(path, "drift reference")
    if not isinstance(reference, dict) or reference.get("format") != REFERENCE_FORMAT:
        found = reference.get("format") if isinstance(reference, dict) else type(reference)
        raise DataError(
            f"{str(path)!r} is not a drift reference this workbench reads (format {found!r}, "
            f"expected {REFERENCE_FORMAT!r}); package the model again"
        )
    return reference


def read_model_card(source: BentoSource) -> ModelCard:
    path = source.src / CARD_FILE
    if not path.is_file():
        raise DataError(f"Bento {source.tag} has no {CARD_FILE}; package the model again")
    try:
        card = ModelCard.read(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{exc}; package the model again") from exc
    if "input_schema" not in card.model_fields_set:
        raise DataError(
            f"model card {str(path)!r} has no input_schema with named columns; package the "
            "model again"
        )
    return card


def read_monitor_settings(source: BentoSource) -> MonitorSettings:
    """The ``monitor:`` settings the Bento was packaged with (its ``settings.json``), so a file
    is judged as the service judges its window; the defaults for a Bento without them."""
    path = source.src / SETTINGS_FILE
    if not path.is_file():
        return MonitorSettings()
    try:
        return MonitorSettings.model_validate(_read_json(path, "settings").get("monitor", {}))
    except (AttributeError, ValueError) as exc:
        raise DataError(
            f"{str(path)!r}: no valid monitor settings ({exc}); package the model again"
        ) from exc


def _input_columns(card: ModelCard, reference: Mapping[str, Any]) -> list[str]:
    """The model's input columns, then any reference column the schema lacks."""
    names = card.input_columns
    return names + [str(c) for c in reference["columns"] if c not in names]


def _read_file(file: Path) -> Any:
    if file.is_dir():
        raise DataError(f"{str(file)!r} is a folder; give one CSV or Parquet file")
    if not file.is_file():
        raise DataError(f"file {str(file)!r} not found")
    return load_frame(file, what="live data", fix="check its path")


def _test(outcome: TestOutcome | None) -> DriftTestResult | None:
    if outcome is None:
        return None
    return DriftTestResult(**dataclasses.asdict(outcome))


def column_result(drift: ColumnDrift | Mapping[str, Any]) -> ColumnDriftResult:
    """One column's drift as a result: from :func:`drift_report`'s test, or from a ``GET
    /monitor`` report's JSON (``ColumnDrift.to_dict``; fields a Bento's runtime does not send
    take their defaults)."""
    if not isinstance(drift, ColumnDrift):
        names = {f.name for f in dataclasses.fields(ColumnDrift)}
        values = {k: v for k, v in drift.items() if k in names}
        test = values.get("missing_share_test")
        values["missing_share_test"] = None if test is None else TestOutcome(**test)
        if "status" not in values:  # a runtime from before statuses
            values["status"] = {True: "FAIL", False: "PASS"}.get(values["drifted"], "INCONCLUSIVE")
        drift = ColumnDrift(**values)
    return ColumnDriftResult(
        column=drift.column,
        kind=drift.kind,
        test=drift.test,
        statistic=drift.statistic,
        p_value=drift.p_value,
        threshold=drift.threshold,
        drifted=drift.drifted,
        rows=drift.window_rows,
        reference_rows=drift.reference_rows,
        missing_share_reference=drift.missing_share_reference,
        missing_share_live=drift.missing_share_window,
        unseen_share=drift.unseen_share,
        missing_share_test=_test(drift.missing_share_test),
        reason=drift.reason,
        status=drift.status,
        values_needed=drift.values_needed,
    )


def quality_result(quality: DataQuality | Mapping[str, Any]) -> QualityResult:
    """The data-quality checks as a result: from :func:`window_report`'s, or from a ``GET
    /monitor`` report's JSON (``DataQuality.to_dict``)."""
    data = quality.to_dict() if isinstance(quality, DataQuality) else dict(quality)
    return QualityResult(
        checks=[QualityCheckResult(**c) for c in data["checks"]],
        status=data["status"],
        failed=data["failed"],
        inconclusive=data["inconclusive"],
        options=data["options"],
    )


def drift_report(
    bento: str | Path,
    file: Path,
    *,
    options: DriftOptions | None = None,
    monitor: MonitorSettings | None = None,
) -> DriftResult:
    """Check a CSV or Parquet file of live inputs for drift and data quality against a Bento's
    training reference.

    ``bento``: a tag in the BentoML store (``name:version``, or ``name`` for the latest) or the
    path of a Bento folder or of its ``src``. An input column of the Bento's model card that the
    file lacks fails the ``absent`` check (a file with none of them is refused); other columns
    are ignored and listed in ``ignored_columns``. ``monitor``: the data-quality thresholds and
    ``fail_on_quality`` (None: the Bento's, :func:`read_monitor_settings`); ``options``: the drift
    thresholds and cut-offs (None: ``monitor``'s).

    Raises :class:`~workbench.errors.ConfigError` for an unknown Bento and
    :class:`~workbench.errors.DataError` for a Bento without a reference, an unreadable file or
    one without any input column. Too few rows is not an error: the verdict is then ``not enough
    data`` and the status INCONCLUSIVE.
    """
    started = time.perf_counter()
    checked_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    source = find_bento(bento)
    card = read_model_card(source)
    reference = read_reference(source)
    file = Path(file)
    frame = _read_file(file)

    expected = _input_columns(card, reference)
    frame.columns = [str(c) for c in frame.columns]
    present = [c for c in expected if c in set(frame.columns)]
    if not present:
        raise DataError(
            f"{str(file)!r} has none of the model's {len(expected)} input columns "
            f"({', '.join(map(repr, expected[:5]))}{' ...' if len(expected) > 5 else ''}): is it "
            f"a file of Bento {source.tag}'s inputs?"
        )
    ignored = [c for c in frame.columns if c not in set(expected)]
    return window_report(
        source,
        card,
        reference,
        frame[present],
        file=str(file.resolve()),
        file_sha256=sha256_file(file),
        file_bytes=file.stat().st_size,
        rows=len(frame),
        ignored_columns=ignored,
        options=options,
        monitor=monitor,
        checked_at=checked_at,
        started=started,
    )


def _judge_windows(
    reference: Mapping[str, Any],
    windows: Mapping[str, ColumnWindow],
    *,
    monitor: MonitorSettings,
    options: DriftOptions,
) -> tuple[DatasetDrift, DataQuality, Judgement]:
    """Drift and data quality of ``windows`` against ``reference``, and their verdict (a dataset
    drift always fails it; a failed check when ``monitor.fail_on_quality``)."""
    drift = dataset_drift(reference, windows, options)
    quality = dataset_quality(reference, windows, monitor.quality)
    judged = judge_report(
        {"drift": drift.to_dict(), "quality": quality.to_dict()},
        fail_on_quality=monitor.fail_on_quality,
    )
    return drift, quality, judged


def window_report(  # noqa: PLR0913 - the report's inputs, then where the window came from
    source: BentoSource,
    card: ModelCard,
    reference: Mapping[str, Any],
    window: pd.DataFrame | Mapping[str, WindowColumn],
    *,
    file: str,
    file_sha256: str,
    file_bytes: int,
    rows: int,
    ignored_columns: list[str],
    options: DriftOptions | None = None,
    monitor: MonitorSettings | None = None,
    checked_at: str | None = None,
    started: float | None = None,
) -> DriftResult:
    """The drift and data-quality report of ``window`` (a frame, or column ->
    :class:`ColumnWindow`, e.g. the sketches a batch job accumulated chunk by chunk) against the
    Bento's ``reference``, and its status (a dataset drift always fails it; a failed check when
    ``monitor.fail_on_quality``). ``monitor`` and ``options`` as for :func:`drift_report`.

    ``file``, ``file_sha256``, ``file_bytes``, ``rows`` and ``ignored_columns`` describe where
    the window came from (for a job over several files: the input as given and a digest of
    theirs).
    """
    started = time.perf_counter() if started is None else started
    checked_at = checked_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    monitor = read_monitor_settings(source) if monitor is None else monitor
    options = monitor.drift if options is None else options
    windows = summarize_window(reference, window)
    drift, quality, judged = _judge_windows(reference, windows, monitor=monitor, options=options)
    return DriftResult(
        bento_tag=source.tag,
        bento_path=str(source.src.resolve()),
        model_tag=card.model_tag,
        file=file,
        file_sha256=file_sha256,
        file_bytes=file_bytes,
        rows=rows,
        ignored_columns=ignored_columns,
        reference_rows=int(reference.get("rows", 0)),
        columns=[column_result(c) for c in drift.columns],
        tested_columns=drift.tested_columns,
        drifted_columns=drift.drifted_columns,
        drifted_share=drift.drifted_share,
        threshold=drift.threshold,
        verdict=drift.verdict,
        reason=drift.reason,
        values_needed=drift.values_needed,
        options=options.model_dump(),
        quality=quality_result(quality),
        status=judged.status,
        failures=judged.failures,
        inconclusive=judged.inconclusive,
        notes=judged.notes,
        checked_at=checked_at,
        seconds=time.perf_counter() - started,
    )
