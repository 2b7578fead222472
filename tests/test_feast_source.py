"""Feast as a source, against one real Feast repository (provider ``local``, DuckDB offline
store, SQLite online store, FileSources over Parquet made here): offline features equal an
as-of join recomputed here with numpy, row for row, in the input order, with every row
Feast cannot answer null and counted; integers stay integers; Feast's own logged-features
Parquet maps to keel's served-log shape; the Dask default store is refused.

Feast pins pandas < 3, so these tests run in their own environment (``.ci/stacks/feast.sh``,
a step of ``.ci/run``); elsewhere they skip, saying what is missing."""

from __future__ import annotations

import datetime as dt
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from keel.data.feast import (
    FeastSource,
    historical_features,
    logged_features,
    missing_requirement,
    retrieval_info,
)
from keel.errors import ConfigError, SchemaError

_MISSING = missing_requirement()
pytestmark = [
    pytest.mark.feast,
    pytest.mark.skipif(_MISSING is not None, reason=f"Feast: {_MISSING}"),
]

UTC = dt.UTC
BASE = dt.datetime(2026, 11, 1, tzinfo=UTC)
USERS = 12  # ids 1..12; 99 never has a feature row
STATS_TTL = dt.timedelta(days=2)
BIG = 2**62  # past 2**53: a value that went through a float would not come back equal


def _stats(rng) -> pa.Table:
    """``user_stats``: one row per (user, event time), distinct event times, written
    (``created``) up to two days after the event: late-arriving feature values."""
    n = 240
    seconds = np.sort(rng.choice(20 * 86_400, size=n, replace=False))
    event = np.array([BASE + dt.timedelta(seconds=int(s)) for s in seconds])
    lag = rng.integers(0, 2 * 86_400, n)
    lag[rng.random(n) < 0.5] = 0  # half are written at once
    created = np.array([e + dt.timedelta(seconds=int(x)) for e, x in zip(event, lag, strict=True)])
    return pa.table(
        {
            "user_id": pa.array(rng.integers(1, USERS + 1, n), pa.int64()),
            "event_timestamp": pa.array(event, pa.timestamp("us", tz="UTC")),
            "created": pa.array(created, pa.timestamp("us", tz="UTC")),
            "amount_7d": pa.array(BIG + rng.integers(0, 10**6, n), pa.int64()),
            "score": pa.array(rng.normal(size=n), pa.float64()),
        }
    )


