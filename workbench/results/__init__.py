"""Typed stage results: pure data that serialises to JSON. Rendering is :mod:`workbench.reports`."""

from workbench.results.base import Result
from workbench.results.launch import CheckResult, LaunchResult, ProbeResult
from workbench.results.monitoring import ColumnDriftResult, DriftResult, DriftTestResult
from workbench.results.package import PackageResult
from workbench.results.profile import ColumnProfile, ReferenceProfile
from workbench.results.validation import (
    BaselineResult,
    ChampionResult,
    Curve,
    CVResult,
    FeatureImportance,
    GateVerdict,
    ImportanceResult,
    LatencyResult,
    RoundTripResult,
    RuntimeResult,
    ValidationResult,
)

__all__ = [
    "BaselineResult",
    "CVResult",
    "ChampionResult",
    "CheckResult",
    "ColumnDriftResult",
    "ColumnProfile",
    "Curve",
    "DriftResult",
    "DriftTestResult",
    "FeatureImportance",
    "GateVerdict",
    "ImportanceResult",
    "LatencyResult",
    "LaunchResult",
    "PackageResult",
    "ProbeResult",
    "ReferenceProfile",
    "Result",
    "RoundTripResult",
    "RuntimeResult",
    "ValidationResult",
]
