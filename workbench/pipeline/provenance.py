"""Provenance of a run: the manifest that ties inputs, software and outputs together, and its check.

``manifest.json`` records the sha256 of the config, model, data and notebooks, the parameters, the
metrics and gate verdicts, the model and Bento tags and the sha256 of every file inside the Bento
and the stored model (their ``creation_time`` stamps left out, the only part that is not content).
:func:`verify` re-hashes all of it and lists what differs.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from workbench.artifacts import sha256_file
from workbench.errors import WorkbenchError
from workbench.integrity import tree_hashes

MANIFEST = "manifest.json"
#: The name workbench is installed under (`pip install deployment-workbench`); the import name
#: and the command stay `workbench`. On PyPI `workbench` is an unrelated project.
DISTRIBUTION = "deployment-workbench"
#: Software whose versions the manifest records (by import name; see :func:`versions`).
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
    "nbclient",
    "ipywidgets",
    "ipykernel",
    "jupyterlab",
)


def git_state(folder: Path) -> dict[str, Any]:
    """The commit of the repository holding ``folder`` and whether its tree was dirty."""

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
            out[name] = importlib_metadata.version(DISTRIBUTION if name == "workbench" else name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def input_hashes(inputs: dict[str, Path]) -> dict[str, str]:
    return {name: sha256_file(path) for name, path in inputs.items() if path.is_file()}


def build_manifest(  # noqa: PLR0913 - keyword-only, one per part of the manifest
    *,
    config: dict[str, Any],
    inputs: dict[str, Path],
    records: dict[str, dict[str, Any]],
    parameters: dict[str, Any],
    stages: list[str],
    timings: dict[str, float],
    status: str,
    error: str | None,
    project: Path,
) -> dict[str, Any]:
    """The manifest of one run, from the stage records it left in the run folder."""
    validation = records.get("validation", {})
    package = records.get("package", {})
    bento_path = Path(package["bento_path"]) if package.get("bento_path") else None
    model_path = Path(package["model_path"]) if package.get("model_path") else None
    return {
        "status": status,
        "error": error,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "sha256": input_hashes(inputs),
        "inputs": {name: str(path) for name, path in inputs.items()},
        "parameters": parameters,
        "stages": stages,
        "timings_s": timings,
        "metrics": validation.get("metrics"),
        "gates": validation.get("gates"),
        "passed": validation.get("passed"),
        "model_tag": package.get("model_tag"),
        "bento_tag": package.get("bento_tag"),
        "bento_files": tree_hashes(bento_path) if bento_path and bento_path.is_dir() else None,
        "model_files": tree_hashes(model_path) if model_path and model_path.is_dir() else None,
        "launch": records.get("launch"),
        # "proven": the launch served the Bento from a clean environment of its requirements
        "portable": (records.get("launch") or {}).get("portable"),
        "versions": versions(),
        "git": git_state(project),
    }


@dataclass
class Verification:
    """What :func:`verify` found: every difference between a run's manifest and the files now."""

    run_dir: Path
    checked: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def _compare(
    label: str, recorded: dict[str, str], current: dict[str, str], found: Verification
) -> None:
    for name in sorted(set(recorded) | set(current)):
        found.checked += 1
        if name not in current:
            found.differences.append(f"{label} {name}: missing now")
        elif name not in recorded:
            found.differences.append(f"{label} {name}: not in the manifest")
        elif recorded[name] != current[name]:
            found.differences.append(
                f"{label} {name}: sha256 {current[name][:12]}… != recorded {recorded[name][:12]}…"
            )


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.is_file():
        raise WorkbenchError(
            f"{run_dir} is not a run folder (no {MANIFEST}); give the folder `workbench run` "
            "wrote, e.g. runs/<time>"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WorkbenchError(
            f"{path} is not valid JSON ({exc}); the run folder is damaged"
        ) from exc
    if not isinstance(manifest, dict) or "sha256" not in manifest or "inputs" not in manifest:
        raise WorkbenchError(f"{path} is not a workbench manifest (no `sha256`/`inputs` keys)")
    return manifest


def verify(run_dir: str | Path) -> Verification:
    """Re-hash a run's inputs and its Bento and model in the BentoML store against the manifest."""
    import bentoml

    folder = Path(run_dir).expanduser().resolve()
    manifest = read_manifest(folder)
    found = Verification(run_dir=folder)
    inputs = {name: Path(path) for name, path in manifest["inputs"].items()}
    _compare("input", manifest["sha256"], input_hashes(inputs), found)
    for kind, key, getter in (
        ("bento", "bento_tag", bentoml.bentos.get),
        ("model", "model_tag", bentoml.models.get),
    ):
        tag, recorded = manifest.get(key), manifest.get(f"{kind}_files")
        if not tag or recorded is None:
            continue
        try:
            stored = Path(getter(tag).path)
        except bentoml.exceptions.NotFound:
            found.differences.append(f"{kind} {tag}: not in the BentoML store at hand")
            continue
        _compare(f"{kind} {tag}", recorded, tree_hashes(stored), found)
    return found
