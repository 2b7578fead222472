"""The gate decides from paired outcomes, says which condition failed, and plans its horizon.

The horizon's closed form is checked by simulation at the n it gives; the gate's
decisions on data built so that the right answer is known (a clear winner, a tie, a
winner overall that loses a large segment, a guarded metric that falls).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from keel.errors import ConfigError, DataError
from keel.retrain import paired
from keel.retrain.gate import GateConfig, Outcomes, evaluate_gate
from keel.retrain.horizon import accuracy_horizon, discordant_share, paired_horizon
from keel.seeds import derive_seed

# --- the horizon -------------------------------------------------------------------------------


def test_superiority_horizon_gives_the_planned_power_in_simulation():
    n = accuracy_horizon(min_effect=0.02, discordant_share=0.2, alpha=0.05, power=0.8)
    rng = np.random.default_rng(derive_seed("test", "horizon", "superiority"))
    counts = rng.multinomial(n, [0.11, 0.09, 0.80], size=4000)
    power = np.mean(paired.mcnemar_mid_p(counts[:, 0], counts[:, 1]) < 0.05)
    assert power == pytest.approx(0.80, abs=0.025)
    # Half the horizon leaves the test well short of its power: the formula is not slack.
    half = rng.multinomial(n // 2, [0.11, 0.09, 0.80], size=4000)
    assert np.mean(paired.mcnemar_mid_p(half[:, 0], half[:, 1]) < 0.05) < 0.6


def test_non_inferiority_horizon_gives_the_planned_power_in_simulation():
    n = accuracy_horizon(min_effect=0.0, discordant_share=0.1, alpha=0.05, power=0.9, margin=0.02)
    rng = np.random.default_rng(derive_seed("test", "horizon", "margin"))
    counts = rng.multinomial(n, [0.05, 0.05, 0.90], size=4000)
    passed = paired.tango_lower(counts[:, 0], counts[:, 1], n, 0.05) > -0.02
    assert np.mean(passed) == pytest.approx(0.90, abs=0.02)


def test_mean_difference_horizon_matches_the_t_test_in_simulation():
    n = paired_horizon(effect=0.05, null=0.0, sd_alternative=0.5, alpha=0.05, power=0.8)
    rng = np.random.default_rng(4)
    d = rng.normal(0.05, 0.5, size=(3000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / np.sqrt(n))
    assert np.mean(t > 1.6449) == pytest.approx(0.80, abs=0.025)


def test_discordant_share_needs_no_labels():
    assert discordant_share([1, 0, 1, 1], [1, 1, 0, 1]) == 0.5
    with pytest.raises(ValueError, match="cannot carry"):
        accuracy_horizon(min_effect=0.3, discordant_share=0.2)


# --- the gate ----------------------------------------------------------------------------------


def _paired(rng, n, p10, p01, positive_share=0.5):
    """Labels and two classifiers with p10 = P(challenger right, champion wrong), p01 the
    reverse, both right on 70% of the rest."""
    y = (rng.random(n) < positive_share).astype(int)
    u = rng.random(n)
    champion_right = (u >= p10) & ((u < p10 + p01) | (rng.random(n) < 0.7))
    challenger_right = (u < p10) | ((u >= p10 + p01) & champion_right)
    return y, np.where(champion_right, y, 1 - y), np.where(challenger_right, y, 1 - y)


def _config(**kw):
    return GateConfig(
        **{"primary": "accuracy", "margins": {"accuracy": 0.01}, "horizon": 4000, **kw}
    )


def test_a_clear_winner_is_promoted_with_its_numbers():
    y, a, b = _paired(np.random.default_rng(1), 6000, 0.14, 0.06)
    report = evaluate_gate(Outcomes(predictions=a), Outcomes(predictions=b), y, _config())
    assert report.status == "promote"
    superiority = report.conditions[0]
    assert superiority.kind == "superiority" and superiority.method == "tango"
    assert superiority.estimate == pytest.approx(np.mean(b == y) - np.mean(a == y))
    assert "McNemar mid-p" in superiority.note and report.reason.startswith("promote")


def test_equal_models_keep_the_champion_and_the_report_names_superiority():
    rng = np.random.default_rng(2)
    y = (rng.random(6000) < 0.5).astype(int)
    a = np.where(rng.random(6000) < 0.8, y, 1 - y)
    b = a.copy()  # exactly as accurate: 600 of a's right answers and 600 of its wrong ones flip
    flip = np.r_[np.flatnonzero(a == y)[:600], np.flatnonzero(a != y)[:600]]
    b[flip] = 1 - b[flip]
    report = evaluate_gate(Outcomes(predictions=a), Outcomes(predictions=b), y, _config())
    assert report.status == "keep_champion"
    assert report.failed[0].kind == "superiority" and "accuracy" in report.reason


def test_below_the_horizon_even_a_large_win_is_insufficient_data():
    y, a, b = _paired(np.random.default_rng(3), 2000, 0.25, 0.02)
    report = evaluate_gate(Outcomes(predictions=a), Outcomes(predictions=b), y, _config())
    assert report.status == "insufficient_data" and "2000 of 4000" in report.reason
    assert report.conditions[0].passed  # the running estimate is shown, and does not promote


def test_a_shadow_that_dropped_requests_is_refused():
    y, a, b = _paired(np.random.default_rng(4), 6000, 0.14, 0.06)
    report = evaluate_gate(
        Outcomes(predictions=a), Outcomes(predictions=b), y, _config(), shadow_drop_share=0.02
    )
    assert report.status == "refused" and "dropped 2.00%" in report.reason


def test_a_large_segment_the_challenger_loses_blocks_promotion():
    rng = np.random.default_rng(5)
    y1, a1, b1 = _paired(rng, 5000, 0.20, 0.04)  # much better in "us"
    y2, a2, b2 = _paired(rng, 1500, 0.04, 0.10)  # 6 points worse in "eu"
    y, a, b = np.r_[y1, y2], np.r_[a1, a2], np.r_[b1, b2]
    segments = np.r_[["us"] * 5000, ["eu"] * 1500]
    report = evaluate_gate(
        Outcomes(predictions=a), Outcomes(predictions=b), y, _config(), segments=segments
    )
    assert report.status == "keep_champion"
    assert [(c.metric, c.segment) for c in report.failed] == [("accuracy", "eu")]
    assert "segment 'eu'" in report.reason
    # The same loss in a segment below min_segment_labels is reported and does not gate.
    small = evaluate_gate(
        Outcomes(predictions=a),
        Outcomes(predictions=b),
        y,
        _config(min_segment_labels=2000),
        segments=segments,
    )
    eu = next(c for c in small.conditions if c.segment == "eu")
    assert small.status == "promote" and not eu.passed and not eu.gating


def test_a_guarded_metric_that_falls_blocks_promotion():
    rng = np.random.default_rng(6)
    y = (rng.random(8000) < 0.5).astype(int)
    a = np.where(rng.random(8000) < 0.8, y, 1 - y)
    b = a.copy()
    negatives, positives = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    b[negatives] = y[negatives]  # every negative right: specificity up a lot
    flip = positives[rng.random(len(positives)) < 0.05]
    b[flip] = 1 - y[flip]  # 5% of positives now wrong: recall down
    config = _config(margins={"accuracy": 0.01, "recall": 0.01, "specificity": 0.01})
    report = evaluate_gate(Outcomes(predictions=a), Outcomes(predictions=b), y, config)
    assert report.conditions[0].passed  # accuracy improved...
    assert report.status == "keep_champion" and report.failed[0].metric == "recall"


def test_every_metric_family_is_measured_with_its_method():
    rng = np.random.default_rng(7)
    n = 3000
    y = (rng.random(n) < 0.4).astype(int)
    sa, sb = (
        1 / (1 + np.exp(-(2 * y - 1) * 1.0 - rng.normal(0, 1, n))),
        1 / (1 + np.exp(-(2 * y - 1) * 1.6 - rng.normal(0, 1, n))),
    )
    champion = Outcomes(predictions=(sa > 0.5).astype(int), scores=sa, values=rng.normal(1, 1, n))
    challenger = Outcomes(
        predictions=(sb > 0.5).astype(int), scores=sb, values=champion.values + 0.2
    )
    margins = {m: 0.05 for m in ("accuracy", "log_loss", "roc_auc", "precision", "f1", "value")}
    report = evaluate_gate(
        champion, challenger, y, _config(margins=margins, horizon=1000, resamples=300)
    )
    methods = {c.metric: c.method for c in report.conditions}
    assert methods == {
        "accuracy": "tango",
        "log_loss": "t",
        "roc_auc": "delong",
        "precision": "bootstrap",
        "f1": "bootstrap",
        "value": "t",
    }
    assert all(c.estimate > 0 for c in report.conditions)  # the challenger is better on each
    assert report.status == "promote"
    json.dumps(report.to_dict())  # the audit record is plain data


def test_repeated_entities_switch_to_the_entity_aware_methods():
    rng = np.random.default_rng(8)
    y, a, b = _paired(rng, 4000, 0.14, 0.06)
    scores = rng.random(4000)
    config = _config(margins={"accuracy": 0.01, "roc_auc": 0.05}, resamples=200)
    report = evaluate_gate(
        Outcomes(predictions=a, scores=scores),
        Outcomes(predictions=b, scores=scores),
        y,
        config,
        entities=np.repeat(np.arange(400), 10),
    )
    assert {c.method for c in report.conditions} == {"bootstrap (entities)"}


def test_sequential_gate_may_stop_early_but_not_on_fixed_horizon_metrics():
    y, a, b = _paired(np.random.default_rng(9), 3000, 0.25, 0.03)
    config = _config(sequential=True, horizon=20000, sequence_v_min=500)
    report = evaluate_gate(Outcomes(predictions=a), Outcomes(predictions=b), y, config)
    assert report.status == "promote" and report.conditions[0].method == "confidence sequence"
    guarded = _config(
        sequential=True,
        horizon=20000,
        sequence_v_min=500,
        margins={"accuracy": 0.01, "roc_auc": 0.05},
    )
    scores = np.random.default_rng(1).random(3000)
    waiting = evaluate_gate(
        Outcomes(predictions=a, scores=scores), Outcomes(predictions=b, scores=scores), y, guarded
    )
    assert waiting.status == "insufficient_data" and "roc_auc stay fixed-horizon" in waiting.reason


def test_bad_input_is_named():
    y, a, b = _paired(np.random.default_rng(10), 100, 0.1, 0.1)
    with pytest.raises(DataError, match="same requests"):
        evaluate_gate(Outcomes(predictions=a), Outcomes(predictions=b[:-1]), y, _config())
    with pytest.raises(DataError, match="needs both models' scores"):
        evaluate_gate(
            Outcomes(predictions=a),
            Outcomes(predictions=b),
            y,
            _config(margins={"accuracy": 0.01, "roc_auc": 0.01}),
        )
    with pytest.raises(ConfigError, match="unknown gate metric"):
        _config(margins={"accuracy": 0.01, "recal": 0.01})
    with pytest.raises(ConfigError, match="horizon"):
        GateConfig(horizon=None)
    with pytest.raises(DataError, match="segments"):
        evaluate_gate(
            Outcomes(predictions=a), Outcomes(predictions=b), y, _config(), segments=["x"] * 3
        )


def test_a_sequential_gate_never_peeks_at_a_fixed_horizon_bound():
    y, a, b = _paired(np.random.default_rng(11), 3000, 0.25, 0.03)
    values = np.random.default_rng(2).normal(0, 1, 3000)
    margins = {"accuracy": 0.01, "value": 0.1}
    arms = Outcomes(predictions=a, values=values), Outcomes(predictions=b, values=values + 1)
    early = evaluate_gate(*arms, y, _config(sequential=True, horizon=20000, margins=margins))
    assert early.status == "insufficient_data" and "value" in early.reason  # no bounds declared
    bounded = _config(
        sequential=True,
        horizon=20000,
        margins={"accuracy": 0.01, "value": 0.5},
        difference_bounds={"value": (-1.0, 2.0)},
        sequence_v_min=500,
    )
    arms = (
        Outcomes(predictions=a, values=np.zeros(3000)),
        Outcomes(predictions=b, values=np.ones(3000)),
    )
    assert evaluate_gate(*arms, y, bounded).status == "promote"
    with pytest.raises(ConfigError, match="needs a horizon"):
        GateConfig(sequential=True, margins={"accuracy": 0.01, "roc_auc": 0.01})
