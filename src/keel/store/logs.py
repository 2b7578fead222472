"""Prediction and label logs: partitioned Parquet, written in batches, atomically.

Layout (see docs/formats.md)::

    ROOT/predictions/model=NAME/date=YYYY-MM-DD/part-<uuid>.parquet
    ROOT/labels/model=NAME/date=YYYY-MM-DD/part-<uuid>.parquet
    ROOT/rejected/model=NAME/date=YYYY-MM-DD/part-<uuid>.parquet

The date is the event time's UTC day. Every row gets ``_ingested_at``. A
``LogWriter`` buffers rows from many small calls and writes one file per
partition when it holds ``flush_rows`` rows, when ``flush_seconds`` have
passed since its first buffered row (checked at each append), on ``flush()``,
on ``close()`` and at interpreter exit. Each file is written to a temporary
name and renamed, so a crash never leaves a file readers choke on; rows
``append`` accepted are on disk once a flush returns. Rows that fail the
schema check (no request id, no event time) are written to ``rejected`` with
their reason, never dropped silently and never crashing the writer.

>>> import tempfile, datetime as dt
>>> root = tempfile.mkdtemp()
>>> with LogWriter(root, "predictions", model="loans") as writer:
...     writer.append([{"request_id": "r1", "event_time": dt.datetime(2026, 1, 5, 12),
...                     "model_version": "3", "amount": 120.0, "score": 0.8}])
1
>>> from keel.store.queries import read_log
>>> read_log(root, "predictions", "loans").column("request_id").to_pylist()
['r1']
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from keel.errors import ConfigError, DataError

KINDS = ("predictions", "labels")
#: Rows buffered per flush when a whole file is ingested (one Parquet file per day per flush).
FILE_FLUSH_ROWS = 1_000_000
REQUIRED = ("request_id", "event_time")
_WRITERS: weakref.WeakSet = weakref.WeakSet()


class LogWriter:
    """Buffers log rows and writes them as Parquet partitions (see the module docstring)."""

    def __init__(
        self,
        root: str | Path,
        kind: str,
        model: str,
        flush_rows: int = 50_000,
        flush_seconds: float = 5.0,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"log kind {kind!r}: one of {KINDS}")
        if not model or "/" in model or model.startswith("."):
            raise ConfigError(f"model name {model!r} cannot name a folder")
        self.root, self.kind, self.model = Path(root), kind, model
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self._buffer: list[pa.Table] = []
        self._records: list[dict] = []  # single records, converted to Arrow once per flush
        self._refused: list[tuple[Any, str]] = []  # single records that failed the check
        self._buffered_rows = 0
        self._first_buffered: float | None = None
        self.rejected = 0
        _WRITERS.add(self)

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, records: Any) -> int:
        """Buffer rows (one dict, a list of dicts, a DataFrame or an Arrow table).

        Returns the rows accepted; the others go to ``rejected`` with their reason.
        One record (a dict) is only looked at here and turned into Arrow with the
        rest of its flush, so per-request logging costs microseconds; a record whose
        values Arrow cannot read (an event time that is no time) is rejected then.
        """
        if isinstance(records, Mapping):
            accepted = self._append_record(records)
        else:
            accepted = self._append_table(_as_table(records))
        due = self._first_buffered is not None and (
            time.monotonic() - self._first_buffered >= self.flush_seconds
        )
        if self._buffered_rows >= self.flush_rows or due:
            self.flush()
        return accepted

    def _append_record(self, record: Mapping) -> int:
        reason = _reason_to_refuse(record, self.model)
        if reason:
            self._refused.append((dict(record), reason))
            self.rejected += 1
        else:
            self._records.append({**record, "_ingested_at": datetime.now(UTC)})
        self._buffered_rows += 1
        self._first_buffered = self._first_buffered or time.monotonic()
        return 0 if reason else 1

    def _append_table(self, table: pa.Table) -> int:
        if table.num_rows == 0:
            return 0
        table = _stamp(table)
        accepted, rejected = _check(table, self.model)
        if rejected.num_rows:
            self.rejected += rejected.num_rows
            self._write(rejected, "rejected")
        if accepted.num_rows:
            self._buffer.append(accepted)
            self._buffered_rows += accepted.num_rows
            self._first_buffered = self._first_buffered or time.monotonic()
        return accepted.num_rows

    def flush(self) -> int:
        """Write everything buffered; returns the rows written."""
        if self._records or self._refused:
            records, refused = _records_table(self._records)
            refused += self._refused
            if refused:
                self.rejected += len(refused) - len(self._refused)
                self._write(_refused_table(refused), "rejected")
            self._refused = []
            if records.num_rows:
                self._buffer.append(records)
            self._records = []
        if not self._buffer:
            self._buffered_rows, self._first_buffered = 0, None
            return 0
        table = pa.concat_tables(self._buffer, promote_options="permissive")
        # Cleared only once written: a failed write (a full or read-only disk) keeps the rows
        # for the next flush. A day already written before the failure may then be written
        # twice; readers keep one row per request id.
        self._write(table, self.kind)
        self._buffer, self._buffered_rows, self._first_buffered = [], 0, None
        return table.num_rows

    def close(self) -> None:
        self.flush()
        _WRITERS.discard(self)

    def _write(self, table: pa.Table, kind: str) -> None:
        days = pc.strftime(table.column("event_time"), format="%Y-%m-%d").fill_null("unknown")
        # One stable sort by day, then a slice per day: a long history is not filtered once
        # per day it spans, and rows keep their arrival order within a day.
        order = pc.sort_indices(days, sort_keys=[("", "ascending")])
        table, days = table.take(order), days.take(order)
        if isinstance(days, pa.ChunkedArray):
            days = days.combine_chunks()
        runs = pc.run_end_encode(days)
        ends = runs.run_ends.to_numpy(zero_copy_only=False)
        starts = np.concatenate([[0], ends[:-1]])
        for day, start, end in zip(runs.values.to_pylist(), starts, ends, strict=True):
            folder = self.root / kind / f"model={self.model}" / f"date={day}"
            part = table.slice(int(start), int(end - start))
            _write_atomically(part, folder / f"part-{uuid.uuid4().hex}.parquet")


def compact(root: str | Path, kind: str, model: str) -> int:
    """Merge each day's small files into one; returns the files removed."""
    removed = 0
    for folder in sorted((Path(root) / kind / f"model={model}").glob("date=*")):
        files = sorted(folder.glob("part-*.parquet"))
        if len(files) < 2:
            continue
        table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
        _write_atomically(table, folder / f"part-{uuid.uuid4().hex}.parquet")
        for file in files:  # only after the merged file is safely in place
            file.unlink()
        removed += len(files) - 1
    return removed


