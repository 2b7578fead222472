"""The online state of windowed features: each entity's recent events, SQLite or Redis.

``OnlineFeatures`` keeps, per feature and entity, the events of the last window plus an
allowed lateness (event time, available time, value), and answers a query (entity keys,
time t) from them with the convention of ``keel.features.definition`` and the reduction
of ``keel.features._aggregate``, the one the offline engine calls: the two agree bit
for bit. Keeping the window's events, rather than running sums, is what makes a late
event, a duplicate or a hop exact; the state is bounded by the window and the lateness.

Events arrive only through ``ingest``, which stamps each with its ``available_time``
(the ingesting clock, or ``now``). Each feature's **watermark** is the newest stamp its
state has received (an empty batch, a heartbeat, advances it too; it only moves
forward): the state is known complete up to it, and ``get`` serves ``<name>__as_of`` =
min(watermark, t), the moment up to which the served value is known current.
Eviction: when an ingest's clock reaches ``now``, the events older than
``now − lateness − W − h`` go; a later query whose window starts before that horizon is
refused (its answer would no longer be exact) rather than answered short.
``lateness=None`` keeps everything.

Backends: ``sqlite:///path/to/state.db`` (embedded, the default; ``sqlite://`` alone is a
private in-memory one) and ``redis://host:port/db`` (one sorted set per feature and
entity, scored by event time; ``key_prefix`` namespaces the keys). docs/formats.md
describes what each stores.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import ConfigError, DataError, SchemaError
from keel.features._aggregate import ValueKind, aggregate, normalize, raise_over_cap, value_kind
from keel.features._inputs import as_table, micros, moment, require, window_starts
from keel.features.definition import AVAILABLE_TIME, WindowedFeature

_NONE = np.zeros(0, dtype=np.int64)
_TIME = pa.timestamp("us", tz="UTC")


class OnlineFeatures:
    """Incremental per-entity state for ``features``, at ``url`` (SQLite or Redis).

    >>> import pandas as pd
    >>> count = WindowedFeature("logins_1h", entity="user", column=None, aggregation="count",
    ...                         window="1h")
    >>> with OnlineFeatures([count], "sqlite://") as online:
    ...     online.ingest(pd.DataFrame({"user": ["a", "a"],
    ...         "event_time": ["2026-03-01T10:00:00Z", "2026-03-01T10:30:00Z"]}),
    ...         now="2026-03-01T10:31:00Z")
    ...     served = online.get(pd.DataFrame({"user": ["a", "a", "a", "z"],
    ...         "event_time": ["2026-03-01T10:31:00Z", "2026-03-01T10:32:00Z",
    ...                        "2026-03-01T11:10:00Z", "2026-03-01T10:32:00Z"]}))
    2
    >>> served["logins_1h"].to_pylist()
    [0, 2, 1, 0]
    >>> [t.isoformat()[11:16] for t in served["logins_1h__as_of"].to_pylist()]
    ['10:31', '10:31', '10:31', '10:31']

    At 10:31 nothing is seen yet: the events became available at that very instant. Every
    value is current as of 10:31, the state's watermark (its newest ingest), "z"'s 0
    too; a heartbeat (an empty batch) moves it on when there is nothing new:

    >>> with OnlineFeatures([count], "sqlite://") as online:
    ...     online.ingest([], now="2026-03-01T12:00:00Z")
    ...     served = online.get(pd.DataFrame({"user": ["a"],
    ...         "event_time": ["2026-03-01T11:00:00Z"]}))
    0
    >>> served["logins_1h__as_of"].to_pylist()[0].isoformat()[11:16]
    '11:00'
    """

    def __init__(
        self,
        features: list[WindowedFeature] | WindowedFeature,
        url: str | None = None,
        *,
        key_prefix: str = "",
        lateness: str | None = "1D",
    ) -> None:
        features = [features] if isinstance(features, WindowedFeature) else list(features)
        names = [feature.name for feature in features]
        if len(set(names)) != len(names):
            raise ConfigError(f"two features share a name: {names}")
        self.features = features
        self.url = url or default_url()
        if lateness is None:
            self.lateness_us: int | None = None
        else:
            from keel.features.definition import _micros

            self.lateness_us = _micros("online state", "lateness", lateness, zero=True)
        self._backend = _backend(self.url, key_prefix)

    def __enter__(self) -> OnlineFeatures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._backend.close()

    def __repr__(self) -> str:
        return f"OnlineFeatures({[f.name for f in self.features]}, {self.url!r})"

    def ingest(self, events: Any, *, now: Any = None) -> int:
        """Add events to the state, each stamped available at ``now`` (default: the clock).

        Returns the number of events given. Every feature's watermark moves to ``now``
        (never back): an empty batch is a heartbeat, which says the state is complete up
        to ``now`` when a pipeline has nothing new. Events without an event time or an
        entity key are never in a window and are not kept. A distinct count whose state would
        hold more than ``max_distinct`` distinct values for an entity is refused, and
        nothing of the batch is written.
        """
        table = as_table(events, "events")
        stamp = _clock() if now is None else moment(now)
        writes: list[_Write] = []
        for feature in self.features:
            writes.append(self._prepare(feature, table, stamp))
        self._backend.write(writes)
        return table.num_rows

    def _prepare(self, feature: WindowedFeature, table: pa.Table, stamp: int) -> _Write:
        meta = self._backend.meta(feature.name)
        horizon = meta.get("horizon")
        if self.lateness_us is not None:
            reach = feature.window_us + (feature.hop_us or 0) + self.lateness_us
            horizon = max(horizon if horizon is not None else stamp - reach, stamp - reach)
        if table.num_rows == 0 and not _typed(feature, table):
            # a heartbeat without (typed) columns; with them, it tells a state its value kind
            return _Write(feature, None, horizon, [], _NONE, stamp, None)
        require(table, _columns(feature), f"the events of {feature.name!r}")
        times, known = micros(table[feature.event_time], feature.event_time)
        keys = entity_keys(table, feature.entities)
        keep = known & np.asarray(keys.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        kind = None
        values: np.ndarray | None = None
        if feature.column is not None:
            column_type = table.schema.field(feature.column).type
            stored = ValueKind.decode(meta["kind"]) if meta.get("kind") else None
            if pa.types.is_null(column_type) and stored is not None:
                kind = stored  # a batch of nulls only: no type of its own
            else:
                kind = _compatible(feature, stored, value_kind(feature, column_type))
            values, valid = normalize(_as_kind(table[feature.column], kind), kind)
            keep &= valid
        if horizon is not None:
            keep &= times >= horizon
        rows = np.nonzero(keep)[0]
        write = _Write(
            feature=feature,
            kind=kind,
            horizon=horizon,
            keys=keys.take(pa.array(rows, pa.int64())).to_pylist(),
            times=times[rows],
            stamp=stamp,
            values=None if values is None else values[rows],
        )
        if feature.aggregation == "distinct_count":
            self._check_cap(write)
        return write

    def _check_cap(self, write: _Write) -> None:
        feature = write.feature
        assert write.values is not None
        by_key: dict[str, set] = {}
        for key, value in zip(write.keys, write.values.tolist(), strict=True):
            by_key.setdefault(key, set()).add(value)
        for key, new in by_key.items():
            if len(new) <= feature.max_distinct:
                _, _, held = self._backend.fetch(feature.name, key, write.horizon, None, write.kind)
                new = new | set(held.tolist())
            if len(new) > feature.max_distinct:
                raise_over_cap(feature, len(new), key)

    def get(
        self, queries: Any, *, at: str = "event_time", features: list[str] | None = None
    ) -> pa.Table:
        """``queries`` with each feature's value and ``<name>__as_of`` appended.

        The same contract as ``compute_offline``: rows in = rows out, in order; 0 for
        count and distinct_count and null for the others where an entity has no events.
        ``__as_of`` is min(watermark, t): the moment up to which the state is known
        complete for the query at t, so the value is current as of it (the watermark is
        the newest ingest stamp, heartbeats included; an entity never seen is current as
        of it too). Null where the feature never had an ingest or the query has no time.
        The skew check's ``stale_share`` reads it: t − ``__as_of`` is how far the state
        lags. A query whose window starts before the evicted horizon is refused.
        ``features``: only these (by name), in this order.
        """
        table = as_table(queries, "queries")
        require(table, [at], "the queries")
        times, timed = micros(table[at], at)
        out = table
        for feature in self._named(features):
            require(table, list(feature.entities), "the queries")
            values, as_of = self._one(feature, table, times, timed)
            for name, column in ((feature.name, values), (feature.as_of, as_of)):
                if name in out.column_names:
                    raise SchemaError(f"the queries already have a column {name!r}")
                out = out.append_column(name, column)
        return out

    def _named(self, names: list[str] | None) -> list[WindowedFeature]:
        if names is None:
            return self.features
        by_name = {feature.name: feature for feature in self.features}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise ConfigError(f"no feature {unknown[0]!r} here (features: {list(by_name)})")
        return [by_name[name] for name in names]

    def _one(
        self, feature: WindowedFeature, table: pa.Table, times: np.ndarray, timed: np.ndarray
    ) -> tuple[pa.Array, pa.Array]:
        meta = self._backend.meta(feature.name)
        kind = ValueKind.decode(meta["kind"]) if meta.get("kind") else None
        if feature.column is not None and kind is None:
            kind = _kind_before_ingest(feature)
        keys = entity_keys(table, feature.entities).to_pylist()
        starts = window_starts(feature, times)
        horizon = meta.get("horizon")
        late = timed & (starts < horizon) if horizon is not None else np.zeros(len(times), bool)
        if late.any():
            row = int(np.argmax(late))
            raise DataError(
                f"feature {feature.name!r}: the query at row {row} needs events from before "
                "the online state's horizon (evicted past the window and its lateness): "
                "ask compute_offline for times that old"
            )
        rows_of: dict[str, list[int]] = {}
        for row, key in enumerate(keys):
            if key is not None and timed[row]:
                rows_of.setdefault(key, []).append(row)
        parts_values: list[np.ndarray | None] = [None] * len(keys)
        counts = np.zeros(len(keys), dtype=np.int64)
        for key, rows in rows_of.items():
            low = int(starts[rows].min())
            high = int(times[rows].max())
            event_times, available, values = self._backend.fetch(feature.name, key, low, high, kind)
            for row in rows:
                inside = (event_times >= starts[row]) & (event_times < times[row])
                inside &= available < times[row]
                counts[row] = np.count_nonzero(inside)
                parts_values[row] = values[inside]
        dtype = kind.dtype if kind is not None else np.int64
        value_parts = [p for p in parts_values if p is not None and len(p)]
        all_values = (
            np.concatenate(value_parts).astype(dtype, copy=False)
            if value_parts
            else np.zeros(0, dtype=dtype)
        )
        if feature.column is None:
            all_values = np.zeros(int(counts.sum()), dtype=np.int64)
        result = aggregate(
            feature, kind or ValueKind("int"), all_values, counts, describe=lambda i: repr(keys[i])
        )
        if not timed.all():
            result = pc.if_else(pa.array(~timed), pa.scalar(None, result.type), result)
        return result, _as_of(meta.get("watermark"), times, timed)


def _as_of(watermark: int | None, times: np.ndarray, timed: np.ndarray) -> pa.Array:
    """``__as_of`` per query: min(watermark, t), null without a watermark or a time."""
    if watermark is None:
        return pa.nulls(len(times), _TIME)
    return pa.array(np.minimum(times, watermark), pa.int64(), mask=~timed).cast(_TIME)


@dataclass
class _Write:
    """One feature's share of an ingested batch, ready for the backend."""

    feature: WindowedFeature
    kind: ValueKind | None
    horizon: int | None
    keys: list[str]
    times: np.ndarray
    stamp: int
    values: np.ndarray | None


