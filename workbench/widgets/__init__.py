"""ipywidgets panels, one per stage. Views only: every button calls one core function."""

from workbench.widgets.launch import LaunchPanel
from workbench.widgets.package import PackagePanel
from workbench.widgets.validate import ValidatePanel

__all__ = ["LaunchPanel", "PackagePanel", "ValidatePanel"]
