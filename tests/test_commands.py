"""Commands as the README writes them, in a project as a person has it: `score --out` into a
folder that does not exist yet, and `workbench monitor` writing its report under `runs/` (which
the scaffold's .gitignore ignores), not into the project root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from workbench.cli import main
from workbench.config import load_config


@pytest.fixture
def project(packaged: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(packaged, dest, ignore=shutil.ignore_patterns("runs", "*.log"))
    return dest


def test_score_creates_the_output_folder_and_removes_it_when_the_job_fails(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.chdir(project)
    name = load_config(project / "workbench.yaml").name
    assert main(["score", name, "data/test.csv", "--out", "scored/new.parquet"]) == 0
    assert len(pd.read_parquet(project / "scored" / "new.parquet")) == 143
    broken = project / "data" / "broken.csv"
    pd.read_csv(project / "data" / "test.csv").iloc[:, 1:].to_csv(broken, index=False)
    assert main(["score", name, str(broken), "--out", "fresh/deeper/out.parquet"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (project / "fresh").exists()  # nothing half-made is left behind


@pytest.mark.serve
def test_monitor_writes_its_report_under_runs_by_default(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(project)
    code = main(["monitor", "--file", "data/test.csv", "--rate", "2000", "--max-rows", "60"])
    assert code == 3  # 60 rows are too few to judge: INCONCLUSIVE, and the report is still kept
    [folder] = (project / "runs").glob("monitor-*")
    assert (folder / "monitor.html").is_file() and (folder / "monitor.json").is_file()
    assert not list(project.glob("monitor-*"))
