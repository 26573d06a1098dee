"""``retrain()``: a challenger fitted on the project's rows and new labelled rows, promoted only
if it holds every gate against the version that serves.

The steps, each with its record in the run folder (``runs/retrain-<UTC time>`` unless given):

1. **rows**: the new labelled rows (a file, or the labelled rows of the capture files) are checked
   against the training data and the promoted model, split by the seed, and written beside the
   project's rows: ``data/new-train.*``, ``data/new-test.*`` and the data the stages run on,
   ``data/train.*`` (the project's training rows and the new) and ``data/test.*`` (likewise);
2. **fit**: a clone of the promoted model, or the training script's model, fitted on
   ``data/train.*`` -> ``model.joblib`` (a failure's traceback in ``retrain.log``);
3. **validate** (``validation.json``) with the ``champion`` gate (``min: 0`` unless the config
   sets one): the champion is the promoted version, scored on the same test rows;
4. **package** (``package.json``, the Bento archive);
5. **shadow** (``shadow.json``, ``shadow.html``) against the promoted version on recent traffic:
   the capture's request rows when there are any, else the held-out new rows;
6. **promote** (``promotion.json``; ``bentos/<name>/release/promotions.yaml``), gated again.

A gate that fails stops the steps after it: nothing is promoted and nothing outside the run folder
changes (a Bento refused at shadow or promotion stays in the store, as any packaged version does).
The stages run on a config derived from the project's (the run's model and data), never written to
``workbench.yaml``; ``retrain.json`` records it. A promoted challenger's model file is copied to
``models/<name>-retrained-<sha256[:12]>.joblib`` (or ``model_out``) for ``model:`` to name.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from workbench.artifacts import sha256_file, write_atomic, write_record
from workbench.config import CHAMPION_GATE, Config
from workbench.data import load_frame
from workbench.errors import DataError
from workbench.results import FittedModel, NewRows, RetrainResult
from workbench.retraining.rows import Rows, capture_folder, frame_bytes, read_new_rows
from workbench.retraining.steps import (
    MODEL_FILE,
    RECORD,
    OnStep,
    Run,
    fit_step,
    package_step,
    promote_step,
    replay_file,
    shadow_step,
    validate_step,
)
from workbench.retraining.training import Champion, load_champion, script_path, seeded_clone
from workbench.versions.promotion import DEFAULT_CHAMPION_GATE


def _quiet(_line: str) -> None:
    return None


def check_retrain(
    config: Config,
    *,
    data: str | Path | None = None,
    capture: str | Path | None = None,
    seed: int | None = None,
) -> NewRows:
    """Check what a :func:`retrain` with these inputs would start from, writing nothing: the
    promoted version, the new rows and their split, and that the challenger can be made (the
    clone, or the training script's path). Returns the new rows as the retrain takes them."""
    return _start(config, data=data, capture=capture, seed=seed)[1].record


def _start(
    config: Config,
    *,
    data: str | Path | None,
    capture: str | Path | None,
    seed: int | None,
) -> tuple[Champion, Rows]:
    """The promoted version and the new rows, checked, and the check that the challenger can
    be made: everything a retrain refuses before it writes anything."""
    champion = load_champion(config)
    reference = load_frame(config.train_path, what="training data").head(0)
    rows = read_new_rows(
        config,
        reference,
        data=None if data is None else _project_path(config, data),
        capture=capture_folder(capture),
        seed=config.retrain.seed if seed is None else seed,
        task=config.task or champion.version.task,
        classes=champion.classes,
    )
    if config.retrain.script is None:
        seeded_clone(champion.model, rows.record.seed, tag=champion.version.card.model_tag)
    else:
        script_path(config)
    return champion, rows


def _model_out(config: Config, model_out: str | Path | None) -> Path | None:
    """Where a promoted model's file goes when given (checked before anything is written)."""
    path = None if model_out is None else _project_path(config, model_out)
    if path is not None and (path.is_dir() or path.suffix != ".joblib"):
        raise DataError(
            f"model_out {path}: give a file path ending in .joblib (where the promoted model's "
            "file is copied)"
        )
    return path


def _project_path(config: Config, value: str | Path) -> Path:
    """A path given to the retrain: absolute, or relative to the project folder."""
    return config.path(str(value))


def retrain(  # noqa: PLR0913 - keyword-only options of one run
    config: Config,
    *,
    data: str | Path | None = None,
    capture: str | Path | None = None,
    seed: int | None = None,
    run_dir: str | Path | None = None,
    model_out: str | Path | None = None,
    on_step: OnStep = _quiet,
) -> RetrainResult:
    """Fit a challenger on the project's rows and the new ones, validate, package, shadow and
    promote it; write the run folder's records and ``retrain.json``.

    ``data``: a CSV or Parquet file of labelled rows; else the labelled rows of ``capture`` (a
    capture folder, default ``$WORKBENCH_CAPTURE_DIR``). Bad input raises one
    :class:`~workbench.errors.WorkbenchError` (exit 2) before anything outside the run folder is
    written; a failed gate is the ``refused`` outcome (:meth:`RetrainResult.raise_for_gates`).
    """
    seed = config.retrain.seed if seed is None else seed
    since = time.perf_counter()
    out_path = _model_out(config, model_out)
    champion, rows = _start(config, data=data, capture=capture, seed=seed)
    run = Run(config, _run_folder(config, run_dir), on_step)
    run.log(f"retrain of {config.name}: challenging {champion.version.tag}, seed {seed}")
    files = _write_data(run.folder, config, rows)
    run.done("rows", passed=True, detail=_rows_line(rows.record), record=RECORD, since=since)
    fitted = fit_step(run, champion, files["train"], seed=seed)
    derived = retrain_config(config, model=run.folder / MODEL_FILE, data=files)
    if validate_step(run, derived) and package_step(run, derived, champion):
        replay = replay_file(run, rows, files["new-test"])
        if shadow_step(run, derived, champion, replay):
            promote_step(run, derived, champion, reason=_reason(run, rows.record))
    outcome = run.finish()
    out = _keep_model(run, fitted.sha256, out_path) if outcome == "promoted" else None
    result = RetrainResult(
        name=config.name,
        run_dir=str(run.folder),
        outcome=outcome,
        refused_by=run.refused_by,
        champion=champion.version.tag,
        new_rows=rows.record,
        model=fitted,
        data={k: str(files[k]) for k in ("train", "test")},
        data_sha256={k: sha256_file(files[k]) for k in ("train", "test")},
        bento_tag=run.bento_tag,
        model_tag=run.model_tag,
        model_out=None if out is None else str(out),
        steps=run.steps,
        config=derived.model_dump(mode="json", exclude={"root"}),
        inputs=_inputs(config, rows, files, fitted, out),
        seconds=round(time.perf_counter() - since, 3),
        validation=run.validation,
        shadow=run.shadow,
        promotion=run.promotion,
    )
    write_record(run.folder, Path(RECORD).stem, result.to_json())
    run.log(f"outcome: {outcome}" + (f" ({'; '.join(run.refused_by)})" if run.refused_by else ""))
    return result


def retrain_config(config: Config, *, model: Path, data: dict[str, Path]) -> Config:
    """The config the stages of a retrain run with: the project's, with the run's model and data,
    the ``champion`` gate (``min: 0``, no worse than what serves, unless the config sets one)
    and the champion comparison on."""
    gates = {**config.gates, CHAMPION_GATE: config.gates.get(CHAMPION_GATE, DEFAULT_CHAMPION_GATE)}
    return config.model_copy(
        update={
            "model": _relative(config, model),
            "data": config.data.model_copy(
                update={
                    "train": _relative(config, data["train"]),
                    "test": _relative(config, data["test"]),
                }
            ),
            "gates": gates,
            "validation": config.validation.model_copy(update={"champion": True}),
        }
    )


def _relative(config: Config, path: Path) -> str:
    """``path`` as the config writes paths: relative to the project folder when inside it."""
    try:
        return path.resolve().relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _run_folder(config: Config, run_dir: str | Path | None) -> Path:
    """``run_dir`` (``workbench retrain`` made it), else a new ``runs/retrain-<UTC time>``
    (``-2``, ``-3``, ... when two retrains start within a second)."""
    if run_dir is not None:
        folder = Path(run_dir).expanduser().resolve()
        (folder / "data").mkdir(parents=True, exist_ok=True)
        return folder
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (config.root / "runs").mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 100):
        folder = config.root / "runs" / f"retrain-{stamp}{'' if attempt == 1 else f'-{attempt}'}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        (folder / "data").mkdir()
        return folder
    raise DataError(f"{config.root / 'runs'}: no free run folder for {stamp}; pass run_dir")


