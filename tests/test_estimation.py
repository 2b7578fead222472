"""Estimated performance: by hand on calibrated scores, honest bands, and its blind spot."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from keel.errors import DataError
from keel.estimation import ConfidenceEstimator, LossEstimator


def _population(n, rng, shift=0.0, concept=False):
    """x ~ N(shift, 1); the true P(y=1|x) = sigmoid(2x), the model's score = that probability
    (a calibrated model). A concept drift flips the relationship for half the space."""
    x = rng.normal(shift, 1.0, n)
    truth = 1 / (1 + np.exp(-2 * x))
    if concept:
        truth = np.where(x > 0, 1 - truth, truth)
    y = (rng.random(n) < truth).astype(int)
    score = 1 / (1 + np.exp(-2 * x))
    return score, y


@pytest.fixture(scope="module")
def estimator():
    score, y = _population(20_000, np.random.default_rng(0))
    return ConfidenceEstimator.fit(score, y)


def test_the_expected_confusion_matrix_is_the_sum_of_probabilities_by_hand(estimator):
    assert estimator.calibration == "none"  # the scores are calibrated: left as they are
    scores = np.repeat([0.9, 0.7, 0.4, 0.1], [20, 20, 20, 20])
    got = estimator.estimate(scores)
    tp, fp = 20 * 0.9 + 20 * 0.7, 20 * 0.1 + 20 * 0.3  # decided 1 at score >= 0.5
    fn, tn = 20 * 0.4 + 20 * 0.1, 20 * 0.6 + 20 * 0.9
    assert got["accuracy"].value == pytest.approx((tp + tn) / 80)
    assert got["precision"].value == pytest.approx(tp / (tp + fp))
    assert got["recall"].value == pytest.approx(tp / (tp + fn))
    assert got["specificity"].value == pytest.approx(tn / (tn + fp))
    assert got["f1"].value == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # AUC: expected positive-above-negative pairs over expected pairs, ties half
    p = scores
    pairs = sum(
        p[i]
        * (1 - p[j])
        * (1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0)
        for i in range(80)
        for j in range(80)
        if i != j
    )
    total = p.sum() * (1 - p).sum() - (p * (1 - p)).sum()
    assert got["roc_auc"].value == pytest.approx(pairs / total)


def test_miscalibrated_scores_are_calibrated_first():
    rng = np.random.default_rng(1)
    score, y = _population(20_000, rng)
    squashed = score**3  # same ranking, far too low
    fitted = ConfidenceEstimator.fit(squashed, y)
    assert fitted.calibration in ("isotonic", "sigmoid")
    assert fitted.brier[fitted.calibration] < fitted.brier["none"]
    window_score, window_y = _population(5000, rng, shift=0.5)
    estimate = fitted.estimate(window_score**3)["accuracy"]
    realized = accuracy_score(window_y, window_score**3 >= 0.5)
    assert estimate.lower <= realized <= estimate.upper


def test_the_band_covers_the_realized_value_as_stated_under_covariate_shift(estimator):
    rng = np.random.default_rng(2)
    covered = {"accuracy": 0, "roc_auc": 0}
    for index in range(100):
        score, y = _population(2000, rng, shift=-1.0 + index / 50)  # shifts both ways
        got = estimator.estimate(score)
        realized = {"accuracy": accuracy_score(y, score >= 0.5), "roc_auc": roc_auc_score(y, score)}
        for name in covered:
            covered[name] += got[name].lower <= realized[name] <= got[name].upper
    assert 88 <= covered["accuracy"] <= 100 and 88 <= covered["roc_auc"] <= 100, covered


def test_estimation_is_blind_to_concept_drift_and_says_so_by_staying_flat(estimator):
    rng = np.random.default_rng(3)
    quiet_score, quiet_y = _population(5000, rng)
    drift_score, drift_y = _population(5000, rng, concept=True)
    quiet, drifted = estimator.estimate(quiet_score), estimator.estimate(drift_score)
    assert drifted["accuracy"].value == pytest.approx(quiet["accuracy"].value, abs=0.02)
    realized = accuracy_score(drift_y, drift_score >= 0.5)
    assert realized < drifted["accuracy"].lower - 0.1  # the estimate misses the fall entirely


def test_a_window_outside_the_holdout_is_flagged_unreliable():
    from keel.estimation import SupportReference

    rng = np.random.default_rng(4)
    holdout, _ = _population(5000, rng)
    support = SupportReference.fit({"score": holdout}, ["score"])
    near, _ = _population(2000, rng, shift=0.2)
    far, _ = _population(2000, rng, shift=4.0)  # scores piled at 1, beyond the holdout
    assert support.reliability({"score": near})["reliable"]
    flagged = support.reliability({"score": far})
    assert not flagged["reliable"] and "outside the holdout's support" in flagged["reason"]
    assert flagged["outside_share"] > 0.5


def test_bad_references_and_small_windows_say_what_is_wrong(estimator):
    with pytest.raises(DataError, match="1 label class"):
        ConfidenceEstimator.fit(np.full(100, 0.3), np.zeros(100))
    with pytest.raises(DataError, match="not probabilities .* sigmoid"):
        ConfidenceEstimator.fit(np.linspace(-2, 2, 100), np.arange(100) % 2)
    small = estimator.estimate(np.full(10, 0.7))["accuracy"]
    assert small.status == "insufficient_data" and "fewer than 50" in small.reason


def _regression(n, rng, shift=0.0):
    x = rng.normal(shift, 1.0, n)
    kind = rng.choice(["a", "b"], n)
    noise = 0.2 + np.abs(x)  # errors grow away from 0
    y = 3 * x + rng.normal(0, noise)
    return pd.DataFrame({"x": x, "kind": kind, "prediction": 3 * x, "y": y})


def test_the_loss_model_estimates_mae_and_rmse_under_covariate_shift():
    rng = np.random.default_rng(5)
    reference = _regression(20_000, rng, shift=0.0)
    estimator = LossEstimator.fit(reference, ["x", "kind"], "prediction", "y")
    for shift in (0.0, 0.8):  # the shifted window is where errors are larger
        window = _regression(3000, rng, shift=shift)
        got = estimator.estimate(window, "prediction")
        error = window["prediction"] - window["y"]
        assert got["mae"].lower <= np.abs(error).mean() <= got["mae"].upper, shift
        assert got["rmse"].lower <= np.sqrt((error**2).mean()) <= got["rmse"].upper, shift
    calm = estimator.estimate(_regression(3000, rng), "prediction")["mae"].value
    shifted = estimator.estimate(_regression(3000, rng, shift=0.8), "prediction")["mae"].value
    assert shifted > calm * 1.2


def test_the_loss_model_needs_labelled_reference_rows():
    frame = pd.DataFrame({"x": [1.0] * 10, "prediction": [1.0] * 10, "y": [1.0] * 10})
    with pytest.raises(DataError, match="10 labelled reference rows: at least 200"):
        LossEstimator.fit(frame, ["x"], "prediction", "y")


def _multiclass(n, rng, concentration=(1.0, 1.0, 1.0)):
    scores = rng.dirichlet(concentration, n)  # calibrated: the label is drawn from the scores
    labels = (rng.random(n)[:, None] > np.cumsum(scores, axis=1)).sum(axis=1)
    return scores, np.array(["a", "b", "c"])[np.minimum(labels, 2)]


def test_the_multiclass_expected_confusion_matrix_by_hand():
    from keel.estimation import MulticlassEstimator

    rng = np.random.default_rng(6)
    estimator = MulticlassEstimator.fit(*_multiclass(20_000, rng), ["a", "b", "c"])
    assert estimator.calibration == "none"
    rows = np.repeat([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5]], 30, axis=0)
    got = estimator.estimate(rows)
    matrix = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5]]).T * 30  # truth×decided
    assert got["accuracy"].value == pytest.approx(np.trace(matrix) / 90)
    precision = np.mean(np.diag(matrix) / matrix.sum(axis=0))
    recall = np.mean(np.diag(matrix) / matrix.sum(axis=1))
    assert got["precision"].value == pytest.approx(precision)
    assert got["recall"].value == pytest.approx(recall)
    negatives = 90 - matrix.sum(axis=1)
    true_negatives = 90 - matrix.sum(axis=1) - matrix.sum(axis=0) + np.diag(matrix)
    assert got["specificity"].value == pytest.approx(np.mean(true_negatives / negatives))


def test_multiclass_bands_cover_the_realized_values_under_shift():
    from sklearn.metrics import f1_score

    from keel.estimation import MulticlassEstimator

    rng = np.random.default_rng(7)
    estimator = MulticlassEstimator.fit(*_multiclass(20_000, rng), ["a", "b", "c"])
    covered = {"accuracy": 0, "f1": 0, "roc_auc": 0}
    for index in range(60):
        concentration = (1.0 + index / 20, 1.0, 1.0 + index / 40)  # drifting class balance
        scores, labels = _multiclass(2000, rng, concentration)
        decided = np.array(["a", "b", "c"])[scores.argmax(axis=1)]
        got = estimator.estimate(scores)
        realized = {
            "accuracy": accuracy_score(labels, decided),
            "f1": f1_score(labels, decided, average="macro"),
            "roc_auc": roc_auc_score(labels, scores, multi_class="ovr", labels=["a", "b", "c"]),
        }
        for name in covered:
            covered[name] += got[name].lower <= realized[name] <= got[name].upper
    assert min(covered.values()) >= 53, covered  # 95% bands, at least 88% of windows


def test_a_monitor_window_gets_estimated_results_for_regression_and_multiclass():
    import pyarrow as pa

    from keel.baseline import Baseline
    from keel.checks.estimated import estimated_results, fit_estimator
    from keel.checks.performance import PerformanceSpec

    rng = np.random.default_rng(8)
    reference = _regression(5000, rng)
    baseline = Baseline.from_data(
        reference, target="y", prediction="prediction", sample_size=500, reference_is_holdout=True
    )
    spec = PerformanceSpec(task="regression", label="y", prediction="prediction", score=None)
    estimator = fit_estimator(baseline, spec)
    shifted = pa.Table.from_pandas(_regression(3000, rng, shift=1.0))
    found = {r.metric: r for r in estimated_results(shifted, estimator, spec, {"mae": 0.5}, 0.01)}
    assert set(found) == {"mae", "rmse"} and found["mae"].status == "alert"  # errors grew

    scores, labels = _multiclass(5000, rng)
    frame = pd.DataFrame({f"score_{c}": scores[:, i] for i, c in enumerate("abc")})
    frame["label"] = labels
    frame["prediction"] = np.array(list("abc"))[scores.argmax(axis=1)]
    baseline = Baseline.from_data(
        frame,
        target="label",
        score="score",
        prediction="prediction",
        classes=list("abc"),
        sample_size=500,
        reference_is_holdout=True,
    )
    spec = PerformanceSpec(task="multiclass", label="label", score="score", classes=list("abc"))
    window = pa.Table.from_pandas(frame.head(1000))
    found = estimated_results(window, fit_estimator(baseline, spec), spec, {}, 0.01)
    assert [r.metric for r in found] == [
        "accuracy",
        "precision",
        "recall",
        "specificity",
        "f1",
        "roc_auc",
        "estimated_prior",  # the class prior before labels (check: labels)
    ]
    assert all(r.value is not None and r.status == "ok" for r in found)


def test_a_regression_window_beyond_the_holdout_inputs_is_unreliable():
    from keel.estimation import fit_holdout

    rng = np.random.default_rng(9)
    fit = fit_holdout(_regression(5000, rng), "regression", "y", prediction="prediction",
                      features=["x", "kind"])  # fmt: skip
    assert fit.support.reliability(_regression(2000, rng))["reliable"]
    far = fit.support.reliability(_regression(2000, rng, shift=4.0))
    assert not far["reliable"] and far["outside_share"] > 0.5


def _calibrated(rows, seed):
    rng = np.random.default_rng(seed)
    scores = rng.beta(2, 3, rows)
    return scores, (rng.random(rows) < scores).astype(int)


def _realized_accuracy(labels, decided):
    return float(np.mean(labels == decided.astype(int)))


def test_the_estimate_decides_as_the_model_decides_at_a_threshold_far_from_half():
    from keel.estimation import ConfidenceEstimator

    estimator = ConfidenceEstimator.fit(*_calibrated(20_000, seed=1))
    scores, labels = _calibrated(20_000, seed=2)
    decided = scores >= 0.3  # the model's own threshold
    realized = _realized_accuracy(labels, decided)
    followed = estimator.estimate(scores, decisions=decided)["accuracy"]
    assumed = estimator.estimate(scores)["accuracy"]  # as if it decided at 0.5
    assert followed.lower <= realized <= followed.upper
    assert abs(followed.value - realized) < 0.01
    assert abs(assumed.value - realized) > 0.05  # the other classifier


def test_the_estimate_follows_a_threshold_moved_in_production():
    from keel.estimation import ConfidenceEstimator

    estimator = ConfidenceEstimator.fit(*_calibrated(20_000, seed=3))
    for threshold, seed in ((0.65, 4), (0.55, 5)):
        scores, labels = _calibrated(20_000, seed=seed)
        decided = np.where(scores >= threshold, 1, 0)  # logged as predicted labels
        realized = _realized_accuracy(labels, decided == 1)
        estimate = estimator.estimate(scores, decisions=decided)
        for name in ("accuracy", "precision", "recall"):
            assert estimate[name].lower <= _realized(name, labels, decided) <= estimate[name].upper
        assert abs(estimate["accuracy"].value - realized) < 0.01


def _realized(name, labels, decided):
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    return {"accuracy": accuracy_score, "precision": precision_score, "recall": recall_score}[name](
        labels, decided
    )
