"""Prediction and label logs: a write-ahead log, compacted into partitioned Parquet.

Layout (see docs/formats.md)::

    ROOT/wal/<kind>/model=NAME/segment-<n>.wal           (keel.store.wal)
    ROOT/predictions/model=NAME/date=YYYY-MM-DD/part-*.parquet
    ROOT/labels/model=NAME/date=YYYY-MM-DD/part-*.parquet
    ROOT/rejected/model=NAME/date=YYYY-MM-DD/part-*.parquet

A ``LogWriter`` checks each record when it is appended and writes it to its
WAL segment at once: in ``durable`` mode (the default) ``append`` returns
only after the ``fdatasync`` covering the record, so a record it counted as
accepted survives a crash or a power cut; in ``fast`` mode it returns as soon
as the record is in the file (a killed process loses nothing) and syncs every
``flush_ms`` (a power cut loses at most that window). A refused record (no
request id, no event time, another model's, values keel cannot read) is
written to ``rejected`` with its reason, alone: it never affects the records
around it. The segment is compacted into Parquet — one file per event-time
UTC day, which readers see from then on — when it holds ``flush_rows`` rows,
when ``flush_seconds`` have passed since its first record (checked at each
append), on ``flush()``, on ``close()`` and at interpreter exit. Whatever a
crash leaves in the WAL is compacted when a writer next opens the log.

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
import json
import os
import shutil
import sys
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from keel.errors import ConfigError, DataError, KeelError, SchemaError
from keel.store.wal import (
    ARROW_REJECTED,
    ARROW_ROWS,
    MAGIC,
    TOMBSTONE_FORMAT,
    TOMBSTONE_VERSION,
    FileIO,
    Segment,
    _micros,
    arrow_frame,
    compact_segment,
    drop_forgotten,
    encode_records,
    forgotten_mask,
    parquet_bytes,
    read_tombstones,
    recover,
    tombstone_folder,
    wal_folder,
)
from keel.windows import utc_times

KINDS = ("predictions", "labels")
MODES = ("durable", "fast")
#: Rows buffered per flush when a whole file is ingested (one Parquet file per day per flush).
FILE_FLUSH_ROWS = 1_000_000
REQUIRED = ("request_id", "event_time")
_WRITERS: weakref.WeakSet = weakref.WeakSet()


class LogWriter:
    """Appends log records to a WAL and compacts it into Parquet (see the module docstring).

    ``mode``: ``"durable"`` (an append returns after the sync that covers it) or
    ``"fast"`` (it returns at once; ``loss_window`` seconds of acknowledged records
    can be lost to a power cut, none to a killed process). Safe to share between
    threads: concurrent durable appends share their syncs (group commit).
    """

    def __init__(
        self,
        root: str | Path,
        kind: str,
        model: str,
        flush_rows: int = 50_000,
        flush_seconds: float = 5.0,
        mode: str = "durable",
        flush_ms: float = 100.0,
        io: FileIO | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"log kind {kind!r}: one of {KINDS}")
        if not model or "/" in model or model.startswith("."):
            raise ConfigError(f"model name {model!r} cannot name a folder")
        if mode not in MODES:
            raise ConfigError(f"log mode {mode!r}: one of {MODES}")
        self.root, self.kind, self.model = Path(root), kind, model
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.mode, self.flush_ms = mode, flush_ms
        self.io = io or FileIO()
        self.accepted = self.rejected = 0
        self._lock = threading.Lock()  # the open segment: its writes and its swap
        self._flush_lock = threading.Lock()
        self._segment: Segment | None = None
        self._sealed: list[Segment] = []
        self._sync_error: DataError | None = None
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        try:
            recover_staged(self.root, self.io)
            self.recovered = recover(self.root, kind, model, self.io)
            finish_forgetting(self.root, model, self.io)  # a forget a crash interrupted
        except OSError as error:
            raise DataError(
                f"{wal_folder(self.root, kind, model)}: cannot recover the log "
                f"({error.strerror or error})"
            ) from error
        _warm_exit_path()
        _WRITERS.add(self)

    @property
    def loss_window(self) -> float:
        """Seconds of acknowledged records a power cut can lose: 0 when durable."""
        return 0.0 if self.mode == "durable" else self.flush_ms / 1000

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, records: Any) -> int:
        """Log rows (one dict, a list of dicts, a DataFrame or an Arrow table).

        Returns the rows accepted: written to the WAL (and, when durable, synced)
        before this returns. The others are written to ``rejected`` with their
        reason. Raises ``DataError`` when the log cannot be written; then nothing
        of this call was acknowledged.
        """
        return self.append_encoded(*self.encode(records))

    def encode(self, records: Any) -> tuple[bytes, int, int]:
        """``(frames, accepted, rejected)``: records made into WAL frames, for
        ``append_encoded``; a writer shared by threads lets each encode its own records
        (the group committer then only writes and syncs).

        >>> import tempfile
        >>> writer = LogWriter(tempfile.mkdtemp(), "predictions", "m")
        >>> encoded = writer.encode([{"request_id": 1, "event_time": "2026-01-01"}, {"x": 2}])
        >>> encoded[1:], writer.append_encoded(*encoded)
        ((1, 1), 1)
        >>> writer.close()
        """
        return self._encode(records)

    def append_encoded(self, frames: bytes, accepted: int, rejected: int) -> int:
        """Write frames from ``encode`` (several calls' frames may be joined, their counts
        added); returns ``accepted`` once written (and, when durable, synced)."""
        if not frames:
            return 0
        if self._sync_error is not None:
            error, self._sync_error = self._sync_error, None
            raise error
        with self._lock:
            if self._segment is None:
                self._segment = self._new_segment()
            segment = self._segment
            try:
                sequence = segment.write(frames, accepted + rejected)
            except OSError as error:
                self._abandon(segment)
                raise DataError(
                    f"{segment.path}: cannot write the log ({error.strerror or error}); "
                    "nothing of this call was acknowledged"
                ) from error
            due = (
                segment.rows >= self.flush_rows
                or time.monotonic() - (segment.first_write or 0) >= self.flush_seconds
            )
        if self.mode == "durable":
            try:
                segment.sync_to(sequence)
            except DataError:
                with self._lock:
                    self._abandon(segment)
                raise
        with self._lock:
            self.accepted += accepted
            self.rejected += rejected
        if due:
            self._flush_quietly()
        return accepted

    def _encode(self, records: Any) -> tuple[bytes, int, int]:
        if self.kind == "labels":
            records = label_times(records)
        if isinstance(records, Mapping):
            return encode_records([records], self.model)
        if isinstance(records, pa.RecordBatch):
            records = pa.Table.from_batches([records])
        is_frame = hasattr(records, "columns") and type(records).__module__.startswith("pandas")
        if not isinstance(records, pa.Table) and not is_frame:
            if isinstance(records, Iterable) and not isinstance(records, str | bytes):
                return encode_records(list(records), self.model)
            raise DataError(
                f"cannot log {type(records).__name__}: give dicts, a DataFrame or a Table"
            )
        try:
            table = _as_table(records)
        except (pa.ArrowException, TypeError, ValueError) as error:
            if hasattr(records, "to_dict"):  # a DataFrame Arrow cannot convert whole
                return encode_records(records.to_dict("records"), self.model)
            raise DataError(f"cannot log these records: {error}") from error
        if table.num_rows == 0:
            return b"", 0, 0
        try:
            table = _stamp(table)
        except DataError:  # an event time Arrow cannot read: check the records one by one
            return encode_records(table.to_pylist(), self.model)
        accepted, rejected = _check(table, self.model)
        frames = b""
        if accepted.num_rows:
            frames += arrow_frame(ARROW_ROWS, accepted)
        if rejected.num_rows:
            frames += arrow_frame(ARROW_REJECTED, rejected)
        return frames, accepted.num_rows, rejected.num_rows

    def _new_segment(self) -> Segment:
        try:
            segment = Segment.create(self.io, wal_folder(self.root, self.kind, self.model))
        except OSError as error:
            raise DataError(
                f"{wal_folder(self.root, self.kind, self.model)}: cannot write the log "
                f"({error.strerror or error}); nothing of this call was acknowledged"
            ) from error
        if self.mode == "fast" and self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_loop, daemon=True)
            self._syncer.start()
        return segment

    def _abandon(self, segment: Segment) -> None:
        """A segment a write or sync failed on takes no more frames (caller holds the lock)."""
        if self._segment is segment:
            self._segment = None
            self._sealed.append(segment)

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.flush_ms / 1000):
            segment = self._segment
            if segment is not None and segment.synced < segment.written:
                try:
                    segment.sync_all()
                except DataError as error:  # said at the next append, never dropped
                    self._sync_error = error

    def flush(self) -> int:
        """Compact everything written so far into Parquet; returns the rows written."""
        with self._flush_lock:
            with self._lock:
                segment, self._segment = self._segment, None
                if segment is not None:
                    self._sealed.append(segment)
            written = 0
            for sealed in list(self._sealed):
                try:
                    if not sealed.closed:
                        sealed.sync_all()
                    counts = compact_segment(
                        self.io, self.root, self.kind, self.model, sealed.path, sealed.fd
                    )
                except OSError as error:
                    raise DataError(
                        f"{self.root / self.kind}: cannot write the log ({error.strerror or error})"
                        f"; the records stay in {sealed.path} and are written when a writer "
                        "next opens this log"
                    ) from error
                sealed.close()
                self._sealed.remove(sealed)
                written += counts["accepted"]
            return written

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except DataError as error:  # the records are safe in the WAL; said, not raised
            warnings.warn(str(error), stacklevel=3)

    def close(self) -> None:
        self._stop.set()
        self.flush()
        for sealed in self._sealed:
            sealed.close()
        _WRITERS.discard(self)


def ingest_file(
    source: Any,
    root: str | Path,
    kind: str,
    model: str,
    names: Mapping[str, str] | None = None,
    flush_rows: int = FILE_FLUSH_ROWS,
    io: FileIO | None = None,
) -> dict[str, int]:
    """Log a whole file (or folder, table, DataFrame) all or nothing.

    Its rows are checked and written as Parquet into a staging folder under
    ``ROOT/.staging/``; only when the whole source has been read are they
    committed (a manifest is written and synced, then every file is renamed
    into the log). A source that fails midway — a CSV row that does not parse,
    a corrupted Parquet page — leaves nothing in the log and raises DataError
    naming the file. ``names`` renames columns (``{"id": "request_id"}``).
    Returns ``{"accepted": rows logged, "rejected": rows set apart}``.

    >>> import tempfile, pandas as pd
    >>> root = tempfile.mkdtemp()
    >>> frame = pd.DataFrame({"id": ["a", "b", None], "event_time": ["2026-01-05"] * 3})
    >>> ingest_file(frame, root, "labels", "loans", names={"id": "request_id"})
    {'accepted': 2, 'rejected': 1}
    >>> from keel.store.queries import read_log
    >>> read_log(root, "labels", "loans").column("request_id").to_pylist()
    ['a', 'b']
    """
    from keel.data import open_source

    if kind not in KINDS:
        raise ConfigError(f"log kind {kind!r}: one of {KINDS}")
    if not model or "/" in model or model.startswith("."):
        raise ConfigError(f"model name {model!r} cannot name a folder")
    io, root, names = io or FileIO(), Path(root), dict(names or {})
    try:
        recover_staged(root, io)
    except OSError as error:
        raise DataError(
            f"{root}: cannot recover staged ingests ({error.strerror or error})"
        ) from error
    staging = root / ".staging" / uuid.uuid4().hex
    counts = {"accepted": 0, "rejected": 0}
    staged: list[str] = []
    buffered: list[pa.Table] = []
    rejected: list[pa.Table] = []
    rows = 0
    name = getattr(source, "name", None) or str(source)

    def stage() -> None:
        for bucket, folder_kind in ((buffered, kind), (rejected, "rejected")):
            if not bucket:
                continue
            table = pa.concat_tables(bucket, promote_options="permissive")
            bucket.clear()
            for day, part in _days(table):
                relative = (
                    f"{folder_kind}/model={model}/date={day}/"
                    f"part-ingest-{staging.name}-{len(staged)}.parquet"
                )
                target = staging / relative
                io.makedirs(target.parent)
                io.write_file(target, parquet_bytes(part))
                staged.append(relative)

    try:
        opened = open_source(source)
        name = opened.name
        for batch in opened.batches():
            table = pa.Table.from_batches([batch])
            table = table.rename_columns([names.get(c, c) for c in table.column_names])
            if kind == "labels":
                table = label_times(table)
            table = _stamp(table)
            good, bad = _check(table, model)
            counts["accepted"] += good.num_rows
            counts["rejected"] += bad.num_rows
            if good.num_rows:
                buffered.append(good)
            if bad.num_rows:
                rejected.append(bad)
            rows += table.num_rows
            if rows >= flush_rows:
                stage()
                rows = 0
        stage()
        io.write_file(staging / "COMMIT", json.dumps(staged).encode())
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, KeelError):
            raise
        if isinstance(error, OSError | pa.ArrowException):
            raise DataError(f"{name}: not ingested, nothing was logged ({error})") from error
        raise
    _finish_commit(staging, root, io)
    return counts


def recover_staged(root: str | Path, io: FileIO | None = None) -> int:
    """Finish the commits a crash interrupted and drop staged ingests never committed.

    Returns the staged ingests finished.
    """
    io, folder = io or FileIO(), Path(root) / ".staging"
    finished = 0
    if not folder.is_dir():
        return 0
    for staging in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (staging / "COMMIT").is_file():
            _finish_commit(staging, Path(root), io)
            finished += 1
        elif time.time() - staging.stat().st_mtime > 3600:  # abandoned, not in progress
            shutil.rmtree(staging, ignore_errors=True)
    return finished


def _finish_commit(staging: Path, root: Path, io: FileIO) -> None:
    for relative in json.loads((staging / "COMMIT").read_bytes()):
        source, target = staging / relative, root / relative
        if not source.exists():
            continue  # moved before a crash
        io.makedirs(target.parent)
        io.replace(source, target)
        io.fsync_dir(target.parent)
    shutil.rmtree(staging, ignore_errors=True)


def _days(table: pa.Table) -> list[tuple[str, pa.Table]]:
    from keel.store.wal import _by_day

    return _by_day(table)


def compact(root: str | Path, kind: str, model: str) -> int:
    """Merge each day's small files into one; returns the files removed.

    A forget a crash interrupted is finished first (``finish_forgetting``).
    """
    finish_forgetting(root, model)
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


def forget(
    root: str | Path,
    model: str,
    entity_column: str,
    values: Iterable[Any],
    actor: str | None = None,
    io: FileIO | None = None,
) -> dict[str, int]:
    """Forget what was logged about some entities: a tombstone, then every file rewritten.

    Writes a durable tombstone (``ROOT/tombstones/model=NAME/``, docs/formats.md,
    "Tombstones") naming the model, ``entity_column`` and ``values`` (compared as text),
    then rewrites every Parquet file of the model's prediction, label, shadow
    (``NAME.shadow``) and rejected logs that holds such rows without them (each file
    atomically: a hidden file, fsync, rename) and compacts, without them, every WAL segment
    no live writer holds (this process's open writers are flushed first). Labels are
    matched by the column when they carry it, else by the request ids of the forgotten
    predictions (kept in the tombstone). Rows logged after the tombstone are kept. Until
    the rewrite finishes (a crash mid-way) reads hide those rows, and the next compaction
    or writer finishes it; another process's live segment is cleaned when it is compacted.
    Returns the rows removed per log and ``pending_segments`` (live elsewhere).

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> with LogWriter(root, "predictions", model="loans") as writer:
    ...     writer.append([{"request_id": f"r{i}", "event_time": "2026-01-05", "customer": c}
    ...                    for i, c in enumerate(["ann", "bob", "ann"])])
    3
    >>> forget(root, "loans", "customer", ["ann"], actor="ada")["predictions"]
    2
    >>> from keel.store.queries import read_log
    >>> read_log(root, "predictions", "loans").column("customer").to_pylist()
    ['bob']
    """
    io, root = io or FileIO(), Path(root)
    values = [str(v) for v in values]
    if not entity_column or not values:
        raise ConfigError("forget needs an entity column and at least one value")
    if not model or "/" in model or model.startswith(".") or model.endswith(".shadow"):
        raise ConfigError(f"model name {model!r}: name the model (its shadow log goes with it)")
    logged = (model, f"{model}.shadow")
    for writer in list(_WRITERS):  # this process's open segments become Parquet first
        if Path(writer.root).resolve() == root.resolve() and writer.model in logged:
            writer.flush()
    for kind in KINDS:
        for name in logged:
            recover(root, kind, name, io)
    request_ids = _forgotten_ids(root, logged, entity_column, values)
    write_tombstone(root, model, entity_column, values, actor, request_ids, io)
    return finish_forgetting(root, model, io)


def write_tombstone(
    root: str | Path,
    model: str,
    entity_column: str,
    values: Iterable[Any],
    actor: str | None = None,
    request_ids: Iterable[Any] = (),
    io: FileIO | None = None,
) -> Path:
    """Write a tombstone durably (hidden file, fsync, rename, folder fsync); returns its path.

    From then on reads hide the rows it names; ``finish_forgetting`` rewrites the files.

    >>> import tempfile, json
    >>> path = write_tombstone(tempfile.mkdtemp(), "loans", "customer", [7], actor="ada")
    >>> json.loads(path.read_bytes())["values"]
    ['7']
    """
    io = io or FileIO()
    created = datetime.now(UTC)
    identifier = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
    body = {
        "format": TOMBSTONE_FORMAT,
        "version": TOMBSTONE_VERSION,
        "id": identifier,
        "model": model,
        "column": entity_column,
        "values": [str(v) for v in values],
        "request_ids": sorted({str(r) for r in request_ids}),
        "actor": actor,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "created_us": _micros(created),
    }
    folder = tombstone_folder(root, model)
    try:
        io.makedirs(folder)
        path = folder / f"tombstone-{identifier}.json"
        io.write_file(path, json.dumps(body, indent=1).encode())
    except OSError as error:
        raise DataError(
            f"{folder}: cannot write the tombstone ({error.strerror or error})"
        ) from error
    return path


def finish_forgetting(root: str | Path, model: str, io: FileIO | None = None) -> dict[str, int]:
    """Rewrite every file of a model's logs that still holds rows a tombstone forgets (every
    tombstone applies; those not yet finished are marked done). Returns the rows removed per
    log (``predictions``, ``labels``, ``shadow``, ``rejected``) and ``pending_segments``:
    WAL segments a live writer holds, cleaned when that writer compacts them.

    >>> import tempfile
    >>> finish_forgetting(tempfile.mkdtemp(), "loans")["predictions"]
    0
    """
    io, root = io or FileIO(), Path(root)
    base = model.removesuffix(".shadow")
    counts = {"predictions": 0, "labels": 0, "shadow": 0, "rejected": 0, "pending_segments": 0}
    tombstones = read_tombstones(root, base)
    if not any(not t["done"] for t in tombstones):
        return counts
    logs = [
        ("predictions", base, "predictions"),
        ("labels", base, "labels"),
        ("predictions", f"{base}.shadow", "shadow"),
        ("labels", f"{base}.shadow", "shadow"),
        ("rejected", base, "rejected"),
        ("rejected", f"{base}.shadow", "rejected"),
    ]
    for kind, name, counted in logs:
        for path in sorted((root / kind / f"model={name}").glob("date=*/part-*.parquet")):
            counts[counted] += _rewrite_without(path, tombstones, io)
    for kind in KINDS:
        for name in (base, f"{base}.shadow"):
            recovered = recover(root, kind, name, io)  # without the rows, unless live elsewhere
            counts["shadow" if name != base else kind] += recovered["forgotten"]
            counts["pending_segments"] += len(list(wal_folder(root, kind, name).glob("seg*.wal")))
    for tombstone in tombstones:
        if not tombstone["done"]:
            io.write_file(tombstone["path"].with_suffix(".done"), b"")
    return counts


def _rewrite_without(path: Path, tombstones: list[dict], io: FileIO) -> int:
    """Rewrite one Parquet file without the forgotten rows (removed when none is left)."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        return 0  # merged away meanwhile
    kept, dropped = drop_forgotten(table, tombstones)
    if not dropped:
        return 0
    try:
        if kept.num_rows:
            io.write_file(path, parquet_bytes(kept))
        else:
            io.unlink(path)
            io.fsync_dir(path.parent)
    except OSError as error:
        raise DataError(f"{path}: cannot rewrite without the forgotten rows ({error})") from error
    return dropped


