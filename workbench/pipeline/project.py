"""``workbench init``: scaffold a model project that ``workbench run`` can execute as it is."""

from __future__ import annotations

import re
import shutil
import sys
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from string import Template

from workbench.errors import WorkbenchError

#: template file -> where it goes in the new project
FILES = {
    "workbench.yaml": "workbench.yaml",
    "gitignore": ".gitignore",
    "workflow.yml": ".github/workflows/workbench.yml",
    "pre-commit-config.yaml": ".pre-commit-config.yaml",
    "README.md": "README.md",
}


def project_name(folder: Path) -> str:
    """A valid model name from a folder name (``My Model`` -> ``my_model``)."""
    name = re.sub(r"[^a-z0-9_.-]+", "_", folder.name.lower()).strip("_.-")
    return name or "model"


def init_project(dest: str | Path, *, force: bool = False) -> list[Path]:
    """Write the stage notebooks, a commented config, ``bentos/``, ``.gitignore``, a CI workflow.

    Refuses to overwrite an existing ``workbench.yaml`` unless ``force``. Returns the files written.
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
    }
    written = []
    for source, target in FILES.items():
        path = folder / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(templates.joinpath(source).read_text()).safe_substitute(values))
        written.append(path)
    requirements = folder / "requirements.txt"
    requirements.write_text(
        "# What CI installs. Point the first line at wherever your team publishes workbench\n"
        "# (a wheel path, an internal index or a git URL) if it is not on your package index.\n"
        f"workbench=={importlib_metadata.version('workbench')}\n"
    )
    written.append(requirements)
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
