"""Reading the engines' inputs the same way: tables, times as µs, window starts, columns."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import DataError, SchemaError
from keel.features.definition import AVAILABLE_TIME, WindowedFeature


def log_root(root: str | Path | None = None) -> Path:
    """ROOT as ``keel.store.logs.log_root`` resolves it: the argument, ``KEEL_LOG_ROOT``, or
    ``.keel/logs``. Not imported from there: the checks read keel.features, and the checks
    never reach the store (tests/test_import_direction.py)."""
    return Path(root or os.environ.get("KEEL_LOG_ROOT") or Path(".keel") / "logs")


def as_table(data: Any, what: str, columns: list[str] | None = None) -> pa.Table:
    """A pyarrow Table, a pandas DataFrame, a list of records, or a Parquet path/folder
    (of which only ``columns`` are read, where given and present)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    if getattr(data, "shape", None) == (0, 0):  # an empty DataFrame: no rows, no columns
        return pa.table({})
    if isinstance(data, str | Path) and Path(data).is_dir():
        return _parquet_folder(Path(data), columns)
    from keel.data import open_source

    try:
        return open_source(data).read_all()
    except DataError as error:
        raise DataError(f"{what}: {error}") from None


def _parquet_folder(folder: Path, columns: list[str] | None) -> pa.Table:
    """Every Parquet file under a folder (an event log: files may add columns over time)."""
    import pyarrow.parquet as pq

    files = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    if not files:
        raise DataError(f"{folder}: no Parquet files (no events ingested yet?)")
    tables = []
    for path in files:
        present = pq.ParquetFile(path).schema_arrow.names
        wanted = present if columns is None else [c for c in present if c in set(columns)]
        tables.append(pq.read_table(path, columns=wanted))
    return pa.concat_tables(tables, promote_options="permissive")


def require(table: pa.Table, columns: list[str], what: str) -> None:
    missing = [column for column in dict.fromkeys(columns) if column not in table.column_names]
    if missing:
        raise SchemaError(
            f"{what} have no column {missing[0]!r} (they have: "
            f"{', '.join(table.column_names) or 'none'})"
        )


def micros(column: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A time column → (µs since the epoch, UTC; valid), read as ``keel.windows`` reads times."""
    from keel.windows import utc_times

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    times = utc_times(column, name)
    valid = np.asarray(times.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    values = pc.fill_null(times.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.int64), valid


def moment(value: Any, name: str = "now") -> int:
    """One moment (datetime, ISO text, epoch number, pandas Timestamp) → µs since the epoch."""
    values, valid = micros(pa.array([value]), name)
    if not valid[0]:
        raise DataError(f"{name} must be a moment, not {value!r}")
    return int(values[0])


def window_starts(feature: WindowedFeature, times: np.ndarray) -> np.ndarray:
    """The first µs of each query's window: ``t − W``, or ``⌊t/h⌋·h − W`` with a hop."""
    hop = feature.hop_us
    base = times if hop is None else np.floor_divide(times, hop) * hop
    return base - feature.window_us


def availability(feature: WindowedFeature, events: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """When each event became known (µs; valid): the declared column, event_time + lag,
    the ingest stamp ``available_time``, or else event_time itself."""
    times, valid = micros(events[feature.event_time], feature.event_time)
    if feature.available_time is not None:
        return micros(events[feature.available_time], feature.available_time)
    if feature.lag_us is not None:
        return times + feature.lag_us, valid
    if AVAILABLE_TIME in events.column_names:
        stamped, known = micros(events[AVAILABLE_TIME], AVAILABLE_TIME)
        return np.where(known, stamped, times), np.where(known, known, valid)
    return times, valid


def needed_columns(feature: WindowedFeature) -> list[str]:
    columns = [*feature.entities, feature.event_time]
    if feature.column is not None:
        columns.append(feature.column)
    if feature.available_time is not None:
        columns.append(feature.available_time)
    return columns
