"""`workbench run` end to end: real papermill kernels, real builds, real `bentoml serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import edit_config

pytestmark = pytest.mark.e2e
WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def run_cli(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENTOML_HOME": str(home)}
    return subprocess.run(
        [*WORKBENCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def store_entries(home: Path) -> list[str]:
    """Stored models and bentos as ``kind/name/version`` (the ``latest`` pointer files left out)."""
    return sorted(
        str(p.relative_to(home))
        for kind in ("models", "bentos")
        for p in (home / kind).glob("*/*")
        if p.is_dir()
    )


def test_run_validates_packages_launches_and_writes_a_run_folder(project: Path, tmp_path: Path):
    home = tmp_path / "store"
    out = tmp_path / "run"
    done = run_cli(
        "run",
        "--config",
        str(project / "workbench.yaml"),
        "--out",
        str(out),
        cwd=tmp_path,
        home=home,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "passed"
    assert manifest["passed"] is True and manifest["metrics"]["roc_auc"] > 0.95
    assert set(manifest["sha256"]) == {
        "config",
        "model",
        "train",
        "test",
        "notebook 01_validate.ipynb",
        "notebook 02_package.ipynb",
        "notebook 03_launch.ipynb",
    }
    assert manifest["bento_tag"].startswith(manifest["config"]["name"] + ":")
    assert manifest["launch"]["passed"] is True
    assert set(manifest["timings_s"]) == {"validate", "package", "launch"}
    assert manifest["versions"]["bentoml"] == "1.4.39"
    for stem in ("01_validate", "02_package", "03_launch"):
        assert (out / f"{stem}.ipynb").is_file()
        assert "<html" in (out / f"{stem}.html").read_text()[:2000].lower()
    assert "all gates pass" in (out / "01_validate.html").read_text()
    assert f"bentoml serve {manifest['bento_tag']}" in done.stdout
    assert str(out / "01_validate.html") in done.stdout
    assert "KeyboardInterrupt" not in done.stderr, done.stderr  # the kernels' log is ours too
    assert store_entries(home) == sorted(
        [
            f"models/{manifest['model_tag'].replace(':', '/')}",
            f"bentos/{manifest['bento_tag'].replace(':', '/')}",
        ]
    )


def test_a_failed_gate_exits_1_and_adds_nothing_to_the_store(project: Path, tmp_path: Path):
    edit_config(project, gates={"roc_auc": {"min": 0.9999}})
    home = tmp_path / "store"
    out = tmp_path / "run"
    done = run_cli("run", "--out", str(out), cwd=project, home=home)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "roc_auc" in done.stdout and "FAIL" in done.stdout
    assert "GateFailure" in done.stderr and "Traceback" not in done.stderr
    assert store_entries(home) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "gate-failed" and manifest["bento_tag"] is None
    assert not (out / "02_package.ipynb").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--config", "missing.yaml"), "missing.yaml' not found"),
        (("run", "--stages", "validate,launch"), "not a contiguous"),
        (("run", "--stages", "deploy"), "unknown stage"),
        (("run", "-p", "seed"), "expected NAME=VALUE"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(tmp_path: Path, args, message):
    done = run_cli(*args, cwd=tmp_path, home=tmp_path / "store")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("versions", "../../../x"),
        ("versions", "x:1"),  # a version where only a name is due
        ("serve", "../../../x"),
        ("serve", "x:../../y"),
        ("promote", "../x:1", "--reason", "r"),
        ("rollback", "a/b"),
        ("compare", "x:1", "X:2"),
        ("shadow", "x:1", "x:..", "--replay", "f.csv"),
    ],
)
def test_names_on_the_command_line_are_validated_as_names(args, capsys):
    """A model name or NAME:VERSION that is none (a path, capitals, a dot-dot version) is one
    message and exit 2 before it is used: it never becomes a path under bentos/ or reaches the
    store (`versions ../../../x` was an 'unexpected ValueError', `serve ../../../x` read
    bentos/../../../x/release/)."""
    from workbench.cli import main

    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    error = err.strip().splitlines()[-1]
    assert "is not a model name or NAME:VERSION" in error or "without a version" in error
    assert "Traceback" not in err and "unexpected" not in err


def test_a_broken_cell_names_notebook_cell_and_exception(project: Path, tmp_path: Path):
    (project / "data" / "test.csv").unlink()
    done = run_cli("run", "--out", str(tmp_path / "run"), cwd=project, home=tmp_path / "store")
    assert done.returncode == 2
    assert "01_validate.ipynb, cell" in done.stderr
    assert "DataError" in done.stderr and "test.csv' not found" in done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "run" / "01_validate.html").is_file()  # the failing notebook is kept


def test_a_malformed_config_names_the_field(project: Path, tmp_path: Path):
    edit_config(project, data={"train": "data/train.csv", "test": "data/test.csv"})
    done = run_cli("run", cwd=project, home=tmp_path / "store")
    assert done.returncode == 2
    assert "field `data.target`" in done.stderr and "Traceback" not in done.stderr


def test_a_non_empty_out_folder_is_refused_unless_forced(project: Path, tmp_path: Path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = run_cli("run", "--out", str(out), cwd=project, home=tmp_path / "store")
    assert done.returncode == 2 and "not empty" in done.stderr and "--force" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    forced = run_cli(
        "run",
        "--out",
        str(out),
        "--force",
        "--stages",
        "validate",
        "-p",
        "colour=blue",
        cwd=project,
        home=tmp_path / "store",
    )
    assert forced.returncode == 0, forced.stderr
    assert "parameter 'colour' is not declared" in forced.stdout
    assert (out / "validation.json").is_file() and not (out / "package.json").exists()


def test_a_notebook_without_a_parameters_cell_is_refused(project: Path, tmp_path: Path):
    path = project / "notebooks" / "01_validate.ipynb"
    book = json.loads(path.read_text())
    for cell in book["cells"]:
        cell["metadata"].pop("tags", None)
    path.write_text(json.dumps(book))
    done = run_cli("run", cwd=project, home=tmp_path / "store")
    assert done.returncode == 2
    assert "01_validate.ipynb has no cell tagged 'parameters'" in done.stderr


def test_unreadable_or_unwritable_paths_are_one_line_and_exit_2(project: Path, tmp_path: Path):
    """A file where a folder must be made (OSError at init or at the run folder) is one line."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for args in (
        ("init", str(blocker / "project")),
        ("run", "--out", str(blocker / "run")),
        ("verify", str(blocker)),
    ):
        done = run_cli(*args, cwd=project, home=tmp_path / "store")
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert done.stderr.startswith("error: ")