def _forgotten_ids(root: Path, logged: tuple[str, ...], column: str, values: list[str]) -> list:
    """The request ids of the prediction rows (and shadows) whose ``column`` is one of
    ``values``: their labels are forgotten too, whether or not they carry the column."""
    stone = [{"column": column, "values": values, "request_ids": [], "created_us": 2**62}]
    ids: set = set()
    for name in logged:
        for path in sorted((root / "predictions" / f"model={name}").glob("date=*/part-*.parquet")):
            names = pq.read_schema(path).names
            if column not in names or "request_id" not in names:
                continue
            table = pq.read_table(path, columns=["request_id", column])
            hit = table.filter(forgotten_mask(table, stone))
            ids.update(pc.unique(pc.cast(hit.column("request_id"), pa.string())).to_pylist())
    return sorted(ids)


def _as_table(records: Any) -> pa.Table:
    if isinstance(records, pa.Table):
        return records
    if hasattr(records, "columns") and type(records).__module__.startswith("pandas"):
        return pa.Table.from_pandas(records, preserve_index=False)
    if isinstance(records, Iterable):
        rows = list(records)
        return pa.Table.from_pylist(rows) if rows else pa.table({})
    raise DataError(f"cannot log {type(records).__name__}: give dicts, a DataFrame or a Table")


