import numpy as np
import pandas as pd
import pytest

from keel.errors import ConfigError, SchemaError
from keel.windows import WindowSpec, cut


def _hourly(days: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2026-03-01", periods=days * 24, freq="h", tz="UTC")
    return pd.DataFrame(
        {"ts": times, "x": rng.normal(size=len(times)), "c": rng.choice(["a", "b"], len(times))}
    )


def test_time_windows_are_half_open_and_aligned_to_the_epoch_in_utc():
    frame = _hourly(3)
    frame["ts"] = frame["ts"] + pd.Timedelta(minutes=30)  # 00:30, 01:30, …
    windows = cut(frame, WindowSpec.parse("6h"), timestamp="ts")
    assert windows[0].start == "2026-03-01T00:00:00Z" and windows[0].end == "2026-03-01T06:00:00Z"
    assert [w.rows for w in windows] == [6] * 12
    # Another time zone for the same instants changes nothing.
    frame["ts"] = frame["ts"].dt.tz_convert("America/New_York")
    assert [w.start for w in cut(frame, WindowSpec.parse("6h"), timestamp="ts")] == [
        w.start for w in windows
    ]


def test_out_of_order_rows_land_in_the_same_windows():
    frame = _hourly(4)
    shuffled = frame.sample(frac=1.0, random_state=1)
    a = cut(frame, WindowSpec.parse("1D"), timestamp="ts")
    b = cut(shuffled, WindowSpec.parse("1D"), timestamp="ts")
    assert [(w.start, w.rows) for w in a] == [(w.start, w.rows) for w in b]
    for left, right in zip(a, b, strict=True):
        assert left.profile.columns["x"].mean == pytest.approx(right.profile.columns["x"].mean)


def test_gaps_give_empty_windows_and_the_incomplete_tail_is_kept_merged_or_dropped():
    frame = _hourly(5)
    frame = frame[(frame.ts < "2026-03-02") | (frame.ts >= "2026-03-03")]  # a day without data
    frame = frame[frame.ts < "2026-03-05 06:00"]  # the last day is a quarter full
    keep = cut(frame, WindowSpec.parse("1D", incomplete="keep"), timestamp="ts")
    assert [w.rows for w in keep] == [24, 0, 24, 24, 6]
    assert [w.complete for w in keep] == [True, True, True, True, False]
    merged = cut(frame, WindowSpec.parse("1D", incomplete="merge"), timestamp="ts")
    assert [w.rows for w in merged] == [24, 0, 24, 30]
    assert merged[-1].end == "2026-03-06T00:00:00Z"
    dropped = cut(frame, WindowSpec.parse("1D", incomplete="drop"), timestamp="ts")
    assert [w.rows for w in dropped] == [24, 0, 24, 24]


def test_row_windows_and_a_number_of_windows():
    frame = _hourly(1)  # 24 rows
    assert [w.rows for w in cut(frame, WindowSpec.parse("10"))] == [10, 10, 4]
    assert [w.rows for w in cut(frame, WindowSpec.parse("3windows"))] == [8, 8, 8]
    assert [w.start for w in cut(frame, WindowSpec(rows=10))] == ["0", "10", "20"]


def test_null_timestamps_are_left_out_of_every_window():
    frame = _hourly(1)
    frame.loc[::4, "ts"] = pd.NaT
    windows = cut(frame, WindowSpec.parse("1D"), timestamp="ts")
    assert sum(w.rows for w in windows) == 18


def test_bad_windows_and_timestamps_get_clear_errors():
    frame = _hourly(1)
    with pytest.raises(ConfigError, match="not a fixed length"):
        WindowSpec.parse("1M")  # months vary in length
    with pytest.raises(ConfigError, match="a period"):
        WindowSpec(period="1D", rows=10)
    with pytest.raises(ConfigError, match="keep, merge or drop|one of"):
        WindowSpec.parse("1D", incomplete="later")
    us_dates = frame.assign(ts=frame["ts"].dt.strftime("%m/%d/%Y %H:%M"))
    with pytest.raises(SchemaError, match="'ts' holds text that is not an ISO 8601 time.*03/01"):
        cut(us_dates, WindowSpec.parse("1D"), timestamp="ts")
    small = frame.assign(ts=np.arange(len(frame)))
    with pytest.raises(SchemaError, match="'ts' holds the number 0, not a time.*epoch seconds"):
        cut(small, WindowSpec.parse("1D"), timestamp="ts")
    with pytest.raises(SchemaError, match="no column 'when'"):
        cut(frame, WindowSpec.parse("1D"), timestamp="when")
    with pytest.raises(SchemaError, match="need a timestamp column"):
        cut(frame.drop(columns=["ts"]), WindowSpec.parse("1D"))


def test_times_before_1970_and_after_2262_have_their_windows():
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                ["1969-12-30 00:00", "1969-12-31 12:00", "1970-01-01 06:00"], utc=True
            ),
            "x": [1.0, 2.0, 3.0],
        }
    )
    windows = cut(frame, WindowSpec.parse("1D"), timestamp="ts")
    assert [(w.start[:10], w.rows) for w in windows] == [
        ("1969-12-30", 1),
        ("1969-12-31", 1),
        ("1970-01-01", 1),
    ]
    import pyarrow as pa

    far = pa.table(
        {
            "ts": pa.array(
                [pd.Timestamp("9999-12-30", tz="UTC")], type=pa.timestamp("us", tz="UTC")
            ),
            "x": [1.0],
        }
    )
    assert cut(far, WindowSpec.parse("1D"), timestamp="ts")[0].start.startswith("9999-12-30")


