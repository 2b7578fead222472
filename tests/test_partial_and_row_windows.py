"""Windows as users have them: partial windows and row-count windows, with known answers."""

import numpy as np
import pandas as pd
import pytest

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
    # 60 rows an hour is what production declares (volume is judged against production).
    history = check_history(baseline, log, "1h", reference=reference, expected_rows=60)
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
    # 60 rows an hour is what production declares (volume is judged against production).
    history = check_history(baseline, log, "1h", reference=reference, expected_rows=60)
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
    alone = check_history(baseline, part, "1h", reference=reference, expected_rows=60)
    assert [(w.partial, _volume(w).status) for w in alone.windows] == [(True, "insufficient_data")]
    known = check_history(
        baseline,
        part,
        "1h",
        reference=reference,
        expected_rows=60,
        data_start="2026-05-04T00:00:00Z",
        data_end="2026-05-04T06:00:00Z",
    )
    assert [(w.partial, _volume(w).status) for w in known.windows] == [(False, "alert")]


def _requests(numbers, ingested: str, seed: int, event_time=None) -> pd.DataFrame:
    """Predictions for request ids r0000…, ingested at one instant (a batch: ties)."""
    rng = np.random.default_rng(seed)
    numbers = list(numbers)
    return pd.DataFrame(
        {
            "request_id": [f"r{n:04d}" for n in numbers],
            # event times out of ingestion order: row windows must not follow them
            "event_time": event_time
            if event_time is not None
            else pd.Timestamp("2026-05-10", tz="UTC") - pd.to_timedelta(numbers, unit="min"),
            "x": rng.normal(size=len(numbers)),
            "c": rng.choice(["a", "b"], len(numbers)),
            "_ingested_at": pd.Timestamp(ingested, tz="UTC"),
        }
    )


@pytest.fixture
def row_monitor(tmp_path):
    from keel.monitor.config import parse_config
    from keel.store import ResultStore

    reference = _minutes("2026-05-01", "2026-05-03", 1).rename(columns={"ts": "event_time"})
    Baseline.from_data(reference, timestamp="event_time", sample_size=0).save(tmp_path / "b.keel")
    (monitor,) = parse_config(
        "monitors:\n  - name: rows\n    model: m\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    logs: {tmp_path / 'logs'}\n"
        "    window: 100rows\n",
        "keel.yaml",
    )
    return monitor, ResultStore(f"sqlite:///{tmp_path / 'keel.db'}"), tmp_path / "logs"


def _log(root, frame):
    from keel.store.logs import LogWriter

    with LogWriter(root, "predictions", model="m") as writer:
        writer.append(frame)


def _windows(store) -> dict[str, float]:
    identity = store.latest(monitor="rows", check="window")
    return dict(
        zip(
            identity.loc[identity["metric"] == "rows", "window_start"],
            identity.loc[identity["metric"] == "rows", "value"],
            strict=True,
        )
    )


def test_a_monitor_cuts_row_windows_in_ingestion_order_and_late_rows_join_the_open_one(
    row_monitor,
):
    from keel.monitor import run_monitor

    monitor, store, root = row_monitor
    # 120 requests ingested together at 10:00, then 80 at 11:00: two full windows, ties in
    # the first batch broken by request id; the open window (0 rows yet) waits.
    _log(root, _requests(range(120), "2026-05-10 10:00", 2))
    _log(root, _requests(range(120, 200), "2026-05-10 11:00", 3))
    first = run_monitor(monitor, store)
    assert first["windows"] == 2
    assert _windows(store) == {
        "2026-05-10T10:00:00.000000Z": 100.0,  # r0000–r0099
        "2026-05-10T10:00:00.000001Z": 100.0,  # r0100–r0119 at 10:00, r0120–r0199 at 11:00
    }
    ends = store.latest(monitor="rows", check="window").groupby("window_start")["window_end"]
    assert ends.first().tolist() == ["2026-05-10T10:00:00.000001Z", "2026-05-10T11:00:00.000001Z"]
    # 99 more, one of them late (an event a week old): the third window is still open.
    late = _requests([200], "2026-05-10 12:00", 4, event_time=pd.Timestamp("2026-05-03", tz="UTC"))
    _log(root, pd.concat([late, _requests(range(201, 299), "2026-05-10 12:00", 5)]))
    assert run_monitor(monitor, store)["windows"] == 0
    # The hundredth row closes it; the late row is in it, and no closed window moved.
    _log(root, _requests([299], "2026-05-10 13:00", 6))
    third = run_monitor(monitor, store)
    assert third["windows"] == 1 and third["written"] > 0
    assert _windows(store) == {
        "2026-05-10T10:00:00.000000Z": 100.0,
        "2026-05-10T10:00:00.000001Z": 100.0,
        "2026-05-10T12:00:00.000000Z": 100.0,
    }
    assert (store.history(monitor="rows")["revision"] == 0).all()


def test_a_corrected_record_revises_its_row_window_and_shifts_none(row_monitor):
    from keel.monitor import run_monitor

    monitor, store, root = row_monitor
    _log(root, _requests(range(200), "2026-05-10 10:00", 2))
    run_monitor(monitor, store)
    before = _windows(store)
    # r0005 again, an hour later, with an odd value: its request keeps its place.
    corrected = _requests([5], "2026-05-10 11:00", 7).assign(x=50.0)
    _log(root, corrected)
    again = run_monitor(monitor, store)
    assert again["windows"] == 1
    assert _windows(store) == before
    revised = store.history(monitor="rows", column="x", metric="wasserstein")
    assert revised.groupby("window_start")["revision"].max().tolist() == [1, 0]
    events = store.events()
    assert "2026-05-10T10:00:00.000000Z" in " ".join(
        events[events["action"] == "revised window"]["details"]
    )
