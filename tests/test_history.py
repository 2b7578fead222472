"""check_history: a backfill of every window, Results in one schema, and the CLI timeline."""

import json

import numpy as np
import pandas as pd

from keel.baseline import Baseline
from keel.history import check_history
from keel.result import RESULT_COLUMNS


def _log(hours: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2026-05-01", periods=hours * 60, freq="min", tz="UTC")
    return pd.DataFrame(
        {"ts": times, "x": rng.normal(size=len(times)), "c": rng.choice(["a", "b"], len(times))}
    )


def test_results_carry_their_window_and_the_result_schema():
    reference, current = _log(48, 1), _log(6, 2)
    baseline = Baseline.from_data(reference, timestamp="ts", sample_size=0)
    history = check_history(baseline, current, "1h")
    frame = history.to_pandas()
    assert tuple(frame.columns) == RESULT_COLUMNS
    assert frame["window_start"].nunique() == 6
    assert set(frame["check"]) == {"feature_drift", "quality", "diagnosis"}
    assert {"missing_share", "freshness_lag_seconds", "wasserstein", "psi"} <= set(frame["metric"])


def test_a_window_with_zero_rows_or_one_row_is_insufficient_data_not_a_crash():
    reference = _log(48, 1)
    baseline = Baseline.from_data(reference, timestamp="ts", sample_size=0)
    current = _log(3, 3)
    current = pd.concat([current.iloc[:60], current.iloc[[150]]])  # hour 2 empty, hour 3 one row
    history = check_history(baseline, current, "1h", reference=reference)
    assert [w.rows for w in history.windows] == [60, 0, 1]
    empty = history.windows[1]
    assert all(c.status == "insufficient_data" for c in empty.drift.columns)
    volume = [r for r in empty.quality if r.metric == "volume"][0]
    assert volume.status == "alert"  # a feed that stops is news
    assert not history.windows[2].drift.drift


def test_the_cli_gives_a_timeline_json_and_html_and_exits_1_on_an_alert(run_keel, tmp_path):
    reference, current = _log(72, 1), _log(24, 2)
    current.loc[current.ts >= "2026-05-01 20:00", "x"] += 2
    reference.to_parquet(tmp_path / "r.parquet")
    current.to_parquet(tmp_path / "c.parquet")
    result = run_keel(
        "drift",
        tmp_path / "r.parquet",
        tmp_path / "c.parquet",
        "--window",
        "1h",
        "--json",
        tmp_path / "t.json",
        "--html",
        tmp_path / "t.html",
    )
    assert result.returncode == 1, result.stderr
    assert "what changed, when" in result.stdout
    assert "x: feature drift (wasserstein) in 4 windows 2026-05-01 to 2026-05-01" in result.stdout
    payload = json.loads((tmp_path / "t.json").read_text())
    assert len(payload["windows"]) == 24 and payload["calibration"]["reference_windows"] == 72
    assert [w["drift"] for w in payload["windows"]][-4:] == [True] * 4
    assert "Timeline" in (tmp_path / "t.html").read_text()
    quiet = run_keel("drift", tmp_path / "r.parquet", tmp_path / "r.parquet", "--window", "1h")
    assert quiet.returncode in (0, 1)


def test_the_cli_checks_windows_with_a_calibration_file(run_keel, tmp_path):
    reference, current = _log(72, 1), _log(6, 2)
    reference.to_parquet(tmp_path / "r.parquet")
    current.to_parquet(tmp_path / "c.parquet")
    assert (
        run_keel("baseline", "create", "r.parquet", "-o", "b.keel", "--timestamp", "ts").returncode
        == 0
    )
    calibrated = run_keel("baseline", "calibrate", "b.keel", "r.parquet", "--window", "1h")
    assert calibrated.returncode == 0, calibrated.stderr
    result = run_keel(
        "drift", "b.keel", "c.parquet", "--window", "1h", "--calibration", "b.calibration-1h.json"
    )
    assert result.returncode in (0, 1), result.stderr
    assert "calibrated on 72 reference windows of 1h" in result.stdout
    wrong = run_keel(
        "drift", "b.keel", "c.parquet", "--window", "2h", "--calibration", "b.calibration-1h.json"
    )
    assert wrong.returncode == 2 and "windows of 1h, not" in wrong.stderr
    both = run_keel(
        "drift",
        "b.keel",
        "c.parquet",
        "--window",
        "1h",
        "--calibration",
        "b.calibration-1h.json",
        "--calibrate-on",
        "r.parquet",
    )
    assert both.returncode == 2 and "instead of --calibrate-on" in both.stderr
