"""Moments merge exactly where they should: means and variances of any split of a column,
merged in any order, agree with the exact values to 1e-12 relative, even where the mean is
1e9 standard deviations from zero (moments kept about a pilot value, re-shifted on merge)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.profile import NumericProfile, Profile

ROWS = 20_000


def _exact_mean_and_variance(values: np.ndarray) -> tuple[float, float]:
    """The mean correctly rounded; the variance about the unrounded mean (x - m is exact
    near m, and Σ(x - μ)² = Σ(x - m)² - n(μ - m)²)."""
    n = len(values)
    mean = math.fsum(values) / n
    residual = math.fsum(values - mean) / n  # μ - m: the rounding left in the mean
    m2 = math.fsum((values - mean) ** 2) - n * residual * residual
    return mean + residual, m2 / (n - 1)


def _column(center: float, sd: float, seed: int) -> np.ndarray:
    return center + np.random.default_rng(seed).normal(0.0, sd, ROWS)


def _profile_of_split(values: np.ndarray, cuts: list[int], order: list[int]) -> NumericProfile:
    bounds = [0, *sorted(cuts), len(values)]
    parts = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        part = NumericProfile()
        part.update_values(values[start:end])
        parts.append(part)
    merged = NumericProfile()
    for index in order:
        merged.merge(parts[index % len(parts)])
    return merged


@settings(max_examples=40, deadline=None)
@given(
    center=st.sampled_from([0.0, 3.0, -1e6, 1e9, -1e9, 1e12]),
    seed=st.integers(0, 2**16),
    cuts=st.lists(st.integers(0, ROWS), max_size=8),
    order_seed=st.integers(0, 2**16),
)
def test_any_split_merged_in_any_order_gives_the_exact_moments(center, seed, cuts, order_seed):
    values = _column(center, 1.0, seed)
    order = list(np.random.default_rng(order_seed).permutation(len(cuts) + 1))
    merged = _profile_of_split(values, cuts, order)
    mean, variance = _exact_mean_and_variance(values)
    assert merged.count == ROWS
    assert merged.mean == pytest.approx(mean, rel=1e-12)
    assert merged.variance == pytest.approx(variance, rel=1e-12)


def test_mean_over_sd_1e9_keeps_its_spread_in_one_pass_and_in_parts():
    values = _column(1e9, 1.0, 4)
    whole = NumericProfile()
    for chunk in np.array_split(values, 5):
        whole.update_values(chunk)
    parts = _profile_of_split(values, [7, 9_000, 15_001], [3, 1, 0, 2])
    _, variance = _exact_mean_and_variance(values)
    for profile in (whole, parts):
        assert profile.variance == pytest.approx(variance, rel=1e-12)


def test_an_outlying_first_value_does_not_spoil_the_pilot():
    values = _column(0.0, 1.0, 5)
    values[0] = 1e7  # the first value far out: the pilot is the first batch's mean
    merged = _profile_of_split(values, [1, 2, 500], [0, 1, 2, 3])
    mean, variance = _exact_mean_and_variance(values)
    assert merged.mean == pytest.approx(mean, rel=1e-12)
    assert merged.variance == pytest.approx(variance, rel=1e-12)


def test_the_pilot_round_trips_and_a_version_2_state_still_reads():
    column = NumericProfile()
    column.update_values(_column(1e9, 1.0, 6))
    state, blob = column.to_state()
    again = NumericProfile.from_state(state, blob)
    assert (again.shift, again.shifted_mean, again.m2) == (
        column.shift,
        column.shifted_mean,
        column.m2,
    )
    assert state["mean"] == column.mean  # readers of the mean alone still find it
    old = {k: v for k, v in state.items() if k not in ("shift", "shifted_mean")}
    version_2 = NumericProfile.from_state(old, blob)
    assert (version_2.shift, version_2.mean, version_2.m2) == (0.0, column.mean, column.m2)


def test_a_profile_file_reads_back_with_its_moments():
    import pandas as pd

    profile = Profile.build(pd.DataFrame({"x": _column(1e9, 1.0, 7)}))
    again = Profile.from_bytes(profile.to_bytes())
    assert again.columns["x"].variance == profile.columns["x"].variance
    assert again.columns["x"].mean == profile.columns["x"].mean
