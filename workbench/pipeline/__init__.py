"""Headless runs: the stage notebooks executed with papermill, their reports, the manifest.

Runs notebooks, never stages: nothing here imports a stage module.
"""

from workbench.pipeline.project import init_project
from workbench.pipeline.provenance import verify
from workbench.pipeline.run import STAGES, RunOutcome, run

__all__ = ["STAGES", "RunOutcome", "init_project", "run", "verify"]
