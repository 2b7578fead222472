"""The skew check: served features against the offline truth, each skew kind found and named.

Known answers on one generated event log: a correctly built twin (the served values are
the offline engine's own at the served time) gives no finding; a truncated online window,
a stale value, a unit mismatch (cents against dollars), default-filled nulls (both ways)
and a timezone shift (both ways) are each found and named.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from keel.checks.skew import (
    FeaturesTruth,
    SkewSpec,
    TableTruth,
    check_skew,
    values_equal,
    wilson_lower,
)
from keel.errors import SchemaError
from keel.features import WindowedFeature, compute_offline

UTC = pa.timestamp("us", tz="UTC")
DAY = 86_400_000_000
HOUR = 3_600_000_000
START = 1_772_323_200_000_000  # 2026-03-01T00:00:00Z in µs

CLICKS = WindowedFeature(
    "clicks_7d", entity="user_id", column=None, aggregation="count", window="7D"
)
SPEND = WindowedFeature(
    "spend_7d", entity="user_id", column="amount", aggregation="sum", window="7D"
)
AVG = WindowedFeature(
    "avg_spend_1h", entity="user_id", column="amount", aggregation="mean", window="1h"
)
FEATURES = (CLICKS, SPEND, AVG)
NAMES = tuple(f.name for f in FEATURES)


@pytest.fixture(scope="module")
def world():
    """30 days of events for 100 users (about 5 a day each, available within a minute),
    and 2,000 requests in days 10–30, served the offline engine's own values."""
    rng = np.random.default_rng(21)
    n = 15_000
    times = START + np.sort(rng.integers(0, 30 * DAY, n))
    events = pa.table(
        {
            "user_id": pa.array(rng.integers(0, 100, n)),
            "amount": pa.array(np.round(rng.gamma(2.0, 20.0, n), 2)),
            "event_time": pa.array(times, pa.int64()).cast(UTC),
            "available_time": pa.array(times + rng.integers(0, 60_000_000, n), pa.int64()).cast(
                UTC
            ),
        }
    )
    served_at = START + 10 * DAY + rng.integers(0, 20 * DAY, 2_000)
    requests = pa.table(
        {
            "request_id": pa.array([f"r{i}" for i in range(2_000)]),
            "user_id": pa.array(rng.integers(0, 100, 2_000)),
            "event_time": pa.array(served_at, pa.int64()).cast(UTC),
            "country": pa.array(np.where(rng.random(2_000) < 0.5, "DE", "FR")),
        }
    )
    return events, requests


def _serve(events, requests, features=FEATURES, at=None):
    """The requests with the values ``features`` give at ``at`` (µs; default: served time)."""
    queries = requests
    if at is not None:
        queries = requests.set_column(2, "event_time", pa.array(at, pa.int64()).cast(UTC))
    computed = compute_offline(list(features), events, queries)
    served = requests
    for feature in features:
        served = served.append_column(feature.name, computed.column(feature.name))
    return served


def _times(table):
    return pc.cast(table.column("event_time"), pa.int64()).to_numpy()


def _spec(**options):
    return SkewSpec(features=NAMES, entity_keys=("user_id",), **options)


def _alerts(results):
    return {
        r.column: r.details["kind"] for r in results if r.status == "alert" and r.segment is None
    }


def _check(world, served, **options):
    events, _ = world
    return check_skew(served, FeaturesTruth(FEATURES, events, compute_offline), _spec(**options))


def test_a_correctly_built_twin_has_no_finding(world):
    events, requests = world
    served = _serve(events, requests)
    results = _check(world, served, ttl=3600.0)
    assert not [r for r in results if r.status == "alert"]
    shares = {(r.column, r.metric): r.value for r in results}
    assert shares[("clicks_7d", "mismatch_share")] == 0.0
    assert shares[("avg_spend_1h", "extra_share")] == 0.0
    assert all(r.details["truth"].startswith("keel.features") for r in results)


def test_a_truncated_online_window_is_found_and_named(world):
    events, requests = world
    short = WindowedFeature(
        "clicks_7d", entity="user_id", column=None, aggregation="count", window="3D"
    )
    served = _serve(events, requests, (short, SPEND, AVG))
    results = _check(world, served)
    assert _alerts(results) == {"clicks_7d": "truncated window"}
    finding = next(r for r in results if r.status == "alert").details["finding"]
    assert finding.startswith("truncated window: served below the offline value in 100%")


