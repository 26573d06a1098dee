"""Monitoring a launched model: request ids, feedback, ``GET /monitor``, the Prometheus gauges,
capture files, replay and ``workbench monitor``; with one worker and with two.

The example project is validated, packaged and served for real (``bentoml serve``), with a small
window so the module stays quick; the drifted copy the example ships (every measurement 15 %
higher) is replayed through it with its labels as feedback.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import copy_project, edit_config, our_servers, static_copy

from workbench import load_config, package, validate
from workbench.cli import main
from workbench.config import parse_config
from workbench.errors import ConfigError, ServingError
from workbench.monitoring.live import check_service, replay
from workbench.runtime.live_metrics import live_metrics
from workbench.runtime.monitoring.capture import Capture
from workbench.runtime.settings import CAPTURE_DIR_ENV
from workbench.serving import Server, serve
from workbench.validation.metrics import Outputs, metric_values

MONITOR = {
    "window_rows": 2000,
    "min_window_rows": 100,
    "refresh_seconds": 0.5,
    "min_labelled_rows": 20,
    "gates": {"accuracy": {"min": 0.9}},
    "capture_file_mb": 0.05,
    "capture_total_mb": 0.2,
}
FAST_VALIDATION = {"cv_folds": 0, "importance_top": 0, "champion": False}


def monitored_project(example_files: Path, folder: Path, **service: Any) -> Path:
    project = copy_project(example_files, folder)
    edit_config(project, monitor=MONITOR, validation=FAST_VALIDATION, service=service)
    config = load_config(project / "workbench.yaml")
    validate(config)
    package(config)
    return project


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capture")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, example_files: Path, capture_dir: Path
) -> Iterator[tuple[Path, Server]]:
    """The example packaged with a small window and served with capture on (one worker)."""
    project = monitored_project(example_files, tmp_path_factory.mktemp("monitored"))
    os.environ[CAPTURE_DIR_ENV] = str(capture_dir)
    try:
        server = serve(load_config(project / "workbench.yaml"))
    finally:
        del os.environ[CAPTURE_DIR_ENV]
    with server:
        yield project, server


def key_of(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def rows_of(project: Path, name: str) -> tuple[list[dict[str, Any]], list[int]]:
    frame = pd.read_csv(project / "data" / name)
    labels = frame.pop("target").tolist()
    return frame.to_dict("records"), labels


# ---------------------------------------------------------------- no server


def test_live_metrics_are_the_validation_metrics_on_the_same_rows():
    """The runtime's live metrics equal the validate stage's on the same labels and outputs,
    for a binary and a three-class classifier (with probabilities) and a regressor."""
    rng = np.random.default_rng(0)
    for classes in (["no", "yes"], [0, 1, 2]):
        proba = rng.dirichlet(np.ones(len(classes)), 300)
        predicted = np.asarray(classes)[proba.argmax(axis=1)]
        y = np.asarray(classes)[rng.integers(0, len(classes), 300)]
        answers = [
            {"prediction": p, "probabilities": dict(zip(map(str, classes), row, strict=True))}
            for p, row in zip(predicted.tolist(), proba.tolist(), strict=True)
        ]
        live, why = live_metrics("classification", y.tolist(), answers, classes)
        outputs = Outputs(predicted=predicted, classes=np.asarray(classes), proba=proba)
        expected, _ = metric_values("classification", y, outputs)
        assert not why
        for name, value in expected.items():
            assert live[name] == pytest.approx(value, rel=1e-9), (classes, name)
    y = rng.normal(size=200)
    predicted = y + rng.normal(scale=0.3, size=200)
    live, _ = live_metrics("regression", y.tolist(), [{"prediction": p} for p in predicted], [])
    expected, _ = metric_values("regression", y, Outputs(predicted=predicted))
    assert live == pytest.approx(expected)


def test_capture_files_rotate_by_size_and_never_exceed_their_cap(tmp_path: Path):
    """Capture writes JSON lines, starts a new file at the file size and deletes the oldest
    files so the folder stays under the total cap, however much is written."""
    capture = Capture(tmp_path, file_bytes=2_000, total_bytes=10_000)
    line = json.dumps({"request_id": "x", "rows": [{"a": 1.0}] * 5})
    for _ in range(20):
        for _ in range(50):
            capture.add(line)
        capture.flush()
        files = list(tmp_path.glob("capture-*.jsonl"))
        assert sum(f.stat().st_size for f in files) <= 10_000
        assert all(f.stat().st_size <= 2_000 for f in files)
    assert len(files) >= 4
    for f in files:
        assert all(json.loads(x)["request_id"] == "x" for x in f.read_text().splitlines())


@pytest.mark.parametrize(
    ("monitor", "message"),
    [
        ({"window_rows": 100}, "window_rows 100 is smaller than min_window_rows 500"),
        ({"gates": {"acuracy": {"min": 0.9}}}, "gate on unknown live metric 'acuracy'"),
        ({"gates": {"accuracy": {}}}, "a gate needs `min`, `max` or both"),
        ({"capture_total_mb": 1, "capture_file_mb": 8}, "the cap must hold at least one file"),
        ({"refresh_seconds": 0}, "monitor.refresh_seconds"),
        ({"window": 5}, "monitor.window"),
    ],
)
def test_a_bad_monitor_section_is_one_clear_message(monitor: dict[str, Any], message: str):
    """Each mistake in `monitor:` is one ConfigError naming the field and what to do."""
    raw = {
        "name": "m",
        "model": "m.joblib",
        "data": {"train": "a.csv", "test": "b.csv", "target": "y"},
        "monitor": monitor,
    }
    with pytest.raises(ConfigError, match="monitor") as caught:
        parse_config(raw, root=Path("."))
    assert message in str(caught.value)


# ---------------------------------------------------------------- one worker


@pytest.mark.serve
def test_every_answer_has_a_request_id_and_feedback_is_idempotent(
    served: tuple[Path, Server],
):
    """Each answer carries X-Request-Id; feedback applies labels by id and row, reports unknown
    ids, a repeat changes nothing and another label is a conflict, not applied; bad feedback is
    one 400 naming each bad item and applies nothing."""
    project, server = served
    rows, labels = rows_of(project, "test.csv")
    answer = httpx.post(f"{server.url}/predict", json={"rows": rows[:2]}, headers=key_of(server))
    assert answer.status_code == 200 and len(answer.json()) == 2
    rid = answer.headers["x-request-id"]
    other = httpx.post(f"{server.url}/predict", json={"rows": rows[:1]}, headers=key_of(server))
    assert other.headers["x-request-id"] != rid
    items = [
        {"request_id": rid, "row": 0, "label": labels[0]},
        {"request_id": rid, "row": 1, "label": labels[1]},
        {"request_id": "nope-1", "label": 1},
        {"request_id": rid, "row": 5, "label": 1},
    ]
    first = httpx.post(f"{server.url}/feedback", json={"feedback": items}, headers=key_of(server))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["applied"], body["unknown"]) == (2, 2)
    assert {"request_id": "nope-1", "row": 0} in body["unknown_ids"]
    again = httpx.post(
        f"{server.url}/feedback", json={"feedback": items[:2]}, headers=key_of(server)
    ).json()
    assert (again["applied"], again["unchanged"], again["conflict"]) == (0, 2, 0)
    flipped = [{**items[0], "label": 1 - labels[0]}]
    changed = httpx.post(
        f"{server.url}/feedback", json={"feedback": flipped}, headers=key_of(server)
    ).json()
    assert changed["conflict"] == 1  # the first label stands (issue 29)
    assert changed["conflict_ids"] == [{"request_id": rid, "row": 0}]

    bad = [
        {"request_id": rid, "label": "maybe"},
        {"request_id": rid},
        {"request_id": rid, "row": -1, "label": 0},
        {"request_id": rid, "label": 0, "weight": 2},
    ]
    refused = httpx.post(f"{server.url}/feedback", json={"feedback": bad}, headers=key_of(server))
    assert refused.status_code == 400
    error = refused.json()
    assert error["error"] == "4 bad feedback items: nothing was applied"
    assert [d["loc"] for d in error["detail"]] == [["feedback", i] for i in range(4)]
    assert '"maybe" is not one of the model\'s classes (0, 1)' in error["detail"][0]["msg"]
    assert "unknown keys ['weight']" in error["detail"][3]["msg"]
    for body_text in (b"{", b'{"labels": []}', b'{"feedback": []}'):
        response = httpx.post(
            f"{server.url}/feedback",
            content=body_text,
            headers={**key_of(server), "Content-Type": "application/json"},
        )
        assert response.status_code == 400 and response.json()["error"], body_text


@pytest.mark.serve
def test_monitor_and_feedback_are_behind_the_api_key(served: tuple[Path, Server]):
    """/monitor and /feedback need the key like every API route; /metrics stays open."""
    _, server = served
    assert httpx.get(f"{server.url}/monitor").status_code == 401
    assert httpx.post(f"{server.url}/feedback", json={"feedback": []}).status_code == 401
    assert httpx.get(f"{server.url}/monitor", headers=key_of(server)).status_code == 200
    assert httpx.post(f"{server.url}/monitor", headers=key_of(server)).status_code == 405
    assert httpx.get(f"{server.url}/metrics").status_code == 200


@pytest.mark.serve
def test_the_drifted_copy_is_caught_and_training_traffic_is_not(
    served: tuple[Path, Server], tmp_path: Path
):
    """Training rows replayed give "no drift" and passing live metrics; the drifted copy
    replayed after them drifts most columns, moves the prediction distribution, drops live
    accuracy below its gate, shows in the Prometheus gauges, and `workbench monitor --url`
    exits 1 with monitor.json and monitor.html written."""
    project, server = served
    config = load_config(project / "workbench.yaml")
    train = project / "data" / "train.csv"
    calm = check_service(server.url, config.monitor, key=server.api_key, file=train, rate=4000)
    assert calm.replay is not None and calm.replay.rows == 426 and calm.replay.feedback == 426
    assert calm.verdict == "no drift", calm.failures
    assert calm.passed, calm.failures
    window = calm.report["window"]
    assert window["rows"] >= 426 and window["labelled_rows"] >= 426 and window["seconds"] > 0
    live = calm.report["metrics"]["live"]
    assert live["accuracy"] > 0.95 and set(live) >= {"roc_auc", "log_loss", "brier"}
    assert calm.report["metrics"]["validation"]["accuracy"] == pytest.approx(0.958, abs=0.01)

    os.environ["WORKBENCH_API_KEY"] = server.api_key
    try:
        code = main(
            [
                "monitor",
                "--url",
                server.url,
                "--file",
                str(project / "data" / "drifted.csv"),
                "--config",
                str(project / "workbench.yaml"),
                "--rate",
                "4000",
                "--out",
                str(tmp_path / "out"),
            ]
        )
    finally:
        del os.environ["WORKBENCH_API_KEY"]
    assert code == 1
    result = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert result["verdict"] == "drift" and not result["passed"] and result["status"] == "FAIL"
    assert any("live accuracy" in f for f in result["failures"])
    assert result["quality"]["status"] == "PASS"  # 15 % higher is drift, not a broken feed
    drift = result["report"]["drift"]
    assert drift["drifted_columns"] >= 20
    assert "<table" in (tmp_path / "out" / "monitor.html").read_text()
    predictions = result["report"]["predictions"]
    assert predictions["drift"]["drifted"] is True
    assert predictions["window"]["0"] > predictions["reference"]["0"]

    # the monitoring gauges are model information: a scrape with the key (issue 29)
    assert "workbench_monitor_" not in httpx.get(f"{server.url}/metrics").text
    metrics = httpx.get(f"{server.url}/metrics", headers=key_of(server)).text
    assert "workbench_monitor_dataset_drift 1.0" in metrics
    assert 'workbench_monitor_column_drifted{column="mean radius"} 1.0' in metrics
    assert 'workbench_monitor_metric{metric="accuracy",source="validation"}' in metrics
    assert 'workbench_monitor_gate_passed{metric="accuracy"} 0.0' in metrics
    assert "bentoml_service_request_total" in metrics  # BentoML's series names are kept
    assert 'workbench_monitor_status{status="FAIL"} 1.0' in metrics
    assert (
        'workbench_monitor_column_quality_failed{column="mean radius",check="range"} 0' in metrics
    )
    series = [line for line in metrics.splitlines() if line.startswith("workbench_monitor")]
    assert len(series) < 30 * 12 + 40  # bounded: a few per column and check, class and metric


@pytest.mark.serve
def test_a_replay_stops_at_its_time_bound_and_only_targets_this_machine(
    served: tuple[Path, Server], capsys: pytest.CaptureFixture[str]
):
    """At 40 rows a second for at most a second, a replay stops by time with about 40 rows
    sent; a service on another machine is never sent rows (one message naming the URL, at the
    CLI exit 2), and a rate of 0 is refused before anything is read."""
    project, server = served
    train = project / "data" / "train.csv"
    done = replay(server.url, train, key=server.api_key, rate=40, max_seconds=1.0)
    assert done.stopped_by == "max_seconds"
    assert 20 <= done.rows <= 80 and done.seconds < 3
    assert done.feedback == done.rows  # each answered row's label, under its request id
    with pytest.raises(ServingError, match=r"only targets this machine.*192\.0\.2\.1"):
        replay("http://192.0.2.1:3000", train)
    code = main(["monitor", "--url", "http://192.0.2.1:3000", "--file", str(train)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "192.0.2.1" in err, err
    with pytest.raises(SystemExit) as stop:
        main(["monitor", "--file", str(train), "--rate", "0"])
    assert stop.value.code == 2
    assert "give rows per second in (0, 100000]" in capsys.readouterr().err


@pytest.mark.serve
def test_workbench_monitor_with_a_file_alone_serves_the_packaged_model_for_the_replay(
    served: tuple[Path, Server], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """`workbench monitor --file` with no --url starts a server of the packaged Bento on
    127.0.0.1, replays the training rows through it (no drift, gates pass: exit 0), writes
    monitor.json and monitor.html, and stops that server with all its workers."""
    project, _ = served
    before = {p.pid for p in our_servers()}
    code = main(
        [
            "monitor",
            "--file",
            str(project / "data" / "train.csv"),
            "--config",
            str(project / "workbench.yaml"),
            "--rate",
            "4000",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "for the replay" in out and "at http://127.0.0.1:" in out
    result = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert result["passed"] and result["replay"]["rows"] == 426
    assert result["report"]["window"]["rows"] == 426  # a fresh server: this replay's rows only
    assert "<table" in (tmp_path / "out" / "monitor.html").read_text()
    assert {p.pid for p in our_servers()} <= before


@pytest.mark.serve
def test_a_replay_too_small_to_judge_is_inconclusive_and_exits_3_never_0(
    served: tuple[Path, Server], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """50 test rows through a fresh server, under min_window_rows (100 here): no column can be
    tested, so `workbench monitor --file` says INCONCLUSIVE with the values still needed and
    exits 3 (never PASS, never 0: monitor.fail_on_inconclusive is on by default)."""
    project, _ = served
    args = ["monitor", "--file", str(project / "data" / "test.csv"), "--max-rows", "50"]
    args += ["--config", str(project / "workbench.yaml"), "--rate", "4000"]
    code = main([*args, "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "INCONCLUSIVE: drift: not enough data" in out and "50 more non-missing values" in out
    result = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert result["status"] == "INCONCLUSIVE" and not result["passed"]
    assert result["report"]["status"] == "INCONCLUSIVE"  # /monitor says so itself


@pytest.mark.serve
def test_a_replay_the_service_refuses_fails_the_check_and_a_missing_file_starts_nothing(
    served: tuple[Path, Server], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A replay file with a cell the service refuses: its requests are answered 400, their rows
    never reach the window, and `workbench monitor` says so (the first 400 quoted) and exits 1
    instead of passing on what it never saw. A replay file that does not exist is one message,
    exit 2, before any server starts."""
    project, _ = served
    frame = pd.read_csv(project / "data" / "train.csv")
    first = frame.columns[0]
    frame[first] = frame[first].astype(object)
    frame.loc[5, first] = "abc"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    config = str(project / "workbench.yaml")
    before = {p.pid for p in our_servers()}
    code = main(
        ["monitor", "--file", str(tmp_path / "bad.csv"), "--config", config, "--rate", "4000"]
        + ["--out", str(tmp_path / "out")]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert re.search(r"\d+ of \d+ requests refused \(first: HTTP 400", out), out
    assert "FAIL: the service refused" in out and "--on-error skip" in out
    result = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert not result["passed"] and result["replay"]["failed_requests"] >= 1
    assert result["replay"]["first_errors"][0].startswith("HTTP 400")

    code = main(["monitor", "--file", str(tmp_path / "nope.csv"), "--config", config])
    captured = capsys.readouterr()
    assert code == 2
    assert "replay file" in captured.err and "nope.csv' not found; check the replay" in captured.err
    assert "replay file file" not in captured.err
    assert "for the replay" not in captured.out  # no server was started for it
    assert {p.pid for p in our_servers()} <= before


@pytest.mark.serve
def test_the_window_and_capture_files_stay_bounded(served: tuple[Path, Server], capture_dir: Path):
    """After more rows than the window holds, the window holds its capacity (oldest dropped)
    and the capture folder stays under its cap, in rotated files of JSON lines."""
    project, server = served
    for name in ("train.csv", "drifted.csv", "drifted.csv"):  # 2,426 rows, over the 2,000
        replay(server.url, project / "data" / name, key=server.api_key, rate=4000)
    deadline = time.monotonic() + 20  # the report's next refresh and the capture's flush
    while True:
        report = httpx.get(f"{server.url}/monitor", headers=key_of(server)).json()
        flushed = len(list(capture_dir.glob("capture-*.jsonl"))) >= 3
        if (report["window"]["rows"] >= 1900 and flushed) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert report["window"]["rows"] <= 2000 and report["window"]["rows"] >= 1900
    files = sorted(capture_dir.glob("capture-*.jsonl"))
    total = sum(f.stat().st_size for f in files)
    assert len(files) >= 3 and total <= 0.2 * (1 << 20)
    line = json.loads(files[-1].read_text().splitlines()[-1])
    assert ("request_id" in line and "answers" in line) or "feedback" in line


# ---------------------------------------------------------------- two workers


@pytest.mark.serve
def test_two_workers_answer_for_the_whole_service(tmp_path: Path, example_files: Path):
    """With two workers, each keeps its own window; /monitor merges both (any worker answers),
    and feedback for ids of either worker, sent to either, is applied exactly once."""
    project = monitored_project(example_files, tmp_path, workers=2)
    rows, labels = rows_of(project, "train.csv")
    with serve(load_config(project / "workbench.yaml")) as server:
        ids = []
        for start in range(0, 400, 4):  # a new connection per request: both workers answer
            answer = httpx.post(
                f"{server.url}/predict",
                json={"rows": rows[start : start + 4]},
                headers=key_of(server),
            )
            ids.append(answer.headers["x-request-id"])
        assert len({i.split("-")[0] for i in ids}) == 2, "one worker answered everything"
        feedback = [
            {"request_id": rid, "row": j, "label": labels[k * 4 + j]}
            for k, rid in enumerate(ids)
            for j in range(4)
        ]
        applied = 0
        for start in range(0, 400, 50):
            body = httpx.post(
                f"{server.url}/feedback",
                json={"feedback": feedback[start : start + 50]},
                headers=key_of(server),
            ).json()
            assert body["unknown"] == 0, body
            applied += body["applied"]
        assert applied == 400
        expected = {"workers": 2, "rows": 400, "labelled": 400, "applied": 400}
        deadline = time.monotonic() + 20  # both workers publish (every 0.5 s, later under load)
        while True:
            report = httpx.get(f"{server.url}/monitor", headers=key_of(server)).json()
            seen = {
                "workers": report["window"]["workers"],
                "rows": report["window"]["rows"],
                "labelled": report["metrics"]["labelled_rows"],
                "applied": report["feedback"]["applied"],
            }
            if seen == expected or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        for _ in range(4):  # whichever worker answers, the same whole-service report
            report = httpx.get(f"{server.url}/monitor", headers=key_of(server)).json()
            assert report["window"]["workers"] == 2
            assert report["window"]["rows"] == 400
            assert report["metrics"]["labelled_rows"] == 400
            assert report["verdict"] == "no drift"
            assert report["feedback"]["applied"] == 400
            time.sleep(0.6)


def test_the_scaffold_runs_workbench_monitor_on_a_schedule(tmp_path: Path):
    """`workbench init` writes a workflow whose scheduled job runs `workbench monitor` against
    the deployed URL with the key from a secret, and a config whose monitor: section loads."""
    import yaml

    from workbench.pipeline import init_project

    init_project(tmp_path / "proj")
    workflow = yaml.safe_load((tmp_path / "proj/.github/workflows/workbench.yml").read_text())
    assert workflow[True]["schedule"][0]["cron"]  # YAML 1.1 reads the key `on` as True
    job = workflow["jobs"]["monitor"]
    assert "schedule" in job["if"]
    step = next(s for s in job["steps"] if "workbench monitor" in s.get("run", ""))
    assert (
        "--url" in step["run"] and "secrets.WORKBENCH_API_KEY" in step["env"]["WORKBENCH_API_KEY"]
    )
    config = load_config(tmp_path / "proj/workbench.yaml")
    assert config.monitor.gates["accuracy"].min == 0.8


@pytest.mark.serve
def test_the_panel_refreshes_live_in_the_background_and_stops(served: tuple[Path, Server]):
    """The monitor panel connected by URL and key: a refresh shows traffic and the coloured
    drift table; Start live returns at once (the kernel stays free), refreshes in a thread,
    and Stop live ends it promptly; the buttons, clicked, follow the state (Stop live usable
    while live, Start live again after)."""
    from workbench.widgets import MonitorPanel

    project, server = served
    config = load_config(project / "workbench.yaml")
    panel = MonitorPanel(config, url=server.url, key=server.api_key, interval=0.3)
    panel.refresh()
    replay(server.url, project / "data" / "test.csv", key=server.api_key, rate=4000)
    started = time.perf_counter()
    panel.live_button.click()
    assert time.perf_counter() - started < 0.5
    assert panel.worker is not None and panel.worker.is_alive()
    assert panel.live_button.disabled and not panel.stop_button.disabled
    deadline = time.monotonic() + 20
    while "req/s" not in panel.traffic.value and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "req/s" in panel.traffic.value and "p99" in panel.traffic.value
    assert "wb-row-drift" in panel.results.value or "wb-row-ok" in panel.results.value
    assert "<img" in panel.results.value  # reference-against-live and prediction plots
    panel.stop_button.click()
    assert panel.worker is None and panel.stop_button.disabled and not panel.live_button.disabled


@pytest.mark.serve
@pytest.mark.e2e
def test_the_monitor_notebook_runs_headless_and_writes_the_report(
    served: tuple[Path, Server], tmp_path: Path
):
    """notebooks/04_monitor.ipynb under papermill, against the running service: replays the
    drifted copy and writes monitor.json and monitor.html into the run folder."""
    import papermill

    from workbench.pipeline.run import own_kernel

    project, server = served
    os.environ["WORKBENCH_API_KEY"] = server.api_key
    try:
        with own_kernel() as kernel:
            papermill.execute_notebook(
                str(project / "notebooks" / "04_monitor.ipynb"),
                str(tmp_path / "04_monitor.ipynb"),
                parameters={
                    "config": str(project / "workbench.yaml"),
                    "run_dir": str(tmp_path),
                    "interactive": False,
                    "url": server.url,
                    "replay_file": str(project / "data" / "drifted.csv"),
                    "rate": 4000.0,
                },
                kernel_name=kernel,
                cwd=str(project / "notebooks"),
                progress_bar=False,
            )
    finally:
        del os.environ["WORKBENCH_API_KEY"]
    record = json.loads((tmp_path / "monitor.json").read_text())
    assert record["verdict"] == "drift" and record["replay"]["rows"] == 1000
    assert "Input drift against the training reference" in (tmp_path / "monitor.html").read_text()
    shown = static_copy(tmp_path / "04_monitor.ipynb")  # in any viewer, not only the widget's
    assert "FAIL: the dataset drifted" in shown and "Input drift against the training" in shown


def test_the_two_notebook_copies_of_monitor_are_the_same():
    """notebooks/04_monitor.ipynb and the packaged copy the scaffold uses are identical."""
    from conftest import REPO

    first = (REPO / "notebooks" / "04_monitor.ipynb").read_bytes()
    assert first == (REPO / "workbench" / "notebooks" / "04_monitor.ipynb").read_bytes()
