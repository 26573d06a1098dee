"""The validate stage on the bundled example: record, gates and why they fail, cross-validation,
baseline, champion, the report, and every bad input (one clear message, nothing written)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import bentoml
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import edit_config
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from workbench.config import load_config
from workbench.errors import ConfigError, DataError, GateFailure, ModelError, WorkbenchError
from workbench.integrity import ledger_path
from workbench.reports import gate_table, to_html
from workbench.reports.validation import validation_notes
from workbench.validation import validate

FAST = {"cv_folds": 3, "importance_repeats": 2, "importance_max_rows": 200}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One OpenMP/BLAS thread: the suite shares two cores, and spinning threads then crawl."""
    with threadpool_limits(limits=1):
        yield


def store_tags() -> list[str]:
    return sorted(str(m.tag) for m in bentoml.models.list())


def test_example_passes_its_gates_and_writes_a_record(project: Path):
    result = validate(load_config(project / "workbench.yaml"))
    assert result.task == "classification"  # from the config
    assert result.passed and not result.failed
    assert result.metrics["roc_auc"] > 0.95 and result.metrics["accuracy"] > 0.9
    assert 0 < result.metrics["f1"] <= 1
    assert result.classes == [0, 1]
    assert len(result.input_schema.columns) == 30
    assert result.input_schema.names[0] == "mean radius"
    assert [g.metric for g in result.gates] == ["roc_auc", "accuracy", "roundtrip"]
    assert result.cv is not None and result.cv.folds == 5 and len(result.cv.per_fold) == 5
    assert result.roundtrip is not None and result.roundtrip.passed
    record = json.loads((project / ".workbench" / "validation.json").read_text())
    assert record["passed"] is True and record["inputs"]["model"] == result.inputs["model"]
    assert record["profile"]["rows"] == 426 and record["cv"]["mean"]["roc_auc"] > 0.95


def test_a_threshold_above_the_metric_fails_that_gate_only_and_says_why(project: Path):
    edit_config(project, gates={"roc_auc": {"min": 0.9999}, "accuracy": {"min": 0.5}})
    result = validate(load_config(project / "workbench.yaml"))
    assert not result.passed
    assert [g.metric for g in result.failed] == ["roc_auc"]
    table = gate_table(result.gates)
    assert "roc_auc" in table and "FAIL: below the minimum 0.9999" in table
    with pytest.raises(GateFailure, match=r"roc_auc = 0\.99\d+ \(needs >= 0\.9999\): below"):
        result.raise_for_gates()


def test_the_task_is_inferred_from_a_regressor(project: Path):
    frame = pd.read_csv(project / "data" / "train.csv")
    X, y = frame.drop(columns=["target", "mean area"]), frame["mean area"]
    joblib.dump(LinearRegression().fit(X, y), project / "models" / "reg.joblib")
    for name in ("train", "test"):
        data = pd.read_csv(project / "data" / f"{name}.csv").drop(columns="target")
        data.to_csv(project / "data" / f"{name}_reg.csv", index=False)
    edit_config(
        project,
        model="models/reg.joblib",
        task=None,
        data={"train": "data/train_reg.csv", "test": "data/test_reg.csv", "target": "mean area"},
        gates={"r2": {"min": 0.9}, "mae": {"max": 100}},
        validation=FAST,
        monitor={
            "gates": {"r2": {"min": 0.5}}
        },  # the example's live accuracy gate is a classifier's
    )
    raw = (project / "workbench.yaml").read_text().replace("task: null\n", "")
    (project / "workbench.yaml").write_text(raw)
    result = validate(load_config(project / "workbench.yaml"))
    assert result.task == "regression"
    assert set(result.metrics) == {"mae", "rmse", "r2", "median_ae"}
    assert result.passed, result.gate_table()


# ---------------------------------------------------------------- cross-validation


def test_a_cv_gate_uses_the_mean_over_the_folds(project: Path):
    edit_config(project, gates={"cv_roc_auc": {"min": 0.99}}, validation={**FAST, "seed": 3})
    result = validate(load_config(project / "workbench.yaml"))
    assert result.cv is not None and result.cv.folds == 3 and result.cv.seed == 3
    folds = [f["roc_auc"] for f in result.cv.per_fold]
    assert result.cv.mean["roc_auc"] == pytest.approx(np.mean(folds))
    assert result.cv.std["roc_auc"] == pytest.approx(np.std(folds))
    gate = result.gates[0]
    assert gate.metric == "cv_roc_auc" and gate.value == result.cv.mean["roc_auc"]
    assert "mean of 3 folds" in gate.reason


