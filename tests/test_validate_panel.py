"""The validate panel in-process: progress through the folds, coloured gates, plots, errors."""

from __future__ import annotations

from pathlib import Path

from conftest import edit_config

from workbench.config import load_config
from workbench.widgets import ValidatePanel


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
    assert html.count("data:image/png;base64,") == 4
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
