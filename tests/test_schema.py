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


def test_a_string_column_of_mostly_one_off_values_is_text_and_a_repeating_one_a_category():
    """The cardinality rule: at least 20 distinct values making up more than half the
    non-missing values (or more than 1,000) is text, with the reason and no values; a pandas
    category dtype is the user's declaration and stays a category."""
    n = 40
    frame = pd.DataFrame(
        {
            "name": [f"person {i}" for i in range(n - 1)] + [None],
            "colour": ["red", "green", "blue", "grey"] * (n // 4),
            "declared": pd.Categorical([f"c{i}" for i in range(n)]),
            "few": [f"v{i % 10}" for i in range(n)],  # 10 distinct: too few to be text
        }
    )
    cols = {c.name: c for c in infer_schema(frame).columns}
    assert (cols["name"].kind, cols["name"].categories, cols["name"].nullable) == (
        "text",
        None,
        True,
    )
    assert cols["name"].text_reason == "39 distinct values in 39 non-missing training values"
    assert cols["colour"].kind == "category" and cols["colour"].text_reason is None
    assert cols["declared"].kind == "category" and cols["few"].kind == "category"
    many = pd.DataFrame({"id": [f"id{i % 1001}" for i in range(5000)]})  # 1,001 distinct, 20 %
    assert infer_schema(many).columns[0].kind == "text"
    assert infer_schema(frame).request_dtypes()["name"] == "object"


def test_the_pipeline_decides_text_or_category_whatever_the_values():
    """The pipeline wins over the values: two repeated sentences fed to a CountVectorizer
    (named, or by position inside a nested pipeline) are text, not a category of two; 40
    one-off codes the model one-hot encodes are a category, not text."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from workbench.schema import pipeline_encoders

    frame = pd.DataFrame(
        {
            "note": ["good day", "bad day"] * 20,
            "title": ["a b", "c d"] * 20,
            "code": [f"zip{i:05d}" for i in range(40)],
            "colour": ["red", "blue"] * 20,
        }
    )
    model = make_pipeline(
        ColumnTransformer(
            [
                ("note", CountVectorizer(), "note"),
                ("title", make_pipeline(HashingVectorizer(n_features=8)), 1),
                (
                    "code",
                    make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
                    ["code"],
                ),
            ]
        ),
        LogisticRegression(),
    ).fit(frame, [0, 1] * 20)
    encoders = pipeline_encoders(model)
    assert encoders == {
        "note": ("text", "CountVectorizer"),
        "title": ("text", "HashingVectorizer"),
        "code": ("category", "OneHotEncoder"),
    }
    cols = {c.name: c for c in infer_schema(frame, encoders=encoders).columns}
    assert cols["note"].kind == "text" and cols["note"].categories is None
    assert cols["note"].text_reason == "the model feeds it to a CountVectorizer"
    assert cols["title"].kind == "text" and cols["colour"].kind == "category"
    assert cols["code"].kind == "category" and len(cols["code"].categories or []) == 40
    assert infer_schema(frame).columns[2].kind == "text"  # by the values alone


def test_a_text_column_is_profiled_by_length_and_missing_share_never_by_value():
    """The reference profile and the drift reference of a text column hold string lengths and
    the missing share; none of its values."""
    import json

    from workbench.validation.reference import build_reference, drift_kinds

    texts = [f"secret-{i:04d} " * (1 + i % 5) for i in range(200)]
    frame = pd.DataFrame({"note": texts[:-20] + [None] * 20})
    schema = infer_schema(frame)
    column = build_profile(frame, schema).column("note")
    assert column.kind == "text" and column.values is None and column.missing == 0.1
    assert column.edges is not None and min(column.edges) == len(texts[0])
    reference = build_reference(frame, drift_kinds(schema))
    note = reference["columns"]["note"]
    assert note["kind"] == "text" and note["missing"] == 20 and "lengths" in note
    assert "secret" not in json.dumps(reference) + column.model_dump_json()


@pytest.mark.parametrize(
    ("values", "example"),
    [
        (pd.to_datetime(["2024-01-05", "2024-02-01", None]), "2024-01-05 00:00:00"),
        (pd.Series(["2024-01-05T10:00:00Z", None, "2024-02-01 09:30"]), "2024-01-05T10:00:00Z"),
        (pd.to_timedelta(["1 day", "2 days", "3 days"]), "1 days 00:00:00"),
    ],
    ids=["datetime64", "iso-text", "timedelta"],
)
def test_a_date_column_is_refused_with_one_message_naming_it_and_the_next_step(values, example):
    """Dates and times (a datetime dtype, ISO-8601 text as read from CSV, durations) are never
    typed as categories: one DataError names the column, an example and what to do."""
    from workbench.schema import check_supported

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "signup": values})
    with pytest.raises(DataError) as caught:
        infer_schema(frame)
    message = str(caught.value)
    assert f"column 'signup' (e.g. {example!r}) holds dates or times" in message
    assert "derive numeric features" in message and "'x'" not in message
    check_supported(frame[["x"]], what="training data")  # numbers alone pass
    check_supported(pd.DataFrame({"code": ["2024-01-05", "not a date"]}), what="training data")
