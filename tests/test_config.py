"""workbench.yaml: loading, the one-line errors for bad files, and saving back."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import (
    Gate,
    ValidationOptions,
    find_config,
    load_config,
    save_config,
    save_gates,
)
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


def test_a_notebook_finds_the_config_from_the_project_root_notebooks_or_below(tmp_path):
    """The stage notebooks' default `config = "workbench.yaml"`: found in the working directory
    (papermill from the project root), in a folder above it (from notebooks/, or JupyterLab's
    kernel there) or as given; the nearest wins."""
    config = write(tmp_path, GOOD)
    (tmp_path / "notebooks" / "deeper").mkdir(parents=True)
    assert find_config("workbench.yaml", start=tmp_path) == config
    assert find_config("workbench.yaml", start=tmp_path / "notebooks") == config
    assert find_config("workbench.yaml", start=tmp_path / "notebooks" / "deeper") == config
    assert find_config("../workbench.yaml", start=tmp_path / "notebooks") == config
    assert find_config(str(config), start="/") == config
    nearer = write(tmp_path / "notebooks", GOOD)
    assert find_config("workbench.yaml", start=tmp_path / "notebooks" / "deeper") == nearer


def test_a_config_found_nowhere_says_how_to_give_it_to_papermill(tmp_path):
    with pytest.raises(ConfigError, match=r"'workbench\.yaml' not found, nor a workbench\.yaml in"):
        find_config("workbench.yaml", start=tmp_path)
    with pytest.raises(ConfigError, match=r"-p config PATH") as absent:
        find_config(tmp_path / "gone.yaml", start=tmp_path)
    assert "nor a" not in str(absent.value)  # an absolute path is taken as it is


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


def test_the_validation_section_has_defaults_so_old_configs_stay_valid(tmp_path):
    options = load_config(write(tmp_path, GOOD)).validation
    assert (options.cv_folds, options.seed, options.champion) == (5, 0, True)
    assert (options.importance_top, options.importance_repeats) == (10, 5)
    assert options.primary_metric is None  # chosen from the task and the model


def test_validation_options_load_and_save_back(tmp_path):
    path = write(tmp_path, GOOD + "validation: {cv_folds: 3, seed: 7, primary_metric: f1}\n")
    config = load_config(path)
    assert (config.validation.cv_folds, config.validation.seed) == (3, 7)
    save_config(config, path)
    assert load_config(path).validation == config.validation


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{cv_folds: 1}", "cv_folds must be 0"),
        ("{cv_folds: -2}", "greater than or equal to 0"),
        ("{primary_metric: auc}", "unknown primary metric 'auc'"),
        ("{colour: blue}", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_validation_option_is_named(tmp_path, section, message):
    with pytest.raises(ConfigError, match="field `validation") as info:
        load_config(write(tmp_path, GOOD + f"validation: {section}\n"))
    assert message in str(info.value)


def test_cv_baseline_and_champion_gates_are_known_names(tmp_path):
    gates = "{cv_roc_auc: {min: 0.9}, beat_baseline: {min: 0.05}, champion: {min: -0.01}}"
    config = load_config(write(tmp_path, GOOD.replace("{roc_auc: {min: 0.9}}", gates)))
    assert list(config.gates) == ["cv_roc_auc", "beat_baseline", "champion"]
    with pytest.raises(ConfigError, match=r"unknown metric 'cv_auc'"):
        load_config(write(tmp_path, GOOD.replace("roc_auc", "cv_auc")))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{auth: optional}", "'api_key' or 'none'"),
        ("{max_body_mb: 0}", "greater than 0"),
        ("{max_request_rows: 0}", "greater than or equal to 1"),
        ("{timeout: 2, max_latency_ms: 5000}", "longer than the request timeout of 2 s"),
    ],
)
def test_a_bad_service_limit_is_named_with_the_fix(tmp_path, section, message):
    """Service limits that cannot work are refused up front: an unknown auth mode, a zero limit,
    or a queue bound longer than the request timeout (a queued request would 504 first)."""
    with pytest.raises(ConfigError, match="field `service") as info:
        load_config(write(tmp_path, GOOD + f"service: {section}\n"))
    assert message in str(info.value)


def test_the_service_defaults_fail_closed_and_are_bounded(tmp_path):
    """Auth is on unless `service.auth: none`; bodies, rows per request and the queue are
    bounded by default."""
    service = load_config(write(tmp_path, GOOD)).service
    assert service.auth == "api_key"
    assert service.max_body_mb == 4 and service.max_request_rows == 5000
    assert service.timeout * 1000 >= 1000


COMMENTED = """\
# churn model — agreed with the risk team (2026-11)
name: demo   # the service name

