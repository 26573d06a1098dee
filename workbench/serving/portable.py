"""Proof that a Bento runs where it ships: a clean environment built from its own requirements.

The Bento's container image is a fresh virtual environment into which BentoML's Dockerfile runs
``uv pip install -r env/python/requirements.txt`` (the list ends with bentoml itself). The launch
stage builds the same here, offline: ``uv venv`` with this Python, then ``uv pip install --offline
-r <bento>/env/python/requirements.txt``, every file hard-linked from uv's cache (which ``make
install`` fills), and serves the Bento with that environment's Python, from the environment's own
folder and without ``PYTHONPATH``: nothing of the project or of this environment can stand in for
what the Bento lacks. A module the Bento misses then fails the launch, here, not in production.
What the requirements leave open (bentoml's own dependencies) resolves to the versions installed
here (:func:`installed_constraints`): those are in uv's cache, where newer ones may be listed but
not held.

One environment per requirement set (keyed by the sha256 of the requirements, this Python's
version and uv's), built once under a lock and reused by every Bento with the same requirements;
nothing installs into it afterwards. Its cost is measured on each build and recorded
(:meth:`CleanEnvironment.describe`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from filelock import FileLock, Timeout
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from uv import find_uv_bin

from workbench.errors import ServingError

REQUIREMENTS = "env/python/requirements.txt"
"""Where a built Bento lists what its image installs."""
MARKER = ".workbench-environment.json"
"""Written last into a complete environment (its record); an environment without it is rebuilt."""
BUILD_TIMEOUT_S = 600.0
#: Variables that would let this environment's or the project's modules into the clean one.
_LEAKS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "CONDA_PREFIX")


@dataclass(frozen=True)
class CleanEnvironment:
    """A virtual environment holding exactly a Bento's requirements (and what they require)."""

    path: Path
    requirements: tuple[str, ...]
    seconds: float
    """What building it took (the build's own figure when it was reused)."""
    files_bytes: int
    """Size of its files."""
    new_bytes: int
    """Of which not hard links into uv's cache: the disk the environment really added."""
    reused: bool = False

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def describe(self) -> str:
        how = "reused, built" if self.reused else "built"
        return (
            f"a clean environment ({self.path}) holding only the Bento's "
            f"{len(self.requirements)} requirements: {how} offline from uv's cache in "
            f"{self.seconds:.1f} s, {self.files_bytes / 1e6:.0f} MB of files of which "
            f"{self.new_bytes / 1e6:.1f} MB new (the rest hard links into the cache)"
        )

    def process_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` without what would let other modules in (``PYTHONPATH``, ...)."""
        return {k: v for k, v in base.items() if k not in _LEAKS}


def bento_requirements(bento_path: Path) -> list[str]:
    """The requirement lines of a built Bento (``env/python/requirements.txt``)."""
    path = bento_path / REQUIREMENTS
    if not path.is_file():
        raise ServingError(
            f"{bento_path} has no {REQUIREMENTS}: not a built Bento; package the model again"
        )
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def environment_key(requirements: list[str], uv: str) -> str:
    """What an environment is built from: the requirements, this Python and uv."""
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, timeout=30)
    text = "\n".join([*requirements, platform.python_version(), version.stdout.strip()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sizes(folder: Path) -> tuple[int, int]:
    """(bytes of all files, bytes of files with a single link) under ``folder``."""
    total = new = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            total += stat.st_size
            new += stat.st_size if stat.st_nlink == 1 else 0
    return total, new


def _run_uv(args: list[str], *, what: str, requirements: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKS}
    env.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise ServingError(
            f"{what} took over {BUILD_TIMEOUT_S:.0f} s and was stopped; set launch.portable: "
            "false in workbench.yaml to serve from this environment (not proven portable)"
        ) from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        raise ServingError(
            f"{what} failed offline:\n{tail}\nNext: fill uv's cache once with the network "
            f"(`uv pip install -r {requirements}` into any environment, or `make install` in "
            "the workbench repository), or set launch.portable: false in workbench.yaml to "
            "serve from this environment (the launch record then says 'portable: not proven')"
        )


def installed_constraints(requirements: list[str]) -> str:
    """Constraints for the clean environment's resolution: every distribution installed here at
    its version, but those the Bento's requirements name themselves. Offline, uv resolves from its
    cache's index pages, which may list newer releases than the wheels it holds (an install
    elsewhere fetched the page): the versions installed here are the ones whose wheels
    ``make install`` put in the cache, and the ones validation ran with."""
    named = set()
    for line in requirements:
        try:
            named.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            continue
    pins = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and name not in named and "+" not in dist.version:
            pins[name] = f"{name}=={dist.version}"
    return "".join(f"{pin}\n" for _, pin in sorted(pins.items()))


def _build(path: Path, requirements: list[str], source: Path) -> CleanEnvironment:
    uv = find_uv_bin()
    started = time.perf_counter()
    what = f"building a clean environment for {source.parent.parent.name}"
    _run_uv(
        [uv, "venv", "--quiet", "--python", sys.executable, str(path)],
        what=what,
        requirements=source,
    )
    python = path / "bin" / "python"
    constraints = path / "constraints.txt"
    constraints.write_text(installed_constraints(requirements))
    install = [uv, "pip", "install", "--offline", "--quiet", "--python", str(python)]
    _run_uv([*install, "-r", str(source), "-c", str(constraints)], what=what, requirements=source)
    seconds = round(time.perf_counter() - started, 2)
    files_bytes, new_bytes = _sizes(path)
    built = CleanEnvironment(path, tuple(requirements), seconds, files_bytes, new_bytes)
    record = {**asdict(built), "path": str(path)}
    (path / MARKER).write_text(json.dumps(record, indent=2) + "\n")
    return built


def prepare_environment(bento_path: Path, *, folder: Path) -> CleanEnvironment:
    """The clean environment of the Bento at ``bento_path``, under ``folder``: reused when one
    with the same requirements is complete, else built (offline; :class:`ServingError` says
    what uv lacked and what to do)."""
    requirements = bento_requirements(bento_path)
    path = folder / environment_key(requirements, find_uv_bin())
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=BUILD_TIMEOUT_S):
            marker = path / MARKER
            if marker.is_file():
                record = json.loads(marker.read_text())
                record.update(path=path, requirements=tuple(record["requirements"]), reused=True)
                return CleanEnvironment(**record)
            shutil.rmtree(path, ignore_errors=True)  # a build that was interrupted
            try:
                return _build(path, requirements, bento_path / REQUIREMENTS)
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
    except Timeout as exc:
        raise ServingError(
            f"another process has been building the clean environment {path} for over "
            f"{BUILD_TIMEOUT_S:.0f} s; try again when it is done"
        ) from exc
