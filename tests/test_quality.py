"""Each data quality check on data where the right answer is known."""

import numpy as np
import pandas as pd
import pytest

from keel.checks.quality import column_checks, freshness_check, volume_check
from keel.profile import Profile
from keel.schema import Schema


def _profiles(reference: pd.DataFrame, current: pd.DataFrame):
    schema = Schema.infer(reference)
    return schema, Profile.build(reference, schema), Profile.build(current, schema)


def _check(reference, current, column, metric):
    schema, ref, cur = _profiles(reference, current)
    results = column_checks(column, schema[column].kind, ref.columns[column], cur.columns[column])
    return {r.metric: r for r in results}.get(metric)


rng = np.random.default_rng(0)
NUMBERS = pd.DataFrame({"v": rng.lognormal(3, 0.5, 20_000)})


def test_a_null_spike_alerts_and_a_normal_share_does_not():
    current = NUMBERS.sample(5000, random_state=1).reset_index(drop=True)
    assert _check(NUMBERS, current, "v", "missing_share").status == "ok"
    current.loc[:1499, "v"] = None  # 30% missing
    result = _check(NUMBERS, current, "v", "missing_share")
    assert result.status == "alert" and result.value == pytest.approx(0.3)
    assert result.threshold == pytest.approx(0.02)


def test_nan_and_inf_appearing_alert():
    import pyarrow as pa

    current = NUMBERS.iloc[:1000].copy()
    assert _check(NUMBERS, current, "v", "nonfinite_count").status == "ok"
    values = current["v"].to_numpy().copy()
    values[3], values[4] = np.inf, np.nan  # a real NaN: Arrow keeps it apart from nulls
    result = _check(
        NUMBERS, pa.table({"v": pa.array(values, from_pandas=False)}), "v", "nonfinite_count"
    )
    assert result.status == "alert" and result.value == 2
    assert result.details["pos_inf"] == 1 and result.details["nan"] == 1


def test_values_outside_the_reference_range():
    inside = NUMBERS.sample(4000, random_state=2)
    assert _check(NUMBERS, inside, "v", "out_of_range_share").status == "ok"
    outside = inside.copy()
    outside.iloc[:200, 0] = NUMBERS["v"].max() * 2  # 5% beyond the maximum
    result = _check(NUMBERS, outside, "v", "out_of_range_share")
    assert result.status == "alert" and result.value == pytest.approx(0.05, abs=0.002)


@pytest.mark.parametrize("factor, expected", [(100, 100.0), (0.001, 0.001), (3, None)])
def test_a_unit_change_names_its_power_of_ten(factor, expected):
    current = NUMBERS.sample(5000, random_state=3) * factor
    result = _check(NUMBERS, current, "v", "unit_change")
    if expected is None:  # tripled values: a real change, but not a change of unit
        assert result.status == "ok"
    else:
        assert result.status == "alert" and result.details["likely_factor"] == expected


def test_a_shift_of_a_centred_column_is_not_taken_for_a_unit_change():
    centred = pd.DataFrame({"v": rng.normal(0, 1, 20_000)})
    shifted = pd.DataFrame({"v": rng.normal(0.5, 1, 5000)})
    assert _check(centred, shifted, "v", "unit_change").status == "ok"


def test_unseen_and_vanished_categories_are_listed():
    reference = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 10_000, p=[0.5, 0.4, 0.1])})
    current = pd.DataFrame(
        {"c": rng.choice(["a", "b", "new1", "new2"], 5000, p=[0.5, 0.45, 0.03, 0.02])}
    )
    unseen = _check(reference, current, "c", "unseen_share")
    assert unseen.status == "alert" and unseen.value == pytest.approx(0.05, abs=0.01)
    assert set(unseen.details["new_values"]) == {"new1", "new2"}
    vanished = _check(reference, current, "c", "vanished_categories")
    assert vanished.status == "alert" and vanished.details["vanished"] == ["c"]
    same = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 5000, p=[0.5, 0.4, 0.1])})
    assert _check(reference, same, "c", "unseen_share").status == "ok"
    assert _check(reference, same, "c", "vanished_categories").status == "ok"


