"""workbench: validate, package and launch scikit-learn models, in notebooks or headlessly.

The core (this namespace) never imports ipywidgets or IPython; the panels live in
:mod:`workbench.widgets` and call the functions re-exported here.
"""

from workbench.config import Config, Gate, load_config, save_config
from workbench.errors import (
    ConfigError,
    DataError,
    GateFailure,
    ModelError,
    PackagingError,
    ServingError,
    StageOrderError,
    WorkbenchError,
)
from workbench.monitoring import drift_report
from workbench.packaging import package
from workbench.results import LaunchResult, PackageResult, ValidationResult
from workbench.schema import InputSchema, infer_schema
from workbench.serving import Server, check, launch, serve
from workbench.validation import validate

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
    "Server",
    "ServingError",
    "StageOrderError",
    "ValidationResult",
    "WorkbenchError",
    "check",
    "drift_report",
    "infer_schema",
    "launch",
    "load_config",
    "package",
    "save_config",
    "serve",
    "validate",
]