def retain(root: str | Path, model: str, days: int, now: datetime | None = None) -> list[str]:
    """Delete a model's log days older than ``days`` (all kinds); returns the days removed."""
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=days)).strftime("%Y-%m-%d")
    removed = []
    for kind in (*KINDS, "rejected"):
        for folder in (Path(root) / kind / f"model={model}").glob("date=*"):
            day = folder.name.removeprefix("date=")
            if day != "unknown" and day < cutoff:
                shutil.rmtree(folder)
                removed.append(f"{kind}/{day}")
    return sorted(removed)


def _as_table(records: Any) -> pa.Table:
    if isinstance(records, pa.Table):
        return records
    if hasattr(records, "columns") and type(records).__module__.startswith("pandas"):
        return pa.Table.from_pandas(records, preserve_index=False)
    if isinstance(records, Iterable):
        rows = list(records)
        return pa.Table.from_pylist(rows) if rows else pa.table({})
    raise DataError(f"cannot log {type(records).__name__}: give dicts, a DataFrame or a Table")


def _stamp(table: pa.Table) -> pa.Table:
    if "_ingested_at" in table.column_names:  # single records, stamped when appended
        ingested = pc.cast(table.column("_ingested_at"), pa.timestamp("us", tz="UTC"))
        table = table.set_column(
            table.schema.get_field_index("_ingested_at"), "_ingested_at", ingested
        )
    else:
        now = datetime.now(UTC)
        table = table.append_column(
            "_ingested_at", pa.array([now] * table.num_rows, pa.timestamp("us", tz="UTC"))
        )
    if "event_time" in table.column_names:
        from keel.errors import SchemaError
        from keel.windows import utc_times

        try:  # read as every part of keel reads times: text, epoch numbers, timestamps
            column = utc_times(table.column("event_time"), "event_time")
        except SchemaError as error:
            raise DataError(str(error)) from error
        table = table.set_column(table.schema.get_field_index("event_time"), "event_time", column)
    return table


