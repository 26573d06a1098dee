"""``workbench.yaml``: the one file that describes a model project.

:mod:`.project` is its model (:class:`Config`, frozen, passed explicitly to every stage; the
``service:`` and ``monitor:`` sections are the runtime's own settings models), :mod:`.files`
finds, loads and saves it (saving keeps what a person wrote).
"""

from workbench.config.files import find_config, load_config, parse_config, save_config, save_gates
from workbench.config.project import (
    ALL_METRICS,
    BASELINE_GATE,
    CHAMPION_GATE,
    CV_PREFIX,
    LOWER_IS_BETTER,
    METRICS,
    NAME_PATTERN,
    NEEDS_PROBA,
    Config,
    DataSpec,
    Gate,
    LaunchOptions,
    MonitorSettings,
    ServiceSettings,
    ShadowOptions,
    Task,
    ValidationOptions,
    known_gates,
)

__all__ = [
    "ALL_METRICS",
    "BASELINE_GATE",
    "CHAMPION_GATE",
    "CV_PREFIX",
    "LOWER_IS_BETTER",
    "METRICS",
    "NAME_PATTERN",
    "NEEDS_PROBA",
    "Config",
    "DataSpec",
    "Gate",
    "LaunchOptions",
    "MonitorSettings",
    "ServiceSettings",
    "ShadowOptions",
    "Task",
    "ValidationOptions",
    "find_config",
    "known_gates",
    "load_config",
    "parse_config",
    "save_config",
    "save_gates",
]
