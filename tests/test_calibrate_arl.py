"""Calibrated thresholds: the simulated ARL0 meets the target, agrees with Siegmund's
closed form for CUSUM, and holds on fresh streams of the true process, i.i.d. or AR(1).

Targets are small (ARL0 = 200) to stay fast; ``benchmarks/streaming.py`` measures 1,000
and 10,000."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.signal import lfilter

from keel.errors import ConfigError
from keel.online import CUSUM, EWMA, PageHinkley
from keel.online.calibrate import (
    arl0_for_period,
    block_length,
    calibrate,
    dependence_length,
    per_stream_arl0,
    run_lengths,
    siegmund_arl0,
)

TARGET = 200
NORMAL = np.random.default_rng(11).normal(size=50_000)
PHI = 0.5


def _ar1(size: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=size) * np.sqrt(1 - PHI**2)
    return lfilter([1.0], [1.0, -PHI], noise)


AR1 = _ar1(50_000, seed=12)


def _normal_streams(seed: int):
    rng = np.random.default_rng(seed)
    return lambda rows, length: rng.normal(size=(rows.size, length))


def _ar1_streams(seed: int, runs: int):
    """Unit-variance AR(1) streams, each continuing where its last chunk ended."""
    rng = np.random.default_rng(seed)
    last = rng.normal(size=runs)

    def draw(rows, length):
        noise = rng.normal(size=(rows.size, length)) * np.sqrt(1 - PHI**2)
        values, _ = lfilter([1.0], [1.0, -PHI], noise, axis=1, zi=(PHI * last[rows])[:, None])
        last[rows] = values[:, -1]
        return values

    return draw


@pytest.mark.parametrize("k", [0.25, 0.5])
def test_one_sided_cusum_threshold_agrees_with_siegmund(k):
    result = calibrate(lambda h: CUSUM(0.0, 1.0, k=k, h=h, side="up"), TARGET, NORMAL)
    siegmund_h = brentq(lambda h: siegmund_arl0(k, h) - TARGET, 0.0, 30.0)
    assert result.threshold == pytest.approx(siegmund_h, abs=0.12)
    assert siegmund_arl0(k, result.threshold) == pytest.approx(TARGET, rel=0.08)


def test_two_sided_cusum_has_about_half_the_one_sided_arl0():
    result = calibrate(lambda h: CUSUM(0.0, 1.0, h=h), TARGET, NORMAL)
    assert siegmund_arl0(0.5, result.threshold) / 2 == pytest.approx(TARGET, rel=0.15)
    one_sided = calibrate(lambda h: CUSUM(0.0, 1.0, h=h, side="up"), TARGET, NORMAL)
    assert result.threshold > one_sided.threshold + 0.4


def test_the_simulated_arl0_meets_the_target_and_no_more():
    result = calibrate(lambda h: CUSUM(0.0, 1.0, h=h), TARGET, NORMAL)
    assert TARGET <= result.arl0 < TARGET * 1.02
    assert result.standard_error == pytest.approx(TARGET / np.sqrt(result.streams), rel=0.2)
    assert result.censored == 0 and result.block == 1
    assert result.detector.h == result.threshold


FACTORIES = {
    "cusum": lambda reference: lambda h: CUSUM.from_reference(reference, h=h),
    "page_hinkley": lambda reference: lambda t: PageHinkley(delta=0.1, threshold=t),
    "ewma": lambda reference: lambda width: EWMA.from_reference(reference, width=width),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_calibrated_arl0_holds_on_fresh_normal_streams(name):
    result = calibrate(FACTORIES[name](NORMAL), TARGET, NORMAL)
    lengths, censored = run_lengths(
        result.detector, _normal_streams(seed=99), 2_000, max_length=40 * TARGET
    )
    assert not censored.any()
    assert lengths.mean() == pytest.approx(TARGET, rel=0.1)


@pytest.mark.parametrize("name", ["cusum", "ewma"])
def test_a_block_bootstrap_holds_arl0_on_ar1_streams_where_iid_resamples_do_not(name):
    blocked = calibrate(FACTORIES[name](AR1), TARGET, AR1)
    assert 100 <= blocked.block <= 180
    iid = calibrate(FACTORIES[name](AR1), TARGET, AR1, block=1)
    truth = {}
    for label, result in (("blocked", blocked), ("iid", iid)):
        lengths, _ = run_lengths(
            result.detector, _ar1_streams(seed=98, runs=1_000), 1_000, max_length=40 * TARGET
        )
        truth[label] = lengths.mean()
    assert truth["blocked"] == pytest.approx(TARGET, rel=0.2)
    assert truth["iid"] < 0.6 * TARGET  # resampling as if independent: far too many alarms


def test_m_streams_at_m_times_the_target_share_one_false_alarm_budget():
    streams = 3
    result = calibrate(
        lambda h: CUSUM(0.0, 1.0, h=h), per_stream_arl0(TARGET, streams), NORMAL, streams=1_000
    )
    lengths = [
        run_lengths(result.detector, _normal_streams(seed=70 + i), 1_500, max_length=20_000)[0]
        for i in range(streams)
    ]
    first_of_any = np.min(lengths, axis=0)
    assert first_of_any.mean() == pytest.approx(TARGET, rel=0.12)


def test_a_target_beyond_twenty_times_the_reference_is_refused():
    with pytest.raises(ConfigError, match=r"beyond 20× the reference's 1,000 values"):
        calibrate(lambda h: CUSUM(0.0, 1.0, h=h), 20_001, NORMAL[:1_000])
    calibrate(lambda h: CUSUM(0.0, 1.0, h=h), 20_000, NORMAL[:1_000], streams=50)


def test_the_same_reference_gives_the_same_threshold_and_a_seed_changes_it():
    factory = FACTORIES["ewma"](NORMAL)
    first, again = calibrate(factory, TARGET, NORMAL), calibrate(factory, TARGET, NORMAL)
    assert first.threshold == again.threshold and first.seed == again.seed
    assert calibrate(factory, TARGET, NORMAL, seed=1).threshold != first.threshold


def test_dependence_and_block_lengths_follow_the_autocorrelation():
    assert dependence_length(NORMAL) == 0
    assert block_length(NORMAL) == 1
    assert 3 <= dependence_length(AR1) <= 8  # φ^k falls inside ±2√(log₁₀n / n) near k = 6
    assert block_length(NORMAL, season=24) == 24
    assert block_length(AR1[:300]) == 60  # at most a fifth of the reference


def test_a_false_alarm_per_period_becomes_a_sample_arl0():
    assert arl0_for_period(timedelta(days=30), rate_per_second=0.5) == 1_296_000
    assert per_stream_arl0(1_296_000, 4) == 5_184_000
    with pytest.raises(ConfigError, match="rate"):
        arl0_for_period(timedelta(days=1), rate_per_second=0)
