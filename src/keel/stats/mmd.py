"""Maximum mean discrepancy between two samples of vectors, with a permutation p-value.

MMD² is the squared distance between the two samples' mean embeddings under
the RBF kernel k(x, y) = exp(−‖x − y‖² / (2σ²)); keel reports the unbiased
estimate (Gretton et al. 2012, eq. 3). σ is the median pairwise distance
within the reference sample only (the median heuristic), fixed before any
testing. Each side is subsampled to at most 2,000 rows; the kernel matrix of
the pooled subsample is computed once, and the p-value compares the observed
statistic with B ≥ 500 random relabellings of that same subsample:
p = (1 + #{permuted ≥ observed}) / (1 + B), which is exact (never below its
nominal level under the null). Rows with a missing value are dropped and
counted; the permutations are seeded from the two samples' content.

Reference: Gretton, Borgwardt, Rasch, Schölkopf & Smola (2012), "A kernel
two-sample test", JMLR 13.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=(300, 8))
>>> same = mmd_test(reference, rng.normal(size=(300, 8)))
>>> shifted = mmd_test(reference, rng.normal(size=(300, 8)) + np.r_[0.5, np.zeros(7)])
>>> bool(same.p_value > 0.05), round(shifted.p_value, 4)
(True, 0.002)
"""

from __future__ import annotations

import hashlib

import numpy as np

from keel.errors import ConfigError, DataError, SchemaError
from keel.seeds import derive_seed
from keel.stats.method import MethodResult

MAX_ROWS = 2_000
MIN_PERMUTATIONS = 500
_PERMUTATION_BATCH = 100
#: A side under 1/GATHER_SHARE of the pooled rows is summed by gathering its s² entries per
#: relabelling; otherwise a matrix product over all rows does it faster.
GATHER_SHARE = 6


def mmd_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = MIN_PERMUTATIONS,
    max_rows: int = MAX_ROWS,
    seed: int | None = None,
) -> MethodResult:
    """Unbiased MMD² (RBF kernel, median-heuristic bandwidth) and its permutation p-value.

    ``reference`` and ``current`` are n × d and m × d arrays (a 1-D array is
    one column). ``details`` carries the bandwidth, the rows used and dropped
    on each side, the permutations and the seed.
    """
    if permutations < MIN_PERMUTATIONS:
        raise ConfigError(f"an MMD test uses at least {MIN_PERMUTATIONS} permutations")
    reference_rows, reference_dropped = _rows(reference, "reference")
    current_rows, current_dropped = _rows(current, "current")
    if reference_rows.shape[1] != current_rows.shape[1]:
        raise SchemaError(
            f"the current vectors have {current_rows.shape[1]} dimensions and the reference's "
            f"{reference_rows.shape[1]}: they come from different embedding spaces"
        )
    if seed is None:
        seed = derive_seed(_fingerprint(reference_rows), _fingerprint(current_rows), "mmd")
    rng = np.random.default_rng(seed)
    reference_rows = _subsample(reference_rows, max_rows, rng)
    current_rows = _subsample(current_rows, max_rows, rng)
    n, m = len(reference_rows), len(current_rows)

    squared, bandwidth = _pooled_squared(reference_rows, current_rows)
    kernel = np.exp(squared / (-2.0 * bandwidth**2), out=squared)

    row_sums = kernel.sum(axis=1)
    diagonal = kernel.diagonal().copy()
    total = row_sums.sum()
    sums = _Sums(kernel, row_sums, diagonal, float(total), n, m)
    statistic = float(sums.mmd2(np.arange(n, n + m)[None, :], side="current")[0])

    # The smaller side's rows are gathered (B × s² kernel entries); the same relabellings
    # either way: each permutation's first n rows are "reference", the rest "current".
    side = "current" if m <= n else "reference"
    exceed = 0
    done = 0
    while done < permutations:
        batch = min(_PERMUTATION_BATCH, permutations - done)
        order = np.argsort(rng.random((batch, n + m)), axis=1)
        drawn = order[:, n:] if side == "current" else order[:, :n]
        permuted = sums.mmd2(drawn, side)
        exceed += int(np.sum(permuted >= statistic - 1e-12 * abs(statistic)))
        done += batch
    p_value = (1 + exceed) / (1 + permutations)
    return MethodResult(
        statistic,
        p_value,
        {
            "bandwidth": bandwidth,
            "permutations": permutations,
            "reference_rows": n,
            "current_rows": m,
            "reference_dropped": reference_dropped,
            "current_dropped": current_dropped,
            "seed": seed,
        },
    )


def median_bandwidth(reference: np.ndarray) -> float:
    """The median heuristic: the median Euclidean distance between distinct reference rows.

    >>> median_bandwidth(np.array([[0.0], [1.0], [3.0]]))  # distances 1, 3, 2
    2.0
    """
    rows, _ = _rows(reference, "reference")
    return median_bandwidth_from_squared(_squared_distances(rows))


