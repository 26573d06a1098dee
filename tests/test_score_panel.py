"""The score panel (6 · Score) in-process: it opens on the promoted version (else the newest),
says which server of the project is running (the launch panel's, found through its record), and
scores a file in this process or on a local Dask cluster (Dask workers 0 or N) into a folder it
creates, with the same predictions either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_release_project

from workbench.config import load_config
from workbench.serving import LaunchSession
from workbench.versions import promote
from workbench.widgets import ScorePanel


@pytest.fixture
def release(two_versions: Path, tmp_path: Path) -> tuple[Path, str, str]:
    folder = copy_release_project(two_versions, tmp_path / "project")
    tags = json.loads((folder / "versions.json").read_text())
    return folder, tags["v1"], tags["v2"]


def test_it_opens_on_the_promoted_version_else_the_newest(release):
    folder, v1, v2 = release
    config = load_config(folder / "workbench.yaml")
    panel = ScorePanel(config)
    assert panel.bento.value == v2 and panel.title == "6 · Score"
    assert f"no server of {config.name} is running" in panel.serving.value
    promote(config, v1, reason="first release")
    panel = ScorePanel(config)
    assert panel.bento.value == v1
    assert dict((tag, label) for label, tag in panel.bento.options)[v1].endswith("(promoted)")


@pytest.mark.serve
def test_it_says_which_server_runs_and_scores_in_process_and_on_dask(release, tmp_path):
    """With 3 · Launch's server running, the panel names it and marks its version; Score writes
    into a folder that did not exist, in this process and then on 2 Dask workers, with the same
    predictions."""
    folder, _, v2 = release
    config = load_config(folder / "workbench.yaml")
    session = LaunchSession(config, origin="3 · Launch")
    session.start()
    try:
        server = session.server
        assert server is not None
        panel = ScorePanel(config)
        assert f"serving now: Bento <code>{server.bento_tag}</code> at {server.url}" in (
            panel.serving.value
        )
        assert "started from 3 · Launch" in panel.serving.value
        labels = {tag: label for label, tag in panel.bento.options}
        assert labels[server.bento_tag].endswith("(serving now)")
    finally:
        session.stop()

    panel.input.value = "data/test.csv"
    panel.out.value = str(tmp_path / "new" / "folder" / "in-process.parquet")
    panel.score_button.click()
    assert panel.result is not None, panel.status.value
    assert panel.result.engine == "in process"
    assert panel.state == "done" and "143 rows scored" in panel.status.value
    in_process = pd.read_parquet(tmp_path / "new" / "folder" / "in-process.parquet")

    panel.workers.value = 2
    panel.out.value = str(tmp_path / "new" / "folder" / "dask.parquet")
    panel.score_button.click()
    assert panel.result is not None and "dask" in panel.result.engine, panel.status.value
    assert "(local dask cluster (2 worker processes))" in panel.status.value
    on_dask = pd.read_parquet(tmp_path / "new" / "folder" / "dask.parquet")
    pd.testing.assert_frame_equal(in_process, on_dask)
    assert panel.progress.value == panel.progress.max == 143