def label_times(records: Any) -> Any:
    """Labels need only a request id and the label: a label without an ``event_time``
    gets the time it is logged (when the outcome became known to keel).

    >>> label_times([{"request_id": "r1", "defaulted": 1}])[0]["event_time"].tzname()
    'UTC'
    """
    now = datetime.now(UTC)
    if isinstance(records, Mapping):
        return records if records.get("event_time") is not None else {**records, "event_time": now}
    if isinstance(records, pa.RecordBatch):
        records = pa.Table.from_batches([records])
    if isinstance(records, pa.Table):
        if "event_time" not in records.column_names:
            return records.append_column(
                "event_time", pa.array([now] * records.num_rows, pa.timestamp("us", tz="UTC"))
            )
        return records
    if hasattr(records, "columns") and type(records).__module__.startswith("pandas"):
        if "event_time" not in records.columns:
            return records.assign(event_time=now)
        return records
    if isinstance(records, Iterable) and not isinstance(records, str | bytes):
        return [label_times(r) if isinstance(r, Mapping) else r for r in records]
    return records


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


def _write_atomically(table: pa.Table, path: Path) -> None:
    """Parquet written under a hidden name, fsynced, renamed, its folder fsynced."""
    io = FileIO()
    try:
        io.makedirs(path.parent)
        io.write_file(path, parquet_bytes(table))
    except OSError as error:
        path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)
        raise DataError(
            f"{path.parent}: cannot write the log ({error.strerror or error})"
        ) from error


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_WARMED = False


