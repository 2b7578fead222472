"""Exact mode agrees with scipy; profile mode agrees with exact mode within the stated error."""

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from keel.profile import NumericProfile
from keel.stats import CategoricalSample, NumericSample, benjamini_hochberg, compute
from keel.stats.chisquare import chi_square_homogeneity
from keel.stats.divergences import hellinger, l_infinity, psi, total_variation
from keel.stats.ks import ks_statistic
from keel.stats.wasserstein import wasserstein_distance

SIZES = [(7, 9), (100, 80), (3000, 5000), (20_000, 15_000)]


def _pair(n, m, seed, ties=False):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, n), rng.normal(0.1, 1.2, m)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return a, b


@pytest.mark.parametrize("n, m", SIZES)
@pytest.mark.parametrize("ties", [False, True])
def test_exact_ks_equals_scipy_ks_2samp(n, m, ties):
    a, b = _pair(n, m, seed=n, ties=ties)
    result = compute("ks", NumericSample.from_values(a), NumericSample.from_values(b))
    reference = stats.ks_2samp(a, b)
    assert result.statistic == pytest.approx(reference.statistic, abs=1e-15)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("n, m", SIZES)
@pytest.mark.parametrize("ties", [False, True])
def test_exact_wasserstein_equals_scipy(n, m, ties):
    a, b = _pair(n, m, seed=n + 1, ties=ties)
    ours = wasserstein_distance(NumericSample.from_values(a), NumericSample.from_values(b))
    assert ours == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    scaled = compute("wasserstein", NumericSample.from_values(a), NumericSample.from_values(b))
    assert scaled.statistic == pytest.approx(ours / a.std(ddof=1), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_exact_chisquare_equals_scipy_chi2_contingency_without_correction(seed):
    rng = np.random.default_rng(seed)
    k = rng.integers(2, 12)
    reference = rng.choice(k, 500 + seed * 100, p=rng.dirichlet(np.ones(k)))
    current = rng.choice(k, 300 + seed * 50, p=rng.dirichlet(np.ones(k)))
    ours = compute(
        "chisquare",
        CategoricalSample.from_values(reference.astype(str)),
        CategoricalSample.from_values(current.astype(str)),
    )
    labels = np.union1d(reference, current)
    table = np.array(
        [[np.sum(reference == v) for v in labels], [np.sum(current == v) for v in labels]]
    )
    statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(p_value, rel=1e-10)
    assert ours.details["dof"] == dof


def test_a_category_seen_on_one_side_only_still_matches_scipy():
    statistic, p_value, _ = chi_square_homogeneity(
        np.array([50.0, 50, 0]), np.array([40.0, 40, 20])
    )
    expected = stats.chi2_contingency([[50, 50, 0], [40, 40, 20]], correction=False)
    assert statistic == pytest.approx(expected[0]) and p_value == pytest.approx(expected[1])


def test_divergences_match_their_definitions_and_scipy():
    p_counts, q_counts = np.array([10.0, 30, 60]), np.array([20.0, 30, 50])
    p, q = p_counts / 100, q_counts / 100
    assert compute_js(p_counts, q_counts) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)
    assert hellinger(p_counts, q_counts) == pytest.approx(
        np.sqrt(1 - np.sum(np.sqrt(p * q))), rel=1e-12
    )
    assert l_infinity(p_counts, q_counts) == pytest.approx(0.1)
    assert total_variation(p_counts, q_counts) == pytest.approx(0.1)
    smoothed_p, smoothed_q = (p_counts + 0.5) / 101.5, (q_counts + 0.5) / 101.5
    assert psi(p_counts, q_counts) == pytest.approx(
        np.sum((smoothed_q - smoothed_p) * np.log(smoothed_q / smoothed_p)), rel=1e-12
    )


def compute_js(p_counts, q_counts):
    from keel.stats.divergences import jensen_shannon

    return jensen_shannon(p_counts, q_counts)


def test_psi_weighs_a_small_category_that_shrinks():
    reference = CategoricalSample({"big": 90_000, "small": 10_000}, 100_000)
    current = CategoricalSample({"big": 99_000, "small": 1_000}, 100_000)
    assert compute("total_variation", reference, current).statistic == pytest.approx(0.09)
    assert compute("psi", reference, current).statistic > 0.2  # above the 0.1 floor


def test_benjamini_hochberg_equals_scipy():
    p = np.random.default_rng(0).uniform(size=40) ** 3
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p, method="bh"))


def _sketch_sample(values, k=1024):
    profile = NumericProfile(sketch_k=k)
    profile.update_values(values)
    return NumericSample.from_profile(profile)


@pytest.mark.parametrize("shift", [0.0, 0.02, 0.1])
def test_sketch_ks_statistic_is_within_the_sketch_error_of_exact(shift):
    rng = np.random.default_rng(11)
    a, b = rng.normal(0, 1, 400_000), rng.normal(shift, 1, 300_000)
    sketch_a, sketch_b = _sketch_sample(a), _sketch_sample(b)
    assert sketch_a.rank_error > 0  # the sketches really are approximate here
    exact = stats.ks_2samp(a, b).statistic
    assert (
        abs(ks_statistic(sketch_a, sketch_b) - exact) <= sketch_a.rank_error + sketch_b.rank_error
    )
    approximate = wasserstein_distance(sketch_a, sketch_b)
    assert approximate == pytest.approx(stats.wasserstein_distance(a, b), abs=0.01)


def test_sketch_ks_p_value_is_never_smaller_than_the_exact_one():
    rng = np.random.default_rng(12)
    for shift in (0.0, 0.005, 0.01, 0.03):
        a, b = rng.normal(0, 1, 200_000), rng.normal(shift, 1, 200_000)
        sketch = compute("ks", _sketch_sample(a), _sketch_sample(b))
        exact = stats.ks_2samp(a, b, method="asymp").pvalue
        assert sketch.p_value >= exact * (1 - 1e-9)


def test_an_uncompacted_sketch_gives_the_exact_answer():
    a, b = _pair(500, 700, seed=3)
    sketch = compute("ks", _sketch_sample(a), _sketch_sample(b))
    assert sketch.p_value == pytest.approx(stats.ks_2samp(a, b).pvalue, rel=1e-12)
