"""Profile of one numeric column: exact counts and moments, a quantile summary, bin counts.

Every field but the quantile summary is exact and merges exactly: counts
add, the mean and the sum of squared deviations (M2) merge by Chan et al.'s
parallel formula, and counts in fixed bins add. The moments are kept shifted by
a pilot value (``shift``: the mean of the first batch with a finite value): the mean is
``shift + shifted_mean``, so a column whose mean is 1e9 standard deviations from
zero keeps its spread, and a merge keeps the larger part's pilot and re-shifts the
other part's mean by the difference of the pilots (exact for pilots within a
factor of two, Sterbenz).
Means and variances of any split then agree with one pass to about 1e-15
relative. The quantile summary
(``keel.profile.quantiles.QuantileSketch``) keeps every value up to
``exact_limit`` (200,000) and is a deterministic KLL-style compactor beyond:
it answers ranks and quantiles within ``rank_error`` (0 while exact), and the
same values in the same order give the same bytes in every process.

>>> import numpy as np
>>> column = NumericProfile(bin_edges=np.array([0.0, 1.0]))
>>> column.update_values(np.array([-1.0, 0.5, 2.0, np.nan, np.inf]), nulls=1)
>>> column.rows, column.nulls, column.nan, column.pos_inf, column.count
(6, 1, 1, 1, 3)
>>> column.bin_counts.tolist(), float(column.mean)
([1, 1, 1], 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.profile.quantiles import DEFAULT_EXACT_LIMIT, DEFAULT_K, QuantileSketch

DEFAULT_SKETCH_K = DEFAULT_K
#: What ``to_state`` names the sketch blob; older profiles hold a DataSketches KLL.
SKETCH_FORMAT = "keel-quantiles/1"


@dataclass
class NumericProfile:
    """Mergeable summary of a numeric column (see the module docstring)."""

    sketch_k: int = DEFAULT_SKETCH_K
    exact_limit: int = DEFAULT_EXACT_LIMIT
    bin_edges: np.ndarray | None = None
    rows: int = 0
    nulls: int = 0
    nan: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    count: int = 0  # finite values
    minimum: float = float("inf")
    maximum: float = float("-inf")
    #: The pilot the moments are taken about (the first batch's mean; 0 in version 2 files).
    shift: float = 0.0
    #: Mean of ``value - shift`` over the finite values.
    shifted_mean: float = 0.0
    m2: float = 0.0
    bin_counts: np.ndarray | None = None
    sketch: Any = field(default=None, repr=False)
    #: False when bin_counts were read off the sketch (within its error), not counted.
    bins_exact: bool = True

    kind = "numeric"

    def __post_init__(self) -> None:
        if self.sketch is None:
            self.sketch = QuantileSketch(self.sketch_k, self.exact_limit)
        if self.bin_edges is not None:
            self.bin_edges = np.asarray(self.bin_edges, dtype=np.float64)
            if self.bin_counts is None:
                self.bin_counts = np.zeros(len(self.bin_edges) + 1, dtype=np.int64)

    def update_values(self, values: np.ndarray, nulls: int = 0) -> None:
        """Add a float64 array of non-null values (NaN and ±inf allowed) and a null count."""
        self.rows += len(values) + nulls
        self.nulls += nulls
        finite_mask = np.isfinite(values)
        finite = values if finite_mask.all() else values[finite_mask]
        if len(finite) != len(values):
            nan_count = int(np.isnan(values).sum())
            pos_inf = int(np.isposinf(values).sum())
            self.nan += nan_count
            self.pos_inf += pos_inf
            self.neg_inf += len(values) - len(finite) - nan_count - pos_inf
        if len(finite) == 0:
            return
        if self.count == 0:  # the pilot: the first batch's mean, near the middle of the data
            pilot = float(finite.mean())
            self.shift = pilot if np.isfinite(pilot) else float(finite[0])
        deviations = finite - self.shift
        batch_mean = float(deviations.mean())
        deviations -= batch_mean
        # Squared in place and summed: no second temporary, and no BLAS call (its threads
        # spin and steal the core a parallel worker needs).
        batch_m2 = float(np.multiply(deviations, deviations, out=deviations).sum())
        self._merge_moments(len(finite), batch_mean, batch_m2)
        self.sketch.update(finite)
        self.minimum = min(self.minimum, float(finite.min()))
        self.maximum = max(self.maximum, float(finite.max()))
        if self.bin_edges is not None:
            self.bin_counts += counts_in_bins(finite, self.bin_edges)

    def fix_bins_from_sketch(self, edges: np.ndarray) -> None:
        """Set bins after the fact, their counts read off the sketch (exact if it is)."""
        values, weights = self.weighted_values()
        counts = np.bincount(
            np.searchsorted(edges, values, side="left"), weights=weights, minlength=len(edges) + 1
        )
        self.bin_edges = np.asarray(edges, dtype=np.float64)
        self.bin_counts = np.rint(counts).astype(np.int64)  # KLL weights are whole numbers
        self.bins_exact = self.rank_error == 0.0

    def _merge_moments(self, count: int, shifted_mean: float, m2: float) -> None:
        """Chan et al.'s merge of (count, mean, M2), both means taken about ``self.shift``."""
        total = self.count + count
        delta = shifted_mean - self.shifted_mean
        self.shifted_mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total

    @property
    def mean(self) -> float:
        """Mean of the finite values (0.0 with none)."""
        return self.shift + self.shifted_mean

    def merge(self, other: NumericProfile) -> NumericProfile:
        """Fold another profile of the same column into this one, in place; returns self."""
        if (self.bin_edges is None) != (other.bin_edges is None) or (
            self.bin_edges is not None and not np.array_equal(self.bin_edges, other.bin_edges)
        ):
            from keel.errors import SchemaError

            raise SchemaError("cannot merge numeric profiles with different bin edges")
        self.rows += other.rows
        self.nulls += other.nulls
        self.nan += other.nan
        self.pos_inf += other.pos_inf
        self.neg_inf += other.neg_inf
        if other.count and not self.count:
            self.shift, self.shifted_mean = other.shift, other.shifted_mean
            self.m2, self.count = other.m2, other.count
        elif other.count:
            if other.count > self.count:  # the larger part's pilot: nearer the bulk of the data
                self.shifted_mean += self.shift - other.shift
                self.shift = other.shift
            # Their mean about our pilot: (shift' - shift) is exact for nearby pilots.
            theirs = other.shifted_mean + (other.shift - self.shift)
            self._merge_moments(other.count, theirs, other.m2)
        if other.count:
            self.minimum = min(self.minimum, other.minimum)
            self.maximum = max(self.maximum, other.maximum)
            self.sketch.merge(other.sketch)
        if self.bin_counts is not None:
            self.bin_counts = self.bin_counts + other.bin_counts
            self.bins_exact = self.bins_exact and other.bins_exact
        return self

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1) of the finite values; NaN with fewer than two."""
        return self.m2 / (self.count - 1) if self.count > 1 else float("nan")

    @property
    def std(self) -> float:
        return float(np.sqrt(self.variance))

    @property
    def rank_error(self) -> float:
        """Bound on the sketch's CDF error (99% confidence); 0 while the sketch is exact."""
        return self.sketch.rank_error

    @property
    def missing(self) -> int:
        """Rows with no usable value: nulls and NaN."""
        return self.nulls + self.nan

    def weighted_values(self) -> tuple[np.ndarray, np.ndarray]:
        """The sketch's retained values, sorted, with their weights (the data, if exact).

        Cached until the sketch changes: a baseline's columns are read once, not per window.
        """
        cached = getattr(self, "_weighted", None)
        if cached is not None and cached[0] == self.sketch.n:
            return cached[1], cached[2]
        values, weights = self.sketch.weighted()
        self._weighted = (self.sketch.n, values, weights)
        return values, weights

    def quantiles(self, ranks: np.ndarray) -> np.ndarray:
        """Approximate quantiles at the given ranks in [0, 1], within ``rank_error`` in rank."""
        return self.sketch.quantiles(np.asarray(ranks, dtype=np.float64))

    def to_state(self) -> tuple[dict[str, Any], bytes]:
        state = {
            "kind": self.kind,
            "sketch_k": self.sketch_k,
            "exact_limit": self.exact_limit,
            "sketch": SKETCH_FORMAT,
            "rows": self.rows,
            "nulls": self.nulls,
            "nan": self.nan,
            "pos_inf": self.pos_inf,
            "neg_inf": self.neg_inf,
            "count": self.count,
            "minimum": self.minimum if self.count else None,
            "maximum": self.maximum if self.count else None,
            "mean": self.mean,
            "shift": self.shift,
            "shifted_mean": self.shifted_mean,
            "m2": self.m2,
            "bin_edges": None if self.bin_edges is None else self.bin_edges.tolist(),
            "bin_counts": None if self.bin_counts is None else self.bin_counts.tolist(),
            "bins_exact": self.bins_exact,
        }
        return state, self.sketch.to_bytes()

    @classmethod
    def from_state(cls, state: dict[str, Any], blob: bytes) -> NumericProfile:
        fields = {k: v for k, v in state.items() if k not in ("kind", "sketch", "mean")}
        if "shift" not in state:  # version 2: moments about zero
            fields["shift"], fields["shifted_mean"] = 0.0, state["mean"]
        fields["minimum"] = float("inf") if state["minimum"] is None else state["minimum"]
        fields["maximum"] = float("-inf") if state["maximum"] is None else state["maximum"]
        if state["bin_counts"] is not None:
            fields["bin_counts"] = np.asarray(state["bin_counts"], dtype=np.int64)
        if state["bin_edges"] is not None:
            fields["bin_edges"] = np.asarray(state["bin_edges"], dtype=np.float64)
        if state.get("sketch") == SKETCH_FORMAT:
            fields["sketch"] = QuantileSketch.from_bytes(blob)
        else:
            fields["sketch"] = _from_datasketches_kll(blob, state["sketch_k"])
        return cls(**fields)


def _from_datasketches_kll(blob: bytes, k: int) -> QuantileSketch:
    """A profile written before keel 0.2 holds a DataSketches KLL: read its weighted items."""
    import itertools

    import datasketches

    kll = datasketches.kll_doubles_sketch.deserialize(blob)
    if kll.is_empty():
        return QuantileSketch(k)
    pairs = np.fromiter(
        itertools.chain.from_iterable(kll), dtype=np.float64, count=2 * kll.num_retained
    ).reshape(-1, 2)
    error = float(kll.normalized_rank_error(False)) if kll.is_estimation_mode() else 0.0
    return QuantileSketch.from_weighted(pairs[:, 0], pairs[:, 1], error, k)


def counts_in_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in right-closed bins (edge[i-1] < v <= edge[i]), the outer two open-ended.

    One comparison pass per edge: for the few edges of quantile bins this is
    several times faster than a binary search per value.

    >>> counts_in_bins(np.array([0.5, 1.0, 1.5, 9.0]), np.array([1.0, 2.0])).tolist()
    [2, 1, 1]
    """
    at_or_below = [np.count_nonzero(values <= edge) for edge in edges]
    return np.diff(np.array([0, *at_or_below, len(values)], dtype=np.int64))
