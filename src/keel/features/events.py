"""The one way events reach the features: stamp their availability, log them, update the state.

``ingest`` stamps every event's ``available_time`` with the ingesting clock (or ``now``),
appends the batch to the event log the offline engine reads, and adds it to the online
state, so that ``compute_offline`` over the log and ``OnlineFeatures.get`` agree.

The event log (format ``keel.features.events/1``, docs/formats.md) is Parquet under
``ROOT/features/events/day=YYYY-MM-DD/`` (the day of the stamp, UTC), one file per batch,
named ``<stamp µs>-<random>.parquet``; ROOT is the log root (``--root``,
``KEEL_LOG_ROOT``, or ``.keel/logs``). Each file is written under a hidden name, fsynced
and renamed, so a reader sees whole batches only. Every file holds the batch's columns
as given, its feature event-time columns and ``available_time`` as
``timestamp[us, UTC]``, and the schema metadata ``keel.format``.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from keel.errors import DataError
from keel.features._inputs import as_table, micros, moment, require
from keel.features.definition import AVAILABLE_TIME, WindowedFeature
from keel.features.online import OnlineFeatures, _clock

EVENT_LOG_FORMAT = "keel.features.events/1"
_TIME = pa.timestamp("us", tz="UTC")


def event_log(root: str | Path | None = None) -> Path:
    """The event log's folder: ``ROOT/features/events`` (ROOT as ``keel.store.logs``).

    >>> event_log("/srv/keel/logs").as_posix()
    '/srv/keel/logs/features/events'
    """
    from keel.features._inputs import log_root

    return log_root(root) / "features" / "events"


def ingest(
    events: Any,
    *,
    features: list[WindowedFeature] | WindowedFeature,
    root: str | Path | None = None,
    online: OnlineFeatures | str | bool | None = None,
    now: Any = None,
) -> int:
    """Stamp ``events`` available at ``now`` (default: the clock), log them, update the state.

    ``online``: an ``OnlineFeatures``, a store URL, None for the embedded default
    (``sqlite:///ROOT/features/online.db``), or False for the event log alone. The batch
    is refused whole, before anything is written, when it lacks a column a feature needs.
    An empty batch is a heartbeat: nothing is logged, and the online state's watermark
    moves to ``now`` (its values are current up to then: ``OnlineFeatures.get``'s
    ``__as_of``). Returns the number of events.

    >>> import pandas as pd, tempfile
    >>> from keel.features import compute_offline
    >>> root = tempfile.mkdtemp()
    >>> clicks = WindowedFeature("clicks_1h", entity="user", column=None,
    ...                          aggregation="count", window="1h")
    >>> ingest(pd.DataFrame({"user": ["a", "a"], "event_time": ["2026-03-01T09:50:00Z",
    ...        "2026-03-01T09:59:00Z"]}), features=[clicks], root=root,
    ...        now="2026-03-01T10:00:00Z")
    2
    >>> queries = pd.DataFrame({"user": ["a", "a"],
    ...                         "event_time": ["2026-03-01T10:00:00Z", "2026-03-01T10:01:00Z"]})
    >>> compute_offline([clicks], event_log(root), queries)["clicks_1h"].to_pylist()
    [0, 2]
    >>> with OnlineFeatures([clicks], default_url(root)) as state:
    ...     state.get(queries)["clicks_1h"].to_pylist()
    [0, 2]
    """
    features = [features] if isinstance(features, WindowedFeature) else list(features)
    table = as_table(events, "events")
    stamp = _clock() if now is None else moment(now)
    heartbeat = table.num_rows == 0
    if not heartbeat:
        for feature in features:
            require(table, _inputs(feature), f"the events of {feature.name!r}")
        table = _stamped(table, features, stamp)
    if online is False:
        if not heartbeat:
            _append_to_log(table, event_log(root), stamp)
        return table.num_rows
    state = online if isinstance(online, OnlineFeatures) else None
    if state is None:
        from keel.features.online import default_url

        state = OnlineFeatures(features, str(online or default_url(root)))
    try:
        if not heartbeat:
            _append_to_log(table, event_log(root), stamp)
        state.ingest(table, now=stamp)
    finally:
        if state is not online:
            state.close()
    return table.num_rows


def default_url(root: str | Path | None = None) -> str:
    from keel.features.online import default_url as url

    return url(root)


def _inputs(feature: WindowedFeature) -> list[str]:
    columns = [*feature.entities, feature.event_time]
    return columns + ([feature.column] if feature.column is not None else [])


def _stamped(table: pa.Table, features: list[WindowedFeature], stamp: int) -> pa.Table:
    """Event-time columns as timestamp[us, UTC]; ``available_time`` set to the stamp."""
    for name in dict.fromkeys(feature.event_time for feature in features):
        values, valid = micros(table[name], name)
        column = pa.array(values, pa.int64(), mask=~valid).cast(_TIME)
        table = table.set_column(table.column_names.index(name), name, column)
    stamps = pa.array(np.full(table.num_rows, stamp, dtype=np.int64)).cast(_TIME)
    if AVAILABLE_TIME in table.column_names:
        return table.set_column(table.column_names.index(AVAILABLE_TIME), AVAILABLE_TIME, stamps)
    return table.append_column(AVAILABLE_TIME, stamps)


def _append_to_log(table: pa.Table, folder: Path, stamp: int) -> Path:
    import pyarrow.parquet as pq

    from keel._files import write_atomically

    day = datetime.fromtimestamp(stamp / 1e6, UTC).strftime("%Y-%m-%d")
    partition = folder / f"day={day}"
    try:
        partition.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{partition}: cannot create the event log ({error.strerror})") from error
    metadata = dict(table.schema.metadata or {})
    metadata[b"keel.format"] = EVENT_LOG_FORMAT.encode()
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer)
    path = partition / f"{stamp:016d}-{os.urandom(6).hex()}.parquet"
    write_atomically(path, buffer.getvalue())
    return path
