"""Wasserstein-1 (earth mover's) distance between two numeric samples.

W₁ = ∫ |F(x) − G(x)| dx, the area between the two CDFs: the average distance
each unit of mass must travel. keel reports it divided by the reference's
standard deviation, so 0.1 reads "moved by a tenth of a standard deviation"
whatever the column's units. On raw data it equals
``scipy.stats.wasserstein_distance``; on sketches the CDFs are the
sketches', each within its rank error, and the area is taken between the
reference's 0.1% and 99.9% quantiles, where that error cannot be multiplied
by the long gaps between a tail's few retained items.

>>> import numpy as np
>>> from keel.stats.samples import NumericSample
>>> a = NumericSample.from_values(np.array([0.0, 1.0, 3.0]))
>>> b = NumericSample.from_values(np.array([5.0, 6.0, 8.0]))
>>> wasserstein_distance(a, b)
5.0
"""

from __future__ import annotations

import numpy as np

from keel.stats.method import MethodResult
from keel.stats.samples import NumericSample, cdf_at


def wasserstein_distance(reference: NumericSample, current: NumericSample) -> float:
    """W₁ in the column's own units."""
    if reference.count == 0 or current.count == 0:
        return float("nan")
    points = np.union1d(reference.values, current.values)
    if reference.rank_error or current.rank_error:
        # A sketch's few retained items in a long tail are far apart: its small rank error
        # times those gaps would dominate the distance. On sketches the area is taken
        # between the reference's 0.1% and 99.9% quantiles (edges included).
        low, high = _quantiles(reference, (0.001, 0.999))
        points = np.union1d(np.clip(points, low, high), [low, high])
    gap = np.abs(
        cdf_at(reference.values, reference.weights, points[:-1])
        - cdf_at(current.values, current.weights, points[:-1])
    )
    return float(np.dot(gap, np.diff(points)))


def _quantiles(sample: NumericSample, ranks: tuple[float, float]) -> tuple[float, float]:
    cumulative = np.cumsum(sample.weights) / sample.weights.sum()
    low, high = (
        sample.values[min(np.searchsorted(cumulative, r), len(sample.values) - 1)] for r in ranks
    )
    return float(low), float(high)


def wasserstein(reference: NumericSample, current: NumericSample) -> MethodResult:
    """W₁ divided by the reference standard deviation (infinite if a constant column moved)."""
    distance = wasserstein_distance(reference, current)
    scale = reference.std
    if np.isnan(distance):
        return MethodResult(distance, None)
    if scale > 0:
        return MethodResult(distance / scale, None, {"distance": distance, "reference_std": scale})
    # A constant reference: any movement is infinitely many of its standard deviations.
    statistic = 0.0 if distance == 0 else float("inf")
    return MethodResult(statistic, None, {"distance": distance, "reference_std": scale})
