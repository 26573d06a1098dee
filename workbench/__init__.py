"""workbench: validate, package and launch scikit-learn models, in notebooks or headlessly.

The core (this namespace) never imports ipywidgets or IPython; the panels live in
:mod:`workbench.widgets` and call the functions re-exported here.
"""

from workbench.config import Config, Gate, find_config, load_config, save_config
from workbench.errors import (
    ConfigError,
    DataError,
    GateFailure,
    ModelError,
    PackagingError,
    ServingError,
    StageOrderError,
    VersionError,
    WorkbenchError,
)
from workbench.monitoring import drift_report
from workbench.packaging import package
from workbench.results import LaunchResult, PackageResult, ScoreResult, ValidationResult
from workbench.schema import InputSchema, infer_schema
from workbench.scoring import score
from workbench.serving import Server, check, launch, serve
from workbench.validation import validate
from workbench.versions import compare_versions, list_versions, promote, rollback, shadow

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "Gate",
    "GateFailure",
    "InputSchema",
    "LaunchResult",
    "ModelError",
    "PackageResult",
    "PackagingError",
    "ScoreResult",
    "Server",
    "ServingError",
    "StageOrderError",
    "ValidationResult",
    "VersionError",
    "WorkbenchError",
    "check",
    "compare_versions",
    "drift_report",
    "find_config",
    "infer_schema",
    "launch",
    "list_versions",
    "load_config",
    "package",
    "promote",
    "rollback",
    "save_config",
    "score",
    "serve",
    "shadow",
    "validate",
]
