"""Reading the logs back: DuckDB queries over the Parquet partitions.

The writer (``keel.store.logs``) lays files out as
``ROOT/KIND/model=NAME/date=YYYY-MM-DD/part-*.parquet``. Reading picks the
day folders a time range needs (the partition pruning is a look at folder
names), then lets DuckDB filter by event time, keep the latest record per
request id (a record sent twice, or corrected, counts once), and join labels
to predictions by request id. Labels whose prediction has not arrived yet
stay in the label log, are counted by ``unmatched_labels``, and join as soon
as their prediction is logged: nothing is matched at write time, so nothing
has to be re-matched later.

>>> import tempfile, datetime as dt
>>> from keel.store.logs import LogWriter
>>> root = tempfile.mkdtemp()
>>> with LogWriter(root, "predictions", model="loans") as writer:
...     writer.append([{"request_id": r, "event_time": dt.datetime(2026, 1, 5, 12), "score": 0.8}
...                    for r in ("a", "b")])
2
>>> with LogWriter(root, "labels", model="loans") as writer:
...     writer.append([{"request_id": r, "event_time": dt.datetime(2026, 1, 9), "label": 1}
...                    for r in ("a", "z")])
2
>>> joined = read_labelled(root, "loans")
>>> sorted(zip(joined["request_id"].to_pylist(), joined["label"].to_pylist()))
[('a', 1), ('b', None)]
>>> unmatched_labels(root, "loans")
1
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from keel.errors import DataError

_DUPLICATES = b"keel_duplicates_dropped"
_DUPLICATE_LABELS = b"keel_duplicate_labels"


#: Read options that also give each row's file and position: the tie-break below.
ORDERED = (
    "union_by_name = true, hive_partitioning = false, filename = '_keel_file', "
    "file_row_number = true"
)
#: The latest record per request id: the last ingested; among records ingested at the same
#: instant (one flush), the later file, then the later row: the same answer every read.
LATEST = (
    "QUALIFY row_number() OVER (PARTITION BY request_id "
    "ORDER BY _ingested_at DESC, _keel_file DESC, file_row_number DESC) = 1"
)


def log_files(
    root: str | Path,
    kind: str,
    model: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[str]:
    """The Parquet files of a model's log whose day can hold rows in [start, end)."""
    folder = Path(root) / kind / f"model={model}"
    if not folder.is_dir():
        return []
    first = _utc(start).strftime("%Y-%m-%d") if start else None
    last = _utc(end - timedelta(microseconds=1)).strftime("%Y-%m-%d") if end else None
    files = []
    for day_folder in sorted(folder.glob("date=*")):
        day = day_folder.name.removeprefix("date=")
        if (first and day < first) or (last and day > last):
            continue
        files += [str(f) for f in sorted(day_folder.glob("part-*.parquet"))]
    return files


def read_log(
    root: str | Path,
    kind: str,
    model: str,
    start: datetime | None = None,
    end: datetime | None = None,
    latest_per_request: bool = False,
    first_ingestion: bool = False,
) -> pa.Table:
    """A model's log rows with start <= event_time < end, in event-time order.

    ``latest_per_request`` keeps one row per request id, the last ingested;
    ``duplicates_dropped(table)`` then says how many rows that removed.
    ``first_ingestion`` (with it) adds ``_first_ingested_at``, when the request id was first
    ingested: a correction keeps its request's place in ingestion order (row windows).
    """
    files = log_files(root, kind, model, start, end)
    if not files:
        return pa.table({})
    latest = LATEST if latest_per_request else ""
    count = (
        ", count(*) OVER (PARTITION BY request_id) AS _keel_copies" if latest_per_request else ""
    )
    if latest_per_request and first_ingestion:
        count += ", min(_ingested_at) OVER (PARTITION BY request_id) AS _first_ingested_at"
    table = _query(
        f"""
        SELECT * EXCLUDE (_keel_file, file_row_number){count}
        FROM read_parquet($files, {ORDERED})
        WHERE event_time IS NOT NULL {_time_filter(start, end)}
        {latest}
        ORDER BY event_time, request_id
        """,
        {"files": files, **_time_parameters(start, end)},
        files,
        (root, model),
    )
    if latest_per_request:
        copies = table.column("_keel_copies")
        dropped = int(pc.sum(copies).as_py() or 0) - table.num_rows
        table = table.drop_columns(["_keel_copies"])
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), _DUPLICATES: str(dropped).encode()}
        )
    return table


