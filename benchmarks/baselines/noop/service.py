"""Baseline (c): the framework's own ceiling, a BentoML endpoint that does no work.

An ``async`` API that parses the same body and answers a constant of the same shape. Its media
type is declared, so BentoML does not derive it from the output's JSON schema on every response
(see ``noop_typed``): this is the fastest a BentoML API route answers on this machine.
"""

from typing import Annotated, Any

import bentoml
from bentoml.validators import ContentType

ANSWER = {"prediction": 0, "probabilities": {"0": 0.5, "1": 0.5}, "warnings": []}


@bentoml.service(name="noop", workers=1)
class Noop:
    @bentoml.api
    async def predict(
        self, rows: list[dict[str, Any]]
    ) -> Annotated[list[dict[str, Any]], ContentType("application/json")]:
        return [ANSWER for _ in rows]
