"""The skew check on a million served rows, against a floor measured in the same run.

Run: python benchmarks/skew_check.py [--rows 1000000] [--entities 100000] [--snapshots 20]

Served rows (request id, an entity, a served time over 20 days, three features: an integer
count, a float sum, a category) and a truth table of daily snapshots per entity (entities ×
snapshots rows). The served values are the latest snapshot's at the served time, so the
twin is correctly built; then 1% of one feature's values are multiplied by 100 (a skew the
check must find and name). Timed, each on the same data:

* floor: a bare DuckDB ASOF join of the served rows to the snapshots (what any as-of
  comparison must at least do), and a bare join by request id of two ready tables;
* the check against a table already joined by request id (comparison only);
* the check against ``TableTruth`` (the as-of join, then the comparison), correct twin
  and with the skew (which adds the clock-tolerance probes on the disagreeing rows), and
  with every row of one feature skewed (the probes then ask again for every row);
* keel.features as the truth: a million events and served rows, two 7-day features;
  the floor is one ``compute_offline`` of the same queries.

Prints seconds and served rows per second for each.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.checks.skew import SkewSpec, TableTruth, check_skew

UTC = pa.timestamp("us", tz="UTC")
DAY = 86_400_000_000
START = 1_772_323_200_000_000  # 2026-03-01


def world(rows: int, entities: int, snapshots: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    days = np.arange(snapshots)
    entity = np.repeat(np.arange(entities), snapshots)
    day = np.tile(days, entities)
    truth = pa.table(
        {
            "user_id": pa.array(entity),
            "event_time": pa.array(START + day * DAY, pa.int64()).cast(UTC),
            "clicks_7d": pa.array(rng.poisson(30, len(entity))),
            "spend_7d": pa.array(np.round(rng.gamma(2.0, 50.0, len(entity)), 2)),
            "segment": pa.array(rng.choice(np.array(["a", "b", "c", "d"]), len(entity))),
        }
    )
    user = rng.integers(0, entities, rows)
    served_at = START + rng.integers(0, snapshots * DAY, rows)
    latest = (served_at - START) // DAY  # the snapshot of the served day
    index = user * snapshots + latest
    served = pa.table(
        {
            "request_id": pa.array(np.arange(rows)),
            "user_id": pa.array(user),
            "event_time": pa.array(served_at, pa.int64()).cast(UTC),
            "clicks_7d": truth.column("clicks_7d").take(pa.array(index)),
            "spend_7d": truth.column("spend_7d").take(pa.array(index)),
            "segment": truth.column("segment").take(pa.array(index)),
        }
    )
    joined = served.select(["request_id", "clicks_7d", "spend_7d", "segment"])
    return served, truth, joined


def timed(what: str, rows: int, call) -> object:
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    print(f"{what:<58} {seconds:7.2f} s  {rows / seconds:>12,.0f} rows/s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=20)
    args = parser.parse_args()
    served, truth, joined = world(args.rows, args.entities, args.snapshots)
    print(
        f"{served.num_rows:,} served rows, {truth.num_rows:,} truth rows "
        f"({args.entities:,} entities × {args.snapshots} daily snapshots), 3 features"
    )
    import duckdb

    def bare_asof():
        connection = duckdb.connect()
        connection.register("s", served)
        connection.register("t", truth)
        found = connection.sql(
            "SELECT s.request_id, t.clicks_7d, t.spend_7d, t.segment FROM s ASOF LEFT JOIN t "
            "ON s.user_id = t.user_id AND s.event_time >= t.event_time"
        ).to_arrow_table()
        connection.close()
        return found

    timed("floor: bare DuckDB ASOF join", served.num_rows, bare_asof)
    timed(
        "floor: bare Arrow join by request id",
        served.num_rows,
        lambda: served.select(["request_id"]).join(joined, "request_id"),
    )
    spec = SkewSpec(("clicks_7d", "spend_7d", "segment"), ("user_id",))
    quiet = timed(
        "skew check, truth joined by request id (comparison)",
        served.num_rows,
        lambda: check_skew(served, joined, spec),
    )
    assert not [r for r in quiet if r.status == "alert"]
    quiet = timed(
        "skew check, TableTruth (as-of join + comparison)",
        served.num_rows,
        lambda: check_skew(served, TableTruth(truth, ("user_id",), "event_time"), spec),
    )
    assert not [r for r in quiet if r.status == "alert"]
    rng = np.random.default_rng(1)
    hit = pa.array(rng.random(served.num_rows) < 0.01)
    spend = served.column("spend_7d")
    skewed = served.set_column(
        served.column_names.index("spend_7d"),
        "spend_7d",
        pc.if_else(hit, pc.multiply(spend, 100.0), spend),
    )
    found = timed(
        "skew check, TableTruth, 1% of spend_7d ×100 (with probes)",
        served.num_rows,
        lambda: check_skew(skewed, TableTruth(truth, ("user_id",), "event_time"), spec),
    )
    alerts = {r.column: r.details.get("kind") for r in found if r.status == "alert"}
    print(f"found: {alerts}")
    everywhere = served.set_column(
        served.column_names.index("spend_7d"), "spend_7d", pc.multiply(spend, 100.0)
    )
    found = timed(
        "skew check, TableTruth, all spend_7d ×100 (probes all rows)",
        served.num_rows,
        lambda: check_skew(everywhere, TableTruth(truth, ("user_id",), "event_time"), spec),
    )
    print(f"found: { ({r.column: r.details.get('kind') for r in found if r.status == 'alert'}) }")
    features_truth(args.rows, args.entities)


def features_truth(rows: int, entities: int) -> None:
    """keel.features as the truth: the served values are compute_offline's own (the twin),
    then the check recomputes them at the served time from the same event log."""
    from keel.checks.skew import FeaturesTruth
    from keel.features import WindowedFeature, compute_offline

    rng = np.random.default_rng(2)
    times = START + np.sort(rng.integers(0, 30 * DAY, rows))
    events = pa.table(
        {
            "user_id": pa.array(rng.integers(0, entities, rows)),
            "amount": pa.array(np.round(rng.gamma(2.0, 20.0, rows), 2)),
            "event_time": pa.array(times, pa.int64()).cast(UTC),
            "available_time": pa.array(times + 1_000_000, pa.int64()).cast(UTC),
        }
    )
    queries = pa.table(
        {
            "request_id": pa.array(np.arange(rows)),
            "user_id": pa.array(rng.integers(0, entities, rows)),
            "event_time": pa.array(
                START + 10 * DAY + rng.integers(0, 20 * DAY, rows), pa.int64()
            ).cast(UTC),
        }
    )
    definitions = [
        WindowedFeature(
            "clicks_7d", entity="user_id", column=None, aggregation="count", window="7D"
        ),
        WindowedFeature(
            "spend_7d", entity="user_id", column="amount", aggregation="sum", window="7D"
        ),
    ]
    print(f"keel.features: {rows:,} events, {rows:,} served rows, 2 windowed features")
    served = timed(
        "floor: compute_offline once (the recomputation alone)",
        rows,
        lambda: compute_offline(definitions, events, queries),
    )
    spec = SkewSpec(("clicks_7d", "spend_7d"), ("user_id",))
    found = timed(
        "skew check, FeaturesTruth (recomputation + comparison)",
        rows,
        lambda: check_skew(served, FeaturesTruth(definitions, events, compute_offline), spec),
    )
    assert not [r for r in found if r.status == "alert"]


if __name__ == "__main__":
    main()
