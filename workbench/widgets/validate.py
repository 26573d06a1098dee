"""The validate panel: edit gate thresholds, run validation, see the gate table; save the gates."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import ipywidgets as w

from workbench.config import Config, save_gates
from workbench.reports import to_html
from workbench.results import ValidationResult
from workbench.validation import validate
from workbench.widgets.base import Panel, button
from workbench.widgets.explain import ExplanationView


class ValidatePanel(Panel):
    title = "1 · Validate"

    def __init__(
        self,
        config: Config,
        *,
        run_dir: str | Path | None = None,
        config_path: str | Path | None = None,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.config_path = Path(config_path) if config_path else None
        self.result: ValidationResult | None = None
        self.bounds: dict[tuple[str, str], w.FloatText] = {}
        rows = []
        for metric, gate in config.gates.items():
            cells: list[w.Widget] = [w.Label(metric, layout=w.Layout(width="120px"))]
            for side in ("min", "max"):
                value = getattr(gate, side)
                if value is not None:
                    box = w.FloatText(
                        value=value, description=side, step=0.01, layout=w.Layout(width="200px")
                    )
                    box.add_class(f"wb-gate-{metric}-{side}")
                    self.bounds[(metric, side)] = box
                    cells.append(box)
            rows.append(w.HBox(cells))
        self.progress = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="", layout=w.Layout(width="300px")
        )
        self.progress.add_class("wb-progress")
        self.step = w.Label(value="")
        self.step.add_class("wb-step")
        self.run_button = button("Validate", icon="check")
        self.save_button = button("Save gates", style="", icon="save")
        self.run_button.on_click(self.guarded(self.run))
        self.save_button.on_click(self.guarded(self.save))
        options = config.validation
        cv = f"{options.cv_folds}-fold cross-validation" if options.cv_folds else "no CV"
        intro = w.HTML(
            f"Model <code>{html.escape(config.model)}</code>, test data "
            f"<code>{html.escape(config.data.test)}</code>, target "
            f"<code>{html.escape(config.data.target)}</code>; {cv}, seed {options.seed}. "
            + ("Gates:" if rows else "No gates configured (add them under <code>gates:</code>).")
        )
        self.explanation = ExplanationView()
        super().__init__(
            [
                intro,
                *rows,
                w.HBox([self.run_button, self.save_button, self.progress, self.step]),
            ],
            footer=[self.explanation],
        )

    def edited_config(self) -> Config:
        """The config with the thresholds as currently typed in the panel (an impossible gate,
        such as min above max, is one :class:`~workbench.errors.ConfigError` naming it)."""
        gates: dict[str, dict[str, Any]] = {}
        for metric, gate in self.config.gates.items():
            gates[metric] = gate.model_dump()
            for side in ("min", "max"):
                if (metric, side) in self.bounds:
                    gates[metric][side] = float(self.bounds[(metric, side)].value)
        return self.config.with_gates(gates)

    def _progress(self, step: str, fraction: float) -> None:
        self.progress.value = fraction
        self.progress.bar_style = "info" if fraction < 1.0 else ""
        self.step.value = step
        self.say(step)

    def run(self) -> None:
        self.progress.value = 0.0
        self.progress.bar_style = ""
        self.result = None
        self.results.value = ""
        self.explanation.show(None)
        self.show_state("working", "validating")
        self.result = validate(
            self.edited_config(), run_dir=self.run_dir, on_progress=self._progress
        )
        self.progress.bar_style = "success" if self.result.passed else "danger"
        self.results.value = to_html(self.result)
        self.explanation.show(self.result.explanation)
        self.say(
            "all gates pass" if self.result.passed else "some gates failed",
            kind="pass" if self.result.passed else "fail",
        )
        self.show_state("done")

    def save(self) -> None:
        path = self.config_path or self.config.root / "workbench.yaml"
        save_gates(self.edited_config().gates, path)
        self.say(f"gates saved to {path}", kind="ok")
