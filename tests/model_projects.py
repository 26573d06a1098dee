"""Model projects as real ones are, for tests of models with more than scikit-learn.

Each writes, under a folder, the data (a category column and two numbers; a string or integer
label), a fitted model and a ``workbench.yaml``: a LightGBM or XGBoost Pipeline, or a Pipeline
holding a transformer from the project's own code, beside the config (``features.py``) or in a
package that ``code:`` names (``src/shop``). Models with project code are fitted in a subprocess
run from the project folder, as the data scientist's own session would, so this process never
imports those modules before the stages do.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import yaml

ROWS = 800


def frame(*, seed: int = 0, rows: int = ROWS) -> pd.DataFrame:
    """Two numbers, a category and a yes/no label that depends on all three."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "a": rng.normal(size=rows).round(4),
            "b": rng.normal(size=rows).round(4) + 3.0,
            "colour": rng.choice(["red", "green", "blue"], size=rows),
        }
    )
    signal = data["a"] - 0.7 * (data["b"] - 3.0) + (data["colour"] == "red") * 1.2
    noisy = signal + rng.normal(scale=0.6, size=rows)
    data["label"] = np.where(noisy > 0.3, "yes", "no")
    return data


def write_data(folder: Path, *, integer_labels: bool = False) -> pd.DataFrame:
    """``data/train.csv`` and ``data/test.csv``; returns the training rows."""
    data = frame()
    if integer_labels:
        data["label"] = (data["label"] == "yes").astype(int)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    train, test = data.iloc[: ROWS * 3 // 4], data.iloc[ROWS * 3 // 4 :]
    train.to_csv(folder / "data" / "train.csv", index=False)
    test.to_csv(folder / "data" / "test.csv", index=False)
    return train


def write_config(folder: Path, prefix: str, **extra: Any) -> Path:
    """A ``workbench.yaml`` with a unique name, lenient gates and a short launch probe."""
    raw: dict[str, Any] = {
        "name": f"{prefix}_{uuid.uuid4().hex[:8]}",
        "model": "models/model.joblib",
        "data": {"train": "data/train.csv", "test": "data/test.csv", "target": "label"},
        "task": "classification",
        "gates": {"accuracy": {"min": 0.6}},
        "validation": {"cv_folds": 2, "importance_top": 0, "champion": False},
        "launch": {"probe_requests": 20},
        **extra,
    }
    path = folder / "workbench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _encoder() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    return ColumnTransformer(
        [("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])],
        remainder="passthrough",
    )


def boosted_pipeline(kind: str, *, integer_labels: bool = False) -> Any:
    """An unfitted OneHotEncoder + LightGBM or XGBoost pipeline."""
    from sklearn.pipeline import Pipeline

    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        model: Any = LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1, random_state=0)
    else:
        from xgboost import XGBClassifier

        model = XGBClassifier(n_estimators=40, max_depth=3, random_state=0, n_jobs=1)
    return Pipeline([("encode", _encoder()), ("model", model)])


def boosted_project(folder: Path, kind: str, *, runtime: str = "auto") -> Path:
    """A LightGBM (string labels) or XGBoost (integer labels, as XGBoost requires) Pipeline."""
    integer_labels = kind == "xgboost"
    train = write_data(folder, integer_labels=integer_labels)
    model = boosted_pipeline(kind).fit(train.drop(columns="label"), train["label"])
    (folder / "models").mkdir(exist_ok=True)
    joblib.dump(model, folder / "models" / "model.joblib")
    return write_config(folder, kind, service={"runtime": runtime, "auth": "none"})


FEATURES = '''
"""The project's own feature step."""
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class Ratio(BaseEstimator, TransformerMixin):
    """Adds a / b as a column."""

    def fit(self, X, y=None):
        self.columns_ = list(X.columns)
        return self

    def transform(self, X):
        out = pd.DataFrame(X, columns=self.columns_).copy()
        out["ratio"] = out["a"] / out["b"]
        return out
'''

SHOP_TRANSFORMERS = '''
"""Shop's transformers (imports its sibling module relatively)."""
from sklearn.base import BaseEstimator, TransformerMixin

from .scaling import clip


class Clipper(BaseEstimator, TransformerMixin):
    """Clips the numbers at the training quantiles."""

    def fit(self, X, y=None):
        self.low_ = X[["a", "b"]].quantile(0.01)
        self.high_ = X[["a", "b"]].quantile(0.99)
        return self

    def transform(self, X):
        out = X.copy()
        out[["a", "b"]] = clip(out[["a", "b"]], self.low_, self.high_)
        return out
'''

SHOP_SCALING = """
import numpy as np


def clip(values, low, high):
    return values.clip(lower=np.asarray(low), upper=np.asarray(high), axis=1)
"""

FIT_WITH_STEP = """
import sys
import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
{import_step}
train = pd.read_csv("data/train.csv")
encode = ColumnTransformer(
    [("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])], remainder="passthrough"
)
model = Pipeline([("step", {step}()), ("encode", encode), ("model", LogisticRegression())])
model.fit(train.drop(columns="label"), train["label"])
joblib.dump(model, "models/model.joblib")
"""


def fit_in_project(folder: Path, *, import_step: str, step: str, path: str = ".") -> None:
    """Fit the Pipeline with the project's step in a subprocess run from ``folder`` (with
    ``path`` on its import path, as the data scientist's session had it)."""
    (folder / "models").mkdir(exist_ok=True)
    script = FIT_WITH_STEP.format(import_step=import_step, step=step)
    subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {path!r})\n{script}"],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=120,
    )


def features_project(folder: Path) -> Path:
    """``features.py`` beside ``workbench.yaml``; the model's first step is its ``Ratio``."""
    write_data(folder)
    (folder / "features.py").write_text(textwrap.dedent(FEATURES))
    fit_in_project(folder, import_step="from features import Ratio", step="Ratio")
    return write_config(folder, "features", service={"auth": "none"})


def shop_project(folder: Path) -> Path:
    """A package ``src/shop`` that ``code:`` names; the model's first step is its ``Clipper``,
    which imports ``shop.scaling``; ``shop.unused`` is imported by nothing."""
    write_data(folder)
    package = folder / "src" / "shop"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""Shop: the project\'s package."""\n')
    (package / "transformers.py").write_text(textwrap.dedent(SHOP_TRANSFORMERS))
    (package / "scaling.py").write_text(textwrap.dedent(SHOP_SCALING))
    (package / "unused.py").write_text("VALUE = 1\n")
    fit_in_project(
        folder, import_step="from shop.transformers import Clipper", step="Clipper", path="src"
    )
    return write_config(folder, "shop", code=["src/shop"], service={"auth": "none"})
