"""Input schema inference: kinds, nullability, categories, ranges and safe field names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import DataError
from workbench.schema import check_columns, infer_schema
from workbench.validation.profile import build_profile


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


def test_csv_gaps_are_seen_through_integers_stay_integers_and_booleans_booleans():
    frame = pd.DataFrame(
        {
            "rooms": [1.0, np.nan, 3.0],  # an integer column read from CSV with a gap
            "price": [1.5, np.nan, 3.0],
            "member": [True, np.nan, False],  # a boolean column read from CSV with a gap
            "size": pd.Categorical(["s", "m", None]),
        }
    )
    cols = {c.name: c for c in infer_schema(frame).columns}
    assert (cols["rooms"].kind, cols["rooms"].dtype, cols["rooms"].nullable) == (
        "integer",
        "float64",
        True,
    )
    assert (cols["rooms"].min, cols["rooms"].max) == (1.0, 3.0)
    assert cols["price"].kind == "number"
    assert (cols["member"].kind, cols["member"].nullable) == ("boolean", True)
    assert (cols["size"].kind, cols["size"].categories) == ("category", ["m", "s"])


def test_the_reference_profile_bins_numbers_and_counts_categories():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": np.where(rng.random(1000) < 0.1, np.nan, rng.normal(size=1000)),
            "constant": np.ones(1000),
            "colour": rng.choice(["red", "green", "blue"], 1000, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(1000) < 0.25,
        }
    )
    profile = build_profile(frame, infer_schema(frame))
    x = profile.column("x")
    assert x.edges is not None and x.shares is not None
    assert len(x.edges) == 11 and x.edges == sorted(x.edges)
    assert all(share == pytest.approx(0.1, abs=0.01) for share in x.shares)  # quantile bins
    assert x.missing == pytest.approx(0.1, abs=0.02)
    assert profile.column("constant").shares == [1.0]
    colour = profile.column("colour")
    assert colour.values is not None and list(colour.values) == ["red", "green", "blue"]
    assert colour.values["red"] == pytest.approx(0.5, abs=0.05) and colour.other == 0.0
    assert profile.column("flag").values is not None
    assert set(profile.column("flag").values) == {"True", "False"}


def test_the_reference_profile_keeps_the_most_frequent_values_and_sums_the_rest():
    frame = pd.DataFrame({"id": [f"user{i % 50}" for i in range(1000)]})
    column = build_profile(frame, infer_schema(frame), top=5).column("id")
    assert column.values is not None and len(column.values) == 5
    assert sum(column.values.values()) + (column.other or 0.0) == pytest.approx(1.0)


def test_frames_are_cast_as_the_service_casts_a_request():
    """A column with gaps in training is nullable: the service casts it to float64 (NaN), so a
    test frame without gaps is cast the same before a compiled model is converted and checked
    on it; missing text is NaN, as in training."""
    train = pd.DataFrame({"n": [1.0, None, 3.0], "c": ["a", None, "b"], "f": [True, False, True]})
    schema = infer_schema(train)
    test = pd.DataFrame({"n": [1, 2, 3], "c": ["a", "b", None], "f": [True, True, False]})
    served = schema.as_served(test)
    assert str(served["n"].dtype) == "float64" and served["c"].dtype == object
    assert served["c"].isna().tolist() == [False, False, True] and served["c"].iloc[2] is not None
    assert served["f"].dtype == bool
