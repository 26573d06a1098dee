"""The monitoring stage: live inputs against what the model was trained on. See
:func:`drift_report`."""

from workbench.monitoring.drift import drift_report, find_bento

__all__ = ["drift_report", "find_bento"]
