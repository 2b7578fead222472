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
news.

A window is **partial** when the data starts or ends inside it: a time window
whose oldest event comes more than 10% of its span after its start (the log
or the reference began inside it) or whose newest event leaves more than 10%
of its span uncovered at its end (the data stops inside it), or a row window
short of its count. A partial window is short of rows by construction: it is
kept and checked, but never judged on volume, and calibration leaves it out of
its volume statistics (``Window.partial``). ``data_start`` and ``data_end``
say where the data truly starts and ends when the rows given are a part of it
(a monitor reads only the windows it checks; closed windows end before the
newest data). The last window is ``complete`` unless the data ends inside it;
``incomplete`` keeps it, merges it into the one before, or drops it.

Time columns are read by ``utc_times``, the same way everywhere: Arrow
timestamps (naive ones are UTC) and dates; ISO 8601 text, with or without an
offset (``2026-03-01``, ``2026-03-01 05:00``, ``2026-03-01T05:00:00Z``,
``...+02:00``; naive text is UTC); and numbers as epoch seconds, milliseconds,
microseconds or nanoseconds, told apart by size (as ``keel.schema`` recognises
them: from 10⁹, September 2001). Anything else is refused with a hint.

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
#: A window is partial when the data leaves more than this share of it uncovered at an end.
PARTIAL_SHARE = 0.1


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
    """One window: its key (ISO start and end for time windows, row offsets otherwise).

    ``partial``: the data starts or ends inside the window (see the module docstring);
    ``complete``: the data does not end inside it (only the last window can be incomplete).
    """

    start: str
    end: str
    profile: Profile
    complete: bool = True
    sample: pa.Table | None = None  # a bounded uniform sample of the window's rows
    partial: bool = False

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
    sample_seed: Any = None,
    data_start: Any = None,
    data_end: Any = None,
) -> list[Window]:
    """Profile every window of ``data`` in one streaming pass (see the module docstring).

    ``sample_size`` keeps that many rows of each window, uniformly (for multivariate checks);
    ``sample_seed(window_start)`` gives each window's sample its seed (default: the window's
    index). ``data_start``/``data_end`` (times: datetime, ISO text or epoch nanoseconds) say
    where the data starts and ends, for time windows, when ``data`` is only a part of it
    (default: its oldest and newest row).
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
    oldest = newest = None
    offset = 0
    for batch in source.batches(
        columns=list(dict.fromkeys([*profiled, *([timestamp] if timestamp else [])]))
    ):
        if spec.period is not None:
            keys, low, high = _time_keys(batch.column(timestamp), spec.period_ns, timestamp)
            if high is not None:
                newest = high if newest is None else max(newest, high)
                oldest = low if oldest is None else min(oldest, low)
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
                if int(key) not in samples:
                    seed = (
                        int(key)
                        if sample_seed is None
                        else sample_seed(_window_key(int(key), spec, rows_per_window))
                    )
                    samples[int(key)] = RowSample(sample_size, seed=seed)
                samples[int(key)].update(rows)
    if data_start is not None:
        oldest = _nanos(data_start, "data_start")
    if data_end is not None:
        newest = _nanos(data_end, "data_end")
    ordered = _finish(windows, spec, schema, edges, rows_per_window, oldest, newest)
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


def _window_key(key: int, spec: WindowSpec, rows_per_window: int | None) -> str:
    """A window's start as its Window says it: ISO time, or row offset."""
    if spec.period is not None:
        return window_key(key * spec.period_ns / 1e9)
    return str(key * rows_per_window)


def _nanos(moment: Any, name: str) -> int:
    """Epoch nanoseconds of a datetime, ISO text or number of nanoseconds."""
    import pandas as pd

    if isinstance(moment, int | np.integer):
        return int(moment)
    try:
        stamp = pd.Timestamp(moment)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{name} {moment!r} is not a time") from error
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return int(stamp.value)


