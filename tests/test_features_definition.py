"""The feature definitions of keel.yaml: read into ``WindowedFeature``s, written back the
same, and every mistake named by its entry and key."""

from __future__ import annotations

import pytest

from keel.errors import ConfigError
from keel.features import WindowedFeature, parse_features

ENTRIES = [
    {"name": "txns_7d", "entity": "user_id", "aggregation": "count", "window": "7D"},
    {
        "name": "spend_1h",
        "entity": ["user_id", "shop"],
        "column": "amount",
        "aggregation": "std",
        "window": "1h",
        "hop": "10min",
        "ddof": 0,
        "available_time": "arrived_at",
    },
    {
        "name": "shops_30d",
        "entity": "user_id",
        "column": "shop",
        "aggregation": "distinct_count",
        "window": "30D",
        "max_distinct": 50,
        "availability_lag": "15min",
        "event_time": "ts",
    },
]


def test_entries_read_into_definitions_and_write_back_the_same():
    features = parse_features(ENTRIES, "keel.yaml")
    assert [f.name for f in features] == ["txns_7d", "spend_1h", "shops_30d"]
    assert features[1].entities == ("user_id", "shop") and features[1].hop_us == 600_000_000
    assert features[2].lag_us == 900_000_000 and features[2].as_of == "shops_30d__as_of"
    assert parse_features([f.to_dict() for f in features], "again") == features
    assert hash(features[1]) == hash(parse_features(ENTRIES, "k")[1])  # frozen, comparable


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"entity": "u", "aggregation": "count", "window": "1D"}, "features[0].name: missing"),
        (
            {"name": "a", "entity": "u", "aggregation": "count", "window": "1D", "widow": 1},
            "features[0].widow: unknown key",
        ),
        (
            {"name": "a", "entity": "u", "aggregation": "sum", "window": "1D"},
            "features[0].column: feature 'a': sum needs a column",
        ),
        (
            {"name": "a", "entity": "u", "aggregation": "count", "window": "soon"},
            "features[0].window: feature 'a': window",
        ),
        ({"name": "a", "entity": [], "aggregation": "count", "window": "1D"}, "features[0].entity"),
        (
            {"name": "a b", "entity": "u", "aggregation": "count", "window": "1D"},
            "features[0].name",
        ),
        (
            {"name": "a", "entity": "u", "aggregation": "count", "window": "1D", "ddof": "1"},
            "features[0].ddof",
        ),
        (
            {"name": "a", "entity": "u", "aggregation": "count", "window": "1D", "lag": "1h"},
            "features[0].lag: unknown key",
        ),
        (
            {
                "name": "a",
                "entity": "u",
                "aggregation": "count",
                "window": "1D",
                "availability_lag": "-1h",
            },
            "features[0].availability_lag",
        ),
    ],
)
def test_each_mistake_is_named_by_entry_and_key(entry, says):
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_features([entry], "keel.yaml")


def test_the_list_and_its_entries_must_be_what_they_say():
    with pytest.raises(ConfigError, match="keel.yaml: features must be a list"):
        parse_features({"name": "a"}, "keel.yaml")
    with pytest.raises(ConfigError, match=r"features\[0\]: a feature is a mapping"):
        parse_features(["txns_7d"], "keel.yaml")
    with pytest.raises(ConfigError, match=r"features\[1\].name: 'txns_7d' is also features\[0\]"):
        parse_features([ENTRIES[0], ENTRIES[0]], "keel.yaml")


def test_python_definitions_take_a_list_for_a_composite_entity():
    feature = WindowedFeature("n", entity=["a", "b"], column=None, aggregation="count", window="1D")
    assert feature.entity == ("a", "b")
