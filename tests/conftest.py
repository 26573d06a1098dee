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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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

KERNEL_CODE = """
from workbench.serving import Server
server = Server.start({tag!r})
print(server.pid)
"""


@contextmanager
def kernel_serving(tag: str) -> Iterator[tuple[Any, int]]:
    """A real Jupyter kernel (its own kernelspec) that has started a server of ``tag`` as a
    notebook would: (the kernel manager, the server's pid). The kernel is shut down at the end
    unless the test already did (or killed it)."""
    from jupyter_client.manager import start_new_kernel

    from workbench.pipeline.run import own_kernel

    streams: list[str] = []
    with own_kernel() as kernel_name:
        km, kc = start_new_kernel(kernel_name=kernel_name)
    try:
        reply = kc.execute_interactive(
            KERNEL_CODE.format(tag=tag),
            timeout=120,
            output_hook=lambda msg: streams.append(msg["content"].get("text", "")),
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        yield km, int("".join(streams).strip())
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)


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


def session_processes() -> list[psutil.Process]:
    """Every process started with this session's store (servers, their workers and watchdogs,
    kernels): the test processes of pytest-xdist run side by side, each with its own."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("BENTOML_HOME", "").startswith(str(_SESSION_TMP)):
                found.append(proc)
        except psutil.Error:
            continue
    return found


#: The files that take minutes (several full runs, fresh environments, browsers, fuzzing),
#: longest first as measured in a run of the whole suite. With ``--dist loadfile`` a file runs
#: whole on one worker, in collection order: started first, they run beside the many short
#: files instead of alone at the end.
LONG_FILES = (
    "test_fuzz.py",
    "test_readme.py",
    "test_abuse.py",
    "test_provenance.py",
    "test_cli.py",
    "test_portable.py",
    "test_faults.py",
    "test_lab.py",
    "test_retrain.py",
    "test_monitor.py",
    "test_distribution.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long files first (:data:`LONG_FILES`), every file's tests in their own order."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))


@pytest.fixture(scope="session", autouse=True)
def no_server_outlives_the_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The servers' private bytecode cache sits beside the state folder (bytecode_cache() in
    # workbench/serving/server.py) and the first server to use it compiles it: the test
    # processes of pytest-xdist share one, in the run's temporary folder (CPython writes each
    # .pyc whole, by a rename).
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "server-pycache"
    shared.mkdir(mode=0o700, exist_ok=True)
    (_SESSION_TMP / "pycache").symlink_to(shared, target_is_directory=True)
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


def static_copy(notebook: Path) -> str:
    """The text of the last panel's static copy in an executed notebook: what a viewer without a
    widget manager shows (plain nbconvert, a notebook preview; workbench/widgets/display.py)."""
    import json
    import re

    outputs = [
        out for cell in json.loads(notebook.read_text())["cells"] for out in cell.get("outputs", [])
    ]
    copies = [
        "".join(out["data"]["text/html"])
        for out in outputs
        if "wb-static" in "".join(out.get("data", {}).get("text/html", ""))
    ]
    assert copies, f"{notebook.name}: no static copy of a panel among its outputs"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", copies[-1]))


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


@pytest.fixture(scope="session")
def two_versions(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> Path:
    """One project packaged twice: v1 the example model, v2 a more regularised refit (worse
    ROC-AUC) of the same name. Returns the project; its ``versions.json`` names the two tags.
    Tests must not change its files (copy them with :func:`copy_release_project`)."""
    import json

    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from workbench import load_config, package, validate

    folder = copy_project(example_files, tmp_path_factory.mktemp("versions"))
    # What versions need is the packaged Bentos: no cross-validation or importance, to be quick.
    edit_config(folder, validation={"cv_folds": 0, "importance_top": 0})
    config = load_config(folder / "workbench.yaml")
    validate(config)
    first = package(config).bento_tag
    train = pd.read_csv(folder / "data" / "train.csv")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=1000))
    model.fit(train.drop(columns="target"), train["target"])
    joblib.dump(model, folder / "models" / "model.joblib")
    validate(config)
    second = package(config).bento_tag
    (folder / "versions.json").write_text(json.dumps({"v1": first, "v2": second}))
    return folder


def copy_release_project(source: Path, dest: Path) -> Path:
    """The config, data and records of a packaged project in a fresh folder (same model name, so
    the same versions in the store), with no promotion history yet."""
    for sub in ("models", "data", ".workbench"):
        shutil.copytree(source / sub, dest / sub)
    shutil.copy(source / "workbench.yaml", dest / "workbench.yaml")
    shutil.copy(source / "versions.json", dest / "versions.json")
    return dest
