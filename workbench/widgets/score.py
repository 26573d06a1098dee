"""The score panel: choose a file and a version, score it in this process or on a local Dask
cluster, see progress, the summary and the drift table of the scored rows.

It opens with the promoted version chosen (else the newest) and says which server of the project
is running, if any (the launch panel's, in another kernel), so a person knows whether the rows are
scored by the version that serves. **Score** is one call to :func:`~workbench.scoring.score`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import ipywidgets as w

from workbench.config import Config
from workbench.reports import to_html
from workbench.results import ScoreResult
from workbench.scoring import ChunkDone, score
from workbench.serving.session import find_server
from workbench.versions import list_versions
from workbench.widgets.base import WIDE, Panel, button

SUFFIXES = (".csv", ".parquet", ".pq")
#: Most worker processes of a local Dask cluster the panel starts.
MAX_WORKERS = 64


def data_files(root: Path) -> list[str]:
    """CSV and Parquet files under the project's ``data/`` (relative to ``root``)."""
    folder = root / "data"
    if not folder.is_dir():
        return []
    return sorted(
        str(p.relative_to(root)) for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES
    )


class ScorePanel(Panel):
    title = "6 · Score"

    def __init__(self, config: Config, *, bento: str | None = None, workers: int = 0) -> None:
        self.config = config
        self.result: ScoreResult | None = None
        super().__init__(self._controls(workers))
        self.input.observe(self._changed, names="value")
        self.bento.observe(self._changed, names="value")
        self.refresh(bento)

    def _controls(self, workers: int) -> list[w.Widget]:
        """The file, version, output, bad-rows and Dask choices, Score and the progress bar."""
        files = data_files(self.config.root)
        wide = w.Layout(width="36em")
        self.input = w.Combobox(
            value=files[-1] if files else "",
            options=files,
            placeholder="a CSV or Parquet file, a folder or a glob of parts",
            description="input",
            ensure_option=False,
            style=WIDE,
            layout=wide,
        )
        self.bento = w.Dropdown(description="version", options=[], style=WIDE, layout=wide)
        self.bento.add_class("wb-bento")
        self.out = w.Text(
            placeholder="default: scored/<input name>.parquet (a folder for parts)",
            description="output",
            style=WIDE,
            layout=wide,
        )
        self.on_error = w.ToggleButtons(
            options=["fail", "skip"], value="skip", description="bad rows", style=WIDE
        )
        self.workers = w.BoundedIntText(
            value=workers,
            min=0,
            max=MAX_WORKERS,
            description="Dask workers",
            style=WIDE,
            layout=w.Layout(width="12em"),
        )
        self.workers.add_class("wb-workers")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="rows", layout=wide)
        self.score_button = button("Score", icon="play")
        self.score_button.on_click(self.guarded(self.run))
        self.serving = w.HTML("")
        self.serving.add_class("wb-serving")
        name = html.escape(self.config.name)
        intro = w.HTML(
            "Scores every row of the file with the chosen version's model (its own row rules: a "
            "row the service would refuse is listed with the reason), writes Parquet predictions "
            f"and checks the rows for drift against <code>{name}</code>'s training data."
        )
        dask = w.HTML(
            "&nbsp;0: in this process; N: a local Dask cluster of N worker processes (started "
            "for the job, stopped after)"
        )
        return [
            intro,
            self.serving,
            self.input,
            self.bento,
            self.out,
            self.on_error,
            w.HBox([self.workers, dask], layout=w.Layout(align_items="center")),
            self.score_button,
            self.progress,
        ]

    def _changed(self, _change: Any) -> None:
        self.refresh_controls()

    def enabled(self) -> set[w.Button]:
        ready = bool(self.bento.value) and bool(str(self.input.value).strip())
        return {self.score_button} if ready else set()

    def refresh(self, bento: str | None = None) -> None:
        """List the versions (the promoted one, else the newest, chosen; ``bento`` when given)
        and say which server of the project is running."""
        versions = list_versions(self.config.root, self.config.name)
        record = find_server(self.config)
        serving = record.bento_tag if record is not None else None
        options = []
        for info in versions.versions:
            notes = [
                note
                for note, applies in (
                    ("promoted", info.tag == versions.promoted),
                    ("serving now", info.tag == serving),
                )
                if applies
            ]
            options.append((info.tag + (f" ({', '.join(notes)})" if notes else ""), info.tag))
        if bento and bento not in [tag for _, tag in options]:
            options.insert(0, (bento, bento))
        self.bento.options = options
        tags = [tag for _, tag in options]
        self.bento.value = bento or versions.promoted or (tags[0] if tags else None)
        if record is not None:
            started = f", started from {record.origin}" if record.origin else ""
            self.serving.value = (
                f"<span class='wb-found'>serving now: Bento <code>"
                f"{html.escape(record.bento_tag)}</code> at {html.escape(record.url)} (pid "
                f"{record.server.pid}{html.escape(started)})</span>"
            )
        else:
            self.serving.value = (
                f"<span class='wb-found'>no server of {html.escape(self.config.name)} is "
                "running</span>"
            )
        if not tags:
            self.say(f"no packaged version of {self.config.name} yet: build one in 2 · Package")
        self.refresh_controls()

    def output_path(self) -> Path:
        """The output box's path, else ``scored/<input name>.parquet`` for a file and
        ``scored/<input name>/`` (a folder of parts) for a folder or a glob of parts."""
        if self.out.value.strip():
            path = Path(self.out.value.strip())
            return path if path.is_absolute() else self.config.root / path
        given = self.input.value.strip()
        parts = any(c in given for c in "*?[") or (self.config.root / given).is_dir()
        name = Path(given.rstrip("/*")).stem or "scored"
        return self.config.root / "scored" / (name if parts else f"{name}.parquet")

    def chunk_done(self, chunk: ChunkDone) -> None:
        if chunk.total:
            self.progress.max = chunk.total
        self.progress.value += chunk.rows

    def run(self) -> None:
        given = Path(self.input.value.strip())
        path = given if given.is_absolute() else self.config.root / given
        out = self.output_path()
        out.parent.mkdir(parents=True, exist_ok=True)
        workers = int(self.workers.value) or None
        engine = f"on a local Dask cluster of {workers} workers" if workers else "in this process"
        self.progress.value = 0
        self.say(f"scoring {path} with {self.bento.value} {engine} ...")
        self.show_state("working", engine)
        self.result = score(
            str(self.bento.value),
            str(path),
            out=out,
            on_error="skip" if self.on_error.value == "skip" else "fail",
            overwrite=True,
            workers=workers,
            on_chunk=self.chunk_done,
            project=self.config.root,
        )
        self.progress.max = max(self.result.rows_read, 1)
        self.progress.value = self.result.rows_read
        self.results.value = to_html(self.result)
        self.say(
            f"{self.result.rows_scored:,} rows scored, {self.result.rows_rejected:,} refused "
            f"({self.result.engine}): {self.result.output}",
            kind="ok",
        )
        self.show_state("done", self.result.engine)
