"""Calibrated thresholds: leave-one-out windows, a named tail estimator, and a fallback."""

import numpy as np
import pandas as pd
import pytest

from keel.baseline import Baseline
from keel.calibration import Calibration, scaled_chi2_threshold
from keel.history import check_history


def _log(days: int, seed: int, rows_per_day: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    times = start + pd.to_timedelta(
        np.sort(rng.uniform(0, days * 86_400, days * rows_per_day)), unit="s"
    )
    return pd.DataFrame(
        {
            "ts": times,
            "x": rng.normal(size=len(times)),
            "k": rng.choice(["a", "b", "c"], len(times), p=[0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture(scope="module")
def reference():
    return _log(60, seed=1)


@pytest.fixture(scope="module")
def baseline(reference):
    return Baseline.from_data(reference, timestamp="ts", sample_size=0)


def test_the_scaled_chi2_fit_recovers_a_known_chi2_quantile():
    rng = np.random.default_rng(0)
    values = rng.chisquare(5, 20_000) * 0.02
    fit = scaled_chi2_threshold(values, 0.01)
    assert fit["dof"] == pytest.approx(5, rel=0.05)
    assert fit["threshold"] == pytest.approx(0.02 * 15.086, rel=0.03)  # χ²(5) 99% = 15.086


def test_leave_one_out_thresholds_are_higher_than_comparing_with_a_reference_that_contains_them(
    baseline, reference
):
    fair = Calibration.fit(baseline, reference, "1D")
    biased = Calibration.fit(baseline, reference, "1D", leave_one_out=False)
    assert fair.reference_windows == 60 and fair.fallback is None
    for column in ("x", "k"):
        assert fair.thresholds[column]["mean"] > biased.thresholds[column]["mean"]
    assert fair.thresholds["x"]["estimator"] == "pearson3"
    assert fair.thresholds["k"]["estimator"] == "scaled_chi2"


def test_undrifted_windows_rarely_alert_and_a_shift_is_caught(baseline, reference):
    calibration = Calibration.fit(baseline, reference, "1D", false_alarm_rate=0.01)
    quiet = _log(60, seed=2)
    history = check_history(baseline, quiet, "1D", calibration=calibration)
    false_alerts = sum(bool(w.drift.dataset["drifted_columns"]) for w in history.windows)
    assert false_alerts <= 3  # 1% of 60 windows expects 0.6; 3 or more has probability < 3%
    shifted = quiet.copy()
    shifted.loc[shifted.ts >= "2026-02-20", "x"] += 0.5
    history = check_history(baseline, shifted, "1D", calibration=calibration)
    flagged = [w.start[:10] for w in history.windows if "x" in w.drift.dataset["drifted_columns"]]
    assert flagged[:1] == ["2026-02-20"] and len([d for d in flagged if d >= "2026-02-20"]) >= 9


def test_too_few_reference_windows_fall_back_to_the_one_off_rule_and_say_so(baseline, reference):
    short = reference[reference.ts < "2026-01-05"]
    calibration = Calibration.fit(baseline, short, "1D")
    assert calibration.fallback.startswith("only 4 reference windows of 1D")
    assert calibration.threshold("x") is None
    history = check_history(baseline, _log(3, seed=3), "1D", calibration=calibration)
    assert all(c.rule == "default" for w in history.windows for c in w.drift.columns)
    assert history.to_dict()["calibration"]["fallback"] == calibration.fallback


def test_a_calibration_round_trips_through_its_file(baseline, reference, tmp_path):
    calibration = Calibration.fit(baseline, reference, "1D")
    calibration.save(tmp_path / "c.json")
    loaded = Calibration.load(tmp_path / "c.json")
    assert loaded.threshold("x") == calibration.threshold("x")
    assert loaded.baseline_id == baseline.id and loaded.window == "1D"


def test_a_calibration_for_another_baseline_or_window_is_refused(baseline, reference):
    from keel.errors import ConfigError

    calibration = Calibration.fit(baseline, reference, "1D")
    with pytest.raises(ConfigError, match="windows of 1D, not baseline .* windows of 12h"):
        check_history(baseline, _log(2, seed=4), "12h", calibration=calibration)


def test_partial_windows_do_not_raise_volume_or_freshness_alerts(baseline, reference):
    current = _log(5, seed=5)
    current = current[current.ts < "2026-01-05 04:00"]  # the last day is a sixth full
    history = check_history(baseline, current, "1D", reference=reference)
    last = history.windows[-1]
    assert not last.complete
    assert "freshness_lag_seconds" not in {r.metric for r in last.quality}
    (volume,) = [r for r in last.quality if r.metric == "volume"]
    assert volume.status == "insufficient_data" and volume.details["partial"]  # not judged
    assert not any(
        r.status == "alert" and r.metric == "volume" for w in history.windows for r in w.quality
    )


def test_windows_the_reference_starts_or_ends_inside_are_left_out_of_its_volume(baseline):
    reference = _log(40, seed=6)
    reference = reference[
        (reference.ts >= "2026-01-01 18:00") & (reference.ts < "2026-02-09 06:00")
    ]
    calibration = Calibration.fit(baseline, reference, "1D")
    days = reference.groupby(reference.ts.dt.floor("D")).size()
    whole = days.iloc[1:-1]  # the reference starts at 18:00 and ends at 06:00 inside its days
    assert calibration.reference_windows == 39  # the last, incomplete, dropped; the first kept
    assert calibration.volume["mean_rows"] == pytest.approx(whole.mean())
    assert calibration.volume["std_rows"] == pytest.approx(whole.std(ddof=1))


def test_several_reference_periods_pool_their_windows(baseline, reference):
    later = _log(30, seed=9)
    later["ts"] = later["ts"] + pd.Timedelta(days=365)
    later["x"] = later["x"] + 0.15  # a year later the population sits a little higher
    one = Calibration.fit(baseline, reference, "1D")
    both = Calibration.fit(baseline, [reference, later], "1D")
    assert both.reference_windows == one.reference_windows + 30
    # Windows differ across the years more than within one: a wider, more tolerant threshold.
    assert both.thresholds["x"]["threshold"] > one.thresholds["x"]["threshold"]
