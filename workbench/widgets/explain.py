"""A chosen test row's explanation, under the validate panel: pick a row, see its plot."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from workbench.reports.validation import explanation_row_html
from workbench.results import ExplanationResult


class ExplanationView(w.VBox):
    """A picker of the explained test rows and the chosen row's waterfall (empty until
    :meth:`show` is given a validation's explanations)."""

    def __init__(self) -> None:
        self.explanation: ExplanationResult | None = None
        self.row = w.Dropdown(options=[], description="explain row", disabled=True)
        self.row.add_class("wb-explain-row")
        self.plot = w.HTML(value="")
        self.plot.add_class("wb-explain-plot")
        self.row.observe(self._chosen, names="value")
        super().__init__([self.row, self.plot])

    def show(self, explanation: ExplanationResult | None) -> None:
        self.explanation = explanation
        examples = [] if explanation is None or explanation.error else explanation.examples
        self.plot.value = ""
        self.row.options = [
            (f"test row {e.row}: predicted {e.prediction}", e.row) for e in examples
        ]
        self.row.disabled = not examples
        if examples:
            self.row.value = examples[0].row
            self._chosen({"new": examples[0].row})

    def _chosen(self, change: dict[str, Any]) -> None:
        if self.explanation is not None and change["new"] is not None:
            self.plot.value = explanation_row_html(self.explanation, int(change["new"]))
