"""The write-ahead log under the prediction and label logs: segments, group commit, compaction.

A record ``keel.log_predictions`` / ``keel.log_labels`` acknowledges is first
appended to a WAL segment (see docs/formats.md, "The write-ahead log")::

    ROOT/wal/<kind>/model=NAME/segment-<n>.wal

A segment is an 8-byte header (``KEELWAL`` and the format version, 1) and
then frames, back to back, each::

    u32 length L | u32 CRC-32 of the next 1 + L bytes | u8 frame kind | L bytes of payload

(little-endian). Frame kinds: 1, accepted records as JSON; 2, accepted records
as an Arrow IPC stream; 3, rejected records as JSON (each kept whole with its
reason); 4, rejected rows as an Arrow IPC stream. Times in JSON frames are
microseconds since the Unix epoch (UTC), the payload's ``us`` list naming
those fields, so compaction never re-parses what ``append`` accepted.

In ``durable`` mode ``append`` returns only after the ``fdatasync`` that
covers its frame. Syncs are grouped, leader–follower: the first waiter
syncs; whoever arrives during that sync waits and the first of them syncs
everything written by then; nobody sleeps a fixed time. In ``fast`` mode
``append`` returns once the frame is written to the file (it survives the
process being killed) and a background thread syncs every ``flush_ms``: a
power cut loses at most that window of acknowledged records.

Compaction turns one sealed segment into Parquet: its accepted records, one
row per (request id, model version, role) — the last — go to
``ROOT/<kind>/model=NAME/date=D/part-wal-<n>.parquet`` (one file per UTC day
of event time), its rejected ones to
``ROOT/rejected/model=NAME/date=D/part-wal-<kind>-<n>.parquet``. Each file is
written under a hidden name, fsynced, renamed and its folder fsynced; only
then is the segment deleted (and the WAL folder fsynced). The names depend
only on the segment, so compacting a segment again (after a crash between
these steps) overwrites, never duplicates. ``recover`` compacts every segment
no live writer holds (each writer holds an ``flock`` on its segment); a torn
tail — a frame cut short by a crash, or one whose checksum fails — ends the
segment: the frames before it are kept.

Every file operation goes through a small ``FileIO`` object, so a test can
record the order of writes and syncs, or simulate a power cut.

>>> import tempfile, datetime as dt
>>> root = tempfile.mkdtemp()
>>> segment = Segment.create(FileIO(), wal_folder(root, "labels", "loans"))
>>> frames, accepted, rejected = encode_records(
...     [{"request_id": "r1", "event_time": dt.datetime(2026, 1, 5), "label": 1}], "loans")
>>> segment.sync_to(segment.write(frames)); segment.close()
>>> [p.name.startswith("segment-") for p in wal_folder(root, "labels", "loans").iterdir()]
[True]
>>> recover(root, "labels", "loans")["accepted"]
1
>>> from keel.store.queries import read_log
>>> read_log(root, "labels", "loans").column("label").to_pylist()
[1]
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import json
import math
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from keel.errors import DataError, SchemaError
from keel.windows import utc_times

MAGIC = b"KEELWAL\x01"
VERSION = 1
_HEADER = struct.Struct("<IIB")
JSON_ROWS, ARROW_ROWS, JSON_REJECTED, ARROW_REJECTED = 1, 2, 3, 4
#: The key a record is deduplicated on at compaction (absent fields count as null).
DEDUP_KEY = ("request_id", "model_version", "role")
REQUIRED = ("request_id", "event_time")
_INT64 = (-(2**63), 2**63 - 1)
_EPOCH_DAY = date(1970, 1, 1).toordinal()


class FileIO:
    """The file operations the WAL uses; a test substitutes one that records or forgets."""

    def create(self, path: Path) -> int:
        """A new file opened for appending (it must not exist), readable, locked by us."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd

    def open_new(self, path: Path) -> int:
        """A file opened for writing from its start (created, or emptied)."""
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    def open_locked(self, path: Path) -> int | None:
        """An existing file opened and locked, or None when a live writer holds it."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if os.fstat(fd).st_nlink == 0:  # compacted and deleted while we waited
            os.close(fd)
            return None
        return fd

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def read(self, fd: int) -> bytes:
        return os.pread(fd, os.fstat(fd).st_size, 0)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def fsync_dir(self, folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def unlink(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def makedirs(self, folder: Path) -> None:
        """Create a folder and any missing parents, each new entry fsynced in its parent."""
        missing = []
        while not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for new in reversed(missing):
            self.mkdir(new)
            self.fsync_dir(new.parent)

    def mkdir(self, folder: Path) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder)

    def write_file(self, path: Path, data: bytes) -> None:
        """Write a whole file durably: hidden name, fsync, rename, fsync of the folder."""
        temporary = path.with_name(f".{path.name}.tmp")
        fd = self.open_new(temporary)
        try:
            self.write(fd, data)
            self.fsync(fd)
        finally:
            self.close(fd)
        self.replace(temporary, path)
        self.fsync_dir(path.parent)


def wal_folder(root: str | Path, kind: str, model: str) -> Path:
    """Where a model's WAL segments of one kind live.

    >>> wal_folder("/logs", "predictions", "loans").as_posix()
    '/logs/wal/predictions/model=loans'
    """
    return Path(root) / "wal" / kind / f"model={model}"


class Segment:
    """One open WAL segment: frames appended in order, synced in groups."""

    def __init__(self, io: FileIO, path: Path, fd: int) -> None:
        self.io, self.path, self.fd = io, path, fd
        self.number = int(path.stem.removeprefix("segment-"))
        self.written = 0  # frames written
        self.synced = 0  # frames covered by a completed sync
        self.rows = 0
        self.first_write: float | None = None
        self._syncing = False
        self._sync_error: BaseException | None = None
        self._condition = threading.Condition(threading.Lock())
        self.closed = False

    @classmethod
    def create(cls, io: FileIO, folder: Path) -> Segment:
        """A new segment: created and locked under a hidden name, its header synced, renamed
        into place and the folder fsynced, so recovery never sees a segment half made."""
        io.makedirs(folder)
        number = time.time_ns()
        while True:
            hidden = folder / f".segment-{number}.wal.new"
            try:
                fd = io.create(hidden)
                break
            except FileExistsError:
                number += 1
        try:
            io.write(fd, MAGIC)
            io.fdatasync(fd)
            path = folder / f"segment-{number}.wal"
            if path.exists():  # never reuse a number (it names compacted files)
                raise FileExistsError(path)
            io.replace(hidden, path)
            io.fsync_dir(folder)
        except BaseException:
            io.close(fd)
            io.unlink(hidden)
            raise
        return cls(io, path, fd)

    def write(self, frame: bytes, rows: int = 0) -> int:
        """Append a frame (the caller serializes writers); returns its sequence number."""
        with self._condition:
            if self.closed:
                raise DataError(f"{self.path}: the segment is closed")
            self.io.write(self.fd, frame)
            self.written += 1
            self.rows += rows
            self.first_write = self.first_write or time.monotonic()
            return self.written

    def sync_to(self, sequence: int) -> None:
        """Return once frame ``sequence`` is covered by an fdatasync (leader–follower)."""
        with self._condition:
            while self.synced < sequence:
                if self._syncing:
                    self._condition.wait()
                    continue
                if self.closed:
                    raise DataError(f"{self.path}: closed before frame {sequence} was synced")
                self._syncing, target = True, self.written
                self._condition.release()
                error = None
                try:
                    self.io.fdatasync(self.fd)
                except OSError as raised:
                    error = raised
                finally:
                    self._condition.acquire()
                    self._syncing = False
                    if error is None:
                        self.synced = max(self.synced, target)
                    self._condition.notify_all()
                if error is not None:
                    raise DataError(
                        f"{self.path}: cannot sync the log ({error.strerror or error}); "
                        "the records were not acknowledged"
                    ) from error

    def sync_all(self) -> None:
        self.sync_to(self.written)

    def close(self) -> None:
        with self._condition:
            if not self.closed:
                self.closed = True
                self.io.close(self.fd)


# ---------------------------------------------------------------- encoding records


def frame(kind: int, payload: bytes) -> bytes:
    """One WAL frame: length, CRC-32 of kind and payload, kind, payload.

    >>> frame(JSON_ROWS, b"{}").hex()
    '02000000991efc1c017b7d'
    """
    body = bytes([kind]) + payload
    return struct.pack("<II", len(payload), zlib.crc32(body)) + body


def read_frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The valid frames of a segment's bytes and the length of that valid prefix.

    A frame cut short or failing its checksum ends the segment (a torn tail).

    >>> frames, valid = read_frames(MAGIC + frame(JSON_ROWS, b"{}") + b"\\x07\\x00")
    >>> frames, valid
    ([(1, b'{}')], 19)
    """
    if not data.startswith(MAGIC):
        return [], 0
    frames, offset = [], len(MAGIC)
    while offset + _HEADER.size <= len(data):
        length, crc, kind = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        if end > len(data) or zlib.crc32(data[offset + 8 : end]) != crc:
            break
        frames.append((kind, data[offset + _HEADER.size : end]))
        offset = end
    return frames, offset


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch; a naive time is UTC."""
    return calendar.timegm(moment.utctimetuple()) * 1_000_000 + moment.microsecond


def _event_micros(value: Any) -> int:
    """An event time as epoch microseconds, read as ``keel.windows.utc_times`` reads it."""
    if isinstance(value, datetime):
        return _micros(value)
    if isinstance(value, date):
        return (value.toordinal() - _EPOCH_DAY) * 86_400_000_000
    if isinstance(value, np.datetime64):
        value = pa.array([value])
    elif isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SchemaError(f"{type(value).__name__}, not a time")
    else:
        value = pa.array([value])
    read = utc_times(value, "event_time")[0].value
    if read is None:
        raise SchemaError("not a time")
    return read


def _plain(name: str, value: Any) -> tuple[Any, str | None]:
    """A JSON-ready value and its tag ("us" for times, "day" for dates), or a ValueError."""
    if value is None or isinstance(value, bool | str | float):
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError as error:
                raise ValueError(f"field {name!r}: text that is not valid UTF-8") from error
        return value, None
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"field {name!r}: integer {value} outside the 64-bit range")
        return value, None
    if isinstance(value, datetime):
        if value != value:  # pandas.NaT
            return None, None
        return _micros(value), "us"
    if isinstance(value, date):
        return value.toordinal() - _EPOCH_DAY, "day"
    if isinstance(value, np.generic):
        if isinstance(value, np.datetime64):
            if np.isnat(value):
                return None, None
            return int(value.astype("datetime64[us]").astype(np.int64)), "us"
        return _plain(name, value.item())
    if isinstance(value, list | tuple | np.ndarray):
        items = [_plain(name, item)[0] for item in value]
        return items, None
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"field {name!r}: an empty mapping (Parquet cannot store it)")
        return {str(k): _plain(f"{name}.{k}", v)[0] for k, v in value.items()}, None
    raise ValueError(f"field {name!r}: {type(value).__name__} is not a value keel can log")


def check_record(record: Mapping, model: str) -> tuple[dict | None, list[str] | str]:
    """One record made ready for a JSON frame, or the reason it is refused.

    Returns ``(row, time_fields)`` or ``(None, reason)``.

    >>> check_record({"request_id": "r1", "event_time": "2026-01-05"}, "m")
    ({'request_id': 'r1', 'event_time': 1767571200000000}, ['event_time'])
    >>> check_record({"request_id": "r1", "event_time": "soon"}, "m")[1]
    "event_time: 'soon' is not a time"
    """
    request_id = record.get("request_id")
    if request_id is None:
        return None, "no request_id"
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | np.integer):
        return None, f"request_id must be text or an integer, not {type(request_id).__name__}"
    event_time = record.get("event_time")
    if event_time is None or (isinstance(event_time, float) and math.isnan(event_time)):
        return None, "no event_time"
    if "model" in record and str(record["model"]) != model:
        return None, f"another model's record (this log is {model!r})"
    row: dict[str, Any] = {}
    times = []
    try:
        for name, value in record.items():
            if not isinstance(name, str):
                return None, f"field name {name!r} is not text"
            if name == "event_time":
                row[name] = _event_micros(value)
                times.append(name)
                continue
            row[name], tag = _plain(name, value)
            if tag == "us":
                times.append(name)
            elif tag == "day":
                times.append(f"day:{name}")
    except SchemaError:
        return None, f"event_time: {event_time!r} is not a time"
    except (ValueError, OverflowError, TypeError, pa.ArrowException) as error:
        return None, f"unreadable record: {error}"
    if isinstance(row["request_id"], int) and not isinstance(request_id, int):
        row["request_id"] = int(request_id)
    return row, times


def _json_default(value: Any) -> Any:
    return str(value)


def refused_entry(record: Any, reason: str) -> dict:
    """A rejected record kept whole (as JSON text) with its reason."""
    request_id = record.get("request_id") if isinstance(record, Mapping) else None
    try:
        text = json.dumps(
            dict(record) if isinstance(record, Mapping) else record, default=_json_default
        )
    except (TypeError, ValueError):
        text = repr(record)
    return {
        "request_id": None if request_id is None else str(request_id),
        "record": text.encode("utf-8", "backslashreplace").decode(),
        "reason": reason,
    }


def encode_records(records: list[Mapping], model: str) -> tuple[bytes, int, int]:
    """Frames for a list of records: the accepted ones in one JSON frame, the refused in
    another. Returns ``(frames, accepted, rejected)``."""
    rows, times, refused = [], set(), []
    now = _micros(datetime.now(UTC))
    for record in records:
        if not isinstance(record, Mapping):
            refused.append(refused_entry({"value": repr(record)}, "not a record (a mapping)"))
            continue
        row, tagged = check_record(record, model)
        if row is None:
            refused.append(refused_entry(record, tagged))
            continue
        row["_ingested_at"] = now
        rows.append(row)
        times.update(tagged)
    out = b""
    if rows:
        payload = json.dumps({"rows": rows, "us": sorted({*times, "_ingested_at"})})
        out += frame(JSON_ROWS, payload.encode())
    if refused:
        out += frame(JSON_REJECTED, json.dumps({"rejected": refused, "at": now}).encode())
    return out, len(rows), len(refused)


def arrow_frame(kind: int, table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return frame(kind, sink.getvalue().to_pybytes())


# ---------------------------------------------------------------- decoding and compaction


def _rows_table(rows: list[dict]) -> pa.Table:
    """Rows as a table with every field any row has (``pa.Table.from_pylist`` keeps only the
    first row's fields, so a field the first record lacks would be lost).

    >>> _rows_table([{"a": 1}, {"a": 2, "b": 3}]).to_pydict()
    {'a': [1, 2], 'b': [None, 3]}
    """
    names = dict.fromkeys(name for row in rows for name in row)
    return pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})


def _json_table(payloads: list[dict]) -> pa.Table:
    """Rows of JSON frames as one table; a field whose types disagree becomes text."""
    tables = []
    for group in _runs(payloads):
        rows = [row for payload in group for row in payload["rows"]]
        try:
            tables.append(_with_times(_rows_table(rows), group[0]["us"]))
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            for payload in group:
                tables.append(_with_times(_tolerant_table(payload["rows"]), payload["us"]))
    return unify(tables)


def _runs(payloads: list[dict]) -> list[list[dict]]:
    runs: list[list[dict]] = []
    for payload in payloads:
        if runs and runs[-1][0]["us"] == payload["us"]:
            runs[-1].append(payload)
        else:
            runs.append([payload])
    return runs


def _tolerant_table(rows: list[dict]) -> pa.Table:
    try:
        return _rows_table(rows)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return unify([pa.Table.from_pylist([row]) for row in rows])


def _with_times(table: pa.Table, tagged: list[str]) -> pa.Table:
    for tag in tagged:
        name = tag.removeprefix("day:")
        if name not in table.column_names:
            continue
        index = table.schema.get_field_index(name)
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_null(column.type)):
            continue
        if tag.startswith("day:"):
            column = pc.cast(pc.cast(column, pa.int32()), pa.date32())
        else:
            column = pc.cast(pc.cast(column, pa.int64()), pa.timestamp("us", tz="UTC"))
        table = table.set_column(index, name, column)
    return table


def unify(tables: list[pa.Table]) -> pa.Table:
    """Concatenate tables whose columns may differ; a column of clashing types becomes text.

    >>> unify([pa.table({"x": [1]}), pa.table({"x": ["a"]})]).column("x").to_pylist()
    ['1', 'a']
    """
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    kinds: dict[str, set] = {}
    for table in tables:
        for field in table.schema:
            if not pa.types.is_null(field.type):
                kinds.setdefault(field.name, set()).add(field.type)
    clashing = {name for name, seen in kinds.items() if len(seen) > 1}
    fixed = []
    for table in tables:
        for name in clashing & set(table.column_names):
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, _as_text(table.column(name)))
        fixed.append(table)
    return pa.concat_tables(fixed, promote_options="permissive")


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, pa.string())])


def _ipc_table(payload: bytes) -> pa.Table:
    return ipc.open_stream(pa.py_buffer(payload)).read_all()


def _rejected_json_table(payloads: list[dict]) -> pa.Table:
    entries = [(entry, payload["at"]) for payload in payloads for entry in payload["rejected"]]
    return pa.table(
        {
            "request_id": pa.array([e["request_id"] for e, _ in entries], pa.string()),
            "event_time": pa.nulls(len(entries), pa.timestamp("us", tz="UTC")),
            "_record": pa.array([e["record"] for e, _ in entries], pa.string()),
            "_rejected_because": pa.array([e["reason"] for e, _ in entries], pa.string()),
            "_ingested_at": pc.cast(
                pa.array([at for _, at in entries], pa.int64()), pa.timestamp("us", tz="UTC")
            ),
        }
    )


def decode(frames: list[tuple[int, bytes]]) -> tuple[pa.Table, pa.Table]:
    """A segment's frames as (accepted rows, rejected rows), in the order they were written."""
    accepted: list[pa.Table] = []
    rejected: list[pa.Table] = []
    pending_json: list[dict] = []
    pending_refused: list[dict] = []
    for kind, payload in frames:
        if kind == JSON_ROWS:
            pending_json.append(json.loads(payload))
            continue
        if pending_json:  # keep arrival order between JSON and Arrow frames
            accepted.append(_json_table(pending_json))
            pending_json = []
        if kind == ARROW_ROWS:
            accepted.append(_ipc_table(payload))
        elif kind == JSON_REJECTED:
            pending_refused.append(json.loads(payload))
        elif kind == ARROW_REJECTED:
            rejected.append(_ipc_table(payload))
    if pending_json:
        accepted.append(_json_table(pending_json))
    if pending_refused:
        rejected.append(_rejected_json_table(pending_refused))
    return unify(accepted), unify(rejected)


def deduplicate(table: pa.Table) -> pa.Table:
    """One row per (request id, model version, role): the last written, in written order.

    >>> t = pa.table({"request_id": ["a", "b", "a"], "x": [1, 2, 3]})
    >>> deduplicate(t).to_pydict()
    {'request_id': ['b', 'a'], 'x': [2, 3]}
    """
    if table.num_rows < 2:
        return table
    keys = [name for name in DEDUP_KEY if name in table.column_names]
    position = pa.array(np.arange(table.num_rows, dtype=np.int64))
    keyed = pa.table({**{f"k{i}": table.column(k) for i, k in enumerate(keys)}, "_p": position})
    try:
        last = keyed.group_by([f"k{i}" for i in range(len(keys))], use_threads=False).aggregate(
            [("_p", "max")]
        )
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # keys of a type Arrow cannot group
        return table
    kept = np.sort(last.column("_p_max").to_numpy())
    if len(kept) == table.num_rows:
        return table
    return table.take(pa.array(kept))


def _by_day(table: pa.Table) -> list[tuple[str, pa.Table]]:
    days = pc.strftime(table.column("event_time"), format="%Y-%m-%d").fill_null("unknown")
    order = pc.sort_indices(days, sort_keys=[("", "ascending")])  # stable: arrival order kept
    table, days = table.take(order), days.take(order)
    if isinstance(days, pa.ChunkedArray):
        days = days.combine_chunks()
    runs = pc.run_end_encode(days)
    ends = runs.run_ends.to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], ends[:-1]])
    return [
        (day, table.slice(int(start), int(end - start)))
        for day, start, end in zip(runs.values.to_pylist(), starts, ends, strict=True)
    ]


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as Parquet bytes (with page checksums). A nested column Parquet cannot store
    (a struct with no fields, say) is kept as JSON text rather than failing the write."""
    sink = pa.BufferOutputStream()
    try:
        pq.write_table(table, sink, write_page_checksum=True)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        for index, field in enumerate(table.schema):
            if pa.types.is_nested(field.type) or pa.types.is_null(field.type):
                table = table.set_column(index, field.name, _as_text(table.column(index)))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, write_page_checksum=True)
    return sink.getvalue().to_pybytes()


def compact_segment(
    io: FileIO, root: str | Path, kind: str, model: str, path: Path, fd: int
) -> dict[str, int]:
    """Write a sealed, locked segment's records as Parquet, then delete the segment.

    Returns ``{"accepted": rows written, "rejected": rows set apart, "torn": bytes cut}``.
    """
    data = io.read(fd)
    frames, valid = read_frames(data)
    accepted, rejected = decode(frames)
    accepted = deduplicate(accepted)
    tombstones = read_tombstones(root, model)
    forgotten = 0
    if tombstones:  # rows of a forgotten entity logged before its tombstone never reach Parquet
        accepted, forgotten = drop_forgotten(accepted, tombstones)
        rejected, _ = drop_forgotten(rejected, tombstones)
    number = path.stem.removeprefix("segment-")
    written = {"accepted": accepted.num_rows, "rejected": rejected.num_rows, "forgotten": forgotten}
    root = Path(root)
    for day, part in _by_day(accepted) if accepted.num_rows else []:
        folder = root / kind / f"model={model}" / f"date={day}"
        io.makedirs(folder)
        io.write_file(folder / f"part-wal-{number}.parquet", parquet_bytes(part))
    for day, part in _by_day(rejected) if rejected.num_rows else []:
        folder = root / "rejected" / f"model={model}" / f"date={day}"
        io.makedirs(folder)
        io.write_file(folder / f"part-wal-{kind}-{number}.parquet", parquet_bytes(part))
    io.unlink(path)
    io.fsync_dir(path.parent)
    written["torn"] = len(data) - valid if data.startswith(MAGIC) else len(data)
    return written


def recover(root: str | Path, kind: str, model: str, io: FileIO | None = None) -> dict[str, int]:
    """Compact every segment of a model's WAL that no live writer holds (after a crash).

    Returns the rows compacted, accepted and rejected, the segments, and torn bytes cut.
    """
    io = io or FileIO()
    folder = wal_folder(root, kind, model)
    totals = {"segments": 0, "accepted": 0, "rejected": 0, "torn": 0, "forgotten": 0}
    if not folder.is_dir():
        return totals
    for stale in sorted(folder.glob(".segment-*.wal.new")):  # creation never finished
        fd = io.open_locked(stale)
        if fd is not None:
            io.unlink(stale)
            io.close(fd)
    for path in sorted(folder.glob("segment-*.wal")):
        fd = io.open_locked(path)
        if fd is None:
            continue  # a live writer's
        try:
            counts = compact_segment(io, root, kind, model, path, fd)
        finally:
            io.close(fd)
        totals["segments"] += 1
        for key in ("accepted", "rejected", "torn", "forgotten"):
            totals[key] += counts[key]
    return totals


# ---------------------------------------------------------------- tombstones (forgetting)

TOMBSTONE_FORMAT = "keel.tombstone"
TOMBSTONE_VERSION = 1


def tombstone_folder(root: str | Path, model: str) -> Path:
    """Where a model's tombstones live (a shadow log ``NAME.shadow`` shares ``NAME``'s).

    >>> tombstone_folder("/logs", "loans.shadow").as_posix()
    '/logs/tombstones/model=loans'
    """
    return Path(root) / "tombstones" / f"model={model.removesuffix('.shadow')}"


def read_tombstones(root: str | Path, model: str) -> list[dict]:
    """Every tombstone of a model (of ``NAME`` for ``NAME.shadow``), oldest first, each with
    ``done`` (its rewrite finished) and ``path``. A tombstone of a newer format is refused:
    ignoring it would show rows someone asked to forget.

    >>> read_tombstones("/nonexistent", "loans")
    []
    """
    folder = tombstone_folder(root, model)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("tombstone-*.json")):
        try:
            tombstone = json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: unreadable tombstone ({error})") from error
        if tombstone.get("format") != TOMBSTONE_FORMAT or not isinstance(
            tombstone.get("version"), int
        ):
            raise DataError(f"{path}: not a keel tombstone")
        if tombstone["version"] > TOMBSTONE_VERSION:
            raise DataError(
                f"{path}: tombstone format version {tombstone['version']} is newer than this "
                f"keel reads ({TOMBSTONE_VERSION}); upgrade keel"
            )
        tombstone["path"] = path
        tombstone["done"] = path.with_suffix(".done").exists()
        found.append(tombstone)
    return found


def forgotten_mask(table: pa.Table, tombstones: list[dict]) -> pa.Array:
    """True for each row a tombstone forgets: its entity column (or, for rows without it, its
    request id) names a forgotten value, and it was ingested no later than the tombstone.

    >>> import datetime as dt
    >>> t = pa.table({"request_id": ["a", "b", "c"], "customer": [7, 8, 7],
    ...     "_ingested_at": pa.array([dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1),
    ...                               dt.datetime(2026, 3, 1)], pa.timestamp("us", tz="UTC"))})
    >>> stone = {"column": "customer", "values": ["7"], "request_ids": [],
    ...          "created_us": _micros(dt.datetime(2026, 2, 1))}
    >>> forgotten_mask(t, [stone]).to_pylist()
    [True, False, False]
    """
    rows = table.num_rows
    mask = pa.array(np.zeros(rows, dtype=bool))
    if rows == 0:
        return mask
    ingested = None
    if "_ingested_at" in table.column_names:
        ingested = pc.cast(table.column("_ingested_at"), pa.timestamp("us", tz="UTC"))
    record_text = None
    if "_record" in table.column_names:  # a rejected record kept whole as JSON text
        record_text = pc.cast(table.column("_record"), pa.string())
    for tombstone in tombstones:
        hit = pa.array(np.zeros(rows, dtype=bool))
        column, values = tombstone["column"], [str(v) for v in tombstone["values"]]
        if column in table.column_names and values:
            hit = pc.or_(hit, _matches(table.column(column), values))
        if record_text is not None and values:
            pattern = (
                f'"{re.escape(column)}": "?(?:' + "|".join(re.escape(v) for v in values) + ')"?[,}]'
            )
            hit = pc.or_(hit, pc.fill_null(pc.match_substring_regex(record_text, pattern), False))
        if tombstone.get("request_ids") and "request_id" in table.column_names:
            hit = pc.or_(hit, _matches(table.column("request_id"), tombstone["request_ids"]))
        if ingested is not None:
            limit = pa.scalar(int(tombstone["created_us"]), pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            )
            hit = pc.and_(hit, pc.fill_null(pc.less_equal(ingested, limit), True))
        mask = pc.or_(mask, hit)
    return mask


def _matches(column: pa.ChunkedArray, values: list[str]) -> pa.Array:
    try:
        text = pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array(np.zeros(len(column), dtype=bool))
    return pc.fill_null(pc.is_in(text, value_set=pa.array(values, pa.string())), False)


def drop_forgotten(table: pa.Table, tombstones: list[dict]) -> tuple[pa.Table, int]:
    """The table without the rows the tombstones forget, and how many were dropped."""
    if not tombstones or table.num_rows == 0:
        return table, 0
    mask = forgotten_mask(table, tombstones)
    dropped = int(pc.sum(mask).as_py() or 0)
    return (table.filter(pc.invert(mask)), dropped) if dropped else (table, 0)