def test_a_stale_value_past_its_ttl_is_found_and_named(world):
    events, requests = world
    computed = _times(requests) - 2 * HOUR  # served from a cache refreshed two hours before
    served = _serve(events, requests, at=computed)
    served = served.append_column("clicks_7d__as_of", pa.array(computed, pa.int64()).cast(UTC))
    results = _check(world, served, ttl={"clicks_7d": 3600.0})
    alerts = _alerts(results)
    assert alerts["clicks_7d"] == "stale value"
    stale = next(r for r in results if r.column == "clicks_7d" and r.metric == "stale_share")
    assert stale.value == 1.0 and stale.status == "alert"
    assert "older than the ttl of 1 h (median age 2 h)" in stale.details["finding"]


def test_a_unit_mismatch_cents_against_dollars_is_found_and_named(world):
    events, requests = world
    served = _serve(events, requests)
    cents = pc.multiply(served.column("spend_7d"), 100)
    served = served.set_column(served.column_names.index("spend_7d"), "spend_7d", cents)
    results = _check(world, served)
    assert _alerts(results) == {"spend_7d": "unit mismatch"}
    finding = next(r for r in results if r.status == "alert").details["finding"]
    assert "served ≈ 100× the offline value" in finding


def test_default_filled_nulls_are_found_and_named_both_ways(world):
    events, requests = world
    served = _serve(events, requests)
    index = served.column_names.index("avg_spend_1h")
    zeros = served.set_column(index, "avg_spend_1h", pc.fill_null(served.column(index), 0.0))
    results = _check(world, zeros)
    assert _alerts(results) == {"avg_spend_1h": "default-filled nulls"}
    extra = next(r for r in results if r.column == "avg_spend_1h" and r.metric == "extra_share")
    assert extra.status == "alert" and extra.value > 0.5
    assert extra.details["finding"].startswith("default-filled nulls: 0.0 served where")

    rng = np.random.default_rng(1)
    lost = pa.array(rng.random(served.num_rows) < 0.3)
    nulls = pc.if_else(lost, pa.scalar(None, pa.float64()), served.column(index))
    results = _check(world, served.set_column(index, "avg_spend_1h", nulls))
    assert _alerts(results) == {"avg_spend_1h": "default-filled nulls"}
    missing = next(r for r in results if r.column == "avg_spend_1h" and r.metric == "missing_share")
    assert missing.status == "alert"
    assert "null served where the offline value exists" in missing.details["finding"]


def test_a_timezone_shift_in_the_served_time_is_found_and_named(world):
    events, requests = world
    served = _serve(events, requests)  # computed at the true time, logged an hour later
    logged = pa.array(_times(requests) + HOUR, pa.int64()).cast(UTC)
    shifted = served.set_column(2, "event_time", logged)
    results = _check(world, shifted)
    alerts = _alerts(results)
    assert alerts["clicks_7d"] == "timezone shift" and set(alerts) <= set(NAMES)
    assert set(alerts.values()) == {"timezone shift"}
    finding = next(r for r in results if r.column == "clicks_7d" and r.status == "alert")
    assert "1 h ahead of the time the value was computed" in finding.details["finding"]


def test_a_value_stamped_hours_after_it_was_served_is_a_timezone_shift(world):
    events, requests = world
    true_times = _times(requests)
    served = _serve(events, requests)
    served = served.append_column("clicks_7d__as_of", pa.array(true_times, pa.int64()).cast(UTC))
    logged = pa.array(true_times - HOUR, pa.int64()).cast(UTC)  # the served time an hour behind
    results = _check(world, served.set_column(2, "event_time", logged))
    future = next(r for r in results if r.column == "clicks_7d" and r.metric == "future_share")
    assert future.status == "alert" and future.value == 1.0
    assert future.details["kind"] == "timezone shift"
    assert "stamped 1 h after the time they were served" in future.details["finding"]


def test_a_disagreement_within_the_clock_tolerance_is_not_skew(world):
    events, requests = world
    served = _serve(events, requests, at=_times(requests) - 500_000)  # clocks 0.5 s apart
    assert not _alerts(_check(world, served, clock_tolerance=1.0))


def test_rows_the_truth_cannot_answer_are_counted_never_dropped(world):
    events, requests = world
    served = _serve(events, requests)
    inner = FeaturesTruth(FEATURES, events, compute_offline)

    class Dropping:  # answers only 80% of the rows (Feast's Dask store, say)
        name = "a truth that drops rows"

        def __call__(self, rows, at):
            answer = inner(rows, at)
            return answer.filter(pa.array(np.arange(answer.num_rows) % 5 != 0))

    results = check_skew(served, Dropping(), _spec())
    unanswered = [r for r in results if r.metric == "unanswered_share" and r.segment is None]
    assert {r.details["rows"] for r in unanswered} == {served.num_rows}  # rows in = rows out
    assert {r.value for r in unanswered} == {0.2}
    assert {r.details["kind"] for r in unanswered} == {"truth unavailable"}


