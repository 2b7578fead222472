"""The gate's intervals, each against an independent reference or a known answer.

References: published tables (Fagerland et al. 2014 for Tango; Newcombe 1998 for the
hybrid score interval; the confseq authors' test vector for the stitched boundary),
scipy (binomtest, ttest_1samp, mannwhitneyu, Wilson intervals), brute-force
computations written here (Tango by inverting the score test over a grid with a
numerical MLE; DeLong by all n·m comparisons), and coverage on simulated data whose
true difference is known.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from keel.retrain import paired
from keel.seeds import derive_seed

# --- Tango -------------------------------------------------------------------------------


def _tango_by_grid(n10: int, n01: int, n: int, alpha: float) -> float:
    """Smallest δ not rejected by the one-sided score test, on a grid of step 5e-3 and then
    5e-5 below the first accepted point; the nuisance p01 is maximised numerically (not by
    Tango's closed form) at every δ."""
    z = stats.norm.ppf(1 - alpha)
    rest = n - n10 - n01

    def accepted(delta: float) -> bool:
        # p10 = p01 + δ ≥ 0, p01 ≥ 0, p10 + p01 ≤ 1.
        lo, hi = max(0.0, -delta) + 1e-12, (1 - delta) / 2 - 1e-12
        if lo >= hi:
            return False

        def negative_log_likelihood(p01):
            p10, concordant = p01 + delta, 1 - 2 * p01 - delta
            return -(n10 * np.log(p10) + n01 * np.log(p01) + rest * np.log(concordant))

        p01 = optimize.minimize_scalar(
            negative_log_likelihood, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
        ).x
        variance = n * (2 * p01 + delta - delta**2)
        return (n10 - n01 - n * delta) / np.sqrt(variance) <= z

    estimate = (n10 - n01) / n
    coarse = next(d for d in np.arange(-1 + 5e-3, estimate + 5e-3, 5e-3) if accepted(d))
    return next(d for d in np.arange(coarse - 5e-3, coarse + 5e-5, 5e-5) if accepted(d))


def test_tango_matches_the_published_interval_for_the_bentur_table():
    # Fagerland, Lydersen & Laake (2014), Stat Med 33:2850, Table V: (1, 1, 7, 12) has the
    # Tango 95% interval (-0.517, -0.026). Two-sided 95% = one-sided 97.5% at each end.
    assert round(paired.tango_lower(1, 7, 21, 0.025), 3) == -0.517
    assert round(-paired.tango_lower(7, 1, 21, 0.025), 3) == -0.026


@pytest.mark.parametrize(
    ("n10", "n01", "n"), [(40, 20, 160), (1, 7, 21), (0, 0, 50), (3, 0, 30), (12, 15, 400)]
)
def test_tango_equals_the_inverted_score_test_on_a_fine_grid(n10, n01, n):
    assert paired.tango_lower(n10, n01, n, 0.05) == pytest.approx(
        _tango_by_grid(n10, n01, n, 0.05), abs=1e-4
    )


def test_tango_vectorised_equals_one_table_at_a_time():
    n10, n01 = np.array([5, 40, 0, 9]), np.array([9, 20, 0, 1])
    together = paired.tango_lower(n10, n01, 200, 0.05)
    assert together == pytest.approx(
        [paired.tango_lower(a, b, 200, 0.05) for a, b in zip(n10, n01, strict=True)]
    )


def test_tango_covers_a_known_difference_at_its_level():
    # p10 = 0.12, p01 = 0.08: Δ = 0.04. The one-sided 95% bound lies below it ~95% of the time.
    rng = np.random.default_rng(derive_seed("test", "tango-coverage"))
    counts = rng.multinomial(1500, [0.12, 0.08, 0.80], size=6000)
    bounds = paired.tango_lower(counts[:, 0], counts[:, 1], 1500, 0.05)
    assert np.mean(bounds <= 0.04) == pytest.approx(0.95, abs=0.012)


# --- McNemar mid-p -------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "m"), [(8, 10), (0, 5), (5, 5), (30, 50), (1, 1), (260, 500)])
def test_mcnemar_mid_p_is_the_exact_binomial_p_less_half_the_point_mass(k, m):
    exact = stats.binomtest(k, m, 0.5, alternative="greater").pvalue
    assert paired.mcnemar_mid_p(k, m - k) == pytest.approx(
        exact - 0.5 * stats.binom.pmf(k, m, 0.5), rel=1e-9, abs=1e-14
    )


def test_mcnemar_mid_p_with_no_discordant_pairs_is_a_half():
    assert paired.mcnemar_mid_p(0, 0) == 0.5


# --- paired t and the bootstrap ---------------------------------------------------------------


def test_paired_t_bound_equals_scipy_one_sided_interval():
    d = np.random.default_rng(5).normal(0.1, 1.0, 300)
    expected = stats.ttest_1samp(d, 0.0, alternative="greater").confidence_interval(0.95).low
    assert paired.paired_t_lower(d, 0.05).lower == pytest.approx(expected, rel=1e-12)
    # One request per entity: the cluster-robust error is the plain one.
    assert paired.paired_t_lower(d, 0.05, entities=np.arange(300)).lower == pytest.approx(
        expected, rel=1e-12
    )


def _clustered(rng, entities=60, per_entity=25, mean=0.0):
    """Per-request differences sharing a strong entity effect (intra-class correlation 0.5)."""
    effect = np.repeat(rng.normal(0, 1.0, entities), per_entity)
    return mean + effect + rng.normal(0, 1.0, entities * per_entity), np.repeat(
        np.arange(entities), per_entity
    )


def test_clustered_requests_need_the_entity_aware_bounds():
    rng = np.random.default_rng(derive_seed("test", "clusters"))
    covered = {"t": 0, "t entities": 0, "rows": 0, "entities": 0}
    reps = 100
    for rep in range(reps):
        d, entity = _clustered(rng)
        covered["t"] += paired.paired_t_lower(d).lower <= 0
        covered["t entities"] += paired.paired_t_lower(d, entities=entity).lower <= 0
        seed = derive_seed("test", "clusters", rep)
        covered["entities"] += (
            paired.paired_bootstrap_lower(d, seed=seed, resamples=400, entities=entity).lower <= 0
        )
        if rep < 40:  # the row bootstrap is the slow one; 40 replications show its failure
            covered["rows"] += paired.paired_bootstrap_lower(d, seed=seed, resamples=200).lower <= 0
    assert covered["t"] / reps < 0.8 and covered["rows"] / 40 < 0.8  # rows as independent: wrong
    assert covered["t entities"] / reps > 0.89
    assert covered["entities"] / reps > 0.88


def test_bootstrap_agrees_with_t_on_normal_data_and_is_seeded():
    d = np.random.default_rng(8).normal(0.2, 1.0, 1000)
    seed = derive_seed("test", "bootstrap")
    first = paired.paired_bootstrap_lower(d, seed=seed, resamples=2000)
    assert first.lower == pytest.approx(paired.paired_t_lower(d).lower, abs=0.012)
    assert paired.paired_bootstrap_lower(d, seed=seed, resamples=2000) == first
    assert paired.paired_bootstrap_lower(d, seed=seed + 1, resamples=2000) != first


def test_bootstrap_precision_difference_estimate_equals_sklearn():
    from sklearn.metrics import precision_score

    rng = np.random.default_rng(2)
    y = rng.random(800) < 0.3
    a, b = rng.random(800) < 0.35, (rng.random(800) < 0.3) | y & (rng.random(800) < 0.5)
    bound = paired.paired_bootstrap_ratio_lower((a & y, b & y), (a, b), seed=3, resamples=300)
    assert bound.estimate == pytest.approx(precision_score(y, b) - precision_score(y, a))
    assert bound.lower < bound.estimate


# --- ROC AUC -----------------------------------------------------------------------------------


def _delong_by_all_pairs(a, b, y):
    """DeLong et al. (1988) written out: ψ over every (positive, negative) pair."""
    out = []
    for s in (a, b):
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        out.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = out
    m, n = len(v10a), len(v01a)
    s10, s01 = np.cov(np.vstack([v10a, v10b])), np.cov(np.vstack([v01a, v01b]))
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (
        s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]
    ) / n
    return auc_b - auc_a, np.sqrt(variance)


