"""MMD²: the unbiased statistic against a direct double loop, the median-heuristic bandwidth
against scipy, and the permutation test's error rates on data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import kstest

from keel.errors import ConfigError, DataError, SchemaError
from keel.stats.mmd import mmd_test


def _direct_unbiased_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Gretton et al. (2012), eq. 3, term by term."""

    def k(a, b):
        return math.exp(
            -sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True)) / (2 * bandwidth**2)
        )

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_the_statistic_is_the_unbiased_mmd2_with_the_reference_median_distance():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 3)), rng.normal(0.4, 1.2, size=(25, 3))
    result = mmd_test(x, y)
    bandwidth = float(np.median(pdist(x)))
    assert result.details["bandwidth"] == pytest.approx(bandwidth, rel=1e-9)
    assert result.statistic == pytest.approx(_direct_unbiased_mmd2(x, y, bandwidth), rel=1e-9)


def test_the_bandwidth_comes_from_the_reference_alone():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 4))
    near, far = mmd_test(x, rng.normal(size=(80, 4))), mmd_test(x, 10 * rng.normal(size=(80, 4)))
    assert near.details["bandwidth"] == far.details["bandwidth"]


def test_identical_distributions_alarm_at_most_at_the_nominal_rate_with_uniform_p_values():
    p_values = np.array(
        [
            mmd_test(rng.normal(size=(40, 3)), rng.normal(size=(40, 3))).p_value
            for rng in (np.random.default_rng(1_000 + trial) for trial in range(200))
        ]
    )
    # a one-sided binomial bound at 1%: a true rate of 5% sees at most 8.6% in 200 trials
    assert np.mean(p_values <= 0.05) <= 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / 200)
    assert kstest(p_values, "uniform").pvalue > 0.01


def test_a_mean_shift_gives_the_smallest_p_value():
    rng = np.random.default_rng(5)
    shift = np.r_[0.5, np.zeros(4)]
    p_values = [
        mmd_test(rng.normal(size=(200, 5)), rng.normal(size=(200, 5)) + shift).p_value
        for _ in range(10)
    ]
    assert max(p_values) <= 0.01
    assert min(p_values) == pytest.approx(1 / 501)


def test_the_p_value_counts_permutations_and_is_never_zero():
    rng = np.random.default_rng(6)
    result = mmd_test(rng.normal(size=(50, 2)), rng.normal(size=(60, 2)), permutations=700)
    count = result.p_value * 701
    assert count == pytest.approx(round(count)) and 1 <= round(count) <= 701
    assert result.details["permutations"] == 700


def test_large_samples_are_subsampled_to_2000_rows_and_the_answer_is_reproducible():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(2_600, 2)), rng.normal(size=(2_100, 2))
    first, again = mmd_test(x, y), mmd_test(x, y)
    assert first.details["reference_rows"] == first.details["current_rows"] == 2_000
    assert (first.statistic, first.p_value) == (again.statistic, again.p_value)
    assert mmd_test(x, y, seed=1).details["seed"] == 1


def test_bad_vectors_are_counted_or_named():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(40, 3))
    x[[3, 9], 1] = np.nan
    result = mmd_test(x, y)
    assert result.details["reference_dropped"] == 2 and result.details["reference_rows"] == 48
    with pytest.raises(SchemaError, match="4 dimensions and the reference's 3"):
        mmd_test(x, rng.normal(size=(40, 4)))
    with pytest.raises(DataError, match="current sample has 1 complete vectors"):
        mmd_test(x, np.array([[1.0, 2.0, 3.0], [np.nan, 1.0, 1.0]]))
    with pytest.raises(ConfigError, match="500 permutations"):
        mmd_test(x, y, permutations=100)
