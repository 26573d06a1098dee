"""``workbench init``: scaffold a model project that ``workbench run`` can execute as it is."""

from __future__ import annotations

import json
import re
import shutil
import sys
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from string import Template

from workbench.config import Task
from workbench.errors import WorkbenchError
from workbench.pipeline.provenance import DISTRIBUTION

#: template file -> where it goes in the new project
FILES = {
    "workbench.yaml": "workbench.yaml",
    "gitignore": ".gitignore",
    "workflow.yml": ".github/workflows/workbench.yml",
    # scheduled monitor -> retrain -> a pull request of the promotion, in a file of its own
    ".github/workflows/retrain.yml": ".github/workflows/retrain.yml",
    "pre-commit-config.yaml": ".pre-commit-config.yaml",
    "requirements.txt": "requirements.txt",
    "README.md": "README.md",
}

#: The hook tools the scaffold's requirements.txt pins: the versions requirements.lock pins
#: (tests/test_ci.py holds them equal), which its pre-commit hooks run from the environment.
HOOK_TOOLS = {"nbstripout_version": "0.9.1", "pre_commit_version": "4.7.0"}

#: What the scaffold's requirements.txt says until someone says where workbench comes from; the
#: CI workflows stop at their first step while a requirement line holds it.
UNSET_SOURCE = "git+https://github.com/<owner>/<repo>@<commit>"


#: The gate the scaffold writes for each task, on the test data and on live labelled rows.
GATES = {"classification": "accuracy: {min: 0.8}", "regression": "r2: {min: 0.5}"}


def task_line(task: Task | None) -> str:
    """The scaffold's ``task:`` line: the task when known, else a comment (classification
    gates are written then; see :data:`GATES`)."""
    if task is None:
        return (
            "# task: classification         # or regression; inferred from the model when left "
            "out\n# The gates below are a classifier's: for a regressor use r2 (e.g. "
            "`r2: {min: 0.5}`) here\n# and under monitor.gates, or run "
            "`workbench init --task regression --force`."
        )
    return f"task: {task:<25}# the model's: the gates below use a {task} metric"


def project_name(folder: Path) -> str:
    """A valid model name from a folder name (``My Model`` -> ``my_model``)."""
    name = re.sub(r"[^a-z0-9_.-]+", "_", folder.name.lower()).strip("_.-")
    return name or "model"


def workbench_source(installed: importlib_metadata.Distribution | None = None) -> str | None:
    """Where workbench (``installed``, default this one) was installed from as a pinned pip URL
    (``git+URL@COMMIT``, from the install's PEP 610 record), or ``None`` when not from a git URL
    (an index, a wheel, a folder)."""
    installed = installed or importlib_metadata.distribution(DISTRIBUTION)
    text = installed.read_text("direct_url.json")
    record = json.loads(text) if text else {}
    vcs = record.get("vcs_info", {})
    if vcs.get("vcs") != "git" or not vcs.get("commit_id"):
        return None
    subdirectory = record.get("subdirectory")
    tail = f"#subdirectory={subdirectory}" if subdirectory else ""
    return f"git+{record['url']}@{vcs['commit_id']}{tail}"


def init_project(dest: str | Path, *, task: Task | None = None, force: bool = False) -> list[Path]:
    """Write the stage notebooks, a commented config, ``bentos/``, ``.gitignore``, a CI workflow.

    ``task``: the model's task, whose metric the gates (``gates`` and ``monitor.gates``) use;
    ``None`` writes a classifier's gates and says how to change them. Refuses to overwrite an
    existing ``workbench.yaml`` unless ``force``. Returns the files written.
    """
    folder = Path(dest).expanduser().resolve()
    if (folder / "workbench.yaml").exists() and not force:
        raise WorkbenchError(
            f"{folder / 'workbench.yaml'} already exists; pass --force to overwrite the scaffold"
        )
    templates = resources.files("workbench") / "templates" / "project"
    values = {
        "name": project_name(folder),
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "task_line": task_line(task),
        "gate": GATES[task or "classification"],
        "version": importlib_metadata.version(DISTRIBUTION),
        "workbench_requirement": f"{DISTRIBUTION} @ {workbench_source() or UNSET_SOURCE}",
        "uv_version": importlib_metadata.version("uv"),
        **HOOK_TOOLS,
    }
    written = []
    for source, target in FILES.items():
        path = folder / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(templates.joinpath(source).read_text()).safe_substitute(values))
        written.append(path)
    notebooks = folder / "notebooks"
    notebooks.mkdir(exist_ok=True)
    for book in sorted((resources.files("workbench") / "notebooks").iterdir(), key=str):
        if book.name.endswith(".ipynb"):
            shutil.copyfile(str(book), notebooks / book.name)
            written.append(notebooks / book.name)
    for empty in ("bentos", "models", "data"):
        (folder / empty).mkdir(exist_ok=True)
        keep = folder / empty / ".gitkeep"
        keep.touch()
        written.append(keep)
    return written
