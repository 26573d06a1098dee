"""The project's modules a model needs, found by name and followed through their imports.

A module is the project's when it lies in the project folder (``features.py``, or a package
folder with ``__init__.py``) or is a ``code:`` entry (or inside one). Packaging ships what the
model's pickle references from them, every project module those import (read from their source
with :mod:`ast`, nothing is run), and the ``__init__.py`` of each package on the way, at the same
paths relative to their import root, so they import in the Bento as they do here. Their imports of
anything else are reported, to be mapped to installed distributions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import PackagingError
from workbench.project_code import module_name

#: Names the Bento's own files take beside ``service.py``: a project module may not shadow them.
RESERVED = frozenset({"service", "workbench_runtime", "deploy"})


@dataclass(frozen=True)
class ProjectModules:
    """Where the project's modules are: the project folder and the ``code:`` entries."""

    root: Path
    entries: tuple[Path, ...] = ()

    def _start(self, top: str) -> tuple[Path, Path] | None:
        """(import root, file or folder) of the top-level module ``top``, if it is the project's."""
        for entry in self.entries:
            if module_name(entry) == top:
                return entry.parent, entry
        for candidate in (self.root / f"{top}.py", self.root / top):
            if candidate.is_file() or (candidate / "__init__.py").is_file():
                return self.root, candidate
        return None

    def locate(self, module: str) -> tuple[Path, Path] | None:
        """(import root, source file) of ``module`` when it is the project's, else ``None``.

        A package's source file is its ``__init__.py``; a namespace package (a ``code:`` folder
        without one) has none and gives the folder itself.
        """
        top, *rest = module.split(".")
        start = self._start(top)
        if start is None:
            return None
        base, path = start
        for part in rest:
            if path.is_file():
                return None
            path = path / part if (path / part).is_dir() else path / f"{part}.py"
        if path.is_dir():
            init = path / "__init__.py"
            return base, init if init.is_file() else path
        return (base, path) if path.is_file() else None


@dataclass
class ShippedCode:
    """The project files a Bento carries, and what they import from elsewhere."""

    files: dict[str, Path] = field(default_factory=dict)
    """Bento-relative path -> source file."""
    modules: dict[str, str] = field(default_factory=dict)
    """Module name -> Bento-relative path of its source (packages: their ``__init__.py``)."""
    imports: dict[str, set[str]] = field(default_factory=dict)
    """Top-level module imported by project code, not the project's -> the files importing it."""


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """Every module ``tree`` may import, absolute (``from a import b`` gives ``a`` and ``a.b``:
    ``b`` may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                keep = len(parts) - (node.level - 1)
                if keep < 1:
                    continue  # beyond the top-level package: Python refuses it too
                base = ".".join([*parts[:keep], *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def ship_code(modules: Iterable[str], project: ProjectModules) -> ShippedCode:
    """The project files that ``modules`` (project module names) need, with their imports."""
    shipped = ShippedCode()
    pending = sorted(set(modules))
    while pending:
        module = pending.pop()
        if module in shipped.modules:
            continue
        found = project.locate(module)
        if found is None:
            continue
        base, source = found
        if module.split(".")[0] in RESERVED:
            raise PackagingError(
                f"the project module {module!r} ({source}) would take the name of the Bento's "
                f"own {module.split('.')[0]!r}; rename it (and refit and save the model)"
            )
        parts = module.split(".")
        for depth in range(1, len(parts)):  # the packages on the way import first
            pending.append(".".join(parts[:depth]))
        if source.is_dir():  # a namespace package: nothing to copy, nothing to read
            shipped.modules[module] = source.relative_to(base).as_posix()
            continue
        relative = source.relative_to(base).as_posix()
        shipped.modules[module] = relative
        shipped.files[relative] = source
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        except (OSError, UnicodeDecodeError, SyntaxError) as exc:
            raise PackagingError(
                f"{source} (module {module!r}, which the model needs) could not be read as "
                f"Python source ({type(exc).__name__}: {exc}); fix the file"
            ) from exc
        for name in _imported_names(tree, module, source.name == "__init__.py"):
            if not name:
                continue
            if project.locate(name) is not None:
                pending.append(name)
            elif project.locate(name.rpartition(".")[0] or name) is None:
                shipped.imports.setdefault(name.split(".")[0], set()).add(relative)
    return shipped
