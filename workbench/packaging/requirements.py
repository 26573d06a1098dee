"""What a model needs installed to load, found from the model itself rather than from a list.

The pickle is read without running it (:func:`pickle_globals`, as skops lists a pickle's types
before loading it): every class and function it references names its module. Each module is the
standard library's, the project's (shipped in the Bento with the project modules it imports, see
:mod:`.code`), or an installed distribution's (``importlib.metadata.packages_distributions``).
Distributions are pinned at the version installed here, the one the model was validated with,
with everything they declare they require: what importing them pulls in. (What a library only
tries to import, such as LightGBM's optional Dask support, it does not require, and the Bento
does not get it.) The imports of the project's own modules count as the model's. A module that
is none of these is refused, by name, with what to do.
"""

from __future__ import annotations

import _compat_pickle
import importlib.util
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
from joblib import numpy_pickle
from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from workbench.artifacts import sha256_file
from workbench.errors import PackagingError
from workbench.packaging.code import ProjectModules, ShippedCode, ship_code
from workbench.project_code import CODE_KEY, missing_module_advice

#: What the scan builds for real: joblib writes each numpy array's bytes right after a
#: ``NumpyArrayWrapper`` in the pickle stream, and reads them past with the wrapper's dtype and
#: shape. Everything else the pickle names is a :class:`_StandIn` that only records the name.
_REAL: dict[tuple[str, str], Any] = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): numpy_pickle.NumpyArrayWrapper,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "memmap"): np.memmap,
}
#: Modules of the interpreter itself: nothing to install.
_STANDARD = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)


class _StandIn:
    """Whatever the pickle calls or builds in place of a class it names: accepts any arguments
    and state and keeps none of it."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _StandIn:  # noqa: ARG004 - any signature
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _Scanner(numpy_pickle.NumpyUnpickler):  # type: ignore[misc]
    """joblib's own unpickler (compressed files, arrays after their wrappers, object arrays as
    nested pickles, whose classes joblib looks up through this ``find_class`` too) with every
    class lookup recorded and answered by a stand-in."""

    def __init__(self, filename: str, file_handle: Any) -> None:
        super().__init__(filename, file_handle, ensure_native_byte_order=False)
        self.found: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:  # Python 2 names, as pickle maps them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            else:
                module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        self.found.add((module, name))
        return _REAL.get((module, name)) or type(name, (_StandIn,), {"__module__": module})


def pickle_globals(path: Path) -> set[tuple[str, str]]:
    """(module, name) of every class and function the pickle or joblib file at ``path``
    references. Nothing it names is imported and none of its code runs."""
    try:
        with (
            open(path, "rb") as raw,
            _validate_fileobject_and_memmap(raw, str(path), None) as (stream, _),
        ):
            scanner = _Scanner(str(path), stream)
            scanner.load()
    except Exception as exc:  # noqa: BLE001 - a file joblib cannot read either
        raise PackagingError(
            f"model file {str(path)!r} could not be read as a pickle to find the modules it "
            f"needs ({type(exc).__name__}: {exc}); save the fitted estimator with "
            "joblib.dump(model, path)"
        ) from exc
    return scanner.found


@dataclass(frozen=True)
class FoundPackage:
    """A distribution the model needs beyond the Bento's base list, and why."""

    name: str
    version: str
    why: tuple[str, ...]
    """What needs it: names in the pickle, project files importing it, or the distribution that
    requires it."""

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class ModelNeeds:
    """What loading the model takes beyond the Bento's base packages."""

    packages: tuple[FoundPackage, ...] = ()
    code: dict[str, Path] = field(default_factory=dict)
    """The project's files the Bento carries: Bento-relative path -> source file."""
    modules: dict[str, str] = field(default_factory=dict)
    """Project module -> Bento-relative path of its source."""

    def pins(self) -> list[str]:
        return [package.pin for package in self.packages]

    def card(self, *, installed: bool) -> dict[str, Any]:
        """For the model card: each package, where it came from and whether the Bento installs
        it (an ONNX-served Bento does not: it never loads the pickle), and each project file."""
        return {
            "packages": [
                {"package": p.pin, "from": list(p.why), "installed": installed}
                for p in self.packages
            ],
            "code": {
                path: {"sha256": sha256_file(source), "modules": self._modules_in(path)}
                for path, source in sorted(self.code.items())
            },
        }

    def _modules_in(self, path: str) -> list[str]:
        return sorted(module for module, where in self.modules.items() if where == path)


def requirement_closure(names: Iterable[str]) -> set[str]:
    """Canonical names of the distributions in ``names`` and of everything they require (no
    extras; markers evaluated here), as far as installed."""
    closure: set[str] = set()
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in closure:
            continue
        try:
            dist = importlib_metadata.distribution(name)
        except importlib_metadata.PackageNotFoundError:
            continue
        closure.add(name)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return closure


