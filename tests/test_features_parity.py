"""One windowed-feature definition, two engines, the same bits.

The offline engine (DuckDB over the event log) and the online state (SQLite, Redis)
answer every query with identical values for every aggregation, over event streams
with late, duplicate and out-of-order events, events exactly at the window's edges,
queries at the very instant an event becomes available, integer and float columns,
with and without a hop. A plain-Python recomputation of the convention
(``[t − W, t)``, or ``[⌊t/h⌋·h − W, t)``, and ``available_time < t``) agrees too.
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.features import AGGREGATIONS, OnlineFeatures, WindowedFeature, compute_offline

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=30)  # every time lies on this grid: edges are hit exactly
WINDOW = "2h"

FLOATS = st.one_of(
    st.sampled_from([0.1, 0.2, 0.3, 1e16, -1e16, 1.0, -0.0, 2.5e-300, float("nan")]),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.none(),
)
INTEGERS = st.one_of(st.integers(min_value=-(10**12), max_value=10**12), st.none())


def _events(values):
    """Rows (user, event_time, available_time, x): a delay of 0 is an event available at
    its own event time; long delays make it late; duplicates repeat whole rows."""
    row = st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=16),  # event time, in steps
        st.sampled_from([0, 0, 1, 1, 2, 5, 9]),  # delay, in steps
        values,
    )
    return st.lists(row, min_size=0, max_size=30).flatmap(
        lambda rows: (
            st.lists(st.sampled_from(rows), max_size=5).map(lambda dup: rows + dup)
            if rows
            else st.just(rows)
        )
    )


def _table(rows, kind):
    return pa.table(
        {
            "user": pa.array([r[0] for r in rows], pa.string()),
            "event_time": pa.array([T0 + r[1] * STEP for r in rows], pa.timestamp("us", "UTC")),
            "available_time": pa.array(
                [T0 + (r[1] + r[2]) * STEP for r in rows], pa.timestamp("us", "UTC")
            ),
            "x": pa.array([r[3] for r in rows], kind),
            # text for distinct_count: the value's residue, or null
            "tag": pa.array(
                [None if r[3] is None else ["p", "q", "r"][r[1] % 3] for r in rows], pa.string()
            ),
        }
    )


def _queries(steps, users=None):
    users = users or [["a", "b", "c", "z"][i % 4] for i in range(len(steps))]
    return pa.table(
        {
            "user": pa.array(users, pa.string()),
            "event_time": pa.array([T0 + s * STEP for s in steps], pa.timestamp("us", "UTC")),
        }
    )


def _features(hop):
    features = [
        WindowedFeature(
            "n_events", entity="user", column=None, aggregation="count", window=WINDOW, hop=hop
        ),
        WindowedFeature(
            "n_x", entity="user", column="x", aggregation="count", window=WINDOW, hop=hop
        ),
    ]
    features.append(
        WindowedFeature(
            "tags",
            entity="user",
            column="tag",
            aggregation="distinct_count",
            window=WINDOW,
            hop=hop,
        )
    )
    for aggregation in AGGREGATIONS[1:]:
        features.append(
            WindowedFeature(
                f"x_{aggregation}",
                entity="user",
                column="x",
                aggregation=aggregation,
                window=WINDOW,
                hop=hop,
            )
        )
    return features


def _replay(online, events):
    """Events reach the online state as they arrived: one ingest per arrival instant.
    Returns the state's watermark, the newest ingest stamp."""
    stamps = events["available_time"].to_pylist()
    if not stamps:  # an empty batch still tells the state the column's type
        online.ingest(events.drop_columns(["available_time"]), now=T0)
        return T0
    for stamp in sorted(set(stamps)):
        batch = events.filter(pa.array([s == stamp for s in stamps]))
        online.ingest(batch.drop_columns(["available_time"]), now=stamp)
    return max(stamps)


def _bits(column):
    """Values with their exact bits: repr round-trips a float and tells -0.0 from 0.0."""
    return [repr(value) for value in column.to_pylist()]


def assert_same_bits(offline, online, features, watermark):
    """The same values, bit for bit; ``__as_of`` offline is t (the truth at t is complete
    as of t), online min(watermark, t) (the state is complete up to its newest ingest)."""
    times = offline["event_time"].to_pylist()
    for feature in features:
        left, right = offline[feature.name], online[feature.name]
        assert left.type == right.type, feature.name
        assert _bits(left) == _bits(right), feature.name
        assert offline[feature.as_of].to_pylist() == times, feature.as_of
        served = [min(t, watermark) for t in times]
        assert online[feature.as_of].to_pylist() == served, feature.as_of


PARITY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PARITY
@given(
    rows=st.one_of(
        _events(INTEGERS).map(lambda r: (r, pa.int64())),
        _events(FLOATS).map(lambda r: (r, pa.float64())),
    ),
    steps=st.lists(st.integers(min_value=-1, max_value=28), min_size=1, max_size=12),
    hop=st.sampled_from([None, "30min", "1h", "2h"]),
)
def test_offline_and_online_agree_bit_for_bit_on_sqlite(rows, steps, hop):
    rows, kind = rows
    events, queries, features = _table(rows, kind), _queries(steps), _features(hop)
    offline = compute_offline(features, events, queries, as_of=True)
    with OnlineFeatures(features, "sqlite://", lateness=None) as online:
        watermark = _replay(online, events)
        served = online.get(queries)
    assert served.num_rows == offline.num_rows == queries.num_rows
    assert_same_bits(offline, served, features, watermark)
    assert_matches_reference(offline, events, queries, features)


