"""Files written atomically (issue 29, item 11): a disk that takes no more leaves whole files.

The full disk is real, without root: a file-size limit (``RLIMIT_FSIZE``) set in the child
process with ``SIGXFSZ`` ignored, so every write past the limit fails with ``EFBIG`` (as a full
disk fails with ``ENOSPC``) in the process and in the kernels papermill starts, which inherit it.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.e2e
WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def _limit(size: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def test_a_write_past_the_limit_keeps_the_old_file_and_names_the_file(tmp_path: Path):
    """write_atomic (records, manifests, reports) over a file, failing at 4 KiB: the old
    content stays, no temporary is left, and the error names the file, not a temporary."""
    target = tmp_path / "manifest.json"
    target.write_text('{"old": true}\n')
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from workbench.artifacts import write_atomic
        try:
            write_atomic(Path(sys.argv[1]), "x" * 100_000)
        except OSError as exc:
            print(exc.errno, exc.filename)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _limit(4096),
    )
    assert done.stdout.split() == [str(errno.EFBIG), str(target)], done.stderr
    assert target.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def _whole(path: Path) -> bool:
    if path.suffix == ".ipynb":
        nbformat.read(path, as_version=4)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".html":
        return path.read_text().rstrip().endswith("</html>")
    return True


@pytest.mark.parametrize(
    ("limit", "fails"),
    [
        (1 << 20, ("01_validate.html",)),  # the report (~4.5 MB) is the first file over 1 MiB
        # the executed notebook (plots, ~270 KB) is the first over 240 KiB: the records the kernel
        # writes before it are smaller (validation.json ~210 KB with its explained rows)
        (240 << 10, ("01_validate.ipynb",)),
        # At 64 KiB a record the kernel writes (drift_reference.json, ~110 KB, validation.json)
        # or one of papermill's saves of the notebook while it runs is the first over the limit,
        # as the panels' output grows or shrinks: either way the file named is the one that failed.
        (64 << 10, ("drift_reference.json", "validation.json", "01_validate.ipynb")),
    ],
    ids=["report", "notebook", "record"],
)
def test_a_run_on_a_full_disk_leaves_whole_files_and_names_the_file(
    project: Path, tmp_path: Path, limit: int, fails: tuple[str, ...]
):
    """`workbench run` with files limited so that the HTML report, the executed notebook or a
    stage record is the first that cannot be written: exit 2, the error names that file, and
    every file in the run folder is whole (notebooks and JSON parse, the HTML ends), with no
    temporary left; the manifest says what failed. (Before: a truncated report or notebook, and
    an error that named no file.)"""
    out = tmp_path / "run"
    done = subprocess.run(
        [*WORKBENCH, "run", "--config", str(project / "workbench.yaml"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "BENTOML_HOME": str(tmp_path / "store")},
        preexec_fn=lambda: _limit(limit),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr.strip().splitlines()[-1]
    failed = next((name for name in fails if str(out / name) in error), None)
    assert failed is not None and "File too large" in error, error
    files = sorted(out.iterdir())
    assert files and not [p.name for p in files if p.name.startswith(".")]
    assert not (out / failed).exists()
    for path in files:
        assert _whole(path), path
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "error" and str(out / failed) in manifest["error"]