def median_bandwidth_from_squared(squared: np.ndarray) -> float:
    """Median of the off-diagonal distances of a square matrix of squared distances
    (ignoring exact duplicates; 1 when every row is the same)."""
    upper = squared[np.triu_indices(len(squared), k=1)]
    upper = upper[upper > 0]
    return float(np.sqrt(np.median(upper))) if upper.size else 1.0


class _Sums:
    """The kernel's totals, so that each relabelling's MMD² needs only the sums over the
    rows it draws for one side (``s`` rows: s² entries, not the whole matrix)."""

    def __init__(self, kernel, row_sums, diagonal, total, n, m) -> None:
        self.kernel, self.row_sums, self.diagonal = kernel, row_sums, diagonal
        self.total, self.diagonal_total, self.n, self.m = total, diagonal.sum(), n, m

    def mmd2(self, drawn: np.ndarray, side: str) -> np.ndarray:
        """Unbiased MMD² for each row of ``drawn`` (B × s indices of ``side``'s rows)."""
        rows_total = self.n + self.m
        if drawn.shape[1] * GATHER_SHARE > rows_total:  # sides alike: one product for all
            labels = np.zeros((rows_total, len(drawn)))
            labels[drawn, np.arange(len(drawn))[:, None]] = 1.0
            within = np.einsum("ib,ib->b", labels, self.kernel @ labels)
        else:  # a small side: gather its s × s blocks, 10 relabellings at a time
            within = np.zeros(len(drawn))
            ordered = np.sort(drawn, axis=1)  # nearby entries: the gather reads memory in order
            for start in range(0, len(drawn), 10):
                rows = ordered[start : start + 10]
                block = self.kernel[rows[:, :, None], rows[:, None, :]]
                within[start : start + 10] = block.sum(axis=(1, 2))
        drawn_total = self.row_sums[drawn].sum(axis=1)  # Σ over drawn rows × all rows
        drawn_diagonal = self.diagonal[drawn].sum(axis=1)
        other_within = self.total - 2.0 * drawn_total + within
        other_diagonal = self.diagonal_total - drawn_diagonal
        across = drawn_total - within
        if side == "current":
            current, reference = (within, drawn_diagonal), (other_within, other_diagonal)
        else:
            reference, current = (within, drawn_diagonal), (other_within, other_diagonal)
        n, m = self.n, self.m
        return (
            (reference[0] - reference[1]) / (n * (n - 1))
            + (current[0] - current[1]) / (m * (m - 1))
            - 2.0 * across / (n * m)
        )


#: The last reference's squared distances and bandwidth: a monitor tests every window
#: against the same reference sample, whose n² block is most of the work.
_REFERENCE_CACHE: dict[str, tuple[np.ndarray, float]] = {}


def _pooled_squared(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, float]:
    """Squared distances among the pooled rows (reference first) and the reference's
    median-heuristic bandwidth."""
    key = f"{reference.shape}:{_fingerprint(reference)}"
    cached = _REFERENCE_CACHE.get(key)
    if cached is None:
        block = _squared_distances(reference)
        cached = (block, median_bandwidth_from_squared(block))
        _REFERENCE_CACHE.clear()
        _REFERENCE_CACHE[key] = cached
    block, bandwidth = cached
    n = len(reference)
    pooled = np.empty((n + len(current),) * 2)
    pooled[:n, :n] = block
    across = _cross_squared(reference, current)
    pooled[:n, n:], pooled[n:, :n] = across, across.T
    pooled[n:, n:] = _squared_distances(current)
    return pooled, bandwidth


def _cross_squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (
        np.einsum("ij,ij->i", a, a)[:, None]
        + np.einsum("ij,ij->i", b, b)[None, :]
        - 2.0 * (a @ b.T)
    )
    return np.maximum(squared, 0.0, out=squared)


def _rows(values: np.ndarray, side: str) -> tuple[np.ndarray, int]:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise SchemaError(f"the {side} vectors must be a 2-D array (rows × dimensions)")
    present = ~np.isnan(array).any(axis=1)
    kept = array[present]
    if len(kept) < 2:
        raise DataError(
            f"the {side} sample has {len(kept)} complete vectors "
            f"({int((~present).sum())} dropped for missing values); MMD needs at least 2"
        )
    return kept, int((~present).sum())


def _subsample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    return rows[np.sort(rng.choice(len(rows), limit, replace=False))]


def _squared_distances(rows: np.ndarray) -> np.ndarray:
    norms = np.einsum("ij,ij->i", rows, rows)
    squared = norms[:, None] + norms[None, :] - 2.0 * (rows @ rows.T)
    np.maximum(squared, 0.0, out=squared)
    np.fill_diagonal(squared, 0.0)
    return squared


def _fingerprint(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest()[:16]
