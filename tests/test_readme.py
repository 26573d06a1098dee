"""The manual's commands, run as written, so they cannot drift from what the product does.

Every fenced ```bash block of README.md and docs/*.md is read; each command (a logical line,
continuations joined) is either run or skipped for a reason given in :data:`SKIPS` below. A
command neither runnable nor skipped (a new one with a placeholder nobody fills) fails the
test, and so does a skip rule that no longer matches any command.

The commands run in a copy of the repository's example project (its config, notebooks, Makefile
and the example's model and data, ``.venv`` linked to this interpreter's environment), with a
store and server registry of their own, in the order the manual gives them: what one command
makes (a run folder, a Bento) is what the next one names. Placeholders (``<version>``,
``<time>``...) are filled with what the earlier commands made, ``[optional parts]`` are left
out, and the two example versions the manual names (``breast_cancer:4b6e8a4a`` and
``breast_cancer:2ff717cc``) are two real versions: the one the manual's `workbench run` packages
and one packaged before it and promoted, so `promote` and `rollback` work as written. The
project `workbench init my-project` scaffolds there then gets the example's model and data, and
papermill runs its notebooks straight from its root and from its notebooks/ folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nbformat
import pandas as pd
import pytest
import yaml
from conftest import REPO, static_copy

pytestmark = [pytest.mark.e2e, pytest.mark.serve]

MANUAL = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: Commands not run here, each with the reason. A rule that matches no command fails the test.
SKIPS: list[tuple[str, str]] = [
    # the two top-level targets: the suite itself, and the demo's two commands, which run here
    # on their own (`workbench run`, `workbench monitor`)
    (r"^make test\b", "the test suite itself"),
    (r"^make demo\b", "its `workbench run` and `workbench monitor` run here as commands"),
    # installing: a package index or a git host; tests/test_distribution.py builds the wheel and
    # installs it into a fresh environment
    (r"^make dist\b", "tests/test_distribution.py builds the wheel and the sdist"),
    (r"^pip install\b", "needs a package index or git host; tests/test_distribution.py"),
    (r"^apt-get\b", "installs system packages (root, network)"),
    # other machines: no Docker engine, no cluster, no remote scheduler here
    (r"^(bentoml containerize|docker)\b", "needs a Docker engine (none on these machines)"),
    (r"^kubectl\b", "needs a cluster; the manifests are validated offline (test_packaging)"),
    (r"^dask (scheduler|worker)\b", "a cluster on other machines' addresses"),
    (r"--scheduler tcp://", "a remote Dask scheduler; tests/test_scoring.py runs a local one"),
    # the engineer's view: a foreground server on 0.0.0.0:3000 and requests to it; the same
    # Bento is served on loopback by tests/test_service.py, the curl snippet run by
    # tests/test_launch_panel.py
    (r"^export WORKBENCH_API_KEY=", "sets the key for the foreground server below"),
    (r"^bentoml serve\b", "a foreground server on 0.0.0.0:3000 (tests/test_service.py)"),
    (r"^curl\b", "requests to that server (tests/test_launch_panel.py runs the snippet)"),
    # long or measured elsewhere
    (r"^workbench shadow\b", "two servers and a replay (~35 s): tests/test_shadow.py"),
    # a retrain promotes a version of its own, which the versions commands after it would meet
    (r"^workbench retrain\b", "fits, packages, shadows, promotes (~35 s): tests/test_retrain.py"),
    (r"benchmarks/", "benchmarks need a quiet machine and minutes (docs/benchmarks.md)"),
    # the rollout page ends with the challenger's promotion, which here (the manual's two example
    # versions mapped as versions.md uses them) would name the version promoted already;
    # versions.md's promote and rollback run
    (r"^workbench promote \S+ --reason \.\.\.", "versions.md's promote and rollback run"),
    (r"^st run\b", "schemathesis against a served Bento: tests/test_fuzz.py"),
]

#: Exit codes a command may end with when it reports a finding rather than fails, as the manual
#: documents them (docs/monitoring.md): 1 FAIL (the drifted example is caught); 3 INCONCLUSIVE
#: only for the 143 test rows, too few for the drift tests. The first rule a command matches.
FINDINGS = {
    r"\bworkbench (drift|monitor)\b.*\bdata/test\.csv\b": {3},
    r"\bworkbench drift\b": {0, 1},
    r"\bworkbench monitor\b": {0, 1},
}


@dataclass(frozen=True)
class Command:
    text: str
    where: str

    @property
    def bare(self) -> str:
        """The command without the variables set in front of it (``BENTOML_HOME=... dask``)."""
        return re.sub(r"^(\w+=\S+\s+)+", "", self.text)

    def skipped(self) -> str | None:
        return next((why for rule, why in SKIPS if re.search(rule, self.bare)), None)


def bash_commands(path: Path) -> list[Command]:
    """The commands of the fenced ```bash blocks of a Markdown file, continuations joined."""
    commands: list[Command] = []
    inside, pending, start = False, "", 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip().startswith("```"):
            inside = line.strip() == "```bash" if not inside else False
            continue
        if not inside:
            continue
        if not pending:
            start = number
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        text = re.sub(r"\s+", " ", pending).strip()
        pending = ""
        if text and not text.startswith("#"):
            commands.append(Command(text, f"{path.name}:{start}"))
    return commands


