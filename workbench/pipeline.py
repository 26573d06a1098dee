"""Headless runs: execute the stage notebooks with papermill, render reports, write the manifest.

The pipeline runs notebooks, not stages: it imports no stage module. Each notebook writes its stage
record (``validation.json``, ``package.json``, ``launch.json``) into the run folder, and the
manifest ties those records to the hashes of the inputs and the versions of the software.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError

from workbench.artifacts import sha256_file
from workbench.config import Config, load_config
from workbench.errors import GateFailure, WorkbenchError

STAGES = ("validate", "package", "launch")
NOTEBOOKS = {
    "validate": "01_validate.ipynb",
    "package": "02_package.ipynb",
    "launch": "03_launch.ipynb",
}
RECORDS = {"validate": "validation", "package": "package", "launch": "launch"}
KERNEL_NAME = "workbench-python"
VERSIONED = (
    "workbench",
    "bentoml",
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "pydantic",
    "papermill",
    "nbconvert",
    "ipywidgets",
    "ipykernel",
    "jupyterlab",
)
#: Exceptions raised in a notebook that mean "a gate said no" (exit 1), not "something broke".
GATE_ERRORS = {GateFailure.__name__}

Event = Callable[[str], None]


@dataclass
class RunOutcome:
    """The result of a headless run: where it went, what the manifest says, and the exit code."""

    out: Path
    manifest: dict[str, Any]
    exit_code: int
    error: str | None = None
    reports: list[Path] = field(default_factory=list)


def default_out(config: Config) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return config.root / "runs" / stamp


def notebooks_dir(config: Config) -> Path:
    folder = config.root / "notebooks"
    if not folder.is_dir():
        raise WorkbenchError(
            f"no notebooks folder at {folder}; the stage notebooks live in notebooks/ beside "
            "workbench.yaml"
        )
    return folder


def declared_parameters(notebook: Path) -> set[str]:
    """Names set in the notebook's ``parameters`` cell; a notebook without one is refused."""
    book = nbformat.read(notebook, as_version=4)
    if not any("parameters" in c.metadata.get("tags", []) for c in book.cells):
        raise WorkbenchError(
            f"{notebook} has no cell tagged 'parameters'; tag the cell holding `config` and "
            "`interactive` (JupyterLab: property inspector -> Cell Tags)"
        )
    return set(papermill.inspect_notebook(str(notebook)))


def prepare_out(out: Path, *, force: bool) -> Path:
    """Create the run folder; an existing non-empty one is refused unless ``force``."""
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise WorkbenchError(
            f"run folder {out} exists and is not empty; choose another --out or pass --force"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextmanager
def own_kernel() -> Iterator[str]:
    """A kernelspec for this very interpreter, so the run never picks another ``python3``."""
    with tempfile.TemporaryDirectory(prefix="workbench-kernel-") as tmp:
        spec = Path(tmp) / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [
                        sys.executable,
                        "-m",
                        "ipykernel_launcher",
                        "-f",
                        "{connection_file}",
                        "--IPKernelApp.log_level=ERROR",
                    ],
                    "display_name": f"workbench ({sys.executable})",
                    "language": "python",
                }
            )
        )
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [tmp, previous]))
        try:
            yield KERNEL_NAME
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous


def render_html(notebook: Path) -> Path:
    """nbconvert HTML of an executed notebook, written beside it."""
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(notebook, 4))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def git_state(folder: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def build_manifest(
    config_path: Path,
    config: Config,
    out: Path,
    stages: list[str],
    parameters: dict[str, Any],
    timings: dict[str, float],
    status: str,
    error: str | None,
) -> dict[str, Any]:
    records = {}
    for stage in stages:
        path = out / f"{RECORDS[stage]}.json"
        if path.is_file():
            records[stage] = json.loads(path.read_text())
    validation = records.get("validate", {})
    package = records.get("package", {})
    inputs = {
        "config": config_path,
        "model": config.model_path,
        "train": config.train_path,
        "test": config.test_path,
    }
    return {
        "status": status,
        "error": error,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {"path": str(config_path), **config.model_dump(mode="json", exclude={"root"})},
        "sha256": {k: sha256_file(p) for k, p in inputs.items() if p.is_file()},
        "parameters": parameters,
        "stages": stages,
        "timings_s": timings,
        "metrics": validation.get("metrics"),
        "gates": validation.get("gates"),
        "passed": validation.get("passed"),
        "model_tag": package.get("model_tag"),
        "bento_tag": package.get("bento_tag"),
        "launch": records.get("launch"),
        "versions": versions(),
        "git": git_state(config.root),
    }


def _describe(exc: PapermillExecutionError, notebook: str) -> str:
    first_line = str(exc.evalue).strip().splitlines()[0] if exc.evalue else ""
    message = exc.evalue if exc.ename in GATE_ERRORS else first_line
    return f"{notebook}, cell {exc.exec_count}: {exc.ename}: {message}"


def run(
    config_path: str | Path,
    *,
    out: str | Path | None = None,
    stages: tuple[str, ...] = STAGES,
    parameters: dict[str, Any] | None = None,
    kernel: str | None = None,
    force: bool = False,
    on_event: Event = lambda message: None,
) -> RunOutcome:
    """Execute the stage notebooks headlessly and write a run folder with reports and manifest.

    Exit code in the outcome: 0 all stages passed, 1 a gate failed (nothing packaged),
    2 any other failure in a cell (the executed notebook marks the failing cell).
    """
    config_file = Path(config_path).expanduser().resolve()
    config = load_config(config_file)
    folder = notebooks_dir(config)
    declared = set().union(*(declared_parameters(folder / NOTEBOOKS[s]) for s in stages))
    for name in sorted(set(parameters or {}) - declared):
        on_event(
            f"warning: parameter {name!r} is not declared in the parameters cell of "
            f"{', '.join(NOTEBOOKS[s] for s in stages)}; it is passed but nothing reads it"
        )
    out_dir = prepare_out(
        Path(out).expanduser().resolve() if out else default_out(config), force=force
    )
    params = {
        **(parameters or {}),
        "config": str(config_file),
        "run_dir": str(out_dir),
        "interactive": False,
    }
    timings: dict[str, float] = {}
    reports: list[Path] = []
    exit_code, error = 0, None
    with own_kernel() as own:
        for stage in stages:
            notebook = NOTEBOOKS[stage]
            on_event(f"[{stage}] executing {notebook}")
            started = time.perf_counter()
            try:
                papermill.execute_notebook(
                    str(folder / notebook),
                    str(out_dir / notebook),
                    parameters=params,
                    kernel_name=kernel or own,
                    cwd=str(folder),
                    progress_bar=False,
                    log_output=False,
                )
            except PapermillExecutionError as exc:
                exit_code = 1 if exc.ename in GATE_ERRORS else 2
                error = _describe(exc, notebook)
            finally:
                timings[stage] = round(time.perf_counter() - started, 3)
                if (out_dir / notebook).is_file():
                    reports.append(render_html(out_dir / notebook))
            on_event(f"[{stage}] {'failed' if error else 'done'} in {timings[stage]:.1f} s")
            if error:
                break
    status = {0: "passed", 1: "gate-failed"}.get(exit_code, "error")
    manifest = build_manifest(
        config_file, config, out_dir, list(stages), params, timings, status, error
    )
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return RunOutcome(
        out=out_dir, manifest=manifest, exit_code=exit_code, error=error, reports=reports
    )
