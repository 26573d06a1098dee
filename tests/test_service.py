"""The generated service on models with every column type, served for real: typed rows, unseen
categories, auth, CORS, metadata, the exported archive, the Dockerfile and Kubernetes manifests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import joblib
import kubernetes_validate
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import edit_config
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from workbench import load_config, package, validate
from workbench.packaging import pinned_packages
from workbench.runtime import API_KEY_ENV
from workbench.serving import Server, check, serve
from workbench.serving.checks import auth_headers

pytestmark = pytest.mark.serve
SECRET = "s3cr3t-key-that-must-not-leak"


def mixed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size cm": rng.normal(10, 3, n),
            "count": rng.integers(0, 5, n),
            "flag": rng.random(n) > 0.5,
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "size cm"] = np.nan
    frame.loc[rng.random(n) < 0.1, "colour"] = None
    signal = frame["size cm"].fillna(10) + 2 * (frame["colour"] == "red") + frame["count"]
    frame["label"] = np.where(signal > 13, "yes", "no")
    return frame


def mixed_model(handle_unknown: str) -> Any:
    """The unfitted pipeline: imputers, OneHotEncoder(handle_unknown=...), LogisticRegression."""
    return make_pipeline(
        ColumnTransformer(
            [
                ("num", SimpleImputer(), ["size cm", "count"]),
                ("flag", "passthrough", ["flag"]),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown=handle_unknown),
                    ),
                    ["colour"],
                ),
            ]
        ),
        LogisticRegression(max_iter=1000),
    )


def mixed_project(folder: Path, *, handle_unknown: str, name: str) -> Path:
    """A project whose model is a ColumnTransformer pipeline over float (with NaN), int, bool
    and string-category (with None) columns, predicting string labels."""
    (folder / "data").mkdir(parents=True)
    (folder / "models").mkdir()
    train, test = mixed_frame(400, 0), mixed_frame(120, 1)
    train.to_csv(folder / "data" / "train.csv", index=False)
    test.to_csv(folder / "data" / "test.csv", index=False)
    features = ["size cm", "count", "flag", "colour"]
    model = mixed_model(handle_unknown)
    reread = pd.read_csv(folder / "data" / "train.csv")
    model.fit(reread[features], reread["label"])
    joblib.dump(model, folder / "models" / "model.joblib")
    (folder / "workbench.yaml").write_text(
        yaml.safe_dump(
            {
                "name": name,
                "model": "models/model.joblib",
                "data": {"train": "data/train.csv", "test": "data/test.csv", "target": "label"},
                "gates": {"accuracy": {"min": 0.6}},
                "service": {"cors_origins": ["http://notebook.example"]},
                "launch": {"probe_requests": 20},
            }
        )
    )
    return folder


ROW = {"size cm": 12.5, "count": 2, "flag": True, "colour": "red"}


@pytest.fixture(scope="module")
def tolerant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = mixed_project(
        tmp_path_factory.mktemp("tolerant"), handle_unknown="ignore", name="mixed_tolerant"
    )
    config = load_config(folder / "workbench.yaml")
    validate(config).raise_for_gates()
    package(config)
    return folder


def test_every_column_type_round_trips_with_parity_and_string_labels(tolerant: Path):
    config = load_config(tolerant / "workbench.yaml")
    source = (tolerant / "bentos" / "mixed_tolerant" / "service.py").read_text()
    # values around 10 (up to ~20): the next power of ten, 1e2, times a million (number_bound)
    assert "size_cm: Optional[Number] = Field(None, alias='size cm', ge=-1e+08, le=1e+08)" in source
    assert "count: Integer = Field(alias='count')" in source
    assert "flag: Boolean = Field(alias='flag')" in source
    assert "colour: Optional[Category] = Field(None, alias='colour')" in source
    with serve(config) as server:
        result = check(server, config)
        assert result.passed, [c for c in result.checks if not c.passed]
        assert result.mismatches == []
        key = auth_headers(server.api_key)
        answer = httpx.post(
            f"{server.url}/predict",
            json={"rows": [ROW, {**ROW, "size cm": None, "colour": None}]},
            headers=key,
        ).json()
        assert [a["prediction"] for a in answer] == [
            str(p)
            for p in joblib.load(tolerant / "models" / "model.joblib").predict(
                pd.DataFrame([ROW, {**ROW, "size cm": np.nan, "colour": None}])
            )
        ]
        assert set(answer[0]["probabilities"]) == {"no", "yes"}
        wrong = httpx.post(
            f"{server.url}/predict", json={"rows": [ROW, {**ROW, "count": "two"}]}, headers=key
        )
        assert wrong.status_code == 400
        assert [d["loc"] for d in wrong.json()["detail"]] == [["rows", 1, "count"]]
        unseen = httpx.post(
            f"{server.url}/predict", json={"rows": [{**ROW, "colour": "plaid"}]}, headers=key
        )
        assert unseen.status_code == 200
        assert unseen.json()[0]["warnings"] == ["colour: unseen category 'plaid'"]
        metadata = httpx.get(f"{server.url}/metadata", headers=key).json()
        assert metadata["unseen_categories"] == "accept" and metadata["task"] == "classification"
        assert [c["name"] for c in metadata["input_schema"]["columns"]] == list(ROW)


def test_a_model_that_rejects_unknown_categories_gets_the_most_frequent_one_and_a_flag(
    tmp_path: Path,
):
    folder = mixed_project(tmp_path, handle_unknown="error", name="mixed_strict")
    config = load_config(folder / "workbench.yaml")
    validate(config).raise_for_gates()
    packaged = package(config)
    assert packaged.unseen_categories == "replace"
    frequent = pd.read_csv(folder / "data" / "train.csv")["colour"].value_counts().index[0]
    with serve(config) as server:
        answer = httpx.post(
            f"{server.url}/predict",
            json={"rows": [{**ROW, "colour": "plaid"}]},
            headers=auth_headers(server.api_key),
        )
        assert answer.status_code == 200
        assert answer.json()[0]["warnings"] == [
            f"colour: unseen category 'plaid' replaced by {frequent!r}"
        ]


def test_an_api_key_guards_the_api_but_not_health_metrics_or_preflight(
    tolerant: Path, monkeypatch: pytest.MonkeyPatch
):
    config = load_config(tolerant / "workbench.yaml")
    monkeypatch.setenv(API_KEY_ENV, SECRET)
    with serve(config) as server:
        url = server.url
        body = {"rows": [ROW]}
        assert httpx.post(f"{url}/predict", json=body).status_code == 401
        wrong = httpx.post(f"{url}/predict", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": f"Bearer {SECRET}"}
        assert httpx.post(f"{url}/predict", json=body, headers=good).status_code == 200
        assert httpx.get(f"{url}/metadata").status_code == 401
        assert httpx.get(f"{url}/metadata", headers=good).status_code == 200
        for open_path in ("/livez", "/readyz", "/metrics"):
            assert httpx.get(f"{url}{open_path}").status_code == 200, open_path
        preflight = httpx.options(
            f"{url}/predict",
            headers={
                "Origin": "http://notebook.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://notebook.example"
        # workbench's own checks send the key taken from the same environment variable
        assert check(server, config).passed
    bento = Path(package(config).bento_path)
    for path in bento.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_the_exported_archive_imports_into_an_empty_store_and_serves(tolerant: Path, tmp_path):
    config = load_config(tolerant / "workbench.yaml")
    packaged = package(config)
    archive = Path(packaged.archive)
    assert archive.is_file() and archive.suffix == ".bento"
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "elsewhere")}
    imported = subprocess.run(
        [sys.executable, "-m", "bentoml", "import", str(archive)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    os.environ["BENTOML_HOME_SAVED"] = os.environ["BENTOML_HOME"]
    try:
        os.environ["BENTOML_HOME"] = env["BENTOML_HOME"]
        with Server.start(packaged.bento_tag, log_dir=tmp_path) as server:
            answer = httpx.post(
                f"{server.url}/predict", json={"rows": [ROW]}, headers=auth_headers(server.api_key)
            )
            assert answer.status_code == 200 and answer.json()[0]["prediction"] in ("yes", "no")
    finally:
        os.environ["BENTOML_HOME"] = os.environ.pop("BENTOML_HOME_SAVED")


def test_the_bento_carries_a_dockerfile_with_the_pinned_packages(tolerant: Path):
    bento = Path(package(load_config(tolerant / "workbench.yaml")).bento_path)
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    for pin in pinned_packages():
        assert pin in requirements
    assert not any(API_KEY_ENV in line and "=" in line for line in dockerfile.splitlines())


@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_kubernetes_manifests_validate_against_the_api_schema(tolerant: Path, version: str):
    packaged = package(load_config(tolerant / "workbench.yaml"))
    text = (Path(packaged.bento_path) / "src" / "deploy" / "kubernetes.yaml").read_text()
    documents = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in documents] == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
    ]
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == packaged.bento_tag
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"]
    assert SECRET not in text
    # auth is on by default: the key comes from a Secret the pod cannot start without
    (secret,) = [
        e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == API_KEY_ENV
    ]
    assert secret["optional"] is False
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert documents[0]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30


def test_an_open_api_is_only_what_service_auth_none_asks_for(tmp_path: Path):
    """`service.auth: none` packages a Bento whose manifest needs no Secret and whose OpenAPI
    declares no bearer scheme; the default requires both."""
    from workbench.packaging.kubernetes import render_kubernetes

    folder = mixed_project(tmp_path, handle_unknown="ignore", name="open_api")
    edit_config(folder, service={"auth": "none"})
    config = load_config(folder / "workbench.yaml")
    documents = list(yaml.safe_load_all(render_kubernetes("open_api", "v1", config)))
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == []
