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


def _shifted_k(days: int, seed: int, start="2026-02-10") -> pd.DataFrame:
    return _log(days, seed=seed, shares=np.array([0.1, 0.2, 0.3, 0.4]), start=start)  # PSI ≈ 1.1


def _k_shifted_history(baseline, calibration, days, seed, k_importance=0.01, **options):
    """Daily windows in which only ``k`` moved (PSI ≈ 1.1), ``k`` given that importance."""
    importance = {"x": 1 - k_importance, "k": k_importance}
    return check_history(
        baseline,
        _shifted_k(days, seed=seed),
        "1D",
        calibration=calibration,
        importance=importance,
        **options,
    )


def test_drift_in_a_feature_of_little_importance_warns_and_says_why(baseline, calibration):
    history = _k_shifted_history(baseline, calibration, days=3, seed=5)
    for window in history.windows:
        k = window.drift.column("k")
        assert k.status == "warn" and k.details["unimportant"]
        assert "importance 0.01 is below min_importance 0.02" in k.details["reason"]
        assert window.drift.dataset["drifted_columns"] == []
        assert window.drift.dataset["unimportant_drift"] == ["k"]
        assert not window.alert
        assert window.diagnosis.verdict == "healthy" and "1 warning (k)" in window.diagnosis.summary
    # The same drift in a feature that matters pages; so does every drift at min_importance 0.
    key = _k_shifted_history(baseline, calibration, days=1, seed=5, k_importance=0.5)
    assert key.windows[0].drift.dataset["drifted_columns"] == ["k"]
    every = _k_shifted_history(baseline, calibration, days=1, seed=5, min_importance=0.0)
    assert every.windows[0].drift.dataset["drifted_columns"] == ["k"]


def test_a_performance_fall_beside_an_unimportant_drift_pages_it_and_is_not_blamed_on_it(
    baseline, calibration
):
    from keel.result import Result

    history = _k_shifted_history(baseline, calibration, days=1, seed=6)
    window = history.windows[0]
    fell = Result("performance", None, "roc_auc", 0.51, 0.74, "alert")
    window.judge_with([fell])
    k = window.drift.column("k")
    assert k.status == "alert" and k.details["paged_because"] == (
        "performance alerts in the same window"
    )
    assert window.drift.dataset["drifted_columns"] == ["k"]
    assert window.diagnosis.verdict == "concept drift"
    assert window.diagnosis.summary.startswith(
        "concept drift or drift outside the model's view: roc_auc 0.51 vs 0.74"
    )
    assert "k (" in window.diagnosis.summary and "importance 0.01" in window.diagnosis.summary
    # The verdict stored with the window is the one a status, a report and a notice read.
    (stored,) = [r for r in window.results() if r.check == "diagnosis"]
    assert stored.details["verdict"] == "concept drift" and stored.status == "alert"


def test_volume_is_judged_against_production_not_the_training_sets_rows(baseline, reference):
    # Training brought 1,000 rows a day; production brings 3,000, steadily, then one day 900.
    production = pd.concat(
        [
            _log(6, seed=7, rows=3000, start="2026-02-10"),
            _log(1, seed=8, rows=900, start="2026-02-16"),
        ]
    )
    history = check_history(baseline, production, "1D", reference=reference)
    volume = [next(r for r in w.quality if r.metric == "volume") for w in history.windows]
    assert [r.status for r in volume] == ["insufficient_data"] + ["ok"] * 5 + ["alert"]
    assert "no earlier production window" in volume[0].details["reason"]
    assert volume[-1].details["expected_rows"] == pytest.approx(3000, rel=0.05)
    assert [w.diagnosis.verdict for w in history.windows[:6]] == ["healthy"] * 6
    # A declared rate decides from the first window.
    declared = check_history(baseline, production, "1D", reference=reference, expected_rows=3000)
    statuses = [next(r for r in w.quality if r.metric == "volume").status for w in declared.windows]
    assert statuses == ["ok"] * 6 + ["alert"]
    # The README's recipe, calibrated on training, no longer calls every window a fault.
    assert not any(w.diagnosis.verdict == "pipeline fault" for w in declared.windows[:6])


def test_a_window_with_an_alerting_quality_check_is_never_healthy(baseline, calibration):
    window = _log(1, seed=9, start="2026-02-10")
    window.loc[window.index[:15], "x"] = 4.5  # 1.5% past the reference's largest, 4.16
    history = check_history(baseline, window, "1D", calibration=calibration)
    (only,) = history.windows
    (beyond,) = [r for r in only.quality if r.metric == "out_of_range_share" and r.column == "x"]
    assert beyond.status == "alert" and not only.drift.dataset["drifted_columns"]
    assert only.diagnosis.verdict != "healthy"


def test_an_alert_no_rule_explains_is_said_so_and_a_warn_is_counted():
    from keel.diagnosis import diagnose
    from keel.result import Result

    labels = Result("target_drift", "defaulted", "psi", 0.4, 0.1, "alert")
    diagnosis = diagnose([labels])
    assert diagnosis.verdict == "unexplained alert"
    assert "target drift: psi in defaulted" in diagnosis.summary
    constant = Result("quality", "x", "constant", 1.0, 0.0, "warn", details={"reason": "r"})
    assert diagnose([constant]).summary == "healthy: no check alerted; 1 warning (x)"


