"""The embedding evidence tests against SciPy and scikit-learn, and on data with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from keel.errors import SchemaError
from keel.stats.embedding_evidence import (
    centroid_test,
    classifier_test,
    pca_ks_test,
    principal_axes,
)


def _clusters(seed: int, rows: int, new_share: float = 0.0, dims: int = 12) -> np.ndarray:
    """Unit vectors around two topic centroids, ``new_share`` of them around a third."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(3, dims))
    topic = rng.integers(0, 2, rows)
    topic[rng.random(rows) < new_share] = 2
    vectors = centres[topic] + 0.8 * rng.normal(size=(rows, dims))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_classifier_auc_and_p_value_are_mann_whitneys():
    from sklearn.metrics import roc_auc_score

    result = classifier_test(_clusters(1, 300), _clusters(2, 300, new_share=0.3))
    ref, cur = result.details["reference_scores"], result.details["current_scores"]
    expected = stats.mannwhitneyu(cur, ref, alternative="greater")
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    labels = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    assert result.statistic == pytest.approx(roc_auc_score(labels, np.r_[ref, cur]))
    assert result.p_value < 1e-3 and result.statistic > 0.6
    assert len(ref) == len(cur) == 150  # one split: half of each side is held out


def test_the_most_current_like_rows_are_the_new_topic():
    reference = _clusters(3, 400)
    current = _clusters(4, 400)
    current[:80] = _clusters(5, 80, new_share=1.0)  # rows 0..79 come from the new topic
    shown = classifier_test(reference, current).details["most_current_like"]
    assert len(shown) == 5
    assert sum(row < 80 for row in shown) >= 4  # 1 expected by chance


def test_classifier_p_values_hold_their_level_under_the_null():
    p_values = [
        classifier_test(_clusters(10 + i, 120), _clusters(500 + i, 120)).p_value for i in range(80)
    ]
    assert np.mean(np.array(p_values) <= 0.1) <= 0.2  # 8 expected of 80; binomial 99.9% bound
    assert stats.kstest(p_values, "uniform").pvalue > 0.001


def test_pca_ks_is_scipys_ks_on_sklearns_components_with_bonferroni():
    from sklearn.decomposition import PCA

    reference, current = _clusters(6, 300), _clusters(7, 250, new_share=0.2)
    result = pca_ks_test(reference, current, components=5)
    fitting, tested = np.array_split(
        np.random.default_rng(result.details["seed"]).permutation(300), 2
    )
    pca = PCA(n_components=5).fit(reference[fitting])
    expected = [
        stats.ks_2samp(
            pca.transform(reference[tested])[:, k], pca.transform(current)[:, k], method="asymp"
        ).pvalue  # 250 current rows: beyond 200 a side keel takes the asymptotic p-value
        for k in range(5)
    ]
    assert result.details["p_values"] == pytest.approx(expected, rel=1e-9)
    assert result.p_value == pytest.approx(min(1.0, 5 * min(expected)), rel=1e-9)
    assert result.details["component"] == int(np.argmin(expected))


def test_principal_axes_are_sklearns_up_to_sign():
    from sklearn.decomposition import PCA

    rows = _clusters(8, 200)
    ours = principal_axes(rows, 4)
    theirs = PCA(n_components=4).fit(rows).components_
    assert np.abs(np.sum(ours * theirs, axis=1)) == pytest.approx(np.ones(4), abs=1e-9)


def test_centroid_permutation_p_value_matches_scipys_exact_enumeration():
    rng = np.random.default_rng(12)
    reference, current = rng.normal(size=(6, 2)), rng.normal(size=(5, 2)) + [1.2, 0.0]
    pooled = np.vstack([reference, current])

    def distance(rows_a, rows_b):
        return np.linalg.norm(rows_a.mean(axis=0) - rows_b.mean(axis=0))

    observed = distance(reference, current)
    exact = np.mean(
        [
            distance(pooled[list(chosen)], np.delete(pooled, list(chosen), axis=0))
            >= observed - 1e-12
            for chosen in itertools.combinations(range(11), 6)
        ]
    )
    result = centroid_test(reference, current, permutations=4_000)
    assert result.statistic == pytest.approx(observed)
    # random relabellings estimate the exact p-value; 4,000 of them to within ±0.02
    assert result.p_value == pytest.approx(exact, abs=0.02)
    assert 0.0 < exact < 0.5


def test_centroid_null_95_is_a_calibrated_threshold():
    quiet = [centroid_test(_clusters(20 + i, 200), _clusters(300 + i, 200)) for i in range(40)]
    above = [result.statistic > result.details["null_95"] for result in quiet]
    assert np.mean(above) <= 0.2  # 2 expected of 40
    drifted = centroid_test(_clusters(21, 200), _clusters(301, 200, new_share=0.3))
    assert drifted.statistic > drifted.details["null_95"] and drifted.p_value < 0.01


def test_missing_rows_are_dropped_and_counted_and_other_dimensions_refused():
    reference, current = _clusters(30, 100), _clusters(31, 100)
    current[[3, 7]] = np.nan
    for test in (classifier_test, pca_ks_test, centroid_test):
        result = test(reference, current)
        assert result.details["current_dropped"] == 2
        with pytest.raises(SchemaError, match="different embedding spaces"):
            test(reference, current[:, :5])
    shown = classifier_test(reference, current).details["most_current_like"]
    assert not {3, 7} & set(shown)


def test_the_same_samples_give_the_same_answers():
    reference, current = _clusters(40, 150), _clusters(41, 150, new_share=0.2)
    for test in (classifier_test, pca_ks_test, centroid_test):
        assert test(reference, current) == test(reference, current)


def test_pca_ks_holds_its_level_in_many_dimensions():
    # axes fitted on the tested reference rows overfit them: every such window alarmed
    rng = np.random.default_rng(50)
    p_values = [
        pca_ks_test(rng.normal(size=(160, 120)), rng.normal(size=(80, 120))).p_value
        for _ in range(40)
    ]
    assert np.mean(np.array(p_values) <= 0.05) <= 0.125  # 2 expected of 40
