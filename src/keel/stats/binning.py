"""Bins for numeric columns: inner edges at the reference's quantiles, fixed once.

With B bins the inner edges are the reference's quantiles at 1/B, ..., (B−1)/B
(duplicates removed, so a discrete column gets fewer bins). Bins are
right-closed, (e₍ᵢ₋₁₎, eᵢ], and the outer two are open-ended, so values
outside the reference's range still land in a bin.

>>> import numpy as np
>>> from keel.stats.samples import NumericSample
>>> quantile_edges(NumericSample.from_values(np.arange(1.0, 11.0)), bins=5).tolist()
[2.0, 4.0, 6.0, 8.0]
"""

from __future__ import annotations

import numpy as np

from keel.stats.samples import NumericSample

DEFAULT_BINS = 10


def quantile_edges(sample: NumericSample, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Inner bin edges at the sample's (lower) quantiles."""
    if sample.count == 0:
        return np.empty(0)
    cumulative = np.cumsum(sample.weights) / sample.weights.sum()
    ranks = np.arange(1, bins) / bins
    positions = np.searchsorted(cumulative, ranks - 1e-12, side="left")
    return np.unique(sample.values[np.minimum(positions, len(sample.values) - 1)])


def reference_edges(reference: NumericSample, bins: int = DEFAULT_BINS) -> np.ndarray:
    """The edges a baseline fixed for this column, or the reference's quantile edges."""
    profile = reference.profile
    if profile is not None and profile.bin_edges is not None:
        return profile.bin_edges
    return quantile_edges(reference, bins)
