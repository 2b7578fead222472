"""Side-by-side distributions for people to look at: shared bins, shares per side.

Numeric columns get 30 equal-width bins over the central 99% of both sides
together (log-spaced when every value is positive and the range spans more
than two orders of magnitude, as after a unit change); categorical columns
get their 15 largest categories on either side, the rest pooled. Shares are
computed from the same samples the drift methods read (raw values or
sketches), so a chart never needs raw rows.

>>> import numpy as np
>>> from keel.stats.samples import NumericSample
>>> a = NumericSample.from_values(np.arange(100.0))
>>> shape = numeric_histogram(a, a, bins=4)
>>> shape["scale"], len(shape["edges"]), round(sum(shape["reference"]), 2)
('linear', 5, 0.99)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keel.stats.samples import CategoricalSample, NumericSample, aligned_counts, cdf_at


def quantile(sample: NumericSample, rank: float) -> float:
    """The lower quantile of a (weighted) sample at ``rank`` in [0, 1]."""
    cumulative = np.cumsum(sample.weights)
    position = np.searchsorted(cumulative, rank * cumulative[-1], side="left")
    return float(sample.values[min(position, len(sample.values) - 1)])


def numeric_histogram(
    reference: NumericSample, current: NumericSample, bins: int = 30
) -> dict[str, Any]:
    low = min(quantile(reference, 0.005), quantile(current, 0.005))
    high = max(quantile(reference, 0.995), quantile(current, 0.995))
    if high <= low:
        high = low + 1.0
    logarithmic = low > 0 and high / low > 100
    edges = np.geomspace(low, high, bins + 1) if logarithmic else np.linspace(low, high, bins + 1)
    shares = {}
    for side, sample in (("reference", reference), ("current", current)):
        cumulative = cdf_at(sample.values, sample.weights, edges)
        shares[side] = np.diff(cumulative).round(6).tolist()
    return {
        "kind": "numeric",
        "scale": "log" if logarithmic else "linear",
        "edges": edges.tolist(),
        **shares,
    }


def categorical_histogram(
    reference: CategoricalSample, current: CategoricalSample, top: int = 15
) -> dict[str, Any]:
    labels, reference_counts, current_counts = aligned_counts(reference, current, top)
    return {
        "kind": "categorical",
        "categories": labels,
        "reference": (reference_counts / max(reference.count, 1)).round(6).tolist(),
        "current": (current_counts / max(current.count, 1)).round(6).tolist(),
    }
