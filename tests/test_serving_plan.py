"""How the generated service feeds the model: batching limits from the measured cost (stable
across runs), one model call where ``predict`` is the argmax of ``predict_proba``, and a forest
served for real with exact parity."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import edit_config
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from workbench import load_config, package, validate
from workbench.config import ServiceSettings
from workbench.packaging.plan import (
    MAX_BATCH_ROWS,
    CallCost,
    float_rows,
    frame_input_needed,
    labels_from_proba,
    measure_call_cost,
    plan_serving,
)
from workbench.packaging.sources import example_row
from workbench.runtime.settings import Settings
from workbench.schema import infer_schema
from workbench.serving import check, serve


def frame(n: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    return X, (X["a"] > 0).to_numpy().astype(int)


class OwnPredict(RandomForestClassifier):
    def predict(self, X):  # type: ignore[no-untyped-def]
        return super().predict(X)


def test_only_models_whose_predict_is_the_argmax_of_predict_proba_are_asked_once():
    X, y = frame()
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    assert labels_from_proba(forest)
    assert labels_from_proba(make_pipeline(StandardScaler(), forest))
    assert not labels_from_proba(LogisticRegression().fit(X, y))
    assert not labels_from_proba(HistGradientBoostingClassifier(max_iter=5).fit(X, y))
    assert not labels_from_proba(OwnPredict(n_estimators=5).fit(X, y))


def test_a_model_fitted_on_a_frame_gets_a_frame_and_one_fitted_on_an_array_an_array():
    X, y = frame()
    assert frame_input_needed(LogisticRegression().fit(X, y))
    assert not frame_input_needed(LogisticRegression().fit(X.to_numpy(), y))
    assert float_rows(infer_schema(X))
    assert not float_rows(infer_schema(X.assign(n=np.arange(len(X)))))


@pytest.mark.parametrize(
    ("fixed_ms", "per_row_us", "expected"),
    [
        (3.5, 9.0, MAX_BATCH_ROWS),  # a forest: big fixed cost per call, cheap rows
        (0.3, 1.0, MAX_BATCH_ROWS),  # a linear pipeline
        (0.4, 110.0, 64),  # costly rows: batching stops paying off early
        (40.0, 2000.0, 16),  # one call answers at most ~30 rows within the budget
    ],
)
def test_batch_limits_follow_the_cost_and_stay_put_when_timings_vary_by_a_third(
    fixed_ms: float, per_row_us: float, expected: int
):
    X, y = frame()
    model = LogisticRegression().fit(X, y)
    schema = infer_schema(X)
    for fixed_noise in (0.75, 1.0, 1.33):
        for row_noise in (0.75, 1.0, 1.33):
            cost = CallCost(fixed_ms / 1000 * fixed_noise, per_row_us / 1e6 * row_noise)
            plan = plan_serving(model, schema, ServiceSettings(), cost)
            assert plan.max_batch_size == expected, (fixed_noise, row_noise, plan.reasons)
            assert plan.max_latency_ms == 1000
            assert "measured at packaging" in plan.reasons["max_batch_size"]


class _Waiting:
    """A model that waits 20 ms per call without using the CPU (as a call does while another
    process has the core): what a busy build machine adds to the wall clock."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        import time

        time.sleep(0.02)
        return np.zeros(len(X))


def test_the_call_cost_is_cpu_time_so_a_busy_machine_does_not_move_the_bento_version():
    """Time spent off the CPU is not the model's cost: a call that waits 20 ms measures as well
    under a millisecond, so the batching limits (and the Bento version that holds them) do not
    follow the build machine's load."""
    X, _ = frame()
    cost = measure_call_cost(_Waiting(), X, time_limit=2.0)
    assert cost is not None
    assert cost.fixed_s < 0.001 and cost.per_row_s < 1e-5, cost


