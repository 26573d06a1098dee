"""The live rollout: a challenger on a share of the promoted version's traffic.

The rollout file and its history (start, advance, abort; round-trip, refusals), the cluster
recipe validated offline (core objects by kubernetes-validate, the HTTPRoute by the Gateway API
CRD's schema, vendored in tests/schemas), the command line, and a real split: two ``bentoml
serve`` and the canary router on loopback, a bounded load, the share within its binomial
tolerance, sticky keys, the version header, each arm apart in /monitor and /metrics, feedback to
the arm that answered, and the share moved and ended without a restart.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pandas as pd
import psutil
import pytest
import yaml
from conftest import copy_release_project
from prometheus_client.parser import text_string_to_metric_families

from workbench import load_config, promote
from workbench.cli import main
from workbench.errors import VersionError
from workbench.packaging.kubernetes import ROLLOUT_WEIGHT, render_rollout
from workbench.rollouts import ROLLOUT_MANIFEST_FILE, read_rollout, rollout_path
from workbench.serving.router.arms import arm_for, key_point
from workbench.versions import abort_rollout, advance_rollout, serve_rollout, start_rollout

SCHEMAS = Path(__file__).parent / "schemas"
#: The challenger's count over n requests at share p is Binomial(n, p): it must be within this
#: many standard deviations of n * p (a false failure has probability ~7e-6).
SIGMAS = 4.5


def within_binomial(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= SIGMAS * math.sqrt(n * p * (1 - p))


@pytest.fixture
def released(tmp_path: Path, two_versions: Path) -> tuple[Any, dict[str, str]]:
    """A fresh copy of the two-version project with v1 promoted: (config, {v1, v2})."""
    folder = copy_release_project(two_versions, tmp_path)
    config = load_config(folder / "workbench.yaml")
    tags = json.loads((folder / "versions.json").read_text())
    promote(config, tags["v1"], reason="first release")
    return config, tags


def test_start_advance_abort_are_written_to_the_history_and_keep_comments(
    released: tuple[Any, dict[str, str]],
) -> None:
    config, tags = released
    started = start_rollout(config, tags["v2"], share=0.1, reason="try the refit")
    assert (started.state, started.share, started.promoted) == ("active", 0.1, tags["v1"])
    path = rollout_path(config.root, config.name)
    path.write_text(path.read_text() + "# reviewed by the on-call\n")
    assert advance_rollout(config).share == 0.25  # the next step
    assert advance_rollout(config, share=0.5, reason="p99 fine").share == 0.5
    aborted = abort_rollout(config, reason="live accuracy fell")
    assert (aborted.state, aborted.share, aborted.served_share) == ("aborted", 0.0, 0.0)
    history = read_rollout(config.root, config.name).history
    assert [(c.action, c.previous_share, c.share) for c in history] == [
        ("start", None, 0.1),
        ("advance", 0.1, 0.25),
        ("advance", 0.25, 0.5),
        ("abort", 0.5, 0.0),
    ]
    assert history[-1].reason == "live accuracy fell" and history[0].by
    assert "# reviewed by the on-call" in path.read_text()
    recipe = list(yaml.safe_load_all(path.with_name(ROLLOUT_MANIFEST_FILE).read_text()))
    weights = [b["weight"] for b in recipe[-1]["spec"]["rules"][0]["backendRefs"]]
    assert weights == [ROLLOUT_WEIGHT, 0]  # aborted: everything to the promoted version


def test_bad_rollouts_are_one_message_each_and_change_nothing(
    released: tuple[Any, dict[str, str]],
) -> None:
    config, tags = released
    path = rollout_path(config.root, config.name)
    cases = [
        (lambda: start_rollout(config, tags["v2"], share=0), "above 0 and at most 1"),
        (lambda: start_rollout(config, tags["v2"], share=1.5), "above 0 and at most 1"),
        (lambda: start_rollout(config, tags["v1"]), "is the promoted version"),
        (lambda: start_rollout(config, f"{config.name}:ffffffff"), "ffffffff"),
        (lambda: advance_rollout(config), "no rollout of"),
        (lambda: abort_rollout(config), "no rollout of"),
    ]
    for call, message in cases:
        with pytest.raises(VersionError, match=message):
            call()
    assert not path.exists()
    start_rollout(config, tags["v2"], share=0.2)
    before = path.read_text()
    with pytest.raises(VersionError, match="rollout advance"):
        start_rollout(config, tags["v2"], share=0.5)  # resuming at another share
    with pytest.raises(VersionError, match="already"):
        advance_rollout(config, share=0.2)
    assert start_rollout(config, tags["v2"]).share == 0.2  # resumed as recorded
    assert path.read_text() == before


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists its properties closed to others (what strict
    field validation does), except where the CRD keeps unknown fields."""
    if isinstance(schema, dict):
        schema = {k: closed(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_the_cluster_recipe_validates_offline(
    released: tuple[Any, dict[str, str]], version: str
) -> None:
    """Two Deployments and Services (kubernetes-validate, strict) and an HTTPRoute valid under
    the Gateway API v1.6.1 CRD schema, its weights the share; a broken route is caught."""
    config, tags = released
    text = render_rollout(
        config.name, tags["v1"].split(":")[1], tags["v2"].split(":")[1], 0.1, config
    )
    documents = list(yaml.safe_load_all(text))
    kinds = [d["kind"] for d in documents]
    assert kinds == ["Deployment", "Service", "Deployment", "Service", "HTTPRoute"]
    for document in documents[:-1]:
        kubernetes_validate.validate(document, version, strict=True)
    schema = closed(
        json.loads((SCHEMAS / "gateway.networking.k8s.io_httproutes.v1.json").read_text())
    )
    route = documents[-1]
    jsonschema.validate(route, schema)
    backends = route["spec"]["rules"][0]["backendRefs"]
    assert [b["weight"] for b in backends] == [9000, 1000]
    assert [b["name"] for b in backends] == [d["metadata"]["name"] for d in documents[1:4:2]]
    images = [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in documents[::2][:2]]
    assert images == [tags["v1"], tags["v2"]]
    broken = json.loads(json.dumps(route))
    broken["spec"]["rules"][0]["backendRefs"][0]["wieght"] = 10
    with pytest.raises(jsonschema.ValidationError, match="wieght"):
        jsonschema.validate(broken, schema)


def test_the_rollout_command_reports_and_refuses_in_one_line(
    released: tuple[Any, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, tags = released
    args = ["--config", str(config.root / "workbench.yaml")]
    assert main(["rollout", "advance", config.name, *args]) == 2
    assert "no rollout of" in capsys.readouterr().err
    assert main(["serve", config.name, "--share", "0.2", *args]) == 2
    assert "--canary" in capsys.readouterr().err
    start_rollout(config, tags["v2"], share=0.1)
    assert main(["rollout", "advance", config.name, "--share", "0.3", *args]) == 0
    out = capsys.readouterr().out
    assert "advance  0.1 -> 0.3" in out and ROLLOUT_MANIFEST_FILE in out
    assert main(["rollout", "status", config.name, *args]) == 0
    assert "rollout of" in capsys.readouterr().out
    assert main(["rollout", "abort", config.name, "--share", "0.3", *args]) == 2


def test_arms_by_key_are_sticky_and_a_higher_share_only_moves_keys_to_the_challenger() -> None:
    keys = [f"customer-{i}".encode() for i in range(2000)]
    low = {k: arm_for(k, 0.1) for k in keys}
    high = {k: arm_for(k, 0.5) for k in keys}
    assert all(arm_for(k, 0.1) == low[k] for k in keys)
    assert all(high[k] == "challenger" for k in keys if low[k] == "challenger")
    assert within_binomial(sum(a == "challenger" for a in low.values()), len(keys), 0.1)
    assert all(0 <= key_point(k) < 1 for k in keys[:10])


def send(
    url: str, key: str, rows: list[dict[str, Any]], *, count: int, sticky: list[str] | None = None
) -> list[httpx.Response]:
    """``count`` one-row predictions on 8 threads (a bounded load on loopback)."""
    headers = {"Authorization": f"Bearer {key}"}

    def one(i: int) -> httpx.Response:
        extra = {"X-Workbench-Key": sticky[i % len(sticky)]} if sticky else {}
        return httpx.post(
            f"{url}/predict",
            json={"rows": [rows[i % len(rows)]]},
            headers={**headers, **extra},
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, range(count)))
    assert all(a.status_code == 200 for a in answers), {a.status_code for a in answers}
    return answers


def wait_for_share(url: str, share: float) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/rollout").json()["share"] != share:
        assert time.monotonic() < deadline, "the router did not follow the rollout file"
        time.sleep(0.1)


@pytest.mark.serve
def test_a_real_split_under_load(released: tuple[Any, dict[str, str]]) -> None:
    """400 requests at share 0.25 (within 4.5 sd of 100), sticky keys, the version header,
    per-arm request ids, feedback, /monitor and /metrics; then advance to 0.75 and abort, both
    followed without a restart; every process stopped at the end."""
    config, tags = released
    test = pd.read_csv(config.test_path)
    rows = test.drop(columns="target").to_dict(orient="records")
    canary, _ = serve_rollout(config, tags["v2"], share=0.25, reason="canary test")
    pids = [
        p.pid
        for s in canary.servers
        for p in [psutil.Process(s.pid), *psutil.Process(s.pid).children(True)]
    ]
    try:
        answers = send(canary.url, canary.api_key, rows, count=400)
        arms = Counter(a.headers["x-workbench-arm"] for a in answers)
        assert within_binomial(arms["challenger"], 400, 0.25), arms
        for answer in answers:
            arm = answer.headers["x-workbench-arm"]
            assert answer.headers["x-workbench-version"] == tags["v1" if arm == "primary" else "v2"]
            assert answer.headers["x-request-id"].startswith(f"{arm}.")
        keys = [f"user-{i}" for i in range(20)]
        sticky = send(canary.url, canary.api_key, rows, count=100, sticky=keys)
        for i, answer in enumerate(sticky):
            assert answer.headers["x-workbench-arm"] == arm_for(keys[i % 20].encode(), 0.25)
        check_each_arm(canary, answers + sticky, test)
        advance_rollout(config, share=0.75)
        wait_for_share(canary.url, 0.75)
        moved = Counter(
            a.headers["x-workbench-arm"] for a in send(canary.url, canary.api_key, rows, count=200)
        )
        assert within_binomial(moved["challenger"], 200, 0.75), moved
        abort_rollout(config, reason="done")
        wait_for_share(canary.url, 0.0)
        ended = send(canary.url, canary.api_key, rows, count=40)
        assert {a.headers["x-workbench-arm"] for a in ended} == {"primary"}
    finally:
        canary.stop()
    assert not [
        pid
        for pid in pids
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]


def check_each_arm(canary: Any, answers: list[httpx.Response], test: pd.DataFrame) -> None:
    """Feedback reaches the arm that answered; /monitor and /metrics count each arm apart."""
    key = {"Authorization": f"Bearer {canary.api_key}"}
    arms = Counter(a.headers["x-workbench-arm"] for a in answers)
    versions = {a.headers["x-workbench-arm"]: a.headers["x-workbench-version"] for a in answers}
    items = [
        {"request_id": a.headers["x-request-id"], "label": int(test["target"].iloc[0])}
        for a in answers[:60]
    ]
    given = httpx.post(
        f"{canary.url}/feedback",
        json={"feedback": [*items, {"request_id": "elsewhere.1", "label": 0}]},
        headers=key,
    ).json()
    assert (given["applied"], given["unknown"]) == (60, 1)
    bad = httpx.post(
        f"{canary.url}/feedback", json={"feedback": [{**items[0], "label": "x"}]}, headers=key
    )
    assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["feedback", 0]
    assert httpx.get(f"{canary.url}/monitor").status_code == 401
    report = httpx.get(f"{canary.url}/monitor", headers=key, timeout=30).json()
    first = Counter(a.headers["x-workbench-arm"] for a in answers[:60])
    for arm in ("primary", "challenger"):
        figures = report["arms"][arm]
        assert figures["requests"] == arms[arm]
        assert figures["report"]["window"]["rows"] == arms[arm]
        assert figures["report"]["feedback"]["applied"] == first[arm]
        assert "predictions" in figures["report"] and "metrics" in figures["report"]
    metrics = httpx.get(f"{canary.url}/metrics", headers=key).text  # the window's gauges: keyed
    counted: Counter[str] = Counter()
    windows: Counter[str] = Counter()
    timed: Counter[str] = Counter()
    for family in text_string_to_metric_families(metrics):
        assert not family.name.startswith("bentoml_"), family.name  # mixed across the arms
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "workbench_rollout_requests_total" and labels["path"] == "/predict":
                counted[labels["arm"]] += int(sample.value)
            if sample.name == "workbench_rollout_request_duration_seconds_count":
                timed[labels["arm"]] += int(sample.value)
            if sample.name == "workbench_monitor_window_rows":  # each arm's own gauge
                assert labels["version"] == versions[labels["arm"]]
                windows[labels["arm"]] += int(sample.value)
    assert counted == windows == arms
    assert timed["primary"] >= arms["primary"] and timed["challenger"] >= arms["challenger"]


@pytest.mark.serve
def test_the_launch_panels_canary_control_starts_and_stops_a_rollout(
    released: tuple[Any, dict[str, str]],
) -> None:
    """A bad version is one line in the panel and starts nothing; a good one serves the canary
    (its endpoint shown) until Stop canary stops all three servers."""
    from workbench.widgets import LaunchPanel

    config, tags = released
    panel = LaunchPanel(config)
    try:
        panel.canary.version.value = "ffffffff"
        panel.canary.start_button.click()
        assert "ffffffff" in panel.status.value and not panel.canary.running
        panel.canary.version.value = tags["v2"].split(":")[1]
        panel.canary.share.value = 0.5
        panel.canary.start_button.click()
        assert panel.canary.running, panel.status.value
        canary = panel.canary.canary
        assert canary is not None and canary.url in panel.canary.state.value
        assert panel.canary.start_button.disabled and not panel.canary.stop_button.disabled
        assert canary.state()["share"] == 0.5
        panel.canary.stop_button.click()
        assert not canary.running and not panel.canary.running
    finally:
        if panel.canary.canary is not None:
            panel.canary.canary.stop()
        panel.close()
