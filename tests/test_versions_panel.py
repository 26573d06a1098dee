"""The versions panel (5 · Versions) in-process, over two real packaged versions of one model
(``two_versions`` in conftest: v1 the example model, v2 a refit with a lower ROC-AUC).

It opens with the newest version that is not promoted to act on and the promoted one to compare
with, so Compare, Promote and Roll back work without touching a list; its buttons act only where
they can; each answer replaces the last (an error clears an older result); its messages speak of
its own controls, never of command-line flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import copy_release_project

from workbench.config import load_config
from workbench.versions import promote
from workbench.widgets import VersionsPanel
from workbench.widgets.base import WIDE


@pytest.fixture
def release(two_versions: Path, tmp_path: Path) -> tuple[Path, str, str]:
    folder = copy_release_project(two_versions, tmp_path / "project")
    tags = json.loads((folder / "versions.json").read_text())
    return folder, tags["v1"], tags["v2"]


def enabled(panel: VersionsPanel) -> set[str]:
    return {b.description for b in panel.buttons if not b.disabled}


def test_it_opens_on_the_newest_version_against_the_promoted_one(release):
    """Nothing promoted: the newest (v2) against the one before (v1); Roll back is off (nothing
    to roll back to). With v1 promoted: v2 against v1 all the same. The labels are whole."""
    folder, v1, v2 = release
    config = load_config(folder / "workbench.yaml")
    panel = VersionsPanel(config)
    assert (panel.choice.value, panel.other.value) == (v2, v1)
    assert enabled(panel) == {"Promote", "Compare"}
    assert panel.title == "5 · Versions"
    for control in (panel.choice, panel.other, panel.reason, panel.force):
        assert control.style.description_width == WIDE["description_width"]
    promote(config, v1, reason="first release")
    panel = VersionsPanel(config)
    assert (panel.choice.value, panel.other.value) == (v2, v1)
    panel.choice.value = v1  # the promoted one: nothing to promote, nothing to compare with v1
    panel.other.value = v1
    assert enabled(panel) == set()


def test_compare_promote_and_roll_back_without_touching_a_list(release):
    """v1 promoted before: Compare (v1 against v2), Promote v2 refused by its champion gate in
    the panel's words (the force box, not --force), the comparison cleared under that error;
    force it; Roll back returns to v1. A missing reason names the reason box."""
    folder, v1, v2 = release
    config = load_config(folder / "workbench.yaml")
    promote(config, v1, reason="first release")
    panel = VersionsPanel(config)

    panel.compare_button.click()
    assert panel.comparison is not None and (panel.comparison.a, panel.comparison.b) == (v1, v2)
    assert f"compared {v1} (A) with {v2} (B)" in panel.status.value and panel.results.value

    panel.promote_button.click()
    assert "write why in the reason box" in panel.status.value
    assert panel.results.value == ""  # the comparison does not stay under the error

    panel.reason.value = "recall matters more"
    panel.promote_button.click()
    message = panel.status.value
    assert "wb-error" in message and "champion" in message and "force the promotion" in message
    assert "--" not in message and "workbench promote" not in message
    assert panel.versions is not None and panel.versions.promoted == v1

    panel.force.value = True
    panel.promote_button.click()
    assert f"promoted {v2} (forced)" in panel.status.value
    assert panel.versions is not None and panel.versions.promoted == v2
    assert "Roll back" in enabled(panel) and "Promote" not in enabled(panel)

    panel.rollback_button.click()
    assert f"rolled back to {v1}" in panel.status.value
    assert panel.versions is not None and panel.versions.promoted == v1
    assert (panel.choice.value, panel.other.value) == (v2, v1)  # the choices stayed
    assert "wb-promoted" in panel.table.value
