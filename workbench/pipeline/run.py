"""Headless runs: execute the stage notebooks with papermill, render reports, write the manifest.

The pipeline runs notebooks, not stages: it imports no stage module. Each notebook writes its stage
record (``validation.json``, ``package.json``, ``launch.json``) into the run folder, and the
manifest ties those records to the hashes of the inputs and the versions of the software.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.artifacts import replace_atomic, write_atomic
from workbench.config import Config, load_config
from workbench.errors import ConfigError, GateFailure, WorkbenchError, error_type
from workbench.pipeline.kernel import QuietShutdownKernelManager
from workbench.pipeline.provenance import MANIFEST, build_manifest
from workbench.pipeline.report import render_html

if TYPE_CHECKING:
    from papermill.exceptions import PapermillExecutionError

STAGES = ("validate", "package", "launch")
NOTEBOOKS = {
    "validate": "01_validate.ipynb",
    "package": "02_package.ipynb",
    "launch": "03_launch.ipynb",
}
RECORDS = {"validate": "validation", "package": "package", "launch": "launch"}
KERNEL_NAME = "workbench-python"

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


def notebooks_dir(config: Config, stages: tuple[str, ...] = STAGES) -> Path:
    """Where the stage notebooks are: the project's ``notebooks/``, else those workbench ships.

    Only the stage notebooks are run, found by name (:data:`NOTEBOOKS`); other notebooks in the
    folder are left alone. A folder holding none of them (a project's own analysis notebooks)
    means the shipped ones; one holding some but not all of ``stages`` is refused.
    """
    shipped = Path(str(resources.files("workbench") / "notebooks"))
    folder = config.root / "notebooks"
    if not folder.is_dir() or not any((folder / name).is_file() for name in NOTEBOOKS.values()):
        return shipped
    missing = [NOTEBOOKS[s] for s in stages if not (folder / NOTEBOOKS[s]).is_file()]
    if missing:
        raise ConfigError(
            f"{folder} holds some stage notebooks but not {', '.join(missing)}; copy the "
            f"missing ones from {shipped}, or move the stage notebooks out of the folder to run "
            "the shipped ones"
        )
    return folder


def declared_parameters(notebook: Path) -> set[str]:
    """Names set in the notebook's ``parameters`` cell; a notebook without one is refused."""
    import nbformat  # the notebook libraries load when a notebook is read, not with the command
    import papermill

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


def _describe(exc: PapermillExecutionError, notebook: str) -> tuple[int, str]:
    """The exit code of a notebook's exception (its workbench error type's, else 2) and a line.

    A gate failure keeps its whole message (the table of failed gates); anything else its first
    line.
    """
    cls = error_type(exc.ename)
    first_line = str(exc.evalue).strip().splitlines()[0] if exc.evalue else ""
    gate = cls is not None and issubclass(cls, GateFailure)
    message = exc.evalue if gate else first_line
    code = cls.exit_code if cls is not None else WorkbenchError.exit_code
    return code, f"{notebook}, cell {exc.exec_count}: {exc.ename}: {message}"


def _records(out: Path) -> dict[str, dict[str, Any]]:
    return {
        name: json.loads((out / f"{name}.json").read_text())
        for name in RECORDS.values()
        if (out / f"{name}.json").is_file()
    }


def execute_notebook(
    notebook: Path, target: Path, *, parameters: dict[str, Any], kernel: str, progress: bool
) -> tuple[int, str | None]:
    """Run one notebook (a stage of ``workbench run``, the notebook of ``workbench retrain``) in
    a kernel managed by :class:`QuietShutdownKernelManager`; returns (exit code, error line).

    papermill saves the executed notebook (with a failing cell marked) under a temporary name
    beside ``target``, renamed into place once saved whole: a full disk leaves no truncated
    notebook, and the error names ``target``."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # papermill wants a notebook suffix: hidden, unique, and still ".ipynb"
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")
    try:
        try:
            papermill.execute_notebook(
                str(notebook),
                str(tmp),
                parameters=parameters,
                kernel_name=kernel,
                cwd=str(notebook.parent),
                progress_bar=progress,
                log_output=False,
                kernel_manager_class=QuietShutdownKernelManager,
            )
            outcome: tuple[int, str | None] = (0, None)
        except PapermillExecutionError as exc:
            outcome = _describe(exc, notebook.name)
        except OSError as exc:
            where = target if exc.filename in (None, str(tmp)) else exc.filename
            return 2, f"{notebook.name}: could not write {where} ({exc.strerror or exc})"
        except Exception as exc:  # dead kernel, timeout, unreadable notebook: still one line
            outcome = (2, f"{notebook.name}: {type(exc).__name__}: {exc}")
        if tmp.is_file():
            try:
                replace_atomic(tmp, target)
            except OSError as exc:
                return 2, f"{notebook.name}: could not write {target} ({exc.strerror or exc})"
        return outcome
    finally:
        tmp.unlink(missing_ok=True)


def run(
    config_path: str | Path,
    *,
    out: str | Path | None = None,
    stages: tuple[str, ...] = STAGES,
    parameters: dict[str, Any] | None = None,
    kernel: str | None = None,
    force: bool = False,
    progress: bool = False,
    on_event: Event = lambda _message: None,
) -> RunOutcome:
    """Execute the stage notebooks headlessly and write a run folder with reports and manifest.

    Exit code in the outcome: 0 all stages passed, 1 a gate failed (nothing packaged),
    2 any other failure (the executed notebook is kept with the failing cell marked).
    ``progress`` shows papermill's per-cell progress bar (for terminals, not CI logs).
    """
    config_file = Path(config_path).expanduser().resolve()
    config = load_config(config_file)
    folder = notebooks_dir(config, stages)
    _warn_undeclared(folder, stages, parameters or {}, on_event)
    out_dir = prepare_out(
        Path(out).expanduser().resolve() if out else default_out(config), force=force
    )
    params = {
        **(parameters or {}),
        "config": str(config_file),
        "run_dir": str(out_dir),
        "interactive": False,
    }
    with own_kernel() as own:
        executed = _execute_stages(
            folder,
            out_dir,
            stages,
            params,
            kernel=kernel or own,
            progress=progress,
            on_event=on_event,
        )
    records = _records(out_dir)
    manifest = build_manifest(
        config=config.model_dump(mode="json", exclude={"root"}),
        inputs=_inputs(config_file, config, folder, stages, records),
        records=records,
        parameters=params,
        stages=list(stages),
        timings=executed.timings,
        status={0: "passed", 1: "gate-failed"}.get(executed.exit_code, "error"),
        error=executed.error,
        project=config.root,
    )
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return RunOutcome(
        out=out_dir,
        manifest=manifest,
        exit_code=executed.exit_code,
        error=executed.error,
        reports=executed.reports,
    )


def _inputs(
    config_file: Path,
    config: Config,
    folder: Path,
    stages: tuple[str, ...],
    records: dict[str, Any],
) -> dict[str, Path]:
    """The files a run depends on, by the name the manifest gives them (the project's own
    modules the Bento carries by their source, so `verify` sees them change)."""
    shipped = records.get("package", {}).get("code", {})
    return {
        "config": config_file,
        "model": config.model_path,
        "train": config.train_path,
        "test": config.test_path,
        **{f"notebook {NOTEBOOKS[s]}": folder / NOTEBOOKS[s] for s in stages},
        **{f"code {path}": Path(source) for path, source in sorted(shipped.items())},
    }


def _warn_undeclared(
    folder: Path, stages: tuple[str, ...], parameters: dict[str, Any], on_event: Event
) -> None:
    """A warning for each parameter no stage notebook's parameters cell declares."""
    declared = set().union(*(declared_parameters(folder / NOTEBOOKS[s]) for s in stages))
    for name in sorted(set(parameters) - declared):
        on_event(
            f"warning: parameter {name!r} is not declared in the parameters cell of "
            f"{', '.join(NOTEBOOKS[s] for s in stages)}; it is passed but nothing reads it"
        )


@dataclass
class _Executed:
    """The stages run so far: seconds each, their HTML reports, and the first failure."""

    timings: dict[str, float] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)
    exit_code: int = 0
    error: str | None = None