def duplicates_dropped(table: pa.Table) -> int:
    """How many duplicate request ids ``read_log(..., latest_per_request=True)`` removed."""
    return int((table.schema.metadata or {}).get(_DUPLICATES, b"0"))


def read_labelled(
    root: str | Path,
    model: str,
    start: datetime | None = None,
    end: datetime | None = None,
    first_ingestion: bool = False,
) -> pa.Table:
    """Predictions in [start, end) (latest per request id) with their labels joined.

    Label columns keep their names; the label's own event time becomes
    ``label_time`` and its ingestion ``_label_ingested_at``. A prediction without
    a label has nulls there. A label's latest record per request id wins, and a
    column in both logs is the label log's. ``first_ingestion``: as for ``read_log``.
    """
    predictions = log_files(root, "predictions", model, start, end)
    if not predictions:
        return pa.table({})
    labels = log_files(root, "labels", model)
    if not labels:
        return read_log(
            root,
            "predictions",
            model,
            start,
            end,
            latest_per_request=True,
            first_ingestion=first_ingestion,
        )
    first = (
        ", min(_ingested_at) OVER (PARTITION BY request_id) AS _first_ingested_at"
        if first_ingestion
        else ""
    )
    import pyarrow.parquet as pq

    label_columns = {name for file in labels for name in pq.read_schema(file).names}
    both = sorted(label_columns - {"request_id", "event_time", "_ingested_at"})
    hidden = [*both, "_keel_file", "file_row_number"]  # the label log's, and the tie-break's
    kept = (  # every prediction column but those
        f"COLUMNS(lambda c: c NOT IN ({', '.join(_literal(c) for c in hidden)}))"
    )
    table = _query(
        f"""
        WITH p AS (
            SELECT {kept}{first} FROM read_parquet($predictions, {ORDERED})
            WHERE event_time IS NOT NULL {_time_filter(start, end)}
            {LATEST}
        ), l AS (
            SELECT * EXCLUDE (_keel_file, file_row_number)
                RENAME (event_time AS label_time, _ingested_at AS _label_ingested_at)
            FROM read_parquet($labels, {ORDERED})
            {LATEST}
        )
        SELECT p.*, l.* EXCLUDE (request_id)
        FROM p LEFT JOIN l USING (request_id)
        ORDER BY p.event_time, p.request_id
        """,
        {"predictions": predictions, "labels": labels, **_time_parameters(start, end)},
        predictions + labels,
        (root, model),
    )
    repeated = (
        _query(  # a request labelled twice: the latest label wins, and it is counted
            "SELECT count(*) - count(DISTINCT request_id) AS n FROM read_parquet($labels, "
            "union_by_name = true, hive_partitioning = false)",
            {"labels": labels},
            labels,
            (root, model),
        )
        .column("n")[0]
        .as_py()
    )
    return table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _DUPLICATE_LABELS: str(int(repeated or 0)).encode()}
    )


def duplicate_labels(table: pa.Table) -> int:
    """How many labels ``read_labelled`` set aside because a later one came for the request."""
    return int((table.schema.metadata or {}).get(_DUPLICATE_LABELS, b"0"))


def unmatched_labels(root: str | Path, model: str) -> int:
    """Labels whose request id has no logged prediction (yet): kept, and counted here."""
    labels = log_files(root, "labels", model)
    if not labels:
        return 0
    predictions = log_files(root, "predictions", model)
    if not predictions:
        return _count_distinct_ids(labels, root, model)
    table = _query(
        """
        SELECT count(DISTINCT request_id) AS n
        FROM read_parquet($labels, union_by_name = true, hive_partitioning = false) l
        WHERE NOT EXISTS (
            SELECT 1 FROM read_parquet($predictions, union_by_name = true,
                                       hive_partitioning = false) p
            WHERE p.request_id = l.request_id)
        """,
        {"labels": labels, "predictions": predictions},
        labels + predictions,
        (root, model),
    )
    return int(table.column("n")[0].as_py())


