"""Explanations: which method a model gets, that its contributions add up and agree with the
library's own, per input column; and ``POST /explain`` in a served Bento (auth, row rules, the
bound on rows, the OpenAPI and the model card), including a forest's Bento served from a clean
environment of its own requirements (shap installed only there, only then)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import copy_project, edit_config
from model_projects import frame
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from workbench import load_config, package, validate
from workbench.errors import ModelError
from workbench.explanation import additivity_error, choose_explanation
from workbench.runtime.explainer import BACKGROUND_FILE, PERMUTATIONS
from workbench.schema import infer_schema, pipeline_encoders
from workbench.serving.launch import serve


def explained(model: Any, data: pd.DataFrame, target: str) -> tuple[Any, Any, pd.DataFrame]:
    """(the chosen method, its explainer, the served test rows) for ``model`` fitted on
    ``data``'s first 600 rows."""
    X, y = data.drop(columns=target), data[target]
    model.fit(X.iloc[:600], y.iloc[:600])
    schema = infer_schema(X, encoders=pipeline_encoders(model))
    classes = np.asarray(model.classes_).tolist() if hasattr(model, "classes_") else None
    chosen = choose_explanation(model, X.iloc[:600], X.iloc[600:], schema, classes=classes)
    return chosen, chosen.explainer(model, schema, classes), schema.as_served(X.iloc[600:700])


@pytest.fixture(scope="module")
def shop() -> pd.DataFrame:
    return frame(seed=3)


def test_linear_pipeline_is_explained_exactly_and_agrees_with_shaps_linear_explainer(
    shop: pd.DataFrame,
) -> None:
    """Scaled logistic regression: contributions coef x (x - mean) per input column, in the
    predicted class's log-odds, equal to shap.LinearExplainer's on the same rows."""
    import shap

    numbers = shop[["a", "b", "label"]]
    model = make_pipeline(StandardScaler(), LogisticRegression())
    chosen, explainer, rows = explained(model, numbers, "label")
    assert (chosen.spec.method, chosen.spec.output) == ("linear", "log-odds")
    labels, value, base, phi = explainer.explain(rows)
    assert np.max(np.abs(value - base - phi.sum(axis=1))) < 1e-9
    scaled = model[0].transform(rows)
    background = model[0].transform(numbers.drop(columns="label").iloc[:600])
    # shap's masker would sample 100 rows: given the mean (and covariance), it uses all of them
    moments = (background.mean(axis=0), np.cov(background.T))
    reference = shap.LinearExplainer(model[-1], moments).shap_values(scaled)
    sign = np.where(np.asarray(labels) == model.classes_[1], 1.0, -1.0)[:, None]
    # 600 training rows: the chooser's sample is all of them, so both use the same means
    assert np.allclose(chosen.spec.means, background.mean(axis=0), atol=1e-12)
    assert np.allclose(phi, sign * reference, atol=1e-9)


def test_binary_margin_of_a_row_predicted_zero_is_minus_class_ones(shop: pd.DataFrame) -> None:
    """A row predicted `no` explains the log-odds of `no`: minus the decision function."""
    model = make_pipeline(StandardScaler(), LogisticRegression())
    _, explainer, rows = explained(model, shop[["a", "b", "label"]], "label")
    labels, value, _, _ = explainer.explain(rows)
    margin = model.decision_function(rows)
    for label, got, m in zip(labels, value, margin, strict=True):
        assert got == pytest.approx(m if label == "yes" else -m)
    assert json.loads(explainer.answers(rows.head(1))[0])["output"].endswith(f"class {labels[0]}")


