"""A free-text column (fed to a TfidfVectorizer) packaged and served for real: typed as a string,
none of its training values in any file of the Bento or of its stored model but the pickle (and a
compiled graph, which hold the vocabulary), answered by a real ``bentoml serve``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from workbench import load_config, package, validate
from workbench.monitoring import drift_report
from workbench.runtime.columns import MAX_TEXT_CHARS
from workbench.runtime.settings import Settings
from workbench.serving import check, serve
from workbench.serving.checks import auth_headers

pytestmark = pytest.mark.serve
ALPHABET = np.array(list("bcdfghjklmnpqrstvwxz"))
#: Words that carry the label; every other word is a random one-off token.
GOOD, BAD = "splendid", "dreadful"


def _token(rng: np.random.Generator) -> str:
    return "".join(rng.choice(ALPHABET, 9))


def review_frame(n: int, seed: int) -> pd.DataFrame:
    """Reviews of 3 to 8 random 9-letter tokens (distinctive: none is an English word or
    appears in any code) plus one word carrying the label, and a price."""
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.5
    words = rng.integers(3, 9, n)
    reviews = [
        " ".join([*(_token(rng) for _ in range(k)), GOOD if good else BAD])
        for k, good in zip(words, label, strict=True)
    ]
    return pd.DataFrame(
        {"review": reviews, "price": rng.normal(20, 5, n), "label": np.where(label, "up", "down")}
    )


def text_model() -> Any:
    return make_pipeline(
        ColumnTransformer(
            [("text", TfidfVectorizer(), "review"), ("num", "passthrough", ["price"])]
        ),
        LogisticRegression(max_iter=1000),
    )


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A validated and packaged project whose model vectorizes the `review` column."""
    folder = tmp_path_factory.mktemp("reviews")
    (folder / "data").mkdir()
    (folder / "models").mkdir()
    review_frame(300, 0).to_csv(folder / "data" / "train.csv", index=False)
    review_frame(80, 1).to_csv(folder / "data" / "test.csv", index=False)
    train = pd.read_csv(folder / "data" / "train.csv")
    model = text_model().fit(train[["review", "price"]], train["label"])
    joblib.dump(model, folder / "models" / "model.joblib")
    (folder / "workbench.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "reviews",
                "model": "models/model.joblib",
                "data": {"train": "data/train.csv", "test": "data/test.csv", "target": "label"},
                "gates": {"accuracy": {"min": 0.9}},
                "launch": {"probe_requests": 10},
            }
        )
    )
    config = load_config(folder / "workbench.yaml")
    validate(config).raise_for_gates()
    package(config)
    return folder


def _training_values(folder: Path) -> tuple[list[str], list[str]]:
    """The training reviews, and their random tokens (the vocabulary but the label words)."""
    texts = pd.read_csv(folder / "data" / "train.csv")["review"].tolist()
    tokens = sorted({t for text in texts for t in text.split()} - {GOOD, BAD})
    return texts, tokens


def test_no_training_text_is_in_any_file_of_the_bento_or_its_stored_model(reviews: Path):
    """Every file of the Bento (service.py, model card, OpenAPI, drift reference, profile,
    bento.yaml, ...) and of the stored model but its pickle is free of the training reviews and
    of every one of their tokens; only the pickle (and model.onnx when the compiled graph serves)
    holds the vocabulary. The schema types the column as text, saying why."""
    config = load_config(reviews / "workbench.yaml")
    result = package(config)  # already built: same tags, nothing rebuilt
    texts, tokens = _training_values(reviews)
    assert len(tokens) > 1000
    vocabulary_files = {"saved_model.pkl", "model.onnx"}
    checked = 0
    for root in (Path(result.bento_path), Path(result.model_path)):
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            content = path.read_bytes()
            checked += 1
            assert not [t for t in texts if t.encode() in content], path
            if path.name not in vocabulary_files:
                leaked = [t for t in tokens if t.encode() in content]
                assert not leaked, f"{path} holds training tokens {leaked[:3]}"
    assert checked >= 10
    card = json.loads((Path(result.bento_path) / "src" / "model_card.json").read_text())
    review = card["input_schema"]["columns"][0]
    assert review["kind"] == "text" and review["categories"] is None
    assert review["text_reason"] == "the model feeds it to a TfidfVectorizer"
    service = (Path(result.bento_path) / "src" / "service.py").read_text()
    assert "review: Text = Field(alias='review')" in service
    assert Settings.read(Path(result.bento_path) / "src").categories == {}
    # runtime auto: a graph that does not convert, load or match falls back with the reason
    # (here onnxruntime cannot load the converted TfidfVectorizer: see docs/benchmarks.md).
    if result.runtime == "sklearn":
        assert result.runtime_reason.startswith(
            "serving with scikit-learn, as no ONNX graph is the same model as Pipeline: "
        ), result.runtime_reason
        assert card["runtime"]["why"] == result.runtime_reason
        assert not (Path(result.bento_path) / "src" / "model.onnx").exists()


def test_the_served_bento_answers_text_and_refuses_numbers_and_overlong_text(reviews: Path):
    """A real `bentoml serve`: a review the model never saw is answered as the in-memory model
    answers it, with no "unseen" warning; a number or a text over the length cap is a 400
    naming the row and the field; the launch stage's own checks pass."""
    config = load_config(reviews / "workbench.yaml")
    model = joblib.load(reviews / "models" / "model.joblib")
    rows = [
        {"review": f"brand new words and {GOOD}", "price": 18.5},
        {"review": f"zzz {BAD} ünïcode ✓", "price": 31.0},
    ]
    with serve(config) as server:
        key = auth_headers(server.api_key)
        answer = httpx.post(f"{server.url}/predict", json={"rows": rows}, headers=key)
        assert answer.status_code == 200, answer.text
        served = answer.json()
        assert [a["prediction"] for a in served] == model.predict(pd.DataFrame(rows)).tolist()
        assert [a["warnings"] for a in served] == [[], []]
        for bad in (12345, "x" * (MAX_TEXT_CHARS + 1)):
            refused = httpx.post(
                f"{server.url}/predict",
                json={"rows": [rows[0], {**rows[1], "review": bad}]},
                headers=key,
            )
            assert refused.status_code == 400, refused.text
            assert [d["loc"] for d in refused.json()["detail"]] == [["rows", 1, "review"]]
        launched = check(server, config)
        assert launched.passed, [c for c in launched.checks if not c.passed]


def test_a_text_column_drifts_on_its_lengths_and_missing_share_not_on_its_words(
    reviews: Path, tmp_path: Path
):
    """Offline drift against the Bento's reference: new reviews of new words but the same
    shape do not drift; twice as long reviews, or a third of them missing, do. No "unseen"
    share is reported for text."""
    bento = package(load_config(reviews / "workbench.yaml")).bento_path
    same = review_frame(600, 7)
    longer = same.assign(review=same["review"] + " " + same["review"])
    gaps = same.assign(review=same["review"].where(np.arange(600) % 3 != 0))
    verdicts = {}
    for name, frame in {"same": same, "longer": longer, "gaps": gaps}.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        result = drift_report(bento, tmp_path / f"{name}.csv")
        (review,) = [c for c in result.columns if c.column == "review"]
        assert review.kind == "text" and review.unseen_share is None
        verdicts[name] = review.drifted
    assert verdicts == {"same": False, "longer": True, "gaps": True}
