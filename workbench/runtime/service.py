"""What one generated service holds in each worker: the model, its batcher and its routes.

The generated ``service.py`` creates one :class:`Serving` at import (with its ``Row`` model and
:class:`~.settings.Settings`), adds :meth:`Serving.middlewares` to the BentoML service class, and
calls :meth:`Serving.start` from the service's ``__init__`` in each worker.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from .asgi import MIDDLEWARES
from .batching import Batcher, Overloaded
from .predictor import Predictor
from .settings import Settings

logger = logging.getLogger("bentoml.service")


class Serving:
    """The model-specific pieces of a service, and its state once a worker has started it."""

    def __init__(self, row_model: type[BaseModel], settings: Settings) -> None:
        self.row_model = row_model
        self.settings = settings
        self.card: dict[str, Any] = json.loads(settings.card_path.read_text())
        self.body_model = create_model(
            "Input",
            __config__=ConfigDict(extra="forbid"),
            rows=(list[row_model], ...),  # type: ignore[valid-type]
        )
        self.batcher: Batcher | None = None

    def middlewares(self) -> list[tuple[type[Any], dict[str, Any]]]:
        """(ASGI middleware class, options) in the order to add them (the first is outermost)."""
        return [(middleware, {"serving": self}) for middleware in MIDDLEWARES]

    def parse(self, body: bytes) -> list[Any]:
        """The rows of a ``POST /predict`` JSON body; raises pydantic's ``ValidationError``."""
        return list(self.body_model.model_validate_json(body).rows)  # type: ignore[attr-defined]

    def start(self, model: Any, *, freeze: bool = True) -> Batcher:
        """Load the model into a predictor and batcher, warm it up, and (``freeze``) keep what
        exists now out of the garbage collector."""
        settings = self.settings
        predictor = Predictor(model, self.row_model, settings)
        batcher = Batcher(
            predictor.answer,
            max_rows=settings.max_batch_rows,
            max_wait_s=settings.max_queue_ms / 1000,
        )
        try:
            batcher.warm_up([self.row_model.model_validate(settings.example)])
        except Exception:  # noqa: BLE001 - a model that refuses the synthetic row still serves
            logger.warning("warm-up on the example row failed", exc_info=True)
        self.batcher = batcher
        if freeze:
            # What exists now (libraries, the model) lives as long as the worker: keep it out of
            # the garbage collector's full passes, which would otherwise stall requests ~0.1 s.
            gc.freeze()
        return batcher

    async def predict(self, rows: Sequence[BaseModel]) -> list[Any]:
        """The typed API's answer (other content types, the Python client, the docs page)."""
        from bentoml.exceptions import ServiceUnavailable

        if self.batcher is None:
            raise ServiceUnavailable("the model is not loaded yet")
        if not rows:
            return []
        try:
            answers = await self.batcher.submit(list(rows))
        except Overloaded as exc:
            raise ServiceUnavailable("process is overloaded") from exc
        return list(json.loads("[" + ",".join(answers) + "]"))