def _warm_exit_path() -> None:
    """Run compaction once in memory when the first writer registers, so that everything it
    imports lazily (pyarrow's pandas shim imports pandas, which starts thread pools) is
    imported now: at interpreter exit, a first import can fail ("can't register atexit
    after shutdown")."""
    global _WARMED
    if _WARMED:
        return
    import concurrent.futures.thread  # noqa: F401 - registers its exit hook now, not at exit

    from keel.store.wal import _by_day, decode, read_frames

    sample = {"request_id": "r", "event_time": datetime(2026, 1, 1), "x": 1.0}
    frames, _, _ = encode_records([sample, {"request_id": None}], "m")
    accepted, rejected = decode(read_frames(MAGIC + frames)[0])
    for table in (
        accepted,
        rejected,
        _check(_stamp(accepted.drop_columns(["_ingested_at"])), "m")[0],
    ):
        for _, part in _by_day(table):
            parquet_bytes(part)
    _WARMED = True


@atexit.register
def _flush_all() -> None:
    """At interpreter exit, every open writer compacts its WAL. Everything this needs is
    imported with this module; a failure is said on stderr (the records stay in the WAL,
    compacted when a writer next opens the log), never swallowed."""
    for writer in list(_WRITERS):
        try:
            writer.close()
        except Exception as error:  # exit must go on, and the user must hear of it
            sys.stderr.write(
                f"keel: at exit, the {writer.kind} log of {writer.model!r} in {writer.root} "
                f"was not compacted ({type(error).__name__}: {error}); its records are kept "
                "in the WAL and compacted when a writer next opens that log\n"
            )