def _owners(module: str, candidates: Sequence[str]) -> list[str]:
    """The distributions among ``candidates`` that hold ``module`` (several share a namespace
    package such as ``google``)."""
    names = sorted(set(candidates))
    if len(names) == 1:
        return names
    prefix = module.replace(".", "/")
    held = [
        name
        for name in names
        if any(str(f).startswith(prefix) for f in importlib_metadata.distribution(name).files or [])
    ]
    return held or names


def _local_folder(name: str) -> str | None:
    """The folder a distribution was installed from (``pip install -e .`` or ``pip install
    ./folder``), which no package index holds; ``None`` for an index install."""
    text = importlib_metadata.distribution(name).read_text("direct_url.json")
    if not text:
        return None
    record = json.loads(text)
    return str(record.get("url")) if "dir_info" in record else None


def _where(top: str) -> str:
    """Where ``top`` imports from in this process, if anywhere (nothing is imported)."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return ""
    if spec is None:
        return ""
    origin = spec.origin or ", ".join(spec.submodule_search_locations or [])
    return f" (here it imports from {origin}, outside the project folder and its `{CODE_KEY}:`)"


def _distribution_needs(wanted: dict[str, set[str]], optional: set[str]) -> dict[str, set[str]]:
    """Installed distribution -> why, for each wanted top-level module (those in ``optional``,
    imported by project code but not installed anywhere, are left out)."""
    provided = importlib_metadata.packages_distributions()
    needed: dict[str, set[str]] = {}
    for top, why in sorted(wanted.items()):
        owners = _owners(top, provided.get(top, []))
        if not owners:
            where = _where(top)
            if top in optional and not where:
                continue  # a guarded import the model loaded without: not needed
            raise PackagingError(
                f"the model needs the module {top!r} ({'; '.join(sorted(why))}), which no "
                f"installed distribution provides and which is not the project's{where}: the "
                f"Bento could not import it. Next: {missing_module_advice(top)}"
            )
        for owner in owners:
            folder = _local_folder(owner)
            if folder:
                raise PackagingError(
                    f"the model needs the module {top!r} ({'; '.join(sorted(why))}) of the "
                    f"distribution {owner!r}, installed from the local folder {folder}, which no "
                    f"package index holds: the Bento could not install it. Next: name its "
                    f"package folder under `{CODE_KEY}:` in workbench.yaml so the Bento carries "
                    "it, or publish it to your package index and install it from there"
                )
            needed.setdefault(owner, set()).update(why)
    return needed


def _beyond_base(needed: dict[str, set[str]], base: Sequence[str]) -> dict[str, set[str]]:
    """Canonical name -> why, for the needed distributions and what they require, less what the
    base list and bentoml bring (a base distribution the model names is pinned by the base)."""
    brought = requirement_closure([*base, "bentoml"])
    listed = {canonicalize_name(name) for name in base}
    why: dict[str, set[str]] = {}
    for owner, reasons in needed.items():
        for name in requirement_closure([owner]):
            if name == canonicalize_name(owner):
                if name not in listed:
                    why.setdefault(name, set()).update(reasons)
            elif name not in brought:
                why.setdefault(name, set()).add(f"required by {owner}")
    return why


def library_pins(names: Sequence[str], *, base: Sequence[str], why: str) -> list[str]:
    """``name==version`` of each installed distribution of ``names`` and of what it requires
    beyond ``base`` and bentoml (a library a feature of the Bento needs, not the model)."""
    needed = _beyond_base({name: {why} for name in names}, base)
    return [
        f"{importlib_metadata.distribution(name).metadata['Name']}=={importlib_metadata.version(name)}"
        for name in sorted(needed)
    ]


def find_needs(model_file: Path, project: ProjectModules, *, base: Sequence[str]) -> ModelNeeds:
    """What the model in ``model_file`` needs beyond the distributions ``base`` (the Bento's
    base list) brings; refused (:class:`PackagingError`) when a module it needs is nowhere."""
    wanted: dict[str, set[str]] = {}
    project_modules: set[str] = set()
    for module, name in sorted(pickle_globals(model_file)):
        top = module.split(".")[0]
        if top == "__main__":
            raise PackagingError(
                f"the model references __main__.{name}: {missing_module_advice('__main__')}"
            )
        if project.locate(module) is not None:
            project_modules.add(module)
        elif top not in _STANDARD:
            wanted.setdefault(top, set()).add(f"{module}.{name} in the model")
    shipped: ShippedCode = ship_code(project_modules, project)
    optional = set()
    for top, files in shipped.imports.items():
        if top in _STANDARD:
            continue
        if top not in wanted:
            optional.add(top)
        wanted.setdefault(top, set()).add(f"imported by {', '.join(sorted(files))}")
    why = _beyond_base(_distribution_needs(wanted, optional), base)
    packages = tuple(
        FoundPackage(
            name=importlib_metadata.distribution(name).metadata["Name"],
            version=importlib_metadata.version(name),
            why=tuple(sorted(reasons)),
        )
        for name, reasons in sorted(why.items())
    )
    return ModelNeeds(packages=packages, code=shipped.files, modules=shipped.modules)
