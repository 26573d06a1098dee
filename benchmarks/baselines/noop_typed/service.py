"""Baseline (c'): the no-op endpoint as most people would type it, without a declared media type.

bentoml 1.4.39 then works out the response's media type from the output's JSON schema on every
response (``IOMixin.mime_type`` -> ``model_json_schema``), a quarter of the CPU of a no-op request.
"""

from typing import Any

import bentoml

ANSWER = {"prediction": 0, "probabilities": {"0": 0.5, "1": 0.5}, "warnings": []}


@bentoml.service(name="noop_typed", workers=1)
class NoopTyped:
    @bentoml.api
    async def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [ANSWER for _ in rows]
