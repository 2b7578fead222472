"""Chi-square test of homogeneity for a categorical column, without continuity correction.

The two sides form a 2 × K contingency table over the union of categories
(categories absent from both sides do not count). The statistic is
Σ (observed − expected)² / expected with expected = row total × column
total / N, on K − 1 degrees of freedom; it equals
``scipy.stats.chi2_contingency(table, correction=False)``.

>>> from keel.stats.samples import CategoricalSample
>>> a = CategoricalSample({"x": 30, "y": 70}, 100)
>>> b = CategoricalSample({"x": 50, "y": 50}, 100)
>>> result = chisquare(a, b)
>>> round(result.statistic, 4), round(result.p_value, 5), result.details["dof"]
(8.3333, 0.00389, 1)
"""

from __future__ import annotations

import numpy as np

from keel.stats.method import MethodResult
from keel.stats.samples import CategoricalSample, aligned_counts


def chi_square_homogeneity(
    reference_counts: np.ndarray, current_counts: np.ndarray
) -> tuple[float, float, int]:
    """Statistic, p-value and degrees of freedom for two aligned count vectors."""
    from scipy import special  # lazy, and far lighter than scipy.stats

    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.square(table - expected).__truediv__(expected).sum())
    dof = table.shape[1] - 1
    return statistic, float(special.chdtrc(dof, statistic)), dof


def chisquare(reference: CategoricalSample, current: CategoricalSample) -> MethodResult:
    if reference.count == 0 or current.count == 0:
        return MethodResult(float("nan"), None)
    categories, reference_counts, current_counts = aligned_counts(reference, current)
    statistic, p_value, dof = chi_square_homogeneity(reference_counts, current_counts)
    return MethodResult(statistic, p_value, {"dof": dof, "categories": len(categories)})
