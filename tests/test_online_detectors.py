"""Streaming detectors: the shared battery for every one, then each against an independent
plain-Python recursion and pinned detection indices on seeded streams (River's habit)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.common.detector_battery import BATTERY

from keel.errors import ConfigError, DataError
from keel.online import (
    ADWIN,
    CUSUM,
    DETECTORS,
    EWMA,
    KSWIN,
    DetectorStateError,
    PageHinkley,
    restore,
)
from keel.online.adwin import bucket_ends
from keel.online.calibrate import calibrate, run_lengths
from keel.online.kswin import ks_counts, ks_p_values


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
    "adwin": (ADWIN(delta=0.002), [2111]),
    "kswin": (KSWIN(alpha=0.001, seed=3), [2019]),
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
        restore({**state, "detector": "shewhart"}, baseline_id="b")


# -- ADWIN and KSWIN: River 0.26 is their oracle (keel[stream]), SciPy KSWIN's p-values ---------


def _river_alarms(detector, stream: np.ndarray) -> list[int]:
    fired = []
    for i, x in enumerate(stream.tolist()):
        detector.update(x)
        if detector.drift_detected:
            fired.append(i)
    return fired


RIVER_CASES = [
    (ADWIN, {"delta": 0.002}),
    (ADWIN, {"delta": 0.3, "clock": 8, "max_buckets": 3}),
    (ADWIN, {"delta": 0.05, "clock": 1, "max_buckets": 2, "min_window_length": 3}),
    (KSWIN, {"alpha": 0.005, "seed": 1}),
    (KSWIN, {"alpha": 0.02, "window_size": 60, "stat_size": 20, "seed": 7}),
]


@pytest.mark.parametrize(("kind", "params"), RIVER_CASES, ids=lambda case: str(case))
def test_adwin_and_kswin_raise_rivers_alarms_index_for_index(kind, params):
    pytest.importorskip("river", reason='River is the oracle: pip install "keel[stream]"')
    rng = np.random.default_rng(derive_seed_for(kind, params))
    stream = np.concatenate([rng.normal(0, 1, 1_500), rng.normal(0.7, 1.5, 1_000)])
    stream[:400] = np.round(stream[:400])  # ties too
    expected = _river_alarms(kind.river(**params), stream)
    ours = kind(**params)
    assert [i for i, x in enumerate(stream) if ours.update(x)] == expected
    assert len(expected) >= 1


def derive_seed_for(kind, params) -> int:
    from keel.seeds import derive_seed

    return derive_seed("river-oracle", kind.name, sorted(params.items()))


def test_river_missing_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_river(name, *args, **kwargs):
        if name == "river" or name.startswith("river."):
            raise ImportError("no river here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_river)
    with pytest.raises(ConfigError, match=r'pip install "keel\[stream\]"'):
        ADWIN.river()
    assert ADWIN().update(1.0) is False  # keel's own detectors need no River


def test_adwin_bucket_ends_follow_the_exponential_histogram():
    # replay ADWIN2's insert-and-merge by hand: a size class reaching M + 1 merges its two oldest
    most = 3
    classes: list[list[int]] = []  # per size class, bucket sizes, oldest first
    for width in range(1, 400):
        classes = classes or [[]]
        classes[0].append(1)
        level = 0
        while len(classes[level]) == most + 1:
            merged = classes[level].pop(0) + classes[level].pop(0)
            if level + 1 == len(classes):
                classes.append([])
            classes[level + 1].append(merged)
            level += 1
        sizes = [size for level in reversed(classes) for size in level]
        assert bucket_ends(width, most).tolist() == np.cumsum(sizes).tolist()


def test_kswin_statistic_and_p_value_are_scipys():
    from scipy import stats

    rng = np.random.default_rng(11)
    older, newer = (
        np.round(rng.normal(size=(200, 30)), 1),
        np.round(rng.normal(0.4, 1, (200, 30)), 1),
    )
    counts = ks_counts(older, newer)
    for row in range(200):
        reference = stats.ks_2samp(older[row], newer[row], method="auto")
        assert counts[row] / 30 == pytest.approx(reference.statistic, abs=1e-12)
        assert ks_p_values(30)[counts[row]] == pytest.approx(reference.pvalue, rel=1e-12)


@pytest.mark.parametrize("kind", [ADWIN, KSWIN], ids=lambda kind: kind.name)
def test_adwin_and_kswin_calibrate_to_a_target_arl0(kind):
    reference = np.random.default_rng(21).normal(size=20_000)
    target = 1_000 if kind is ADWIN else 400
    streams = 300 if kind is ADWIN else 100
    made = calibrate(lambda t: kind(threshold=t), target, reference, streams=streams)
    assert made.arl0 >= target and made.censored == 0
    rng = np.random.default_rng(22)
    lengths, censored = run_lengths(
        made.detector, lambda rows, n: rng.normal(size=(rows.size, n)), streams, max_length=50_000
    )
    ratio = lengths.mean() / target
    # ADWIN's margin is continuous: within Monte Carlo error of the target. KSWIN's takes
    # stat_size + 1 values: the smallest alpha that meets the target overshoots it.
    assert (0.8 < ratio < 1.25) if kind is ADWIN else (0.7 < ratio < 2.5)
    assert not censored.any()
    # one threshold step lower (the next record below) falls short of the target
    looser = kind(threshold=made.threshold - (0.05 if kind is ADWIN else 1.0))
    shorter, _ = run_lengths(
        looser, lambda rows, n: rng.normal(size=(rows.size, n)), streams, max_length=50_000
    )
    assert shorter.mean() < lengths.mean()


def test_adwin_and_kswin_parameters_are_checked():
    with pytest.raises(ConfigError, match="not both"):
        ADWIN(delta=0.1, threshold=2.0)
    with pytest.raises(ConfigError, match="delta must be in"):
        ADWIN(delta=9.0)
    with pytest.raises(ConfigError, match="alpha must be in"):
        KSWIN(alpha=1.5)
    with pytest.raises(ConfigError, match="stat_size"):
        KSWIN(window_size=40, stat_size=30)
    assert ADWIN(threshold=3.0).delta == pytest.approx(np.exp(-3.0))


def test_a_tampered_adwin_or_kswin_window_is_refused():
    adwin, kswin = ADWIN(baseline_id="b"), KSWIN(baseline_id="b")
    adwin.update_many(np.random.default_rng(60).normal(size=700))
    kswin.update_many(np.random.default_rng(61).normal(size=150))
    state = adwin.state()
    state["window"]["sums"] = state["window"]["sums"][:-1]
    with pytest.raises(DetectorStateError, match="buckets"):
        ADWIN.from_state(state, baseline_id="b")
    state = kswin.state()
    state["window"]["values"] = state["window"]["values"] * 2
    with pytest.raises(DetectorStateError, match="window"):
        KSWIN.from_state(state, baseline_id="b")
