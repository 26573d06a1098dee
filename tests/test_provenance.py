"""Reproducible headless runs, `workbench verify`, and `workbench init`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import edit_config
from test_cli import run_cli

pytestmark = pytest.mark.e2e


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def differing_files(home_a: Path, home_b: Path, tag_a: str, tag_b: str) -> dict[str, list[str]]:
    """The files of two stored Bentos that differ, with the first differing lines of each (the
    failure message of a broken reproducibility promise says what moved)."""
    name, version_a = tag_a.split(":")
    src_a = home_a / "bentos" / name / version_a / "src"
    src_b = home_b / "bentos" / name / tag_b.split(":")[1] / "src"
    found = {}
    for path in sorted(p for p in src_a.rglob("*") if p.is_file()):
        other = src_b / path.relative_to(src_a)
        a = path.read_text(errors="replace").splitlines()
        b = other.read_text(errors="replace").splitlines() if other.is_file() else []
        if a != b:
            found[str(path.relative_to(src_a))] = [
                f"{x!r} != {y!r}" for x, y in zip(a, b, strict=False) if x != y
            ][:3]
    return found


def test_same_inputs_same_tags_and_files_and_verify_names_what_changed(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Two processes that hash strings differently (fixed seeds: the test does not depend on luck)
    # must still build the same Bento.
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    first = run_cli("run", "--out", str(tmp_path / "a"), cwd=project, home=tmp_path / "store_a")
    assert first.returncode == 0, first.stderr
    monkeypatch.setenv("PYTHONHASHSEED", "3")
    again = run_cli(
        "run",
        "--out",
        str(tmp_path / "b"),
        "--stages",
        "validate,package",
        cwd=project,
        home=tmp_path / "store_b",
    )
    assert again.returncode == 0, again.stderr
    a, b = manifest(tmp_path / "a"), manifest(tmp_path / "b")
    assert a["metrics"] == b["metrics"]
    assert a["model_tag"] == b["model_tag"]
    assert a["bento_tag"] == b["bento_tag"], differing_files(
        tmp_path / "store_a", tmp_path / "store_b", a["bento_tag"], b["bento_tag"]
    )
    assert a["bento_files"] == b["bento_files"] and a["model_files"] == b["model_files"]
    assert "src/service.py" in a["bento_files"] and "env/docker/Dockerfile" in a["bento_files"]
    assert b["sha256"].items() <= a["sha256"].items()  # b ran two of the three notebooks
    assert {"python", "bentoml", "scikit-learn", "workbench"} <= set(a["versions"])
    assert set(a["git"]) == {"commit", "dirty"}
    assert a["parameters"]["interactive"] is False

    verified = run_cli("verify", str(tmp_path / "a"), cwd=tmp_path, home=tmp_path / "store_a")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "hashes match" in verified.stdout

    # One gate changed: same model, new Bento (the model card carries the gates).
    edit_config(project, gates={"roc_auc": {"min": 0.951}})
    gate = run_cli(
        "run",
        "--out",
        str(tmp_path / "c"),
        "--stages",
        "validate,package",
        cwd=project,
        home=tmp_path / "store_b",
    )
    c = manifest(tmp_path / "c")
    assert gate.returncode == 0 and c["model_tag"] == a["model_tag"]
    assert c["bento_tag"] != a["bento_tag"]

    # One byte of test data changed: new data hash, new model and Bento versions.
    test_csv = project / "data" / "test.csv"
    lines = test_csv.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("1", "2", 1)
    test_csv.write_text("".join(lines))
    data = run_cli(
        "run",
        "--out",
        str(tmp_path / "d"),
        "--stages",
        "validate,package",
        cwd=project,
        home=tmp_path / "store_b",
    )
    d = manifest(tmp_path / "d")
    assert data.returncode == 0, data.stderr
    assert (
        d["sha256"]["test"] != c["sha256"]["test"] and d["sha256"]["train"] == c["sha256"]["train"]
    )
    assert d["model_tag"] != c["model_tag"] and d["bento_tag"] != c["bento_tag"]

    changed = run_cli("verify", str(tmp_path / "a"), cwd=tmp_path, home=tmp_path / "store_a")
    assert changed.returncode == 1
    assert "input config" in changed.stdout and "input test" in changed.stdout
    assert "input train" not in changed.stdout


def test_verify_refuses_a_folder_that_is_not_a_run(tmp_path: Path):
    done = run_cli("verify", str(tmp_path), cwd=tmp_path, home=tmp_path / "store")
    assert done.returncode == 2
    assert "is not a run folder" in done.stderr and "Traceback" not in done.stderr


def test_verify_reports_a_bento_missing_from_the_store(project: Path, tmp_path: Path):
    done = run_cli(
        "run",
        "--out",
        str(tmp_path / "run"),
        "--stages",
        "validate,package",
        cwd=project,
        home=tmp_path / "store",
    )
    assert done.returncode == 0, done.stderr
    elsewhere = run_cli("verify", str(tmp_path / "run"), cwd=tmp_path, home=tmp_path / "empty")
    assert elsewhere.returncode == 1
    assert "not in the BentoML store" in elsewhere.stdout


def test_init_scaffolds_a_project_that_runs_once_model_and_data_are_in(
    tmp_path: Path, example_files: Path
):
    target = tmp_path / "My Model"
    done = run_cli("init", str(target), cwd=tmp_path, home=tmp_path / "store")
    assert done.returncode == 0, done.stderr
    for path in (
        "workbench.yaml",
        ".gitignore",
        ".github/workflows/workbench.yml",
        ".pre-commit-config.yaml",
        "requirements.txt",
        "notebooks/01_validate.ipynb",
        "notebooks/03_launch.ipynb",
        "bentos/.gitkeep",
    ):
        assert (target / path).is_file(), path
    config = yaml.safe_load((target / "workbench.yaml").read_text())
    assert config["name"] == "my_model"
    workflow = yaml.safe_load((target / ".github/workflows/workbench.yml").read_text())
    steps = workflow["jobs"]["run"]["steps"]
    assert any("workbench run" in step.get("run", "") for step in steps)
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in steps)
    assert "runs/" in (target / ".gitignore").read_text()

    again = run_cli("init", str(target), cwd=tmp_path, home=tmp_path / "store")
    assert again.returncode == 2 and "--force" in again.stderr

    for sub in ("models", "data"):
        shutil.copytree(example_files / sub, target / sub, dirs_exist_ok=True)
    ran = run_cli("run", "--out", str(tmp_path / "run"), cwd=target, home=tmp_path / "store")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert manifest(tmp_path / "run")["bento_tag"].startswith("my_model:")
