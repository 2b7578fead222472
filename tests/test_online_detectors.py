"""Streaming detectors: the shared battery for every one, then each against an independent
plain-Python recursion and pinned detection indices on seeded streams (River's habit)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.common.detector_battery import BATTERY

from keel.errors import ConfigError, DataError
from keel.online import CUSUM, DETECTORS, EWMA, DetectorStateError, PageHinkley, restore


@pytest.mark.parametrize("check", BATTERY, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_passes_the_battery(name, check):
    check(DETECTORS[name])


def _shifted_stream(seed: int = 42) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 1, 2_000), rng.normal(0.5, 1, 1_000)])


def test_cusum_by_hand():
    detector = CUSUM(mean=0.0, sd=1.0, k=0.5, h=2.0)
    fired = [detector.update(1.0) for _ in range(5)]
    # S⁺ = 0.5, 1.0, 1.5, 2.0 (not above h), 2.5
    assert fired == [False, False, False, False, True]
    assert detector.upper == 2.5 and detector.lower == 0.0
    assert detector.change_point == 0


def test_cusum_matches_a_plain_recursion_and_its_change_point_is_the_last_zero():
    stream = _shifted_stream()
    mean, sd, k, h = 0.1, 1.2, 0.25, 8.0
    detector = CUSUM(mean, sd, k=k, h=h)
    upper = lower = 0.0
    last_zero_upper = last_zero_lower = -1
    alarms = []
    for i, x in enumerate(stream):
        z = (x - mean) / sd
        upper, lower = max(0.0, upper + z - k), max(0.0, lower - z - k)
        last_zero_upper = i if upper == 0 else last_zero_upper
        last_zero_lower = i if lower == 0 else last_zero_lower
        fired = detector.update(x)
        assert detector.upper == pytest.approx(upper) and detector.lower == pytest.approx(lower)
        assert fired == (max(upper, lower) > h)
        if fired:
            expected = last_zero_upper if upper >= lower else last_zero_lower
            assert detector.change_point == expected + 1
            alarms.append(i)
            upper = lower = 0.0  # the next value starts afresh
            last_zero_upper = last_zero_lower = i
    assert len(alarms) >= 3


def test_page_hinkley_matches_a_plain_recursion():
    stream = _shifted_stream()
    delta, threshold = 0.1, 30.0
    detector = PageHinkley(delta=delta, threshold=threshold, min_instances=30)
    total, mean, up, up_min, down, down_min = 0, 0.0, 0.0, 0.0, 0.0, 0.0
    for x in stream:
        total += 1
        mean = mean + (x - mean) / total
        up, down = up + x - mean - delta, down + mean - x - delta
        up_min, down_min = min(up_min, up), min(down_min, down)
        fired = detector.update(x)
        assert fired == (total >= 30 and max(up - up_min, down - down_min) > threshold)
        if fired:
            break
    assert fired and 2_000 < total < 2_600


def test_ewma_matches_its_closed_form_weights():
    stream = _shifted_stream()[:300]
    weight, mean = 0.2, 0.3
    detector = EWMA(mean, 1.0, smoothing=weight, width=100.0)
    detector.update_many(stream)
    t = stream.size
    closed = weight * np.sum((1 - weight) ** np.arange(t - 1, -1, -1) * stream)
    closed += (1 - weight) ** t * mean
    assert detector.average == pytest.approx(closed, rel=1e-12)


PINNED = {
    "cusum": (CUSUM(0.0, 1.0, h=8.0), [2131, 2292, 2318, 2360, 2503]),
    "ewma": (EWMA(0.0, 1.0, width=3.5), [2053, 2129, 2142, 2166, 2213]),
    "page_hinkley": (PageHinkley(delta=0.1, threshold=30.0), [2053]),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_detection_indices_on_a_seeded_half_sigma_shift_are_pinned(name):
    detector, expected = PINNED[name]
    detector.reset()
    fired = [i for i, x in enumerate(_shifted_stream()) if detector.update(x)]
    assert fired[:5] == expected
    assert all(i >= 2_000 for i in fired), "no false alarm before the shift on this seed"


def test_one_sided_cusum_ignores_the_other_direction():
    down = np.full(100, -3.0)
    up_only, down_only = CUSUM(0, 1, side="up"), CUSUM(0, 1, side="down")
    assert [i for i, x in enumerate(down) if up_only.update(x)] == []
    assert [i for i, x in enumerate(down) if down_only.update(x)][:2] == [2, 5]


def test_missing_values_are_counted_and_skipped():
    detector = CUSUM(0.0, 1.0, h=2.0)
    fired = [detector.update(x) for x in [1.0, np.nan, 1.0, np.nan, 1.0, 1.0, 1.0]]
    assert fired == [False] * 6 + [True]
    assert detector.n_missing == 2 and detector.n_seen == 7


def test_bad_parameters_name_what_is_wrong():
    with pytest.raises(ConfigError, match="sd"):
        CUSUM(0.0, 0.0)
    with pytest.raises(ConfigError, match="side"):
        CUSUM(0.0, 1.0, side="sideways")
    with pytest.raises(ConfigError, match="smoothing"):
        EWMA(0.0, 1.0, smoothing=0.0)
    with pytest.raises(ConfigError, match="mode"):
        PageHinkley(mode="left")
    with pytest.raises(DataError, match="two present values"):
        CUSUM.from_reference(np.array([np.nan, 1.0]))


def test_a_state_of_another_kind_or_format_is_refused():
    state = CUSUM(0.0, 1.0, baseline_id="b").state()
    with pytest.raises(DetectorStateError, match="not 'ewma'"):
        EWMA.from_state(state, baseline_id="b")
    with pytest.raises(DetectorStateError, match="format"):
        CUSUM.from_state({**state, "format": 99}, baseline_id="b")
    with pytest.raises(DetectorStateError, match="unknown detector"):
        restore({**state, "detector": "adwin"}, baseline_id="b")
