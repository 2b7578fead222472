"""One-sided bounds for Δ = challenger − champion, measured on the same requests.

Every function returns a lower confidence bound at 1 − α (one-sided), the form the
gate reads: "the challenger is at most this much worse". Positive Δ means the
challenger is better; for a loss (log loss, MAE) the caller passes the improvement
``champion_loss − challenger_loss``.

- ``tango_lower``: per-request correctness (accuracy; recall on the positives;
  specificity on the negatives), Tango's score interval for paired proportions.
- ``mcnemar_mid_p``: the superiority test on accuracy (exact, on the discordant pairs).
- ``paired_t_lower`` and ``paired_bootstrap_lower``: per-request values (log loss,
  MAE, value); the bootstrap resamples entities when ``entities`` repeat.
- ``delong_lower`` and ``paired_bootstrap_auc_lower``: two correlated ROC AUCs.
- ``paired_bootstrap_ratio_lower``: precision and F1 (ratios of counts).
- ``confidence_sequence_lower``: an always-valid bound for the mean of bounded
  per-request differences, for ``sequential: true``.
- ``newcombe_lower``: unpaired difference of two proportions (a canary's arms).

All of them are vectorised: counts may be arrays (one entry per replication), and no
function loops over rows in Python; the bootstraps loop over chunks of resamples only.

>>> round(float(tango_lower(n10=40, n01=20, n=160, alpha=0.025)), 4)
0.0309
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

#: Resamples per chunk in the bootstraps: bounds the (chunk × rows) weight matrix in memory.
_CHUNK_CELLS = 4_000_000


class Bound(NamedTuple):
    """A point estimate of Δ and its one-sided lower confidence bound (floats or arrays)."""

    estimate: float | np.ndarray
    lower: float | np.ndarray


def _z(alpha: float) -> float:
    from scipy.special import ndtri

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return float(ndtri(1.0 - alpha))


# --- paired proportions -------------------------------------------------------------


def _tango_statistic(delta, n10, n01, n):
    """Tango's score statistic at Δ = δ, with p01 replaced by its MLE under that constraint."""
    w = -n10 - n01 + (2.0 * n - n10 + n01) * delta
    p01 = (np.sqrt(np.maximum(w * w + 8.0 * n * n01 * delta * (1.0 - delta), 0.0)) - w) / (4 * n)
    variance = n * (2.0 * p01 + delta * (1.0 - delta))
    numerator = n10 - n01 - n * delta
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = numerator / np.sqrt(variance)
    return np.where(variance > 0, statistic, np.where(numerator > 0, np.inf, 0.0))


def tango_lower(n10, n01, n, alpha: float = 0.05):
    """Lower 1 − α bound for Δ = p_challenger − p_champion from paired 0/1 outcomes.

    ``n10``: requests the challenger got right and the champion wrong; ``n01``: the
    reverse; ``n``: all paired requests. Δ̂ = (n10 − n01)/n. The bound is the smallest δ
    that Tango's score test does not reject one-sided: T(δ) = (n10 − n01 − nδ) /
    √(n(2p̃01 + δ(1 − δ))) ≤ z₁₋α, with p̃01 the maximum-likelihood p01 under Δ = δ
    (closed form, Tango's eq. 4). Found by 60 steps of bisection on [−1, Δ̂], vectorised.
    Unlike the Wald interval it does not collapse when there are few discordant pairs.

    Reference: Tango (1998), "Equivalence test and confidence interval for the
    difference in proportions for the paired-sample design", Stat Med 17:891–908.
    Fagerland, Lydersen & Laake (2014), Stat Med 33:2850, Table V: for the table
    (1, 1, 7, 12), the 95% interval is (−0.517, −0.026):

    >>> round(float(tango_lower(n10=1, n01=7, n=21, alpha=0.025)), 3)
    -0.517
    >>> round(-float(tango_lower(n10=7, n01=1, n=21, alpha=0.025)), 3)
    -0.026
    """
    z = _z(alpha)
    n10, n01, n = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (n10, n01, n)))
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = (n10 - n01) / n
    low = np.full(estimate.shape, -1.0)
    high = np.where(np.isfinite(estimate), estimate, -1.0)
    for _ in range(60):
        middle = 0.5 * (low + high)
        rejected = _tango_statistic(middle, n10, n01, n) > z
        low = np.where(rejected, middle, low)
        high = np.where(rejected, high, middle)
    bound = np.where(n > 0, 0.5 * (low + high), np.nan)
    return bound if bound.ndim else float(bound)


