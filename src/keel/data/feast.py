"""Feast as a source (``keel[feast]``): offline features by point-in-time join, and the
features a Feast feature service logged as it served them.

Two functions, both returning Arrow tables:

- ``historical_features(repo, feature_refs, entity_rows)``: Feast's
  ``get_historical_features`` on the **DuckDB** offline store, with created-timestamp
  filtering ("only what had been written by then"), **one row out per row in, in the input
  order**. Rows Feast cannot answer come back with nulls and are counted in the table's
  schema metadata (``retrieval_info(table)``). Integer features stay integers.
- ``logged_features(logs_or_store, feature_service)``: Feast's logged-features Parquet
  (``<view>__<feature>``, ``…__timestamp``, ``…__status``, ``__log_timestamp``,
  ``__request_id`` and the entity keys) in keel's served-log shape: ``request_id``,
  ``event_time``, the entity keys, one column per feature, its ``<feature>__as_of`` and
  ``<feature>__status``.

Feast is imported only inside the functions that need a ``FeatureStore`` (``import feast``
takes seconds, and Feast pins pandas < 3, so it lives in its own environment; see
``docs/feast.md``). Reading a log folder needs only pyarrow:

>>> import datetime as dt, pyarrow as pa
>>> utc = dt.UTC
>>> logs = pa.table({
...     "user_id": [7],
...     "user_stats__amount_7d": [1200],
...     "user_stats__amount_7d__timestamp": pa.array(
...         [dt.datetime(2026, 11, 3, tzinfo=utc)], pa.timestamp("s", tz="UTC")),
...     "user_stats__amount_7d__status": pa.array([1], pa.int32()),
...     "__log_timestamp": pa.array(
...         [dt.datetime(2026, 11, 4, 12, tzinfo=utc)], pa.timestamp("us", tz="UTC")),
...     "__log_date": pa.array([dt.date(2026, 11, 4)]),
...     "__request_id": ["r1"],
... })
>>> served = served_log_from_feast_logs(logs)
>>> served.column_names
['request_id', 'event_time', 'user_id', 'amount_7d', 'amount_7d__as_of', 'amount_7d__status']
>>> served.to_pylist()[0]["amount_7d"], served.to_pylist()[0]["amount_7d__status"]
(1200, 'PRESENT')
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import ConfigError, DataError, KeelError, SchemaError

#: What ``pip install "keel[feast]"`` brings (pyproject.toml's ``feast`` extra).
FEAST_REQUIREMENT = "feast[duckdb]>=0.66"
_INSTALL = 'pip install "keel[feast]" (in its own environment: Feast pins pandas < 3)'
#: The schema-metadata key under which ``historical_features`` records what it answered.
INFO_KEY = b"keel.feast"
#: Offline stores that keel refuses: Feast's default ``file`` store runs on Dask, whose
#: point-in-time join drops entity rows that have no feature row inside the TTL.
_REFUSED_OFFLINE_STORES = ("file", "dask")
_ROW = "__keel_row"
_FEAST_TIMESTAMP = "event_timestamp"
#: Feast's ``FieldStatus`` (``feast/protos/feast/serving/ServingService.proto``).
FIELD_STATUS = {0: "INVALID", 1: "PRESENT", 2: "NULL_VALUE", 3: "NOT_FOUND", 4: "OUTSIDE_MAX_AGE"}
_LOG_TIMESTAMP = "__log_timestamp"
_LOG_DATE = "__log_date"
_REQUEST_ID = "__request_id"
_UTC = pa.timestamp("us", tz="UTC")


def missing_requirement() -> str | None:
    """What reading from a Feast repository lacks here, or None when Feast is installed
    with its DuckDB offline store. Looks for the packages without importing them.

    >>> missing_requirement() is None or "keel[feast]" in missing_requirement()
    True
    """
    if importlib.util.find_spec("feast") is None:
        return f"feast is not installed: {_INSTALL}"
    if importlib.util.find_spec("ibis") is None:
        return f"feast's DuckDB offline store (ibis-framework) is not installed: {_INSTALL}"
    return None


# --- offline features -----------------------------------------------------------------


def historical_features(
    repo: Any,
    feature_refs: Sequence[str],
    entity_rows: Any,
    *,
    timestamp: str = _FEAST_TIMESTAMP,
    filter_by_created_timestamp: bool = True,
    full_feature_names: bool = False,
) -> pa.Table:
    """The features ``feature_refs`` (``"view:feature"``) of each entity row as of its
    ``timestamp``, from the Feast repository ``repo`` (a path, or a ``FeatureStore``).

    ``entity_rows`` (a pyarrow Table, a pandas DataFrame, or any input ``open_source``
    reads) holds every join key of the views asked for and the ``timestamp`` column (a
    timestamp; naive values are read as UTC); its other columns pass through. The answer
    is Feast's point-in-time join: per row and view, the latest feature row with
    ``row_ts <= t`` and ``t - ttl <= row_ts`` (both ends inclusive) and, with
    ``filter_by_created_timestamp`` (the default, where the view's source declares a
    ``created_timestamp_column``), ``created <= t``: only what had been written by then.

    Returned: ``entity_rows``' columns, unchanged and in their order, then one column per
    feature (``feature`` or, with ``full_feature_names``, ``view__feature``), with the
    feature's declared type (Feast's int→float turned back). One row per input row, in the
    input order: a row Feast cannot answer for a view (no feature row within the TTL, an
    unknown key, a null key or timestamp) has nulls there, and is counted in the table's
    schema metadata (``retrieval_info(table)``: ``rows``, ``unanswered_rows``,
    ``unanswered_by_view``, ``null_counts``, ...). Through Feast's API a feature row whose
    every requested value is null reads the same as no feature row: both count as
    unanswered.

    Refused: a repository whose offline store is Feast's ``file`` (Dask) default, which
    silently drops rows (``ConfigError`` naming the fix).
    """
    store = open_feature_store(repo)
    offline = _offline_store_type(store)
    views = _resolve(store, feature_refs)
    rows = _entity_table(entity_rows)
    join_keys = list(dict.fromkeys(key for view in views.values() for key in view["join_keys"]))
    missing = [name for name in [*join_keys, timestamp] if name not in rows.column_names]
    if missing:
        raise SchemaError(
            f"the entity rows lack {', '.join(missing)} (the Feast views "
            f"{', '.join(views)} join on {', '.join(join_keys)}, at the time in {timestamp!r}); "
            f"they have {', '.join(rows.column_names) or 'no columns'}"
        )
    times = _as_utc(rows[timestamp], f"the entity rows' {timestamp!r}")
    outputs = [
        (ref, view_name, feature, f"{view_name}__{feature}" if full_feature_names else feature)
        for view_name, view in views.items()
        for ref, feature in view["features"]
    ]
    names = [name for *_, name in outputs]
    clashing = sorted(
        {n for n in names if names.count(n) > 1} | (set(names) & set(rows.column_names))
    )
    if clashing:
        raise SchemaError(
            f"feature column names clash: {', '.join(clashing)} (with each other or with a "
            "column of the entity rows); pass full_feature_names=True for view__feature names"
        )

    # Rows with a null key or time cannot be asked; the others go to Feast with their row
    # number, the only way back to the input order (Feast's join reorders rows).
    n = rows.num_rows
    askable = pc.invert(pc.is_null(times))
    for key in join_keys:
        askable = pc.and_(askable, pc.is_valid(rows[key]))
    askable = askable.to_numpy(zero_copy_only=False)
    positions = np.flatnonzero(askable)
    query = pa.table(
        {
            **{key: rows[key].take(positions) for key in join_keys},
            _FEAST_TIMESTAMP: times.take(positions),
            _ROW: pa.array(positions, pa.int64()),
        }
    )
    answer = _ask_feast(
        store, query, [ref for ref, *_ in outputs], filter_by_created_timestamp, full_feature_names
    )
    where = np.full(n, -1, dtype=np.int64)
    dropped = 0
    if answer is not None:
        returned = answer[_ROW].to_numpy(zero_copy_only=False)
        if len(np.unique(returned)) != len(returned):
            raise DataError(
                f"Feast returned {answer.num_rows} rows for {len(positions)} entity rows, some "
                "more than once; keel cannot tell which answer is the point-in-time one"
            )
        where[returned] = np.arange(len(returned))
        dropped = len(positions) - len(returned)
    take = pa.array(where, mask=where < 0)

    columns: dict[str, pa.ChunkedArray | pa.Array] = {
        name: rows[name] for name in rows.column_names
    }
    nulls: dict[str, int] = {}
    for _ref, view_name, feature, name in outputs:
        declared = views[view_name]["types"].get(feature)
        feast_name = f"{view_name}__{feature}" if full_feature_names else feature
        if answer is None:
            values = pa.nulls(n, declared or pa.null())
        else:
            values = answer[feast_name].take(take)
            values = _declared(values, declared, f"{view_name}:{feature}")
        columns[name] = values
        nulls[name] = values.null_count
    unanswered_rows = np.zeros(n, dtype=bool)
    unanswered_by_view = {}
    for view_name in views:
        feature_names = [name for _r, v, _f, name in outputs if v == view_name]
        none = np.ones(n, dtype=bool)
        for name in feature_names:
            none &= pc.is_null(columns[name]).to_numpy(zero_copy_only=False)
        unanswered_by_view[view_name] = int(none.sum())
        unanswered_rows |= none
    info = {
        "rows": n,
        "unanswered_rows": int(unanswered_rows.sum()),
        "unanswered_by_view": unanswered_by_view,
        "null_counts": nulls,
        "not_asked_rows": int(n - len(positions)),
        "dropped_by_feast": int(dropped),
        "offline_store": offline,
        "filter_by_created_timestamp": bool(filter_by_created_timestamp),
        "feature_refs": [ref for ref, *_ in outputs],
    }
    table = pa.table(columns)
    metadata = dict(rows.schema.metadata or {})
    metadata.pop(b"pandas", None)
    metadata[INFO_KEY] = json.dumps(info).encode()
    return table.replace_schema_metadata(metadata)


def retrieval_info(table: pa.Table) -> dict[str, Any]:
    """What ``historical_features`` recorded in ``table``'s schema metadata: ``rows``,
    ``unanswered_rows`` (rows with nulls for every feature of at least one view),
    ``unanswered_by_view``, ``null_counts`` per feature column, ``not_asked_rows`` (a null
    key or time), ``dropped_by_feast`` (rows Feast's answer left out, put back as nulls),
    ``offline_store``, ``filter_by_created_timestamp`` and ``feature_refs``.

    >>> import pyarrow as pa
    >>> retrieval_info(pa.table({"x": [1]}))
    Traceback (most recent call last):
    ...
    keel.errors.DataError: this table was not made by keel.data.feast.historical_features \
(no keel.feast schema metadata; metadata does not survive most table operations)
    """
    raw = (table.schema.metadata or {}).get(INFO_KEY)
    if raw is None:
        raise DataError(
            "this table was not made by keel.data.feast.historical_features (no keel.feast "
            "schema metadata; metadata does not survive most table operations)"
        )
    return json.loads(raw)


class FeastSource:
    """A ``keel.data.Source`` over the offline features of ``entity_rows``: the table
    ``historical_features`` returns, asked of Feast once, on first read."""

    def __init__(
        self,
        repo: Any,
        feature_refs: Sequence[str],
        entity_rows: Any,
        *,
        timestamp: str = _FEAST_TIMESTAMP,
        filter_by_created_timestamp: bool = True,
        full_feature_names: bool = False,
    ) -> None:
        self.name = f"Feast {repo if isinstance(repo, str | Path) else 'feature store'}"
        self._ask = dict(
            repo=repo,
            feature_refs=list(feature_refs),
            entity_rows=entity_rows,
            timestamp=timestamp,
            filter_by_created_timestamp=filter_by_created_timestamp,
            full_feature_names=full_feature_names,
        )
        self._table: pa.Table | None = None

    def _answer(self) -> pa.Table:
        if self._table is None:
            ask = dict(self._ask)
            self._table = historical_features(
                ask.pop("repo"), ask.pop("feature_refs"), ask.pop("entity_rows"), **ask
            )
        return self._table

    @property
    def schema(self) -> pa.Schema:
        return self._answer().schema

    @property
    def num_rows(self) -> int:
        return self._answer().num_rows

    @property
    def info(self) -> dict[str, Any]:
        """``retrieval_info`` of the answer: rows, unanswered rows, nulls per feature."""
        return retrieval_info(self._answer())

    def batches(
        self, columns: list[str] | None = None, batch_rows: int = 262_144
    ) -> Iterator[pa.RecordBatch]:
        table = self.read_all(columns)
        yield from table.to_batches(max_chunksize=batch_rows)

    def read_all(self, columns: list[str] | None = None) -> pa.Table:
        table = self._answer()
        if columns is not None:
            unknown = [c for c in columns if c not in table.column_names]
            if unknown:
                raise SchemaError(
                    f"{self.name} has no column {', '.join(unknown)}; "
                    f"it has {', '.join(table.column_names)}"
                )
            table = table.select(columns)
        return table


def open_feature_store(repo: Any) -> Any:
    """A ``feast.FeatureStore`` for ``repo``: one already open, or the path of a repository
    (the folder holding ``feature_store.yaml``)."""
    if hasattr(repo, "get_historical_features") and hasattr(repo, "config"):
        return repo
    path = Path(repo)
    if not (path / "feature_store.yaml").is_file():
        raise DataError(
            f"{path} is not a Feast repository (no feature_store.yaml in it)"
            if path.is_dir()
            else f"{path}: no such Feast repository"
        )
    missing = missing_requirement()
    if missing:
        raise KeelError(f"cannot open the Feast repository {path}: {missing}")
    from feast import FeatureStore

    return FeatureStore(repo_path=str(path))


def _offline_store_type(store: Any) -> str:
    offline = getattr(store.config, "offline_store", None)
    kind = str(getattr(offline, "type", "file") or "file")
    short = kind.rsplit(".", 1)[-1].lower()
    if short in _REFUSED_OFFLINE_STORES or short.startswith("dask"):
        raise ConfigError(
            f"the Feast repository {getattr(store, 'repo_path', '')} uses the {kind!r} (Dask) "
            "offline store, whose point-in-time join silently drops entity rows that have no "
            "feature row within the TTL; keel reads Feast through the DuckDB offline store: "
            "set `offline_store: {type: duckdb}` in feature_store.yaml "
            '(and pip install "keel[feast]", which brings feast[duckdb])'
        )
    return kind


def _resolve(store: Any, feature_refs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each view asked for: its join keys, the (ref, feature) pairs asked, and the declared
    Arrow type of each feature."""
    if isinstance(feature_refs, str) or not feature_refs:
        raise ConfigError(
            "feature_refs is a list of Feast feature references like ['user_stats:amount_7d']"
        )
    from feast.embedded_go.type_map import FEAST_TYPE_TO_ARROW_TYPE

    views: dict[str, dict[str, Any]] = {}
    for ref in feature_refs:
        view_name, sep, feature = str(ref).partition(":")
        if not sep or not view_name or not feature:
            raise ConfigError(f"{ref!r} is not a Feast feature reference ('view:feature')")
        if view_name not in views:
            try:
                view = store.get_feature_view(view_name)
            except Exception as error:  # Feast's FeatureViewNotFoundException and kin
                known = sorted(v.name for v in store.list_feature_views())
                raise ConfigError(
                    f"the Feast repository has no feature view {view_name!r} "
                    f"(it has {', '.join(known) or 'none'}): {error}"
                ) from error
            types = {}
            for field in view.features:
                with contextlib.suppress(KeyError, TypeError):  # a type Arrow cannot hold
                    types[field.name] = FEAST_TYPE_TO_ARROW_TYPE[field.dtype]
            join_map = dict(view.projection.join_key_map or {})
            keys = [
                join_map.get(c.name, c.name)
                for c in view.entity_columns
                if c.name != "__dummy_id"  # an entityless view's placeholder key
            ]
            _check_source_path(store, view)
            views[view_name] = {
                "join_keys": keys,
                "features": [],
                "types": types,
                "declared": [f.name for f in view.features],
            }
        if feature not in views[view_name]["declared"]:
            raise ConfigError(
                f"the Feast feature view {view_name!r} has no feature {feature!r} "
                f"(it has {', '.join(views[view_name]['declared'])})"
            )
        views[view_name]["features"].append((str(ref), feature))
    return views


def _check_source_path(store: Any, view: Any) -> None:
    """Feast's DuckDB store reads a relative ``FileSource`` path against the process's
    working directory, not the repository (``feast apply`` resolves it against the
    repository): refuse, naming the fix, a path that is not there from here."""
    location = getattr(getattr(view, "batch_source", None), "path", None)
    if not isinstance(location, str) or not location or "://" in location:
        return
    path = Path(location)
    if path.is_absolute() or path.exists():
        return
    repo = Path(str(getattr(store, "repo_path", "") or "."))
    there = " (it is there from the repository)" if (repo / path).exists() else ""
    raise ConfigError(
        f"the Feast feature view {view.name!r} reads {location!r}, a relative path, and "
        f"Feast's DuckDB offline store reads it from the working directory ({Path.cwd()}), "
        f"where there is no such file{there}; give the FileSource an absolute path, or "
        f"run from {repo}"
    )


def _entity_table(entity_rows: Any) -> pa.Table:
    if isinstance(entity_rows, pa.Table):
        return entity_rows
    if type(entity_rows).__module__.startswith("pandas"):
        return pa.Table.from_pandas(entity_rows, preserve_index=False)
    from keel.data import open_source

    return open_source(entity_rows).read_all()


def _as_utc(column: Any, what: str) -> pa.ChunkedArray:
    """A timestamp column as microsecond UTC timestamps (naive values read as UTC)."""
    kind = column.type
    if not pa.types.is_timestamp(kind):
        raise SchemaError(f"{what} must be timestamps; it is {kind}")
    if kind.tz is None:
        column = pc.assume_timezone(column, "UTC")
    return column.cast(_UTC, safe=False)  # to the microsecond, as Feast and DuckDB hold them


def _ask_feast(
    store: Any,
    query: pa.Table,
    refs: list[str],
    filter_by_created_timestamp: bool,
    full_feature_names: bool,
) -> pa.Table | None:
    if query.num_rows == 0:
        return None
    entity_df = query.to_pandas()
    try:
        job = store.get_historical_features(
            entity_df=entity_df,
            features=refs,
            full_feature_names=full_feature_names,
            filter_by_created_timestamp=filter_by_created_timestamp,
        )
        # Arrow, not pandas: pandas turns an integer column with nulls into floats.
        return job.to_arrow()
    except NotImplementedError as error:
        raise ConfigError(
            f"this Feast offline store cannot filter by created timestamp ({error}); pass "
            "filter_by_created_timestamp=False to read values as of event time only"
        ) from error


def _declared(values: pa.ChunkedArray, declared: pa.DataType | None, ref: str) -> Any:
    """``values`` in the feature's declared type: integers that Feast turned into floats are
    turned back, refusing any value that is not a whole number in range.

    >>> import pyarrow as pa
    >>> _declared(pa.chunked_array([[4.0, None]]), pa.int64(), "v:n").to_pylist()
    [4, None]
    >>> _declared(pa.chunked_array([[4.5]]), pa.int64(), "v:n")
    Traceback (most recent call last):
    ...
    keel.errors.DataError: Feast returned v:n as double, which does not convert back to its \
declared int64: ...4.5...
    """
    if declared is None or values.type == declared:
        return values
    try:
        return values.cast(declared, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DataError(
            f"Feast returned {ref} as {values.type}, which does not convert back to its "
            f"declared {declared}: {error}"
        ) from error


# --- logged (served) features -----------------------------------------------------------


def logged_features(
    path_or_store: Any,
    feature_service: Any = None,
    *,
    start: Any = None,
    end: Any = None,
    full_feature_names: bool = False,
) -> pa.Table:
    """The features a Feast feature service logged as it served them, in keel's served-log
    shape (``served_log_from_feast_logs``), optionally only those logged in
    ``[start, end)`` (by ``__log_timestamp``; naive times are UTC).

    ``path_or_store``: a Parquet file or folder of Feast's logged features (what
    ``FeatureStore.write_logged_features`` writes to a ``FileLoggingDestination``), or a
    ``FeatureStore`` or Feast repository path together with ``feature_service`` (its name, or
    the ``FeatureService``), whose logging destination is read. With a log path,
    ``feature_service`` is not needed and not used.
    """
    import pyarrow.dataset as ds

    path = _log_location(path_or_store, feature_service)
    if not path.exists():
        raise DataError(f"{path}: no Feast feature log there")
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if not files:
        raise DataError(f"{path}: no Parquet files of logged features in it")
    try:
        dataset = ds.dataset(  # only the Parquet files; hive partitions (__log_date=...)
            [str(f) for f in files],
            format="parquet",
            partitioning=None if path.is_file() else "hive",
            partition_base_dir=None if path.is_file() else str(path),
        )
        table = dataset.to_table()
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path}: cannot read Feast's logged features: {error}") from error
    return served_log_from_feast_logs(
        table, start=start, end=end, full_feature_names=full_feature_names, name=str(path)
    )


def _log_location(path_or_store: Any, feature_service: Any) -> Path:
    store = None
    if hasattr(path_or_store, "get_feature_service"):
        store = path_or_store
    elif (Path(path_or_store) / "feature_store.yaml").is_file():
        store = open_feature_store(path_or_store)
    if store is None:
        return Path(path_or_store)
    if feature_service is None:
        raise ConfigError(
            "reading logged features from a Feast repository needs feature_service (the name "
            "of the feature service whose logging_config names the log destination)"
        )
    service = (
        store.get_feature_service(feature_service)
        if isinstance(feature_service, str)
        else feature_service
    )
    config = getattr(service, "logging_config", None)
    destination = getattr(config, "destination", None)
    location = getattr(destination, "path", None)
    if not location:
        raise ConfigError(
            f"the Feast feature service {service.name!r} logs to no file destination "
            "(logging_config=LoggingConfig(destination=FileLoggingDestination(path=...)))"
        )
    if "://" in location:
        raise ConfigError(f"keel reads local Feast feature logs only, not {location}")
    location_path = Path(location)
    if not location_path.is_absolute():
        # Feast writes a relative destination against the process's working directory;
        # keel reads it against the repository, where the repository's files live.
        location_path = Path(store.repo_path) / location_path
    return location_path


def served_log_from_feast_logs(
    logs: pa.Table,
    *,
    start: Any = None,
    end: Any = None,
    full_feature_names: bool = False,
    name: str = "Feast's logged features",
) -> pa.Table:
    """Map a table in Feast's logged-features format to keel's served-log shape.

    Feast's columns → keel's: ``__request_id`` → ``request_id`` (string);
    ``__log_timestamp`` → ``event_time`` (UTC); each entity key as it is;
    ``<view>__<feature>`` → ``<feature>`` (or ``<view>__<feature>`` with
    ``full_feature_names``, needed when two views log the same feature name);
    ``<view>__<feature>__timestamp`` → ``<feature>__as_of`` (the served value's own event
    timestamp, UTC); ``<view>__<feature>__status`` → ``<feature>__status``, Feast's
    ``FieldStatus`` by name (``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND``,
    ``OUTSIDE_MAX_AGE``, ``INVALID``). ``__log_date`` (a partition column) is dropped.
    Rows are ordered by ``event_time`` then ``request_id``.
    """
    names = logs.column_names
    missing = [c for c in (_REQUEST_ID, _LOG_TIMESTAMP) if c not in names]
    if missing:
        raise SchemaError(
            f"{name} lacks {', '.join(missing)}: not Feast's logged-features format "
            f"(columns {', '.join(names)})"
        )
    features = [
        c[: -len("__timestamp")]
        for c in names
        if c.endswith("__timestamp")
        and c[: -len("__timestamp")] in names
        and f"{c[: -len('__timestamp')]}__status" in names
    ]
    feature_columns = {col for f in features for col in (f, f"{f}__timestamp", f"{f}__status")}
    entities = [c for c in names if not c.startswith("__") and c not in feature_columns]
    if not entities:
        raise SchemaError(f"{name} has no entity key columns (columns {', '.join(names)})")
    if not features:
        raise SchemaError(
            f"{name} has no logged feature (no <view>__<feature> column with its "
            f"__timestamp and __status; columns {', '.join(names)})"
        )
    event_time = _as_utc(logs[_LOG_TIMESTAMP], f"{name}'s {_LOG_TIMESTAMP}")
    keep = None
    if start is not None:
        keep = pc.greater_equal(event_time, pa.scalar(_instant(start), _UTC))
    if end is not None:
        before = pc.less(event_time, pa.scalar(_instant(end), _UTC))
        keep = before if keep is None else pc.and_(keep, before)

    def short(full: str) -> str:
        if full_feature_names:
            return full
        _view, sep, feature = full.partition("__")
        return feature if sep and feature else full

    out_names = [short(f) for f in features]
    clashing = sorted(
        {n for n in out_names if out_names.count(n) > 1} | (set(out_names) & set(entities))
    )
    if clashing:
        raise SchemaError(
            f"{name}: feature names {', '.join(clashing)} are logged by more than one view "
            "(or clash with an entity key); pass full_feature_names=True"
        )
    columns: dict[str, Any] = {
        "request_id": logs[_REQUEST_ID].cast(pa.string()),
        "event_time": event_time,
    }
    for entity in entities:
        columns[entity] = logs[entity]
    status_names = pa.array(
        [FIELD_STATUS.get(i, "INVALID") for i in range(max(FIELD_STATUS) + 1)], pa.string()
    )
    for full, out in zip(features, out_names, strict=True):
        columns[out] = logs[full]
        columns[f"{out}__as_of"] = _as_utc(
            logs[f"{full}__timestamp"], f"{name}'s {full}__timestamp"
        )
        codes = logs[f"{full}__status"].cast(pa.int64())
        known = pc.and_(pc.greater_equal(codes, 0), pc.less_equal(codes, max(FIELD_STATUS)))
        codes = pc.if_else(known, codes, pa.scalar(0, pa.int64()))
        columns[f"{out}__status"] = pc.take(status_names, codes)
    table = pa.table(columns)
    if keep is not None:
        table = table.filter(keep)
    return table.sort_by([("event_time", "ascending"), ("request_id", "ascending")])


def _instant(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    elif hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise ConfigError(f"start and end are datetimes or ISO 8601 strings, not {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
