"""ipywidgets panels, one per stage. Views only: every button calls one core function.

Importing this also makes IPython show stage results as HTML (:func:`display.register_html`).
"""

from workbench.widgets.display import register_html
from workbench.widgets.launch import LaunchPanel
from workbench.widgets.monitor import MonitorPanel
from workbench.widgets.package import PackagePanel
from workbench.widgets.retrain import RetrainPanel
from workbench.widgets.score import ScorePanel
from workbench.widgets.validate import ValidatePanel
from workbench.widgets.versions import VersionsPanel

register_html()

__all__ = [
    "LaunchPanel",
    "MonitorPanel",
    "PackagePanel",
    "RetrainPanel",
    "ScorePanel",
    "ValidatePanel",
    "VersionsPanel",
    "register_html",
]
