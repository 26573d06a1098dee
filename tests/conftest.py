"""Shared fixtures. The whole session uses a temporary BentoML store and server-state folder,
set before bentoml is imported; tests running ``workbench`` in a subprocess get their own store.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="workbench-tests-"))
os.environ["BENTOML_HOME"] = str(_SESSION_TMP / "bentoml")
os.environ["WORKBENCH_STATE_DIR"] = str(_SESSION_TMP / "state")
os.environ["BENTOML_DO_NOT_TRACK"] = "True"

import psutil  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

from breast_cancer import write_example  # noqa: E402


def our_servers() -> list[psutil.Process]:
    """``bentoml serve`` processes (and workers) using a store under this session's temp folder."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "bentoml" not in " ".join(proc.info["cmdline"] or []):
                continue
            if proc.environ().get("BENTOML_HOME", "").startswith(str(_SESSION_TMP)):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def no_server_outlives_the_suite() -> Iterator[None]:
    yield
    left = our_servers()
    for proc in left:
        proc.kill()
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)
    assert not left, f"servers left running after the suite: {[p.pid for p in left]}"


@pytest.fixture(scope="session")
def example_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example's model and data, trained once per session."""
    folder = tmp_path_factory.mktemp("example")
    write_example(folder)
    return folder


def copy_project(example_files: Path, dest: Path) -> Path:
    """A copy of the example project (config, notebooks, model, data) with a unique name."""
    for sub in ("models", "data"):
        shutil.copytree(example_files / sub, dest / sub)
    shutil.copytree(REPO / "notebooks", dest / "notebooks")
    raw = yaml.safe_load((REPO / "workbench.yaml").read_text())
    raw["name"] = f"bc_{uuid.uuid4().hex[:8]}"
    (dest / "workbench.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return dest


@pytest.fixture
def project(tmp_path: Path, example_files: Path) -> Path:
    """A fresh copy of the example project, for tests that change it."""
    return copy_project(example_files, tmp_path)


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> Path:
    """The example project validated and packaged once; tests must not change its files."""
    from workbench import load_config, package, validate

    folder = copy_project(example_files, tmp_path_factory.mktemp("packaged"))
    config = load_config(folder / "workbench.yaml")
    validate(config)
    package(config)
    return folder


def edit_config(project: Path, **changes: object) -> Path:
    """Rewrite keys of a project's workbench.yaml."""
    path = project / "workbench.yaml"
    raw = yaml.safe_load(path.read_text())
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