def test_every_drifted_feature_is_named_and_outputs_are_never_inputs():
    from keel.diagnosis import diagnose
    from keel.result import Result

    drifted = [
        Result("feature_drift", f"f{i}", "wasserstein", 0.2 + i / 100, 0.1, "alert")
        for i in range(8)
    ]
    joint = [
        Result(
            "multivariate",
            None,
            "domain_auc",
            0.9,
            0.55,
            "alert",
            details={"top_columns": ["score", "f1"]},
        ),
        Result("multivariate", None, "reconstruction_error", 3.0, 1.2, "alert"),
    ]
    output = Result("prediction_drift", "score", "wasserstein", 0.5, 0.1, "alert")
    diagnosis = diagnose([*drifted, *joint, output])
    assert diagnosis.verdict == "data drift"
    summary = diagnosis.summary
    for name in ("f7", "f6", "f5", "f4", "f3"):
        assert f"{name} (" in summary
    assert "and 3 more (f2, f1, f0)" in summary
    inputs = [c for c in diagnosis.causes if c["check"] != "prediction_drift"]
    assert "score" not in {c["column"] for c in inputs}
    assert summary.endswith("; model outputs moved (score)")


def test_a_column_whose_scale_a_few_extremes_set_is_named_and_measured_in_robust_scales():
    from scipy.stats import wasserstein_distance

    from keel.calibration import exact_wasserstein_loo
    from keel.checks.drift import TableSide, compare_sides

    rng = np.random.default_rng(12)
    heavy = rng.normal(size=20_000)
    heavy[:20] = 1e4  # 0.1% of rows set the standard deviation (≈ 316 against IQR ≈ 1.35)
    frame = pd.DataFrame({"heavy": heavy, "calm": rng.normal(size=20_000)})
    baseline = Baseline.from_data(frame, sample_size=0)
    assert len(baseline.notes) == 1
    assert baseline.notes[0].startswith("a few extreme values set the scale of heavy")
    # A real 0.5σ shift of the bulk reads as 0.5 robust scales, not 0.002 standard deviations.
    moved = pd.DataFrame({"heavy": rng.normal(size=5000) + 0.5, "calm": rng.normal(size=5000)})
    report = compare_sides(TableSide.from_data(frame), TableSide.from_data(moved))
    column = report.column("heavy")
    assert column.details["wasserstein_scale"] == "robust"
    robust = np.subtract(*np.quantile(heavy, [0.75, 0.25], method="inverted_cdf")) / 1.349
    expected = wasserstein_distance(heavy, moved["heavy"]) / robust  # scipy, independently
    assert column.effect_size == pytest.approx(expected, rel=1e-9)
    assert column.drift and not report.column("calm").drift
    # Calibration's exact leave-one-out statistic uses the same unit.
    parts = [np.sort(heavy[i::5]) for i in range(5)]
    rest = np.concatenate(parts[1:])
    rest_robust = np.subtract(*np.quantile(rest, [0.75, 0.25], method="inverted_cdf")) / 1.349
    assert exact_wasserstein_loo(parts)[0] == pytest.approx(
        wasserstein_distance(parts[0], rest) / rest_robust, rel=1e-9
    )


def test_roles_are_validated_when_the_baseline_is_made():
    from keel.errors import DataError

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0] * 20, "y": ["a", "b", "a"] * 20})
    with pytest.raises(DataError, match="both the target and the score"):
        Baseline.from_data(frame, target="x", score="x", sample_size=0)
    with pytest.raises(DataError, match="a score is a number"):
        Baseline.from_data(frame, score="y", sample_size=0)
    assert Baseline.from_data(frame, prediction="y", sample_size=0).schema["y"].role == (
        "prediction"
    )


def _seasonal(days: int, seed: int, start: str = "2026-01-01", spread: float = 1.0):
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(days), 1000)
    offset = (pd.Timestamp(start, tz="UTC") - pd.Timestamp("2026-01-01", tz="UTC")).days
    season = 0.6 * np.sin(2 * np.pi * (day + offset) / 7)  # a weekly swing of ±0.6σ
    times = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(
        day * 86_400 + rng.uniform(0, 86_399, len(day)), unit="s"
    )
    frame = pd.DataFrame({"ts": times, "x": season + spread * rng.normal(size=len(day))})
    return frame.sort_values("ts").reset_index(drop=True)


def test_a_collapse_in_spread_is_named_though_seasons_make_wassersteins_threshold_wide():
    reference = _seasonal(70, seed=13)
    baseline = Baseline.from_data(reference, timestamp="ts", sample_size=0)
    calibration = Calibration.fit(baseline, reference, "1D")
    assert calibration.spread_thresholds["x"]["threshold"] < 0.3
    quiet = check_history(baseline, _seasonal(14, 14, "2026-03-12"), "1D", calibration=calibration)
    assert sum(bool(w.drift.dataset["drifted_columns"]) for w in quiet.windows) <= 1
    collapsed = _seasonal(7, seed=15, start="2026-03-12", spread=0.5)
    history = check_history(baseline, collapsed, "1D", calibration=calibration)
    for window in history.windows:
        x = window.drift.column("x")
        assert x.effect_size < x.threshold  # Wasserstein alone would not see it
        assert x.drift and x.details["spread_changed"].startswith("robust spread ×0.")