def mcnemar_mid_p(n10, n01):
    """One-sided mid-p that the challenger is more accurate (H₁: p10 > p01).

    Conditional on the m = n10 + n01 discordant pairs, n10 ~ Binomial(m, ½) when the two
    are equally accurate; mid-p = P(X > n10) + ½ P(X = n10). The mid-p halves the exact
    test's conservatism from the discreteness of X and stays close to α in size.

    Reference: McNemar (1947), Psychometrika 12:153; Fagerland, Lydersen & Laake (2013),
    "The McNemar test for binary matched-pairs data: mid-p and asymptotic are better than
    exact conditional", BMC Med Res Methodol 13:91.

    >>> round(float(mcnemar_mid_p(8, 2)), 4)
    0.0327
    """
    from scipy.special import betainc, gammaln

    k, m = np.broadcast_arrays(np.asarray(n10, np.float64), np.asarray(n10, np.float64) + n01)
    log_pmf = gammaln(m + 1) - gammaln(k + 1) - gammaln(m - k + 1) - m * np.log(2.0)
    # P(X > k) = I_½(k + 1, m − k), the regularized incomplete beta function.
    above = np.where(k < m, betainc(k + 1, np.maximum(m - k, 1), 0.5), 0.0)
    p = above + 0.5 * np.exp(log_pmf)
    return p if p.ndim else float(p)


def newcombe_lower(x_challenger, n_challenger, x_champion, n_champion, alpha: float = 0.05):
    """Lower 1 − α bound for p_challenger − p_champion from two independent samples.

    Newcombe's hybrid score interval (his method 10): with Wilson bounds (l, u) for each
    proportion at z₁₋α, L = Δ̂ − √((p̂_b − l_b)² + (u_a − p̂_a)²). For a canary's randomized
    arms when labels depend on the decision, so the requests cannot be paired.

    Reference: Newcombe (1998), "Interval estimation for the difference between
    independent proportions: comparison of eleven methods", Stat Med 17:873–890,
    Table II: 56/70 − 48/80 has the 95% interval (0.0524, 0.3339).

    >>> round(float(newcombe_lower(56, 70, 48, 80, alpha=0.025)), 4)
    0.0524
    """
    z = _z(alpha)
    xb, nb, xa, na = (
        np.asarray(v, np.float64) for v in (x_challenger, n_challenger, x_champion, n_champion)
    )
    pb, pa = xb / nb, xa / na
    lower_b, _ = _wilson(pb, nb, z)
    _, upper_a = _wilson(pa, na, z)
    bound = pb - pa - np.sqrt((pb - lower_b) ** 2 + (upper_a - pa) ** 2)
    return bound if bound.ndim else float(bound)


def _wilson(p, n, z):
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


# --- per-request values ---------------------------------------------------------------


def _units(entities, rows: int) -> tuple[np.ndarray | None, int]:
    """Each row's entity index, or None when every entity has one row (rows are units)."""
    if entities is None:
        return None, rows
    _, index, counts = np.unique(np.asarray(entities), return_inverse=True, return_counts=True)
    if len(index) != rows:
        raise ValueError(f"{len(index)} entity ids for {rows} requests")
    return (index, len(counts)) if counts.max() > 1 else (None, rows)


def paired_t_lower(differences, alpha: float = 0.05, entities=None) -> Bound:
    """Lower 1 − α bound for the mean per-request difference, by Student's t.

    Rows are independent requests: mean − t₁₋α,n−1 · s/√n. When ``entities`` repeat, the
    standard error is the cluster-robust one (sums per entity, G/(G − 1) scaling) on
    G − 1 degrees of freedom; it equals the plain one when every entity has one request.

    Reference: Student (1908); Cameron & Miller (2015), "A practitioner's guide to
    cluster-robust inference", J Human Resources 50:317, eq. (11).

    >>> round(paired_t_lower([0.1, 0.3, 0.2, 0.4, 0.0], alpha=0.05).lower, 4)
    0.0493
    """
    from scipy.special import stdtrit

    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    if n < 2:
        return Bound(float(d.mean()) if n else float("nan"), float("nan"))
    mean = float(d.mean())
    index, groups = _units(entities, n)
    if index is None:
        se, df = float(d.std(ddof=1)) / np.sqrt(n), n - 1
    else:
        residual = np.bincount(index, weights=d - mean, minlength=groups)
        se = float(np.sqrt(groups / (groups - 1) * np.sum(residual**2))) / n
        df = groups - 1
    return Bound(mean, float(mean - stdtrit(df, 1.0 - alpha) * se))


