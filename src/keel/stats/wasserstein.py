"""Wasserstein-1 (earth mover's) distance between two numeric samples.

W₁ = ∫ |F(x) − G(x)| dx, the area between the two CDFs: the average distance
each unit of mass must travel. keel reports it divided by the reference's
standard deviation, so 0.1 reads "moved by a tenth of a standard deviation"
whatever the column's units; when a few extreme values set that standard
deviation (it exceeds 3× the robust scale IQR/1.349), by the robust scale. On raw data it equals
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


#: A standard deviation above this many robust scales is set by a few extreme values.
HEAVY_TAIL_RATIO = 3.0
#: IQR / 1.349 is a normal distribution's standard deviation.
IQR_PER_SD = 1.349


def robust_scale_of(values: np.ndarray, weights: np.ndarray) -> float:
    """IQR / 1.349 of sorted weighted values (lower quantiles, as ``keel.stats.histogram``).

    >>> round(robust_scale_of(np.arange(1.0, 101.0), np.ones(100)), 3)  # (75 - 25) / 1.349
    37.064
    """
    if len(values) == 0:
        return float("nan")
    cumulative = np.cumsum(weights)
    at = np.searchsorted(cumulative, np.array([0.25, 0.75]) * cumulative[-1], side="left")
    low, high = values[np.minimum(at, len(values) - 1)]
    return float(high - low) / IQR_PER_SD


def choose_scale(std: float, robust: float) -> tuple[float, str]:
    """The unit of a column's Wasserstein distance: its standard deviation, unless that is
    more than 3× its robust scale (IQR/1.349): then a few extreme values set the standard
    deviation, and the robust scale is the unit.

    >>> choose_scale(1.0, 0.98), choose_scale(12.0, 1.1)
    ((1.0, 'std'), (1.1, 'robust'))
    """
    if robust > 0 and std > HEAVY_TAIL_RATIO * robust:
        return robust, "robust"
    return std, "std"


def reference_scale(sample: NumericSample) -> tuple[float, str]:
    """``choose_scale`` for a reference sample."""
    return choose_scale(sample.std, robust_scale_of(sample.values, sample.weights))


def wasserstein(reference: NumericSample, current: NumericSample) -> MethodResult:
    """W₁ divided by the reference's scale (infinite if a constant column moved).

    The scale is the standard deviation, or the robust scale IQR/1.349 when the standard
    deviation is more than three times it (``choose_scale``): a column whose spread a few
    extreme values set would otherwise read every real shift as tiny."""
    distance = wasserstein_distance(reference, current)
    if np.isnan(distance):
        return MethodResult(distance, None)
    scale, basis = reference_scale(reference)
    details = {"distance": distance, "reference_std": reference.std, "scale": basis}
    if basis == "robust":
        details["reference_robust_scale"] = scale
    if scale > 0:
        return MethodResult(distance / scale, None, details)
    # A constant reference: any movement is infinitely many of its standard deviations.
    statistic = 0.0 if distance == 0 else float("inf")
    return MethodResult(statistic, None, details)
