"""Versions: the list, promotion with its gate and audit trail, rollback, compare, the panel.

Two real versions of one model are packaged once per session (``two_versions`` in conftest: the
example model and a more regularised refit with a lower ROC-AUC); each test gets its own project
folder, so its own promotion history, over the same BentoML store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import bentoml
import pytest
import yaml
from conftest import copy_release_project, edit_config

from workbench.cli import main
from workbench.config import load_config
from workbench.errors import ConfigError, GateFailure, VersionError
from workbench.promotions import history_path, read_history, release_dir
from workbench.runtime.card import ModelCard
from workbench.schema import Column, InputSchema
from workbench.versions import compare_versions, list_versions, promote, rollback
from workbench.versions.compare import package_changes, schema_changes


@pytest.fixture
def release(two_versions: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """A fresh project folder over the two packaged versions: (folder, v1 tag, v2 tag)."""
    folder = copy_release_project(two_versions, tmp_path / "project")
    tags = json.loads((folder / "versions.json").read_text())
    return folder, tags["v1"], tags["v2"]


def _store() -> tuple[list[str], list[str]]:
    return (
        sorted(str(b.tag) for b in bentoml.bentos.list()),
        sorted(str(m.tag) for m in bentoml.models.list()),
    )


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_versions_lists_both_with_origin_metrics_and_the_promoted_marker(release, capsys):
    """`workbench versions NAME` shows every packaged version, newest first, where it came from
    (the notebook session's record), its headline metrics and gates, and marks the promoted one."""
    folder, v1, v2 = release
    config = load_config(folder / "workbench.yaml")
    listed = list_versions(folder, config.name)
    assert [v.tag for v in listed.versions] == [v2, v1]
    newest = listed.versions[0]
    assert newest.run == ".workbench" and newest.passed and newest.size_bytes > 10_000
    assert newest.runtime in ("onnx", "sklearn") and newest.metrics["roc_auc"] is not None
    assert listed.promoted is None and not any(v.promoted for v in listed.versions)

    promote(config, v1, reason="first release")
    code, out, _ = _cli(capsys, "versions", config.name, "--config", str(folder / "workbench.yaml"))
    assert code == 0
    marked = [line for line in out.splitlines() if line.startswith("* ")]
    assert len(marked) == 1 and v1 in marked[0] and "pass" in marked[0] and "roc_auc" in marked[0]
    assert f"promoted: {v1}" in out


def test_promotion_writes_the_pointer_the_history_and_the_promoted_manifest(release):
    """A promotion moves the pointer, appends who/when/why with the gate verdicts, and puts the
    promoted Bento's own Kubernetes manifest beside it; a comment written by hand survives the
    next change (round-trip YAML)."""
    folder, v1, v2 = release
    config = load_config(folder / "workbench.yaml")
    done = promote(config, v1, reason="first release", by="alice")
    assert done.previous is None and done.version == v1
    history = read_history(folder, config.name)
    assert history.promoted == v1 and history.history[0].by == "alice"
    assert history.history[0].reason == "first release" and not history.history[0].forced
    assert any(line.startswith("champion PASS") for line in history.history[0].gates)
    manifest = (release_dir(folder, config.name) / "kubernetes.yaml").read_text()
    bento = Path(str(bentoml.bentos.get(v1).path))
    assert manifest == (bento / "src/deploy/kubernetes.yaml").read_text()
    assert f"image: {v1}" in manifest

    path = history_path(folder, config.name)
    path.write_text(path.read_text() + "# reviewed by bob in PR 12\n")
    promote(config, v2, reason="calibration", force=True, by="carol")
    text = path.read_text()
    assert "# reviewed by bob in PR 12" in text
    assert yaml.safe_load(text)["promoted"] == v2
    assert f"image: {v2}" in (release_dir(folder, config.name) / "kubernetes.yaml").read_text()


def test_a_worse_version_is_refused_and_nothing_changes(release, capsys):
    """The champion gate (no worse than the promoted version, both re-scored on the test data)
    refuses v2 after v1: exit 1 naming the gate, the history file and the store untouched."""
    folder, v1, v2 = release
    config = load_config(folder / "workbench.yaml")
    promote(config, v1, reason="first release")
    before, store = history_path(folder, config.name).read_bytes(), _store()
    with pytest.raises(GateFailure) as refused:
        promote(config, v2, reason="try")
    assert refused.value.failed == ["champion"]
    code, _, err = _cli(
        capsys, "promote", v2, "--reason", "try", "--config", str(folder / "workbench.yaml")
    )
    assert code == 1
    assert f"error: {v2} cannot be promoted: 1 gate(s) failed" in err
    assert "champion FAIL" in err and "--force" in err
    assert history_path(folder, config.name).read_bytes() == before
    assert _store() == store


def test_forcing_records_the_reason_and_the_failed_gate(release):
    """--force promotes despite the failed champion gate and says so in the history."""
    folder, v1, v2 = release
    config = load_config(folder / "workbench.yaml")
    promote(config, v1, reason="first release")
    done = promote(config, v2, reason="business asked for recall", force=True)
    assert done.forced and [g.metric for g in done.gates if not g.passed] == ["champion"]
    last = read_history(folder, config.name).history[-1]
    assert last.forced and last.reason == "business asked for recall"
    assert any(line.startswith("champion FAIL") for line in last.gates)


def test_a_version_whose_gates_fail_on_the_test_data_is_refused(release):
    """Gates raised since packaging are checked on the re-scored metrics: a version that no
    longer meets them cannot be promoted (even as the first promotion)."""
    folder, v1, _ = release
    edit_config(folder, gates={"roc_auc": {"min": 0.999}})
    config = load_config(folder / "workbench.yaml")
    with pytest.raises(GateFailure, match=r"roc_auc FAIL 0\.99\d+ \(needs >= 0\.999\)") as refused:
        promote(config, v1, reason="release")
    assert refused.value.failed == ["roc_auc"]
    assert not history_path(folder, config.name).exists()


def test_rollback_steps_back_through_the_promotions_and_stops_at_the_first(release, capsys):
    """Rollback returns to the version promoted before the current one; with none earlier it is
    one clear message (exit 2), also when nothing was ever promoted."""
    folder, v1, v2 = release
    config = load_config(folder / "workbench.yaml")
    cfg = str(folder / "workbench.yaml")
    code, _, err = _cli(capsys, "rollback", config.name, "--config", cfg)
    assert code == 2 and "no earlier promoted version" in err and "nothing is promoted" in err
    promote(config, v1, reason="first")
    promote(config, v2, reason="second", force=True)
    done = rollback(config, reason="latency regression")
    assert done.version == v1 and done.previous == v2
    history = read_history(folder, config.name)
    assert history.promoted == v1 and history.history[-1].action == "rollback"
    assert f"image: {v1}" in (release_dir(folder, config.name) / "kubernetes.yaml").read_text()
    code, _, err = _cli(capsys, "rollback", config.name, "--config", cfg)
    assert code == 2
    assert err.strip() == (
        f"error: {config.name!r} has no earlier promoted version to roll back to ({v1} is "
        f"promoted and no version was before it); promote a version with `workbench promote "
        f"{config.name}:VERSION --reason ...`"
    )


def test_unknown_version_is_one_message_naming_the_known_ones(release, capsys):
    """An unknown version names the tag, the versions there are and what to run."""
    folder, v1, _ = release
    config = load_config(folder / "workbench.yaml")
    with pytest.raises(VersionError, match="unknown version") as unknown:
        promote(config, f"{config.name}:0000000000000000", reason="x")
    assert v1.split(":")[1] in str(unknown.value) and "workbench versions" in str(unknown.value)
    code, _, err = _cli(
        capsys, "compare", v1, f"{config.name}:ffff", "--config", str(folder / "workbench.yaml")
    )
    assert code == 2 and err.startswith(f"error: unknown version '{config.name}:ffff'")


def test_a_failed_write_leaves_the_history_and_the_manifest_as_they_were(release):
    """When the promoted manifest cannot be written (a folder is in its way), the promotion
    fails with one message and the history file is byte-for-byte what it was."""
    folder, v1, v2 = release
    config = load_config(folder / "workbench.yaml")
    promote(config, v1, reason="first")
    path = history_path(folder, config.name)
    before = path.read_bytes()
    manifest = release_dir(folder, config.name) / "kubernetes.yaml"
    manifest.unlink()
    (manifest / "blocked").mkdir(parents=True)
    with pytest.raises(VersionError, match="could not write .*nothing was changed"):
        promote(config, v2, reason="second", force=True)
    assert path.read_bytes() == before
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers


def test_a_damaged_history_file_is_refused_not_overwritten(release):
    """A history file that is not valid YAML stops the promotion and is left for a person."""
    folder, v1, _ = release
    config = load_config(folder / "workbench.yaml")
    path = history_path(folder, config.name)
    path.parent.mkdir(parents=True)
    path.write_text("promoted: [unclosed\n")
    with pytest.raises(VersionError, match="not valid YAML.*restore it from git"):
        promote(config, v1, reason="first")
    assert path.read_text() == "promoted: [unclosed\n"


def test_compare_rescores_both_on_the_same_rows_not_the_cards(release, capsys):
    """`compare` scores both versions on the project's test data now (here half the original
    rows, so the values differ from the cards'), shows deltas, agreement and writes the report."""
    folder, v1, v2 = release
    test = folder / "data" / "test.csv"
    lines = test.read_text().splitlines()
    test.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    config = load_config(folder / "workbench.yaml")
    result = compare_versions(config, v1, v2)
    assert result.rows == len(lines) // 2 - 1
    card = json.loads((Path(str(bentoml.bentos.get(v1).path)) / "src/model_card.json").read_text())
    assert result.metrics_a["accuracy"] != card["metrics"]["accuracy"]
    assert result.metrics_b["roc_auc"] < result.metrics_a["roc_auc"]
    assert 0.8 < result.agreement < 1.0
    assert result.schema_changes == [] and result.package_changes == []
    assert len(result.confusion_a) == 2 and sum(map(sum, result.confusion_b)) == result.rows

    out_dir = folder / "report"
    code, out, _ = _cli(
        capsys, "compare", v1, v2, "--config", str(folder / "workbench.yaml"), "--out", str(out_dir)
    )
    assert code == 0 and "roc_auc" in out and "same prediction on" in out
    page = (out_dir / "compare.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64" in page
    assert json.loads((out_dir / "compare.json").read_text())["a"] == v1


def test_versions_of_different_models_are_not_compared(release, packaged, capsys):
    """Two versions of different models: one message naming both."""
    folder, v1, _ = release
    other = json.loads((packaged / ".workbench" / "package.json").read_text())["bento_tag"]
    code, _, err = _cli(capsys, "compare", v1, other, "--config", str(folder / "workbench.yaml"))
    assert code == 2
    assert f"error: {v1} and {other} are versions of different models" in err


def test_schema_and_package_differences_are_named():
    """The schema diff names added, removed and retyped columns and categories gained or lost;
    the package diff names versions changed, added and removed."""
    a = InputSchema(
        columns=[
            Column(name="age", kind="integer", dtype="int64", nullable=False),
            Column(
                name="city",
                kind="category",
                dtype="object",
                nullable=False,
                categories=["Oslo", "Rome"],
            ),
            Column(name="old", kind="number", dtype="float64", nullable=False),
        ]
    )
    b = InputSchema(
        columns=[
            Column(name="age", kind="number", dtype="float64", nullable=True),
            Column(
                name="city",
                kind="category",
                dtype="object",
                nullable=False,
                categories=["Oslo", "Paris"],
            ),
            Column(name="new", kind="boolean", dtype="bool", nullable=False),
        ]
    )
    changes = {(c.column, c.change): c.detail for c in schema_changes(a, b)}
    assert changes == {
        ("old", "removed"): "number (float64)",
        ("new", "added"): "boolean (bool)",
        ("age", "retyped"): "integer (int64) -> number (float64)",
        ("age", "nullable"): "now nullable",
        ("city", "categories"): "gained ['Paris']; lost ['Rome']",
    }
    assert package_changes(
        ModelCard(packages=["numpy==2.1.0", "scipy==1.0"]),
        ModelCard(packages=["numpy==2.2.0", "onnxruntime==1.20"]),
    ) == ["- scipy==1.0", "+ onnxruntime==1.20", "numpy 2.1.0 -> 2.2.0"]


def test_shadow_and_launch_options_are_validated(project):
    """A `shadow:` gate out of range and an unknown `launch.version` are config errors naming
    the field."""
    edit_config(project, shadow={"min_agreement": 1.5})
    with pytest.raises(ConfigError, match=r"field `shadow\.min_agreement`.*1\.5"):
        load_config(project / "workbench.yaml")
    edit_config(project, shadow={"min_agreement": 0.9}, launch={"version": "latest"})
    with pytest.raises(ConfigError, match=r"field `launch\.version`.*'latest'"):
        load_config(project / "workbench.yaml")


def test_the_panel_promotes_and_rolls_back_with_one_click_each(release):
    """The versions panel lists the versions, promotes the chosen one, and shows a refused
    rollback in its status line instead of raising."""
    from workbench.widgets import VersionsPanel

    folder, v1, v2 = release
    panel = VersionsPanel(load_config(folder / "workbench.yaml"))
    assert (
        list(panel.choice.options) == [v2, v1] and "wb-versions-table" in panel.table._dom_classes
    )
    panel.choice.value = v1
    panel.reason.value = "first release"
    panel.promote_button.click()
    assert "promoted" in panel.status.value and panel.versions.promoted == v1
    assert "wb-promoted" in panel.table.value
    panel.rollback_button.click()
    assert "wb-error" in panel.status.value and "no earlier promoted version" in panel.status.value
    panel.choice.value = v2
    panel.compare_button.click()
    assert panel.comparison is not None and panel.comparison.a == v1
    assert os.path.exists(history_path(folder, panel.config.name))


def test_the_validate_stage_compares_with_the_promoted_version(release):
    """Once a version is promoted, the champion a new candidate is validated against is the
    promoted version's model, not merely the one packaged last."""
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from workbench import validate

    folder, v1, _ = release
    train = pd.read_csv(folder / "data" / "train.csv")
    candidate = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    candidate.fit(train.drop(columns="target"), train["target"])
    joblib.dump(candidate, folder / "models" / "model.joblib")
    config = load_config(folder / "workbench.yaml")
    promote(config, v1, reason="first release")
    champion = validate(config).champion
    card = json.loads((Path(str(bentoml.bentos.get(v1).path)) / "src/model_card.json").read_text())
    assert champion is not None and champion.tag == card["model_tag"]
    assert champion.note == f"the promoted version {v1}" and champion.metrics["roc_auc"]


@pytest.mark.e2e
def test_the_versions_notebook_promotes_headless_and_stops_on_a_failed_gate(release):
    """05_versions.ipynb under papermill (a real kernel, interactive=False) promotes the version
    given as a parameter; a version the champion gate refuses fails the cell with GateFailure.
    The two shipped copies of the notebook are the same."""
    import shutil

    import papermill
    from papermill.exceptions import PapermillExecutionError

    from workbench.pipeline.run import own_kernel

    repo = Path(__file__).resolve().parents[1]
    book = repo / "notebooks" / "05_versions.ipynb"
    assert book.read_bytes() == (repo / "workbench" / "notebooks" / book.name).read_bytes()
    folder, v1, v2 = release
    (folder / "notebooks").mkdir()
    shutil.copy(book, folder / "notebooks" / book.name)
    config = load_config(folder / "workbench.yaml")

    def execute(version: str) -> Path:
        out = folder / f"executed-{version.split(':')[1]}.ipynb"
        papermill.execute_notebook(
            str(folder / "notebooks" / book.name),
            str(out),
            parameters={"interactive": False, "promote": version, "reason": "from CI"},
            kernel_name=kernel,
            cwd=str(folder / "notebooks"),
            progress_bar=False,
        )
        return out

    with own_kernel() as kernel:
        executed = execute(v1)
        assert read_history(folder, config.name).promoted == v1
        assert "wb-versions-table" in executed.read_text()
        with pytest.raises(PapermillExecutionError) as failed:
            execute(v2)
    assert failed.value.ename == "GateFailure" and "champion FAIL" in failed.value.evalue
    assert read_history(folder, config.name).promoted == v1


def test_a_promotion_checked_against_a_pointer_that_moved_meanwhile_is_refused(tmp_path):
    """Two promotions checked at the same time: the second finds the pointer moved since it
    read it and is refused instead of silently replacing the first."""
    from workbench.promotions import Promotion, record_change

    def change(version: str, previous: str | None) -> Promotion:
        return Promotion(
            action="promote", version=version, previous=previous, at="t", by="me", reason="r"
        )

    record_change(tmp_path, "m", change("m:a", None), manifest=None)
    before = history_path(tmp_path, "m").read_bytes()
    with pytest.raises(VersionError, match=r"changed to m:a while this promote was checked"):
        record_change(tmp_path, "m", change("m:b", None), manifest=None)
    assert history_path(tmp_path, "m").read_bytes() == before
    assert read_history(tmp_path, "m").lineage == ["m:a"]


def test_a_promotion_waits_for_one_that_holds_the_lock_and_says_so_when_it_cannot(
    tmp_path, monkeypatch
):
    """Another process holds the model's promotion lock (a promotion in another terminal): this
    one waits for it, then gives up with one message naming the lock and changes nothing; once
    the lock is let go, the same promotion is recorded."""
    import subprocess
    import sys

    from workbench import promotions
    from workbench.promotions import LOCK_FILE, Promotion, record_change

    change = Promotion(action="promote", version="m:a", at="t", by="me", reason="r")
    lock = release_dir(tmp_path, "m") / LOCK_FILE
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from filelock import FileLock; lock = FileLock(sys.argv[1]); "
            "lock.acquire(); print('held', flush=True); sys.stdin.read()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        monkeypatch.setattr(promotions, "LOCK_WAIT_S", 0.5)
        with pytest.raises(VersionError, match=r"another promotion or rollback of 'm' has held"):
            record_change(tmp_path, "m", change, manifest=None)
        assert not history_path(tmp_path, "m").exists()
    finally:
        holder.communicate("", timeout=30)  # end of stdin: it lets go and exits
    record_change(tmp_path, "m", change, manifest=None)
    assert read_history(tmp_path, "m").lineage == ["m:a"]