def test_a_column_gone_constant_warns():
    current = pd.DataFrame({"v": np.full(500, 7.0)})
    assert _check(NUMBERS, current, "v", "constant").status == "warn"
    assert _check(NUMBERS, NUMBERS.iloc[:500], "v", "constant").status == "ok"


def test_volume_alerts_on_an_empty_or_far_off_window():
    # Judged against production's own recent windows (no longer the training set's rows).
    recent = [1000.0, 970.0, 1030.0, 1010.0, 990.0]
    assert volume_check(1000, recent).status == "ok"
    assert volume_check(0, recent).status == "alert"
    assert volume_check(300, recent).status == "alert"
    assert volume_check(2500, recent).status == "alert"
    assert volume_check(2500, expected_rows=2400).status == "ok"  # a declared rate
    assert volume_check(0, expected_rows=2400).status == "alert"
    assert volume_check(1000).status == "insufficient_data"  # nothing to judge it against


def test_freshness_alerts_when_the_newest_event_is_early_in_the_window():
    day = 86_400.0
    assert freshness_check("ts", 10 * day - 60, 10 * day, day).status == "ok"
    late = freshness_check("ts", 9 * day + 3600, 10 * day, day)
    assert late.status == "alert" and late.value == pytest.approx(day - 3600)
    assert freshness_check("ts", None, 10 * day, day).status == "insufficient_data"


def test_an_empty_window_is_insufficient_data_not_an_error():
    schema, reference, _ = _profiles(NUMBERS, NUMBERS)
    empty = Profile.empty(schema)
    results = column_checks("v", "numeric", reference.columns["v"], empty.columns["v"])
    assert [r.status for r in results] == ["insufficient_data"]


def test_a_share_alert_needs_an_excess_of_several_rows_not_one_row_in_a_small_window():
    reference = pd.DataFrame({"c": rng.choice(["a", "b"], 10_000), "v": rng.normal(size=10_000)})
    small = pd.DataFrame({"c": ["a", "b"] * 40, "v": rng.normal(size=80)})
    one_new = small.copy()
    one_new.loc[0, "c"], one_new.loc[0, "v"] = "z", 99.0  # 1 of 80 rows: 1.25%, over 1%
    unseen = _check(reference, one_new, "c", "unseen_share")
    beyond = _check(reference, one_new, "v", "out_of_range_share")
    assert unseen.value > 0.01 and unseen.status == "ok"
    assert beyond.value > 0.01 and beyond.status == "ok"
    assert unseen.details["min_excess_rows"] == 3
    three_new = small.copy()
    three_new.loc[:2, "c"], three_new.loc[:2, "v"] = "z", 99.0
    assert _check(reference, three_new, "c", "unseen_share").status == "alert"
    assert _check(reference, three_new, "v", "out_of_range_share").status == "alert"
    with_nulls = small.copy()
    with_nulls.loc[:1, "v"] = None  # 2 of 80 missing: 2.5%, over 2 points, but 2 rows
    assert _check(reference, with_nulls, "v", "missing_share").status == "ok"


def test_a_model_outputs_new_values_are_a_prediction_drift_warning_not_a_quality_alert():
    from keel.baseline import Baseline
    from keel.history import check_history

    reference = pd.DataFrame({"x": rng.normal(size=4000), "label": rng.choice(["yes", "no"], 4000)})
    current = pd.DataFrame({"x": rng.normal(size=1000), "label": ["maybe"] * 1000})
    baseline = Baseline.from_data(reference, prediction="label", sample_size=0)
    (window,) = check_history(baseline, current, window="1000rows").windows
    findings = [r for r in window.quality if r.column == "label" and r.metric == "unseen_share"]
    assert [(r.check, r.status) for r in findings] == [("prediction_drift", "warn")]
    assert "a model output" in findings[0].details["reason"]
    assert not any(r.check == "quality" and r.status == "alert" for r in window.quality)
    assert window.diagnosis.verdict != "pipeline fault"
