"""Alerts that do not cry wolf, on generated data where the right answer is known (issue 15)."""

import numpy as np
import pandas as pd
import pytest

from keel.baseline import Baseline
from keel.calibration import Calibration
from keel.history import check_history

LEVELS = np.array(["a", "b", "c", "d"])
SHARES = np.array([0.4, 0.3, 0.2, 0.1])


def _log(days: int, seed: int, rows: int = 1000, shares=SHARES, start="2026-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, days * 86_400, days * rows)), unit="s"
    )
    n = len(times)
    return pd.DataFrame(
        {
            "ts": times,
            "x": rng.normal(size=n),
            "k": rng.choice(LEVELS, n, p=shares),
            "flat": np.full(n, 7.0),
            "tag": np.full(n, "v1"),
        }
    )


@pytest.fixture(scope="module")
def reference():
    return _log(40, seed=1)


@pytest.fixture(scope="module")
def baseline(reference):
    return Baseline.from_data(reference, timestamp="ts", sample_size=0)


@pytest.fixture(scope="module")
def calibration(baseline, reference):
    return Calibration.fit(baseline, reference, "1D", false_alarm_rate=0.01)


def test_a_calibrated_threshold_never_goes_below_the_effect_floor(baseline, calibration):
    history = check_history(
        baseline, _log(5, seed=2, start="2026-02-10"), "1D", calibration=calibration
    )
    for window in history.windows:
        for column in window.drift.columns:
            if column.rule == "calibrated":
                assert column.threshold >= 0.1
                assert column.threshold == max(column.details["calibrated_threshold"], 0.1)


def test_a_lowered_floor_lets_the_calibrated_threshold_decide(baseline, calibration):
    from keel.stats.verdict import DefaultRule

    rule = DefaultRule(numeric_floor=0.0, categorical_floor=0.0)
    history = check_history(
        baseline, _log(3, seed=2, start="2026-02-10"), "1D", calibration=calibration, rule=rule
    )
    column = history.windows[0].drift.column("x")
    assert column.threshold == pytest.approx(calibration.threshold("x"))


def test_a_shift_above_the_noise_and_below_the_floor_is_a_warn_that_gives_its_size(
    baseline, calibration
):
    # k's shares move by PSI ≈ 0.03: far beyond 1,000-row noise, a third of the floor.
    moved = np.array([0.33, 0.3, 0.23, 0.14])
    psi = float(np.sum((moved - SHARES) * np.log(moved / SHARES)))
    assert 0.02 < psi < 0.05
    history = check_history(
        baseline, _log(6, seed=3, shares=moved, start="2026-02-10"), "1D", calibration=calibration
    )
    columns = [w.drift.column("k") for w in history.windows]
    assert not any(w.drift.dataset["drifted_columns"] for w in history.windows)
    warned = [c for c in columns if c.status == "warn"]
    assert len(warned) >= 4  # most windows: above the calibrated threshold
    for column in warned:
        assert column.details["reason"].startswith("PSI 0.0")
        assert "below the floor 0.1" in column.details["reason"]
    rows = [r for w in history.windows for r in w.results() if r.column == "k"]
    assert {r.status for r in rows if r.check == "feature_drift"} <= {"ok", "warn"}


def test_a_constant_column_is_quiet_while_it_stays_constant_and_a_finding_when_it_changes(
    baseline, calibration
):
    assert calibration.thresholds["flat"]["threshold"] == 0.0  # no noise at all
    quiet = check_history(
        baseline, _log(4, seed=4, start="2026-02-10"), "1D", calibration=calibration
    )
    for window in quiet.windows:
        assert window.drift.column("flat").status == "ok"
        assert window.drift.column("tag").status == "ok"
    changed = _log(4, seed=4, start="2026-02-10")
    changed.loc[changed.ts >= "2026-02-12", "flat"] = 8.0
    changed.loc[changed.ts >= "2026-02-12", "tag"] = "v2"
    history = check_history(baseline, changed, "1D", calibration=calibration)
    assert [w.drift.column("flat").status for w in history.windows] == [
        "ok",
        "ok",
        "alert",
        "alert",
    ]
    assert [w.drift.column("tag").status for w in history.windows] == ["ok", "ok", "alert", "alert"]
