"""Benjamini–Hochberg adjustment: control the false discovery rate across columns.

Adjusted p-values (q-values) as in Benjamini & Hochberg (1995): sort the m
p-values, multiply the i-th smallest by m / i, take running minima from the
largest down, cap at 1. Rejecting where the adjusted p-value is below α
controls the expected share of false discoveries at α; when no column
truly drifted, the chance of any false alarm is at most α. Equals
``scipy.stats.false_discovery_control(p, method="bh")``.

>>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
[0.04, 0.053, 0.053, 0.5]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return adjusted