def _typed(feature: WindowedFeature, table: pa.Table) -> bool:
    """Whether ``table`` has the feature's columns, its value column with a type."""
    if not set(_columns(feature)) <= set(table.column_names):
        return False
    return feature.column is None or not pa.types.is_null(table.schema.field(feature.column).type)


def _columns(feature: WindowedFeature) -> list[str]:
    columns = [*feature.entities, feature.event_time]
    return columns + ([feature.column] if feature.column is not None else [])


def _clock() -> int:
    return time.time_ns() // 1000


def default_url(root: str | Path | None = None) -> str:
    """The embedded default: ``sqlite:///ROOT/features/online.db`` (ROOT: the log root).

    >>> default_url("/srv/keel/logs")
    'sqlite:////srv/keel/logs/features/online.db'
    """
    from keel.features._inputs import log_root

    return f"sqlite:///{log_root(root) / 'features' / 'online.db'}"


def entity_keys(table: pa.Table, columns: tuple[str, ...]) -> pa.Array:
    r"""One text key per row for the entity columns (null where any is null), vectorized:
    integers (and floats holding whole numbers) as digits, text prefixed, parts joined.

    >>> table = pa.table({"user": [7, None], "shop": ["x", "y"]})
    >>> entity_keys(table, ("user", "shop")).to_pylist()
    ['i7\x1fsx', None]
    """
    parts = []
    for name in columns:
        column = table[name].combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        kind = column.type
        if pa.types.is_floating(kind):
            whole = pc.and_(pc.is_finite(column), pc.equal(pc.floor(column), column))
            as_int = pc.cast(pc.if_else(whole, column, pa.scalar(None, kind)), pa.int64())
            text = pc.if_else(
                whole,
                pc.binary_join_element_wise("i", pc.cast(as_int, pa.string()), ""),
                pc.binary_join_element_wise("f", pc.cast(column, pa.string()), ""),
            )
        elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            text = pc.binary_join_element_wise(
                "i", pc.cast(pc.cast(column, pa.int64()), pa.string()), ""
            )
        else:
            text = pc.binary_join_element_wise("s", pc.cast(column, pa.string()), "")
        parts.append(text)
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "\x1f")


