"""Each window's verdict, on generated weeks where the truth is planted."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from keel.baseline import Baseline
from keel.calibration import Calibration
from keel.demo import score, train_model
from keel.diagnosis import diagnose, surrogate_importance
from keel.history import baseline_importance, check_history
from keel.result import Result
from keel.scenario import SCORED_ROLES, generate


@pytest.fixture(scope="module")
def weeks():
    scenario = generate(seed=11, training_weeks=22, week_rows=4000)
    model, _ = train_model(scenario.training, seed=11)
    training = score(model, scenario.training)
    baseline = Baseline.from_data(training, **SCORED_ROLES, sample_size=5000)
    calibration = Calibration.fit(baseline, training, "7D", false_alarm_rate=0.001)
    production = score(model, scenario.production()).drop_columns(["defaulted"])
    history = check_history(
        baseline, production, "7D", calibration=calibration, false_alarm_rate=0.001
    )
    return scenario, model, baseline, calibration, history


def _verdict(history, week):
    return history.windows[week - 1].diagnosis


def test_a_quiet_week_is_healthy(weeks):
    *_, history = weeks
    assert [_verdict(history, week).verdict for week in (1, 2, 3, 4)] == ["healthy"] * 4


def test_a_covariate_shift_is_data_drift_led_by_the_columns_that_moved(weeks):
    *_, history = weeks
    diagnosis = _verdict(history, 5)
    assert diagnosis.verdict == "data drift"
    leaders = {cause["column"] for cause in diagnosis.causes[:2]}
    assert leaders == {"age", "income"}
    assert "model outputs moved" in diagnosis.summary


def test_a_unit_change_and_a_null_spike_are_pipeline_faults(weeks):
    *_, history = weeks
    unit, nulls = _verdict(history, 7), _verdict(history, 9)
    assert unit.verdict == "pipeline fault" and "unit change in amount" in unit.summary
    assert nulls.verdict == "pipeline fault" and "missing in income" in nulls.summary


def test_outputs_that_move_with_every_input_stable_are_prediction_drift(weeks):
    scenario, model, baseline, calibration, _ = weeks
    week = score(model, scenario.weeks[0]).drop_columns(["defaulted"])
    # The same inputs, a recalibrated model upstream: every score 0.15 higher.
    moved = pc.min_element_wise(pc.add(week["score"], 0.15), 1.0)
    week = week.set_column(week.schema.get_field_index("score"), "score", moved)
    history = check_history(baseline, week, "7D", calibration=calibration, false_alarm_rate=0.001)
    diagnosis = history.windows[0].diagnosis
    assert diagnosis.verdict == "prediction drift without feature drift"
    assert "score" in diagnosis.summary


def test_realized_performance_down_with_inputs_stable_is_concept_drift():
    stable = Result("feature_drift", "age", "wasserstein", 0.01, 0.1, "ok")
    fell = Result("performance", None, "roc_auc", 0.61, 0.7, "alert")
    assert diagnose([stable, fell]).verdict == "concept drift"
    moved = Result("feature_drift", "age", "wasserstein", 0.4, 0.1, "alert")
    assert diagnose([moved, fell]).verdict == "data drift"  # the inputs explain it first


def test_drift_is_ranked_by_drift_times_the_importance_the_user_gives():
    small_but_key = Result("feature_drift", "income", "wasserstein", 0.15, 0.1, "alert")
    large_but_idle = Result("feature_drift", "zip", "wasserstein", 0.6, 0.1, "alert")
    ranked = diagnose([small_but_key, large_but_idle], {"income": 0.9, "zip": 0.01})
    assert [c["column"] for c in ranked.causes] == ["income", "zip"]
    unweighted = diagnose([small_but_key, large_but_idle])
    assert [c["column"] for c in unweighted.causes] == ["zip", "income"]


def test_the_surrogate_finds_what_the_model_uses(weeks):
    _, _, baseline, _, _ = weeks
    importance = baseline_importance(baseline)
    # The scenario's default risk is driven by income and amount; device does not enter it.
    assert importance["income"] > importance["device"]
    assert max(importance, key=importance.get) in {"income", "amount", "age"}


def test_the_surrogate_handles_categories_and_too_little_data():
    rng = np.random.default_rng(1)
    colour = rng.choice(["red", "blue"], 3000)
    frame = pa.table(
        {"colour": colour, "noise": rng.normal(size=3000), "score": (colour == "red") * 1.0}
    )
    weights = surrogate_importance(frame, ["colour", "noise"], "score")
    assert weights["colour"] > 0.5 > weights["noise"]
    assert surrogate_importance(frame.slice(0, 10), ["colour", "noise"], "score") == {}


def test_the_verdict_is_a_result_that_is_stored_with_the_window(weeks):
    *_, history = weeks
    rows = [r for r in history.windows[6].results() if r.check == "diagnosis"]
    assert len(rows) == 1 and rows[0].metric == "verdict" and rows[0].status == "alert"
    assert rows[0].details["verdict"] == "pipeline fault"
    assert rows[0].window_start == history.windows[6].start