def window_summaries(
    root: str | Path,
    model: str,
    size_seconds: float,
    start: datetime | None = None,
    end: datetime | None = None,
    with_labels: bool = False,
) -> dict[str, dict[str, float]]:
    """Per window (epoch-aligned, ``size_seconds`` long, keyed by its ISO start): rows (one
    per request id), newest ingestion (epoch seconds) and, ``with_labels``, labelled rows
    and newest label ingestion. Reads only the id and time columns: a cheap way to learn
    which windows changed before reading any of their rows."""
    predictions = log_files(root, "predictions", model, start, end)
    if not predictions:
        return {}
    labels = log_files(root, "labels", model) if with_labels else []
    size_us = int(size_seconds * 1_000_000)
    label_join = (
        """LEFT JOIN (
            SELECT request_id, max(_ingested_at) AS _label_ingested_at
            FROM read_parquet($labels, union_by_name = true, hive_partitioning = false)
            GROUP BY request_id
        ) l USING (request_id)"""
        if labels
        else ""
    )
    label_columns = (
        ", count(l._label_ingested_at) AS labels, "
        "coalesce(max(epoch_us(l._label_ingested_at)), 0) AS newest_label"
        if labels
        else ""
    )
    table = _query(
        f"""
        WITH p AS (
            SELECT request_id, event_time, _ingested_at
            FROM read_parquet($predictions, {ORDERED})
            WHERE event_time IS NOT NULL {_time_filter(start, end)}
            {LATEST}
        )
        SELECT (epoch_us(event_time) // {size_us}) AS k, count(*) AS rows,
               max(epoch_us(_ingested_at)) AS newest{label_columns}
        FROM p {label_join.replace("l USING", "l USING") if labels else ""}
        GROUP BY k ORDER BY k
        """,
        {
            "predictions": predictions,
            **({"labels": labels} if labels else {}),
            **_time_parameters(start, end),
        },
        predictions + labels,
        (root, model),
    )
    found = {}
    for row in table.to_pylist():  # one row per window
        begin = datetime.fromtimestamp(row["k"] * size_us / 1e6, UTC)
        summary = {"rows": float(row["rows"]), "newest_ingestion": row["newest"] / 1e6}
        if labels:
            summary["labels"] = float(row["labels"])
            summary["newest_label_ingestion"] = row["newest_label"] / 1e6
        found[begin.isoformat().replace("+00:00", "Z")] = summary
    return found


def oldest_event(root: str | Path, model: str) -> datetime | None:
    """The oldest event time in a model's prediction log (None: the log is empty): where the
    log starts, so the window holding it is known to be partial."""
    files = log_files(root, "predictions", model)
    if not files:
        return None
    table = _query(
        "SELECT min(event_time) AS oldest FROM read_parquet($files, union_by_name = true, "
        "hive_partitioning = false)",
        {"files": files},
        files,
        (root, model),
    )
    oldest = table.column("oldest")[0].as_py()
    return None if oldest is None else _utc(oldest)


def newest_ingestion(root: str | Path, kind: str, model: str) -> datetime | None:
    """When the newest record of a model's log was ingested (None: the log is empty)."""
    files = log_files(root, kind, model)
    if not files:
        return None
    table = _query(
        "SELECT max(_ingested_at) AS newest FROM read_parquet($files, union_by_name = true, "
        "hive_partitioning = false)",
        {"files": files},
        files,
        (root, model),
    )
    return table.column("newest")[0].as_py()


def _count_distinct_ids(files: list[str], root: str | Path, model: str) -> int:
    table = _query(
        "SELECT count(DISTINCT request_id) AS n FROM read_parquet($files, "
        "union_by_name = true, hive_partitioning = false)",
        {"files": files},
        files,
        (root, model),
    )
    return int(table.column("n")[0].as_py())


