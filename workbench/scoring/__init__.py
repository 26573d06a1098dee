"""Batch scoring: a Bento's model over files larger than memory, in process or on Dask.

:func:`score` streams a CSV or Parquet input (a file, a folder or a glob of parts) a chunk at a
time through the Bento's own row rules and model (the compiled graph where the Bento serves
one), writes Parquet predictions atomically, lists refused rows with the service's messages, and
returns a :class:`~workbench.results.ScoreResult` with the drift report of the scored rows.
"""

from workbench.scoring.engine import DEFAULT_CHUNK_ROWS
from workbench.scoring.inputs import resolve_input
from workbench.scoring.job import score
from workbench.scoring.model import load_bento_model
from workbench.scoring.outputs import outputs_of
from workbench.scoring.task import ChunkDone

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "ChunkDone",
    "load_bento_model",
    "outputs_of",
    "resolve_input",
    "score",
]