def test_fast_delong_equals_the_all_pairs_computation_with_ties():
    rng = np.random.default_rng(4)
    y = rng.random(700) < 0.35
    a = np.round(y + rng.normal(0, 1.2, 700), 1)  # rounded: many ties
    b = np.round(y + rng.normal(0, 1.0, 700), 1)
    estimate, se = _delong_by_all_pairs(a, b, y)
    bound = paired.delong_lower(a, b, y, 0.05)
    assert bound.estimate == pytest.approx(estimate, abs=1e-12)
    assert bound.lower == pytest.approx(estimate - stats.norm.ppf(0.95) * se, abs=1e-12)
    u = stats.mannwhitneyu(b[y], b[~y]).statistic / (y.sum() * (~y).sum())
    # Against a constant score (AUC ½), the difference is b's Mann–Whitney AUC less ½.
    constant = np.zeros(700)
    assert paired.delong_lower(constant, b, y).estimate == pytest.approx(u - 0.5, abs=1e-12)


def test_bootstrap_auc_agrees_with_delong_and_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(6)
    y = rng.random(2000) < 0.4
    a, b = y + rng.normal(0, 1.0, 2000), y + rng.normal(0, 0.9, 2000)
    boot = paired.paired_bootstrap_auc_lower(
        a, b, y, seed=derive_seed("test", "auc"), resamples=1000
    )
    assert boot.estimate == pytest.approx(roc_auc_score(y, b) - roc_auc_score(y, a), abs=1e-12)
    assert boot.lower == pytest.approx(paired.delong_lower(a, b, y).lower, abs=0.006)