def _reference(feature, events, t):
    """The convention, recomputed row by row in plain Python."""
    hop = feature.hop_us
    t_us = int(t.timestamp() * 1_000_000)
    base = t_us if hop is None else (t_us // hop) * hop
    start = datetime.fromtimestamp((base - feature.window_us) / 1e6, UTC)
    return [
        (row[feature.column or "x"], row["available_time"])
        for row in events
        if start <= row["event_time"] < t and row["available_time"] < t
    ]


def assert_matches_reference(offline, events, queries, features):
    rows = events.to_pylist()
    for index, query in enumerate(queries.to_pylist()):
        for feature in features:
            mine = [
                (x, a)
                for x, a in _reference(
                    feature, [r for r in rows if r["user"] == query["user"]], query["event_time"]
                )
            ]
            values = [x for x, _ in mine if x is not None and x == x]
            got = offline[feature.name][index].as_py()
            assert offline[feature.as_of][index].as_py() == query["event_time"]
            expected = _expected(feature, values, len(mine))
            if feature.aggregation == "std" and expected is not None:
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-300), feature.name
            else:
                assert repr(got) == repr(expected), (feature.name, index, values)


def _expected(feature, values, events):
    floats = any(isinstance(v, float) for v in values)
    values = [v + 0.0 if isinstance(v, float) else v for v in values]  # -0.0 is 0.0
    aggregation = feature.aggregation
    if aggregation == "count":
        return events if feature.column is None else len(values)
    if aggregation == "distinct_count":
        return len(set(values))
    if not values:
        return None
    total = math.fsum(values) if floats else sum(values)
    if aggregation == "sum":
        return total
    if aggregation == "mean":
        return total / len(values)
    if aggregation == "min":
        return min(values)
    if aggregation == "max":
        return max(values)
    if len(values) <= feature.ddof:
        return None
    return statistics.stdev([float(v) for v in values])


def test_a_known_stream_against_plain_python():
    """Small and by hand: late, duplicate and edge events, one of each."""
    rows = [
        ("a", 0, 0, 1),  # at the window's start edge for t = 4 steps (2h)
        ("a", 1, 0, 2),
        ("a", 1, 0, 2),  # a duplicate: counted twice
        ("a", 2, 6, 100),  # late: happened at step 2, known at step 8
        ("a", 3, 1, 5),  # available exactly at step 4: not seen by a query at step 4
        ("a", 4, 0, 7),  # at t itself: outside [t − W, t)
    ]
    events = _table(rows, pa.int64())
    queries = _queries([4, 5, 8, 9, 4], users=["a", "a", "a", "a", "z"])
    features = _features(None)
    offline = compute_offline(features, events, queries, as_of=True)
    with OnlineFeatures(features, "sqlite://", lateness=None) as online:
        watermark = _replay(online, events)
        assert_same_bits(offline, online.get(queries), features, watermark)
    # step 4, [0, 4): 1, 2, 2; the late 100 is not known yet, the 5 only at this instant
    # step 5, [1, 5): 2, 2, 5, 7; step 8, [4, 8): 7 (100 is known at 8, not before it)
    # step 9, [5, 9): nothing (100 happened at step 2); "z": no events at all
    assert offline["x_sum"].to_pylist() == [5, 16, 7, None, None]
    assert offline["n_events"].to_pylist() == [3, 4, 1, 0, 0]
    assert offline["x_distinct_count"].to_pylist() == [2, 3, 1, 0, 0]
    assert_matches_reference(offline, events, queries, features)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=_events(FLOATS),
    steps=st.lists(st.integers(min_value=0, max_value=28), min_size=1, max_size=8),
    hop=st.sampled_from([None, "1h"]),
)
def test_offline_and_online_agree_bit_for_bit_on_redis(redis_namespace, rows, steps, hop):
    url, prefix = redis_namespace
    import uuid

    events, queries, features = _table(rows, pa.float64()), _queries(steps), _features(hop)
    offline = compute_offline(features, events, queries, as_of=True)
    with OnlineFeatures(
        features, url, key_prefix=f"{prefix}{uuid.uuid4().hex[:8]}:", lateness=None
    ) as online:
        watermark = _replay(online, events)
        assert_same_bits(offline, online.get(queries), features, watermark)


@settings(max_examples=30, deadline=None)
@given(
    rows=_events(INTEGERS),
    steps=st.lists(st.integers(min_value=0, max_value=28), min_size=1, max_size=8),
    hop=st.sampled_from([None, "1h"]),
    lateness=st.sampled_from(["0", "30min", "2h"]),
)
def test_an_evicting_state_answers_exactly_or_refuses_never_short(rows, steps, hop, lateness):
    """With eviction, each query is answered with the offline bits, or refused when its
    window reaches back past the horizon (newest clock − lateness − W − h): never short."""
    from keel.errors import DataError
    from keel.features.definition import _micros

    events, queries, features = _table(rows, pa.int64()), _queries(steps), _features(hop)
    offline = compute_offline(features, events, queries, as_of=True)
    with OnlineFeatures(features, "sqlite://", lateness=lateness) as online:
        _replay(online, events)
        clock = max(events["available_time"].to_pylist(), default=T0)
        for row in range(queries.num_rows):
            query = queries.slice(row, 1)
            t = query["event_time"][0].as_py()
            for f in features:
                reach = f.window_us + (f.hop_us or 0) + _micros("", "", lateness, zero=True)
                t_us = int(t.timestamp() * 1e6)
                start = t_us if f.hop_us is None else t_us // f.hop_us * f.hop_us
                horizon = int(clock.timestamp() * 1e6) - reach
                try:
                    served = online.get(query, features=[f.name])
                except DataError as error:
                    assert "horizon" in str(error)
                    assert start - f.window_us < horizon, (f.name, t, clock)
                    continue
                assert start - f.window_us >= horizon or not rows
                assert _bits(served[f.name]) == _bits(offline[f.name].slice(row, 1)), f.name
