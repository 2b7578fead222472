"""Windows as users have them: partial windows and row-count windows, with known answers."""

import numpy as np
import pandas as pd

from keel.baseline import Baseline
from keel.history import check_history


def _minutes(start: str, end: str, seed: int) -> pd.DataFrame:
    """One row a minute in [start, end), a normal feature and a category."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, end, freq="min", tz="UTC", inclusive="left")
    return pd.DataFrame(
        {"ts": times, "x": rng.normal(size=len(times)), "c": rng.choice(["a", "b"], len(times))}
    )


def _volume(window):
    return next(r for r in window.quality if r.metric == "volume")


def test_a_log_that_starts_and_ends_inside_windows_is_not_a_pipeline_fault():
    reference = _minutes("2026-05-01", "2026-05-03", 1)  # 48 hours of 60 rows
    baseline = Baseline.from_data(reference, timestamp="ts", sample_size=0)
    # The log begins at 00:40 (20 rows in its first hour) and stops at 05:20 (20 rows).
    log = _minutes("2026-05-04 00:40", "2026-05-04 05:20", 2)
    history = check_history(baseline, log, "1h", reference=reference)
    assert [(w.start[11:16], w.rows, w.partial) for w in history.windows] == [
        ("00:00", 20, True),
        ("01:00", 60, False),
        ("02:00", 60, False),
        ("03:00", 60, False),
        ("04:00", 60, False),
        ("05:00", 20, True),
    ]
    assert [_volume(w).status for w in history.windows] == [
        "insufficient_data",
        "ok",
        "ok",
        "ok",
        "ok",
        "insufficient_data",
    ]
    assert _volume(history.windows[0]).details["partial"] is True
    assert not history.alert
    assert [w.diagnosis.verdict for w in history.windows] == ["healthy"] * 6
    # Every Result of a partial window says so; those of whole windows do not.
    frame = history.to_pandas()
    partial = frame["details"].map(lambda d: d.get("partial", False))
    assert set(frame.loc[partial, "window_start"]) == {
        "2026-05-04T00:00:00Z",
        "2026-05-04T05:00:00Z",
    }
    assert history.to_dict()["windows"][0]["partial"] is True


def test_a_whole_window_short_of_rows_still_alerts_on_volume():
    reference = _minutes("2026-05-01", "2026-05-03", 1)
    baseline = Baseline.from_data(reference, timestamp="ts", sample_size=0)
    log = _minutes("2026-05-04 00:00", "2026-05-04 04:00", 2)
    log = log[(log.ts < "2026-05-04 01:00") | (log.ts >= "2026-05-04 01:40")]  # 20 in hour 1
    history = check_history(baseline, log, "1h", reference=reference)
    assert [(w.rows, w.partial) for w in history.windows] == [
        (60, False),
        (20, False),
        (60, False),
        (60, False),
    ]
    assert [_volume(w).status for w in history.windows] == ["ok", "alert", "ok", "ok"]
    assert history.windows[1].diagnosis.verdict == "pipeline fault"


def test_a_part_of_a_longer_log_is_judged_as_the_whole_log_would_be():
    reference = _minutes("2026-05-01", "2026-05-03", 1)
    baseline = Baseline.from_data(reference, timestamp="ts", sample_size=0)
    log = _minutes("2026-05-04 00:00", "2026-05-04 06:00", 2)
    # Hour 2 has 20 rows (a real drop); given alone, it would look like a partial window.
    part = log[(log.ts >= "2026-05-04 02:40") & (log.ts < "2026-05-04 03:00")]
    alone = check_history(baseline, part, "1h", reference=reference)
    assert [(w.partial, _volume(w).status) for w in alone.windows] == [(True, "insufficient_data")]
    known = check_history(
        baseline,
        part,
        "1h",
        reference=reference,
        data_start="2026-05-04T00:00:00Z",
        data_end="2026-05-04T06:00:00Z",
    )
    assert [(w.partial, _volume(w).status) for w in known.windows] == [(False, "alert")]
