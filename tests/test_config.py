"""workbench.yaml: loading, the one-line errors for bad files, and saving back."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import Gate, load_config, save_config
from workbench.errors import ConfigError

GOOD = """
name: demo
model: models/model.joblib
data: {train: data/train.csv, test: data/test.csv, target: target}
gates: {roc_auc: {min: 0.9}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workbench.yaml"
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    config = load_config(write(tmp_path, GOOD))
    assert config.model_path == tmp_path / "models" / "model.joblib"
    assert config.train_path == tmp_path / "data" / "train.csv"
    assert config.task is None  # inferred later from the model


def test_missing_file_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml.*not found.*--config"):
        load_config(tmp_path / "nope.yaml")


def test_malformed_yaml_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "name: [unclosed"))


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.replace("name: demo", "name: Demo Model"), "name"),
        (GOOD.replace("target: target", "target: ''"), "data.target"),
        (GOOD.replace("model: models/model.joblib\n", ""), "model"),
        (GOOD.replace("{min: 0.9}", "{}"), "gates.roc_auc"),
        (GOOD.replace("{min: 0.9}", "{min: 0.9, max: 0.5}"), "gates.roc_auc"),
        (GOOD + "colour: blue\n", "colour"),
        (GOOD + "task: clustering\n", "task"),
    ],
)
def test_a_bad_field_is_named_in_the_error(tmp_path, text, field):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert f"field `{field}`" in str(info.value)
    assert "fix that field" in str(info.value)


def test_a_gate_on_an_unknown_metric_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown metric 'auc'.*roc_auc"):
        load_config(write(tmp_path, GOOD.replace("roc_auc", "auc")))


def test_a_config_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))


def test_saved_gates_load_back_identically(tmp_path):
    path = write(tmp_path, GOOD)
    changed = load_config(path).with_gates({"roc_auc": Gate(min=0.99), "f1": Gate(max=1.0)})
    save_config(changed, path)
    again = load_config(path)
    assert again.gates == {"roc_auc": Gate(min=0.99), "f1": Gate(max=1.0)}
    assert again.model == "models/model.joblib"  # relative paths stay relative