def _profile(rng) -> pa.Table:
    """``user_profile``: a few rows per user, no TTL (ttl 0: a value lives until replaced);
    users 11 and 12 have none."""
    n = 30
    seconds = np.sort(rng.choice(20 * 86_400, size=n, replace=False))
    return pa.table(
        {
            "user_id": pa.array(rng.integers(1, USERS - 1, n), pa.int64()),
            "event_timestamp": pa.array(
                [BASE + dt.timedelta(seconds=int(s)) for s in seconds],
                pa.timestamp("us", tz="UTC"),
            ),
            "orders": pa.array(rng.integers(0, 1_000, n), pa.int32()),
            "tier": pa.array(rng.choice(np.array(["gold", "silver"], dtype=object), n)),
        }
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """One real Feast repository, applied once for the module."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource
    from feast.feature_logging import LoggingConfig
    from feast.infra.offline_stores.file_source import FileLoggingDestination
    from feast.types import Float64, Int32, Int64, String
    from feast.value_type import ValueType

    root = tmp_path_factory.mktemp("feast") / "repo"
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(21)
    stats, profile = _stats(rng), _profile(rng)
    pq.write_table(stats, root / "data" / "user_stats.parquet")
    pq.write_table(profile, root / "data" / "user_profile.parquet")
    (root / "feature_store.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: keel_feast_test
            registry: {root}/data/registry.db
            provider: local
            offline_store:
              type: duckdb
            online_store:
              type: sqlite
              path: {root}/data/online.db
            entity_key_serialization_version: 3
            """
        )
    )
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    user_stats = FeatureView(
        name="user_stats",
        entities=[user],
        ttl=STATS_TTL,
        schema=[
            Field(name="user_id", dtype=Int64),
            Field(name="amount_7d", dtype=Int64),
            Field(name="score", dtype=Float64),
        ],
        source=FileSource(
            path=str(root / "data" / "user_stats.parquet"),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
    )
    user_profile = FeatureView(
        name="user_profile",
        entities=[user],
        ttl=dt.timedelta(0),
        schema=[
            Field(name="user_id", dtype=Int64),
            Field(name="orders", dtype=Int32),
            Field(name="tier", dtype=String),
        ],
        source=FileSource(
            path=str(root / "data" / "user_profile.parquet"), timestamp_field="event_timestamp"
        ),
    )
    relative = FeatureView(  # a relative path, as `feast init` writes them
        name="user_profile_relative",
        entities=[user],
        ttl=dt.timedelta(0),
        schema=[Field(name="user_id", dtype=Int64), Field(name="orders", dtype=Int32)],
        source=FileSource(path="data/user_profile.parquet", timestamp_field="event_timestamp"),
    )
    serving = FeatureService(
        name="serving",
        features=[user_stats[["amount_7d", "score"]], user_profile[["orders"]]],
        logging_config=LoggingConfig(destination=FileLoggingDestination(path="logs")),
    )
    store = FeatureStore(repo_path=str(root))
    store.apply([user, user_stats, user_profile, relative, serving])
    return {"path": root, "store": store, "stats": stats, "profile": profile}


def _as_of(table: pa.Table, users, times, columns, ttl=None, created=None):
    """An independent point-in-time join: for each (user, t), the row of ``table`` with the
    latest event time ≤ t (and ≥ t − ttl when given; written ≤ t when ``created``), None
    where there is none."""
    user_col = table["user_id"].to_numpy()
    event = np.array(table["event_timestamp"].to_pylist())
    written = np.array(table[created].to_pylist()) if created else None
    values = {c: table[c].to_pylist() for c in columns}
    out = {c: [] for c in columns}
    for user, t in zip(users, times, strict=True):
        ok = np.zeros(len(user_col), dtype=bool)
        if user is not None and t is not None:
            ok = (user_col == user) & (event <= t)
            if ttl:
                ok &= event >= t - ttl
            if written is not None:
                ok &= written <= t
        rows = np.flatnonzero(ok)
        best = rows[np.argmax(event[rows])] if len(rows) else None
        for c in columns:
            out[c].append(None if best is None else values[c][best])
    return out


def _entity_rows(repo) -> pa.Table:
    """Rows at random times, plus the edges: times equal to an event time and to a write
    time, an unknown user, a null user and a null time, duplicated rows, rows long after the
    last event (outside the TTL), out of time order."""
    rng = np.random.default_rng(7)
    stats = repo["stats"]
    n = 300
    users = [int(u) for u in rng.integers(1, USERS + 1, n)]
    times = [BASE + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 24 * 86_400, n)]
    events = stats["event_timestamp"].to_pylist()
    written = stats["created"].to_pylist()
    owners = stats["user_id"].to_pylist()
    for i in range(0, 40, 2):  # at an event's own time, and at its write time
        users += [owners[i], owners[i + 1]]
        times += [events[i], written[i + 1]]
    users += [99, None, 3, 3, 3, 5]
    times += [BASE + dt.timedelta(days=5), BASE + dt.timedelta(days=5), None]
    times += [BASE + dt.timedelta(days=6)] * 2 + [BASE + dt.timedelta(days=60)]
    order = rng.permutation(len(users))
    users = [users[i] for i in order]
    times = [times[i] for i in order]
    return pa.table(
        {
            "request_id": [f"r{i}" for i in range(len(users))],
            "user_id": pa.array(users, pa.int64()),
            "served_at": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )


REFS = ["user_stats:amount_7d", "user_stats:score", "user_profile:orders", "user_profile:tier"]


@pytest.fixture(scope="module")
def answered(repo):
    rows = _entity_rows(repo)
    return rows, historical_features(repo["path"], REFS, rows, timestamp="served_at")


def _expected(repo, rows, created):
    users = rows["user_id"].to_pylist()
    times = rows["served_at"].to_pylist()
    stats = _as_of(
        repo["stats"],
        users,
        times,
        ["amount_7d", "score"],
        STATS_TTL,
        "created" if created else None,
    )
    profile = _as_of(repo["profile"], users, times, ["orders", "tier"])
    return {**stats, **profile}


def test_offline_features_equal_an_independent_point_in_time_join_row_for_row(repo, answered):
    rows, table = answered
    assert table.num_rows == rows.num_rows  # rows in = rows out
    assert table.column_names == [*rows.column_names, "amount_7d", "score", "orders", "tier"]
    for name in rows.column_names:  # the input's columns, unchanged and in the input order
        assert table[name].to_pylist() == rows[name].to_pylist()
    expected = _expected(repo, rows, created=True)
    for name, values in expected.items():
        assert table[name].to_pylist() == values, name
    # The edges are really there: rows answered at their event's own instant (inclusive),
    # rows unanswered inside the data's span, and both views answering differently.
    assert sum(v is None for v in expected["amount_7d"]) > 20
    assert sum(v is not None for v in expected["amount_7d"]) > 100


def test_rows_feast_cannot_answer_come_back_null_and_counted(repo, answered):
    rows, table = answered
    info = retrieval_info(table)
    stats_missing = [v is None for v in table["amount_7d"].to_pylist()]
    profile_missing = [v is None for v in table["orders"].to_pylist()]
    assert info["rows"] == rows.num_rows
    assert info["unanswered_by_view"] == {
        "user_stats": sum(stats_missing),
        "user_profile": sum(profile_missing),
    }
    assert info["unanswered_rows"] == sum(
        a or b for a, b in zip(stats_missing, profile_missing, strict=True)
    )
    assert info["not_asked_rows"] == 2  # the null user and the null time
    assert info["null_counts"]["amount_7d"] == sum(stats_missing)
    assert info["offline_store"] == "duckdb" and info["filter_by_created_timestamp"] is True
    by_id = {r["request_id"]: r for r in table.to_pylist()}
    unknown = next(r for r in rows.to_pylist() if r["user_id"] == 99)
    assert by_id[unknown["request_id"]]["amount_7d"] is None
    assert by_id[unknown["request_id"]]["orders"] is None
    late = next(r for r in rows.to_pylist() if r["user_id"] == 5 and r["served_at"].day == 31)
    assert by_id[late["request_id"]]["amount_7d"] is None  # 60 days on: outside the 2-day TTL
    assert (
        by_id[late["request_id"]]["orders"] is not None
        or 5 not in repo["profile"]["user_id"].to_pylist()
    )  # no TTL on the profile view


def test_created_timestamp_filtering_is_what_had_been_written_by_then(repo, answered):
    rows, filtered = answered
    unfiltered = historical_features(
        repo["store"], REFS[:2], rows, timestamp="served_at", filter_by_created_timestamp=False
    )
    expected = _expected(repo, rows, created=False)
    assert unfiltered["amount_7d"].to_pylist() == expected["amount_7d"]
    differ = sum(
        a != b
        for a, b in zip(
            unfiltered["amount_7d"].to_pylist(), filtered["amount_7d"].to_pylist(), strict=True
        )
    )
    assert differ > 10  # late-written values are seen only without the filter
    assert retrieval_info(unfiltered)["filter_by_created_timestamp"] is False


def test_integer_features_stay_integers_exactly(repo, answered):
    _rows, table = answered
    assert table.schema.field("amount_7d").type == pa.int64()
    assert table.schema.field("orders").type == pa.int32()
    assert table.schema.field("score").type == pa.float64()
    present = [v for v in table["amount_7d"].to_pylist() if v is not None]
    assert all(isinstance(v, int) and v >= BIG for v in present)
    assert set(present) <= set(repo["stats"]["amount_7d"].to_pylist())  # no float rounding


def test_pandas_input_naive_times_and_full_names_give_the_same_answer(repo, answered):
    rows, table = answered
    naive = rows.set_column(2, "served_at", rows["served_at"].cast(pa.timestamp("us"))).to_pandas()
    again = historical_features(
        repo["store"], REFS, naive, timestamp="served_at", full_feature_names=True
    )
    assert again.num_rows == rows.num_rows
    assert again["user_stats__amount_7d"].to_pylist() == table["amount_7d"].to_pylist()
    assert again["user_profile__tier"].to_pylist() == table["tier"].to_pylist()


def test_feast_source_reads_like_any_source(repo, answered):
    rows, table = answered
    source = FeastSource(repo["path"], REFS, rows, timestamp="served_at")
    assert source.num_rows == rows.num_rows and source.schema.names == table.column_names
    assert source.read_all().equals(table)
    batches = list(source.batches(columns=["request_id", "amount_7d"], batch_rows=100))
    assert all(b.num_rows <= 100 and b.schema.names == ["request_id", "amount_7d"] for b in batches)
    assert sum(b.num_rows for b in batches) == rows.num_rows
    assert source.info["unanswered_rows"] == retrieval_info(table)["unanswered_rows"]
    with pytest.raises(SchemaError, match="no column nope"):
        source.read_all(["nope"])


def test_bad_requests_are_refused_naming_what_is_wrong(repo):
    rows = pa.table({"uid": [1], "event_timestamp": pa.array([BASE], pa.timestamp("us"))})
    with pytest.raises(SchemaError, match="lack user_id"):
        historical_features(repo["store"], REFS[:1], rows)
    good = rows.rename_columns(["user_id", "event_timestamp"])
    with pytest.raises(ConfigError, match="no feature view 'nope'.*user_stats"):
        historical_features(repo["store"], ["nope:x"], good)
    with pytest.raises(ConfigError, match="no feature 'x'.*amount_7d"):
        historical_features(repo["store"], ["user_stats:x"], good)
    with pytest.raises(ConfigError, match="view:feature"):
        historical_features(repo["store"], ["amount_7d"], good)
    with pytest.raises(SchemaError, match="must be timestamps"):
        historical_features(
            repo["store"], REFS[:1], pa.table({"user_id": [1], "t": ["x"]}), timestamp="t"
        )


def test_a_dask_offline_store_is_refused_naming_the_fix(tmp_path):
    offline_stores = ("", "offline_store:\n  type: file\n", "offline_store:\n  type: dask\n")
    for i, offline in enumerate(offline_stores):
        folder = tmp_path / f"dask{i}"
        folder.mkdir()
        (folder / "feature_store.yaml").write_text(
            f"project: dask_repo\nregistry: {folder}/registry.db\nprovider: local\n"
            f"online_store:\n  type: sqlite\n  path: {folder}/online.db\n{offline}"
            "entity_key_serialization_version: 3\n"
        )
        rows = pa.table({"user_id": [1], "event_timestamp": pa.array([BASE], pa.timestamp("us"))})
        with pytest.raises(ConfigError, match=r"drops entity rows.*type: duckdb"):
            historical_features(folder, REFS[:1], rows)


def _feast_logs(repo, rows: pa.Table, answer: pa.Table, log_time: dt.datetime) -> pa.Table:
    """A log table in the schema Feast's own logging source declares for the service."""
    from feast.feature_logging import FeatureServiceLoggingSource

    store = repo["store"]
    schema = FeatureServiceLoggingSource(
        store.get_feature_service("serving"), store.project
    ).get_schema(store.registry)
    stats = repo["stats"]
    when = dict(
        zip(stats["amount_7d"].to_pylist(), stats["event_timestamp"].to_pylist(), strict=True)
    )
    n = rows.num_rows
    amount = answer["amount_7d"].to_pylist()
    as_of = [when.get(v) for v in amount]
    status = [1 if v is not None else 3 for v in amount]
    data = {
        "user_id": rows["user_id"],
        "user_stats__amount_7d": answer["amount_7d"],
        "user_stats__amount_7d__timestamp": pa.array(as_of, pa.timestamp("s", tz="UTC")),
        "user_stats__amount_7d__status": pa.array(status, pa.int32()),
        "user_stats__score": answer["score"],
        "user_stats__score__timestamp": pa.array(as_of, pa.timestamp("s", tz="UTC")),
        "user_stats__score__status": pa.array(status, pa.int32()),
        "user_profile__orders": answer["orders"],
        "user_profile__orders__timestamp": pa.nulls(n, pa.timestamp("s", tz="UTC")),
        "user_profile__orders__status": pa.array(
            [1 if v is not None else 3 for v in answer["orders"].to_pylist()], pa.int32()
        ),
        "__log_timestamp": pa.array([log_time] * n, pa.timestamp("us", tz="UTC")),
        "__log_date": pa.array([log_time.date()] * n, pa.date32()),
        "__request_id": rows["request_id"],
    }
    assert list(data) == schema.names  # Feast's declared order
    return pa.table(data, schema=schema)


def test_logged_features_written_by_feast_map_to_the_served_log(repo, answered, monkeypatch):
    rows, answer = answered
    rows, answer = rows.slice(0, 50), answer.slice(0, 50)
    store = repo["store"]
    monkeypatch.chdir(repo["path"])  # Feast writes a relative destination against the cwd
    (repo["path"] / "logs").mkdir()  # into a folder that must exist
    day1, day2 = BASE + dt.timedelta(days=30), BASE + dt.timedelta(days=31)
    service = store.get_feature_service("serving")
    store.write_logged_features(
        _feast_logs(repo, rows.slice(0, 30), answer.slice(0, 30), day1), source=service
    )
    store.write_logged_features(
        _feast_logs(repo, rows.slice(30), answer.slice(30), day2), source=service
    )
    written = sorted((repo["path"] / "logs").glob("*.parquet"))
    assert len(written) == 2
    raw = pq.read_table(written[0])
    assert (
        "__request_id" in raw.column_names and "user_stats__amount_7d__status" in raw.column_names
    )

    served = logged_features(store, "serving")
    assert served.column_names == [
        "request_id",
        "event_time",
        "user_id",
        "amount_7d",
        "amount_7d__as_of",
        "amount_7d__status",
        "score",
        "score__as_of",
        "score__status",
        "orders",
        "orders__as_of",
        "orders__status",
    ]
    assert served.num_rows == 50
    assert served.schema.field("amount_7d").type == pa.int64()
    by_id = {r["request_id"]: r for r in served.to_pylist()}
    stats = repo["stats"]
    when = dict(
        zip(stats["amount_7d"].to_pylist(), stats["event_timestamp"].to_pylist(), strict=True)
    )
    for i, original in enumerate(rows.to_pylist()):
        got = by_id[original["request_id"]]
        assert got["user_id"] == original["user_id"]
        assert got["event_time"] == (day1 if i < 30 else day2)
        assert got["amount_7d"] == answer["amount_7d"][i].as_py()
        assert got["score"] == answer["score"][i].as_py()
        if got["amount_7d"] is None:
            assert got["amount_7d__status"] == "NOT_FOUND" and got["amount_7d__as_of"] is None
        else:
            assert got["amount_7d__status"] == "PRESENT"
            assert got["amount_7d__as_of"] == when[got["amount_7d"]].replace(microsecond=0)

    # The same log from the repository's path, and from the log folder itself; a window.
    assert logged_features(repo["path"], "serving").equals(served)
    assert logged_features(repo["path"] / "logs").equals(served)
    second = logged_features(store, "serving", start=day2, end=day2 + dt.timedelta(days=1))
    assert second.num_rows == 20 and set(second["event_time"].to_pylist()) == {day2}
    with pytest.raises(ConfigError, match="needs feature_service"):
        logged_features(repo["path"])


def test_the_skew_check_reads_feast_on_both_sides(repo, answered, tmp_path):
    """Served features from Feast's own log, truth from Feast's offline store: a log that
    served exactly the offline values is clean; the same log with ``score`` served 100×
    in a fifth of the rows is skewed in ``score`` only, named a unit mismatch."""
    from keel.checks.skew import FeastTruth, SkewSpec, check_skew

    rows, answer = answered
    keep = pc.is_valid(answer["amount_7d"])  # rows the offline store answers
    rows, answer = rows.filter(keep), answer.filter(keep)
    logs = _feast_logs(repo, rows, answer, BASE)
    logs = logs.set_column(
        logs.schema.get_field_index("__log_timestamp"), "__log_timestamp", rows["served_at"]
    )
    pq.write_table(logs, tmp_path / "clean.parquet")
    score = np.array(answer["score"].to_pylist())
    score[::5] *= 100
    skewed = logs.set_column(
        logs.schema.get_field_index("user_stats__score"), "user_stats__score", pa.array(score)
    )
    pq.write_table(skewed, tmp_path / "skewed.parquet")
    truth = FeastTruth(
        str(repo["path"]), ("user_stats:amount_7d", "user_stats:score"), ("user_id",)
    )
    spec = SkewSpec(features=("amount_7d", "score"), entity_keys=("user_id",))

    clean = check_skew(logged_features(tmp_path / "clean.parquet"), truth, spec)
    assert [r for r in clean if r.status == "alert"] == []
    assert {(r.column, r.value) for r in clean if r.metric == "mismatch_share"} == {
        ("amount_7d", 0.0),
        ("score", 0.0),
    }
    found = check_skew(logged_features(tmp_path / "skewed.parquet"), truth, spec)
    alerts = [r for r in found if r.status == "alert"]
    assert {r.column for r in alerts} == {"score"}
    assert any(r.details.get("kind") == "unit mismatch" for r in alerts)


def test_a_relative_source_path_is_read_from_the_repository_or_refused(repo, monkeypatch):
    """Feast's DuckDB store reads a relative FileSource path from the working directory:
    from elsewhere keel refuses naming the fix; from the repository it answers."""
    rows = pa.table(
        {"user_id": [1, 2], "event_timestamp": pa.array([BASE + dt.timedelta(days=19)] * 2)}
    )
    with pytest.raises(ConfigError, match=r"relative path.*there from the repository.*absolute"):
        historical_features(repo["path"], ["user_profile_relative:orders"], rows)
    monkeypatch.chdir(repo["path"])
    answer = historical_features(repo["path"], ["user_profile_relative:orders"], rows)
    assert (
        answer["orders"].to_pylist()
        == historical_features(repo["store"], ["user_profile:orders"], rows)["orders"].to_pylist()
    )


def test_a_partitioned_log_folder_is_read_and_a_log_lacking_its_keys_is_refused(tmp_path):
    """Logs partitioned by day (``__log_date=…/``, as ``partition_by`` writes them), with a
    stray file beside them; a log without its request id, time or entity keys is refused
    naming what is missing."""
    folder = tmp_path / "logs"
    for day in (1, 2):
        logged = pa.table(
            {
                "user_id": [day],
                "v__x": [day * 10],
                "v__x__timestamp": pa.array([BASE], pa.timestamp("s", tz="UTC")),
                "v__x__status": pa.array([4], pa.int32()),
                "__log_timestamp": pa.array(
                    [BASE + dt.timedelta(days=day)], pa.timestamp("us", tz="UTC")
                ),
                "__request_id": [f"r{day}"],
            }
        )
        (folder / f"__log_date=2026-11-0{day}").mkdir(parents=True)
        pq.write_table(logged, folder / f"__log_date=2026-11-0{day}" / "part.parquet")
    (folder / "README.txt").write_text("not a log")
    served = logged_features(folder)
    assert served.column_names == [
        "request_id",
        "event_time",
        "user_id",
        "x",
        "x__as_of",
        "x__status",
    ]
    assert served["x"].to_pylist() == [10, 20]
    assert served["x__status"].to_pylist() == ["OUTSIDE_MAX_AGE"] * 2
    assert logged_features(folder, start=BASE + dt.timedelta(days=2))["request_id"].to_pylist() == [
        "r2"
    ]
    bare = logged.drop_columns(["__request_id", "user_id"])
    pq.write_table(bare, tmp_path / "bare.parquet")
    with pytest.raises(SchemaError, match="lacks __request_id"):
        logged_features(tmp_path / "bare.parquet")
    pq.write_table(logged.drop_columns(["user_id"]), tmp_path / "keyless.parquet")
    with pytest.raises(SchemaError, match="no entity key columns"):
        logged_features(tmp_path / "keyless.parquet")
