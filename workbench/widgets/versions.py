"""The versions panel: every packaged version, promote one, roll back, compare two.

It opens with the newest version that is not promoted as the one to act on and the promoted
version (else the one before the newest) to compare it with, so Compare and Promote work without
touching a list. Promote acts on a version that is not the promoted one and needs a reason;
Roll back acts when an earlier promoted version exists; Compare when two different versions are
chosen. Each button is one call to :func:`~workbench.versions.promote`,
:func:`~workbench.versions.rollback` or :func:`~workbench.versions.compare_versions`.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from workbench.config import Config
from workbench.errors import VersionError
from workbench.reports.versions import compare_html, promotion_html, versions_html
from workbench.results import CompareResult, PromotionResult, VersionsResult
from workbench.versions import compare_versions, list_versions, promote, rollback
from workbench.widgets.base import WIDE, Panel, button


def default_choices(versions: VersionsResult) -> tuple[str | None, str | None]:
    """(the version to act on, the version to compare it with) a panel opens with: the newest
    version that is not promoted, and the promoted one (else the next newest)."""
    tags = [v.tag for v in versions.versions]
    candidates = [t for t in tags if t != versions.promoted] or tags
    choice = candidates[0] if candidates else None
    others = [t for t in tags if t != choice]
    other = versions.promoted if versions.promoted in others else (others[0] if others else None)
    return choice, other


class VersionsPanel(Panel):
    title = "5 · Versions"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.versions: VersionsResult | None = None
        self.result: PromotionResult | None = None
        self.comparison: CompareResult | None = None
        self.table = w.HTML(value="")
        self.table.add_class("wb-versions-table")
        self.choice = w.Dropdown(
            description="version", options=[], style=WIDE, layout=w.Layout(width="32em")
        )
        self.choice.add_class("wb-choice")
        self.other = w.Dropdown(
            description="compare with", options=[], style=WIDE, layout=w.Layout(width="32em")
        )
        self.other.add_class("wb-other")
        self.reason = w.Text(
            description="reason",
            placeholder="why (recorded in the history)",
            style=WIDE,
            layout=w.Layout(width="32em"),
        )
        self.reason.add_class("wb-reason")
        self.force = w.Checkbox(
            description="force (promote although a gate fails; recorded)",
            value=False,
            indent=False,
            style=WIDE,
            layout=w.Layout(width="auto"),
        )
        self.promote_button = button("Promote", icon="arrow-up")
        self.promote_button.on_click(self.guarded(lambda: self.promote()))
        self.rollback_button = button("Roll back", style="warning", icon="undo")
        self.rollback_button.on_click(self.guarded(self.rollback))
        self.compare_button = button("Compare", style="info", icon="columns")
        self.compare_button.on_click(self.guarded(self.compare))
        controls = [
            self.table,
            self.choice,
            self.reason,
            w.HBox([self.promote_button, self.force], layout=w.Layout(align_items="center")),
            self.rollback_button,
            w.HBox([self.other, self.compare_button], layout=w.Layout(align_items="center")),
        ]
        super().__init__(controls)
        for box in (self.choice, self.other):
            box.observe(self._choice_changed, names="value")
        self.refresh()
        self.choice.value, self.other.value = default_choices(self.versions_or_empty())

    def versions_or_empty(self) -> VersionsResult:
        assert self.versions is not None  # refresh() ran in __init__
        return self.versions

    def _choice_changed(self, _change: Any) -> None:
        self.refresh_controls()

    def enabled(self) -> set[w.Button]:
        versions = self.versions
        on: set[w.Button] = set()
        if versions is None:
            return on
        if self.choice.value and self.choice.value != versions.promoted:
            on.add(self.promote_button)
        if versions.rollback_target is not None:
            on.add(self.rollback_button)
        if self.choice.value and self.other.value and self.choice.value != self.other.value:
            on.add(self.compare_button)
        return on

    def refresh(self) -> None:
        """Re-read the store and the history file (a view update, not a stage); the chosen
        versions stay chosen while they exist."""
        self.versions = list_versions(self.config.root, self.config.name)
        self.table.value = versions_html(self.versions)
        tags = [v.tag for v in self.versions.versions]
        for box in (self.choice, self.other):
            kept = box.value if box.value in tags else None
            box.options = tags
            box.value = kept
        if not tags:
            self.say(f"no packaged version of {self.config.name} yet: build one in 2 · Package")
        self.refresh_controls()

    def promote(self, version: str | None = None) -> None:
        """Promote ``version`` (a tag or a prefix; default: the chosen one)."""
        if not str(self.reason.value).strip():
            raise VersionError(
                "write why in the reason box (it is recorded in the history), then press Promote"
            )
        version = version or self.choice.value or ""
        self.show_state("working", f"promoting {version}")
        self.result = promote(
            self.config, version, reason=self.reason.value, force=self.force.value
        )
        self._done(f"promoted {self.result.version}")

    def rollback(self) -> None:
        self.show_state("working", "rolling back")
        self.result = rollback(self.config, reason=self.reason.value)
        self._done(f"rolled back to {self.result.version}")

    def compare(self) -> None:
        self.show_state("working", "comparing")
        self.comparison = compare_versions(
            self.config, self.other.value or "", self.choice.value or ""
        )
        self.results.value = compare_html(self.comparison)
        self.say(f"compared {self.comparison.a} (A) with {self.comparison.b} (B)", kind="ok")
        self.show_state("done")

    def _done(self, message: str) -> None:
        assert self.result is not None
        self.results.value = promotion_html(self.result)
        self.refresh()
        self.say(message + (" (forced)" if self.result.forced else ""), kind="ok")
        self.show_state("done", f"promoted: {self.versions_or_empty().promoted}")