def _check(table: pa.Table, model: str) -> tuple[pa.Table, pa.Table]:
    """Rows with every required field, and the rest with a ``_rejected_because`` column.

    A record that names its model (a ``model`` column) must name this log's model.
    """
    missing_columns = [name for name in REQUIRED if name not in table.column_names]
    if missing_columns:
        reason = f"missing column(s) {', '.join(missing_columns)}"
        for name in missing_columns:
            table = table.append_column(
                name,
                pa.nulls(table.num_rows, pa.string())
                if name == "request_id"
                else pa.nulls(table.num_rows, pa.timestamp("us", tz="UTC")),
            )
        return table.slice(0, 0), table.append_column(
            "_rejected_because", pa.array([reason] * table.num_rows)
        )
    has_id = pc.is_valid(table.column("request_id"))
    has_time = pc.is_valid(table.column("event_time"))
    same_model = (
        pc.fill_null(pc.equal(pc.cast(table.column("model"), pa.string()), model), False)
        if "model" in table.column_names
        else pa.array([True] * table.num_rows)
    )
    valid = pc.and_(pc.and_(has_id, has_time), same_model)
    rejected = table.filter(pc.invert(valid))
    if rejected.num_rows:
        reasons = pc.if_else(
            pc.invert(pc.is_valid(rejected.column("request_id"))),
            "no request_id",
            pc.if_else(
                pc.invert(pc.is_valid(rejected.column("event_time"))),
                "no event_time",
                f"another model's record (this log is {model!r})",
            ),
        )
        rejected = rejected.append_column("_rejected_because", reasons)
    return table.filter(valid), rejected


def _reason_to_refuse(record: Mapping, model: str) -> str | None:
    """The same check as ``_check``, on one record."""
    if record.get("request_id") is None:
        return "no request_id"
    if record.get("event_time") is None:
        return "no event_time"
    if "model" in record and str(record["model"]) != model:
        return f"another model's record (this log is {model!r})"
    return None


def _records_table(records: list[dict]) -> tuple[pa.Table, list[tuple[Any, str]]]:
    """Single records as one table; a record Arrow cannot read is set apart with the reason."""
    if not records:
        return pa.table({}), []
    try:
        return _stamp(pa.Table.from_pylist(records)), []
    except (pa.ArrowException, DataError, TypeError, ValueError):
        pass
    tables, refused = [], []
    for record in records:  # only when the batch failed: find the record that did
        try:
            tables.append(_stamp(pa.Table.from_pylist([record])))
        except (pa.ArrowException, DataError, TypeError, ValueError) as error:
            refused.append((record, f"unreadable record: {error}"))
    if not tables:
        return pa.table({}), refused
    return pa.concat_tables(tables, promote_options="permissive"), refused


def _refused_table(refused: list[tuple[Any, str]]) -> pa.Table:
    """Refused records kept whole, as JSON, whatever their values' types."""
    import json

    return pa.table(
        {
            "request_id": pa.array(
                [None if r.get("request_id") is None else str(r["request_id"]) for r, _ in refused],
                pa.string(),
            ),
            "event_time": pa.nulls(len(refused), pa.timestamp("us", tz="UTC")),
            "_record": [json.dumps(r, default=str) for r, _ in refused],
            "_rejected_because": [reason for _, reason in refused],
        }
    )


def _write_atomically(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise DataError(
            f"{path.parent}: cannot write the log ({error.strerror or error}); rows stay buffered"
        ) from error


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@atexit.register
def _flush_all() -> None:
    """At interpreter exit, whatever is still buffered goes to disk."""
    for writer in list(_WRITERS):
        with contextlib.suppress(Exception):  # exit must go on
            writer.flush()


DEFAULT_ROOT = Path(".keel") / "logs"
_OPEN: dict[tuple[str, str, str], LogWriter] = {}


def log_root(root: str | Path | None = None) -> Path:
    """The log folder: the argument, ``KEEL_LOG_ROOT``, or ``.keel/logs`` here."""
    return Path(root or os.environ.get("KEEL_LOG_ROOT") or DEFAULT_ROOT)


def log_predictions(records: Any, model: str, root: str | Path | None = None) -> int:
    """Log prediction records (request_id, event_time, model_version, features, outputs).

    Buffered per model in this process; flushed on size, on time and at exit.
    Returns the rows accepted (the others are kept under ``rejected``).
    """
    return _writer(root, "predictions", model).append(records)


def log_labels(records: Any, model: str, root: str | Path | None = None) -> int:
    """Log labels that arrive later (request_id, event_time, label)."""
    return _writer(root, "labels", model).append(records)


def _writer(root: str | Path | None, kind: str, model: str) -> LogWriter:
    key = (str(log_root(root)), kind, model)
    if key not in _OPEN:
        _OPEN[key] = LogWriter(log_root(root), kind, model)
    return _OPEN[key]
