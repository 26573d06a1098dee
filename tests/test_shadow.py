"""Shadow replays and the launch stage following the promoted version, on real servers.

One replay serves both packaged versions of ``two_versions`` side by side with ``bentoml serve``;
one launch serves the promoted version. Bad replay files are refused before any server starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_release_project, edit_config

from workbench.cli import main
from workbench.config import load_config
from workbench.errors import DataError, ServingError
from workbench.serving import launch
from workbench.serving.server import state_dir
from workbench.versions import compare_versions, promote, shadow
from workbench.versions.agreement import _regression


@pytest.fixture
def release(two_versions: Path, tmp_path: Path) -> tuple[Path, str, str]:
    folder = copy_release_project(two_versions, tmp_path / "project")
    tags = json.loads((folder / "versions.json").read_text())
    return folder, tags["v1"], tags["v2"]


@pytest.mark.serve
def test_shadow_replays_to_both_and_fails_its_gate(release, capsys):
    """`workbench shadow` serves both versions, replays at most --max-rows rows to each, reports
    agreement, the champion-by-challenger table, latency and metric deltas equal to those of the
    same rows re-scored in memory, writes shadow.json and shadow.html, stops both servers and
    exits 1 when the `shadow:` gate on agreement fails."""
    folder, v1, v2 = release
    test = pd.read_csv(folder / "data" / "test.csv")
    replay = folder / "replay.csv"
    test.head(60).to_csv(replay, index=False)
    test.head(40).to_csv(folder / "data" / "first40.csv", index=False)
    edit_config(folder, shadow={"min_agreement": 0.99, "max_shift": 0.5})
    out = folder / "shadow-report"
    code = main(
        [
            "shadow", v1, v2, "--replay", str(replay), "--max-rows", "40",
            "--config", str(folder / "workbench.yaml"), "--out", str(out),
        ]
    )  # fmt: skip
    printed, err = capsys.readouterr()
    assert code == 1, err
    assert "shadow gate(s) failed: min_agreement" in err
    result = json.loads((out / "shadow.json").read_text())
    assert result["rows_sent"] == 40 and result["stopped_by"] == "max_rows"
    assert result["rows_in_file"] == 60
    assert sum(map(sum, result["confusion"])) == 40 and result["labels"] == ["0", "1"]
    assert 0.5 < result["agreement"] < 0.99
    verdicts = {g["name"]: g["passed"] for g in result["gates"]}
    assert verdicts == {"min_agreement": False, "max_shift": True}
    for role in ("champion", "challenger"):
        assert result["latency"][role]["requests"] == 40
        assert result["latency"][role]["errors"] == 0
    offline = compare_versions(
        load_config(edit_config(folder, data={**load_config(folder / "workbench.yaml").data
                                              .model_dump(), "test": "data/first40.csv"})),
        v1,
        v2,
    )  # fmt: skip
    assert result["agreement"] == pytest.approx(offline.agreement)
    for metric in ("accuracy", "roc_auc", "log_loss"):
        expected = offline.metrics_b[metric] - offline.metrics_a[metric]
        assert result["metric_deltas"][metric] == pytest.approx(expected, abs=1e-6)
    assert "agreement:" in printed and "rows: champion's label" in printed
    page = (out / "shadow.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64" in page
    assert not list(state_dir().glob("*.json")), "a shadow server outlived the replay"


def test_a_replay_file_whose_columns_do_not_match_is_refused_before_serving(release, capsys):
    """Missing input columns and columns that are neither inputs nor the target are named, in one
    message (exit 2), and no server is started."""
    folder, v1, v2 = release
    test = pd.read_csv(folder / "data" / "test.csv").head(5)
    bad = test.drop(columns=["mean radius"]).assign(session_id=range(5))
    bad.to_csv(folder / "bad.csv", index=False)
    config = load_config(folder / "workbench.yaml")
    with pytest.raises(DataError) as refused:
        shadow(config, v1, v2, folder / "bad.csv")
    message = str(refused.value)
    assert "its columns do not match the input schema" in message
    assert f"{v1} needs ['mean radius']" in message and "['session_id']" in message
    code = main(["shadow", v1, v2, "--replay", str(folder / "bad.csv"),
                 "--config", str(folder / "workbench.yaml")])  # fmt: skip
    assert code == 2 and "error: replay file" in capsys.readouterr().err
    assert not list(state_dir().glob("*.json"))


def test_regressor_differences_are_a_distribution_and_a_tolerance():
    """For regressors shadow reports challenger minus champion as quantiles and a histogram,
    agreement as the share within the tolerance, and the KS statistic as the shift."""
    champion = list(np.linspace(0, 10, 101))
    challenger = [v + (0.5 if i % 2 else 0.0) for i, v in enumerate(champion)]
    result: dict = {}
    _regression(result, list(range(101)), {"champion": champion, "challenger": challenger}, 0.1)
    assert result["agreement"] == pytest.approx(51 / 101)
    assert result["difference"]["max"] == pytest.approx(0.5)
    assert result["difference"]["p50"] == pytest.approx(0.0)
    assert sum(result["difference_histogram"]["counts"]) == 101
    assert 0 < result["shift"] < 0.1 and "Kolmogorov" in result["shift_test"]


@pytest.mark.serve
def test_the_launch_stage_follows_the_promoted_version(release):
    """With `launch.version: promoted` the launch stage serves the promoted version (not the one
    packaged last) and checks parity against that version's own stored model; with nothing
    promoted it says what to do."""
    folder, v1, v2 = release  # v2 is the one packaged last
    edit_config(folder, launch={"version": "promoted", "probe_requests": 0})
    config = load_config(folder / "workbench.yaml")
    with pytest.raises(ServingError, match="promotes no version of .* `workbench promote"):
        launch(config)
    promote(config, v1, reason="first release")
    result = launch(config)
    assert result.bento_tag == v1
    assert result.passed, [c for c in result.checks if not c.passed]
    assert result.parity_rows > 100 and not result.mismatches


@pytest.mark.serve
def test_workbench_serve_serves_the_promoted_version_until_stopped(release):
    """`workbench serve NAME` serves the promoted version on 127.0.0.1 with the key it prints,
    and SIGTERM stops it with all its workers; with nothing promoted it says what to do."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx
    import psutil

    folder, v1, _ = release
    config = load_config(folder / "workbench.yaml")
    command = [sys.executable, "-m", "workbench.cli", "serve", config.name, "--config",
               str(folder / "workbench.yaml")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_API_KEY"}
    refused = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2 and "no version of" in refused.stderr
    assert "is promoted" in refused.stderr and "workbench promote" in refused.stderr
    promote(config, v1, reason="first release")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while len(lines) < 2 and time.monotonic() < deadline and proc.poll() is None:
            lines.append(proc.stdout.readline().strip())
        assert lines[0].startswith(f"serving {v1} at http://127.0.0.1:"), lines
        url = lines[0].split(" at ")[1].split(" ")[0]
        key = lines[1].rsplit(": ", 1)[1]
        card = httpx.get(f"{url}/metadata", headers={"Authorization": f"Bearer {key}"}).json()
        assert card["name"] == config.name and card["model_tag"]
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert len(tree) >= 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    _, alive = psutil.wait_procs(tree, timeout=15)
    assert not alive, [p.pid for p in alive]