model: models/model.joblib
data: {train: data/train.csv, test: data/test.csv, target: target}

# quality bar: do not lower without a ticket
gates:
  roc_auc:
    min: 0.95     # hard floor
  f1:
    max: 1.0
    min: 0.90   # written 0.90 on purpose
  accuracy: {min: 0.8}  # inline
service:
  cors_origins:
    - "https://a.example"   # quoted on purpose
    - 'https://b.example'
  auth: "api_key"
launch:
  probe_requests: 50
# trailing comment
"""


def changed_lines(before: str, after: str) -> list[str]:
    import difflib

    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_saving_an_unchanged_config_leaves_a_commented_file_byte_for_byte(tmp_path):
    """Comments, blank lines, quotes, flow maps and key order all survive a save unchanged."""
    path = write(tmp_path, COMMENTED)
    save_config(load_config(path), path)
    assert path.read_text() == COMMENTED


def test_saving_gates_changes_only_the_changed_thresholds(tmp_path):
    """Save gates rewrites the lines of changed thresholds (their comments kept) and adds a new
    gate; every other byte of the person's file stays as written."""
    path = write(tmp_path, COMMENTED)
    config = load_config(path)
    gates = {**config.gates, "roc_auc": Gate(min=0.97), "f1": Gate(min=0.9, max=0.99)}
    save_gates({**gates, "recall": Gate(min=0.5)}, path)
    after = path.read_text()
    assert changed_lines(COMMENTED, after) == [
        "-    min: 0.95     # hard floor",
        "+    min: 0.97     # hard floor",
        "-    max: 1.0",
        "+    max: 0.99",
        "+  recall:",
        "+    min: 0.5",
    ]
    assert load_config(path).gates["recall"] == Gate(min=0.5)


def test_save_gates_keeps_what_changed_in_the_file_since_it_was_loaded(tmp_path):
    """Only the gates are written: an option edited in the file after the panel loaded it stays."""
    path = write(tmp_path, COMMENTED)
    panel_config = load_config(path)
    path.write_text(COMMENTED.replace("probe_requests: 50", "probe_requests: 80"))
    save_gates({**panel_config.gates, "accuracy": Gate(min=0.85)}, path)
    again = load_config(path)
    assert again.launch.probe_requests == 80 and again.gates["accuracy"] == Gate(min=0.85)
    # the comment keeps its column, so comments aligned in a column stay aligned
    assert "  accuracy: {min: 0.85} # inline" in path.read_text().splitlines()


def test_an_option_the_file_leaves_out_is_added_alone(tmp_path):
    """A section the file does not have gets only the key that differs from its default."""
    path = write(tmp_path, COMMENTED)
    config = load_config(path)
    save_config(config.model_copy(update={"validation": ValidationOptions(cv_folds=3)}), path)
    assert changed_lines(COMMENTED, path.read_text()) == ["+validation:", "+  cv_folds: 3"]


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"min": 0.9, "max": 0.5}, "gate `roc_auc`: min 0.9 is greater than max 0.5"),
        ({}, "gate `roc_auc`: a gate needs `min`, `max` or both"),
        ({"min": "high"}, "gate `roc_auc` `min` (value: 'high'): Input should be a valid number"),
    ],
)
def test_an_impossible_gate_is_one_config_error_naming_it(tmp_path, gate, message):
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError) as info:
        config.with_gates({"roc_auc": gate})
    assert str(info.value).startswith(message) and "change the threshold" in str(info.value)
