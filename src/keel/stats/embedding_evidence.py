"""Evidence beside the embedding verdict: a classifier test, PCA + KS, a calibrated centroid shift.

The verdict on a column of vectors is the MMD permutation test
(``keel.stats.mmd``). These three say *how* the vectors moved and are
evidence only, never alerting on their own:

- ``classifier_test``: a logistic regression learns to tell current rows from
  reference rows on one half of each (one split); on the held-out halves its
  scores are compared by the one-sided Mann–Whitney U test (the null: the
  scores do not rank current rows higher). The statistic is the held-out AUC
  (= U / (n·m)); ``details["most_current_like"]`` lists the held-out current
  rows the classifier found most current-like, the examples the explain step
  shows. Lopez-Paz & Oquab (2017), "Revisiting classifier two-sample tests",
  ICLR.
- ``pca_ks_test``: principal components fitted on one half of the reference;
  on each, the two-sample KS p-value of the other half against the current
  rows, combined by Bonferroni (K × the smallest, at most 1). Rabanser,
  Günnemann & Lipton (2019), "Failing loudly: an empirical study of methods
  for detecting dataset shift", NeurIPS, fit the components on source data
  apart from the samples they test. Axes fitted on the rows they then test
  overfit them (the reference's spread along its own top axes exceeds a fresh
  sample's: every quiet window of 500 + 500 rows in 384 dimensions alarmed),
  and axes fitted on the pooled rows lean toward the chance difference of the
  two means (10–15% false alarms at a nominal 5%, 300 + 300 rows in 200
  dimensions), so keel holds the fitting half apart.
- ``centroid_test``: the Euclidean distance between the two samples' mean
  vectors, calibrated by permutation (p = (1 + #{permuted ≥ observed}) /
  (1 + B)) instead of a fixed threshold: a distance of 0.2 means nothing until
  it is set against how far the centroid moves by chance in this embedding
  space. ``details["null_95"]`` is the distance a quiet window exceeds 5% of
  the time.

All three take n × d and m × d arrays (rows with a missing value dropped and
counted; a mismatch in dimension refused), subsample each side to at most
2,000 rows, and seed themselves from the samples' content.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=(400, 10))
>>> moved = rng.normal(size=(400, 10)) + np.r_[0.4, np.zeros(9)]
>>> [round(test(reference, moved).p_value, 4) for test in (classifier_test, centroid_test)]
[0.0001, 0.002]
>>> bool(pca_ks_test(reference, moved).p_value < 0.01)
True
>>> quiet = rng.normal(size=(400, 10))
>>> [bool(test(reference, quiet).p_value > 0.05)
...  for test in (classifier_test, pca_ks_test, centroid_test)]
[True, True, True]
"""

from __future__ import annotations

import numpy as np

from keel.errors import ConfigError, DataError
from keel.seeds import derive_seed
from keel.stats.method import MethodResult
from keel.stats.mmd import MAX_ROWS, MIN_PERMUTATIONS, _fingerprint, _rows, _subsample

_PERMUTATION_BATCH = 250
_EXACT_KS_ROWS = 200  # beyond, SciPy's exact two-sample KS costs seconds; the asymptotic is close


