"""Realized metrics: equal to scikit-learn's, with intervals that cover the truth as stated."""

import numpy as np
import pytest
from sklearn import metrics as sk

from keel.errors import DataError
from keel.performance import classification_metrics, regression_metrics


def _binary(n=3000, seed=0, separation=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = 1 / (1 + np.exp(-(separation * (2 * y - 1) + rng.normal(0, 1.2, n))))
    return y, np.round(scores, 3)  # rounded: ties, as real scores have


def test_binary_metrics_equal_scikit_learns():
    y, s = _binary()
    got = classification_metrics(y, s)
    guess = (s >= 0.5).astype(int)
    expected = {
        "accuracy": sk.accuracy_score(y, guess),
        "precision": sk.precision_score(y, guess),
        "recall": sk.recall_score(y, guess),
        "f1": sk.f1_score(y, guess),
        "specificity": sk.recall_score(y, guess, pos_label=0),
        "roc_auc": sk.roc_auc_score(y, s),
        "pr_auc": sk.average_precision_score(y, s),
        "log_loss": sk.log_loss(y, s),
    }
    for name, value in expected.items():
        assert got[name].value == pytest.approx(value, abs=1e-10), name
        assert got[name].lower <= got[name].value <= got[name].upper, name
    tn, fp, fn, tp = sk.confusion_matrix(y, guess).ravel()
    assert f"[[{tn}, {fp}], [{fn}, {tp}]]" in got["confusion_matrix"].method


def test_the_calibration_error_follows_its_documented_binning():
    y, s = _binary(2000, seed=3)
    bins = np.minimum((s * 10).astype(int), 9)
    by_hand = sum(
        (bins == b).mean() * abs(y[bins == b].mean() - s[bins == b].mean())
        for b in range(10)
        if (bins == b).any()
    )
    assert classification_metrics(y, s)["ece"].value == pytest.approx(by_hand, abs=1e-12)


def test_delong_variance_equals_its_definition_over_every_pair():
    y, s = _binary(300, seed=5)
    positives, negatives = s[y == 1], s[y == 0]
    kernel = (positives[:, None] > negatives[None, :]) + 0.5 * (
        positives[:, None] == negatives[None, :]
    )
    v10, v01 = kernel.mean(axis=1), kernel.mean(axis=0)
    variance = v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01)
    auc = classification_metrics(y, s)["roc_auc"]
    half = 1.959963984540054 * np.sqrt(variance)
    assert (auc.lower, auc.upper) == pytest.approx((kernel.mean() - half, kernel.mean() + half))


@pytest.mark.parametrize("name", ["accuracy", "roc_auc", "f1", "pr_auc"])
def test_intervals_cover_the_population_value_about_as_often_as_stated(name):
    population_y, population_s = _binary(400_000, seed=99)
    truth = classification_metrics(population_y, population_s)[name].value
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(200):
        rows = rng.integers(0, len(population_y), 500)
        metric = classification_metrics(population_y[rows], population_s[rows])[name]
        covered += metric.lower <= truth <= metric.upper
    assert 0.90 <= covered / 200 <= 0.99, (name, covered)


def test_multiclass_metrics_equal_scikit_learns_with_macro_averaging():
    rng = np.random.default_rng(2)
    y = rng.choice(["a", "b", "c"], 2000)
    logits = rng.normal(size=(2000, 3)) + 1.5 * (y[:, None] == np.array(["a", "b", "c"]))
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = classification_metrics(y, scores, classes=["a", "b", "c"])
    guess = np.array(["a", "b", "c"])[scores.argmax(axis=1)]
    assert got["accuracy"].value == pytest.approx(sk.accuracy_score(y, guess))
    for name, fn in (
        ("precision", sk.precision_score),
        ("recall", sk.recall_score),
        ("f1", sk.f1_score),
    ):
        assert got[name].value == pytest.approx(fn(y, guess, average="macro")), name
        assert got[name].lower < got[name].value < got[name].upper
    assert got["roc_auc"].value == pytest.approx(
        sk.roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=["a", "b", "c"])
    )
    assert got["log_loss"].value == pytest.approx(sk.log_loss(y, scores, labels=["a", "b", "c"]))