def test_a_segment_holds_its_own_skew(world):
    events, requests = world
    served = _serve(events, requests)
    german = pc.equal(served.column("country"), "DE")
    spend = pc.if_else(
        german, pc.multiply(served.column("spend_7d"), 100), served.column("spend_7d")
    )
    served = served.set_column(served.column_names.index("spend_7d"), "spend_7d", spend)
    events_, _ = world
    results = check_skew(
        served, FeaturesTruth(FEATURES, events_, compute_offline), _spec(), segment_by="country"
    )
    by_segment = {
        r.segment: r.status
        for r in results
        if r.column == "spend_7d" and r.metric == "mismatch_share"
    }
    assert by_segment == {None: "alert", "country=DE": "alert", "country=FR": "ok"}


def test_descriptions_never_alert_and_say_why(world):
    events, requests = world
    served = _serve(events, requests)
    cents = pc.multiply(served.column("spend_7d"), 100)
    served = served.set_column(served.column_names.index("spend_7d"), "spend_7d", cents)
    results = _check(world, served)
    described = [r for r in results if r.column == "spend_7d" and not r.metric.endswith("_share")]
    assert {r.metric for r in described} == {"smape", "wasserstein", "psi", "jensenshannon"}
    assert all(r.status == "ok" for r in described)
    assert "p-values" in next(r for r in described if r.metric == "psi").details["reason"]
    smape = next(r for r in described if r.metric == "smape")
    assert smape.value == pytest.approx(2 * 99 / 101, rel=1e-6)  # |100x − x| / (101x / 2)
    assert smape.details["delta_quantiles"]["p50"] > 0


def test_the_wilson_bound_is_scipys_lower_end_of_the_two_sided_98_percent_interval():
    from scipy.stats import binomtest

    for count, rows in [(0, 10), (1, 10), (5, 1000), (3, 2000), (500, 1000), (1000, 1000), (7, 7)]:
        reference = binomtest(count, rows).proportion_ci(confidence_level=0.98, method="wilson")
        assert float(wilson_lower(count, rows)) == pytest.approx(reference.low, abs=1e-12)
    counts, rows = np.array([0, 5, 50]), np.array([100, 100, 100])
    assert wilson_lower(counts, rows).shape == (3,)
    assert np.isnan(wilson_lower(0, 0))


def test_equality_normalizes_ints_and_floats_within_1e_9_relative():
    served = pa.array([3, 3, 10**12, 1.0, None, float("nan"), 7])
    offline = pa.array([3.0, 3.0000001, 10**12 + 1e-4, 1 + 2e-9, 1.0, float("nan"), None])
    assert values_equal(served, offline).tolist() == [True, False, True, False, False, True, False]
    assert values_equal(pa.array([2**62 + 1]), pa.array([2**62])).tolist() == [False]  # exact ints
    assert values_equal(pa.array(["a", "b"]), pa.array(["a", "c"])).tolist() == [True, False]


def test_a_table_truth_is_an_as_of_join_that_waits_for_availability():
    table = pa.table(
        {
            "item": [1, 1, 1, 2],
            "ts": pa.array([0, 2 * HOUR, 3 * HOUR, 0], pa.int64()).cast(UTC),
            "known": pa.array([0, 10 * HOUR, 3 * HOUR, 0], pa.int64()).cast(UTC),
            "price": [10.0, 20.0, 30.0, 40.0],
        }
    )
    rows = pa.table(
        {
            "request_id": ["a", "b", "c", "d", "e"],
            "item": [1, 1, 1, 2, 3],
            "at": pa.array([2 * HOUR, 5 * HOUR, 11 * HOUR, 1, 5 * HOUR], pa.int64()).cast(UTC),
        }
    )
    answer = TableTruth(table, ("item",), "ts", "known")(rows, "at").sort_by("request_id")
    # at 2h the 2h row is not yet known; at 5h the 3h row is the latest known; item 3 has none
    assert answer.column("price").to_pylist() == [10.0, 30.0, 30.0, 40.0, None]
    assert answer.column("_answered").to_pylist() == [True, True, True, True, False]
    without = TableTruth(table, ("item",), "ts")(rows, "at").sort_by("request_id")
    assert without.column("price").to_pylist() == [20.0, 30.0, 30.0, 40.0, None]
    assert without.column("_answered").to_pylist() == [True, True, True, True, False]
    # two rows of one entity at one time: the later in the table wins (a correction)
    tied = pa.concat_tables([table, table.slice(2, 1).set_column(3, "price", pa.array([31.0]))])
    again = TableTruth(tied, ("item",), "ts")(rows, "at").sort_by("request_id")
    assert again.column("price").to_pylist() == [20.0, 31.0, 31.0, 40.0, None]


