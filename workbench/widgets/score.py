"""The score panel: choose a file, score it with the packaged Bento, see progress, the summary
and the drift table of the scored rows."""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as w

from workbench.config import Config
from workbench.reports import to_html
from workbench.results import ScoreResult
from workbench.scoring import ChunkDone, score
from workbench.widgets.base import Panel, button

SUFFIXES = (".csv", ".parquet", ".pq")


def data_files(root: Path) -> list[str]:
    """CSV and Parquet files under the project's ``data/`` (relative to ``root``)."""
    folder = root / "data"
    if not folder.is_dir():
        return []
    return sorted(
        str(p.relative_to(root)) for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES
    )


class ScorePanel(Panel):
    title = "5 · Score"

    def __init__(self, config: Config, *, bento: str | None = None) -> None:
        self.config = config
        self.result: ScoreResult | None = None
        files = data_files(config.root)
        self.input = w.Combobox(
            value=files[-1] if files else "",
            options=files,
            placeholder="a CSV or Parquet file, a folder or a glob of parts",
            description="input",
            ensure_option=False,
            layout=w.Layout(width="36em"),
        )
        self.bento = w.Text(
            value=bento or config.name,
            description="Bento",
            layout=w.Layout(width="36em"),
        )
        self.out = w.Text(
            value="",
            placeholder="default: scored/<input name>.parquet",
            description="output",
            layout=w.Layout(width="36em"),
        )
        self.on_error = w.ToggleButtons(
            options=["fail", "skip"], value="skip", description="bad rows"
        )
        self.progress = w.IntProgress(
            value=0, min=0, max=1, description="rows", layout=w.Layout(width="36em")
        )
        self.score_button = button("Score", icon="play")
        self.score_button.on_click(self.guarded(self.run))
        intro = w.HTML(
            "Scores every row of the file with the Bento's model (its own row rules: a row the "
            "service would refuse is listed with the reason), writes Parquet predictions and "
            f"checks the rows for drift against <code>{html.escape(config.name)}</code>'s "
            "training data."
        )
        super().__init__(
            [
                intro,
                self.input,
                self.bento,
                self.out,
                self.on_error,
                self.score_button,
                self.progress,
            ]
        )

    def output_path(self) -> Path:
        if self.out.value.strip():
            path = Path(self.out.value.strip())
            return path if path.is_absolute() else self.config.root / path
        name = Path(self.input.value.strip().rstrip("/*")).stem or "scored"
        return self.config.root / "scored" / f"{name}.parquet"

    def chunk_done(self, chunk: ChunkDone) -> None:
        if chunk.total:
            self.progress.max = chunk.total
        self.progress.value += chunk.rows

    def run(self) -> None:
        given = Path(self.input.value.strip())
        path = given if given.is_absolute() else self.config.root / given
        out = self.output_path()
        out.parent.mkdir(parents=True, exist_ok=True)
        self.progress.value = 0
        self.say(f"scoring {path} ...")
        self.result = score(
            self.bento.value.strip(),
            str(path),
            out=out,
            on_error="skip" if self.on_error.value == "skip" else "fail",
            overwrite=True,
            on_chunk=self.chunk_done,
        )
        self.progress.max = max(self.result.rows_read, 1)
        self.progress.value = self.result.rows_read
        self.results.value = to_html(self.result)
        self.say(
            f"{self.result.rows_scored:,} rows scored, {self.result.rows_rejected:,} refused: "
            f"{self.result.output}",
            kind="ok",
        )
