"""The runtime that ships inside every Bento: its settings (``settings.json``), the model card,
row types, batching, the route table (:mod:`.http`), the OpenAPI document, start-up checks, JSON
answers, drift statistics and monitoring (:mod:`.monitoring`: window, feedback, report, gauges,
capture).

Copied into each Bento as the package ``workbench_runtime`` (see
:mod:`workbench.packaging.sources`) and imported by the generated ``service.py``. It imports
nothing from workbench (only the standard library, numpy, pandas, pydantic, scipy and bentoml),
and its modules import each other relatively, so the Bento serves where workbench is not
installed.
"""

from .batching import Batcher, Overloaded, QueueFull
from .columns import Boolean, Category, Integer, Number, Text
from .predictor import Predictor, RowsRefused
from .service import DeploymentError, Serving, file_sha256
from .settings import API_KEY_ENV, MODEL_FILE, PREDICT_PATH, Settings

__all__ = [
    "API_KEY_ENV",
    "MODEL_FILE",
    "PREDICT_PATH",
    "Batcher",
    "Boolean",
    "Category",
    "DeploymentError",
    "Integer",
    "Number",
    "Overloaded",
    "Predictor",
    "QueueFull",
    "RowsRefused",
    "Serving",
    "Settings",
    "Text",
    "file_sha256",
]