def test_a_table_truth_checks_served_rows_and_counts_the_unanswerable(tmp_path):
    import pyarrow.parquet as pq

    snapshots = pa.table(
        {
            "user_id": [1, 2],
            "event_time": pa.array([0, 0], pa.int64()).cast(UTC),
            "score_7d": [0.5, 0.25],
        }
    )
    pq.write_table(snapshots, tmp_path / "truth.parquet")
    served = pa.table(
        {
            "request_id": ["a", "b", "c"],
            "user_id": [1, 2, 9],
            "event_time": pa.array([HOUR] * 3, pa.int64()).cast(UTC),
            "score_7d": [0.5, 0.25, 0.1],
        }
    )
    truth = TableTruth(str(tmp_path / "truth.parquet"), ("user_id",), "event_time")
    results = check_skew(served, truth, SkewSpec(("score_7d",), ("user_id",)))
    shares = {r.metric: r.value for r in results if r.metric.endswith("_share")}
    assert shares["mismatch_share"] == 0.0 and shares["unanswered_share"] == pytest.approx(1 / 3)
    assert (
        results[0].details["truth"].startswith("table ")
        and "truth.parquet" in results[0].details["truth"]
    )


def test_a_served_log_without_keys_or_times_is_refused_naming_what_is_missing(world):
    events, requests = world
    served = _serve(events, requests)
    truth = FeaturesTruth(FEATURES, events, compute_offline)
    with pytest.raises(SchemaError, match=r"no 'user_id' \(entity key\) column"):
        check_skew(served.drop_columns(["user_id"]), truth, _spec())
    with pytest.raises(SchemaError, match=r"no 'event_time' \(served time\) column"):
        check_skew(served.drop_columns(["event_time"]), truth, _spec())
    with pytest.raises(SchemaError, match=r"'request_id' \(request id\)"):
        check_skew(served.drop_columns(["request_id"]), truth, _spec())
    with pytest.raises(SchemaError, match="feature.*'spend_7d'"):
        check_skew(served.drop_columns(["spend_7d"]), truth, _spec())


def test_a_feast_truth_counts_a_view_with_every_feature_null_as_unanswered(monkeypatch):
    import keel.data.feast as feast
    from keel.checks.skew import FeastTruth

    asked = {}

    def historical_features(repo, refs, entity_rows, *, timestamp="event_timestamp"):
        asked.update(repo=repo, refs=refs, columns=entity_rows.column_names)
        # Feast answers in its own way: rows in = rows out, nulls where it had nothing
        return entity_rows.append_column("clicks", pa.array([3, None, 5])).append_column(
            "spend", pa.array([1.5, None, None])
        )

    monkeypatch.setattr(feast, "historical_features", historical_features)
    served = pa.table(
        {
            "request_id": ["a", "b", "c"],
            "user_id": [1, 2, 3],
            "event_time": pa.array([HOUR] * 3, pa.int64()).cast(UTC),
            "clicks": [3, 4, 5],
            "spend": [1.5, 2.0, None],
        }
    )
    truth = FeastTruth("repo/", ("stats:clicks", "stats:spend"), ("user_id",))
    results = check_skew(served, truth, SkewSpec(("clicks", "spend"), ("user_id",)))
    assert asked == {
        "repo": "repo/",
        "refs": ["stats:clicks", "stats:spend"],
        "columns": ["request_id", "user_id", "event_timestamp"],
    }
    shares = {
        (r.column, r.metric): r.details["count"] for r in results if r.metric.endswith("_share")
    }
    # row b: the whole view null, unanswered; row c: spend alone null, both sides: equal
    assert (
        shares[("clicks", "unanswered_share")] == 1 and shares[("spend", "unanswered_share")] == 1
    )
    assert shares[("clicks", "mismatch_share")] == 0 and shares[("spend", "extra_share")] == 0
    assert results[0].details["truth"] == "feast repo/ (stats:clicks, stats:spend)"