def _compatible(feature: WindowedFeature, stored: ValueKind | None, new: ValueKind) -> ValueKind:
    """The kind the state holds: the first batch's; integers join a float state as floats."""
    if stored is None or stored == new:
        return new
    if stored.kind == "float" and new.kind == "int":
        return stored
    raise SchemaError(
        f"feature {feature.name!r}: column {feature.column!r} was ingested as "
        f"{stored.kind}, this batch holds {new.kind}: cast it, or use a new feature name"
    )


def _as_kind(column: Any, kind: ValueKind) -> Any:
    if kind.kind == "float" and not pa.types.is_floating(column.type):
        return pc.cast(column, pa.float64())
    return column


def _kind_before_ingest(feature: WindowedFeature) -> ValueKind:
    """Nothing ingested yet: no values, so any kind answers alike (0, or null)."""
    return ValueKind("text") if feature.aggregation == "distinct_count" else ValueKind("float")


def _backend(url: str, key_prefix: str) -> _SQLite | _Redis:
    if url.startswith("sqlite://"):
        return _SQLite(url.removeprefix("sqlite://").removeprefix("/") or ":memory:", key_prefix)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return _Redis(url, key_prefix)
    raise ConfigError(f"online feature store {url!r}: use sqlite:///path or redis://host:port")


