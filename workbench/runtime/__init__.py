"""The runtime that ships inside every Bento: batching, the ASGI routes, auth, JSON answers.

Copied into each Bento as the package ``workbench_runtime`` (see
:mod:`workbench.packaging.sources`) and imported by the generated ``service.py``. It imports
nothing from workbench (only the standard library, numpy, pandas, pydantic and bentoml), and its
modules import each other relatively, so the Bento serves where workbench is not installed.
"""

from .batching import Batcher, Overloaded
from .predictor import Predictor
from .service import Serving
from .settings import API_KEY_ENV, Settings

__all__ = ["API_KEY_ENV", "Batcher", "Overloaded", "Predictor", "Serving", "Settings"]
