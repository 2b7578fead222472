"""Label shift: a window's decided labels against the holdout's, each test checked against
its definition, with an effect floor; provisional windows warn at most."""

import numpy as np
import pytest
from scipy import stats

from keel.checks.labels import label_shift_result
from keel.diagnosis import diagnose
from keel.seeds import derive_seed

HOLDOUT = {"classes": [0, 1], "counts": [4900, 5100]}


def _binary(positives, n):
    return np.r_[np.zeros(n - positives), np.ones(positives)]


def test_the_binary_test_is_the_exact_binomial_by_its_definition():
    found = label_shift_result(_binary(430, 1000), HOLDOUT, "binary", 0.01)
    # two-sided exact binomial: every count no more likely than the one seen
    pmf = stats.binom.pmf(np.arange(1001), 1000, 0.51)
    expected = pmf[pmf <= pmf[430] * (1 + 1e-7)].sum()
    assert found.details["p_value"] == pytest.approx(expected, rel=1e-6)
    shares, holdout = np.array([0.57, 0.43]), np.array([0.49, 0.51])
    assert found.value == pytest.approx(np.sum((shares - holdout) * np.log(shares / holdout)))
    assert found.details["test"] == "exact binomial"


def test_a_positive_rate_that_halves_alerts_and_the_diagnosis_names_it():
    found = label_shift_result(_binary(230, 1000), HOLDOUT, "binary", 0.01)
    assert found.status == "alert" and found.value > found.threshold == 0.1
    diagnosis = diagnose([found])
    assert diagnosis.verdict == "label shift"
    assert diagnosis.summary == "label shift: positive rate 0.23 vs 0.51"


def test_a_tiny_shift_on_many_labels_is_real_but_under_the_floor():
    found = label_shift_result(_binary(106_000, 200_000), HOLDOUT, "binary", 0.01)
    assert found.details["p_value"] < 1e-6 and found.value < 0.1 and found.status == "ok"


def test_multiclass_labels_take_chi_square_of_homogeneity_by_hand():
    holdout = {"classes": ["a", "b", "c"], "counts": [500, 300, 200]}
    window = np.repeat(["a", "b", "c"], [250, 300, 450])
    found = label_shift_result(window, holdout, "multiclass", 0.01)
    table = np.array([[250, 300, 450], [500, 300, 200]], dtype=float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = ((table - expected) ** 2 / expected).sum()
    assert found.details["p_value"] == pytest.approx(stats.chi2.sf(statistic, 2), rel=1e-9)
    assert found.status == "alert" and "class a share 0.25 vs 0.5" in found.details["summary"]


def test_regression_targets_use_the_drift_rule_ks_and_wasserstein():
    rng = np.random.default_rng(derive_seed("label shift", "regression"))
    holdout = {"sample": np.sort(rng.normal(0, 1, 5000)), "rows": 5000}
    same = label_shift_result(rng.normal(0, 1, 2000), holdout, "regression", 0.01)
    moved = label_shift_result(rng.normal(0.5, 1, 2000), holdout, "regression", 0.01)
    assert same.status == "ok" and moved.status == "alert"
    reference = stats.ks_2samp(holdout["sample"], rng.normal(0.5, 1, 2000)).pvalue
    assert moved.details["p_value"] < 1e-6 and reference < 1e-6
    assert moved.value == pytest.approx(0.5, abs=0.1)  # Wasserstein in standard deviations


def test_provisional_labels_warn_at_most_and_strange_labels_are_an_error():
    found = label_shift_result(_binary(230, 1000), HOLDOUT, "binary", 0.01, provisional=True)
    assert found.status == "warn" and found.details["provisional"]
    assert diagnose([found]).verdict == "healthy"  # a warning is not a finding
    strange = label_shift_result(np.r_[_binary(300, 1000), [7, 7]], HOLDOUT, "binary", 0.01)
    assert strange.status == "error" and "[7" in strange.details["reason"].replace("'", "")
    few = label_shift_result(_binary(5, 10), HOLDOUT, "binary", 0.01)
    assert few.status == "insufficient_data"


def test_quiet_windows_rarely_alert_at_the_monitors_rate():
    rng = np.random.default_rng(derive_seed("label shift", "quiet"))
    alerts = sum(
        label_shift_result((rng.random(2000) < 0.51).astype(int), HOLDOUT, "binary", 0.01).status
        == "alert"
        for _ in range(400)
    )
    assert alerts <= 4  # at most the rate (1%), here far below it thanks to the floor
