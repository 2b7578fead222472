"""The class prior estimated before labels (Saerens' EM, BBSE) on data with a known prior
shift: the class-conditional distributions stay, the prior moves 0.3 → 0.6 (binary) or
[0.5, 0.3, 0.2] → [0.2, 0.3, 0.5] (multiclass). Tolerances are stated up front: 0.03 on a
window's prior (about 1.5 of EM's standard errors at 2,000 rows), 0.015 on the mean error
over windows; the mean calibrated probability must stay at least 0.1 short of the new
prior (it under-reacts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import optimize, stats
from sklearn.linear_model import LogisticRegression

from keel.checks.estimated import estimated_results, prior_result
from keel.checks.performance import PerformanceSpec
from keel.estimation import HoldoutFit, bbse_prior, em_prior, fit_holdout
from keel.seeds import derive_seed

MEANS = np.array([[0.0, 0.0], [1.2, 0.8]])
CLASS_MEANS = np.array([[0.0, 0.0], [1.6, 0.0], [0.0, 1.6]])
CLASSES = ["a", "b", "c"]
SPEC = PerformanceSpec(task="binary", label="y", score="score", prediction="prediction")
MULTI = PerformanceSpec(
    task="multiclass", label="y", score="score", prediction="prediction", classes=CLASSES
)
WINDOWS = 30


def _draw(n: int, prior, rng, means=MEANS) -> tuple[np.ndarray, np.ndarray]:
    """Rows from fixed class-conditional normals, classes drawn at ``prior``."""
    prior = np.asarray(prior if np.ndim(prior) else [1 - prior, prior], dtype=float)
    y = rng.choice(len(prior), n, p=prior)
    return rng.normal(size=(n, means.shape[1])) + means[y], y


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(derive_seed("prior shift", "binary"))
    model = LogisticRegression().fit(*_draw(20_000, 0.3, rng))

    def frame(x, y):
        score = model.predict_proba(x)[:, 1]
        out = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "score": score})
        return out.assign(prediction=(score >= 0.5).astype(int), y=y)

    holdout = frame(*_draw(20_000, 0.3, rng))
    fit = fit_holdout(holdout, "binary", "y", "score", "prediction", features=["x1", "x2"])
    return fit, frame, rng


@pytest.fixture(scope="module")
def multiclass():
    rng = np.random.default_rng(derive_seed("prior shift", "multiclass"))
    prior = [0.5, 0.3, 0.2]
    model = LogisticRegression().fit(*_draw(20_000, prior, rng, CLASS_MEANS))

    def frame(x, y):
        scores = model.predict_proba(x)
        out = pd.DataFrame({f"score_{c}": scores[:, k] for k, c in enumerate(CLASSES)})
        out["prediction"] = np.array(CLASSES)[scores.argmax(axis=1)]
        return out.assign(x1=x[:, 0], x2=x[:, 1], y=np.array(CLASSES)[y])

    holdout = frame(*_draw(20_000, prior, rng, CLASS_MEANS))
    fit = fit_holdout(holdout, "multiclass", "y", "score", "prediction", CLASSES, ["x1", "x2"])
    return fit, frame, rng


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def test_em_and_bbse_recover_a_prior_shifted_from_0_3_to_0_6_and_the_mean_under_reacts(binary):
    fit, frame, rng = binary
    errors, bbse, means, covered = [], [], [], 0
    for _ in range(WINDOWS):  # seeded windows at the new prior
        x, y = _draw(2_000, 0.6, rng)
        found = prior_result(_table(frame(x, y)), fit, SPEC, 0.01)
        assert found.metric == "estimated_positive_rate" and found.threshold == pytest.approx(
            0.3, abs=0.01
        )
        assert abs(found.value - y.mean()) < 0.03 + 2 * np.sqrt(0.24 / 2_000)
        errors.append(found.value - y.mean())
        bbse.append(found.details["bbse"] - y.mean())
        means.append(found.details["mean_probability"])
        covered += found.details["lower"] <= y.mean() <= found.details["upper"]
        assert found.status == "warn"  # the band excludes 0.3 and the PSI is past 0.1
    assert abs(np.mean(errors)) < 0.015 and np.mean(np.abs(errors)) < 0.02
    assert abs(np.mean(bbse)) < 0.015 and np.mean(np.abs(bbse)) < 0.025
    assert np.max(means) < 0.6 - 0.1  # the mean calibrated probability under-reacts
    assert covered >= 0.9 * WINDOWS


def test_without_a_shift_the_estimate_stays_at_the_holdout_prior_and_says_ok(binary):
    fit, frame, rng = binary
    errors, warned = [], 0
    for _ in range(WINDOWS):
        x, y = _draw(2_000, 0.3, rng)
        found = prior_result(_table(frame(x, y)), fit, SPEC, 0.01)
        errors.append(found.value - y.mean())
        warned += found.status == "warn"
    assert abs(np.mean(errors)) < 0.015 and np.max(np.abs(errors)) < 0.05
    assert warned == 0


def test_em_s_fixed_point_is_the_closed_form_gaussian_mixture_likelihood_s_maximum():
    """Exact posteriors of two unit-variance normals at prior 0.3; the EM fixed point
    equals the mixture weight maximizing Σ log(q·φ(x−μ₁) + (1−q)·φ(x−μ₀)), found by
    scipy from the densities, not the posteriors."""
    rng = np.random.default_rng(derive_seed("prior shift", "closed form"))
    mu0, mu1, old = 0.0, 1.5, 0.3
    y = rng.random(3_000) < 0.6
    x = rng.normal(np.where(y, mu1, mu0), 1.0)
    f0, f1 = stats.norm.pdf(x, mu0), stats.norm.pdf(x, mu1)
    posterior = old * f1 / (old * f1 + (1 - old) * f0)
    found = em_prior(np.c_[1 - posterior, posterior], [1 - old, old])[1]
    best = optimize.minimize_scalar(
        lambda q: -np.sum(np.log(q * f1 + (1 - q) * f0)),
        bounds=(1e-6, 1 - 1e-6),
        method="bounded",
        options={"xatol": 1e-10},
    ).x
    assert found == pytest.approx(best, abs=1e-6)
    assert found == pytest.approx(0.6, abs=0.04)


def test_bbse_is_the_closed_form_on_the_population_confusion_matrix():
    """With C from the normal CDFs at the threshold, BBSE's binary answer is
    q = (μ̂ − FPR) / (TPR − FPR)."""
    mu0, mu1, old, cut = 0.0, 1.5, 0.3, 0.9
    tpr, fpr = stats.norm.sf(cut - mu1), stats.norm.sf(cut - mu0)
    confusion = [[(1 - old) * (1 - fpr), old * (1 - tpr)], [(1 - old) * fpr, old * tpr]]
    for positive_share in (0.2, 0.35, 0.5):
        found = bbse_prior(confusion, [1 - positive_share, positive_share])[1]
        assert found == pytest.approx((positive_share - fpr) / (tpr - fpr), abs=1e-12)


def test_multiclass_em_and_bbse_recover_a_shifted_prior(multiclass):
    fit, frame, rng = multiclass
    new = np.array([0.2, 0.3, 0.5])
    em, bbse, means = [], [], []
    for _ in range(WINDOWS // 2):
        x, y = _draw(2_000, new, rng, CLASS_MEANS)
        realized = np.bincount(y, minlength=3) / len(y)
        found = prior_result(_table(frame(x, y)), fit, MULTI, 0.01)
        assert found.metric == "estimated_prior" and found.status == "warn"
        em.append(np.asarray(found.details["prior"]) - realized)
        bbse.append(np.asarray(found.details["bbse"]) - realized)
        means.append(found.details["mean_probability"])
    assert np.max(np.abs(em)) < 0.05 and np.abs(np.mean(em, axis=0)).max() < 0.015
    assert np.max(np.abs(bbse)) < 0.06 and np.abs(np.mean(bbse, axis=0)).max() < 0.015
    assert np.mean(means, axis=0)[2] < 0.5 - 0.1  # under-reacts toward the holdout's 0.2
    x, y = _draw(2_000, [0.5, 0.3, 0.2], rng, CLASS_MEANS)
    quiet = prior_result(_table(frame(x, y)), fit, MULTI, 0.01)
    assert quiet.status == "ok" and np.allclose(quiet.details["prior"], [0.5, 0.3, 0.2], atol=0.04)


def test_the_prior_comes_with_a_window_s_estimated_results_and_survives_a_save(binary):
    fit, frame, rng = binary
    again = HoldoutFit.from_bytes(fit.meta(), fit.to_bytes())
    window = _table(frame(*_draw(2_000, 0.6, rng)))
    found = estimated_results(window, again, SPEC, {"accuracy": 0.8}, 0.01)
    prior = [r for r in found if r.check == "labels"]
    assert [r.metric for r in prior] == ["estimated_positive_rate"]
    assert prior[0].value == prior_result(window, fit, SPEC, 0.01).value
    regression = PerformanceSpec(task="regression", label="y", prediction="prediction")
    assert prior_result(window, fit, regression, 0.01) is None


def test_under_a_covariate_shift_the_mean_probability_is_right_and_em_is_not(binary):
    """EM assumes P(x | y) stays; when x moves and P(y | x) stays, the mean calibrated
    probability is the right estimate, which is why both are reported."""
    fit, frame, rng = binary
    x, y = _draw(20_000, 0.3, rng)
    keep = rng.random(len(y)) < 1 / (1 + np.exp(-2 * x[:, 1]))  # favour large x2
    x, _ = x[keep][:3_000], y[keep][:3_000]
    truth = 1 / (1 + np.exp(-(x @ np.array([1.2, 0.8]) - 1.04 + np.log(3 / 7))))
    y = (rng.random(len(x)) < truth).astype(int)  # P(y | x) kept: a covariate shift
    found = prior_result(_table(frame(x, y)), fit, SPEC, 0.01)
    # measured: EM 0.555, BBSE 0.509, mean probability 0.386, realized 0.384
    assert abs(found.details["mean_probability"] - y.mean()) < 0.02
    assert abs(found.value - y.mean()) > 2 * abs(found.details["mean_probability"] - y.mean())
