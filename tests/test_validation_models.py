"""The validate stage on the models data scientists really have: every task, every column type.

Each test builds a small model on data bundled with scikit-learn (or a synthetic frame), writes
it as a project (model, CSV or Parquet files, workbench.yaml) and validates it. Nothing downloads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from workbench.config import METRICS, load_config
from workbench.errors import ConfigError
from workbench.reports.plots import validation_figures
from workbench.results import ValidationResult
from workbench.validation import validate


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One OpenMP/BLAS thread: the suite shares two cores, and spinning threads then crawl."""
    with threadpool_limits(limits=1):
        yield


FAST = {"cv_folds": 3, "importance_repeats": 2, "importance_max_rows": 300, "champion": False}
PNG = b"\x89PNG\r\n\x1a\n"


def write_project(  # noqa: PLR0913 - a project's parts, then its optional config sections
    folder: Path,
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    target: str = "target",
    fmt: str = "csv",
    task: str | None = None,
    gates: dict[str, Any] | None = None,
    validation: dict[str, Any] | None = None,
) -> Path:
    """A model project on disk (model, data in ``fmt``, workbench.yaml); returns the config path."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    for name, frame in (("train", train), ("test", test)):
        path = folder / "data" / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    raw: dict[str, Any] = {
        "name": f"m_{folder.name.lower()[-20:].strip('_-.') or 'x'}",
        "model": "model.joblib",
        "data": {"train": f"data/train.{fmt}", "test": f"data/test.{fmt}", "target": target},
        "gates": gates or {},
        "validation": {**FAST, **(validation or {})},
    }
    if task:
        raw["task"] = task
    path = folder / "workbench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def split(frame: pd.DataFrame, target: str, *, stratify: bool = True) -> tuple[Any, ...]:
    train, test = train_test_split(
        frame, test_size=0.3, random_state=0, stratify=frame[target] if stratify else None
    )
    return train, test, train.drop(columns=target), train[target]


def run(path: Path) -> ValidationResult:
    return validate(load_config(path))


def breast_cancer(labels: dict[int, str] | None = None) -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    if labels:
        frame["target"] = frame["target"].map(labels)
    return frame


def iris(*, names: bool) -> pd.DataFrame:
    data = load_iris(as_frame=True)
    frame = data.frame
    if names:
        frame["target"] = np.asarray(data.target_names)[frame["target"]]
    return frame


def mixed_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Numeric, integer, boolean and string-categorical columns, each with gaps, and a label."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 15, rows)
    age = rng.integers(18, 80, rows)
    member = rng.random(rows) < 0.4
    colour = rng.choice(["red", "green", "blue"], rows)
    score = 0.05 * (income - 50) + 0.03 * (age - 50) + member * 1.0 + (colour == "red") * 1.5
    label = np.where(score + rng.normal(0, 0.5, rows) > 0.8, "yes", "no")
    frame = pd.DataFrame(
        {
            "income": income,
            "age": age.astype(float),
            "member": member.astype(object),
            "colour": colour.astype(object),
            "label": label,
        }
    )
    for column in ("income", "age", "member", "colour"):
        frame.loc[rng.random(rows) < 0.08, column] = np.nan
    return frame


def mixed_pipeline() -> Any:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    flags = OneHotEncoder(handle_unknown="ignore")  # a gap is a category of its own
    columns = ColumnTransformer(
        [
            ("numbers", numeric, ["income", "age"]),
            ("flags", flags, ["member"]),
            ("categories", categorical, ["colour"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=500))


def as_read(frame: pd.DataFrame, fmt: str, tmp_path: Path) -> pd.DataFrame:
    """The frame as the validate stage will read it back (what the model must be fitted on)."""
    path = tmp_path / f"roundtrip.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
        return pd.read_csv(path)
    frame.to_parquet(path, index=False)
    return pd.read_parquet(path)


class MajorityVote(ClassifierMixin, BaseEstimator):
    """A classifier with ``predict`` only: no probabilities, no decision scores."""

    def fit(self, X: Any, y: Any) -> MajorityVote:
        values, counts = np.unique(np.asarray(y), return_counts=True)
        self.classes_ = values
        self.majority_ = values[np.argmax(counts)]
        self.first_ = str(X.columns[0])
        self.cut_ = float(np.median(X[self.first_]))
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        low = np.asarray(X[self.first_]) <= self.cut_
        return np.where(low, self.classes_[-1], self.classes_[0])


# ---------------------------------------------------------------- binary classification


def test_binary_metrics_match_scikit_learn_with_string_labels_and_parquet(tmp_path: Path):
    frame = breast_cancer({0: "malignant", 1: "benign"})
    train, test, X, y = split(frame, "target")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    result = run(write_project(tmp_path, model, train, test, fmt="parquet"))

    assert result.task == "classification" and result.classes == ["benign", "malignant"]
    X_test, y_test = test.drop(columns="target"), test["target"].to_numpy()
    predicted, proba = model.predict(X_test), model.predict_proba(X_test)
    positive = "malignant"  # the model's second class
    expected = {
        "accuracy": skm.accuracy_score(y_test, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y_test, predicted),
        "precision": skm.precision_score(y_test, predicted, pos_label=positive),
        "recall": skm.recall_score(y_test, predicted, pos_label=positive),
        "f1": skm.f1_score(y_test, predicted, pos_label=positive),
        "roc_auc": skm.roc_auc_score(y_test == positive, proba[:, 1]),
        "log_loss": skm.log_loss(y_test, proba),
        "brier": skm.brier_score_loss(y_test == positive, proba[:, 1]),
    }
    assert set(result.metrics) == set(METRICS["classification"])
    for metric, value in expected.items():
        assert result.metrics[metric] == pytest.approx(value, abs=1e-9), metric
    assert (
        result.confusion
        == skm.confusion_matrix(y_test, predicted, labels=["benign", "malignant"]).tolist()
    )
    assert [c.label for c in result.roc] == ["malignant"] and len(result.pr) == 1
    assert result.roc[0].area == pytest.approx(expected["roc_auc"])


def test_binary_classifier_without_predict_proba_scores_roc_auc_from_its_decisions(tmp_path):
    frame = breast_cancer()
    train, test, X, y = split(frame, "target")
    model = make_pipeline(StandardScaler(), LinearSVC()).fit(X, y)
    result = run(write_project(tmp_path, model, train, test, gates={"roc_auc": {"min": 0.9}}))

    X_test = test.drop(columns="target")
    expected = skm.roc_auc_score(test["target"], model.decision_function(X_test))
    assert result.metrics["roc_auc"] == pytest.approx(expected)
    assert result.metrics["log_loss"] is None and result.metrics["brier"] is None
    assert "predict_proba" in result.unavailable["log_loss"]
    assert result.primary_metric == "roc_auc" and result.passed
    assert result.roc and result.pr


def test_a_probability_gate_on_a_model_without_predict_proba_is_a_config_error(tmp_path):
    train, test, X, y = split(breast_cancer(), "target")
    model = make_pipeline(StandardScaler(), LinearSVC()).fit(X, y)
    path = write_project(tmp_path, model, train, test, gates={"log_loss": {"max": 0.3}})
    with pytest.raises(ConfigError, match=r"gate `log_loss` needs predicted probabilities"):
        run(path)
    assert not (tmp_path / ".workbench" / "validation.json").exists()


def test_a_classifier_with_predict_only_is_compared_on_balanced_accuracy(tmp_path: Path):
    train, test, X, y = split(breast_cancer(), "target")
    model = MajorityVote().fit(X, y)
    result = run(write_project(tmp_path, model, train, test, gates={"beat_baseline": {"min": 0.1}}))
    assert result.primary_metric == "balanced_accuracy"
    assert result.metrics["roc_auc"] is None and not result.roc
    assert "neither predict_proba() nor decision_function()" in result.unavailable["roc_auc"]
    assert result.baseline is not None
    assert result.baseline.metrics["balanced_accuracy"] == pytest.approx(0.5)
    assert result.gates[0].passed, result.gate_table()
    path = write_project(tmp_path, model, train, test, gates={"roc_auc": {"min": 0.5}})
    with pytest.raises(ConfigError, match=r"gate `roc_auc` needs scores"):
        run(path)


# ---------------------------------------------------------------- multiclass


def test_multiclass_metrics_are_macro_and_roc_auc_one_vs_rest(tmp_path: Path):
    frame = iris(names=True)
    train, test, X, y = split(frame, "target")
    model = LogisticRegression(max_iter=1000).fit(X, y)
    result = run(write_project(tmp_path, model, train, test))

    X_test, y_test = test.drop(columns="target"), test["target"].to_numpy()
    predicted, proba = model.predict(X_test), model.predict_proba(X_test)
    classes = list(model.classes_)
    assert result.classes == classes == ["setosa", "versicolor", "virginica"]
    expected = {
        "accuracy": skm.accuracy_score(y_test, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(y_test, predicted),
        "precision": skm.precision_score(y_test, predicted, average="macro"),
        "recall": skm.recall_score(y_test, predicted, average="macro"),
        "f1": skm.f1_score(y_test, predicted, average="macro"),
        "roc_auc": skm.roc_auc_score(y_test, proba, multi_class="ovr", labels=classes),
        "log_loss": skm.log_loss(y_test, proba, labels=classes),
        "brier": skm.brier_score_loss(y_test, proba, labels=classes),
    }
    for metric, value in expected.items():
        assert result.metrics[metric] == pytest.approx(value, abs=1e-9), metric
    assert np.asarray(result.confusion).shape == (3, 3)
    assert [c.label for c in result.roc] == classes
    expected = {"confusion matrix", "ROC curve", "precision-recall curve"}
    assert set(validation_figures(result)) >= expected


def test_multiclass_without_predict_proba_and_integer_labels(tmp_path: Path):
    frame = iris(names=False)
    train, test, X, y = split(frame, "target")
    model = make_pipeline(StandardScaler(), LinearSVC()).fit(X, y)
    result = run(write_project(tmp_path, model, train, test, gates={"cv_accuracy": {"min": 0.8}}))
    assert result.classes == [0, 1, 2]
    assert result.metrics["roc_auc"] is not None and 0.5 < result.metrics["roc_auc"] <= 1.0
    assert result.metrics["log_loss"] is None
    assert result.cv is not None and result.cv.splitter == "StratifiedKFold"
    assert result.passed, result.gate_table()


# ---------------------------------------------------------------- regression


def test_regression_metrics_match_scikit_learn_and_plot_prediction_error(tmp_path: Path):
    frame = load_diabetes(as_frame=True).frame
    train, test, X, y = split(frame, "target", stratify=False)
    model = Ridge(alpha=0.1).fit(X, y)
    gates = {"r2": {"min": 0.2}, "mae": {"max": 60}, "median_ae": {"max": 60}, "rmse": {"max": 70}}
    result = run(write_project(tmp_path, model, train, test, gates=gates))

    assert result.task == "regression" and result.classes is None
    X_test, y_test = test.drop(columns="target"), test["target"]
    predicted = model.predict(X_test)
    expected = {
        "mae": skm.mean_absolute_error(y_test, predicted),
        "rmse": skm.root_mean_squared_error(y_test, predicted),
        "r2": skm.r2_score(y_test, predicted),
        "median_ae": skm.median_absolute_error(y_test, predicted),
    }
    assert set(result.metrics) == set(expected)
    for metric, value in expected.items():
        assert result.metrics[metric] == pytest.approx(value), metric
    assert result.primary_metric == "r2" and result.baseline is not None
    assert result.baseline.metrics["r2"] <= 0.0 < result.metrics["r2"]
    assert len(result.actual) == len(result.predicted) == len(test)
    assert result.confusion is None and not result.roc
    figures = validation_figures(result)
    assert figures["prediction error"].startswith(PNG)
    assert result.passed, result.gate_table()


def test_hist_gradient_boosting_handles_missing_values_natively(tmp_path: Path):
    frame = load_diabetes(as_frame=True).frame
    rng = np.random.default_rng(1)
    for column in ("bmi", "bp", "s5"):
        frame.loc[rng.random(len(frame)) < 0.15, column] = np.nan
    train, test, X, y = split(frame, "target", stratify=False)
    model = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(X, y)
    result = run(write_project(tmp_path, model, train, test, gates={"cv_r2": {"min": 0.0}}))
    assert result.metrics["r2"] == pytest.approx(
        skm.r2_score(test["target"], model.predict(test.drop(columns="target")))
    )
    bmi = {c.name: c for c in result.input_schema.columns}["bmi"]
    assert bmi.nullable and bmi.kind == "number"
    assert result.profile is not None and result.profile.column("bmi").missing > 0.05
    assert result.roundtrip is not None and result.roundtrip.passed
    assert result.passed, result.gate_table()


def test_hist_gradient_boosting_classifier_with_native_categories_from_parquet(tmp_path: Path):
    frame = mixed_frame().drop(columns="member")
    frame["colour"] = frame["colour"].astype("category")
    train, test, X, y = split(frame, "label")
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    result = run(write_project(tmp_path, model, train, test, target="label", fmt="parquet"))
    colour = {c.name: c for c in result.input_schema.columns}["colour"]
    assert colour.kind == "category" and colour.categories == ["blue", "green", "red"]
    assert result.metrics["roc_auc"] is not None and result.metrics["roc_auc"] > 0.6
    assert result.roundtrip is not None and result.roundtrip.passed


# ---------------------------------------------------------------- pipelines over mixed columns


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_column_transformer_pipeline_over_mixed_columns_with_gaps(tmp_path: Path, fmt: str):
    frame = as_read(mixed_frame(), fmt, tmp_path)
    train, test, X, y = split(frame, "label")
    model = mixed_pipeline().fit(X, y)
    gates = {"roc_auc": {"min": 0.7}, "beat_baseline": {"min": 0.1}, "cv_f1": {"min": 0.3}}
    result = run(write_project(tmp_path, model, train, test, target="label", fmt=fmt, gates=gates))

    assert result.passed, result.gate_table()
    assert result.classes == ["no", "yes"]
    columns = {c.name: c for c in result.input_schema.columns}
    assert result.input_schema.names == ["income", "age", "member", "colour"]
    assert all(c.nullable for c in columns.values())
    assert columns["income"].kind == "number"
    assert columns["age"].kind == "integer" and 18 <= columns["age"].min <= columns["age"].max < 80
    if fmt == "csv":  # integers with gaps come back from CSV as float: the dtype says so
        assert columns["age"].dtype == "float64"
    assert columns["member"].kind == "boolean"
    assert columns["colour"].kind == "category"
    assert columns["colour"].categories == ["blue", "green", "red"]

    profile = result.profile
    assert profile is not None and profile.rows == len(train)
    income = profile.column("income")
    assert income.edges == sorted(income.edges) and sum(income.shares) == pytest.approx(1.0)
    assert 0.02 < income.missing < 0.2
    colour = profile.column("colour")
    assert set(colour.values) == {"blue", "green", "red"} and colour.other == 0.0
    assert sum(colour.values.values()) == pytest.approx(1.0)
    assert set(profile.column("member").values) == {"True", "False"}

    assert result.importance is not None and len(result.importance.features) == 4
    names = [f.feature for f in result.importance.features]
    assert set(names) == {"income", "age", "member", "colour"}
    assert result.latency is not None and result.latency.batch_rows == 1000
    assert result.latency.single_row_p50_ms > 0 and result.latency.batch_ms > 0


def test_every_metric_can_be_gated_with_min_or_max(tmp_path: Path):
    train, test, X, y = split(iris(names=True), "target")
    model = LogisticRegression(max_iter=1000).fit(X, y)
    names = METRICS["classification"]
    loose = {m: {"min": -1.0, "max": 100.0} for m in names}
    loose |= {f"cv_{m}": {"min": -1.0} for m in names}
    result = run(write_project(tmp_path, model, train, test, gates=loose))
    assert result.passed, result.gate_table()
    by_name = {g.metric: g for g in result.gates}
    for metric in names:
        assert by_name[metric].value == result.metrics[metric]
        assert result.cv is not None and by_name[f"cv_{metric}"].value == result.cv.mean[metric]

    tight = {m: ({"min": 1.5} if m not in ("log_loss", "brier") else {"max": -0.5}) for m in names}
    result = run(write_project(tmp_path, model, train, test, gates=tight))
    assert [g.metric for g in result.failed] == list(names)
    assert by_reason(result, "accuracy").startswith("below the minimum 1.5")
    assert by_reason(result, "log_loss").startswith("above the maximum -0.5")


def by_reason(result: ValidationResult, metric: str) -> str:
    return next(g.reason for g in result.gates if g.metric == metric)


def test_the_record_stays_small_and_loads_back(tmp_path: Path):
    train, test, X, y = split(iris(names=True), "target")
    model = LogisticRegression(max_iter=1000).fit(X, y)
    result = run(write_project(tmp_path, model, train, test))
    text = (tmp_path / ".workbench" / "validation.json").read_text()
    assert len(text) < 100_000 and "base64" not in text
    again = ValidationResult.model_validate(json.loads(text))
    assert again == result


def test_a_test_set_of_one_class_leaves_roc_auc_unavailable_and_its_gate_says_why(tmp_path):
    train, test, X, y = split(breast_cancer(), "target")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    gates = {"roc_auc": {"min": 0.9}, "accuracy": {"min": 0.5}}
    path = write_project(tmp_path, model, train, test[test["target"] == 1], gates=gates)
    result = run(path)
    assert result.metrics["roc_auc"] is None and not result.roc
    assert result.confusion is not None and result.metrics["accuracy"] > 0.5
    assert [g.metric for g in result.failed] == ["roc_auc"]
    assert result.failed[0].reason == "roc_auc unavailable: the rows hold a single class"
