"""The versions panel: every packaged version, promote one, roll back, compare two."""

from __future__ import annotations

import ipywidgets as w

from workbench.config import Config
from workbench.reports.versions import compare_html, promotion_html, versions_html
from workbench.results import CompareResult, PromotionResult, VersionsResult
from workbench.versions import compare_versions, list_versions, promote, rollback
from workbench.widgets.base import Panel, button


class VersionsPanel(Panel):
    title = "4 · Versions"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.versions: VersionsResult | None = None
        self.result: PromotionResult | None = None
        self.comparison: CompareResult | None = None
        self.table = w.HTML(value="")
        self.table.add_class("wb-versions-table")
        self.choice = w.Dropdown(description="version", options=[], layout=w.Layout(width="420px"))
        self.other = w.Dropdown(
            description="compare with", options=[], layout=w.Layout(width="420px")
        )
        self.reason = w.Text(
            description="reason",
            placeholder="why (recorded in the history)",
            layout=w.Layout(width="420px"),
        )
        self.force = w.Checkbox(description="force (promote although a gate fails)", value=False)
        self.promote_button = button("Promote", icon="arrow-up")
        self.promote_button.on_click(self.guarded(self.promote))
        self.rollback_button = button("Roll back", style="warning", icon="undo")
        self.rollback_button.on_click(self.guarded(self.rollback))
        self.compare_button = button("Compare", style="info", icon="columns")
        self.compare_button.on_click(self.guarded(self.compare))
        controls = [
            self.table,
            self.choice,
            self.reason,
            self.force,
            w.HBox([self.promote_button, self.rollback_button]),
            w.HBox([self.other, self.compare_button]),
        ]
        super().__init__(controls)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the store and the history file (a view update, not a stage)."""
        self.versions = list_versions(self.config.root, self.config.name)
        self.table.value = versions_html(self.versions)
        tags = [v.tag for v in self.versions.versions]
        self.choice.options = tags
        self.other.options = tags
        if self.versions.promoted in tags:
            self.other.value = self.versions.promoted

    def promote(self) -> None:
        self.result = promote(
            self.config, self.choice.value or "", reason=self.reason.value, force=self.force.value
        )
        self._done(f"promoted {self.result.version}")

    def rollback(self) -> None:
        self.result = rollback(self.config, reason=self.reason.value)
        self._done(f"rolled back to {self.result.version}")

    def compare(self) -> None:
        self.comparison = compare_versions(
            self.config, self.other.value or "", self.choice.value or ""
        )
        self.results.value = compare_html(self.comparison)
        self.say(f"compared {self.comparison.a} (A) with {self.comparison.b} (B)", kind="ok")

    def _done(self, message: str) -> None:
        assert self.result is not None
        self.results.value = promotion_html(self.result)
        self.refresh()
        self.say(message + (" (forced)" if self.result.forced else ""), kind="ok")
