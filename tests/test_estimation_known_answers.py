"""Estimated performance on generated data whose answer is known: the decision rule, moved
thresholds, overrides, bands that cover, and reliability inside and outside the holdout."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from keel.checks.estimated import estimated_results, fit_estimator
from keel.checks.performance import PerformanceSpec
from keel.estimation import ConfidenceEstimator, fit_holdout
from keel.performance import holdout_metrics
from keel.seeds import derive_seed


def _population(n, rng, threshold=0.65, shift=0.0):
    """P(y=1 | x) = σ(1.5·x₁ − x₂ + 0.8·x₁x₂); the model leaves out the interaction (slightly
    misspecified, like real models) and decides at ``threshold``."""
    x1, x2 = rng.normal(shift, 1, n), rng.normal(0, 1, n)
    truth = 1 / (1 + np.exp(-(1.5 * x1 - x2 + 0.8 * x1 * x2)))
    score = 1 / (1 + np.exp(-(1.5 * x1 - x2)))
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "score": score,
            "prediction": (score >= threshold).astype(int),
            "y": (rng.random(n) < truth).astype(int),
        }
    )


def _fit(holdout, seed=1, **roles):
    return fit_holdout(
        holdout, "binary", "y", score="score", prediction="prediction", features=["x1", "x2"],
        seed=seed, **roles,
    )  # fmt: skip


SPEC = PerformanceSpec(task="binary", label="y", score="score", prediction="prediction")


@pytest.fixture(scope="module")
def holdout():
    rng = np.random.default_rng(derive_seed("known answers", "holdout"))
    rows = _population(3000, rng)
    return rows, _fit(rows), holdout_metrics(rows, "binary", "y", "score", "prediction")


def _estimated(window, fit, metrics, spec=SPEC, seed=0):
    table = pa.Table.from_pandas(window, preserve_index=False)
    found = estimated_results(table, fit, spec, metrics, 0.01, seed=seed)
    return {r.metric: r for r in found}


def test_a_threshold_far_from_half_is_learned_and_decides_windows_without_predictions():
    rng = np.random.default_rng(derive_seed("known answers", "threshold 0.3"))
    fit = _fit(_population(3000, rng, threshold=0.3))
    assert fit.rule["share"] == 1.0 and fit.rule["threshold"] == pytest.approx(0.3, abs=0.01)
    window = _population(4000, rng, threshold=0.3)
    realized = accuracy_score(window["y"], window["prediction"])
    found = _estimated(window.drop(columns="prediction"), fit, {})  # nothing logged
    accuracy = found["accuracy"]
    assert accuracy.details["lower"] <= realized <= accuracy.details["upper"]
    assert abs(accuracy.value - realized) < 0.02
    assert found["recall"].value == pytest.approx(
        recall_score(window["y"], window["prediction"]), abs=0.02
    )
    at_half = fit.estimator.estimate(window["score"].to_numpy(), decisions=window["score"] >= 0.5)
    assert at_half["recall"].value < found["recall"].value - 0.1  # the other classifier


def test_a_threshold_moved_in_production_from_065_to_055_is_followed(holdout):
    rows, fit, metrics = holdout
    assert fit.rule["threshold"] == pytest.approx(0.65, abs=0.01)
    rng = np.random.default_rng(derive_seed("known answers", "moved"))
    window = _population(5000, rng, threshold=0.55)
    truth, decided = window["y"], window["prediction"]
    realized = {
        "accuracy": accuracy_score(truth, decided),
        "precision": precision_score(truth, decided),
        "recall": recall_score(truth, decided),
    }
    logged = _estimated(window, fit, metrics)
    configured = _estimated(
        window.drop(columns="prediction"),
        fit,
        metrics,
        PerformanceSpec(task="binary", label="y", score="score", decision_threshold=0.55),
    )
    for found in (logged, configured):
        for name, value in realized.items():
            assert found[name].details["lower"] <= value <= found[name].details["upper"], name
            assert abs(found[name].value - value) < 0.03, name
    stale = _estimated(window.drop(columns="prediction"), fit, metrics)  # the old rule: 0.65
    assert stale["recall"].value < realized["recall"] - 0.05


def test_decisions_that_are_not_a_threshold_are_calibrated_within_each_decided_class():
    rng = np.random.default_rng(derive_seed("known answers", "overrides"))

    def reviewed(n):
        rows = _population(n, rng, threshold=0.5)
        # A reviewer sees what the score does not: half the true negatives scored 0.5–0.8
        # are declined after all.
        band = rows["score"].between(0.5, 0.8) & (rows["y"] == 0) & (rng.random(n) < 0.5)
        rows.loc[band, "prediction"] = 0
        return rows

    fit = _fit(reviewed(6000))
    assert fit.rule["share"] < 0.99 and fit.estimator.within_decisions
    window = reviewed(5000)
    realized = accuracy_score(window["y"], window["prediction"])
    within = fit.estimator.estimate(window["score"].to_numpy(), decisions=window["prediction"])
    scores = window["score"].to_numpy()
    one_curve = ConfidenceEstimator.fit(scores, window["y"]).estimate(
        scores, decisions=window["prediction"]
    )  # one calibration curve, fitted on the window's own labels: still blind to overrides
    assert abs(within["accuracy"].value - realized) < 0.015
    assert abs(one_curve["accuracy"].value - realized) > 0.03  # blind to the overrides
    # Without a logged prediction there is no rule to fall back on: said, not guessed.
    found = _estimated(window.drop(columns="prediction"), fit, {})
    assert found["accuracy"].status == "insufficient_data"
    assert "reproduces only" in found["accuracy"].details["reason"]


def test_quiet_windows_are_reliable_and_their_bands_cover_the_realized_value(holdout):
    _, fit, _ = holdout
    rng = np.random.default_rng(derive_seed("known answers", "quiet"))
    covered, reliable, windows = {"accuracy": 0, "roc_auc": 0, "f1": 0}, 0, 200
    for index in range(windows):
        window = _population(1000, rng)
        found = _estimated(window, fit, {}, seed=index)
        realized = {
            "accuracy": accuracy_score(window["y"], window["prediction"]),
            "roc_auc": roc_auc_score(window["y"], window["score"]),
            "f1": f1_score(window["y"], window["prediction"]),
        }
        for name in covered:
            d = found[name].details
            covered[name] += d["lower"] <= realized[name] <= d["upper"]
        reliable += found["accuracy"].details["reliable"]
    assert reliable >= 0.99 * windows, reliable
    # 95% bands at the monitor's level (wider): at least 90% of quiet windows covered
    assert min(covered.values()) >= 0.90 * windows, covered


def test_a_shift_within_the_holdout_support_stays_reliable_and_its_estimate_alerts(holdout):
    _, fit, metrics = holdout
    rng = np.random.default_rng(derive_seed("known answers", "within"))
    pool = _population(200_000, rng)
    # Reweighted towards the decision boundary, where the model is least sure: inside the
    # holdout's support by construction (weights ≤ 1), and easy to tell from it.
    weight = np.exp(-2.0 * np.abs(1.5 * pool["x1"] - pool["x2"])).to_numpy()
    chance = weight / weight.sum()
    reference, shifted = rng.choice(len(pool), 5000), rng.choice(len(pool), 5000, p=chance)
    domain_auc = roc_auc_score(
        np.r_[np.zeros(5000), np.ones(5000)], np.r_[weight[reference], weight[shifted]]
    )
    assert domain_auc >= 0.8
    reliable = alerts = covered = 0
    for index in range(50):
        window = pool.iloc[rng.choice(len(pool), 1000, p=chance)]
        found = _estimated(window, fit, metrics, seed=index)["accuracy"]
        realized = accuracy_score(window["y"], window["prediction"])
        reliable += found.details["reliable"]
        alerts += found.status == "alert"
        covered += found.details["lower"] <= realized <= found.details["upper"]
    assert reliable >= 45 and alerts >= 45 and covered >= 45, (reliable, alerts, covered)


def test_a_shift_outside_the_holdout_support_is_unreliable_and_never_alerts(holdout):
    _, fit, metrics = holdout
    rng = np.random.default_rng(derive_seed("known answers", "outside"))
    unreliable = 0
    for index in range(50):
        window = _population(1000, rng)
        window["x2"] += 5.0  # a region the holdout never had
        found = _estimated(window, fit, metrics, seed=index)
        unreliable += not found["accuracy"].details["reliable"]
        assert all(r.status != "alert" for r in found.values())
    assert unreliable >= 45, unreliable


def test_the_estimator_learns_from_the_whole_holdout_never_the_drift_sample(tmp_path):
    from keel.baseline import Baseline

    rng = np.random.default_rng(derive_seed("known answers", "baseline"))
    training, rows = _population(5000, rng), _population(3000, rng)
    baseline = Baseline.from_data(
        training, target="y", score="score", prediction="prediction", sample_size=100,
        holdout=rows,
    )  # fmt: skip
    assert baseline.holdout.fitted_rows == 3000 and baseline.metrics["holdout_rows"] == 3000
    baseline.save(tmp_path / "b.keel")
    loaded = Baseline.load(tmp_path / "b.keel")
    window = pa.Table.from_pandas(_population(1000, rng), preserve_index=False)
    first = estimated_results(window, fit_estimator(baseline, SPEC), SPEC, baseline.metrics, 0.01)
    again = estimated_results(window, fit_estimator(loaded, SPEC), SPEC, loaded.metrics, 0.01)
    assert [(r.value, r.details["lower"]) for r in first] == [
        (r.value, r.details["lower"]) for r in again
    ]
    without = Baseline.from_data(training, target="y", score="score", sample_size=5000)
    found = estimated_results(window, fit_estimator(without, SPEC), SPEC, {}, 0.01)
    assert {r.status for r in found} == {"insufficient_data"}
    assert "--holdout" in found[0].details["reason"]


def test_regression_bands_hold_the_loss_models_fit_error_on_quiet_windows():
    def rows(n, rng):
        x = rng.normal(0, 1, n)
        y = 3 * x + rng.normal(0, 0.2 + np.abs(x))
        return pd.DataFrame({"x": x, "prediction": 3 * x, "y": y})

    rng = np.random.default_rng(derive_seed("known answers", "regression"))
    fit = fit_holdout(rows(5000, rng), "regression", "y", prediction="prediction", features=["x"])
    covered = 0
    for _ in range(100):
        window = rows(1000, rng)
        got = fit.estimator.estimate(window, "prediction")["mae"]
        covered += got.lower <= np.abs(window["prediction"] - window["y"]).mean() <= got.upper
    assert covered >= 90, covered


def test_the_loss_models_kept_as_arrays_predict_as_scikit_learn_does_with_missing_values():
    from sklearn.ensemble import HistGradientBoostingRegressor

    from keel.estimation import Forest

    rng = np.random.default_rng(derive_seed("known answers", "forest"))
    x = rng.normal(size=(3000, 3))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = np.nan_to_num(x[:, 0]) ** 2 + np.isnan(x[:, 1]) + rng.normal(0, 0.1, 3000)
    model = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(x, y)
    fresh = rng.normal(size=(2000, 3))
    fresh[rng.random(fresh.shape) < 0.1] = np.nan
    assert np.allclose(Forest.from_sklearn(model).predict(fresh), model.predict(fresh))


def test_a_multiclass_baseline_is_made_from_the_command_line(run_keel, tmp_path):
    from keel.baseline import Baseline

    rng = np.random.default_rng(derive_seed("known answers", "multiclass"))

    def rows(n):
        scores = rng.dirichlet([2.0, 2.0, 2.0], n)
        labels = (rng.random(n)[:, None] > np.cumsum(scores, axis=1)).sum(axis=1)
        frame = pd.DataFrame({f"score_{c}": scores[:, i] for i, c in enumerate("abc")})
        frame["x"] = scores[:, 0] + rng.normal(0, 0.1, n)
        frame["label"] = np.array(list("abc"))[np.minimum(labels, 2)]
        frame["prediction"] = np.array(list("abc"))[scores.argmax(axis=1)]
        return frame

    rows(4000).to_parquet(tmp_path / "training.parquet")
    holdout = rows(3000)
    holdout.to_parquet(tmp_path / "holdout.parquet")
    made = run_keel(
        "baseline", "create", "training.parquet", "-o", "b.keel", "--target", "label",
        "--score", "score_a", "--score", "score_b", "--score", "score_c",
        "--prediction", "prediction", "--holdout", "holdout.parquet",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    baseline = Baseline.load(tmp_path / "b.keel")
    assert baseline.holdout.task == "multiclass" and baseline.holdout.classes == list("abc")
    assert baseline.holdout.rule == {"kind": "argmax", "share": 1.0}
    assert baseline.metrics["accuracy"] == pytest.approx(
        accuracy_score(holdout["label"], holdout["prediction"])
    )
    assert {c.name for c in baseline.schema.by_role("score")} == {"score_a", "score_b", "score_c"}
    spec = PerformanceSpec(task="multiclass", label="label", score="score", classes=list("abc"))
    window = pa.Table.from_pandas(rows(1000).drop(columns="label"), preserve_index=False)
    found = estimated_results(window, fit_estimator(baseline, spec), spec, baseline.metrics, 0.01)
    assert [r.metric for r in found if r.check == "labels"] == ["estimated_prior"]
    estimated = [r for r in found if r.check == "estimated_performance"]
    assert all(r.value is not None and r.details["reliable"] for r in estimated)
    assert all(r.status == "ok" for r in found)  # a quiet window, judged against the holdout


def test_a_small_holdout_makes_quiet_estimates_alert_at_most_at_the_monitors_rate():
    rng = np.random.default_rng(derive_seed("known answers", "small holdout"))
    rows = _population(1000, rng)  # a 1,000-row holdout: its metrics are uncertain too
    fit, metrics = _fit(rows), holdout_metrics(rows, "binary", "y", "score", "prediction")
    alerting = sum(
        any(
            r.status == "alert"
            for r in _estimated(_population(1000, rng), fit, metrics, seed=i).values()
        )
        for i in range(400)
    )
    assert alerting <= 4  # the monitor's rate, 1% of 400 windows (measured: 0)


def test_the_local_correction_follows_a_shift_that_moves_p_y_given_the_score(holdout):
    _, fit, metrics = holdout
    rng = np.random.default_rng(derive_seed("known answers", "local"))
    covered, corrected, score_only = 0, [], []
    for index in range(50):
        window = _population(2000, rng)
        window[["x1", "x2"]] *= 0.5  # toward the centre: the model's missing interaction fades
        logit = 1.5 * window["x1"] - window["x2"] + 0.8 * window["x1"] * window["x2"]
        window["score"] = 1 / (1 + np.exp(-(1.5 * window["x1"] - window["x2"])))
        window["prediction"] = (window["score"] >= 0.65).astype(int)
        window["y"] = (rng.random(2000) < 1 / (1 + np.exp(-logit))).astype(int)
        realized = accuracy_score(window["y"], window["prediction"])
        found = _estimated(window, fit, metrics, seed=index)["accuracy"]
        covered += found.details["lower"] <= realized <= found.details["upper"]
        corrected.append(abs(found.value - realized))
        plain = fit.estimator.estimate(window["score"].to_numpy(), decisions=window["prediction"])
        score_only.append(abs(plain["accuracy"].value - realized))
    assert covered >= 45, covered
    assert np.mean(corrected) < np.mean(score_only) / 1.5, (np.mean(corrected), np.mean(score_only))
