"""Windowed features for every training row, point-in-time and bitemporal, in DuckDB.

``compute_offline`` joins each query row (entity keys and a time t) with the events of its
entity in its window, in one DuckDB range join per feature::

    event_time ∈ [t − W, t)   (with a hop h: [⌊t/h⌋·h − W, t))   and   available_time < t

so a training row sees only what had arrived by its moment (strictly: an event that
became available at t is not seen at t). DuckDB returns each query's window values; the
reduction is ``keel.features._aggregate.aggregate``, the function the online state
calls too, so both agree bit for bit: integer and decimal sums exact, float sums
exactly rounded by ``math.fsum`` (one call per query row, over that row's values: the
exactly rounded sum has no vectorized form).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import SchemaError
from keel.features._aggregate import aggregate, normalize, value_kind
from keel.features._inputs import (
    as_table,
    availability,
    micros,
    needed_columns,
    require,
    window_starts,
)
from keel.features.definition import AVAILABLE_TIME, WindowedFeature


def compute_offline(
    features: list[WindowedFeature] | WindowedFeature,
    events: Any,
    queries: Any,
    *,
    at: str = "event_time",
    as_of: bool = False,
) -> pa.Table:
    """``queries`` with one column per feature appended: rows in = rows out, same order.

    The value at a query's time t aggregates its entity's events with event_time in
    ``[t − W, t)`` (with a hop h: ``[⌊t/h⌋·h − W, t)``) and available_time ``< t``, strictly:
    what had arrived before that moment, as serving saw it.

    ``events``: a pyarrow Table, a pandas DataFrame or a Parquet path or folder (the event
    log ``keel.features.ingest`` writes); ``queries``: a table with each feature's entity
    column(s) and the time column ``at``. A query whose entity has no events in its
    window gets 0 for count and distinct_count and null for the others; a query with a
    null time gets nulls. ``as_of=True`` also appends ``<name>__as_of``, the moment up to
    which the value is known complete, as ``OnlineFeatures.get`` serves it (there:
    min(the state's watermark, t)): here t itself, since the offline truth at t is
    complete as of t by construction (null where t is).

    >>> import pandas as pd
    >>> events = pd.DataFrame({
    ...     "user": ["a", "a", "a", "b"],
    ...     "amount": [10, 20, 40, 5],
    ...     "event_time": pd.to_datetime(["2026-03-01", "2026-03-05", "2026-03-08",
    ...                                   "2026-03-02"], utc=True),
    ...     "available_time": pd.to_datetime(["2026-03-01", "2026-03-05", "2026-03-09",
    ...                                       "2026-03-02"], utc=True)})
    >>> spend = WindowedFeature("spend_7d", entity="user", column="amount",
    ...                         aggregation="sum", window="7D")
    >>> queries = pd.DataFrame({"user": ["a", "a", "c"],
    ...     "event_time": pd.to_datetime(["2026-03-08", "2026-03-10", "2026-03-08"], utc=True)})
    >>> compute_offline([spend], events, queries)["spend_7d"].to_pylist()
    [30, 60, None]

    At 03-08 the event of 03-08 is not in ``[t − 7D, t)``; at 03-10 it is (it arrived on
    03-09) and the one of 03-01 has left the window.
    """
    import duckdb

    features = [features] if isinstance(features, WindowedFeature) else list(features)
    queries_table = as_table(queries, "queries")
    wanted = [AVAILABLE_TIME, *(c for f in features for c in needed_columns(f))]
    events_table = as_table(events, "events", columns=wanted)
    require(queries_table, [at], "the queries")
    times, timed = micros(queries_table[at], at)
    out = queries_table
    connection = duckdb.connect()
    try:
        for feature in features:
            require(queries_table, list(feature.entities), "the queries")
            require(events_table, needed_columns(feature), f"the events of {feature.name!r}")
            values = _one_feature(connection, feature, events_table, queries_table, times, timed)
            out = _append(out, feature.name, values)
            if as_of:
                stamps = pa.array(times, pa.int64(), mask=~timed)
                out = _append(out, feature.as_of, stamps.cast(pa.timestamp("us", tz="UTC")))
    finally:
        connection.close()
    return out


def _one_feature(
    connection: Any,
    feature: WindowedFeature,
    events: pa.Table,
    queries: pa.Table,
    times: np.ndarray,
    timed: np.ndarray,
) -> pa.Array:
    import duckdb

    keys = [f"k{i}" for i in range(len(feature.entities))]
    query_rows = np.nonzero(timed)[0]
    query_frame = pa.table(
        {
            "qid": pa.array(query_rows, pa.int64()),
            **{k: queries[c].take(query_rows) for k, c in zip(keys, feature.entities, strict=True)},
            "t": pa.array(times[query_rows], pa.int64()),
            "lo": pa.array(window_starts(feature, times[query_rows]), pa.int64()),
        }
    )
    event_times, known = micros(events[feature.event_time], feature.event_time)
    available, has_available = availability(feature, events)
    keep = known & has_available
    kind = None
    columns: dict[str, Any] = {}
    if feature.column is not None:
        kind = value_kind(feature, events.schema.field(feature.column).type)
        values, valid = normalize(events[feature.column], kind)
        keep &= valid
        columns["v"] = (
            pa.array(values[keep])
            if kind.kind != "text"
            else pa.array(values[keep].tolist(), pa.string())
        )
    rows = np.nonzero(keep)[0]
    event_frame = pa.table(
        {
            **{k: events[c].take(rows) for k, c in zip(keys, feature.entities, strict=True)},
            "et": pa.array(event_times[rows], pa.int64()),
            "av": pa.array(available[rows], pa.int64()),
            **columns,
        }
    )
    connection.register("q", query_frame)
    connection.register("e", event_frame)
    on = " AND ".join(f"q.{k} = e.{k}" for k in keys)
    value = ", e.v" if "v" in columns else ""
    sql = (
        f"SELECT q.qid{value} FROM q JOIN e ON {on} "
        "AND e.et >= q.lo AND e.et < q.t AND e.av < q.t ORDER BY q.qid"
    )
    try:
        relation = connection.sql(sql)
        window = (
            relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        )
    except duckdb.Error as error:
        raise SchemaError(
            f"feature {feature.name!r}: cannot match the queries' entity columns "
            f"{list(feature.entities)} with the events' ({error})"
        ) from None
    finally:
        connection.unregister("q")
        connection.unregister("e")
    n = queries.num_rows
    qid = np.asarray(window["qid"].to_numpy(), dtype=np.int64)
    counts = np.bincount(qid, minlength=n).astype(np.int64)
    if "v" in columns:
        assert kind is not None
        raw = window["v"].combine_chunks()
        window_values = (
            np.asarray(raw.to_numpy(zero_copy_only=False), dtype=object)
            if kind.kind == "text"
            else np.asarray(raw.to_numpy(), dtype=kind.dtype)
        )
    else:
        window_values = np.zeros(len(qid), dtype=np.int64)
    from keel.features._aggregate import ValueKind

    result = aggregate(
        feature,
        kind or ValueKind("int"),
        window_values,
        counts,
        describe=lambda i: _entity(queries, feature, i),
    )
    if not timed.all():  # no time, no window: nulls, count included
        mask = pa.array(~timed)
        result = pc.if_else(mask, pa.scalar(None, result.type), result)
    return result


def _entity(queries: pa.Table, feature: WindowedFeature, row: int) -> str:
    values = [queries[c][row].as_py() for c in feature.entities]
    return repr(values[0]) if len(values) == 1 else repr(tuple(values))


def _append(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        raise SchemaError(f"the queries already have a column {name!r} (a feature's name)")
    return table.append_column(name, values)
