"""The monitoring report (``GET /monitor``) from the workers' window summaries: drift against the
training reference, the data-quality checks, predictions against the test rows' at packaging,
missing and unseen values, profiles for plots, the live metrics with their gates, and the
verdict over them all (``status``, PASS / FAIL / INCONCLUSIVE, :mod:`.judgement`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..card import ModelCard
from ..drift import column_drift, dataset_drift
from ..live_metrics import LOWER_IS_BETTER, METRICS, gate_verdicts, live_metrics
from ..quality import dataset_quality
from ..settings import PREDICTION_COLUMN, Settings
from ..sketch import COUNTED_KINDS, ColumnWindow, merge_windows, reference_columns
from .feedback import FEEDBACK_COUNTS
from .judgement import judge_report

#: Quantiles per numeric column and values per category column in the report's profiles.
PROFILE_POINTS = 21
PROFILE_VALUES = 12


def utc(ts: float | None) -> str:
    """``ts`` (default: now) as UTC ISO 8601."""
    ts = time.time() if ts is None else ts
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ReportBuilder:
    """What the report needs besides the summaries: settings, model card, and the drift and
    prediction references shipped in the Bento."""

    settings: Settings
    card: ModelCard
    reference: dict[str, Any] | None
    prediction_reference: dict[str, Any] | None

    @property
    def task(self) -> str:
        return self.settings.task

    @property
    def classes(self) -> list[Any]:
        return list(self.settings.classes or [])

    def build(self, summaries: list[dict[str, Any]]) -> dict[str, Any]:
        """The report from the workers' summaries."""
        windows = merge_windows(
            *[{n: ColumnWindow.from_dict(c) for n, c in s["columns"].items()} for s in summaries]
        )
        monitor = self.settings.monitor
        options = monitor.drift
        drift: dict[str, Any] | None = None
        quality: dict[str, Any] | None = None
        if self.reference is not None:
            # Every column of a request is in the window (a left-out one as missing values).
            for name, spec in reference_columns(self.reference).items():
                windows.setdefault(name, ColumnWindow(str(spec["kind"]), 0, 0))
            drift = dataset_drift(self.reference, windows, options).to_dict()
            quality = dataset_quality(self.reference, windows, monitor.quality).to_dict()
        predictions = self._predictions(
            merge_windows(*[{"p": ColumnWindow.from_dict(s["predictions"])} for s in summaries])
        )
        report = {
            "window": self._window(summaries),
            "drift": drift,
            "verdict": None if drift is None else drift["verdict"],
            "quality": quality,
            "predictions": predictions,
            "profiles": self._profiles(windows),
            **self._shares(drift, summaries),
            "metrics": self._metrics([pair for s in summaries for pair in s["labelled"]]),
            "feedback": {
                key: sum(int(s.get("feedback", {}).get(key, 0)) for s in summaries)
                for key in FEEDBACK_COUNTS
            },
            "options": {
                "drift_share": options.drift_share,
                "min_window_rows": options.min_window_rows,
                "small_reference_rows": options.small_reference_rows,
                "refresh_seconds": monitor.refresh_seconds,
            },
            "computed_at": utc(time.time()),
        }
        judgement = judge_report(
            report,
            fail_on_drift=monitor.fail_on_drift,
            fail_on_quality=monitor.fail_on_quality,
            gates=monitor.gates,
        )
        return {**report, "status": judgement.status, "judgement": judgement.to_dict()}

    @staticmethod
    def _shares(drift: dict[str, Any] | None, summaries: list[dict[str, Any]]) -> dict[str, Any]:
        """Each column's missing share against the reference's, and the unseen categories."""
        drifts = (drift or {}).get("columns", [])
        rows = sum(s["rows"] for s in summaries)
        unseen_rows = sum(s.get("unseen_rows", 0) for s in summaries)
        return {
            "missing": [
                {
                    "column": c["column"],
                    "reference": c["missing_share_reference"],
                    "window": c["missing_share_window"],
                    "change": None
                    if c["missing_share_window"] is None
                    else c["missing_share_window"] - c["missing_share_reference"],
                }
                for c in drifts
            ],
            "unseen": {
                "rows_share": unseen_rows / rows if rows else None,
                "columns": {
                    c["column"]: c["unseen_share"] for c in drifts if c["kind"] == "category"
                },
            },
        }

    def _window(self, summaries: list[dict[str, Any]]) -> dict[str, Any]:
        """The window's size and time span, all workers together."""
        firsts = [s["first"] for s in summaries if s["first"] is not None]
        lasts = [s["last"] for s in summaries if s["last"] is not None]
        first, last = (min(firsts), max(lasts)) if firsts else (None, None)
        return {
            "rows": sum(s["rows"] for s in summaries),
            "requests": sum(s["requests"] for s in summaries),
            "capacity": self.settings.monitor.window_rows,
            "workers": len(summaries),
            "start": None if first is None else utc(first),
            "end": None if last is None else utc(last),
            "seconds": None if first is None or last is None else round(last - first, 3),
            "labelled_rows": sum(len(s["labelled"]) for s in summaries),
        }

    def _metrics(self, labelled: list[list[Any]]) -> dict[str, Any]:
        """Live metrics on the labelled rows, the validation ones and the gates' verdicts."""
        monitor = self.settings.monitor
        validation = {k: v for k, v in self.card.metrics.items() if k in METRICS[self.task]}
        live: dict[str, float | None] = {}
        why: dict[str, str] = {}
        if len(labelled) >= monitor.min_labelled_rows:
            live, why = live_metrics(
                self.task, [p[0] for p in labelled], [p[1] for p in labelled], self.classes
            )
        gates = gate_verdicts(monitor.gates, live)
        decided = [g["passed"] for g in gates if g["passed"] is not None]
        return {
            "labelled_rows": len(labelled),
            "min_labelled_rows": monitor.min_labelled_rows,
            "live": live,
            "unavailable": why,
            "validation": validation,
            "lower_is_better": sorted(LOWER_IS_BETTER & set(validation)),
            "gates": gates,
            "passed": None if not decided else all(decided),
        }

    def _profiles(self, windows: Mapping[str, ColumnWindow]) -> dict[str, Any]:
        """Per column, what a plot of reference against window needs (bounded): 21 quantiles of
        numbers (text: lengths) or the shares of the most frequent values."""
        if self.reference is None:
            return {}
        grid = np.linspace(0, 1, PROFILE_POINTS)
        out: dict[str, Any] = {}
        for name, spec in reference_columns(self.reference).items():
            window = windows.get(name)
            if spec["kind"] in COUNTED_KINDS:
                ref_counts = dict(spec.get("counts") or {})
                live = dict(window.counts) if window is not None else {}
                keys = sorted(ref_counts, key=lambda k: -ref_counts[k])[:PROFILE_VALUES]
                keys += [k for k in sorted(live, key=lambda k: -live[k]) if k not in keys][
                    : max(0, PROFILE_VALUES - len(keys))
                ]
                rt, lt = sum(ref_counts.values()) or 1, sum(live.values()) or 1
                out[name] = {
                    "kind": "counts",
                    "values": keys,
                    "reference": [ref_counts.get(k, 0) / rt for k in keys],
                    "window": [live.get(k, 0) / lt for k in keys] if live else None,
                }
                continue
            sketch = spec.get("lengths" if spec["kind"] == "text" else "sketch")
            if not sketch:
                continue
            points = np.asarray(sketch["points"], dtype=np.float64)
            reference = np.interp(grid, np.linspace(0, 1, len(points)), points)
            live_values = None
            if window is not None and len(window.values):
                live_values = np.quantile(window.values, grid).tolist()
            out[name] = {
                "kind": "quantiles",
                "probabilities": grid.tolist(),
                "reference": reference.tolist(),
                "window": live_values,
            }
        return out

    def _predictions(self, merged: Mapping[str, ColumnWindow]) -> dict[str, Any]:
        """Live predictions against the model's on the test rows at packaging."""
        window = merged.get("p")
        ref = self.prediction_reference
        out: dict[str, Any] = {"rows": 0 if window is None else window.rows}
        spec = None if ref is None else reference_columns(ref).get(PREDICTION_COLUMN)
        if window is not None and window.counts:
            total = sum(window.counts.values())
            out["window"] = {k: v / total for k, v in sorted(window.counts.items())}
        if window is not None and len(window.values):
            v = window.values
            out["window"] = _spread(v)
        if spec is not None:
            if spec.get("counts"):
                total = sum(spec["counts"].values())
                out["reference"] = {k: c / total for k, c in sorted(spec["counts"].items())}
            elif spec.get("sketch"):
                out["reference"] = _spread(np.asarray(spec["sketch"]["points"]))
            if window is not None:
                options = self.settings.monitor.drift
                out["drift"] = column_drift(PREDICTION_COLUMN, spec, window, options).__dict__
        return out


def _spread(values: Any) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return {}
    qs = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        **{f"p{p}": float(q) for p, q in zip((5, 25, 50, 75, 95), qs, strict=True)},
    }


__all__ = ["PROFILE_POINTS", "PROFILE_VALUES", "ReportBuilder", "utc"]
