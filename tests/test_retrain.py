"""Retraining: a challenger fitted on the project's rows and new labelled rows, validated,
packaged, shadowed on real `bentoml serve` processes against the promoted version and promoted
only if every gate holds (real stages, the session's BentoML store, a real kernel for
``workbench retrain``).

The example's ``data/drifted.csv`` holds true labels for measurements read 15 % high: the
promoted model loses accuracy on them, and a retrain that includes them recovers it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import copy_project, edit_config, static_copy

from workbench.cli import main
from workbench.config import load_config
from workbench.errors import ModelError
from workbench.pipeline import verify
from workbench.promotions import history_path, read_history
from workbench.retraining import check_retrain, retrain
from workbench.retraining.capture import read_capture
from workbench.retraining.rows import split_mask
from workbench.retraining.training import seeded_clone
from workbench.runtime.settings import CAPTURE_DIR_ENV

WEAK_SCRIPT = """
from sklearn.tree import DecisionTreeClassifier


def train(X, y, seed):
    return DecisionTreeClassifier(max_depth=1, random_state=seed).fit(X, y)
"""
FAILING_SCRIPT = """
def train(X, y):
    raise ValueError(f"no column called {'mean radiance'!r}")
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def promoted(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> Path:
    """The example validated, packaged and promoted (its first release), with the shadow gate a
    retrain must pass: the challenger no worse than the champion on the replayed rows. Tests
    copy it (:func:`release_copy`)."""
    from workbench import package, promote, validate

    folder = copy_project(example_files, tmp_path_factory.mktemp("promoted"))
    edit_config(
        folder,
        validation={"cv_folds": 0, "importance_top": 0},
        shadow={"min_advantage": 0.0},
    )
    config = load_config(folder / "workbench.yaml")
    validate(config)
    promote(config, package(config).bento_tag, reason="first release")
    return folder


def release_copy(source: Path, dest: Path) -> Path:
    """The promoted project's config, model, data, notebooks and release history (same name:
    the same versions in the store)."""
    for sub in ("models", "data", "notebooks"):
        shutil.copytree(source / sub, dest / sub)
    shutil.copy(source / "workbench.yaml", dest / "workbench.yaml")
    name = load_config(source / "workbench.yaml").name
    shutil.copytree(source / "bentos" / name / "release", dest / "bentos" / name / "release")
    return dest


@pytest.fixture
def project(promoted: Path, tmp_path: Path) -> Path:
    return release_copy(promoted, tmp_path / "project")


def retrain_drifted(project: Path, run: Path) -> int:
    """`workbench retrain --data data/drifted.csv --out RUN` on ``project``: its exit code."""
    config, drifted = project / "workbench.yaml", project / "data" / "drifted.csv"
    return main(["retrain", "--config", str(config), "--data", str(drifted), "--out", str(run)])


@pytest.fixture(scope="module")
def retrained(promoted: Path, tmp_path_factory: pytest.TempPathFactory):
    """`workbench retrain --data data/drifted.csv` on a copy of the promoted project: (the
    project, the exit code, what it printed, the workbench.yaml bytes before)."""
    import contextlib
    import io

    folder = release_copy(promoted, tmp_path_factory.mktemp("retrained") / "project")
    config_bytes = (folder / "workbench.yaml").read_bytes()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = retrain_drifted(folder, folder / "run")
    return folder, code, out.getvalue() + err.getvalue(), config_bytes


def accuracy(model: object, frame: pd.DataFrame) -> float:
    X, y = frame.drop(columns="target"), frame["target"]
    return float(np.mean(model.predict(X) == y.to_numpy()))  # type: ignore[attr-defined]


@pytest.mark.serve
@pytest.mark.e2e
def test_a_retrain_on_drifted_labelled_rows_promotes_a_model_that_wins(retrained):
    """`workbench retrain` executes 07_retrain.ipynb under papermill: the drifted rows are split
    by the seed, the clone fitted on the training rows plus their training part recovers the
    accuracy the promoted model lost on their held-out part (and keeps it on the project's test
    rows), validation, packaging, the shadow (min_advantage) and the gated promotion pass, and
    the pointer moves. The run folder holds each step's record, the executed notebook and its
    report, and a manifest naming the new rows by sha256 that `verify` confirms;
    workbench.yaml is untouched and the model file lands in models/ under its hash."""
    folder, code, printed, config_bytes = retrained
    assert code == 0, printed
    run = folder / "run"
    result = json.loads((run / "retrain.json").read_text())
    assert result["outcome"] == "promoted" and result["refused_by"] == []
    assert [s["status"] for s in result["steps"]] == ["passed"] * 6
    rows = result["new_rows"]
    assert rows["sha256"] == sha256(folder / "data" / "drifted.csv")
    assert rows["rows"] == 1000 and rows["train_rows"] + rows["test_rows"] == 1000
    assert rows["train_sha256"] == sha256(run / "data" / "new-train.csv")
    assert rows["test_sha256"] == sha256(run / "data" / "new-test.csv")
    assert result["model"]["how"] == "clone" and result["model"]["seeded"]

    held_out = pd.read_csv(run / "data" / "new-test.csv")
    champion = joblib.load(folder / "models" / "model.joblib")
    challenger = joblib.load(result["model_out"])
    assert Path(result["model_out"]).name.startswith(f"{result['name']}-retrained-")
    assert sha256(Path(result["model_out"])) == result["model"]["sha256"]
    assert accuracy(champion, held_out) < 0.85 < 0.93 < accuracy(challenger, held_out)
    assert accuracy(challenger, pd.read_csv(folder / "data" / "test.csv")) >= 0.93

    shadowed = json.loads((run / "shadow.json").read_text())
    assert shadowed["replay"] == str(run / "data" / "new-test.csv")
    assert [g["name"] for g in shadowed["gates"]] == ["min_advantage (roc_auc)"]
    assert (
        shadowed["metrics"]["challenger"]["accuracy"] > shadowed["metrics"]["champion"]["accuracy"]
    )
    history = read_history(folder, result["name"])
    assert (
        history.promoted
        == result["bento_tag"]
        == json.loads((run / "promotion.json").read_text())["version"]
    )
    assert "retrain run" in history.history[-1].reason and rows["sha256"][:12] in (
        history.history[-1].reason
    )

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "passed" and manifest["bento_tag"] == result["bento_tag"]
    assert manifest["sha256"]["new rows drifted.csv"] == rows["sha256"]
    assert manifest["retrain"]["new_rows"]["train_sha256"] == rows["train_sha256"]
    assert manifest["config"]["model"] == "run/model.joblib"
    assert manifest["config"]["gates"]["champion"] == {"min": 0.0, "max": None}
    assert verify(run).ok
    assert "Retrain of" in (run / "07_retrain.html").read_text()
    assert "Retrain of" in static_copy(run / "07_retrain.ipynb")  # in any viewer
    assert (folder / "workbench.yaml").read_bytes() == config_bytes
    assert "retrain of " in printed and "promote   passed" in printed


@pytest.mark.serve
def test_the_retrained_version_is_vouched_for_by_the_records_the_retrain_wrote(
    retrained, tmp_path: Path, capsys
):
    """The retrain records its challenger as `workbench run` does: the package ledger names its
    Bento, so does the promotion's history entry, and the run's manifest vouches for it on its
    own (a project holding only that manifest under runs/). So the commands that check a
    version against the project's records first (`workbench compare`, `workbench score
    --config`) accept the retrained version."""
    from workbench.integrity import anchors, verify_bento

    folder, code, printed, _ = retrained
    assert code == 0, printed
    result = json.loads((folder / "run" / "retrain.json").read_text())
    tag, name = result["bento_tag"], result["name"]
    sources = {a.source for a in anchors(folder, name) if a.bento_tag == tag}
    assert sources == {".workbench/ledger.json", f"bentos/{name}/release/promotions.yaml"}
    alone = tmp_path / "alone" / "runs" / "retrain-1"
    alone.mkdir(parents=True)
    shutil.copy(folder / "run" / "manifest.json", alone / "manifest.json")
    assert verify_bento(alone.parent.parent, tag).model_tag == result["model_tag"]
    config = str(folder / "workbench.yaml")
    compare = ["compare", result["champion"], tag, "--out", str(tmp_path / "compare")]
    assert main([*compare, "--config", config]) == 0, capsys.readouterr().err
    test_csv = str(folder / "data" / "test.csv")
    scored = ["score", tag, test_csv, "--out", str(tmp_path / "scored.parquet")]
    assert main([*scored, "--config", config]) == 0, capsys.readouterr().err
    assert len(pd.read_parquet(tmp_path / "scored.parquet")) == 143


@pytest.mark.serve
def test_two_retrains_with_the_same_inputs_give_the_same_model_and_bento(retrained, project):
    """A second retrain of the same promoted version with the same rows and seed, in another
    folder and process state, fits the same model bytes and builds the same Bento version; a
    different seed draws a different split."""
    first = json.loads((retrained[0] / "run" / "retrain.json").read_text())
    config = load_config(project / "workbench.yaml")
    drifted = project / "data" / "drifted.csv"
    again = retrain(config, data=drifted, run_dir=project / "again")
    assert again.outcome == "promoted"
    assert again.model.sha256 == first["model"]["sha256"]
    assert again.data_sha256 == first["data_sha256"]
    assert (again.bento_tag, again.model_tag) == (first["bento_tag"], first["model_tag"])
    other = check_retrain(config, data=drifted, seed=1)
    assert other.sha256 == again.new_rows.sha256
    assert other.train_sha256 != again.new_rows.train_sha256


@pytest.mark.e2e
def test_a_retrain_that_loses_a_gate_promotes_nothing(project):
    """A training script whose model is a one-split tree fails the metric gates and the champion
    gate at validation: `workbench retrain` exits 1 naming them, nothing is packaged or
    promoted, promotions.yaml keeps its bytes and no model file is added to models/."""
    (project / "train.py").write_text(WEAK_SCRIPT)
    edit_config(project, retrain={"script": "train.py"})
    config = load_config(project / "workbench.yaml")
    history = history_path(project, config.name).read_bytes()
    models = sorted(p.name for p in (project / "models").iterdir())
    run = project / "run"
    code = retrain_drifted(project, run)
    assert code == 1
    result = json.loads((run / "retrain.json").read_text())
    assert result["outcome"] == "refused"
    assert {"validate: roc_auc", "validate: accuracy", "validate: champion"} <= set(
        result["refused_by"]
    )
    assert [s["status"] for s in result["steps"]] == ["passed", "passed", "failed"] + [
        "skipped"
    ] * 3
    assert result["model"]["how"] == "script"
    assert result["model"]["script_sha256"] == sha256(project / "train.py")
    assert result["bento_tag"] is None and not (run / "package.json").exists()
    assert history_path(project, config.name).read_bytes() == history
    assert sorted(p.name for p in (project / "models").iterdir()) == models
    assert json.loads((run / "manifest.json").read_text())["status"] == "gate-failed"


def test_a_training_script_that_fails_is_one_line_and_its_traceback_is_in_the_log(project, capsys):
    """The script's exception is one line at the command line (exit 2) naming the script, the
    error and the log; the log holds the traceback; nothing is promoted."""
    (project / "train.py").write_text(FAILING_SCRIPT)
    edit_config(project, retrain={"script": "train.py"})
    history = history_path(project, load_config(project / "workbench.yaml").name).read_bytes()
    run = project / "run"
    code = retrain_drifted(project, run)
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert (
        "ModelError: the training script train.py failed (ValueError: no column called"
        in (lines[0])
    )
    assert f"the traceback is in {run / 'retrain.log'}" in lines[0]
    log = (run / "retrain.log").read_text()
    assert "Traceback (most recent call last)" in log and 'train.py", line 3, in train' in log
    assert history_path(project, load_config(project / "workbench.yaml").name).read_bytes() == (
        history
    )


def _drifted(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "data" / "drifted.csv")


BAD_ROWS = {
    "other columns": (
        lambda f: f.drop(columns=["mean radius"]).assign(session_id=1),
        "their columns are not the training data's (missing ['mean radius']; unknown "
        "['session_id'])",
    ),
    "unknown classes": (
        lambda f: f.assign(target=f["target"].where(f.index % 10 != 0, 2)),
        "classes ['2'] in 'target' are not classes of the promoted model (it knows [0, 1])",
    ),
    "too few rows": (
        lambda f: f.drop_duplicates().head(30),
        "30 distinct labelled rows, and a retrain needs at least 50 (`retrain.min_rows`): 30% "
        "of them are held out to test the retrained model, and fewer than 15 test rows",
    ),
    "rows without a label": (
        lambda f: f.assign(target=f["target"].where(f.index % 100 != 0)),
        "10 of 1000 have no label in 'target'",
    ),
    "text where numbers belong": (
        lambda f: f.assign(**{"mean area": f["mean area"].astype(str).where(f.index != 5, "abc")}),
        "column 'mean area' holds 'abc' where the training data holds numbers",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_new_rows_are_one_message_before_anything_is_written(project, capsys, case):
    """New rows with other columns, unknown classes, too few distinct rows (the minimum and
    why), missing labels or text in a numeric column: one message, exit 2, no run folder, no
    kernel started, the history untouched."""
    change, message = BAD_ROWS[case]
    bad = project / "data" / "bad.csv"
    change(_drifted(project)).to_csv(bad, index=False)
    history = history_path(project, load_config(project / "workbench.yaml").name).read_bytes()
    code = main(["retrain", "--config", str(project / "workbench.yaml"), "--data", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("error:") == 1 and message in err, err
    assert not (project / "runs").exists()
    assert history_path(project, load_config(project / "workbench.yaml").name).read_bytes() == (
        history
    )


def test_a_retrain_without_rows_or_a_promoted_version_says_what_to_give(
    project, capsys, monkeypatch
):
    """No --data and no capture folder; a project with nothing promoted: one message each."""
    monkeypatch.delenv(CAPTURE_DIR_ENV, raising=False)
    config = str(project / "workbench.yaml")
    assert main(["retrain", "--config", config]) == 2
    assert "no new rows to retrain on: give --data FILE" in capsys.readouterr().err
    history_path(project, load_config(config).name).unlink()
    drifted = str(project / "data" / "drifted.csv")
    assert main(["retrain", "--config", config, "--data", drifted]) == 2
    assert "is promoted" in capsys.readouterr().err


class Unclonable:
    """An estimator whose constructor changes its parameter: clone() refuses it."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = [scale]

    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {"scale": self.scale}

    def set_params(self, **params: object) -> Unclonable:
        return self


def test_a_promoted_version_no_record_vouches_for_is_refused_before_it_is_loaded(project, capsys):
    """The retrain checks the promoted version against the project's records before it loads
    it: with a history entry that records no hashes (as one written before they were) and no
    package ledger, `workbench retrain` exits 2 with one line saying how to vouch for it, and
    makes no run folder."""
    import yaml

    config = load_config(project / "workbench.yaml")
    path = history_path(project, config.name)
    history = yaml.safe_load(path.read_text())
    for entry in history["history"]:
        for key in ("model_tag", "model_sha256", "bento_sha256"):
            entry.pop(key, None)
    path.write_text(yaml.safe_dump(history, sort_keys=False))
    assert not (project / ".workbench").exists()
    code = retrain_drifted(project, project / "run")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert f"Bento {history['promoted']}: no record of the project {project}" in err
    assert not (project / "run").exists()


def test_a_model_that_cannot_be_cloned_is_refused_with_the_way_out():
    """A model clone() refuses is one ModelError (exit 2) naming it and `retrain.script`."""
    with pytest.raises(ModelError) as refused:
        seeded_clone(Unclonable(), 0, tag="m:1")
    assert refused.value.exit_code == 2
    message = str(refused.value)
    assert "the promoted model m:1 (Unclonable) cannot be cloned (RuntimeError:" in message
    assert "name a training script under `retrain.script`" in message


def test_an_unset_random_state_gets_the_seed_and_a_set_one_stays():
    """The clone keeps every hyper-parameter; only an unset random_state takes the seed."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(LogisticRegression(C=0.5), RandomForestClassifier(random_state=7))
    fresh, seeded = seeded_clone(model, 3, tag="m:1")
    params = fresh.get_params()
    assert seeded == ["logisticregression__random_state"]
    assert (
        params["logisticregression__random_state"] == 3 and params["logisticregression__C"] == 0.5
    )
    assert params["randomforestclassifier__random_state"] == 7


def test_the_model_file_depends_on_the_content_not_on_which_strings_are_one_object(tmp_path):
    """Two equal models whose equal strings are one object in one and two in the other pickle to
    different bytes with joblib.dump, and to the same bytes (that joblib loads) with dump_model."""
    import io

    from sklearn.preprocessing import FunctionTransformer

    from workbench.retraining.training import dump_model

    first, second = "category-" + str(1), "category-" + str(1)
    shared = FunctionTransformer(kw_args={"x": first, "y": first})
    apart = FunctionTransformer(kw_args={"x": first, "y": second})

    def joblib_bytes(model: object) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        return buffer.getvalue()

    assert joblib_bytes(shared) != joblib_bytes(apart)
    dump_model(shared, tmp_path / "shared.joblib")
    dump_model(apart, tmp_path / "apart.joblib")
    assert (tmp_path / "shared.joblib").read_bytes() == (tmp_path / "apart.joblib").read_bytes()
    assert joblib.load(tmp_path / "apart.joblib").kw_args == {"x": first, "y": second}


def test_the_split_keeps_identical_rows_together_and_follows_the_seed_not_the_order():
    """Copies of a row are on one side; each class is split; the same rows in another order give
    the same split, another seed another one."""
    rng = np.random.default_rng(0)
    base = pd.DataFrame({"x": rng.normal(size=60), "target": [0] * 40 + [1] * 20})
    frame = base.sample(n=300, replace=True, random_state=1).reset_index(drop=True)

    def held(f: pd.DataFrame, seed: int) -> set[float]:
        keys = pd.util.hash_pandas_object(f, index=False).to_numpy()
        mask = split_mask(f, keys, target="target", share=0.3, seed=seed, by_class=True)
        together = f.assign(held=mask).groupby("x")["held"].nunique()
        assert (together == 1).all(), "a row on both sides"
        assert set(f.loc[mask, "target"]) == {0, 1} and set(f.loc[~mask, "target"]) == {0, 1}
        return set(f.loc[mask, "x"])

    first = held(frame, 0)
    assert held(frame.sample(frac=1, random_state=2), 0) == first
    assert held(frame, 1) != first
    distinct = frame.drop_duplicates()
    assert abs(len(first) - 0.3 * len(distinct)) <= 2


def test_capture_lines_become_labelled_rows_the_first_label_winning(tmp_path: Path):
    """The capture reader: request rows joined to their feedback, the first label winning as in
    the service (a later one the service refused as a conflict never trains: a forger with the
    key cannot relabel what an honest client labelled), unlabelled rows kept as recent traffic,
    unreadable lines counted."""
    lines = [
        {
            "request_id": "a",
            "time": "2026-12-01T00:00:00+00:00",
            "rows": [{"x": 1.0}, {"x": 2.0}],
            "answers": [0, 1],
        },
        {
            "request_id": "b",
            "time": "2026-12-01T00:00:01+00:00",
            "rows": [{"x": 3.0}],
            "answers": [1],
        },
        {"feedback": "a", "row": 1, "label": 1, "time": "2026-12-01T00:00:02+00:00"},
        {
            "feedback": "a",
            "row": 1,
            "label": 0,
            "time": "2026-12-01T00:00:03+00:00",
            "conflict": True,
        },
        {"feedback": "b", "row": 0, "label": 0, "time": "2026-12-01T00:00:03+00:00"},
        {"feedback": "gone", "row": 0, "label": 0, "time": "2026-12-01T00:00:04+00:00"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + '\n{"request_id": "c", "ti\n'
    (tmp_path / "capture-20261201T000000-1-00001.jsonl").write_text(text)
    captured = read_capture(tmp_path, target="y")
    assert captured.labelled.to_dict("records") == [{"x": 2.0, "y": 1}, {"x": 3.0, "y": 0}]
    assert captured.recent["x"].tolist() == [1.0, 2.0, 3.0]
    assert captured.skipped == {
        "request rows without a label": 1,
        "labels for requests no longer captured": 1,
        "unreadable lines": 1,
        "labels the service refused (another label came first)": 1,
    }


@pytest.mark.serve
def test_a_retrain_from_captured_traffic_and_feedback(project, tmp_path, monkeypatch):
    """The promoted Bento served with capture on answers drifted rows and takes their labels as
    feedback (POST /feedback); a retrain from that capture folder learns from those labelled
    rows and shadows the challenger on the captured traffic."""
    from workbench.monitoring.live import replay
    from workbench.serving.server import Server

    capture = tmp_path / "capture"
    monkeypatch.setenv(CAPTURE_DIR_ENV, str(capture))
    config = load_config(project / "workbench.yaml")
    sent = _drifted(project).head(300)
    sent.to_csv(project / "data" / "live.csv", index=False)
    server = Server.start(str(read_history(project, config.name).promoted))
    try:
        replayed = replay(server.url, project / "data" / "live.csv", key=server.api_key, rate=2000)
        assert replayed.feedback == 300
        captured = None
        for _ in range(50):  # the capture is flushed off the request path, once a second
            if any(capture.glob("*.jsonl")):
                captured = read_capture(capture, target="target")
                if len(captured.labelled) == 300:
                    break
            time.sleep(0.2)
    finally:
        server.stop()
    assert captured is not None and len(captured.labelled) == 300
    pd.testing.assert_frame_equal(
        captured.labelled.astype({"target": int}), sent, check_dtype=False
    )
    result = retrain(config, run_dir=project / "run")
    assert result.new_rows.source == "capture" and result.new_rows.rows == 300
    assert result.new_rows.sha256 == sha256(project / "run" / "data" / "new.csv")
    shadow_step = next(s for s in result.steps if s.name == "shadow")
    assert "rows of recent captured traffic" in shadow_step.detail
    assert result.outcome == "promoted", result.refused_by


def test_the_retrain_panel_checks_rows_and_shows_a_refusal_in_the_panel(project):
    """Check rows is one call into the core: the split is shown; bad rows are one line in the
    panel, not a traceback. A state machine: Retrain acts only once the rows now chosen are
    checked; another choice (or a failed check) turns it off again."""
    from workbench.widgets import RetrainPanel

    panel = RetrainPanel(load_config(project / "workbench.yaml"), data="data/drifted.csv")
    assert panel.state == "idle" and panel.retrain_button.disabled
    assert not panel.check_button.disabled
    panel.check_button.click()
    assert panel.rows is not None and panel.rows.rows == 1000
    assert "to train" in panel.results.value and "wb-ok" in panel.status.value
    assert panel.state == "done" and not panel.retrain_button.disabled
    panel.seed.value = 7
    assert panel.state == "idle" and panel.rows is None and panel.retrain_button.disabled
    panel.data.value = "data/missing.csv"
    panel.check_button.click()
    assert "wb-error" in panel.status.value and "not found" in panel.status.value
    assert panel.state == "error" and panel.retrain_button.disabled
    assert not panel.check_button.disabled


def test_the_scaffold_schedules_monitor_then_retrain_and_opens_the_promotion_for_review(
    tmp_path: Path,
):
    """`workbench init` writes .github/workflows/retrain.yml, a job of its own: valid against the
    GitHub-workflow schema check-jsonschema vendors (offline); nothing granted at the top and
    only contents and pull-requests write to the job; every action pinned by a commit SHA; the
    retrain runs only when the monitor exits 1 (an INCONCLUSIVE monitor, exit 3, neither
    retrains nor fails the job; one that could not check, exit 2, fails it), and the pull
    request adds only the release files."""
    import re
    import subprocess
    import sys

    import yaml

    from workbench.pipeline import init_project

    init_project(tmp_path / "proj")
    workflow = tmp_path / "proj" / ".github" / "workflows" / "retrain.yml"
    checker = Path(sys.executable).parent / "check-jsonschema"
    checked = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = workflow.read_text()
    assert "$python_version" not in text and f'"{sys.version_info.major}.' in text
    doc = yaml.safe_load(text)
    assert doc[True] == {"schedule": [{"cron": "41 6 * * *"}], "workflow_dispatch": None}
    assert doc["permissions"] == {}
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    steps = job["steps"]
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    names = [step.get("id") or step.get("uses", "").split("@")[0] for step in steps]
    retrain_step = next(s for s in steps if "workbench retrain" in s.get("run", ""))
    pull_request = next(s for s in steps if "create-pull-request" in s.get("uses", ""))
    assert names.index("monitor") < steps.index(retrain_step) < steps.index(pull_request)
    assert retrain_step["if"] == pull_request["if"] == "steps.monitor.outputs.exit == '1'"
    added = pull_request["with"]["add-paths"].split()
    assert added and all(path.startswith("bentos/*/release/") for path in added)
    monitor = next(s for s in steps if s.get("id") == "monitor")
    for code, job_fails in [(0, False), (1, False), (2, True), (3, False), (4, True)]:
        assert _monitor_step(monitor["run"], code, tmp_path) == (code, job_fails)


def _monitor_step(script: str, code: int, tmp_path: Path) -> tuple[int, bool]:
    """The workflow's monitor step run by bash with a `workbench` that exits ``code``: the exit
    it hands the retrain's `if:` and whether the step (so the job) fails."""
    import subprocess

    stub = tmp_path / "bin" / "workbench"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text(f"#!/bin/sh\nexit {code}\n")
    stub.chmod(0o755)
    output = tmp_path / f"github-output-{code}"
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        env={"PATH": f"{stub.parent}:/usr/bin:/bin", "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    handed = int(output.read_text().strip().removeprefix("exit="))
    return handed, done.returncode != 0


def test_retrains_started_within_one_second_get_a_run_folder_each(tmp_path: Path):
    """Without run_dir, each retrain makes its own runs/retrain-<UTC time> folder (a suffix
    when the second is taken), never writing into another's."""
    from workbench.retraining.stage import _run_folder

    (tmp_path / "workbench.yaml").write_text(
        "name: m\nmodel: model.joblib\ndata: {train: a.csv, test: b.csv, target: y}\n"
    )
    config = load_config(tmp_path / "workbench.yaml")
    folders = [_run_folder(config, None) for _ in range(3)]
    assert len(set(folders)) == 3 and all((f / "data").is_dir() for f in folders)
    assert all(f.parent == tmp_path / "runs" and f.name.startswith("retrain-") for f in folders)