def _resample_counts(units: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap counts: (chunk × units) matrices, each row how often each unit was drawn."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, _CHUNK_CELLS // max(units, 1)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        draws = rng.integers(0, units, size=(size, units), dtype=np.int64)
        flat = (np.arange(size)[:, None] * units + draws).ravel()
        counts = np.bincount(flat, minlength=size * units).reshape(size, units)
        yield counts.astype(np.float32)  # whole counts, exact in float32 up to 2**24


def paired_bootstrap_ratio_lower(
    numerators,
    denominators,
    alpha: float = 0.05,
    *,
    seed: int,
    resamples: int = 2000,
    entities=None,
) -> Bound:
    """Lower 1 − α percentile-bootstrap bound for Δ = Σnum_b/Σden_b − Σnum_a/Σden_a.

    ``numerators`` and ``denominators`` are pairs ``(champion, challenger)`` of per-request
    arrays, resampled together (the same requests for both models): precision is
    true positives over predicted positives, F1 is 2·TP over 2·TP + FP + FN, a mean is the
    value over 1. Whole entities are resampled when ``entities`` repeat (a user with many
    requests is one unit). Resamples in which a denominator is 0 are dropped.

    Reference: Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13
    (percentile interval); Davison & Hinkley (1997), §3.8 (resampling clusters).

    >>> d = np.array([0.0, 1.0] * 50)
    >>> round(paired_bootstrap_ratio_lower(([0 * d, 1 + 0 * d]), ([1 + 0 * d, 1 + 0 * d]),
    ...       seed=7, resamples=1).estimate, 2)
    1.0
    """
    num_a, num_b = (np.asarray(x, np.float64) for x in numerators)
    den_a, den_b = (np.asarray(x, np.float64) for x in denominators)
    table = np.stack([num_a, den_a, num_b, den_b], axis=1)
    index, units = _units(entities, len(table))
    if index is not None:
        table = np.stack([np.bincount(index, weights=col, minlength=units) for col in table.T], 1)
    totals = table.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(totals[2] / totals[3] - totals[0] / totals[1])
        draws = []
        for counts in _resample_counts(units, resamples, seed):
            sums = counts @ table
            draws.append(sums[:, 2] / sums[:, 3] - sums[:, 0] / sums[:, 1])
    values = np.concatenate(draws)
    values = values[np.isfinite(values)]
    lower = float(np.quantile(values, alpha)) if len(values) else float("nan")
    return Bound(estimate, lower)


def paired_bootstrap_lower(
    differences, alpha: float = 0.05, *, seed: int, resamples: int = 2000, entities=None
) -> Bound:
    """Lower 1 − α percentile-bootstrap bound for the mean per-request difference.

    Resamples requests, or whole entities when ``entities`` repeat (the mean is then the
    ratio of the resampled sums to the resampled request counts).

    >>> from keel.seeds import derive_seed
    >>> d = np.random.default_rng(1).normal(0.5, 1.0, 400)
    >>> bound = paired_bootstrap_lower(d, seed=derive_seed("doc", "bootstrap"), resamples=500)
    >>> round(bound.estimate, 3), 0.3 < bound.lower < bound.estimate
    (0.418, True)
    """
    d = np.asarray(differences, np.float64)
    ones = np.ones_like(d)
    return paired_bootstrap_ratio_lower(
        (np.zeros_like(d), d),
        (ones, ones),
        alpha,
        seed=seed,
        resamples=resamples,
        entities=entities,
    )


# --- ROC AUC ---------------------------------------------------------------------------


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (O(n log n))."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    counts = np.diff(np.r_[starts, len(values)])
    average = starts + (counts + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, counts)
    return ranks


def delong_lower(champion_scores, challenger_scores, labels, alpha: float = 0.05) -> Bound:
    """Lower 1 − α bound for AUC_challenger − AUC_champion on the same requests (DeLong).

    Each model's AUC is the Mann–Whitney statistic; its structural components V10 (per
    positive) and V01 (per negative) give the covariance of the two AUCs,
    S = S10/m + S01/n, and Var(Δ̂) = S_aa + S_bb − 2 S_ab. The components come from
    midranks (Sun & Xu's O(n log n) algorithm) instead of the n·m pairwise comparisons.

    References: DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two
    or more correlated receiver operating characteristic curves", Biometrics 44:837;
    Sun & Xu (2014), "Fast implementation of DeLong's algorithm", IEEE Signal Processing
    Letters 21:1389.

    >>> y = np.array([0, 0, 1, 1, 0, 1])
    >>> bound = delong_lower([0.1, 0.4, 0.35, 0.8, 0.2, 0.7], [0.1, 0.3, 0.6, 0.8, 0.2, 0.7], y)
    >>> round(bound.estimate, 4)
    0.1111
    """
    y = np.asarray(labels).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        return Bound(float("nan"), float("nan"))
    aucs, v10, v01 = [], [], []
    for scores in (champion_scores, challenger_scores):
        s = np.asarray(scores, np.float64)
        whole, positives, negatives = _midranks(s), _midranks(s[y]), _midranks(s[~y])
        aucs.append((whole[y].sum() - m * (m + 1) / 2.0) / (m * n))
        v10.append((whole[y] - positives) / n)
        v01.append(1.0 - (whole[~y] - negatives) / m)
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (
        s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]
    ) / n
    estimate = float(aucs[1] - aucs[0])
    return Bound(estimate, estimate - _z(alpha) * float(np.sqrt(max(variance, 0.0))))