def _to_values(raw: list, kind: ValueKind | None) -> np.ndarray:
    if kind is None:
        return np.zeros(len(raw), dtype=np.int64)
    if kind.kind == "text":
        return np.array(raw, dtype=object)
    return np.array(raw, dtype=kind.dtype)


class _SQLite:
    """One table of events, indexed by (feature, entity, event_time), and one of each
    feature's metadata: its value kind, horizon and watermark."""

    def __init__(self, path: str, prefix: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        with self._lock, self._db:
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS feature_events (feature TEXT NOT NULL, entity TEXT "
                "NOT NULL, event_time INTEGER NOT NULL, available_time INTEGER NOT NULL, value)"
            )
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS feature_events_window "
                "ON feature_events (feature, entity, event_time)"
            )
            self._db.execute(  # eviction: every entity's events older than the horizon
                "CREATE INDEX IF NOT EXISTS feature_events_age "
                "ON feature_events (feature, event_time)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS feature_state (feature TEXT PRIMARY KEY, "
                "kind TEXT, horizon INTEGER, watermark INTEGER)"
            )
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(feature_state)")}
            if "watermark" not in columns:  # a state written before the watermark
                self._db.execute("ALTER TABLE feature_state ADD COLUMN watermark INTEGER")

    def meta(self, feature: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute(
                "SELECT kind, horizon, watermark FROM feature_state WHERE feature = ?",
                (self.prefix + feature,),
            ).fetchone()
        return {} if row is None else {"kind": row[0], "horizon": row[1], "watermark": row[2]}

    def fetch(
        self, feature: str, key: str, low: int | None, high: int | None, kind: ValueKind | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sql = (
            "SELECT event_time, available_time, value FROM feature_events "
            "WHERE feature = ? AND entity = ? AND event_time >= ?"
        )
        params: list[Any] = [self.prefix + feature, key, -(2**63) if low is None else low]
        if high is not None:
            sql += " AND event_time < ?"
            params.append(high)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        if not rows:
            return _NONE, _NONE, _to_values([], kind)
        event_times, available, values = zip(*rows, strict=True)
        return (
            np.array(event_times, dtype=np.int64),
            np.array(available, dtype=np.int64),
            _to_values(list(values), kind),
        )

    def write(self, writes: list[_Write]) -> None:
        with self._lock, self._db:  # one transaction: all features of the batch, or none
            for write in writes:
                name = self.prefix + write.feature.name
                values = [None] * len(write.keys) if write.values is None else write.values.tolist()
                self._db.executemany(
                    "INSERT INTO feature_events VALUES (?, ?, ?, ?, ?)",
                    zip(
                        [name] * len(write.keys),
                        write.keys,
                        write.times.tolist(),
                        [write.stamp] * len(write.keys),
                        values,
                        strict=True,
                    ),
                )
                if write.horizon is not None:
                    self._db.execute(
                        "DELETE FROM feature_events WHERE feature = ? AND event_time < ?",
                        (name, write.horizon),
                    )
                self._db.execute(
                    # the first kind stays; the horizon and the watermark only move forward
                    # (two writers with different clocks must not pull them back)
                    "INSERT INTO feature_state (feature, kind, horizon, watermark) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (feature) DO UPDATE "
                    "SET kind = coalesce(feature_state.kind, excluded.kind), horizon = CASE "
                    "WHEN excluded.horizon IS NULL THEN feature_state.horizon "
                    "WHEN feature_state.horizon IS NULL THEN excluded.horizon "
                    "ELSE max(feature_state.horizon, excluded.horizon) END, "
                    "watermark = max(coalesce(feature_state.watermark, excluded.watermark), "
                    "excluded.watermark)",
                    (name, write.kind.encode() if write.kind else None, write.horizon, write.stamp),
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Redis:
    """A sorted set per feature and entity (score: event time; member: the event as JSON,
    with a unique tail so that duplicates stay two); a hash of each feature's value kind,
    and sorted sets of each feature's horizon and watermark (ZADD GT: only forward)."""

    def __init__(self, url: str, prefix: str) -> None:
        try:
            import redis
        except ImportError as error:
            raise ConfigError(
                "a Redis feature store needs keel[redis] (pip install redis)"
            ) from error
        self.prefix = prefix + "keel:features:"
        self._client = redis.Redis.from_url(url)

    def _key(self, feature: str, key: str) -> str:
        return f"{self.prefix}{feature}:{key}"

    def meta(self, feature: str) -> dict[str, Any]:
        pipe = self._client.pipeline(transaction=False)
        pipe.hget(self.prefix + "kinds", feature)
        pipe.zscore(self.prefix + "horizons", feature)
        pipe.zscore(self.prefix + "watermarks", feature)
        kind, horizon, watermark = pipe.execute()
        return {
            "kind": None if kind is None else kind.decode(),
            "horizon": None if horizon is None else int(horizon),
            "watermark": None if watermark is None else int(watermark),
        }

    def fetch(
        self, feature: str, key: str, low: int | None, high: int | None, kind: ValueKind | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        members = self._client.zrangebyscore(
            self._key(feature, key),
            "-inf" if low is None else low,
            "+inf" if high is None else f"({high}",
        )
        if not members:
            return _NONE, _NONE, _to_values([], kind)
        events = [json.loads(member) for member in members]
        return (
            np.array([e[0] for e in events], dtype=np.int64),
            np.array([e[1] for e in events], dtype=np.int64),
            _to_values([e[2] for e in events], kind),
        )

    def write(self, writes: list[_Write]) -> None:
        batch = f"{os.getpid():x}.{time.time_ns():x}"
        pipe = self._client.pipeline(transaction=True)
        for write in writes:
            name = write.feature.name
            values = [None] * len(write.keys) if write.values is None else write.values.tolist()
            grouped: dict[str, dict[str, int]] = {}
            for index, (key, when, value) in enumerate(
                zip(write.keys, write.times.tolist(), values, strict=True)
            ):
                member = json.dumps([when, write.stamp, value, f"{batch}.{index}"])
                grouped.setdefault(key, {})[member] = when
            for key, members in grouped.items():
                pipe.zadd(self._key(name, key), members)
                if write.horizon is not None:
                    pipe.zremrangebyscore(self._key(name, key), "-inf", f"({write.horizon}")
            if write.kind is not None:  # the first kind stays
                pipe.hsetnx(self.prefix + "kinds", name, write.kind.encode())
            if write.horizon is not None:  # only forward: ZADD GT
                pipe.zadd(self.prefix + "horizons", {name: write.horizon}, gt=True)
            pipe.zadd(self.prefix + "watermarks", {name: write.stamp}, gt=True)
        pipe.execute()

    def close(self) -> None:
        self._client.close()


__all__ = ["AVAILABLE_TIME", "OnlineFeatures", "default_url", "entity_keys"]