def manual_commands() -> list[Command]:
    return [c for path in MANUAL for c in bash_commands(path)]


# --- the sandbox ---------------------------------------------------------------------------------


@dataclass
class Sandbox:
    root: Path
    env: dict[str, str]
    versions: dict[str, str]
    """The example versions the manual names (hex prefix) -> real tags."""

    def run(self, command: str, *, cwd: Path | None = None, timeout: float = 600) -> str:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=cwd or self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = done.stdout + done.stderr
        allowed = next((codes for rule, codes in FINDINGS.items() if re.search(rule, command)), {0})
        assert done.returncode in allowed, f"`{command}` exited {done.returncode}:\n{output}"
        assert "Traceback" not in output and "error: unexpected" not in output, output
        return output

    def newest_run(self) -> Path:
        manifests = sorted(self.root.glob("runs/*/manifest.json"), key=lambda p: p.stat().st_mtime)
        assert manifests, "no run folder yet: the manual names one before `workbench run`"
        return manifests[-1].parent


def copy_example(dest: Path, example_files: Path) -> Path:
    """The repository as a fresh clone has it after `make example`, with .venv linked."""
    dest.mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "requirements.lock", "workbench.yaml"):
        shutil.copy2(REPO / name, dest / name)  # mtimes kept: make sees nothing to rebuild
    for name in ("notebooks", "examples"):
        shutil.copytree(REPO / name, dest / name, copy_function=shutil.copy2)
    for name in ("models", "data"):
        shutil.copytree(example_files / name, dest / name)
    (dest / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return dest


def user_files(root: Path) -> None:
    """The files the manual's scoring examples presume a user has: new rows as Parquet and CSV,
    and a landing folder of Parquet parts with an id column."""
    rows = pd.read_csv(root / "data" / "test.csv").drop(columns=["target"])
    rows.to_parquet(root / "data" / "new.parquet", index=False)
    rows.to_csv(root / "data" / "new.csv", index=False)
    landing = root / "landing" / "2026-12-01"
    landing.mkdir(parents=True)
    for part, half in enumerate((rows.iloc[:70], rows.iloc[70:])):
        half.assign(id=[f"{part}-{i:03d}" for i in range(len(half))]).to_parquet(
            landing / f"part-{part}.parquet", index=False
        )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> Iterator[Sandbox]:
    home = tmp_path_factory.mktemp("readme")
    root = copy_example(home / "workbench", example_files)
    user_files(root)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BENTOML_HOME": str(home / "bentoml"),
        "WORKBENCH_STATE_DIR": str(home / "state"),
        "BENTOML_DO_NOT_TRACK": "True",
        "BROWSER": "true",  # `make lab` must not open one
        "CI": "true",  # plain progress lines
    }
    env.pop("WORKBENCH_API_KEY", None)
    for name in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):  # as a user's shell has it, not `make test`'s
        env.pop(name, None)
    box = Sandbox(root, env, {})
    # The version packaged before the manual's own `workbench run`, and promoted: another
    # request-row limit gives another Bento of the same model.
    config = (root / "workbench.yaml").read_text()
    earlier = yaml.safe_load(config)
    earlier["service"] = {**earlier.get("service", {}), "max_request_rows": 4000}
    earlier["validation"] = {"cv_folds": 0, "importance_top": 0}
    (root / "workbench.yaml").write_text(yaml.safe_dump(earlier, sort_keys=False))
    box.run(".venv/bin/workbench run --stages validate,package --out runs/earlier")
    (root / "workbench.yaml").write_text(config)
    before = json.loads((root / "runs/earlier/manifest.json").read_text())["bento_tag"]
    box.run(f".venv/bin/workbench promote {before} --reason 'the release before'")
    box.versions["2ff717cc"] = before
    try:
        yield box
    finally:
        subprocess.run(
            [sys.executable, "-m", "workbench.cli", "servers", "--stop"],
            env=env,
            capture_output=True,
            timeout=120,
        )


