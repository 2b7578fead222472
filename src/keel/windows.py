"""Windows: cut a table into half-open [start, end) periods or row ranges, one profile each.

Three ways to cut, as a ``WindowSpec``:

* a time period (``"1h"``, ``"1D"``, ``"7D"``: any fixed pandas offset),
  aligned to the Unix epoch in UTC, so a "1D" window starts at 00:00 UTC and a
  backfill and a scheduled run produce the same window keys;
* a row count (``rows=10_000``), in the data's order;
* a number of windows (``count=10``), of equal row counts.

Each window is profiled once, in the baseline's bins, streaming: every check
then reads window profiles, never the rows again. Time windows with no rows
between the first and the last are kept (empty), since a feed that stops is
news. The last window may be incomplete (a time window whose newest event
leaves more than 10% of its span uncovered, or a row window short of its
count); ``incomplete`` keeps it, merges it into the one before, or drops it.

>>> import pandas as pd
>>> frame = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=72, freq="h", tz="UTC"),
...                       "x": range(72)})
>>> windows = cut(frame, WindowSpec.parse("1D"), timestamp="ts")
>>> [(w.start[:10], w.rows) for w in windows]
[('2026-01-01', 24), ('2026-01-02', 24), ('2026-01-03', 24)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.data import open_source
from keel.errors import ConfigError, DataError, SchemaError
from keel.profile import Profile
from keel.schema import Schema

INCOMPLETE = ("keep", "merge", "drop")
#: The most windows one call makes: a stray date decades away must not make millions.
MAX_WINDOWS = 100_000
_NO_TIME = np.iinfo(np.int64).min


@dataclass(frozen=True)
class WindowSpec:
    period: str | None = None
    rows: int | None = None
    count: int | None = None
    incomplete: str = "keep"

    def __post_init__(self) -> None:
        given = [v for v in (self.period, self.rows, self.count) if v is not None]
        if len(given) != 1:
            raise ConfigError('a window is a period ("1D"), a row count or a number of windows')
        if self.incomplete not in INCOMPLETE:
            raise ConfigError(
                f"incomplete window handling {self.incomplete!r}: one of {INCOMPLETE}"
            )
        if self.period is not None:
            _ = self.period_ns  # raises ConfigError for a period that is not a fixed length
        if (self.rows is not None and self.rows < 1) or (self.count is not None and self.count < 1):
            raise ConfigError("window rows and counts must be positive")

    @classmethod
    def parse(cls, text: str, incomplete: str = "keep") -> WindowSpec:
        """``"1D"``/``"6h"``: a period; ``"10000"`` or ``"10000rows"``: rows; ``"10windows"``."""
        text = text.strip()
        if text.isdigit() or text.endswith("rows"):
            return cls(rows=int(text.removesuffix("rows")), incomplete=incomplete)
        if text.endswith("windows"):
            return cls(count=int(text.removesuffix("windows")), incomplete=incomplete)
        return cls(period=text, incomplete=incomplete)

    @property
    def period_ns(self) -> int:
        import pandas as pd

        try:
            offset = pd.tseries.frequencies.to_offset(self.period)
            nanos = pd.Timedelta(offset).value
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"window period {self.period!r} is not a fixed length (use e.g. 1h, 1D, 7D)"
            ) from error
        if nanos <= 0:
            raise ConfigError(f"window period {self.period!r} must be positive")
        return int(nanos)

    def describe(self) -> str:
        if self.period is not None:
            return self.period
        return f"{self.rows} rows" if self.rows is not None else f"{self.count} windows"


def duration_seconds(text: str) -> float:
    """A duration written like a window period ("90s", "6h", "1D"); "0" or "0h" is none.

    >>> duration_seconds("6h"), duration_seconds("0")
    (21600.0, 0.0)
    """
    if text in ("0", "0h"):
        return 0.0
    return WindowSpec.parse(text).period_ns / 1e9


@dataclass
class Window:
    """One window: its key (ISO start and end for time windows, row offsets otherwise)."""

    start: str
    end: str
    profile: Profile
    complete: bool = True
    sample: pa.Table | None = None  # a bounded uniform sample of the window's rows

    @property
    def rows(self) -> int:
        return self.profile.rows


def cut(
    data: Any,
    spec: WindowSpec,
    schema: Schema | None = None,
    timestamp: str | None = None,
    bin_edges: Mapping[str, np.ndarray] | None = None,
    sample_size: int = 0,
) -> list[Window]:
    """Profile every window of ``data`` in one streaming pass (see the module docstring).

    ``sample_size`` keeps that many rows of each window, uniformly (for multivariate checks).
    """
    from keel.sample import RowSample

    source = open_source(data)
    schema = schema or Schema.infer(source)
    if spec.period is not None:
        timestamp = timestamp or _timestamp_column(schema)
        if timestamp not in source.schema.names:
            raise SchemaError(f"{source.name}: no column {timestamp!r} to cut time windows on")
    profiled = [n for n in schema.names if n in source.schema.names]
    schema = Schema([schema[n] for n in profiled])
    edges = {k: v for k, v in (bin_edges or {}).items() if k in schema}
    rows_per_window = spec.rows
    if spec.count is not None:
        total = source.num_rows if source.num_rows is not None else source.read_all().num_rows
        rows_per_window = max(math.ceil(total / spec.count), 1)
    windows: dict[int, Profile] = {}
    samples: dict[int, RowSample] = {}
    newest = None
    offset = 0
    for batch in source.batches(
        columns=list(dict.fromkeys([*profiled, *([timestamp] if timestamp else [])]))
    ):
        if spec.period is not None:
            keys, batch_newest = _time_keys(batch.column(timestamp), spec.period_ns, timestamp)
            newest = batch_newest if newest is None else max(newest, batch_newest or newest)
        else:
            keys = (offset + np.arange(batch.num_rows)) // rows_per_window
        offset += batch.num_rows
        for key in np.unique(keys[keys != _NO_TIME]):  # a loop over windows, not rows
            window = windows.get(int(key))
            if window is None:
                window = windows[int(key)] = Profile.empty(schema, bin_edges=edges)
            rows = batch.filter(pa.array(keys == key)).select(profiled)
            window.update(rows)
            if sample_size:
                samples.setdefault(int(key), RowSample(sample_size, seed=int(key))).update(rows)
    ordered = _finish(windows, spec, schema, edges, rows_per_window, newest)
    if sample_size:
        for window in ordered:
            window.sample = _sample_of(window, samples, spec, rows_per_window)
    return ordered


def _sample_of(window: Window, samples: dict, spec: WindowSpec, rows_per_window) -> Any:
    """The sample kept for a window, found again by its key."""
    if spec.period is not None:
        key = (
            int(datetime.fromisoformat(window.start.replace("Z", "+00:00")).timestamp() * 1e9)
            // spec.period_ns
        )
    else:
        key = int(window.start) // rows_per_window
    kept = samples.get(key)
    return kept.table() if kept is not None else None


def _finish(windows, spec, schema, edges, rows_per_window, newest) -> list[Window]:
    if not windows:
        return []
    ordered: list[Window] = []
    first, last = min(windows), max(windows)
    if last - first + 1 > MAX_WINDOWS:
        span = (
            f"{_iso(first * spec.period_ns)} to {_iso(last * spec.period_ns)}"
            if spec.period is not None
            else f"{last - first + 1} windows"
        )
        raise DataError(
            f"the data spans {span}: more than {MAX_WINDOWS:,} windows of {spec.describe()}; "
            "look for stray or placeholder times, or choose a longer window"
        )
    for key in range(first, last + 1):
        profile = windows.get(key) or Profile.empty(schema, bin_edges=edges)
        if spec.period is not None:
            size = spec.period_ns
            start, end = _iso(key * size), _iso((key + 1) * size)
            complete = key != last or newest is None or (newest - key * size) >= 0.9 * size
        else:
            start, end = str(key * rows_per_window), str(key * rows_per_window + profile.rows)
            complete = key != last or profile.rows >= rows_per_window
        ordered.append(Window(start, end, profile, complete))
    if not ordered[-1].complete and spec.incomplete != "keep":
        tail = ordered.pop()
        if spec.incomplete == "merge" and ordered:
            ordered[-1].profile.merge(tail.profile)
            ordered[-1].end = tail.end
    return ordered


def _time_keys(column: Any, size_ns: int, name: str) -> tuple[np.ndarray, int | None]:
    """Epoch-aligned window index of each row (-1 for a null time), and the newest time in ns."""
    if not (pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)):
        raise SchemaError(
            f"column {name!r} is {column.type}, not a timestamp: cannot cut time windows"
        )
    # Microseconds reach years 1 to 9999 (nanoseconds stop in 2262); finer parts are dropped.
    micros = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC"), safe=False), pa.int64())
    missing = pc.is_null(micros).to_numpy(zero_copy_only=False)
    raw = pc.fill_null(micros, 0).to_numpy(zero_copy_only=False)
    keys = np.floor_divide(raw, size_ns // 1000)
    keys[missing] = _NO_TIME
    present = raw[~missing]
    return keys, int(present.max()) * 1000 if len(present) else None


def _timestamp_column(schema: Schema) -> str:
    candidates = schema.by_role("timestamp")
    if not candidates:
        raise SchemaError("time windows need a timestamp column: name one (--timestamp COL)")
    return candidates[0].name


def _iso(nanos: int) -> str:
    return datetime.fromtimestamp(nanos / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")
