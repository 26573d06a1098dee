"""The panels in-process: set values, click, and check what the core produced."""

from __future__ import annotations

from pathlib import Path

import bentoml
import httpx
import yaml

from workbench.config import load_config
from workbench.widgets import LaunchPanel, PackagePanel, ValidatePanel


def test_validate_panel_is_prefilled_from_the_config(project: Path):
    panel = ValidatePanel(load_config(project / "workbench.yaml"))
    assert panel.bounds[("roc_auc", "min")].value == 0.95
    assert panel.bounds[("accuracy", "min")].value == 0.9


def test_raising_a_threshold_in_the_panel_fails_the_gate_and_saving_writes_it(project: Path):
    path = project / "workbench.yaml"
    panel = ValidatePanel(load_config(path), config_path=path)
    panel.run_button.click()
    assert panel.result is not None and panel.result.passed
    assert "wb-pass" in panel.results.value and "all gates pass" in panel.status.value
    assert panel.progress.value == 1.0

    panel.bounds[("roc_auc", "min")].value = 0.9999
    panel.run_button.click()
    assert not panel.result.passed
    assert [g.metric for g in panel.result.failed] == ["roc_auc"]
    assert "wb-fail" in panel.results.value and "some gates failed" in panel.status.value

    panel.save_button.click()
    assert yaml.safe_load(path.read_text())["gates"]["roc_auc"] == {"min": 0.9999}
    assert load_config(path).gates["roc_auc"].min == 0.9999


def test_package_panel_refusal_is_shown_not_raised(project: Path):
    path = project / "workbench.yaml"
    validate_panel = ValidatePanel(load_config(path))
    validate_panel.bounds[("roc_auc", "min")].value = 0.9999
    validate_panel.run_button.click()
    panel = PackagePanel(validate_panel.edited_config())
    panel.build_button.click()
    assert panel.result is None
    assert "gate(s) failed" in panel.status.value and "wb-error" in panel.status.value


def test_package_then_launch_panels_build_serve_check_and_stop(project: Path):
    config = load_config(project / "workbench.yaml")
    ValidatePanel(config).run_button.click()
    pack = PackagePanel(config)
    pack.build_button.click()
    assert pack.result is not None
    assert pack.result.bento_tag in pack.results.value
    assert bentoml.bentos.get(pack.result.bento_tag)
    assert "class " in pack.source.value and "def predict" in pack.source.value

    panel = LaunchPanel(config)
    assert "stopped" in panel.light.value and panel.stop_button.disabled
    panel.start_button.click()
    try:
        assert panel.server is not None and panel.server.running
        assert "running" in panel.light.value and panel.server.url in panel.light.value
        assert httpx.get(f"{panel.server.url}/readyz").status_code == 200
        panel.check_button.click()
        assert panel.result is not None and panel.result.passed
        assert "parity" in panel.results.value
    finally:
        panel.stop_button.click()
    assert not panel.server.running
    assert "stopped" in panel.light.value and not panel.start_button.disabled