def test_limits_set_in_the_config_win_and_an_unmeasured_model_gets_safe_defaults():
    X, y = frame()
    model = LogisticRegression().fit(X, y)
    schema = infer_schema(X)
    options = ServiceSettings(max_batch_size=8, max_latency_ms=250)
    plan = plan_serving(model, schema, options, None)
    assert (plan.max_batch_size, plan.max_latency_ms) == (8, 250)
    assert "workbench.yaml" in plan.reasons["max_batch_size"]
    fallback = plan_serving(model, schema, ServiceSettings(), None)
    assert fallback.max_batch_size == 64 and fallback.max_latency_ms >= 1000


def test_the_warm_up_row_comes_from_the_schema_alone_and_is_the_same_every_time():
    X, _ = frame()
    mixed = X.assign(n=np.arange(len(X)), flag=X["a"] > 0, colour=["red", "blue"] * (len(X) // 2))
    schema = infer_schema(mixed)
    row = example_row(schema, {"colour": "red"})
    assert row == example_row(schema, {"colour": "red"})
    assert set(row) == set(mixed.columns)
    assert isinstance(row["n"], int) and row["flag"] is False and row["colour"] == "red"


@pytest.mark.serve
def test_a_forest_is_called_once_per_batch_and_answers_exactly_like_predict(project: Path):
    """Served by scikit-learn (`service.runtime: sklearn`), a forest is asked once per batch."""
    train = pd.read_csv(project / "data" / "train.csv")
    forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)
    forest.fit(train.drop(columns="target"), train["target"])
    joblib.dump(forest, project / "models" / "model.joblib")
    edit_config(project, service={"runtime": "sklearn"})
    config = load_config(project / "workbench.yaml")
    validate(config).raise_for_gates()
    packaged = package(config)
    card = json.loads((Path(packaged.service_dir) / "model_card.json").read_text())
    assert card["serving"]["labels"] == "argmax of predict_proba"
    assert card["serving"]["rows"] == "one float array per batch"
    assert card["serving"]["max_batch_size"] == MAX_BATCH_ROWS
    settings = Settings.read(Path(packaged.service_dir))
    assert settings.labels_from_proba and settings.float_rows
    with serve(config) as server:
        result = check(server, config)
    assert result.passed, [c for c in result.checks if not c.passed]
    assert result.mismatches == [] and result.parity_rows == 143
    assert card["runtime"]["runtime"] == "sklearn" and "model.onnx" not in packaged.contents


@pytest.mark.serve
def test_a_forest_compiled_to_onnx_serves_with_parity_and_says_why(project: Path):
    """By default (`service.runtime: auto`) a forest that converts with parity on every test row
    ships as `model.onnx` and is served by onnxruntime; the model card says why and the worst
    difference; the launch checks compare with scikit-learn at 1e-6 and pass; the validate stage
    timed both runtimes."""
    train = pd.read_csv(project / "data" / "train.csv")
    forest = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0)
    forest.fit(train.drop(columns="target"), train["target"])
    joblib.dump(forest, project / "models" / "model.joblib")
    config = load_config(project / "workbench.yaml")
    validation = validate(config)
    assert validation.compiled is not None and validation.compiled.runtime == "onnx"
    assert validation.onnx_latency is not None and validation.latency is not None
    packaged = package(config)
    assert packaged.runtime == "onnx", packaged.runtime_reason
    assert "src/model.onnx" in packaged.contents
    card = json.loads((Path(packaged.service_dir) / "model_card.json").read_text())
    assert card["runtime"]["runtime"] == "onnx" and card["runtime"]["max_difference"] <= 1e-6
    assert card["runtime"]["rows_checked"] == 143 and "matches on all 143" in card["runtime"]["why"]
    assert any(p.startswith("onnxruntime==") for p in card["packages"])
    assert card["serving"]["labels"] == "one ONNX run"
    with serve(config) as server:
        result = check(server, config)
    assert result.passed, [c for c in result.checks if not c.passed]
    assert result.parity_rows == 143 and result.mismatches == []