def test_only_the_stage_notebooks_run_and_a_report_failure_is_one_line(
    project: Path, tmp_path: Path
):
    """notebooks/ may hold the project's own notebooks: only the stage notebooks run, by name.
    A report that cannot be written is one line, exit 2, with the run folder and manifest kept."""
    explore = project / "notebooks" / "explore.ipynb"
    book = json.loads((project / "notebooks" / "01_validate.ipynb").read_text())
    book["cells"] = [
        {
            **book["cells"][0],
            "cell_type": "code",
            "source": "raise SystemExit(9)",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
    ]
    explore.write_text(json.dumps(book))
    out = tmp_path / "run"
    (out / "01_validate.html").mkdir(parents=True)  # the report's path is taken by a folder
    done = run_cli(
        "run",
        "--out",
        str(out),
        "--force",
        "--stages",
        "validate",
        cwd=project,
        home=tmp_path / "store",
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "01_validate.ipynb: its HTML report could not be written (IsADirectoryError" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert (out / "validation.json").is_file() and not (out / "explore.ipynb").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "error" and "explore" not in json.dumps(manifest["sha256"])


def test_a_notebooks_folder_missing_a_stage_notebook_is_refused(project: Path, tmp_path: Path):
    """Some stage notebooks but not all those asked for: one line naming the missing ones."""
    (project / "notebooks" / "03_launch.ipynb").unlink()
    done = run_cli("run", cwd=project, home=tmp_path / "store")
    assert done.returncode == 2
    assert "holds some stage notebooks but not 03_launch.ipynb" in done.stderr
    assert "Traceback" not in done.stderr


def test_exit_codes_follow_the_error_types():
    """A kernel reports an exception by class name; its exit code is its workbench type's."""
    from workbench import errors

    kinds = [errors.WorkbenchError, *errors.WorkbenchError.__subclasses__()]
    for cls in kinds:
        assert errors.error_type(cls.__name__) is cls
    assert errors.error_type("CompilationError") is errors.CompilationError
    assert errors.error_type("CompilationError").exit_code == 2  # type: ignore[union-attr]
    assert errors.error_type("GateFailure").exit_code == 1  # type: ignore[union-attr]
    assert errors.error_type("KeyError") is None


#: A cell that leaves a child in the kernel's process group, which records a SIGINT it receives.
SIGINT_WITNESS = """
import subprocess, sys
recorder = "\\n".join([
    "import signal, sys, time",
    "signal.signal(signal.SIGINT, lambda *_: (open(sys.argv[1], 'w').write('x'), sys.exit()))",
    "print('ready', flush=True)",
    "time.sleep(60)",
])
witness = subprocess.Popen(
    [sys.executable, "-c", recorder, {path!r}], stdout=subprocess.PIPE, text=True
)
assert witness.stdout.readline().strip() == "ready"
"""


@pytest.mark.parametrize("quiet", [True, False], ids=["workbench-manager", "nbclient-default"])
def test_the_kernel_of_a_headless_run_is_shut_down_without_an_interrupt(tmp_path: Path, quiet):
    """jupyter_client sends SIGINT to an idle kernel's process group before every shutdown
    request, which ipykernel sometimes logs as "KeyboardInterrupt caught in kernel." (2 of 4
    `workbench run`s). The kernel manager of `workbench run` sends none: a child of the kernel
    that records SIGINT records nothing, where nbclient's default manager reaches it."""
    import nbformat
    import papermill

    from workbench.pipeline.kernel import QuietShutdownKernelManager
    from workbench.pipeline.run import own_kernel

    witness = tmp_path / "sigint.txt"
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(SIGINT_WITNESS.format(path=str(witness)))]
    nbformat.write(book, tmp_path / "in.ipynb")
    options = {"kernel_manager_class": QuietShutdownKernelManager} if quiet else {}
    with own_kernel() as kernel:
        papermill.execute_notebook(
            str(tmp_path / "in.ipynb"),
            str(tmp_path / "out.ipynb"),
            kernel_name=kernel,
            progress_bar=False,
            **options,
        )
    # The kernel terminates its children as it shuts down: the witness is gone either way.
    assert witness.exists() is not quiet
