import numpy as np
import pandas as pd
import pytest

from keel.errors import SchemaError
from keel.schema import Schema


def test_ids_and_timestamps_are_recognised_by_name_type_and_uniqueness():
    rows = 500
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "order": np.arange(rows),  # strictly increasing integers: a row number
            "uuid": [f"{i:08x}-aa" for i in range(rows)],
            "event_time": pd.date_range("2026-01-01", periods=rows, freq="h", tz="UTC"),
            "created_at": ["2026-01-01T10:00:00"] * rows,
            "amount": np.random.default_rng(0).normal(size=rows),
            "store_id": np.random.default_rng(0).integers(0, 5, rows),  # an id-named feature
        }
    )
    roles = {c.name: c.role for c in Schema.infer(frame).columns}
    assert roles == {
        "customer_id": "id",
        "order": "id",
        "uuid": "id",
        "event_time": "timestamp",
        "created_at": "timestamp",
        "amount": "feature",
        "store_id": "feature",
    }


def test_kinds_come_from_types_and_text_is_told_from_categories():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "flag": rng.random(300) > 0.5,
            "count": rng.integers(0, 9, 300),
            "city": rng.choice(["Paris", "Rome"], 300),
            "review": [f"this product number {i} was quite good overall" for i in range(300)],
        }
    )
    kinds = {c.name: c.kind for c in Schema.infer(frame).columns}
    assert kinds == {"flag": "boolean", "count": "numeric", "city": "categorical", "review": "text"}


def test_numeric_looking_strings_are_flagged_and_never_parsed():
    frame = pd.DataFrame({"price": ["1.5", "2", "3.25", "-4e3"] * 10})
    column = Schema.infer(frame)["price"]
    assert column.kind == "categorical"
    assert column.findings == ("numeric_strings",)


def test_overrides_win_and_unknown_columns_are_named():
    frame = pd.DataFrame({"zip": [75001, 75002, 75001], "label": [0, 1, 0]})
    schema = Schema.infer(frame, roles={"label": "target"}, kinds={"zip": "categorical"})
    assert schema["label"].role == "target"
    assert schema["zip"].kind == "categorical"
    with pytest.raises(SchemaError, match="'nope' is not in"):
        Schema.infer(frame, roles={"nope": "id"})
    with pytest.raises(SchemaError, match="unknown role 'boss'"):
        schema.with_roles({"zip": "boss"})


def test_schema_round_trips_through_a_dict():
    schema = Schema.infer(pd.DataFrame({"a": [1.0], "b": ["x"]}))
    assert Schema.from_dict(schema.to_dict()) == schema


def test_a_numeric_feature_named_like_a_time_stays_a_feature_unless_it_holds_epoch_times():
    frame = pd.DataFrame(
        {
            "response_time": np.linspace(0.1, 3.0, 50),
            "created_ts": np.arange(1_700_000_000, 1_700_000_050),
        }
    )
    roles = {c.name: c.role for c in Schema.infer(frame).columns}
    assert roles == {"response_time": "feature", "created_ts": "timestamp"}


def test_durations_and_dictionary_encoded_numbers_profile_as_numbers():
    from keel.profile import Profile

    frame = pd.DataFrame(
        {
            "wait": pd.to_timedelta(np.arange(40), unit="s"),
            "code": pd.Series(np.arange(40) % 3, dtype="category"),
        }
    )
    schema = Schema.infer(frame).with_kinds({"code": "numeric"})
    profile = Profile.build(frame, schema)
    assert schema["wait"].kind == "numeric" and profile.columns["wait"].count == 40
    assert profile.columns["code"].mean == pytest.approx((np.arange(40) % 3).mean())
