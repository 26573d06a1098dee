"""A headless retrain: ``07_retrain.ipynb`` executed with papermill into a run folder, its HTML
report, and the manifest.

As ``workbench run`` does for validate -> package -> launch: the notebook runs the retrain (its
records land in the run folder: ``retrain.json``, ``validation.json``, ``package.json``,
``shadow.json``, ``promotion.json``), and the manifest ties them to the sha256 of everything the
retrain read and wrote (the new rows, the split's parts, the data the stages ran on, the model),
the software versions, the git commit, and the Bento's files.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from workbench.artifacts import write_atomic
from workbench.config import Config, load_config
from workbench.pipeline.provenance import MANIFEST, build_manifest
from workbench.pipeline.report import render_html
from workbench.pipeline.run import Event, RunOutcome, execute_notebook, own_kernel, prepare_out

NOTEBOOK = "07_retrain.ipynb"
#: The records a retrain writes, by the name the manifest reads them under.
RECORDS = ("retrain", "validation", "package", "shadow", "promotion")


def retrain_notebook(config: Config) -> Path:
    """The project's ``notebooks/07_retrain.ipynb``, else the one workbench ships (a project
    scaffolded before it existed has none)."""
    own = config.root / "notebooks" / NOTEBOOK
    return (
        own if own.is_file() else Path(str(resources.files("workbench") / "notebooks" / NOTEBOOK))
    )


def run_retrain(  # noqa: PLR0913 - keyword-only options of one run, as `run` has them
    config_path: str | Path,
    *,
    parameters: dict[str, Any],
    out: str | Path | None = None,
    kernel: str | None = None,
    force: bool = False,
    progress: bool = False,
    on_event: Event = lambda _message: None,
) -> RunOutcome:
    """Execute the retrain notebook headlessly (``parameters``: ``data``, ``capture``, ``seed``,
    ``model_out``) and write the run folder's report and manifest.

    Exit code in the outcome: 0 promoted (or the challenger is the promoted version), 1 a gate
    refused it (nothing promoted), 2 any other failure (the executed notebook is kept).
    """
    config_file = Path(config_path).expanduser().resolve()
    config = load_config(config_file)
    notebook = retrain_notebook(config)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = prepare_out(
        Path(out).expanduser().resolve() if out else config.root / "runs" / f"retrain-{stamp}",
        force=force,
    )
    params = {
        **parameters,
        "config": str(config_file),
        "run_dir": str(out_dir),
        "interactive": False,
    }
    on_event(f"[retrain] executing {notebook.name}")
    started = time.perf_counter()
    with own_kernel() as own:
        code, error = execute_notebook(
            notebook,
            out_dir / NOTEBOOK,
            parameters=params,
            kernel=kernel or own,
            progress=progress,
        )
    seconds = round(time.perf_counter() - started, 3)
    on_event(f"[retrain] {'failed' if error else 'done'} in {seconds:.1f} s")
    reports, code, error = _report(out_dir / NOTEBOOK, code, error)
    manifest = retrain_manifest(
        config,
        config_file,
        notebook,
        out_dir,
        params=params,
        seconds=seconds,
        code=code,
        error=error,
    )
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return RunOutcome(out=out_dir, manifest=manifest, exit_code=code, error=error, reports=reports)


def _report(executed: Path, code: int, error: str | None) -> tuple[list[Path], int, str | None]:
    """The executed notebook's HTML report; failing to write it fails the run (one line)."""
    if not executed.is_file():
        return [], code, error
    try:
        return [render_html(executed)], code, error
    except Exception as exc:  # nbconvert, a template, the disk: still one line
        if error:
            return [], code, error
        return [], 2, f"{executed.name}: its HTML report could not be written ({exc})"


def retrain_manifest(  # noqa: PLR0913 - keyword-only: the parts of one run's manifest
    config: Config,
    config_file: Path,
    notebook: Path,
    out_dir: Path,
    *,
    params: dict[str, Any],
    seconds: float,
    code: int,
    error: str | None,
) -> dict[str, Any]:
    """The manifest of a retrain: :func:`build_manifest`'s, over the config the stages ran with
    and every file the retrain read or wrote, and a ``retrain`` section (the outcome, the new
    rows by sha256, the split, how the challenger was made), from the records in ``out_dir``."""
    records = {
        name: json.loads((out_dir / f"{name}.json").read_text())
        for name in RECORDS
        if (out_dir / f"{name}.json").is_file()
    }
    retrain = records.get("retrain", {})
    inputs = {
        "config": config_file,
        f"notebook {NOTEBOOK}": notebook,
        **{name: Path(path) for name, path in (retrain.get("inputs") or {}).items()},
    }
    manifest = build_manifest(
        config=retrain.get("config") or config.model_dump(mode="json", exclude={"root"}),
        inputs=inputs,
        records=records,
        parameters=params,
        stages=["retrain"],
        timings={"retrain": seconds},
        status={0: "passed", 1: "gate-failed"}.get(code, "error"),
        error=error,
        project=config.root,
    )
    manifest["retrain"] = {
        key: retrain.get(key)
        for key in (
            "outcome",
            "refused_by",
            "champion",
            "new_rows",
            "model",
            "data_sha256",
            "model_out",
            "steps",
        )
    }
    return manifest