def test_cross_validation_is_repeatable_with_its_seed_and_samples_big_training_data(project):
    edit_config(project, validation={**FAST, "cv_max_rows": 200})
    first = validate(load_config(project / "workbench.yaml"))
    again = validate(load_config(project / "workbench.yaml"))
    assert first.cv is not None and again.cv is not None
    assert first.cv.sampled and first.cv.rows == 200
    assert first.cv.per_fold == again.cv.per_fold
    assert any("seeded sample of 200 training rows" in n for n in validation_notes(first))


def test_cv_gates_without_cross_validation_are_a_config_error(project: Path):
    edit_config(project, gates={"cv_f1": {"min": 0.5}}, validation={"cv_folds": 0})
    with pytest.raises(ConfigError, match=r"gate `cv_f1` needs cross-validation.*cv_folds` is 0"):
        validate(load_config(project / "workbench.yaml"))


def test_validation_reports_progress_through_the_folds(project: Path):
    edit_config(project, validation=FAST)
    steps: list[tuple[str, float]] = []
    validate(load_config(project / "workbench.yaml"), on_progress=lambda s, f: steps.append((s, f)))
    fractions = [f for _, f in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [s for s, _ in steps if s.startswith("cross-validation: fold")][:3] == [
        "cross-validation: fold 1 of 3",
        "cross-validation: fold 2 of 3",
        "cross-validation: fold 3 of 3",
    ]


# ---------------------------------------------------------------- baseline


def test_the_baseline_gate_compares_with_a_dummy_in_the_primary_metric(project: Path):
    edit_config(
        project, gates={"beat_baseline": {"min": 0.3}, "accuracy": {"min": 0.9}}, validation=FAST
    )
    result = validate(load_config(project / "workbench.yaml"))
    assert result.baseline is not None and result.baseline.metrics["roc_auc"] == 0.5
    gate = result.gates[0]
    assert gate.value == pytest.approx(result.metrics["roc_auc"] - 0.5)
    assert gate.passed and "roc_auc 0.99" in gate.reason and "vs Dummy" in gate.reason

    edit_config(project, gates={"beat_baseline": {"min": 0.6}}, validation=FAST)
    result = validate(load_config(project / "workbench.yaml"))
    assert [g.metric for g in result.failed] == ["beat_baseline"]
    assert result.failed[0].reason.startswith("below the minimum 0.6; roc_auc")


def test_an_error_metric_as_primary_counts_lower_as_better(project: Path):
    edit_config(
        project,
        gates={"beat_baseline": {"min": 0.1}},
        validation={**FAST, "primary_metric": "log_loss"},
    )
    result = validate(load_config(project / "workbench.yaml"))
    assert result.primary_metric == "log_loss" and result.baseline is not None
    expected = result.baseline.metrics["log_loss"] - result.metrics["log_loss"]
    assert result.gates[0].value == pytest.approx(expected) and expected > 0.1
    assert result.passed


def test_a_primary_metric_of_another_task_is_a_config_error(project: Path):
    edit_config(project, validation={"primary_metric": "rmse"})
    with pytest.raises(
        ConfigError, match=r"validation.primary_metric \(`rmse`\) does not fit task"
    ):
        validate(load_config(project / "workbench.yaml"))


# ---------------------------------------------------------------- champion


def candidate_of(
    packaged: Path,
    folder: Path,
    model: object,
    *,
    test_rows: int | None = None,
    drop: str | None = None,
    gates: dict | None = None,
) -> Path:
    """A new model of the packaged example's project (so its model is the champion): the same
    name, and the project's package ledger, which vouches for the champion's bytes."""
    raw = yaml.safe_load((packaged / "workbench.yaml").read_text())
    (folder / "models").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / ".workbench").mkdir()
    shutil.copy(ledger_path(packaged), folder / ".workbench")
    for name in ("train", "test"):
        frame = pd.read_csv(packaged / "data" / f"{name}.csv")
        if drop:
            frame = frame.drop(columns=drop)
        if name == "test" and test_rows:
            frame = frame.iloc[:test_rows]
        frame.to_csv(folder / "data" / f"{name}.csv", index=False)
    if model is None:
        shutil.copy(packaged / "models" / "model.joblib", folder / "models" / "model.joblib")
    else:
        train = pd.read_csv(folder / "data" / "train.csv")
        model.fit(train.drop(columns="target"), train["target"])
        joblib.dump(model, folder / "models" / "model.joblib")
    raw.update(gates=gates or {"champion": {"min": -0.01}}, validation=FAST)
    (folder / "workbench.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder / "workbench.yaml"


def test_a_candidate_worse_than_the_champion_fails_and_both_are_shown(packaged, tmp_path):
    before = store_tags()
    path = candidate_of(packaged, tmp_path, DecisionTreeClassifier(max_depth=1), test_rows=100)
    result = validate(load_config(path))

    champion = result.champion
    assert champion is not None and champion.tag is not None and champion.error is None
    assert champion.tag.startswith(load_config(path).name + ":")
    old_model = joblib.load(packaged / "models" / "model.joblib")
    test = pd.read_csv(tmp_path / "data" / "test.csv")
    expected = skm.roc_auc_score(
        test["target"], old_model.predict_proba(test.drop(columns="target"))[:, 1]
    )
    assert champion.metrics["roc_auc"] == pytest.approx(expected)  # same 100 test rows
    assert champion.stored_metrics["roc_auc"] > 0.95  # as recorded when it was packaged

    gate = result.gates[0]
    assert gate.metric == "champion" and not gate.passed and not result.passed
    assert gate.value == pytest.approx(result.metrics["roc_auc"] - champion.metrics["roc_auc"])
    assert f"vs champion {champion.tag}" in gate.reason
    with pytest.raises(GateFailure, match=r"champion = -0\.\d+ \(needs >= -0\.01\)"):
        result.raise_for_gates()
    report = to_html(result)
    assert f"champion {champion.tag} (same test)" in report and "champion (as packaged)" in report
    assert store_tags() == before  # validation never writes to the store


def test_the_champion_gate_passes_when_the_only_stored_model_is_the_candidate(packaged, tmp_path):
    result = validate(load_config(candidate_of(packaged, tmp_path, None)))
    assert result.champion is not None and result.champion.tag is None
    assert "this very model file" in result.champion.note
    assert result.gates[0].passed and result.gates[0].reason.startswith("no champion yet")


def test_a_champion_that_cannot_be_scored_is_reported_not_raised(packaged, tmp_path):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    path = candidate_of(packaged, tmp_path, model, drop="mean radius")
    result = validate(load_config(path))
    champion = result.champion
    assert champion is not None and champion.tag is not None
    assert "lacks columns the champion needs: ['mean radius']" in (champion.error or "")
    gate = result.gates[0]
    assert not gate.passed and gate.value is None
    assert "remove the `champion` gate" in gate.reason


def test_no_champion_yet_passes_the_champion_gate(project: Path):
    edit_config(project, gates={"champion": {"min": 0.0}}, validation=FAST)
    result = validate(load_config(project / "workbench.yaml"))
    assert result.champion is not None and result.champion.tag is None
    assert "has been packaged yet" in result.champion.note
    assert result.passed and result.gates[0].reason.startswith("no champion yet")


# ---------------------------------------------------------------- what a person sees


def test_the_report_shows_coloured_gates_side_by_side_metrics_and_plots(project: Path):
    edit_config(project, gates={"roc_auc": {"min": 0.9999}, "accuracy": {"min": 0.5}})
    result = validate(load_config(project / "workbench.yaml"))
    report = to_html(result)
    assert "wb-row-fail" in report and "wb-row-pass" in report
    assert "below the minimum 0.9999" in report
    assert "CV mean ± sd (5 folds)" in report and "baseline (Dummy (class prior))" in report
    assert report.count("data:image/png;base64,") == 6  # 2 explanations
    for name in ("confusion matrix", "ROC curve", "precision-recall curve", "permutation"):
        assert name in report
    assert "save / reload" in report and "latency, 1,000 rows" in report
    assert "input schema: 30 columns" in report
    assert "http://" not in report and "https://" not in report  # readable offline


# ---------------------------------------------------------------- bad input


def _target_absent(p: Path) -> None:
    edit_config(p, data={"train": "data/train.csv", "test": "data/test.csv", "target": "y"})


def _target_empty(p: Path) -> None:
    test = pd.read_csv(p / "data" / "test.csv")
    test["target"] = np.nan
    test.to_csv(p / "data" / "test.csv", index=False)


def _test_set_empty(p: Path) -> None:
    pd.read_csv(p / "data" / "test.csv").iloc[:0].to_csv(p / "data" / "test.csv", index=False)


def _unseen_class(p: Path) -> None:
    test = pd.read_csv(p / "data" / "test.csv")
    test.loc[0, "target"] = 7
    test.to_csv(p / "data" / "test.csv", index=False)


def _not_fitted(p: Path) -> None:
    joblib.dump(LogisticRegression(), p / "models" / "model.joblib")


def _columns_differ(p: Path) -> None:
    test = pd.read_csv(p / "data" / "test.csv").drop(columns=["mean radius"])
    test["surprise"] = 1
    test.to_csv(p / "data" / "test.csv", index=False)


def _extra_training_column(p: Path) -> None:
    train = pd.read_csv(p / "data" / "train.csv")
    train["row id"] = range(len(train))
    train.to_csv(p / "data" / "train.csv", index=False)


def _unknown_metric(p: Path) -> None:
    edit_config(p, gates={"auc": {"min": 0.9}})


def _metric_of_another_task(p: Path) -> None:
    edit_config(p, gates={"rmse": {"max": 1.0}})


def _champion_gate_without_comparison(p: Path) -> None:
    edit_config(p, gates={"champion": {"min": 0.0}}, validation={"champion": False})


def _missing_data_file(p: Path) -> None:
    (p / "data" / "test.csv").unlink()


def _date_column(p: Path) -> None:
    """A model fitted with an ISO-8601 date column (which its ColumnTransformer drops)."""
    from sklearn.compose import ColumnTransformer

    train = pd.read_csv(p / "data" / "train.csv")
    features = [c for c in train.columns if c != "target"]
    for name in ("train", "test"):
        frame = pd.read_csv(p / "data" / f"{name}.csv")
        frame.insert(0, "signup", pd.date_range("2024-01-01", periods=len(frame)).astype(str))
        frame.to_csv(p / "data" / f"{name}.csv", index=False)
    train = pd.read_csv(p / "data" / "train.csv")
    model = make_pipeline(
        ColumnTransformer([("num", "passthrough", features)]), LogisticRegression(max_iter=5000)
    )
    model.fit(train.drop(columns="target"), train["target"])
    joblib.dump(model, p / "models" / "model.joblib")


BAD_INPUTS: list[tuple[Callable[[Path], None], type[WorkbenchError], str]] = [
    (_target_absent, DataError, r"target column 'y' not found.*data.target"),
    (_target_empty, DataError, r"test data: target column 'target' is entirely empty"),
    (_test_set_empty, DataError, r"test data file .*test\.csv' has no rows"),
    (_unseen_class, DataError, r"classes \['7'\] in column 'target' were never seen"),
    (_not_fitted, ModelError, r"not fitted; call fit"),
    (_columns_differ, DataError, r"test data: .*missing \['mean radius'\]; unexpected \['surpr"),
    (_extra_training_column, DataError, r"training data: .*unexpected \['row id'\]"),
    (_unknown_metric, ConfigError, r"unknown metric 'auc'.*roc_auc.*cv_<metric>.*beat_baseline"),
    (_metric_of_another_task, ConfigError, r"gate `rmse` does not fit task 'classification'"),
    (_champion_gate_without_comparison, ConfigError, r"gate `champion` needs the champion"),
    (_missing_data_file, DataError, r"test data file .*test\.csv' not found"),
    (
        _date_column,
        DataError,
        r"training data: column 'signup' \(e\.g\. '2024-01-01'\) holds dates or times.*"
        r"derive numeric features from them before training",
    ),
]


@pytest.mark.parametrize(
    ("corrupt", "error", "message"), BAD_INPUTS, ids=[c.__name__[1:] for c, _, _ in BAD_INPUTS]
)
def test_bad_input_is_one_clear_message_and_nothing_is_written(project, corrupt, error, message):
    before = store_tags()
    corrupt(project)
    with pytest.raises(error, match=message):
        validate(load_config(project / "workbench.yaml"))
    assert not (project / ".workbench" / "validation.json").exists()
    assert store_tags() == before


def test_a_text_target_for_a_regressor_is_refused(project: Path):
    frame = pd.read_csv(project / "data" / "train.csv")
    X = frame.drop(columns=["target"])
    joblib.dump(LinearRegression().fit(X, frame["target"]), project / "models" / "model.joblib")
    test = pd.read_csv(project / "data" / "test.csv")
    test["target"] = np.where(test["target"] == 1, "benign", "malignant")
    test.to_csv(project / "data" / "test.csv", index=False)
    edit_config(project, task="regression", gates={}, monitor={"gates": {}})
    with pytest.raises(DataError, match=r"target column 'target' is not numeric.*'benign'"):
        validate(load_config(project / "workbench.yaml"))


def test_a_file_that_is_not_an_estimator_is_refused(project: Path):
    joblib.dump({"weights": [1, 2]}, project / "models" / "model.joblib")
    with pytest.raises(ModelError, match="holds a dict, not a scikit-learn estimator"):
        validate(load_config(project / "workbench.yaml"))
    (project / "models" / "model.joblib").write_text("not a pickle")
    with pytest.raises(ModelError, match="could not be loaded"):
        validate(load_config(project / "workbench.yaml"))


def test_a_transformer_without_predict_is_refused(project: Path):
    frame = pd.read_csv(project / "data" / "train.csv").drop(columns="target")
    joblib.dump(StandardScaler().fit(frame), project / "models" / "model.joblib")
    with pytest.raises(ModelError, match="not a scikit-learn estimator with predict"):
        validate(load_config(project / "workbench.yaml"))