def one_hot_forest() -> Pipeline:
    encode = ColumnTransformer(
        [("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])], remainder="passthrough"
    )
    return Pipeline([("encode", encode), ("model", RandomForestClassifier(30, random_state=0))])


def test_forest_behind_one_hot_is_tree_shap_summed_back_to_each_input_column(
    shop: pd.DataFrame,
) -> None:
    """TreeSHAP on the encoded features (probability of the predicted class), the three one-hot
    features' contributions added into `colour`: the same sums as shap's own values."""
    import shap

    model = one_hot_forest()
    chosen, explainer, rows = explained(model, shop, "label")
    spec = chosen.spec
    assert (spec.method, spec.output) == ("tree_shap", "probability")
    assert spec.features == [2, 2, 2, 0, 1]  # three colours, then a and b (passthrough)
    labels, value, base, phi = explainer.explain(rows)
    assert np.max(np.abs(value - base - phi.sum(axis=1))) < 1e-9
    assert phi.shape == (len(rows), 3)
    encoded = model[:-1].transform(rows)
    reference = np.asarray(shap.TreeExplainer(model[-1]).shap_values(encoded))
    index = [list(model.classes_).index(label) for label in labels]
    per_row = reference[np.arange(len(rows)), :, index]
    grouped = np.stack([per_row[:, 3], per_row[:, 4], per_row[:, :3].sum(axis=1)], axis=1)
    assert np.allclose(phi, grouped, atol=1e-12)


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_boosters_use_their_own_exact_tree_shap(shop: pd.DataFrame, library: str) -> None:
    """LightGBM's pred_contrib / XGBoost's pred_contribs in the raw score (log-odds), per input
    column, agreeing with shap.TreeExplainer on the same booster."""
    import shap

    if library == "lightgbm":
        from lightgbm import LGBMClassifier

        last: Any = LGBMClassifier(n_estimators=30, verbose=-1, random_state=0)
    else:
        from xgboost import XGBClassifier

        last = XGBClassifier(n_estimators=30, max_depth=3, random_state=0, n_jobs=1)
    data = shop.assign(label=(shop["label"] == "yes").astype(int))
    encode = ColumnTransformer(
        [("colour", OneHotEncoder(sparse_output=False), ["colour"])], remainder="passthrough"
    )
    model = Pipeline([("encode", encode), ("model", last)])
    chosen, explainer, rows = explained(model, data, "label")
    assert (chosen.spec.method, chosen.spec.output) == (library, "log-odds")
    labels, value, base, phi = explainer.explain(rows)
    assert np.max(np.abs(value - base - phi.sum(axis=1))) < 1e-4
    reference = np.asarray(shap.TreeExplainer(last).shap_values(model[:-1].transform(rows)))
    sign = np.where(np.asarray(labels) == 1, 1.0, -1.0)[:, None]
    grouped = np.stack([reference[:, 3], reference[:, 4], reference[:, :3].sum(axis=1)], axis=1)
    assert np.allclose(phi, sign * grouped, atol=1e-4)


def test_other_models_get_sampled_shapley_with_its_sample_size_stated(shop: pd.DataFrame) -> None:
    """k-nearest neighbours: permutation over the input columns, 8 permutations x 16 background
    rows, adding up exactly to the probability minus its mean over the background rows."""
    encode = ColumnTransformer(
        [("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])], remainder="passthrough"
    )
    model = Pipeline([("encode", encode), ("model", KNeighborsClassifier())])
    chosen, explainer, rows = explained(model, shop, "label")
    spec = chosen.spec
    assert (spec.method, spec.output, spec.permutations) == ("permutation", "probability", 8)
    assert spec.sample_size == PERMUTATIONS * spec.background_rows == 128
    assert "KNeighborsClassifier" in spec.reason
    assert additivity_error(explainer, rows.head(10)) < 1e-12
    background = model.predict_proba(chosen.background).mean(axis=0)
    assert spec.base_values == pytest.approx(background.tolist())


def test_a_step_mixing_columns_is_explained_over_the_input_columns_instead(
    shop: pd.DataFrame,
) -> None:
    """PCA before a logistic regression: no feature belongs to one column, so the linear method
    is passed over, with the reason, for the model-agnostic one."""
    model = make_pipeline(StandardScaler(), PCA(n_components=2), LogisticRegression())
    chosen, _, _ = explained(model, shop[["a", "b", "label"]], "label")
    assert chosen.spec.method == "permutation"
    assert "several columns ['a', 'b']" in chosen.spec.reason


def test_a_regressor_explains_its_predicted_value(shop: pd.DataFrame) -> None:
    model = make_pipeline(StandardScaler(), Ridge())
    chosen, explainer, rows = explained(model, shop[["a", "b"]], "b")
    assert (chosen.spec.method, chosen.spec.output) == ("linear", "value")
    answer = json.loads(explainer.answers(rows.head(1))[0])
    assert answer["output"] == "predicted value"
    total = answer["base_value"] + sum(c["contribution"] for c in answer["contributions"])
    assert total == pytest.approx(answer["value"]) == pytest.approx(model.predict(rows.head(1))[0])


def test_a_classifier_with_no_method_at_all_is_one_clear_error(shop: pd.DataFrame) -> None:
    """A linear SVM behind a PCA: no exact method, and no probabilities for the other."""
    model = make_pipeline(StandardScaler(), PCA(n_components=2), LinearSVC())
    with pytest.raises(ModelError, match="service.explain: false"):
        explained(model, shop[["a", "b", "label"]], "label")


@pytest.fixture(scope="module")
def explaining(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> Any:
    """The example project packaged with ``service.explain: true`` and served."""
    folder = copy_project(example_files, tmp_path_factory.mktemp("explain"))
    raw = load_config(folder / "workbench.yaml")
    edit_config(
        folder,
        service={**raw.service.model_dump(exclude_defaults=True), "explain": True},
        validation={"cv_folds": 0, "importance_top": 0, "champion": False},
    )
    config = load_config(folder / "workbench.yaml")
    validate(config)
    packaged = package(config)
    server = serve(config, portable=False)
    yield config, packaged, server
    server.stop()


def test_an_explaining_bento_packaged_again_is_the_same_version(explaining: Any) -> None:
    """The chosen method, its base values and its measured additivity are part of settings.json
    (so of the content-derived version): choosing again gives the same bytes."""
    config, packaged, _ = explaining
    again = package(config)
    assert (again.bento_tag, again.created) == (packaged.bento_tag, False)


@pytest.mark.serve
def test_served_explain_answers_each_row_behind_the_key_with_predicts_row_rules(
    explaining: Any,
) -> None:
    config, packaged, server = explaining
    test = pd.read_csv(config.test_path).drop(columns="target")
    rows = test.head(3).to_dict(orient="records")
    key = {"Authorization": f"Bearer {server.api_key}"}
    assert httpx.post(f"{server.url}/explain", json={"rows": rows}).status_code == 401
    answer = httpx.post(f"{server.url}/explain", json={"rows": rows}, headers=key)
    assert answer.status_code == 200, answer.text
    predicted = httpx.post(f"{server.url}/predict", json={"rows": rows}, headers=key).json()
    for got, prediction in zip(answer.json(), predicted, strict=True):
        assert got["prediction"] == prediction["prediction"]
        assert got["output"] == f"log-odds of class {got['prediction']}"
        total = got["base_value"] + sum(c["contribution"] for c in got["contributions"])
        assert total == pytest.approx(got["value"], abs=1e-9)
        sizes = [abs(c["contribution"]) for c in got["contributions"][:-1]]
        assert sizes == sorted(sizes, reverse=True)  # largest first, then (others)
        assert got["contributions"][-1]["column"] == "(others)"
    bad = httpx.post(
        f"{server.url}/explain", json={"rows": [{**rows[0], "mean radius": "x"}]}, headers=key
    )
    assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["rows", 0, "mean radius"]
    many = httpx.post(f"{server.url}/explain", json={"rows": rows * 34}, headers=key)
    assert many.status_code == 413 and "100 rows" in many.json()["error"]
    form = httpx.post(
        f"{server.url}/explain",
        content=b"a=1",
        headers={**key, "content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    assert httpx.get(f"{server.url}/explain", headers=key).status_code == 405


@pytest.mark.serve
def test_metadata_and_openapi_state_the_method_and_the_bento_needs_no_shap_for_it(
    explaining: Any,
) -> None:
    _, packaged, server = explaining
    key = {"Authorization": f"Bearer {server.api_key}"}
    card = httpx.get(f"{server.url}/metadata", headers=key).json()["explanation"]
    assert card["method"] == "linear" and card["exact"] and card["sample_size"] is None
    assert card["output"] == "log-odds" and len(card["base_values"]) == 2
    assert card["additivity_error"] < 1e-9 and card["max_rows"] == 100
    operation = httpx.get(f"{server.url}/docs.json").json()["paths"]["/explain"]["post"]
    assert {"200", "400", "401", "413", "415", "429", "503"} <= set(operation["responses"])
    assert operation["requestBody"]["required"] is True
    requirements = (Path(packaged.bento_path) / "env/python/requirements.txt").read_text()
    assert "shap" not in requirements  # a linear model's contributions need no library


@pytest.mark.serve
def test_forest_bento_explains_from_a_clean_environment_with_shap_pinned(
    tmp_path: Path, example_files: Path
) -> None:
    """A random forest explained by TreeSHAP: its Bento pins shap and what shap requires, and
    served from a clean environment of only those requirements, /explain answers in probability
    (its ONNX graph serves /predict; /explain loads the pickle)."""
    folder = copy_project(example_files, tmp_path)
    train = pd.read_csv(folder / "data" / "train.csv")
    forest = RandomForestClassifier(40, max_depth=6, random_state=0)
    joblib.dump(
        forest.fit(train.drop(columns="target"), train["target"]),
        folder / "models" / "model.joblib",
    )
    edit_config(
        folder,
        service={"explain": True},
        validation={"cv_folds": 0, "importance_top": 0, "champion": False},
    )
    config = load_config(folder / "workbench.yaml")
    validation = validate(config)
    assert validation.explanation is not None and validation.explanation.method == "tree_shap"
    packaged = package(config)
    requirements = (Path(packaged.bento_path) / "env/python/requirements.txt").read_text().split()
    assert {"shap", "numba", "llvmlite", "slicer"} <= {r.split("==")[0] for r in requirements}
    assert not (Path(packaged.bento_path) / "src" / BACKGROUND_FILE).exists()
    test = pd.read_csv(config.test_path).drop(columns="target").head(5)
    with serve(config, portable=True) as server:
        key = {"Authorization": f"Bearer {server.api_key}"}
        rows = test.to_dict(orient="records")
        answer = httpx.post(f"{server.url}/explain", json={"rows": rows}, headers=key, timeout=30)
        assert answer.status_code == 200, answer.text
        proba = forest.predict_proba(test)
        for got, p in zip(answer.json(), proba, strict=True):
            assert got["value"] == pytest.approx(p.max(), abs=1e-9)
            total = got["base_value"] + sum(c["contribution"] for c in got["contributions"])
            assert total == pytest.approx(got["value"], abs=1e-9)
