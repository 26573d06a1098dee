"""Rendering of the stage results: HTML for notebooks, panels and reports, PNG plots, plain text.

Imports the result types; the types never import this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.reports.html import launch_html, package_html, probe_html
from workbench.reports.monitoring import drift_html, monitor_html
from workbench.reports.retraining import new_rows_html, retrain_html
from workbench.reports.scoring import score_html
from workbench.reports.text import gate_table
from workbench.reports.validation import validation_html
from workbench.reports.versions import (
    compare_html,
    promotion_html,
    shadow_html,
    versions_html,
)
from workbench.results import (
    CompareResult,
    DriftResult,
    LaunchResult,
    MonitorResult,
    NewRows,
    PackageResult,
    ProbeResult,
    PromotionResult,
    Result,
    RetrainResult,
    ScoreResult,
    ShadowResult,
    ValidationResult,
    VersionsResult,
)

RENDERERS: dict[type[Result], Callable[[Any], str]] = {
    ValidationResult: validation_html,
    PackageResult: package_html,
    LaunchResult: launch_html,
    ProbeResult: probe_html,
    DriftResult: drift_html,
    MonitorResult: monitor_html,
    VersionsResult: versions_html,
    CompareResult: compare_html,
    PromotionResult: promotion_html,
    ShadowResult: shadow_html,
    ScoreResult: score_html,
    NewRows: new_rows_html,
    RetrainResult: retrain_html,
}


def to_html(result: Result) -> str:
    """The HTML a notebook shows for a stage result (self-contained: styles and plots inline)."""
    for kind, render in RENDERERS.items():
        if isinstance(result, kind):
            return render(result)
    raise TypeError(f"no HTML rendering for {type(result).__name__}")


__all__ = ["gate_table", "to_html"]
