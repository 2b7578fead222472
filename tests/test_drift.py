"""The drift engine end to end in Python: verdicts on data where the right answer is known."""

import numpy as np
import pandas as pd
import pytest

from keel import compare as api
from keel.baseline import Baseline
from keel.errors import ConfigError
from keel.stats.verdict import DefaultRule

from .conftest import make_table


def test_the_shifted_column_and_only_it_drifts_in_both_modes():
    reference, current = make_table(20_000, seed=1), make_table(20_000, seed=2, shift=0.3)
    for exact in (False, True):
        report = api.drift(reference, current, exact=exact)
        assert report.dataset["drifted_columns"] == ["x"]
        assert [c.column for c in report.columns] == ["x", "y", "z", "color"]  # the id is left out
        x = report.column("x")
        assert x.method == "ks" and x.effect_method == "wasserstein"
        assert x.effect_size == pytest.approx(0.3, abs=0.05)
        assert x.p_value_adjusted < 0.05


def test_profile_and_exact_modes_agree_on_small_data():
    reference, current = make_table(800, seed=3), make_table(600, seed=4, scale=1.5)
    profile_mode = api.drift(reference, current)
    exact_mode = api.drift(reference, current, exact=True)
    for a, b in zip(profile_mode.columns, exact_mode.columns, strict=True):
        assert a.statistic == pytest.approx(b.statistic, rel=1e-12)
        assert a.p_value == pytest.approx(b.p_value, rel=1e-9)


def test_a_tiny_shift_on_a_million_rows_is_significant_but_below_the_floor():
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"v": rng.normal(0, 1, 1_000_000)})
    current = pd.DataFrame({"v": rng.normal(0.03, 1, 1_000_000)})
    column = api.drift(reference, current).column("v")
    assert column.p_value_adjusted < 1e-6  # a test alone would cry wolf
    assert column.effect_size < column.effect_floor
    assert not column.drift


def test_a_shrinking_small_category_drifts_although_few_rows_moved():
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"plan": rng.choice(["basic", "pro"], 50_000, p=[0.9, 0.1])})
    current = pd.DataFrame({"plan": rng.choice(["basic", "pro"], 50_000, p=[0.99, 0.01])})
    column = api.drift(reference, current).column("plan")
    assert column.drift and column.effect_method == "psi" and column.effect_size > 0.2


def test_benjamini_hochberg_adjusts_across_columns():
    reference, current = make_table(3000, seed=7), make_table(3000, seed=8, shift=0.2)
    report = api.drift(reference, current)
    raw = sorted(c.p_value for c in report.columns)
    adjusted = sorted(c.p_value_adjusted for c in report.columns)
    assert all(a >= r for a, r in zip(adjusted, raw, strict=True))
    assert adjusted[-1] == pytest.approx(raw[-1])  # the largest is left as it is


def test_a_chosen_method_decides_by_its_threshold():
    reference, current = make_table(5000, seed=9), make_table(5000, seed=10, shift=0.15)
    report = api.drift(reference, current, method="psi")
    x = report.column("x")
    assert (x.method, x.rule, x.threshold, x.p_value) == ("psi", "method", 0.1, None)
    assert x.drift == (x.statistic >= 0.1)
    strict = api.drift(reference, current, methods={"x": "psi"}, thresholds={"x": 0.001})
    assert strict.column("x").drift and strict.column("y").method == "ks"


def test_unknown_or_unfit_methods_are_refused():
    frame = make_table(100, seed=1)
    with pytest.raises(ConfigError, match="unknown drift method 'kss'"):
        api.drift(frame, frame, method="kss")
    with pytest.raises(ConfigError, match="'ks' is for numeric columns, not categorical"):
        api.drift(frame, frame, methods={"color": "ks"})


def test_missing_new_retyped_and_empty_columns_are_findings_not_crashes():
    reference = make_table(2000, seed=11)
    current = make_table(2000, seed=12).drop(columns=["y"])
    current["z"] = current["z"].astype(str)  # numbers arriving as strings
    current["x"] = np.nan
    current["extra"] = 1.0
    report = api.drift(reference, current)
    assert report.column("y").status == "error" and "missing" in report.column("y").finding
    assert report.column("z").status == "error" and "type changed" in report.column("z").finding
    assert report.column("x").status == "insufficient_data"
    levels = {f["column"]: f["level"] for f in report.dataset["findings"]}
    # x became entirely NaN: not drift (nothing to compare), but a data-quality alert.
    assert levels == {"y": "alert", "z": "alert", "x": "alert", "extra": "warn"}
    assert report.alert and not report.drift


def test_a_single_row_and_nan_inf_values_are_handled():
    reference = make_table(500, seed=13)
    one_row = make_table(1, seed=14)
    assert not api.drift(reference, one_row).drift
    noisy = make_table(500, seed=15)
    noisy.loc[::10, "y"] = np.inf
    noisy.loc[5::10, "y"] = np.nan
    column = api.drift(reference, noisy).column("y")
    assert column.current_count == 400 and column.status == "ok"


def test_a_baseline_is_a_reference_and_bins_are_exact_on_both_sides():
    reference, current = make_table(30_000, seed=16), make_table(10_000, seed=17, shift=0.5)
    baseline = Baseline.from_data(reference, sample_size=100)
    report = api.drift(baseline, current, method="psi")
    assert report.column("x").details["exact_bins"] is True
    assert report.dataset["drifted_columns"] == ["x"]
    assert report.dataset["reference"]["name"] == f"baseline {baseline.id}"


def test_custom_alpha_and_floors_change_the_verdict():
    reference, current = make_table(5000, seed=18), make_table(5000, seed=19, shift=0.15)
    assert api.drift(reference, current).column("x").drift
    lenient = api.drift(reference, current, rule=DefaultRule(numeric_floor=0.5))
    assert not lenient.column("x").drift


def test_the_bins_option_reaches_the_binned_methods_and_says_whether_counts_are_exact():
    small_reference, small_current = make_table(500, seed=20), make_table(500, seed=21)
    report = api.drift(small_reference, small_current, method="psi", bins=20)
    x = report.column("x")
    assert x.details["bins"] == 20 and x.details["exact_bins"] is True  # tiny: exact sketch
    # Past 200,000 values a column's quantiles are summarized, no longer kept whole.
    large = api.drift(
        make_table(250_000, seed=22), make_table(50_000, seed=23), method="psi", bins=5
    )
    assert large.column("x").details["bins"] == 5
    assert large.column("x").details["exact_bins"] is False  # the reference's came off a sketch
