"""The online state's watermark and the ``__as_of`` it serves, on real SQLite and Redis.

``OnlineFeatures.get`` serves ``<name>__as_of`` = min(watermark, t): the moment up to
which the state is known complete for a query at t (the watermark is the newest ingest
stamp, heartbeats included, and never moves back). So a value is fresh when its state
is current, however old its entity's last event, and stale when its pipeline stopped,
however recent the entity's last event: the skew check's ``stale_share`` sees what it
is meant to.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from keel.checks.skew import FeaturesTruth, SkewSpec, check_skew
from keel.features import OnlineFeatures, WindowedFeature, compute_offline, event_log, ingest

T = datetime(2026, 3, 10, 12, tzinfo=UTC)
DAY = timedelta(days=1)
COUNT = WindowedFeature("clicks_7d", entity="user", column=None, aggregation="count", window="7D")
SPEND = WindowedFeature("spend_7d", entity="user", column="amount", aggregation="sum", window="7D")
FEATURES = [COUNT, SPEND]


@pytest.fixture(params=["sqlite", "redis"])
def open_state(request, tmp_path):
    """``open_state(name)``: an ``OnlineFeatures`` of FEATURES on this backend; the same
    name opens the same state again (a second writer)."""
    opened: list[OnlineFeatures] = []
    if request.param == "redis":
        url, prefix = request.getfixturevalue("redis_namespace")
        run = uuid.uuid4().hex[:8]

        def make(name="state"):
            return OnlineFeatures(FEATURES, url, key_prefix=f"{prefix}{run}:{name}:")
    else:

        def make(name="state"):
            return OnlineFeatures(FEATURES, f"sqlite:///{tmp_path / name}.db")

    def opener(name="state"):
        state = make(name)
        opened.append(state)
        return state

    yield opener
    for state in opened:
        state.close()


def _events(rows):
    return pa.table(
        {
            "user": pa.array([r[0] for r in rows], pa.string()),
            "amount": pa.array([r[1] for r in rows], pa.int64()),
            "event_time": pa.array([r[2] for r in rows], pa.timestamp("us", "UTC")),
        }
    )


def _queries(users, at):
    return pa.table(
        {
            "request_id": pa.array([f"r-{u}" for u in users], pa.string()),
            "user": pa.array(users, pa.string()),
            "event_time": pa.array([at] * len(users), pa.timestamp("us", "UTC")),
        }
    )


def _as_of(served, feature=COUNT):
    return served[feature.as_of].to_pylist()


def test_an_entity_whose_last_event_is_days_old_is_fresh_when_the_state_is_current(open_state):
    state = open_state()
    state.ingest(_events([("old", 5, T - 5 * DAY)]), now=T - 5 * DAY + timedelta(minutes=1))
    for day in range(4, 0, -1):  # the pipeline runs daily, with nothing new for "old"
        state.ingest(_events([("busy", 1, T - day * DAY)]), now=T - day * DAY + timedelta(hours=1))
    state.ingest([], now=T)  # and says so at T: a heartbeat
    served = state.get(_queries(["old", "busy"], T))
    assert served["clicks_7d"].to_pylist() == [1, 4]
    assert served["spend_7d"].to_pylist() == [5, 4]
    assert _as_of(served) == [T, T] and _as_of(served, SPEND) == [T, T]
    earlier = state.get(_queries(["old"], T - timedelta(hours=6)))  # asked of the past: t
    assert _as_of(earlier) == [T - timedelta(hours=6)]


def test_a_heartbeat_advances_the_watermark_and_changes_no_value(open_state, tmp_path):
    state = open_state()
    state.ingest(_events([("a", 3, T - 2 * DAY)]), now=T - 2 * DAY)
    later = T + timedelta(hours=1)
    assert _as_of(state.get(_queries(["a"], later))) == [T - 2 * DAY]
    assert state.ingest([], now=T - DAY) == 0  # a list of no events
    assert _as_of(state.get(_queries(["a"], later))) == [T - DAY]
    empty = _events([])  # a table of no events, with the columns
    assert state.ingest(empty, now=T - DAY + timedelta(hours=1)) == 0
    assert ingest([], features=FEATURES, root=tmp_path / "logs", online=state, now=T) == 0
    served = state.get(_queries(["a"], later))
    assert _as_of(served) == [T] and served["spend_7d"].to_pylist() == [3]
    assert not event_log(tmp_path / "logs").exists()  # nothing to log: a heartbeat only


def test_every_empty_batch_is_a_heartbeat_and_an_untyped_one_fixes_no_kind(open_state):
    import pandas as pd

    state = open_state()
    untyped = pa.table({c: pa.array([], pa.null()) for c in ("user", "amount", "event_time")})
    for back, empty in enumerate([pd.DataFrame(), untyped, []]):  # a header-only CSV, say
        assert state.ingest(empty, now=T - (3 - back) * DAY) == 0
    assert _as_of(state.get(_queries(["a"], T))) == [T - DAY]
    state.ingest(_events([("a", 3, T - DAY)]), now=T)  # the first events fix the kind
    served = state.get(_queries(["a"], T + timedelta(hours=1)))
    assert served["spend_7d"].type == pa.int64() and served["spend_7d"].to_pylist() == [3]


def test_the_watermark_never_moves_back(open_state):
    ahead, behind = open_state("shared"), open_state("shared")  # two writers, two clocks
    ahead.ingest(_events([("a", 1, T - DAY)]), now=T)
    behind.ingest(_events([("a", 2, T - 2 * DAY)]), now=T - 3 * DAY)  # a lagging clock
    behind.ingest([], now=T - 3 * DAY)
    later = T + timedelta(hours=1)
    for state in (ahead, behind):
        served = state.get(_queries(["a"], later))
        assert _as_of(served) == [T] and served["spend_7d"].to_pylist() == [3]


def test_an_entity_never_seen_is_current_as_of_the_watermark(open_state):
    state = open_state()
    served = state.get(_queries(["nobody"], T))  # no ingest at all: nothing is known
    assert served["clicks_7d"].to_pylist() == [0] and _as_of(served) == [None]
    state.ingest(_events([("a", 1, T - DAY)]), now=T - timedelta(hours=2))
    served = state.get(_queries(["nobody", "a"], T))
    assert served["clicks_7d"].to_pylist() == [0, 1]
    assert _as_of(served) == [T - timedelta(hours=2)] * 2


def test_a_query_without_a_time_has_no_as_of(open_state):
    state = open_state()
    state.ingest([], now=T)
    queries = pa.table(
        {"user": ["a", "a"], "event_time": pa.array([T, None], pa.timestamp("us", "UTC"))}
    )
    assert _as_of(state.get(queries)) == [T, None]


def _served_log(state, users, at):
    served = state.get(_queries(users, at))
    return served.select(
        ["request_id", "user", "event_time", "clicks_7d", "clicks_7d__as_of", "spend_7d"]
    ).append_column("spend_7d__as_of", served["spend_7d__as_of"])


def test_a_state_whose_ingests_stopped_is_stale_and_its_fresh_twin_is_not(open_state, tmp_path):
    """The same events into two states; one's pipeline stops 3 days before T (its
    entities' last events are recent), the other's keeps sending heartbeats. At T both
    serve the same, exact values; only the stopped one is stale under a ttl of 1D."""
    states = {"fresh": open_state("fresh"), "stopped": open_state("stopped")}
    users = [f"u{i:02d}" for i in range(30)]
    root = tmp_path / "logs"
    stop = T - 3 * DAY
    for day in range(6, 2, -1):  # every user active daily until the stop
        when = T - day * DAY
        batch = _events([(u, i + day, when - timedelta(hours=1)) for i, u in enumerate(users)])
        for name, state in states.items():
            ingest(batch, features=FEATURES, root=root / name, online=state, now=when)
    for day in (2, 1, 0):  # nothing new: only the fresh one's pipeline still says so
        ingest(
            [], features=FEATURES, root=root / "fresh", online=states["fresh"], now=T - day * DAY
        )
    spec = SkewSpec(features=("clicks_7d", "spend_7d"), entity_keys=("user",), ttl=86400.0)
    for name, state in states.items():
        served = _served_log(state, users, T)
        truth = FeaturesTruth(FEATURES, event_log(root / name), compute_offline)
        results = check_skew(served, truth, spec)
        alerts = {
            (r.column, r.metric): r.details.get("kind") for r in results if r.status == "alert"
        }
        shares = {(r.column, r.metric): r.value for r in results if r.segment is None}
        assert shares[("clicks_7d", "mismatch_share")] == 0.0  # the values are exact
        assert shares[("spend_7d", "mismatch_share")] == 0.0
        if name == "fresh":
            assert _as_of(served) == [T] * len(users)
            assert alerts == {} and shares[("clicks_7d", "stale_share")] == 0.0
        else:
            assert _as_of(served) == [stop] * len(users)
            assert alerts == {
                ("clicks_7d", "stale_share"): "stale value",
                ("spend_7d", "stale_share"): "stale value",
            }
            stale = next(r for r in results if r.metric == "stale_share")
            assert stale.value == 1.0
            assert "older than the ttl of 1 d" in stale.details["finding"], stale.details


def test_a_state_written_before_the_watermark_gains_it(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE feature_state (feature TEXT PRIMARY KEY, kind TEXT, horizon INTEGER)")
    db.execute("INSERT INTO feature_state VALUES ('clicks_7d', NULL, NULL)")
    db.commit()
    db.close()
    with OnlineFeatures([COUNT], f"sqlite:///{path}") as state:
        assert _as_of(state.get(_queries(["a"], T))) == [None]  # not known: no ingest seen
        state.ingest([], now=T - DAY)
        assert _as_of(state.get(_queries(["a"], T))) == [T - DAY]
