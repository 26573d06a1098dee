"""The project's own code: the modules beside ``workbench.yaml`` and those its ``code:`` list names.

A real project keeps its transformers in a module of its own (``features.py`` beside the config,
or a package under ``src/``) and pickles Pipelines that reference them. Those modules must import
wherever the model loads: in every stage notebook, in ``workbench run``'s kernel, in the CLI, and
in the Bento (packaging copies them in). ``code:`` follows MLflow's ``code_paths``: each entry is
a module file (``lib/helpers.py`` imports as ``helpers``) or a package folder (``src/mypkg``
imports as ``mypkg``), so the folder holding it is an import root. The project folder itself is
always the first root.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

CODE_KEY = "code"
"""The ``workbench.yaml`` key listing the project's other module files and package folders."""


def module_name(entry: Path) -> str:
    """The name ``entry`` imports as: ``helpers`` for ``lib/helpers.py``, ``mypkg`` for a
    package folder ``src/mypkg``."""
    return entry.stem if entry.suffix == ".py" else entry.name


def entry_problem(entry: Path) -> str | None:
    """Why ``entry`` cannot be a ``code:`` entry (``None`` when it can)."""
    if entry.is_file() and entry.suffix != ".py":
        return f"{entry} is not a Python module (a .py file) or a package folder"
    if not entry.exists():
        return f"{entry} does not exist"
    if not module_name(entry).isidentifier():
        return f"{entry.name!r} cannot be imported under that name (not a Python identifier)"
    return None


def import_roots(root: Path, entries: Sequence[Path]) -> list[Path]:
    """The folders to import from, in order: the project folder, then the folder holding each
    ``code:`` entry."""
    roots = [root.resolve()]
    for entry in entries:
        parent = entry.resolve().parent
        if parent not in roots:
            roots.append(parent)
    return roots


def make_importable(roots: Sequence[Path]) -> None:
    """Put ``roots`` first on ``sys.path``, in order (each once), so the project's modules import
    before any installed module of the same name, as a script's own folder does."""
    for position, folder in enumerate(str(Path(r).resolve()) for r in roots):
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(position, folder)
    importlib.invalidate_caches()


def missing_module_advice(name: str) -> str:
    """What to do when the module ``name`` a model needs does not import."""
    top = name.split(".")[0]
    if top == "__main__":
        return (
            "the class was defined in the notebook or script that saved the model (__main__), "
            "which no other process has: move it into a module (e.g. features.py beside "
            "workbench.yaml), import it from there, fit and save the model again"
        )
    return (
        f"if {top!r} is your code, put {top}.py (or the package folder {top}/) beside "
        f"workbench.yaml, or name its file or folder under `{CODE_KEY}:` in workbench.yaml; if "
        f"it is a library, install it into this environment (pip install <its distribution>)"
    )