# --- filling in what the manual leaves to the reader ---------------------------------------------


def filled(command: str, box: Sandbox) -> str:
    """The command with its optional parts left out and its placeholders filled."""
    text = re.sub(r"\s\[[^\]]*\]", "", command)  # [--out DIR], [--force] ...
    for hex_ in re.findall(r"--canary ([0-9a-f]{8,16})\b", text):
        # the challenger: the version the manual's run packaged (the one it names is promoted)
        newest = json.loads((box.newest_run() / "manifest.json").read_text())["bento_tag"]
        text = text.replace(f"--canary {hex_}", f"--canary {newest}")
    literal = re.findall(r"breast_cancer:([0-9a-f]{8,16})", text)
    for hex_ in literal:
        known = next((tag for prefix, tag in box.versions.items() if hex_.startswith(prefix)), None)
        if known is None:  # the first unknown one: the version the manual's run packaged
            known = json.loads((box.newest_run() / "manifest.json").read_text())["bento_tag"]
            box.versions[hex_[:8]] = known
        text = text.replace(f"breast_cancer:{hex_}", known)
    if "<" in text:
        run = box.newest_run()
        tag = json.loads((run / "manifest.json").read_text())["bento_tag"]
        for placeholder, value in {
            "<time>": run.name,
            "<version>": tag.split(":")[1],
            "<bento>": tag,
            "<file>": "data/drifted.csv",
            "<input>": "data/test.csv",
            "<output>": "scored/readme.parquet",
        }.items():
            text = text.replace(placeholder, value)
    text = re.sub(r"\bworkbench versions NAME\b", "workbench versions breast_cancer", text)
    return text


def unfilled(text: str) -> list[str]:
    return re.findall(r"<[^<>\s]+(?: [^<>]+)?>", text)


# --- the tests -----------------------------------------------------------------------------------


def test_every_command_of_the_manual_is_run_or_skipped_for_a_stated_reason():
    """No command is silently left out: the skipped ones match a rule with its reason, the
    others leave no placeholder nobody fills; and no skip rule is stale."""
    commands = manual_commands()
    assert any(c.text.startswith(".venv/bin/workbench run") for c in commands), "parser broken?"
    known = {"<time>", "<version>", "<bento>", "<file>", "<input>", "<output>"}
    for command in commands:
        if command.skipped() is None:
            stripped = re.sub(r"\s\[[^\]]*\]", "", command.text)
            left = [p for p in unfilled(stripped) if p not in known]
            assert not left, f"{command.where}: `{command.text}`: fill {left} or skip it"
    for rule, why in SKIPS:
        assert any(re.search(rule, c.bare) for c in commands), f"stale skip {rule!r} ({why})"


def run_long(
    box: Sandbox,
    command: str,
    ready: re.Pattern[str],
    *,
    seconds: float,
    check: Callable[[re.Match[str]], None] = lambda _: None,
) -> None:
    """A command that runs until stopped (`workbench serve`, `make lab`): wait until its output
    says it is ready, ``check`` it, then stop it as a person would (Ctrl-C: SIGINT to its
    group) and see it end cleanly."""
    log = box.root / f".{abs(hash(command))}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=box.root,
            env=box.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + seconds
        while (found := ready.search(log.read_text(errors="replace"))) is None:
            assert process.poll() is None, f"`{command}` exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"`{command}` not ready:\n{log.read_text()}"
            time.sleep(0.2)
        check(found)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def make_lab(box: Sandbox, command: str) -> None:
    """`make lab` in the example (as root it adds --allow-root), reachable, then stopped."""
    planned = subprocess.run(
        ["make", "-n", "lab"], cwd=box.root, env=box.env, capture_output=True, text=True
    ).stdout
    lines = [line for line in planned.splitlines() if line.strip()]
    if len(lines) != 1 or "jupyter lab notebooks/" not in lines[0]:
        pytest.skip(f"this environment is not the one `make install` made:\n{planned}")
    assert ("--allow-root" in lines[0]) == (os.geteuid() == 0), lines[0]

    def answers(url: re.Match[str]) -> None:
        status = httpx.get(f"{url[1]}/api/status", params={"token": url[2]}, timeout=10)
        assert status.status_code == 200, status.text

    address = re.compile(r"(http://127\.0\.0\.1:\d+)/lab\?token=(\w+)")
    run_long(box, command, address, seconds=90, check=answers)


