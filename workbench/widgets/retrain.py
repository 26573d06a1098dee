"""The retrain panel: choose the new labelled rows (a file, or a capture folder), check them and
their split, retrain: fit, validate, package, shadow and promote only if every gate holds.

A small state machine (:class:`~workbench.widgets.base.Panel`): **Check rows** acts in every
state; **Retrain** only once the rows now chosen (file, capture folder, seed) are checked against
the promoted version. Changing a choice, or a retrain (which may promote another version), asks
for a check again. Each button is one call to :func:`~workbench.retraining.check_retrain` or
:func:`~workbench.retraining.retrain`.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import ipywidgets as w

from workbench.config import Config
from workbench.reports import to_html
from workbench.results import NewRows, RetrainResult
from workbench.retraining import check_retrain, retrain
from workbench.runtime.settings import CAPTURE_DIR_ENV
from workbench.widgets.base import Panel, button
from workbench.widgets.score import data_files


class RetrainPanel(Panel):
    title = "7 · Retrain"

    def __init__(  # noqa: PLR0913 - keyword-only: the notebook's parameters, as given
        self,
        config: Config,
        *,
        data: str | None = None,
        capture: str | None = None,
        seed: int | None = None,
        model_out: str | None = None,
        run_dir: str | None = None,
    ) -> None:
        self.config = config
        self.model_out = model_out
        self.run_dir = run_dir
        self.rows: NewRows | None = None
        self.result: RetrainResult | None = None
        files = data_files(config.root)
        self.data = w.Combobox(
            value=data or "",
            options=files,
            placeholder="labelled rows: a CSV or Parquet file (empty: the capture's labels)",
            description="new rows",
            ensure_option=False,
            layout=w.Layout(width="36em"),
        )
        self.capture = w.Text(
            value=capture or "",
            placeholder=f"capture folder (empty: ${CAPTURE_DIR_ENV}"
            + (f" = {os.environ[CAPTURE_DIR_ENV]})" if os.environ.get(CAPTURE_DIR_ENV) else ")"),
            description="capture",
            layout=w.Layout(width="36em"),
        )
        self.seed = w.BoundedIntText(
            value=config.retrain.seed if seed is None else seed,
            min=0,
            max=2**31 - 1,
            description="seed",
            layout=w.Layout(width="14em"),
        )
        self.check_button = button("Check rows", style="info", icon="check")
        self.check_button.on_click(self.guarded(self.check))
        self.retrain_button = button("Retrain", icon="refresh")
        self.retrain_button.on_click(self.guarded(self.retrain))
        intro = w.HTML(
            f"Fits a challenger to <code>{html.escape(config.name)}</code>'s training rows and the "
            "new labelled rows, validates it against the promoted version on the same test rows, "
            "packages it, shadows it on recent traffic and promotes it only if every gate holds. "
            "<code>workbench.yaml</code> is not changed."
        )
        controls = [
            intro,
            self.data,
            self.capture,
            self.seed,
            w.HBox([self.check_button, self.retrain_button]),
        ]
        super().__init__(controls)
        for box in (self.data, self.capture, self.seed):
            box.observe(self._choice_changed, names="value")
        self.show_state("idle", "check the new rows")

    def _choice_changed(self, _change: Any) -> None:
        """Another file, capture folder or seed: what was checked no longer holds."""
        self.rows = None
        if not self.busy:
            self.show_state("idle", "check the new rows")

    def enabled(self) -> set[w.Button]:
        checked = self.rows is not None
        return {self.check_button, self.retrain_button} if checked else {self.check_button}

    def _inputs(self) -> dict[str, str | None]:
        return {
            "data": self.data.value.strip() or None,
            "capture": self.capture.value.strip() or None,
        }

    def check(self) -> None:
        self.rows = None
        self.show_state("working", "checking the rows")
        rows = check_retrain(self.config, **self._inputs(), seed=int(self.seed.value))
        self.results.value = to_html(rows)
        self.say(
            f"{rows.rows:,} new rows: {rows.train_rows:,} to train, {rows.test_rows:,} to test",
            kind="ok",
        )
        self.rows = rows
        self.show_state("done", "rows checked: retrain when ready")

    def retrain(self) -> None:
        self.say("retraining ...")
        self.show_state("working", "retraining")
        self.rows = None  # the promoted version may change: check again before another retrain
        self.result = retrain(
            self.config,
            **self._inputs(),
            seed=int(self.seed.value),
            run_dir=self.run_dir,
            model_out=self.model_out,
            on_step=lambda line: self.say(line),
        )
        self.results.value = to_html(self.result)
        result = self.result
        folder = Path(result.run_dir).name
        if result.outcome == "refused":
            self.say(f"refused ({'; '.join(result.refused_by)}): {folder}", kind="fail")
        else:
            self.say(f"{result.bento_tag} {result.outcome}: {folder}", kind="pass")
        self.show_state("done", result.outcome)
