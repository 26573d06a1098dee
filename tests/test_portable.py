"""A Bento that runs where it ships: each model is validated, packaged and launched, and launch
serves it from a clean environment holding only the Bento's own requirements (built offline from
uv's cache, as its image would be built), so a package or module the Bento lacks fails here.

LightGBM and XGBoost Pipelines served by scikit-learn (their library in the requirements),
LightGBM compiled to ONNX (onnxruntime only), a transformer of the project's own module beside
the config (through ``workbench run``: the notebooks' kernels import it) and one in a package
``code:`` names; the bundled example's requirements unchanged; the proof switched off is
recorded as not proven and shown in the panel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from model_projects import boosted_project, features_project, shop_project

from workbench import LaunchResult, PackageResult, ServingError, launch, load_config, package
from workbench import validate as validate_stage
from workbench.serving import Server
from workbench.serving.portable import REQUIREMENTS, prepare_environment

pytestmark = pytest.mark.serve

#: The bundled example's Bento installs exactly these (an ONNX-served scikit-learn model).
EXAMPLE_REQUIREMENTS = [
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "threadpoolctl",
    "pydantic",
    "uvloop",
    "httptools",
    "onnxruntime",
    "protobuf",
    "flatbuffers",
    "packaging",
    "bentoml",
]
SCIKIT_LEARN_BASE = EXAMPLE_REQUIREMENTS[:9]


def run_stages(config_path: Path) -> tuple[PackageResult, LaunchResult]:
    config = load_config(config_path)
    validate_stage(config).raise_for_gates()
    packaged = package(config)
    launched = launch(config)
    assert launched.passed, launched.failed
    return packaged, launched


def requirements(packaged: PackageResult) -> list[str]:
    return (Path(packaged.bento_path) / REQUIREMENTS).read_text().split()


def names(lines: list[str]) -> list[str]:
    return [line.split("==")[0] for line in lines]


def card(packaged: PackageResult) -> dict[str, Any]:
    return json.loads((Path(packaged.bento_path) / "src" / "model_card.json").read_text())


def environment_of(launched: LaunchResult) -> Path:
    """The clean environment's folder, as the launch record names it."""
    return Path(launched.portable_reason.split("(")[1].split(")")[0])


@pytest.fixture(scope="module")
def lightgbm_served(tmp_path_factory: pytest.TempPathFactory) -> tuple[PackageResult, Any]:
    folder = tmp_path_factory.mktemp("lightgbm")
    return run_stages(boosted_project(folder, "lightgbm", runtime="sklearn"))


def test_a_lightgbm_pipeline_installs_lightgbm_and_serves_from_a_clean_environment(
    lightgbm_served: tuple[PackageResult, LaunchResult],
):
    """The issue's case: OneHotEncoder + LGBMClassifier with string labels, served by
    scikit-learn. lightgbm is found in the pickle and pinned; nothing LightGBM only tries to
    import (Dask) comes along; the launch served from the clean environment and says so."""
    packaged, launched = lightgbm_served
    pin = f"lightgbm=={version('lightgbm')}"
    assert requirements(packaged) == [
        *(f"{n}=={version(n)}" for n in SCIKIT_LEARN_BASE),
        pin,
        f"bentoml=={version('bentoml')}",
    ]
    assert card(packaged)["model_needs"]["packages"] == [
        {
            "package": pin,
            "from": [
                "lightgbm.basic.Booster in the model",
                "lightgbm.sklearn.LGBMClassifier in the model",
            ],
            "installed": True,
        }
    ]
    assert packaged.model_packages == [pin]
    assert launched.portable == "proven", launched.portable_reason
    site = next((environment_of(launched) / "lib").glob("python*/site-packages"))
    assert (site / "lightgbm").is_dir() and not (site / "dask").exists()
    assert not (site / "workbench").exists()


def test_the_image_installs_the_requirements_the_clean_environment_proved(
    lightgbm_served: tuple[PackageResult, LaunchResult],
):
    """The Bento's two-stage Dockerfile (packaging/image.py) installs the very
    env/python/requirements.txt the launch served from (lightgbm, found in the pickle, among
    them) into the environment its runtime stage copies: what was proven is what ships."""
    packaged, _ = lightgbm_served
    assert f"lightgbm=={version('lightgbm')}" in requirements(packaged)
    dockerfile = (Path(packaged.bento_path) / "env" / "docker" / "Dockerfile").read_text()
    assert "COPY ./env/python ./env/python/" in dockerfile
    assert re.search(
        rf"uv pip install --no-cache --compile-bytecode\s*\\\s*-r {REQUIREMENTS}", dockerfile
    )
    assert "COPY --from=build /app/.venv /app/.venv" in dockerfile


