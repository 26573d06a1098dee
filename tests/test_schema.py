"""Input schema inference: kinds, nullability, categories, ranges and safe field names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import DataError
from workbench.schema import check_columns, infer_schema


def test_each_column_kind_is_inferred_with_its_facts():
    frame = pd.DataFrame(
        {
            "mean radius": [1.5, 2.5, np.nan],
            "count": [1, 2, 3],
            "flag": [True, False, True],
            "colour": ["red", None, "blue"],
        }
    )
    cols = {c.name: c for c in infer_schema(frame).columns}
    assert (cols["mean radius"].kind, cols["mean radius"].nullable) == ("number", True)
    assert (cols["mean radius"].min, cols["mean radius"].max) == (1.5, 2.5)
    assert (cols["count"].kind, cols["count"].nullable) == ("integer", False)
    assert cols["flag"].kind == "boolean"
    assert (cols["colour"].kind, cols["colour"].categories) == ("category", ["blue", "red"])
    assert cols["colour"].nullable


def test_field_names_are_unique_python_identifiers():
    frame = pd.DataFrame(columns=["mean radius", "mean-radius", "1st", "class"])
    fields = infer_schema(frame.astype(float)).fields()
    assert list(fields.values()) == ["mean_radius", "mean_radius_2", "f_1st", "f_class"]
    assert all(f.isidentifier() for f in fields.values())


def test_records_turn_nan_into_null_and_numpy_into_python():
    frame = pd.DataFrame({"a": [1.0, np.nan], "b": [1, 2]})
    records = infer_schema(frame).to_records(frame)
    assert records == [{"a": 1.0, "b": 1}, {"a": None, "b": 2}]
    assert type(records[0]["b"]) is int


def test_missing_and_extra_columns_are_named():
    frame = pd.DataFrame(columns=["a", "c"])
    with pytest.raises(DataError, match=r"test data.*missing \['b'\].*unexpected \['c'\]"):
        check_columns(frame, ["a", "b"], what="test data")