def test_bootstrap_auc_resamples_entities_when_they_repeat():
    rng = np.random.default_rng(9)
    entity = np.repeat(np.arange(100), 10)
    y = rng.random(1000) < 0.4
    a, b = y + rng.normal(0, 1.0, 1000), y + rng.normal(0, 1.0, 1000)
    rows = paired.paired_bootstrap_auc_lower(a, b, y, seed=1, resamples=300)
    grouped = paired.paired_bootstrap_auc_lower(a, b, y, seed=1, resamples=300, entities=entity)
    assert rows.estimate == grouped.estimate and rows.lower != grouped.lower


# --- the confidence sequence ------------------------------------------------------------------


def test_stitched_boundary_matches_the_authors_test_vector():
    # confseq (Howard et al.'s implementation): poly_stitching_bound(100, 0.05, 10, 3).
    assert float(paired.poly_stitching_bound(100, 0.05, 10, 3)) == pytest.approx(64.48755, abs=1e-5)


def _differences(rng, reps, n, p10, p01):
    u = rng.random((reps, n))
    return (u < p10).astype(float) - ((u >= p10) & (u < p10 + p01))


def test_confidence_sequence_is_valid_at_every_look_where_peeking_at_a_fixed_bound_is_not():
    rng = np.random.default_rng(derive_seed("test", "sequence"))
    reps, n, looks = 1500, 3000, np.arange(150, 3001, 150) - 1
    d = _differences(rng, reps, n, 0.1, 0.1)  # Δ = 0, discordant share 0.2
    bounds = paired.confidence_sequence_lower(d, 0.05, v_min=n * 0.2)
    assert np.mean((bounds[:, looks] > 0).any(axis=1)) <= 0.05
    # The fixed-horizon Tango bound, read at each of the 20 looks, promotes far more often.
    n10 = np.cumsum(d == 1, axis=1)[:, looks]
    n01 = np.cumsum(d == -1, axis=1)[:, looks]
    peeking = paired.tango_lower(n10, n01, looks + 1, 0.05) > 0
    assert np.mean(peeking.any(axis=1)) > 0.12


def test_confidence_sequence_closes_in_on_a_real_difference():
    rng = np.random.default_rng(3)
    d = _differences(rng, 200, 20000, 0.13, 0.07)  # Δ = 0.06
    bounds = paired.confidence_sequence_lower(d, 0.05, v_min=2000)
    assert np.all(bounds[:, -1] <= 0.06 + 0.002)  # it covers (up to a rare miss)...
    assert np.mean(bounds[:, -1] > 0.03) > 0.9  # ...and is useful: within 3 points at 20,000


# --- Newcombe ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xb", "nb", "xa", "na", "low", "high"),
    [(56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090)],
)
def test_newcombe_matches_the_published_table(xb, nb, xa, na, low, high):
    # Newcombe (1998), Stat Med 17:873, Table II, method 10 (two-sided 95%).
    assert paired.newcombe_lower(xb, nb, xa, na, 0.025) == pytest.approx(low, abs=5e-5)
    assert -paired.newcombe_lower(xa, na, xb, nb, 0.025) == pytest.approx(high, abs=5e-5)


def test_newcombe_is_built_from_scipy_wilson_bounds():
    xb, nb, xa, na = 130, 400, 100, 380
    wb = stats.binomtest(xb, nb).proportion_ci(0.90, method="wilson")
    wa = stats.binomtest(xa, na).proportion_ci(0.90, method="wilson")
    pb, pa = xb / nb, xa / na
    expected = pb - pa - np.hypot(pb - wb.low, wa.high - pa)
    assert paired.newcombe_lower(xb, nb, xa, na, 0.05) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("decimals", [None, 1])
def test_weighted_auc_equals_sklearn_with_sample_weights(decimals):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(12)
    y = rng.random(500) < 0.3
    s = y + rng.normal(0, 1.0, 500)
    s = s if decimals is None else np.round(s, decimals)  # rounded: the tied-scores branch
    weights = next(paired._resample_counts(500, 4, seed=5))
    expected = [roc_auc_score(y, s, sample_weight=w) for w in weights]
    assert paired._weighted_auc(weights, s, y) == pytest.approx(expected, abs=1e-6)
