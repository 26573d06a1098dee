"""Baseline (b): the BentoML service an engineer writes by hand for the benchmark model.

The shape the BentoML quickstart teaches: a typed pydantic row, one synchronous API method, a
DataFrame built per request, ``predict`` and ``predict_proba`` called separately. No batching.
Answers the same JSON as the generated service, so the load generator sends the same body.
"""

import bentoml
import pandas as pd
from pydantic import BaseModel, ConfigDict

MODEL_TAG = "serving_bench:latest"
COLUMNS = [f"f{i:02d}" for i in range(20)]


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    f00: float
    f01: float
    f02: float
    f03: float
    f04: float
    f05: float
    f06: float
    f07: float
    f08: float
    f09: float
    f10: float
    f11: float
    f12: float
    f13: float
    f14: float
    f15: float
    f16: float
    f17: float
    f18: float
    f19: float


@bentoml.service(name="plain", workers=1)
class Plain:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)
        self.classes = [str(c) for c in self.model.classes_]

    @bentoml.api
    def predict(self, rows: list[Row]) -> list[dict]:
        frame = pd.DataFrame([row.model_dump() for row in rows], columns=COLUMNS)
        labels = self.model.predict(frame).tolist()
        proba = self.model.predict_proba(frame).tolist()
        return [
            {
                "prediction": label,
                "probabilities": dict(zip(self.classes, p, strict=True)),
                "warnings": [],
            }
            for label, p in zip(labels, proba, strict=True)
        ]