def _literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _time_filter(start: datetime | None, end: datetime | None) -> str:
    return ("AND event_time >= $start " if start else "") + ("AND event_time < $end" if end else "")


def _time_parameters(start: datetime | None, end: datetime | None) -> dict:
    return {
        **({"start": _utc(start)} if start else {}),
        **({"end": _utc(end)} if end else {}),
    }


_CONNECTIONS = threading.local()


def _connection() -> Any:
    """This thread's DuckDB connection, opened once: opening one costs tens of ms, and a
    monitor run asks dozens of questions of its logs."""
    import duckdb

    connection = getattr(_CONNECTIONS, "duckdb", None)
    if connection is None:
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        _CONNECTIONS.duckdb = connection
    return connection


def _query(
    sql: str, parameters: dict, files: list[str], forgotten: tuple | None = None
) -> pa.Table:
    """Run ``sql``; with ``forgotten`` (root, model), every ``read_parquet($NAME, …)`` of it
    reads without the rows the model's tombstones forget (``without_forgotten``)."""
    import duckdb

    if forgotten is not None:
        sql, parameters = without_forgotten(sql, parameters, *forgotten)
    try:
        return _connection().sql(sql, params=parameters).to_arrow_table()
    except duckdb.Error as error:
        where = files[0] if len(files) == 1 else f"{len(files)} files under {Path(files[0]).parent}"
        raise DataError(f"cannot read the log ({where}): {error}") from error


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_SCAN = re.compile(r"read_parquet\(\$(\w+),([^)]*)\)")


def without_forgotten(sql: str, parameters: dict, root: str | Path, model: str) -> tuple:
    """``sql`` with each ``read_parquet($NAME, OPTIONS)`` replaced by a scan that anti-joins
    the model's tombstones (``keel.store.logs.forget``): a row whose entity column (or
    request id) a tombstone names, ingested no later than it, is not read. So a forgotten
    entity is hidden at once, before its files are rewritten. Returns (sql, parameters).

    >>> without_forgotten("SELECT 1", {}, "/nonexistent", "loans")
    ('SELECT 1', {})
    """
    from keel.store.wal import read_tombstones

    tombstones = read_tombstones(root, model)
    if not tombstones:
        return sql, parameters
    parameters = dict(parameters)

    def scan(match: re.Match) -> str:
        name, options = match.group(1), match.group(2)
        files = parameters.get(name) or []
        columns = {c for f in files for c in pq.read_schema(f).names}
        keys: dict[str, dict[str, int]] = {}  # column -> value -> newest tombstone (epoch us)
        for tombstone in tombstones:
            for column, values in (
                (tombstone["column"], tombstone["values"]),
                ("request_id", tombstone.get("request_ids") or []),
            ):
                if column in columns:
                    newest = keys.setdefault(column, {})
                    for value in values:  # the tombstone's values, not the log's rows
                        newest[str(value)] = max(newest.get(str(value), 0), tombstone["created_us"])
        when = "(r._ingested_at IS NULL OR epoch_us(r._ingested_at) <= f.t)"
        if "_ingested_at" not in columns:
            when = "TRUE"
        tests = []
        for index, (column, newest) in enumerate(sorted(keys.items())):
            k, t = f"{name}_forgotten_k{index}", f"{name}_forgotten_t{index}"
            parameters[k], parameters[t] = list(newest), list(newest.values())
            tests.append(
                f"EXISTS (SELECT 1 FROM (SELECT unnest(${k}) AS k, unnest(${t}) AS t) f "
                f'WHERE f.k = CAST(r."{column.replace(chr(34), chr(34) * 2)}" AS VARCHAR) '
                f"AND {when})"
            )
        if not tests:
            return match.group(0)
        return f"(SELECT * FROM read_parquet(${name},{options}) r WHERE NOT ({' OR '.join(tests)}))"

    return _SCAN.sub(scan, sql), parameters
