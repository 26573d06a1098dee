"""The monitoring stage: live inputs against what the model was trained on. See
:func:`drift_report` (a file) and :func:`window_report` (windows accumulated elsewhere, e.g. by a
batch job)."""

from workbench.monitoring.drift import (
    BentoSource,
    drift_report,
    find_bento,
    read_model_card,
    read_reference,
    window_report,
)

__all__ = [
    "BentoSource",
    "drift_report",
    "find_bento",
    "read_model_card",
    "read_reference",
    "window_report",
]
