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

    pooled = np.vstack([reference_rows, current_rows])
    squared = _squared_distances(pooled)
    bandwidth = median_bandwidth_from_squared(squared[:n, :n])
    kernel = np.exp(squared / (-2.0 * bandwidth**2), out=squared)

    row_sums = kernel.sum(axis=1)
    diagonal = kernel.diagonal().copy()
    total = row_sums.sum()
    observed = np.zeros((n + m, 1))
    observed[:n] = 1.0
    statistic = float(_mmd2(kernel, observed, row_sums, diagonal, total, n, m)[0])

    exceed = 0
    done = 0
    while done < permutations:
        batch = min(_PERMUTATION_BATCH, permutations - done)
        order = np.argsort(rng.random((batch, n + m)), axis=1)[:, :n]  # n rows drawn as "reference"
        labels = np.zeros((n + m, batch))
        labels[order, np.arange(batch)[:, None]] = 1.0
        permuted = _mmd2(kernel, labels, row_sums, diagonal, total, n, m)
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


def _mmd2(
    kernel: np.ndarray,
    labels: np.ndarray,
    row_sums: np.ndarray,
    diagonal: np.ndarray,
    total: float,
    n: int,
    m: int,
) -> np.ndarray:
    """Unbiased MMD² for each labelling (a column of 1 = reference, 0 = current) at once."""
    within = np.einsum("ib,ib->b", labels, kernel @ labels)  # Σ over reference pairs, diagonal in
    reference_total = labels.T @ row_sums  # Σ over reference rows × all rows
    reference_diagonal = labels.T @ diagonal
    current_within = total - 2.0 * reference_total + within
    current_diagonal = diagonal.sum() - reference_diagonal
    across = reference_total - within
    return (
        (within - reference_diagonal) / (n * (n - 1))
        + (current_within - current_diagonal) / (m * (m - 1))
        - 2.0 * across / (n * m)
    )


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