def test_a_stray_date_decades_away_is_refused_not_millions_of_windows():
    from keel.errors import DataError

    frame = pd.DataFrame(
        {"ts": pd.to_datetime(["1970-01-01", "2026-01-01"], utc=True), "x": [1.0, 2.0]}
    )
    with pytest.raises(DataError, match="spans 1970-01-01.* to 2026-01-01.*stray"):
        cut(frame, WindowSpec.parse("1h"), timestamp="ts")


def test_a_window_the_data_starts_or_ends_inside_is_partial():
    frame = _hourly(5)
    frame = frame[(frame.ts >= "2026-03-01 09:00") & (frame.ts < "2026-03-04 12:00")]
    windows = cut(frame, WindowSpec.parse("1D"), timestamp="ts")
    assert [(w.start[:10], w.rows) for w in windows] == [
        ("2026-03-01", 15),
        ("2026-03-02", 24),
        ("2026-03-03", 24),
        ("2026-03-04", 12),
    ]
    assert [w.partial for w in windows] == [True, False, False, True]
    # Only the tail is incomplete: the data does not end inside the first window.
    assert [w.complete for w in windows] == [True, True, True, False]
    dropped = cut(frame, WindowSpec.parse("1D", incomplete="drop"), timestamp="ts")
    assert [w.partial for w in dropped] == [True, False, False]


def test_a_window_the_data_covers_but_for_a_tenth_is_whole():
    frame = _hourly(3)
    frame = frame[frame.ts >= "2026-03-01 02:00"]  # 2 of 24 hours missing at the start: 8%
    frame = frame[frame.ts < "2026-03-03 21:00"]  # the newest event 20:00 leaves 4 h: 17%
    windows = cut(frame, WindowSpec.parse("1D"), timestamp="ts")
    assert [w.partial for w in windows] == [False, False, True]
    frame = frame[frame.ts >= "2026-03-01 03:00"]  # 3 of 24 hours: 12.5%, past the tenth
    assert cut(frame, WindowSpec.parse("1D"), timestamp="ts")[0].partial


def test_where_the_data_truly_starts_and_ends_can_be_given():
    frame = _hourly(4)
    day = frame[(frame.ts >= "2026-03-02 06:00") & (frame.ts < "2026-03-02 12:00")]
    alone = cut(day, WindowSpec.parse("1D"), timestamp="ts")
    assert [(w.partial, w.complete) for w in alone] == [(True, False)]
    # The same rows, known to be a part of a log that began before and goes on after:
    inside = cut(
        day,
        WindowSpec.parse("1D"),
        timestamp="ts",
        data_start="2026-03-01T00:00:00Z",
        data_end=pd.Timestamp("2026-03-04", tz="UTC"),
    )
    assert [(w.rows, w.partial, w.complete) for w in inside] == [(6, False, True)]
    # A log that began at 06:00 that day: the window is partial at its start only.
    began = cut(day, WindowSpec.parse("1D"), timestamp="ts", data_end="2026-03-04T00:00:00+00:00")
    assert [(w.partial, w.complete) for w in began] == [(True, True)]


def test_a_row_window_short_of_its_count_is_partial():
    frame = _hourly(1)  # 24 rows
    windows = cut(frame, WindowSpec.parse("10rows"))
    assert [(w.start, w.end, w.rows, w.partial) for w in windows] == [
        ("0", "10", 10, False),
        ("10", "20", 10, False),
        ("20", "24", 4, True),
    ]
    assert [w.partial for w in cut(frame, WindowSpec.parse("12"))] == [False, False]


def test_text_and_epoch_number_times_give_the_windows_timestamps_give():
    frame = _hourly(2)
    expected = [(w.start, w.rows) for w in cut(frame, WindowSpec.parse("6h"), timestamp="ts")]
    shifted = frame["ts"].dt.tz_convert("Europe/Paris")
    nanos = frame["ts"].dt.as_unit("ns").astype("int64")
    seconds = nanos // 10**9
    forms = {
        "naive text is UTC": frame["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        "ISO with Z": frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ISO with an offset": shifted.dt.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "epoch seconds": seconds,
        "epoch seconds, float": seconds.astype(float),
        "epoch milliseconds": seconds * 1000,
        "epoch nanoseconds": nanos,
        "naive timestamps are UTC": frame["ts"].dt.tz_localize(None),
    }
    for form, times in forms.items():
        got = cut(frame.assign(ts=times), WindowSpec.parse("6h"), timestamp="ts")
        assert [(w.start, w.rows) for w in got] == expected, form


def test_text_times_mixing_offsets_and_dates_each_read_as_written():
    import pyarrow as pa

    from keel.windows import utc_times

    text = pa.array(["2026-03-01", "2026-03-01 05:30", "2026-03-01T05:30:00+02:00", None, ""])
    assert [t.isoformat() if t else None for t in utc_times(text, "t").to_pylist()] == [
        "2026-03-01T00:00:00+00:00",
        "2026-03-01T05:30:00+00:00",
        "2026-03-01T03:30:00+00:00",
        None,
        None,
    ]


def test_weekly_windows_align_to_the_epoch_and_so_start_on_thursdays():
    frame = _hourly(30)
    windows = cut(frame, WindowSpec.parse("7D"), timestamp="ts")
    starts = [pd.Timestamp(w.start) for w in windows]
    assert {s.day_name() for s in starts} == {"Thursday"}  # 1970-01-01 was a Thursday
    assert starts[0] == pd.Timestamp("2026-02-26", tz="UTC")
    assert windows[0].partial  # the data starts on Sunday 2026-03-01, inside it
