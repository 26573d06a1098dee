"""pre-commit passes on a fresh copy of the repository and on a fresh `workbench init` project,
offline: local hooks run the nbstripout and ruff that requirements.lock pins from the environment
(nothing is fetched from a code host), and the committed notebooks are in nbstripout's form."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO

from workbench.pipeline import init_project

BIN = Path(sys.executable).parent


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def pre_commit(folder: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`pre-commit run --all-files` in ``folder``, with a hook store of its own and every
    proxy pointing at a closed port: a hook that needed the network would fail."""
    dead = "http://127.0.0.1:9"
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "PRE_COMMIT_HOME": str(home / "pre-commit"),
        "http_proxy": dead,
        "https_proxy": dead,
        "HTTPS_PROXY": dead,
        "HTTP_PROXY": dead,
        "GIT_TERMINAL_PROMPT": "0",
    }
    return subprocess.run(
        [str(BIN / "pre-commit"), "run", "--all-files", "--color", "never"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def new_repository(folder: Path) -> None:
    git(folder, "init", "--quiet")
    git(folder, "add", "--all")


def test_the_hooks_are_local_and_run_the_versions_of_the_lock():
    """Every hook of the repository's and the scaffold's configuration is a local hook run from
    the environment (language system), so its version is the lock's; the repository's from
    .venv/ (`make install`), the scaffold's from PATH (its requirements.txt)."""
    ours = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    scaffold = yaml.safe_load(
        (REPO / "workbench" / "templates" / "project" / "pre-commit-config.yaml").read_text()
    )
    for config, entries in [
        (ours, {".venv/bin/nbstripout", ".venv/bin/ruff"}),
        (scaffold, {"nbstripout"}),
    ]:
        assert [repo["repo"] for repo in config["repos"]] == ["local"]
        hooks = config["repos"][0]["hooks"]
        assert all(hook["language"] == "system" for hook in hooks)
        assert {hook["entry"].split()[0] for hook in hooks} == entries


def test_pre_commit_passes_offline_on_a_fresh_copy_of_the_repository(tmp_path: Path):
    """The tracked files of this checkout in a new git repository, `.venv` linked as `make
    install` would make it: every hook passes and changes nothing."""
    copy = tmp_path / "repo"
    for name in git(REPO, "ls-files", "-z").split("\0"):
        source = REPO / name
        if not name or not (source.exists() or source.is_symlink()):
            continue  # deleted in the working tree
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    new_repository(copy)
    (copy / ".venv").symlink_to(BIN.parent)
    done = pre_commit(copy, tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nbstripout" in done.stdout and "ruff" in done.stdout
    assert git(copy, "diff", "--name-only") == ""


def test_pre_commit_passes_on_a_scaffold_and_strips_a_notebook_committed_with_outputs(
    tmp_path: Path,
):
    """A fresh `workbench init` project passes; a notebook given an output and an execution
    count fails the hook, which strips it back to the file the scaffold wrote."""
    project = tmp_path / "proj"
    init_project(project)
    new_repository(project)
    home = tmp_path / "home"
    done = pre_commit(project, home)
    assert done.returncode == 0, done.stdout + done.stderr
    notebook = project / "notebooks" / "01_validate.ipynb"
    clean = notebook.read_text()
    book = json.loads(clean)
    code = next(cell for cell in book["cells"] if cell["cell_type"] == "code")
    code["execution_count"] = 3
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["roc_auc 0.99\n"]}]
    notebook.write_text(json.dumps(book, indent=1) + "\n")
    git(project, "add", "--all")
    failed = pre_commit(project, home)
    assert failed.returncode == 1 and "files were modified by this hook" in failed.stdout
    assert notebook.read_text() == clean
