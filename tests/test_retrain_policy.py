"""The retrain policy: which diagnoses trigger a retrain, which page people, and why it waits."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from keel.retrain.gate import GateConfig
from keel.retrain.horizon import accuracy_horizon
from keel.retrain.policy import RetrainPolicy, WindowDiagnosis, decide

NOW = datetime(2026, 4, 6)
WEEK = timedelta(days=7)


def _weeks(*verdicts: str | tuple[str, str]) -> list[WindowDiagnosis]:
    """Weekly windows ending at NOW, oldest first."""
    out = []
    for i, v in enumerate(verdicts):
        verdict, summary = v if isinstance(v, tuple) else (v, "")
        end = NOW - WEEK * (len(verdicts) - 1 - i)
        out.append(WindowDiagnosis(end - WEEK, end, verdict, summary))
    return out


POLICY = RetrainPolicy.model_validate({"min_matured_labels": 1000})


def test_concept_drift_retrains_on_twelve_weeks_without_the_faulty_windows():
    windows = _weeks("healthy", "pipeline fault", "healthy", "concept drift")
    decision = decide(POLICY, windows, NOW, last_retrain=None, matured_labels=5000)
    assert decision.retrain and decision.trigger == "concept drift"
    assert decision.training_window == (NOW - 12 * WEEK, NOW)
    assert decision.excluded_windows == ((windows[1].window_start, windows[1].window_end),)
    assert "excluding 1 window" in decision.reason


@pytest.mark.parametrize("verdict", ["pipeline fault", "training–serving skew"])
def test_a_pipeline_fault_or_skew_pages_and_never_retrains(verdict):
    windows = _weeks("concept drift", (verdict, "unit change: income in cents"))
    decision = decide(POLICY, windows, NOW, last_retrain=None, matured_labels=5000)
    assert decision.action == "page" and not decision.retrain
    assert verdict in decision.reason and "learn the fault" in decision.reason


def test_a_pipeline_fault_cannot_be_declared_a_trigger():
    with pytest.raises(ValidationError, match="never triggers a retrain"):
        RetrainPolicy.model_validate({"triggers": [{"verdict": "pipeline fault"}]})


def test_data_drift_triggers_only_when_it_hurts_the_model():
    hurting = (
        "data drift",
        "data drift: income; estimated accuracy 0.79 vs 0.85 (-7%): data drift hurting the model",
    )
    decision = decide(POLICY, _weeks(hurting), NOW, None, 5000)
    assert decision.trigger == "data drift hurting the model"
    harmless = decide(POLICY, _weeks(("data drift", "data drift: zip")), NOW, None, 5000)
    assert harmless.action == "none" and "data drift" in harmless.reason


def test_for_needs_consecutive_windows():
    policy = RetrainPolicy.model_validate({"triggers": [{"verdict": "concept drift", "for": 2}]})
    assert not decide(policy, _weeks("healthy", "concept drift"), NOW, None, 5000).retrain
    assert decide(policy, _weeks("concept drift", "concept drift"), NOW, None, 5000).retrain


def test_concept_drift_is_read_from_the_latest_windows_whose_labels_have_come():
    # Labels come weeks late: the newest windows are "healthy" only because nothing can be
    # told yet; the concept drift the labelled window showed still triggers.
    from dataclasses import replace

    windows = _weeks("healthy", "concept drift", "healthy", "healthy")
    windows = [replace(w, judged=i < 2) for i, w in enumerate(windows)]
    decision = decide(POLICY, windows, NOW, last_retrain=None, matured_labels=5000)
    assert decision.retrain and decision.trigger == "concept drift"
    # Once the labels of a later window say it is healthy, the drift is no longer current.
    windows[2] = replace(windows[2], judged=True)
    assert not decide(POLICY, windows, NOW, last_retrain=None, matured_labels=5000).retrain
    # A fault in the newest window still pages, judged by labels or not.
    windows[3] = replace(windows[3], verdict="pipeline fault")
    assert decide(POLICY, windows, NOW, None, 5000).action == "page"


def test_it_waits_for_the_interval_and_for_matured_labels_and_says_so():
    windows = _weeks("concept drift")
    soon = decide(POLICY, windows, NOW, last_retrain=NOW - timedelta(days=3), matured_labels=5000)
    assert soon.action == "wait" and "min_interval is 7d" in soon.reason
    assert (NOW + timedelta(days=4)).isoformat() in soon.reason
    few = decide(POLICY, windows, NOW, last_retrain=None, matured_labels=400)
    assert few.action == "wait" and "only 400 of min_matured_labels 1000" in few.reason


def test_the_schedule_is_a_fallback_when_no_trigger_fires():
    policy = RetrainPolicy.model_validate({"schedule": "30d"})
    quiet = _weeks("healthy", "healthy")
    assert decide(policy, quiet, NOW, NOW - timedelta(days=31), 5000).trigger == "schedule 30d"
    assert decide(policy, quiet, NOW, NOW - timedelta(days=10), 5000).action == "none"


def test_two_triggers_at_once_make_one_decision():
    hurting = ("data drift", "…: data drift hurting the model")
    policy = RetrainPolicy.model_validate(
        {"triggers": [{"verdict": "data drift hurting the model"}, {"verdict": "data drift"}]}
    )
    decision = decide(policy, _weeks(hurting), NOW, None, 5000)
    assert decision.retrain and decision.trigger == "data drift hurting the model"


def test_a_diagnosis_result_row_is_read_from_its_details():
    row = {
        "window_start": "2026-03-30T00:00:00",
        "window_end": "2026-04-06T00:00:00",
        "details": {"verdict": "concept drift", "summary": "concept drift: accuracy fell"},
    }
    window = WindowDiagnosis.from_mapping(row)
    assert window.window_end == NOW and window.shows("concept drift")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"margins": {"acuracy": 0.01}}, "unknown metric"),
        (
            {"primary_metric": "roc_auc", "margins": {"roc_auc": 0.01}, "sequential": True},
            "stays fixed-horizon",
        ),
        ({"primary_metric": "recall"}, "give the primary metric"),
        ({"min_interval": "a week"}, "number and a unit"),
        ({"entrypoint": "train.py"}, "module:function"),
        ({"approval": "maybe"}, "approval"),
        ({"retrain_on": "drift"}, "Extra inputs"),
    ],
)
def test_bad_policies_are_refused_with_a_reason(block, message):
    with pytest.raises(ValidationError, match=message):
        RetrainPolicy.model_validate(block)


def test_the_policy_plans_its_horizon_and_builds_its_gate():
    policy = RetrainPolicy.model_validate(
        {
            "min_effect": 0.02,
            "margins": {"accuracy": 0.01, "recall": 0.03, "log_loss": 0.02},
            "alpha": 0.05,
            "power": 0.8,
        }
    )
    horizon = policy.planned_horizon(discordant_share=0.2)
    assert horizon.parts["accuracy"] == accuracy_horizon(0.02, 0.2, 0.05, 0.8)
    assert horizon.parts["recall"] == accuracy_horizon(0.0, 0.2, 0.05, 0.8, margin=0.03)
    assert horizon.n == max(horizon.parts.values()) and horizon.unplanned == ("log_loss",)
    gate = policy.gate_config(horizon.n)
    assert isinstance(gate, GateConfig) and gate.horizon == horizon.n
    assert gate.margins == policy.margins and gate.sequential is False