def _execute_stages(
    folder: Path,
    out_dir: Path,
    stages: tuple[str, ...],
    params: dict[str, Any],
    *,
    kernel: str,
    progress: bool,
    on_event: Event,
) -> _Executed:
    """Each stage's notebook in turn, with its HTML report, until one fails."""
    executed = _Executed()
    for stage in stages:
        notebook = folder / NOTEBOOKS[stage]
        on_event(f"[{stage}] executing {notebook.name}")
        started = time.perf_counter()
        executed.exit_code, executed.error = execute_notebook(
            notebook, out_dir / notebook.name, parameters=params, kernel=kernel, progress=progress
        )
        executed.timings[stage] = round(time.perf_counter() - started, 3)
        if (out_dir / notebook.name).is_file():
            _render(out_dir / notebook.name, executed)
        on_event(
            f"[{stage}] {'failed' if executed.error else 'done'} in {executed.timings[stage]:.1f} s"
        )
        if executed.error:
            break
    return executed


def _render(notebook: Path, executed: _Executed) -> None:
    """The executed notebook's HTML report; failing to write it fails the run (one line)."""
    try:
        executed.reports.append(render_html(notebook))
    except Exception as exc:  # nbconvert, a template, the disk: still one line
        if not executed.error:
            executed.exit_code = 2
            executed.error = (
                f"{notebook.name}: its HTML report could not be written "
                f"({type(exc).__name__}: {exc})"
            )