def _weighted_auc(weights: np.ndarray, scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUC under each row of row-weights (ties count ½).

    Sorted by score, each positive's weighted count of negatives below it is a cumulative
    sum of the negatives' weights, read at the positive's place; with tied scores the
    weights are first summed per score value.
    """
    order = np.argsort(scores, kind="mergesort")
    sorted_scores, sorted_positive = scores[order], positive[order]
    w = weights[:, order]
    if np.all(sorted_scores[1:] != sorted_scores[:-1]):
        negatives = w[:, ~sorted_positive]
        below = np.cumsum(negatives, axis=1)
        # For the i-th positive in score order: the negatives before it in the sort.
        place = np.cumsum(~sorted_positive)[sorted_positive]
        positives = w[:, sorted_positive]
        reached = np.where(place > 0, below[:, np.maximum(place - 1, 0)], 0.0)
        numerator = np.einsum("ij,ij->i", positives, reached)
        total_positive, total_negative = positives.sum(1), below[:, -1]
    else:
        starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        pos = np.add.reduceat(w * sorted_positive, starts, axis=1)
        neg = np.add.reduceat(w, starts, axis=1) - pos
        numerator = (pos * (np.cumsum(neg, axis=1) - 0.5 * neg)).sum(1)
        total_positive, total_negative = pos.sum(1), neg.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / (total_positive * total_negative)


def paired_bootstrap_auc_lower(
    champion_scores,
    challenger_scores,
    labels,
    alpha: float = 0.05,
    *,
    seed: int,
    resamples: int = 1000,
    entities=None,
) -> Bound:
    """Lower 1 − α percentile-bootstrap bound for AUC_challenger − AUC_champion.

    Both AUCs are recomputed on the same resampled requests (or whole entities, when
    ``entities`` repeat, where DeLong's independence of requests fails). The resamples
    are count vectors, and each AUC is a weighted Mann–Whitney sum over tied-score groups,
    so a chunk of resamples costs one sort and a few matrix reductions.

    Reference: Efron & Tibshirani (1993), ch. 13; Hanley & McNeil (1983), Radiology 148:839.

    >>> rng = np.random.default_rng(3)
    >>> y = rng.random(300) < 0.4
    >>> a, b = y + rng.normal(0, 1.0, 300), y + rng.normal(0, 0.7, 300)
    >>> bound = paired_bootstrap_auc_lower(a, b, y, seed=11, resamples=200)
    >>> bound.lower < bound.estimate
    True
    """
    y = np.asarray(labels).astype(bool)
    a, b = np.asarray(champion_scores, np.float64), np.asarray(challenger_scores, np.float64)
    ones = np.ones((1, len(y)))
    estimate = float(_weighted_auc(ones, b, y)[0] - _weighted_auc(ones, a, y)[0])
    index, units = _units(entities, len(y))
    draws = []
    for counts in _resample_counts(units, resamples, seed):
        w = counts if index is None else counts[:, index]
        draws.append(_weighted_auc(w, b, y) - _weighted_auc(w, a, y))
    values = np.concatenate(draws)
    values = values[np.isfinite(values)]
    return Bound(estimate, float(np.quantile(values, alpha)) if len(values) else float("nan"))


# --- sequential ------------------------------------------------------------------------


def poly_stitching_bound(v, alpha: float, v_min: float, c: float, s: float = 1.4, eta: float = 2.0):
    """Howard et al.'s polynomial stitched boundary u(v) for a sub-gamma process of scale c.

    P(∃t: S_t ≥ u(V_t)) ≤ α, with u(v) = √(k₁² v ℓ + (k₂ c ℓ)²) + k₂ c ℓ at v ≥ v_min,
    ℓ = s·log log(ηv/v_min) + log(ζ(s)/(α log^s η)), k₁ = (η^¼ + η^−¼)/√2,
    k₂ = (√η + 1)/2, and u(v_min) below v_min. The boundary grows like √(v log log v).

    Reference: Howard, Ramdas, McAuliffe & Sekhon (2021), "Time-uniform, nonparametric,
    nonasymptotic confidence sequences", Ann Statist 49:1055, Theorem 1 and eq. (10); the
    authors' confseq test vector:

    >>> round(float(poly_stitching_bound(100, 0.05, 10, 3)), 5)
    64.48755
    """
    from scipy.special import zeta

    use_v = np.maximum(np.asarray(v, np.float64), v_min)
    ell = s * np.log(np.log(eta * use_v / v_min)) + np.log(zeta(s) / (alpha * np.log(eta) ** s))
    k1 = (eta**0.25 + eta**-0.25) / np.sqrt(2.0)
    k2 = (np.sqrt(eta) + 1.0) / 2.0
    term = k2 * c * ell
    return np.sqrt(k1 * k1 * use_v * ell + term * term) + term


def confidence_sequence_lower(
    values, alpha: float = 0.05, low: float = -1.0, high: float = 1.0, v_min: float = 100.0
) -> np.ndarray:
    """Always-valid lower bounds L_1, L_2, … for the mean of bounded per-request values.

    ``values`` in arrival order along the last axis (any leading axes are replications),
    each in [low, high]. With X̂_{i−1} the mean of the earlier values (the midpoint before
    the first), V_t = Σ (X_i − X̂_{i−1})² and c = high − low, the empirical-Bernstein
    theorem makes Σ (μ − X_i) sub-exponential with variance process V_t and scale c, so
    with the polynomial stitched boundary u: P(∃t: μ < X̄_t − u(V_t)/t) ≤ α. Returned is
    the running maximum of X̄_t − u(V_t)/t (the running intersection, equally valid), so
    the gate may look at every window, or every request, and stop at any look.

    ``v_min`` is the intrinsic time from which the boundary is tight: the planned
    horizon's expected V (n × the per-request variance) is a good choice; earlier looks
    are wider. The boundary, not the normal mixture, because the mixture is valid only
    for sub-Gaussian increments and the empirical variance needs a sub-exponential one.

    Reference: Howard et al. (2021), Ann Statist 49:1055, Theorem 4 (empirical Bernstein)
    with the stitched boundary of Theorem 1.

    >>> x = np.tile([1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0], 500)   # mean 0.125
    >>> bounds = confidence_sequence_lower(x, alpha=0.05, v_min=500)
    >>> round(float(bounds[-1]), 3), bool(np.all(np.diff(bounds) >= 0))
    (0.09, True)
    """
    x = np.asarray(values, np.float64)
    t = np.arange(1, x.shape[-1] + 1)
    mean = np.cumsum(x, axis=-1) / t
    prior = np.concatenate(
        [np.full(x.shape[:-1] + (1,), 0.5 * (low + high)), mean[..., :-1]], axis=-1
    )
    v = np.cumsum((x - prior) ** 2, axis=-1)
    lower = mean - poly_stitching_bound(v, alpha, v_min, high - low) / t
    return np.maximum.accumulate(lower, axis=-1)
