"""The monitor's streaming step (keel.monitor.stream) over real logs and a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from keel.baseline import Baseline
from keel.errors import ConfigError
from keel.monitor.config import parse_config
from keel.monitor.stream import run_stream, state_path
from keel.online import DetectorStateError
from keel.store import ResultStore
from keel.store.logs import LogWriter

START = datetime(2026, 7, 2, tzinfo=UTC)
SECRET = "s" * 40
RATE = 1 / 60  # one prediction a minute


def _baseline(path: Path, seed: int = 0, rows: int = 20_000) -> Path:
    rng = np.random.default_rng(seed)
    score = rng.normal(size=rows)
    label = (rng.uniform(size=rows) < 0.5).astype(float)
    Baseline.from_data(
        pa.table({"score": score, "income": rng.normal(size=rows), "y": label}),
        sample_size=rows,
    ).save(path)
    return path


def _log(root: Path, scores: np.ndarray, first: int = 0, model: str = "m") -> None:
    """One prediction a minute from START + ``first`` minutes."""
    times = [START + timedelta(minutes=first + i) for i in range(scores.size)]
    table = pa.table(
        {
            "request_id": [f"r{first + i:06d}" for i in range(scores.size)],
            "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "score": scores,
            "income": np.zeros(scores.size),
        }
    )
    with LogWriter(root, "predictions", model=model) as writer:
        writer.append(table)


def _monitor(folder: Path, baseline: Path, stream: str, extra: str = "", rule: str = ""):
    channels = (
        "channels:\n"
        f"  - {{name: hook, type: webhook, url: '{rule}', secret_env: KEEL_TEST_SECRET}}\n"
        if rule
        else ""
    )
    alerts = (
        "    alerts:\n      - {name: stream-alarm, check: stream, for: 1, channels: [hook]}\n"
        if rule
        else ""
    )
    text = (
        f"{channels}monitors:\n  - name: m\n    model: m\n    baseline: {baseline}\n"
        f"    logs: {folder / 'logs'}\n    window: 1D\n{extra}"
        f"    stream: {stream}\n{alerts}"
    )
    return parse_config(text, "keel.yaml")[0]


def _store(folder: Path) -> ResultStore:
    return ResultStore(f"sqlite:///{folder / 'keel.db'}")


QUIET = "{streams: [score], false_alarm_every: 139D, requests_per_second: 0.0166667}"
#: A shorter target where a long quiet run is not the point: quicker to calibrate.
FAST = "{streams: [score], false_alarm_every: 14D, requests_per_second: 0.0166667}"
LATER = START + timedelta(days=60)


def test_a_quiet_stream_raises_no_alarm_over_a_long_in_control_run(tmp_path):
    baseline = _baseline(tmp_path / "b.keel")
    _log(tmp_path / "logs", np.random.default_rng(11).normal(size=10_000))
    monitor = _monitor(tmp_path, baseline, QUIET)
    step = run_stream(monitor, _store(tmp_path), now=LATER)
    assert step.fed == {"score": 10_000} and step.alarms == []
    state = json.loads(state_path(monitor).read_text())
    calibration = state["streams"]["score"]["calibration"]
    # one false alarm per 139 days at one a minute: 200,160 values
    assert calibration["target_arl0"] == pytest.approx(139 * 1440, rel=1e-4)
    assert calibration["reference"] == "the baseline sample (reference rows)"


def test_a_one_sigma_shift_is_caught_within_bounded_records_with_its_change_point(tmp_path):
    baseline = _baseline(tmp_path / "b.keel")
    rng = np.random.default_rng(12)
    _log(tmp_path / "logs", np.concatenate([rng.normal(size=3_000), rng.normal(1, 1, 1_000)]))
    store = _store(tmp_path)
    step = run_stream(_monitor(tmp_path, baseline, QUIET), store, now=LATER)
    first = step.alarms[0]
    index, change = first.details["alarm_index"], first.details["change_point_index"]
    assert 3_000 <= index < 3_080  # 1σ at ARL0 ≈ 200,000: tens of records
    assert abs(change - 3_000) <= 25
    assert first.window_start == first.window_end == _iso(START + timedelta(minutes=index))
    assert first.details["change_point_time"] == _iso(START + timedelta(minutes=change))
    assert first.check == "stream" and first.column == "score" and first.status == "alert"
    stored = store.latest(monitor="m")
    assert set(stored["check"]) == {"stream", "diagnosis"}
    # the shift goes on: it alarms again and again; the episode's first alarm is stored
    assert len(step.alarms) > 1 and [a.details["episode_alarm"] for a in step.alarms[:3]] == [
        1,
        2,
        3,
    ]
    (kept,) = stored[stored["check"] == "stream"].to_dict("records")
    assert kept["window_start"] == first.window_start


def test_adwin_runs_in_the_monitor_calibrated_like_the_others(tmp_path):
    baseline = _baseline(tmp_path / "b.keel")
    rng = np.random.default_rng(13)
    _log(tmp_path / "logs", np.concatenate([rng.normal(size=2_000), rng.normal(2, 1, 500)]))
    adwin = FAST.replace("[score]", "[{column: score, detector: adwin}]")
    step = run_stream(_monitor(tmp_path, baseline, adwin), _store(tmp_path), now=LATER)
    assert step.alarms and 2_000 <= step.alarms[0].details["alarm_index"] < 2_200


def test_every_alarm_is_stored_with_alarms_every(tmp_path):
    rng = np.random.default_rng(21)
    _log(tmp_path / "logs", np.concatenate([rng.normal(size=500), rng.normal(2, 1, 300)]))
    store = _store(tmp_path)
    every = FAST.replace("}", ", alarms: every}")
    step = run_stream(_monitor(tmp_path, _baseline(tmp_path / "b.keel"), every), store, now=LATER)
    stored = store.latest(monitor="m", check="stream")
    assert len(step.alarms) > 3 and len(stored) == len(step.alarms)


def test_state_survives_a_restart_two_runs_on_halves_equal_one_on_the_whole(tmp_path):
    rng = np.random.default_rng(13)
    scores = np.concatenate([rng.normal(size=2_000), rng.normal(0.8, 1, 1_000)])
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    alarms = {}
    for folder in (whole, halves):
        folder.mkdir()
        baseline = _baseline(folder / "b.keel")
        monitor = _monitor(folder, baseline, FAST)
        found = []
        parts = [(0, scores.size)] if folder is whole else [(0, 2_300), (2_300, scores.size)]
        for begin, end in parts:
            _log(folder / "logs", scores[begin:end], first=begin)
            # a fresh store object and a fresh process's view of the state file each time
            found += run_stream(monitor, _store(folder), now=LATER).alarms
        alarms[folder.name] = [
            (a.window_start, a.details["alarm_index"], a.details["change_point_index"], a.value)
            for a in found
        ]
    assert alarms["whole"] and alarms["whole"] == alarms["halves"]
    assert any(index >= 2_300 for _, index, _, _ in alarms["halves"])  # after the restart
    states = [
        json.loads(state_path(_monitor(f, f / "b.keel", FAST)).read_text()) for f in (whole, halves)
    ]
    assert states[0]["streams"]["score"]["detector"] == states[1]["streams"]["score"]["detector"]


def test_a_state_from_another_baseline_is_refused(tmp_path):
    _log(tmp_path / "logs", np.random.default_rng(14).normal(size=500))
    run_stream(
        _monitor(tmp_path, _baseline(tmp_path / "a.keel", seed=1), FAST),
        _store(tmp_path),
        now=LATER,
    )
    other = _monitor(tmp_path, _baseline(tmp_path / "b.keel", seed=2), FAST)
    with pytest.raises(DetectorStateError, match="saved for baseline .* delete the file"):
        run_stream(other, _store(tmp_path), now=LATER)


def test_an_alert_rule_on_check_stream_fires_through_a_real_webhook(tmp_path, monkeypatch):
    from keel.alerts.delivery import deliver
    from keel.alerts.receiver import WebhookReceiver

    monkeypatch.setenv("KEEL_TEST_SECRET", SECRET)
    rng = np.random.default_rng(15)
    _log(tmp_path / "logs", np.concatenate([rng.normal(size=1_000), rng.normal(2, 1, 300)]))
    store = _store(tmp_path)
    with WebhookReceiver(secret=SECRET.encode()) as receiver:
        monitor = _monitor(tmp_path, _baseline(tmp_path / "b.keel"), FAST, rule=receiver.url)
        step = run_stream(monitor, store, now=LATER)
        assert [a["state"] for a in step.alerts] == ["firing"]
        assert deliver(store, monitor.channels)["sent"] == 1
        (notice,) = receiver.notices
    payload = notice["payload"]
    assert notice["verified"] and payload["state"] == "firing" and payload["rule"] == "stream-alarm"
    assert payload["summary"].startswith("stream alarm in window 2026-07-02: score")
    assert payload["diagnosis"]["verdict"] == "unexplained alert"
    assert payload["diagnosis"]["summary"].startswith("stream alarm: score moved from 2026-07-02")
    assert payload["window"]["start"] == step.alarms[0].window_start  # the episode's first


def test_a_quiet_day_after_an_alarm_resolves_the_alert(tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_TEST_SECRET", SECRET)
    rng = np.random.default_rng(16)
    _log(tmp_path / "logs", np.concatenate([rng.normal(size=500), rng.normal(3, 1, 30)]))
    store = _store(tmp_path)
    monitor = _monitor(tmp_path, _baseline(tmp_path / "b.keel"), FAST, rule="http://127.0.0.1:9/")
    assert [a["state"] for a in run_stream(monitor, store, now=LATER).alerts] == ["firing"]
    _log(tmp_path / "logs", rng.normal(size=2_000), first=530)  # more than a day, quiet
    step = run_stream(monitor, store, now=LATER)
    assert step.alarms == [] and [a["state"] for a in step.alerts] == ["resolved"]


def test_errors_stream_in_label_arrival_order_with_the_prediction_time(tmp_path):
    rng = np.random.default_rng(17)
    p = rng.uniform(size=20_000)
    reference = pa.table({"score": p, "y": (rng.uniform(size=p.size) < p).astype(float)})
    Baseline.from_data(reference, sample_size=20_000).save(tmp_path / "b.keel")
    n = 1_500
    score = rng.uniform(size=n)
    truth = rng.uniform(size=n) < score
    truth[1_000:] = ~truth[1_000:]  # the model is wrong from the 1,000th label on
    _log(tmp_path / "logs", score)
    order = rng.permutation(1_000).tolist() + list(range(1_000, n))  # labels come shuffled
    with LogWriter(tmp_path / "logs", "labels", model="m") as writer:
        for chunk in np.array_split(np.array(order), 15):
            writer.append([{"request_id": f"r{i:06d}", "y": float(truth[i])} for i in chunk])
            writer.flush()
    monitor = _monitor(
        tmp_path,
        tmp_path / "b.keel",
        "{streams: [{errors: true}], false_alarm_every: 30D, requests_per_second: 0.0166667,"
        " lateness: 0s}",
        extra="    performance: {task: binary, label: y, score: score}\n",
    )
    step = run_stream(monitor, _store(tmp_path), now=LATER)
    assert step.fed == {"errors": n}
    first = step.alarms[0]
    assert 1_000 <= first.details["alarm_index"] < 1_100
    request = int(first.details["request_id"][1:])
    assert request == order[first.details["alarm_index"]]  # the errors' own order
    assert first.details["prediction_time"] == _iso(START + timedelta(minutes=request))
    assert first.column == "errors"
    again = run_stream(monitor, _store(tmp_path), now=LATER)
    assert again.fed == {"errors": 0}  # nothing is fed twice


@pytest.mark.parametrize(
    "stream, says",
    [
        ("{streams: [score], stream_interval: 5m}", "stream.stream_interval"),
        ("{streams: [score], detector: kalman}", "stream.detector"),
        ("{streams: [score], options: {kk: 1}}", "stream: options: cusum"),
        ("{streams: [score, score]}", "stream 'score' is listed twice"),
        ("{streams: [{errors: true}]}", "stream.streams[0]: the error stream needs"),
        ("{streams: [score], frobnicate: 1}", "stream.frobnicate"),
    ],
)
def test_stream_config_errors_name_the_key(tmp_path, stream, says):
    with pytest.raises(ConfigError, match=r"monitors\[0\]") as error:
        _monitor(tmp_path, tmp_path / "b.keel", stream)
    assert says in str(error.value)


def test_a_target_beyond_the_reference_names_the_key(tmp_path):
    _log(tmp_path / "logs", np.zeros(10))
    small = _baseline(tmp_path / "b.keel", rows=1_000)
    monitor = _monitor(tmp_path, small, "{streams: [score], requests_per_second: 1}")
    with pytest.raises(ConfigError, match="stream.false_alarm_every: stream 'score': .*beyond"):
        run_stream(monitor, _store(tmp_path), now=LATER)


def test_keel_monitor_run_runs_the_stream_step(tmp_path):
    baseline = _baseline(tmp_path / "b.keel")
    rng = np.random.default_rng(18)
    _log(tmp_path / "logs", np.concatenate([rng.normal(size=1_000), rng.normal(2, 1, 100)]))
    monitor = _monitor(tmp_path, baseline, FAST)
    (tmp_path / "keel.yaml").write_text(
        f"monitors:\n  - name: m\n    model: m\n    baseline: {baseline}\n"
        f"    logs: {tmp_path / 'logs'}\n    window: 1D\n    stream: {FAST}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "keel.cli", "monitor", "run", "--now", LATER.isoformat()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}"},
    )
    assert done.returncode == 1, done.stderr
    assert "m: stream: score 1,100 values;" in done.stdout
    assert state_path(monitor).is_file()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_monitor_serve_runs_the_stream_step_every_stream_interval(tmp_path):
    import threading
    import time

    from keel.monitor.schedule import serve

    rng = np.random.default_rng(19)
    _log(tmp_path / "logs", rng.normal(size=200))
    stream = FAST.replace("}", ", stream_interval: 1s, lateness: 0s}")
    monitor = _monitor(tmp_path, _baseline(tmp_path / "b.keel"), stream)
    monitor.schedule = "0 0 1 1 *"  # its cron run is far away: only the stream step runs
    stop, lines = threading.Event(), []
    server = threading.Thread(
        target=serve,
        args=([monitor], _store(tmp_path)),
        kwargs={"stop": stop, "report": lines.append},
    )
    server.start()
    try:
        deadline = time.monotonic() + 30
        while not state_path(monitor).is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        # the serving loop's clock is now: these records (a shift, in the past) arrive next
        _log(tmp_path / "logs", rng.normal(3, 1, 100), first=200)
        while time.monotonic() < deadline and not any("stream: " in line for line in lines):
            time.sleep(0.1)
    finally:
        stop.set()
        server.join(timeout=60)
    fed = json.loads(state_path(monitor).read_text())["streams"]["score"]["detector"]["n_seen"]
    assert fed == 300 and any("m: stream: " in line and "alarms" in line for line in lines)


def test_stream_alarms_are_not_windows_in_the_monitor_status(tmp_path):
    from keel.monitor.run import status

    rng = np.random.default_rng(20)
    _log(tmp_path / "logs", np.concatenate([rng.normal(size=500), rng.normal(3, 1, 50)]))
    store = _store(tmp_path)
    assert run_stream(
        _monitor(tmp_path, _baseline(tmp_path / "b.keel"), FAST), store, now=LATER
    ).alarms
    assert status(store, "m") == []
    assert not store.latest(monitor="m", check="stream").empty
