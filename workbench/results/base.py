"""The base of every stage result: frozen, typed, and serialisable to JSON."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Result(BaseModel):
    """A stage result: pure data. Rendering lives in :mod:`workbench.reports`."""

    model_config = ConfigDict(frozen=True)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)
