"""`workbench init`: the scaffold's gates follow the model's task (given, or inferred from the
model already in the project), and a live-metric gate of the other task is refused at validation,
before anything is written, instead of at packaging."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from workbench.cli import main
from workbench.config import load_config
from workbench.errors import ConfigError
from workbench.validation import validate


def regression_project(folder: Path) -> Path:
    """A regressor and its data where `workbench init` expects them."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    frame["target"] = frame @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=200)
    (folder / "models").mkdir(parents=True)
    (folder / "data").mkdir()
    model = LinearRegression().fit(frame[["a", "b", "c"]], frame["target"])
    joblib.dump(model, folder / "models" / "model.joblib")
    frame.iloc[:150].to_csv(folder / "data" / "train.csv", index=False)
    frame.iloc[150:].to_csv(folder / "data" / "test.csv", index=False)
    return folder


def test_a_regressor_in_the_project_gets_regression_gates(tmp_path: Path, capsys):
    folder = regression_project(tmp_path / "diabetes")
    assert main(["init", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "task: regression, inferred from models/model.joblib" in out
    config = load_config(folder / "workbench.yaml")
    assert config.task == "regression"
    assert set(config.gates) == {"r2"} and set(config.monitor.gates) == {"r2"}
    assert validate(config).passed  # the scaffold validates as it is


def test_the_task_can_be_given_and_without_one_the_scaffold_says_how_to_change_it(
    tmp_path: Path, capsys
):
    assert main(["init", str(tmp_path / "given"), "--task", "regression"]) == 0
    assert set(load_config(tmp_path / "given" / "workbench.yaml").monitor.gates) == {"r2"}
    assert main(["init", str(tmp_path / "blank")]) == 0
    out = capsys.readouterr().out
    assert "task: not known yet" in out and "--task regression --force" in out
    text = (tmp_path / "blank" / "workbench.yaml").read_text()
    assert "for a regressor use r2" in text
    assert set(load_config(tmp_path / "blank" / "workbench.yaml").monitor.gates) == {"accuracy"}


def test_a_live_gate_of_the_other_task_is_refused_at_validation_before_any_output(
    tmp_path: Path,
):
    """The scaffold made before the regressor arrived (accuracy under monitor.gates): validate
    names the field and writes nothing, rather than passing and leaving packaging to fail."""
    folder = tmp_path / "late"
    assert main(["init", str(folder)]) == 0
    regression_project(tmp_path / "model")
    for sub in ("models", "data"):
        for file in (tmp_path / "model" / sub).iterdir():
            (folder / sub / file.name).write_bytes(file.read_bytes())
    text = (folder / "workbench.yaml").read_text().replace("  accuracy: {min: 0.8}\n", "", 1)
    (folder / "workbench.yaml").write_text(text.replace("gates:  ", "gates: {}  ", 1))
    config = load_config(folder / "workbench.yaml")
    assert set(config.monitor.gates) == {"accuracy"}
    with pytest.raises(ConfigError, match=r"monitor\.gates: 'accuracy' is not a regression metric"):
        validate(config)
    assert not (folder / ".workbench" / "validation.json").exists()


def test_the_scaffold_readme_links_nowhere_it_should_not(tmp_path: Path):
    assert main(["init", str(tmp_path / "p")]) == 0
    readme = (tmp_path / "p" / "README.md").read_text()
    assert "https://github.com/)" not in readme and "deployment-workbench" in readme