def _write_data(folder: Path, config: Config, rows: Rows) -> dict[str, Path]:
    """The new parts, and the project's rows with them, as the stages read them."""
    suffix = rows.suffix
    project = {
        "train": load_frame(config.train_path, what="training data"),
        "test": load_frame(config.test_path, what="test data"),
    }
    frames = {
        "new-train": rows.train,
        "new-test": rows.test,
        "train": pd.concat(
            [project["train"], rows.train[project["train"].columns]], ignore_index=True
        ),
        "test": pd.concat(
            [project["test"], rows.test.reindex(columns=project["test"].columns)], ignore_index=True
        ),
    }
    if rows.record.source == "capture":
        frames["new"] = rows.frame
    files = {}
    for name, frame in frames.items():
        files[name] = folder / "data" / f"{name}{suffix}"
        write_atomic(files[name], frame_bytes(frame, suffix))
    return files


def _rows_line(record: NewRows) -> str:
    return (
        f"{record.rows:,} new rows ({record.distinct:,} distinct) from {record.path}, sha256 "
        f"{record.sha256[:12]}; seed {record.seed}: {record.train_rows:,} to train, "
        f"{record.test_rows:,} to test"
    )


def _reason(run: Run, record: NewRows) -> str:
    """Why the promotion happened, in the history: the run folder and the new rows by hash."""
    folder = run.folder
    if folder.is_relative_to(run.config.root):
        folder = folder.relative_to(run.config.root)
    return (
        f"retrain {folder}: {record.rows:,} new rows from {Path(record.path).name} "
        f"(sha256 {record.sha256[:12]}), seed {record.seed}"
    )


def _keep_model(run: Run, sha256: str, model_out: Path | None) -> Path:
    """The promoted challenger's model file where ``model:`` can name it."""
    config = run.config
    target = model_out or config.root / "models" / f"{config.name}-retrained-{sha256[:12]}.joblib"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.copyfile(run.folder / MODEL_FILE, partial)
    partial.replace(target)
    run.log(f"model file: {target}")
    return target


def _inputs(
    config: Config, rows: Rows, files: dict[str, Path], fitted: FittedModel, out: Path | None
) -> dict[str, str]:
    """Name -> path of what the retrain read and wrote that the manifest hashes."""
    found = {f"new rows {Path(p).name}": p for p in rows.record.files}
    found.update({f"data {name}": str(path) for name, path in files.items()})
    found["model"] = fitted.file
    if config.retrain.script:
        found["script"] = str(config.path(config.retrain.script))
    if out is not None:
        found["model_out"] = str(out)
    return found
