"""The validate panel in-process: progress through the folds, coloured gates, plots, errors."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest
from conftest import edit_config
from papermill.exceptions import PapermillExecutionError

from workbench.config import load_config
from workbench.errors import StageOrderError
from workbench.packaging import package
from workbench.pipeline.run import own_kernel
from workbench.widgets import PackagePanel, ValidatePanel


def test_the_panel_shows_progress_gate_colours_and_plots(project: Path):
    edit_config(
        project,
        gates={"roc_auc": {"min": 0.9999}, "beat_baseline": {"min": 0.2}},
        validation={"cv_folds": 3, "importance_repeats": 2},
    )
    panel = ValidatePanel(load_config(project / "workbench.yaml"))
    seen: list[str] = []
    panel.step.observe(lambda change: seen.append(change["new"]), names="value")
    assert panel.bounds[("beat_baseline", "min")].value == 0.2

    panel.run_button.click()
    assert panel.result is not None and not panel.result.passed
    assert "cross-validation: fold 2 of 3" in seen
    assert panel.progress.value == 1.0 and panel.progress.bar_style == "danger"
    html = panel.results.value
    assert "wb-row-fail" in html and "wb-row-pass" in html
    assert html.count("data:image/png;base64,") == 6  # 2 explanations
    assert "some gates failed" in panel.status.value

    panel.bounds[("roc_auc", "min")].value = 0.9
    panel.run_button.click()
    assert panel.result.passed and panel.progress.bar_style == "success"


def test_bad_input_in_the_panel_is_one_message_and_clears_the_old_result(project: Path):
    path = project / "workbench.yaml"
    panel = ValidatePanel(load_config(path))
    panel.run_button.click()
    assert panel.result is not None
    (project / "data" / "test.csv").write_text("")
    panel.run_button.click()
    assert panel.result is None and panel.results.value == ""
    assert "wb-error" in panel.status.value and "test data file" in panel.status.value


def test_buttons_are_disabled_while_validating_and_enabled_after_even_on_error(project: Path):
    """While Validate runs both buttons are off; after a run, and after a failed one, both are
    on again (a second click cannot start a second run of the same stage)."""
    edit_config(project, validation={"cv_folds": 0, "importance_top": 0, "champion": False})
    panel = ValidatePanel(load_config(project / "workbench.yaml"))
    during: list[tuple[bool, bool]] = []
    panel.step.observe(
        lambda _: during.append((panel.run_button.disabled, panel.save_button.disabled)),
        names="value",
    )
    panel.run_button.click()
    assert panel.result is not None and during and set(during) == {(True, True)}
    assert not panel.run_button.disabled and not panel.save_button.disabled

    (project / "data" / "test.csv").write_text("")
    panel.run_button.click()
    assert "wb-error" in panel.status.value
    assert not panel.run_button.disabled and not panel.save_button.disabled


def test_an_impossible_gate_in_the_panel_is_one_line_not_a_traceback(project: Path):
    """min above max typed in the panel: Validate and Save gates each show one error line naming
    the gate, raise nothing, and leave workbench.yaml as it was."""
    path = edit_config(project, gates={"roc_auc": {"min": 0.9, "max": 0.99}})
    before = path.read_text()
    panel = ValidatePanel(load_config(path), config_path=path)
    panel.bounds[("roc_auc", "min")].value = 0.995
    for btn in (panel.run_button, panel.save_button):
        panel.status.value = ""
        btn.click()  # raises nothing
        assert "wb-error" in panel.status.value and "Traceback" not in panel.status.value
        assert "gate `roc_auc`: min 0.995 is greater than max 0.99" in panel.status.value
        assert "<details>" not in panel.status.value  # one line, nothing folded beneath
    assert panel.result is None and panel.last_traceback == ""
    assert path.read_text() == before


def test_a_gate_lowered_in_the_panel_but_not_saved_cannot_be_packaged(project: Path):
    """The gate bypass: roc_auc needs 0.9999 in workbench.yaml (the model fails it); lowered to
    0.9 in the panel, Validate passes. Unsaved, packaging refuses, naming the gate and saying what
    to do, in the package panel and in the package notebook run headless by papermill. Saving
    the gates makes the record match the file."""
    path = edit_config(
        project,
        gates={"roc_auc": {"min": 0.9999}},
        validation={"cv_folds": 0, "importance_top": 0, "champion": False},
    )
    panel = ValidatePanel(load_config(path), config_path=path)
    panel.bounds[("roc_auc", "min")].value = 0.9
    panel.run_button.click()
    assert panel.result is not None and panel.result.passed
    record = panel.result.settings
    assert record is not None and record.values["gates.roc_auc.min"] == 0.9

    expected = (
        "packaging refused: the last validation was made under other gates or options than "
        "workbench.yaml: gates.roc_auc.min: validated with 0.9, the config has 0.9999; "
        "save the gates or validate again"
    )
    package_panel = PackagePanel(load_config(path))
    package_panel.build_button.click()
    assert package_panel.result is None
    assert expected in package_panel.status.value and "wb-error" in package_panel.status.value

    with own_kernel() as kernel, pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(project / "notebooks" / "02_package.ipynb"),
            str(project / "package-run.ipynb"),
            parameters={"config": str(path), "run_dir": None, "interactive": False},
            kernel_name=kernel,
            cwd=str(project / "notebooks"),
            progress_bar=False,
        )
    assert info.value.ename == "StageOrderError" and expected in info.value.evalue
    assert not (project / ".workbench" / "package.json").exists()

    panel.save_button.click()
    assert "gates saved" in panel.status.value
    panel.result.raise_for_settings(load_config(path), needed_by="packaging")  # now matches


def test_a_validation_option_changed_since_validating_is_named(project: Path):
    """Options count as gates do: cv_folds edited in workbench.yaml after validating is named."""
    options = {"cv_folds": 0, "importance_top": 0, "champion": False}
    path = edit_config(project, validation=options)
    panel = ValidatePanel(load_config(path))
    panel.run_button.click()
    assert panel.result is not None
    edit_config(project, validation={**options, "cv_folds": 3})
    with pytest.raises(StageOrderError) as info:
        package(load_config(path))
    assert "validation.cv_folds: validated with 0, the config has 3" in str(info.value)
    assert str(info.value).endswith("save the gates or validate again")