def test_without_lightgbm_the_clean_environment_does_not_serve_and_says_why(
    lightgbm_served: tuple[PackageResult, LaunchResult], tmp_path: Path
):
    """The proof can fail: the same Bento served from its requirements less lightgbm (what the
    fixed list used to give) is stopped as soon as its service fails to start, naming the
    missing module."""
    packaged, _ = lightgbm_served
    lacking = tmp_path / "lacking"
    (lacking / REQUIREMENTS).parent.mkdir(parents=True)
    kept = [line for line in requirements(packaged) if not line.startswith("lightgbm")]
    (lacking / REQUIREMENTS).write_text("\n".join(kept) + "\n")
    environment = prepare_environment(lacking, folder=tmp_path / "envs")
    message = r"could not start its service \(ModuleNotFoundError: No module named 'lightgbm'\)"
    with pytest.raises(ServingError, match=message):
        Server.start(packaged.bento_tag, timeout=90, log_dir=tmp_path, environment=environment)


def test_an_onnx_served_lightgbm_bento_installs_only_onnxruntime(tmp_path: Path):
    """Compiled through onnxmltools' converter (parity on every test row), the Bento never
    unpickles the model: lightgbm is listed in the card as not installed, and the clean
    environment without it serves every check."""
    packaged, launched = run_stages(boosted_project(tmp_path, "lightgbm"))
    assert packaged.runtime == "onnx", packaged.runtime_reason
    assert names(requirements(packaged)) == EXAMPLE_REQUIREMENTS
    (found,) = card(packaged)["model_needs"]["packages"]
    assert found["package"].startswith("lightgbm==") and found["installed"] is False
    assert launched.portable == "proven", launched.portable_reason


def test_an_xgboost_pipeline_installs_xgboost_cpu_and_serves_from_a_clean_environment(
    tmp_path: Path,
):
    """The `xgboost` module's distribution here is xgboost-cpu: the Bento installs that, and the
    clean environment imports `xgboost` from it."""
    packaged, launched = run_stages(boosted_project(tmp_path, "xgboost", runtime="sklearn"))
    assert f"xgboost-cpu=={version('xgboost-cpu')}" in requirements(packaged)
    assert launched.portable == "proven", launched.portable_reason


def test_a_package_named_by_code_ships_what_the_model_uses(tmp_path: Path):
    """`code: [src/shop]`: the Bento carries shop/__init__.py, the module the model references
    and the sibling it imports (not an unimported one), hashed in the card, and serves them from
    the clean environment. (The Clipper's fitted pandas Series hold Arrow strings: pyarrow is
    found in the pickle too.)"""
    packaged, launched = run_stages(shop_project(tmp_path))
    shipped = ["shop/__init__.py", "shop/scaling.py", "shop/transformers.py"]
    assert sorted(packaged.code) == shipped
    assert [f"src/{path}" for path in shipped] == [
        c for c in packaged.contents if c.startswith("src/shop/")
    ]
    assert card(packaged)["model_needs"]["code"]["shop/transformers.py"]["modules"] == [
        "shop.transformers"
    ]
    assert f"pyarrow=={version('pyarrow')}" in requirements(packaged)
    assert launched.portable == "proven", launched.portable_reason


@pytest.mark.e2e
def test_workbench_run_imports_and_ships_features_beside_the_config(tmp_path: Path):
    """`workbench run` from another folder: the kernels import features.py (the project folder
    is importable in every stage), the Bento carries it, the manifest says portable: proven and
    hashes the source; `verify` reports the source changed afterwards."""
    project = tmp_path / "project"
    project.mkdir()
    config = features_project(project)
    out, env = tmp_path / "run", {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    env.pop("PYTHONPATH", None)
    cli = [sys.executable, "-m", "workbench.cli"]
    done = subprocess.run(
        [*cli, "run", "--config", str(config), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["portable"] == "proven"
    assert "code features.py" in manifest["sha256"]
    assert "src/features.py" in manifest["bento_files"]
    with open(project / "features.py", "a") as fh:
        fh.write("# changed after the run\n")
    verified = subprocess.run(
        [*cli, "verify", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert "input code features.py: sha256" in verified.stdout


def test_the_bundled_examples_requirements_are_unchanged(packaged: Path):
    """A pure scikit-learn model's list does not grow: the same 14 packages as before."""
    record = PackageResult.model_validate_json((packaged / ".workbench/package.json").read_text())
    assert names(requirements(record)) == EXAMPLE_REQUIREMENTS
    assert card(record)["model_needs"] == {"packages": [], "code": {}}


def test_switched_off_the_launch_says_not_proven_and_the_panel_shows_it(
    packaged: Path, tmp_path: Path
):
    """The panel's clean-environment box off (the interactive shortcut): served from this
    environment, the record says 'not proven' and why, and so do the panel's lines."""
    from workbench.widgets import LaunchPanel

    project = tmp_path / "project"
    shutil.copytree(packaged, project, ignore=shutil.ignore_patterns("runs", "*.log"))
    panel = LaunchPanel(load_config(project / "workbench.yaml"))
    panel.clean_box.value = False
    panel.start()
    try:
        assert "this environment: portable not proven" in panel.light.value
        panel.check()
        assert "portable: not proven" in panel.status.value
        assert "not proven" in panel.results.value
    finally:
        panel.stop()
    record = json.loads((project / ".workbench" / "launch.json").read_text())
    assert record["passed"] is True and record["portable"] == "not proven"
    assert "served from this environment" in record["portable_reason"]
