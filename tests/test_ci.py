"""The CI workflows `workbench init` writes run on a stock hosted runner as written: valid
GitHub-workflow files, least privilege, dependency caches, the reports kept as artifacts; they
install workbench from a pinned source, never by its name from a public index, and stop at their
first step, with one line, while requirements.txt does not say which source."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from packaging.requirements import Requirement

from workbench.pipeline import init_project
from workbench.pipeline.project import HOOK_TOOLS, UNSET_SOURCE, workbench_source
from workbench.pipeline.provenance import DISTRIBUTION

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ci") / "churn"
    init_project(folder)
    return folder


def workflows(scaffold: Path) -> dict[str, dict]:
    return {
        path.name: yaml.safe_load(path.read_text())
        for path in sorted((scaffold / ".github" / "workflows").glob("*.yml"))
    }


def test_every_scaffold_workflow_is_valid_against_the_github_workflow_schema(scaffold: Path):
    """check-jsonschema's vendored GitHub-workflow schema (offline) accepts every workflow."""
    files = sorted((scaffold / ".github" / "workflows").glob("*.yml"))
    assert [f.name for f in files] == ["retrain.yml", "workbench.yml"]
    checker = Path(sys.executable).parent / "check-jsonschema"
    checked = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_workflows_grant_least_privilege_cache_dependencies_and_keep_the_reports(
    scaffold: Path,
):
    """Nothing granted at the top; workbench.yml's jobs only read the repository; every action
    pinned by a commit id; setup-python caches pip keyed by requirements.txt and the jobs that
    launch keep uv's cache (the launch's clean environment installs from it offline); each job
    uploads what it wrote; no template placeholder is left."""
    for name, doc in workflows(scaffold).items():
        assert doc["permissions"] == {}, name
        text = (scaffold / ".github" / "workflows" / name).read_text()
        assert "$python_version" not in text and "$uv_version" not in text, name
        for job_name, job in doc["jobs"].items():
            steps = job["steps"]
            if name == "workbench.yml":
                assert job["permissions"] == {"contents": "read"}, job_name
            for step in steps:
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"])
            (setup,) = [s for s in steps if s.get("uses", "").startswith("actions/setup-python")]
            assert setup["with"]["cache"] == "pip", job_name
            assert setup["with"]["cache-dependency-path"] == "requirements.txt"
            uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-art")]
            assert uploads and all(u["if"] == "always()" for u in uploads), job_name
            install = next(s["run"] for s in steps if s.get("name") == "Install")
            assert "-r requirements.txt" in install and DISTRIBUTION not in install
            if "uv pip install" in install:
                caches = [s["with"]["path"] for s in steps if "actions/cache" in s.get("uses", "")]
                assert "~/.cache/uv" in caches, job_name
    run_steps = workflows(scaffold)["workbench.yml"]["jobs"]["run"]["steps"]
    assert any("uv pip install" in s.get("run", "") for s in run_steps)
    assert any("pre-commit run --all-files" in s.get("run", "") for s in run_steps)
    assert any(s.get("with", {}).get("path") == "runs/ci" for s in run_steps)


def where_from(scaffold: Path, job: dict) -> subprocess.CompletedProcess[str]:
    """The step after the checkout, run by bash in the project as the runner runs it."""
    checkout, first = job["steps"][:2]
    assert checkout["uses"].startswith("actions/checkout@")
    return subprocess.run(
        ["bash", "-e", "-c", first["run"]],
        cwd=scaffold,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_ci_stops_at_its_first_step_until_requirements_say_where_workbench_comes_from(
    tmp_path: Path,
):
    """A scaffold from a workbench not installed from git holds the unset git URL: every job's
    first step after the checkout exits 1 with one line naming requirements.txt and what to set;
    with a commit or a wheel path set it passes, whatever the comments still say."""
    project = tmp_path / "proj"
    init_project(project)
    requirements = project / "requirements.txt"
    unset = f"{DISTRIBUTION} @ {UNSET_SOURCE}"
    assert unset in requirements.read_text().splitlines()
    jobs = [job for doc in workflows(project).values() for job in doc["jobs"].values()]
    assert len(jobs) == 3
    for job in jobs:
        stopped = where_from(project, job)
        assert stopped.returncode == 1
        (line,) = stopped.stdout.splitlines()
        assert "requirements.txt" in line and "<owner>/<repo>@<commit>" in line
    for source in (
        f"{DISTRIBUTION} @ git+https://github.com/acme/workbench@{COMMIT}",
        "./wheels/deployment_workbench-0.1.0-py3-none-any.whl",
    ):
        requirements.write_text(requirements.read_text().replace(unset, source))
        assert all(where_from(project, job).returncode == 0 for job in jobs)
        unset = source


def test_requirements_name_workbench_only_by_a_url_and_pin_the_hooks_as_the_lock_does(
    scaffold: Path,
):
    """Every requirement line parses; the only one naming deployment-workbench is a direct
    reference (pip never asks an index for it); the hook tools and the uv the workflows install
    are the versions requirements.lock pins."""
    lines = [
        line
        for line in (scaffold / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    requirements = {Requirement(line).name: Requirement(line) for line in lines}
    assert requirements[DISTRIBUTION].url == UNSET_SOURCE
    lock = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines())
    for name in ("nbstripout", "pre-commit"):
        assert str(requirements[name].specifier) == f"=={lock[name]}"
        assert HOOK_TOOLS[f"{name.replace('-', '_')}_version"] == lock[name]
    for name in ("workbench.yml", "retrain.yml"):
        text = (scaffold / ".github" / "workflows" / name).read_text()
        assert f"pip install uv=={lock['uv']}" in text, name


def test_a_workbench_installed_from_git_is_scaffolded_with_that_commit(tmp_path: Path):
    """pip installs this repository's HEAD from a git URL (without its dependencies); from that
    install, the scaffold's source is `git+<url>@<the commit>`, what pip recorded (PEP 610)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    url = f"git+file://{REPO}@{commit}"
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         url],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (installed,) = target.glob("deployment_workbench-*.dist-info")
    assert workbench_source(PathDistribution(installed)) == url
    assert workbench_source() is None  # this checkout: an editable install, not from git
