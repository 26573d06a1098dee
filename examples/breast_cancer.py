"""Train the bundled example: a scaled logistic regression on scikit-learn's breast cancer data.

Writes ``models/model.joblib``, ``data/train.csv``, ``data/test.csv`` and ``data/drifted.csv``
(live traffic after a documented shift, for the monitoring demo: :data:`DRIFT`) under the folder
given (default: the repository root, where ``workbench.yaml`` points). The data ships inside
scikit-learn, so nothing is downloaded; the split and the fit are seeded, so every run writes the
same files.

    python examples/breast_cancer.py [DEST]
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DRIFT_FACTOR = 1.15
DRIFT = (
    "data/drifted.csv: 1,000 rows drawn with replacement (seed 1) from the test rows, with every "
    "measurement multiplied by 1.15, as if a recalibrated imaging pipeline read every feature "
    "15 % higher; the labels are the true ones, so the replayed feedback shows accuracy falling"
)
DRIFT_ROWS = 1000


def drifted(test: pd.DataFrame, target: str = "target") -> pd.DataFrame:
    """The test rows after the shift :data:`DRIFT` describes."""
    rows = test.sample(n=DRIFT_ROWS, replace=True, random_state=1).reset_index(drop=True)
    features = [c for c in rows.columns if c != target]
    rows[features] = rows[features] * DRIFT_FACTOR
    return rows


def write_example(dest: Path) -> None:
    """Fit the example pipeline and write the model and the train/test CSV files under ``dest``."""
    frame = load_breast_cancer(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.25, random_state=0, stratify=frame["target"])
    features = train.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(features, train["target"])

    (dest / "models").mkdir(parents=True, exist_ok=True)
    (dest / "data").mkdir(parents=True, exist_ok=True)
    joblib.dump(model, dest / "models" / "model.joblib")
    train.to_csv(dest / "data" / "train.csv", index=False)
    test.to_csv(dest / "data" / "test.csv", index=False)
    drifted(test).to_csv(dest / "data" / "drifted.csv", index=False)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    write_example(target)
    print(f"example model and data written under {target}")
