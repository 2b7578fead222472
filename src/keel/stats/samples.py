"""What drift methods read: one column of one side, from a profile or from raw values.

A numeric sample is a sorted set of values with weights (raw data: every
value with weight 1; a KLL sketch: its retained items with their weights),
the true number of values, and the bound on its CDF error (0 for raw data
and for sketches that have not started compacting). A categorical sample is
a table of counts with a bound on each count's error. Every method takes two
samples of one kind, so exact mode and profile mode share one code path.

>>> import numpy as np
>>> sample = NumericSample.from_values(np.array([3.0, 1.0, 2.0]))
>>> sample.values.tolist(), sample.count, sample.rank_error
([1.0, 2.0, 3.0], 3, 0.0)
>>> cdf_at(sample.values, sample.weights, np.array([0.5, 2.0, 9.0])).tolist()
[0.0, 0.6666666666666666, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.profile.categorical import CategoricalProfile
from keel.profile.numeric import NumericProfile


@dataclass
class NumericSample:
    values: np.ndarray  # sorted
    weights: np.ndarray
    count: int
    rank_error: float
    mean: float
    std: float
    raw: np.ndarray | None = None  # the exact values, when the caller has them
    profile: NumericProfile | None = field(default=None, repr=False)

    @classmethod
    def from_values(cls, values: np.ndarray) -> NumericSample:
        """Raw values; NaN and ±inf are dropped (quality checks count them)."""
        values = np.asarray(values, dtype=np.float64)
        finite = np.sort(values[np.isfinite(values)])
        std = float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
        mean = float(finite.mean()) if len(finite) else float("nan")
        return cls(finite, np.ones(len(finite)), len(finite), 0.0, mean, std, raw=finite)

    @classmethod
    def from_profile(cls, profile: NumericProfile) -> NumericSample:
        values, weights = profile.weighted_values()
        raw = None
        if profile.rank_error == 0.0 and profile.count:
            # An uncompacted sketch holds every value once: the exact data.
            raw = np.repeat(values, weights.astype(np.int64))
        return cls(
            values,
            weights,
            profile.count,
            profile.rank_error,
            profile.mean if profile.count else float("nan"),
            profile.std,
            raw,
            profile,
        )

    def bin_counts(self, edges: np.ndarray) -> tuple[np.ndarray, bool]:
        """Counts in right-closed bins with these inner edges, and whether they are exact."""
        profile = self.profile
        if (
            profile is not None
            and profile.bin_edges is not None
            and np.array_equal(profile.bin_edges, edges)
        ):
            return profile.bin_counts.astype(np.float64), profile.bins_exact
        indices = np.searchsorted(edges, self.values, side="left")
        counts = np.bincount(indices, weights=self.weights, minlength=len(edges) + 1)
        return counts, self.rank_error == 0.0


@dataclass
class CategoricalSample:
    counts: dict[str, int]
    count: int
    count_error: float = 0.0
    profile: CategoricalProfile | None = field(default=None, repr=False)

    def count_of(self, label: str) -> float:
        """This side's count of a category, estimated by its sketch if it has one."""
        if label in self.counts or self.profile is None:
            return self.counts.get(label, 0)
        return self.profile.count_of(label)

    @classmethod
    def from_values(cls, values: Any) -> CategoricalSample:
        """Raw values: any array Arrow reads; nulls are missing and left out.

        >>> CategoricalSample.from_values(["a", None, "b", "a"]).counts
        {'a': 2, 'b': 1}
        """
        from keel.profile.profile import value_counts

        array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
        counts = value_counts(pc.drop_null(array), "values")
        return cls(counts, int(sum(counts.values())))

    @classmethod
    def from_profile(cls, profile: CategoricalProfile) -> CategoricalSample:
        return cls(profile.category_counts(), profile.count, profile.count_error, profile)


def cdf_at(values: np.ndarray, weights: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Weighted empirical CDF of sorted ``values`` at ``points`` (share of weight <= point)."""
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    return cumulative[np.searchsorted(values, points, side="right")] / cumulative[-1]


def aligned_counts(
    reference: CategoricalSample, current: CategoricalSample, max_categories: int = 100
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Both sides' counts over one list of categories.

    Categories are the union of both sides, largest first; past
    ``max_categories`` the rest are pooled into ``"(other)"``, and so is any
    remainder a sketch could not attribute to a named category. A side that
    summarises a category with a sketch gives its estimated count.
    """
    totals: dict[str, int] = {}
    for side in (reference.counts, current.counts):
        for label, count in side.items():
            totals[label] = totals.get(label, 0) + count
    ordered = sorted(totals, key=lambda label: (-totals[label], label))
    kept, pooled = ordered[:max_categories], ordered[max_categories:]
    reference_counts = np.array([reference.count_of(c) for c in kept], dtype=np.float64)
    current_counts = np.array([current.count_of(c) for c in kept], dtype=np.float64)
    reference_other = reference.count - reference_counts.sum()
    current_other = current.count - current_counts.sum()
    if pooled or reference_other > 0 or current_other > 0:
        kept = [*kept, "(other)"]
        reference_counts = np.append(reference_counts, max(reference_other, 0.0))
        current_counts = np.append(current_counts, max(current_other, 0.0))
    return kept, reference_counts, current_counts