def classifier_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    max_rows: int = MAX_ROWS,
    examples: int = 5,
    seed: int | None = None,
) -> MethodResult:
    """Held-out AUC of a reference-vs-current classifier and its one-sided Mann–Whitney p-value.

    One random half of each side trains a logistic regression (standardized
    inputs, balanced class weights, an L2 penalty of C = 0.01: with about as many
    dimensions as rows an unpenalized fit memorizes its half; measured on
    384-dimensional windows, the same power at a fifth of the time); the other
    halves are scored.
    ``details`` carries the held-out scores of each side (``reference_scores``,
    ``current_scores``), the row numbers (in ``current``) of the ``examples``
    most current-like held-out current rows, and the seed.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (ref, cur, ref_rows, cur_rows, dropped, seed) = _prepare(
        reference, current, max_rows, seed, "classifier", minimum=4
    )
    rng = np.random.default_rng(seed)
    ref_order, cur_order = rng.permutation(len(ref)), rng.permutation(len(cur))
    ref_train, ref_test = np.array_split(ref_order, 2)
    cur_train, cur_test = np.array_split(cur_order, 2)
    features = np.vstack([ref[ref_train], cur[cur_train]])
    labels = np.r_[np.zeros(ref_train.size), np.ones(cur_train.size)]
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=0.01, class_weight="balanced", max_iter=1_000)
    ).fit(features, labels)
    ref_scores = model.decision_function(ref[ref_test])
    cur_scores = model.decision_function(cur[cur_test])
    result = mannwhitneyu(cur_scores, ref_scores, alternative="greater")
    auc = float(result.statistic) / (cur_scores.size * ref_scores.size)
    top = cur_test[np.argsort(-cur_scores, kind="stable")[:examples]]
    return MethodResult(
        auc,
        float(result.pvalue),
        {
            "reference_scores": ref_scores.tolist(),
            "current_scores": cur_scores.tolist(),
            "most_current_like": cur_rows[top].tolist(),
            "reference_rows": int(ref_test.size),
            "current_rows": int(cur_test.size),
            **dropped,
            "seed": seed,
        },
    )


def pca_ks_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    components: int = 32,
    max_rows: int = MAX_ROWS,
    seed: int | None = None,
) -> MethodResult:
    """Bonferroni-combined two-sample KS over principal components fitted apart.

    A random half of the reference (at least 2 rows) fits the axes; the other
    half is tested against ``current``. The statistic is the largest KS
    statistic; ``details["p_values"]`` holds each component's own p-value
    (SciPy's exact one up to 200 rows a side, the asymptotic one beyond),
    ``details["component"]`` the one with the smallest. Uses
    min(``components``, d, fitting rows − 1) components.
    """
    from scipy.stats import ks_2samp

    (ref, cur, _, _, dropped, seed) = _prepare(
        reference, current, max_rows, seed, "pca_ks", minimum=4
    )
    fitting, tested = np.array_split(np.random.default_rng(seed).permutation(len(ref)), 2)
    basis = principal_axes(ref[fitting], components)
    centre = ref[fitting].mean(axis=0)
    ref = ref[tested]
    ref_scores, cur_scores = (ref - centre) @ basis.T, (cur - centre) @ basis.T
    method = "auto" if max(len(ref), len(cur)) <= _EXACT_KS_ROWS else "asymp"
    tests = ks_2samp(ref_scores, cur_scores, axis=0, method=method)
    p_values = np.atleast_1d(tests.pvalue)
    statistics = np.atleast_1d(tests.statistic)
    count = p_values.size
    smallest = int(np.argmin(p_values))
    return MethodResult(
        float(statistics.max()),
        float(min(1.0, count * p_values[smallest])),
        {
            "components": count,
            "p_values": p_values.tolist(),
            "component": smallest,
            "reference_rows": len(ref),
            "current_rows": len(cur),
            **dropped,
            "seed": seed,
        },
    )


def principal_axes(rows: np.ndarray, components: int) -> np.ndarray:
    """The top ``components`` principal axes of ``rows`` (k × d, unit rows), by SVD.

    >>> import numpy as np
    >>> rows = np.random.default_rng(1).normal(size=(500, 3)) * [3.0, 1.0, 0.1]
    >>> np.abs(principal_axes(rows, 1)).round(2).tolist()
    [[1.0, 0.0, 0.0]]
    """
    centred = rows - rows.mean(axis=0)
    count = max(1, min(int(components), rows.shape[1], len(rows) - 1))
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    return axes[:count]


def centroid_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = MIN_PERMUTATIONS,
    max_rows: int = MAX_ROWS,
    seed: int | None = None,
) -> MethodResult:
    """Distance between the two samples' centroids, with its permutation p-value.

    ``details["null_95"]`` is the 95th percentile of the permuted distances:
    the threshold this embedding space and these sample sizes call quiet.
    """
    if permutations < MIN_PERMUTATIONS:
        raise ConfigError(f"a centroid test uses at least {MIN_PERMUTATIONS} permutations")
    (ref, cur, _, _, dropped, seed) = _prepare(reference, current, max_rows, seed, "centroid")
    rng = np.random.default_rng(seed)
    n, m = len(ref), len(cur)
    pooled = np.vstack([ref, cur])
    total = pooled.sum(axis=0)
    observed = float(np.linalg.norm(ref.mean(axis=0) - cur.mean(axis=0)))
    null = []
    done = 0
    while done < permutations:
        batch = min(_PERMUTATION_BATCH, permutations - done)
        chosen = np.argsort(rng.random((batch, n + m)), axis=1)[:, :n]
        labels = np.zeros((batch, n + m))
        labels[np.arange(batch)[:, None], chosen] = 1.0
        first = labels @ pooled
        null.append(np.linalg.norm(first / n - (total - first) / m, axis=1))
        done += batch
    distances = np.concatenate(null)
    exceed = int(np.sum(distances >= observed - 1e-12 * observed))
    return MethodResult(
        observed,
        (1 + exceed) / (1 + permutations),
        {
            "null_95": float(np.quantile(distances, 0.95)),
            "permutations": permutations,
            "reference_rows": n,
            "current_rows": m,
            **dropped,
            "seed": seed,
        },
    )


def _prepare(
    reference: np.ndarray,
    current: np.ndarray,
    max_rows: int,
    seed: int | None,
    test: str,
    minimum: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int], int]:
    """Complete rows of each side (subsampled), their row numbers in the input, counts, seed."""
    from keel.errors import SchemaError

    ref_all, ref_dropped = _rows(reference, "reference")
    cur_all, cur_dropped = _rows(current, "current")
    if ref_all.shape[1] != cur_all.shape[1]:
        raise SchemaError(
            f"the current vectors have {cur_all.shape[1]} dimensions and the reference's "
            f"{ref_all.shape[1]}: they come from different embedding spaces"
        )
    for side, rows in (("reference", ref_all), ("current", cur_all)):
        if len(rows) < minimum:
            raise DataError(
                f"the {side} sample has {len(rows)} complete vectors; {test} needs {minimum}"
            )
    if seed is None:
        seed = derive_seed(_fingerprint(ref_all), _fingerprint(cur_all), test)
    rng = np.random.default_rng(seed)
    present = np.flatnonzero(
        ~np.isnan(np.asarray(current, dtype=float).reshape(len(current), -1)).any(axis=1)
    )
    ref_index = _subsample(np.arange(len(ref_all)), max_rows, rng)
    cur_index = _subsample(np.arange(len(cur_all)), max_rows, rng)
    dropped = {"reference_dropped": ref_dropped, "current_dropped": cur_dropped}
    return ref_all[ref_index], cur_all[cur_index], ref_index, present[cur_index], dropped, seed
