"""Typed stage results: pure data that serialises to JSON. Rendering is :mod:`workbench.reports`."""

from workbench.results.base import Result
from workbench.results.explanation import (
    ColumnImportance,
    Contribution,
    ExplanationResult,
    RowExplanation,
)
from workbench.results.launch import CheckResult, LaunchResult, ProbeResult, ServerStatus
from workbench.results.monitoring import (
    ColumnDriftResult,
    DriftResult,
    DriftTestResult,
    MonitorResult,
    QualityCheckResult,
    QualityResult,
    ReplayResult,
)
from workbench.results.package import PackageResult
from workbench.results.profile import ColumnProfile, ReferenceProfile
from workbench.results.retraining import FittedModel, NewRows, RetrainResult, RetrainStep
from workbench.results.scoring import ScoredFile, ScoreResult
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
    ValidationSettings,
)
from workbench.results.versions import (
    ColumnChange,
    CompareResult,
    LatencySummary,
    PromotionResult,
    ShadowGateVerdict,
    ShadowResult,
    VersionInfo,
    VersionsResult,
)

__all__ = [
    "BaselineResult",
    "CVResult",
    "ChampionResult",
    "CheckResult",
    "ColumnChange",
    "ColumnDriftResult",
    "ColumnImportance",
    "ColumnProfile",
    "CompareResult",
    "Contribution",
    "Curve",
    "DriftResult",
    "DriftTestResult",
    "ExplanationResult",
    "FeatureImportance",
    "FittedModel",
    "GateVerdict",
    "ImportanceResult",
    "LatencyResult",
    "LatencySummary",
    "LaunchResult",
    "MonitorResult",
    "NewRows",
    "PackageResult",
    "ProbeResult",
    "PromotionResult",
    "QualityCheckResult",
    "QualityResult",
    "ReferenceProfile",
    "ReplayResult",
    "Result",
    "RetrainResult",
    "RetrainStep",
    "RoundTripResult",
    "RowExplanation",
    "RuntimeResult",
    "ScoreResult",
    "ScoredFile",
    "ServerStatus",
    "ShadowGateVerdict",
    "ShadowResult",
    "ValidationResult",
    "ValidationSettings",
    "VersionInfo",
    "VersionsResult",
]