DEFAULT_ROOT = Path(".keel") / "logs"
_OPEN: dict[tuple[str, str, str], LogWriter] = {}


def log_root(root: str | Path | None = None) -> Path:
    """The log folder: the argument, ``KEEL_LOG_ROOT``, or ``.keel/logs`` here."""
    return Path(root or os.environ.get("KEEL_LOG_ROOT") or DEFAULT_ROOT)


def log_predictions(
    records: Any, model: str, root: str | Path | None = None, mode: str | None = None
) -> int:
    """Log prediction records (request_id, event_time, model_version, features, outputs).

    Returns the rows accepted, each written to the WAL before this returns (``mode``
    "durable", the default, or ``KEEL_LOG_MODE``: synced too; "fast": synced within
    100 ms). The others are kept under ``rejected`` with their reason. Records become
    visible to readers when the WAL is compacted: at 50,000 rows, 5 s after the first,
    at exit, or when a writer next opens the log after a crash.

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> log_predictions({"request_id": "r1", "event_time": "2026-01-05", "score": 0.7},
    ...                 model="loans", root=root)
    1
    >>> log_predictions({"request_id": None, "event_time": "2026-01-05"}, "loans", root)
    0
    """
    return _writer(root, "predictions", model, mode).append(records)


def log_labels(
    records: Any, model: str, root: str | Path | None = None, mode: str | None = None
) -> int:
    """Log labels that arrive later (request_id, event_time, label); as ``log_predictions``.

    >>> import tempfile
    >>> log_labels([{"request_id": "r1", "event_time": "2026-01-09", "label": 1}],
    ...            model="loans", root=tempfile.mkdtemp())
    1
    """
    return _writer(root, "labels", model, mode).append(records)


def _writer(root: str | Path | None, kind: str, model: str, mode: str | None) -> LogWriter:
    mode = mode or os.environ.get("KEEL_LOG_MODE") or "durable"
    key = (str(log_root(root)), kind, model, mode)
    writer = _OPEN.get(key)
    if writer is None:
        with _OPENING:
            writer = _OPEN.get(key)
            if writer is None:
                writer = _OPEN[key] = LogWriter(log_root(root), kind, model, mode=mode)
    return writer


_OPENING = threading.Lock()