def _finish(windows, spec, schema, edges, rows_per_window, oldest, newest) -> list[Window]:
    if not windows:
        return []
    ordered: list[Window] = []
    first, last = min(windows), max(windows)
    if last - first + 1 > MAX_WINDOWS:
        span = (
            f"{window_key(first * spec.period_ns / 1e9)} to "
            f"{window_key(last * spec.period_ns / 1e9)}"
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
            start, end = window_key(key * size / 1e9), window_key((key + 1) * size / 1e9)
            begins = key * size
            tolerance = PARTIAL_SHARE * size
            # incomplete: the data ends inside, its newest event leaves the end uncovered;
            # partial: that, or the data starts inside, its oldest event late after the start
            complete = newest is None or not (tolerance < begins + size - newest <= size)
            late_start = oldest is not None and tolerance < oldest - begins < size
            partial = not complete or late_start
        else:
            start, end = str(key * rows_per_window), str(key * rows_per_window + profile.rows)
            complete = key != last or profile.rows >= rows_per_window
            partial = not complete
        ordered.append(Window(start, end, profile, complete, partial=partial))
    if not ordered[-1].complete and spec.incomplete != "keep":
        tail = ordered.pop()
        if spec.incomplete == "merge" and ordered:
            ordered[-1].profile.merge(tail.profile)
            ordered[-1].end = tail.end
    return ordered


def _time_keys(column: Any, size_ns: int, name: str) -> tuple[np.ndarray, int | None, int | None]:
    """Epoch-aligned window index of each row (``_NO_TIME`` for a null time), and the
    oldest and newest time in ns (None when no row has a time)."""
    micros = pc.cast(utc_times(column, name), pa.int64())
    missing = pc.is_null(micros).to_numpy(zero_copy_only=False)
    raw = pc.fill_null(micros, 0).to_numpy(zero_copy_only=False)
    keys = np.floor_divide(raw, size_ns // 1000)
    keys[missing] = _NO_TIME
    present = raw[~missing]
    if not len(present):
        return keys, None, None
    return keys, int(present.min()) * 1000, int(present.max()) * 1000


#: Epoch numbers below this are not times (10⁹ seconds: 2001-09-09), as in keel.schema.
EPOCH_FLOOR = 1e9
# A zone offset after a clock time (a date's own "-01" is no offset)
_OFFSET = r"\d{2}:\d{2}(:\d{2}(\.\d*)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"


def utc_times(column: Any, name: str) -> Any:
    """A time column as ``timestamp[us, UTC]`` (see the module docstring), or a SchemaError
    naming the column and saying what keel reads. Microseconds reach years 1 to 9999
    (nanoseconds stop in 2262); finer parts are dropped.

    >>> import pyarrow as pa
    >>> utc_times(pa.array(["2026-03-01", "2026-03-01T05:00:00+02:00"]), "t")[1].as_py().isoformat()
    '2026-03-01T03:00:00+00:00'
    >>> [t.isoformat() for t in utc_times(pa.array([1772323200, 1772323200000]), "t").to_pylist()]
    ['2026-03-01T00:00:00+00:00', '2026-03-01T00:00:00+00:00']
    """
    utc = pa.timestamp("us", tz="UTC")
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = pc.cast(column, kind.value_type), kind.value_type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.tz is None:
            column = pc.assume_timezone(pc.cast(column, pa.timestamp("us"), safe=False), "UTC")
        return pc.cast(column, utc, safe=False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _text_times(column, name)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _epoch_times(column, name)
    if pa.types.is_null(kind):
        return pa.nulls(len(column), utc)
    raise SchemaError(
        f"column {name!r} is {kind}, not a timestamp: cannot read it as times "
        "(give timestamps, ISO 8601 text such as 2026-03-01T05:00:00Z, or epoch seconds)"
    )


def _text_times(column: Any, name: str) -> Any:
    """ISO 8601 text: with an offset (Z, +02:00) as written, without one as UTC."""
    utc = pa.timestamp("us", tz="UTC")
    text = pc.utf8_trim_whitespace(column)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
    zoned = pc.fill_null(pc.match_substring_regex(text, _OFFSET), False)
    try:
        with_offset = pc.cast(pc.if_else(zoned, text, pa.scalar(None, text.type)), utc)
        naive = pc.cast(pc.if_else(zoned, pa.scalar(None, text.type), text), pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        example = _unreadable(text)
        raise SchemaError(
            f"column {name!r} holds text that is not an ISO 8601 time ({example!r}): write "
            "times as 2026-03-01, 2026-03-01 05:00:00 or 2026-03-01T05:00:00Z (naive times "
            "are UTC), or give a timestamp column"
        ) from error
    return pc.if_else(zoned, with_offset, pc.assume_timezone(naive, "UTC"))


def _unreadable(text: Any) -> str:
    """The first value of ``text`` that Arrow cannot read as a time (for the message)."""
    for value in pc.drop_null(text).to_pylist()[:10_000]:  # a loop for the error message only
        for kind in (pa.timestamp("us"), pa.timestamp("us", tz="UTC")):
            try:
                pc.cast(pa.array([value]), kind)
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        else:
            return value
    return "?"


def _epoch_times(column: Any, name: str) -> Any:
    """Epoch numbers, each by its size: seconds below 10¹¹ (year 5138), milliseconds below
    10¹⁴, microseconds below 10¹⁷, nanoseconds above; the same value always reads the same."""
    values = pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    missing = ~np.isfinite(values)
    present = values[~missing]
    if len(present) and present.min() < EPOCH_FLOOR:
        raise SchemaError(
            f"column {name!r} holds the number {present.min():g}, not a time: keel reads "
            "numbers as epoch seconds, milliseconds, microseconds or nanoseconds from "
            "2001-09-09 (10^9 s); give timestamps or ISO 8601 text instead"
        )
    scale = np.select([values < 1e11, values < 1e14, values < 1e17], [1e6, 1e3, 1.0], default=1e-3)
    if pa.types.is_integer(column.type):  # exact: no float rounding of large integers
        integers = pc.fill_null(column, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        micros = np.where(scale >= 1, integers * scale.astype(np.int64), integers // 1000)
    else:
        micros = np.round(np.where(missing, 0.0, values) * scale).astype(np.int64)
    return pa.array(micros, pa.int64(), mask=missing).cast(pa.timestamp("us", tz="UTC"))


def _timestamp_column(schema: Schema) -> str:
    candidates = schema.by_role("timestamp")
    if not candidates:
        raise SchemaError("time windows need a timestamp column: name one (--timestamp COL)")
    return candidates[0].name


def window_key(seconds: float | None = None, *, micros: int | None = None) -> str:
    """A window's key (its start or end) as stored: ISO 8601 in UTC, ending in ``Z``.

    From epoch seconds (time windows: a fraction only when there is one), or exact epoch
    microseconds (row windows: always six digits of fraction, so that keys sort as text).

    >>> window_key(86_400 * 3), window_key(micros=1_500_000)
    ('1970-01-04T00:00:00Z', '1970-01-01T00:00:01.500000Z')
    """
    if micros is not None:
        moment = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000
        )
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
