"""Distances between two distributions over the same bins or categories.

All take two count vectors over aligned bins (numeric: the reference's
quantile bins; categorical: the union of categories) and turn them into
proportions p (reference) and q (current).

* PSI = Σ (q − p) ln(q / p), on proportions smoothed by half a count per
  bin, (c + ½) / (n + ½B), so an empty bin gives a large finite value, not
  infinity. Conventional reading: < 0.1 stable, 0.1–0.25 moderate, > 0.25 large.
* Jensen–Shannon *distance* (the square root of the divergence, log base 2),
  in [0, 1]; equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
* Hellinger distance √(1 − Σ √(p q)), in [0, 1].
* L-infinity: max |p − q|, the largest change of one bin's share.
* Total variation: ½ Σ |p − q|, the share of mass that moved.

>>> import numpy as np
>>> p, q = np.array([90.0, 10.0]), np.array([99.0, 1.0])
>>> round(psi(p, q), 4), round(total_variation(p, q), 2), round(l_infinity(p, q), 2)
(0.1818, 0.09, 0.09)
"""

from __future__ import annotations

import numpy as np


def _proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.full(len(counts), np.nan)


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    bins = len(reference_counts)
    p = (reference_counts + 0.5) / (reference_counts.sum() + 0.5 * bins)
    q = (current_counts + 0.5) / (current_counts.sum() + 0.5 * bins)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    p, q = _proportions(reference_counts), _proportions(current_counts)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nonzero = a > 0
        return float(np.sum(a[nonzero] * np.log2(a[nonzero] / m[nonzero])))

    divergence = (kl(p) + kl(q)) / 2
    return float(np.sqrt(max(divergence, 0.0)))


def hellinger(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    p, q = _proportions(reference_counts), _proportions(current_counts)
    return float(np.sqrt(max(1.0 - np.sum(np.sqrt(p * q)), 0.0)))


def l_infinity(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    return float(np.max(np.abs(_proportions(reference_counts) - _proportions(current_counts))))


def total_variation(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    diff = _proportions(reference_counts) - _proportions(current_counts)
    return float(0.5 * np.sum(np.abs(diff)))
