"""The validate stage on real models: metrics, gates, schema, record, and the bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import edit_config
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler

from workbench.config import load_config
from workbench.errors import ConfigError, DataError, GateFailure, ModelError
from workbench.validation import validate


def test_example_passes_its_gates_and_writes_a_record(project: Path):
    result = validate(load_config(project / "workbench.yaml"))
    assert result.task == "classification"  # from the config
    assert result.passed and not result.failed
    assert result.metrics["roc_auc"] > 0.95 and result.metrics["accuracy"] > 0.9
    assert 0 < result.metrics["f1"] <= 1
    assert result.classes == [0, 1]
    assert len(result.input_schema.columns) == 30
    assert result.input_schema.names[0] == "mean radius"
    record = json.loads((project / ".workbench" / "validation.json").read_text())
    assert record["passed"] is True and record["inputs"]["model"] == result.inputs["model"]


def test_a_threshold_above_the_metric_fails_that_gate_only(project: Path):
    edit_config(project, gates={"roc_auc": {"min": 0.9999}, "accuracy": {"min": 0.5}})
    result = validate(load_config(project / "workbench.yaml"))
    assert not result.passed
    assert [g.metric for g in result.failed] == ["roc_auc"]
    assert "roc_auc" in result.gate_table() and "FAIL" in result.gate_table()
    with pytest.raises(GateFailure, match=r"roc_auc = 0\.99\d+ \(needs >= 0\.9999\)"):
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
    )
    raw = (project / "workbench.yaml").read_text().replace("task: null\n", "")
    (project / "workbench.yaml").write_text(raw)
    result = validate(load_config(project / "workbench.yaml"))
    assert result.task == "regression"
    assert set(result.metrics) == {"mae", "rmse", "r2"}
    assert result.passed, result.gate_table()


def test_a_gate_that_does_not_fit_the_task_is_a_config_error(project: Path):
    edit_config(project, gates={"rmse": {"max": 1.0}})
    with pytest.raises(ConfigError, match=r"gate `rmse` does not fit task 'classification'"):
        validate(load_config(project / "workbench.yaml"))


def test_target_column_absent_is_named(project: Path):
    edit_config(project, data={"train": "data/train.csv", "test": "data/test.csv", "target": "y"})
    with pytest.raises(DataError, match=r"target column 'y' not found.*data.target"):
        validate(load_config(project / "workbench.yaml"))


def test_target_entirely_empty_is_refused(project: Path):
    test = pd.read_csv(project / "data" / "test.csv")
    test["target"] = np.nan
    test.to_csv(project / "data" / "test.csv", index=False)
    with pytest.raises(DataError, match="entirely empty"):
        validate(load_config(project / "workbench.yaml"))


def test_missing_data_file_is_named(project: Path):
    (project / "data" / "test.csv").unlink()
    with pytest.raises(DataError, match=r"test data file .*test\.csv' not found"):
        validate(load_config(project / "workbench.yaml"))


def test_columns_that_do_not_match_the_model_are_named(project: Path):
    test = pd.read_csv(project / "data" / "test.csv").drop(columns=["mean radius"])
    test["surprise"] = 1
    test.to_csv(project / "data" / "test.csv", index=False)
    with pytest.raises(DataError, match=r"missing \['mean radius'\]; unexpected \['surprise'\]"):
        validate(load_config(project / "workbench.yaml"))


def test_an_unfitted_model_is_refused(project: Path):
    joblib.dump(LogisticRegression(), project / "models" / "model.joblib")
    with pytest.raises(ModelError, match="not fitted; call fit"):
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


def test_classes_the_model_never_saw_are_refused(project: Path):
    test = pd.read_csv(project / "data" / "test.csv")
    test.loc[0, "target"] = 7
    test.to_csv(project / "data" / "test.csv", index=False)
    with pytest.raises(DataError, match=r"classes \['7'\].*never seen"):
        validate(load_config(project / "workbench.yaml"))


def test_validation_reports_progress_to_the_caller(project: Path):
    steps: list[float] = []
    validate(load_config(project / "workbench.yaml"), on_progress=lambda s, f: steps.append(f))
    assert steps[0] < steps[-1] == 1.0