def test_the_manuals_commands_work_as_written(sandbox: Sandbox):
    ran = []
    for command in manual_commands():
        if command.skipped() is not None:
            continue
        text = filled(command.text, sandbox)
        if text.startswith("make lab"):
            make_lab(sandbox, text)
        elif re.match(r"(\.venv/bin/)?workbench serve\b", text):
            serving = re.compile(r"serving (\S+ )?at http://127\.0\.0\.1:\d+")  # a tag, or a router
            run_long(sandbox, text, serving, seconds=120)
        elif re.match(r"(\.venv/bin/)?bentoml export\b", text):
            # an absolute path: the archive is where the command says, not under /
            sandbox.run(text)
            target = text.split()[-1].strip('"').replace("$PWD", str(sandbox.root))
            assert Path(target).is_absolute() and Path(target).is_file(), text
        elif re.match(r"(\.venv/bin/)?bentoml import\b", text):  # "another machine": its store
            store = sandbox.root.parent / f"other-store-{len(ran)}"  # each import its own
            other = {**sandbox.env, "BENTOML_HOME": str(store)}
            # The engineer of the Bento guide has the archive they received in their folder.
            received = sandbox.root.parent / "received"
            received.mkdir(exist_ok=True)
            for archive in sandbox.newest_run().glob("*.bento"):
                shutil.copy(archive, received / archive.name)
            where = sandbox.root if "runs/" in text else received
            done = subprocess.run(
                ["bash", "-c", text], cwd=where, env=other, capture_output=True, text=True
            )
            said = done.stdout + done.stderr
            assert done.returncode == 0 and "imported" in said.lower(), said
        else:
            if re.search(r"\bworkbench score\b", text):
                shutil.rmtree(sandbox.root / "scored", ignore_errors=True)  # each is an example
            sandbox.run(text)
        ran.append(text)
    assert len(ran) >= 15, ran


def test_papermill_runs_the_notebooks_of_a_scaffold_from_its_root_and_from_notebooks(
    sandbox: Sandbox, example_files: Path, tmp_path: Path
):
    """In the project `workbench init` made (the example's model and data dropped in), each
    stage notebook runs straight under papermill, from the project root and from notebooks/,
    finding workbench.yaml by itself (07_retrain, which needs new rows and a promoted version to
    run headless, opens its panel); `score --out` writes into a folder that did not exist."""
    project = sandbox.root / "my-project"
    if not (project / "workbench.yaml").is_file():  # when the manual's init did not run first
        sandbox.run(".venv/bin/workbench init my-project")
    for sub in ("models", "data"):
        for file in (example_files / sub).iterdir():
            shutil.copy(file, project / sub / file.name)
    notebooks = project / "notebooks"
    for notebook, cwd in [
        ("notebooks/01_validate.ipynb", project),
        ("02_package.ipynb", notebooks),
        ("notebooks/06_score.ipynb", project),
        ("05_versions.ipynb", notebooks),
    ]:
        target = tmp_path / Path(notebook).name
        sandbox.run(f"papermill {notebook} {target} -p interactive False", cwd=cwd)
    sandbox.run(f"papermill 07_retrain.ipynb {tmp_path / '07.ipynb'}", cwd=notebooks)
    assert (project / "scored" / "test.parquet").is_file()  # 06's default output
    assert "my-project:" in static_copy(tmp_path / "05_versions.ipynb")  # its versions table
    sandbox.run("workbench score my-project data/test.csv --out fresh/new.parquet", cwd=project)
    assert len(pd.read_parquet(project / "fresh" / "new.parquet")) == 143


def test_the_notebooks_are_committed_without_outputs_in_normal_form():
    """What nbstripout (the pre-commit hook) leaves: no outputs, no execution counts, no widget
    state, nbformat's own layout; the copies workbench ships are the same files."""
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        book = nbformat.reads(text, as_version=4)
        assert nbformat.writes(book).rstrip("\n") + "\n" == text, f"{path.name}: layout"
        assert "widgets" not in book.metadata, path.name
        for cell in book.cells:
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None
            assert "execution" not in cell.metadata, path.name
        assert (REPO / "workbench" / "notebooks" / path.name).read_text() == text