def test_regression_metrics_equal_scikit_learns():
    rng = np.random.default_rng(4)
    y = rng.gamma(3.0, 10.0, 5000)
    p = y + rng.normal(1.0, 4.0, 5000)
    got = regression_metrics(y, p)
    assert got["mae"].value == pytest.approx(sk.mean_absolute_error(y, p))
    assert got["rmse"].value == pytest.approx(np.sqrt(sk.mean_squared_error(y, p)))
    assert got["mape"].value == pytest.approx(sk.mean_absolute_percentage_error(y, p))
    assert got["r2"].value == pytest.approx(sk.r2_score(y, p))
    assert got["mean_error"].value == pytest.approx(np.mean(p - y))
    assert got["mean_error"].lower < 1.0 < got["mean_error"].upper  # the planted bias
    for metric in got.values():
        assert metric.lower < metric.value < metric.upper, metric.name


def test_what_is_undefined_says_so_instead_of_nan():
    one_class = classification_metrics(np.zeros(50, int), np.linspace(0, 1, 50))
    assert one_class["roc_auc"].status == "insufficient_data"
    assert one_class["roc_auc"].value is None and "only one class" in one_class["roc_auc"].reason
    assert one_class["recall"].status == "insufficient_data"
    empty = classification_metrics(np.array([], int), np.array([]))
    assert {m.status for m in empty.values()} == {"insufficient_data"}
    flat = regression_metrics(np.ones(10), np.arange(10.0))
    assert flat["r2"].status == "insufficient_data" and flat["mae"].status == "ok"


def test_a_label_the_model_never_produced_is_a_clear_error():
    with pytest.raises(DataError, match=r"1 rows have a label the model never produced: \['z'\]"):
        classification_metrics(
            np.array(["a", "b", "c", "z"]), np.full((4, 3), 1 / 3), classes=["a", "b", "c"]
        )


def test_scores_that_are_not_probabilities_are_refused_with_a_suggestion():
    with pytest.raises(DataError, match=r"2 scores are not probabilities .* apply a sigmoid"):
        classification_metrics(np.array([0, 1, 1]), np.array([-0.5, 0.3, 2.0]))
    with pytest.raises(DataError, match="1 rows' per-class scores do not sum to 1"):
        classification_metrics(
            np.array(["a", "b"]),
            np.array([[0.5, 0.3, 0.2], [0.5, 0.5, 0.5]]),
            classes=["a", "b", "c"],
        )


def test_a_small_holdout_is_judged_with_its_own_error_so_quiet_windows_rarely_alert():
    import pandas as pd

    from keel.checks.performance import holdout_interval, judged
    from keel.performance import classification_metrics, holdout_metrics

    rng = np.random.default_rng(17)
    rate, confidence = 0.01, 0.98  # one metric at the monitor's rate: 1 − 2·rate

    def rows(n):
        scores = rng.beta(2, 3, n)
        return pd.DataFrame({"y": (rng.random(n) < scores).astype(int), "p": scores})

    with_error = without = 0
    for _ in range(20):  # 20 holdouts of 1,000 rows, 20 quiet windows each: 400 windows
        holdout = holdout_metrics(rows(1000), "binary", "y", score="p")
        for _ in range(20):
            window = rows(2000)
            metric = classification_metrics(
                window.y, window.p, confidence=confidence, only=["accuracy"]
            )["accuracy"]
            both = judged(
                "performance",
                metric,
                holdout["accuracy"],
                confidence,
                reference_interval=holdout_interval(holdout, "accuracy"),
            )
            alone = judged("performance", metric, holdout["accuracy"], confidence)
            with_error += both.status == "alert"
            without += alone.status == "alert"
    assert with_error / 400 <= rate + 0.01  # at most the monitor's rate (plus its noise)
    assert without > with_error  # a lucky small holdout made windows look worse
