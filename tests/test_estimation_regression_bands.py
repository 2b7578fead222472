"""Regression bands under a shift that hurts, inside the holdout's support: a known answer.

The study's regressor (y = 3x + noise of spread 0.2 + |x|, the model predicts 3x, so the
expected squared error is (0.2 + |x|)²): windows whose inputs spread outward by up to
40% stay mostly inside the holdout's support. Their 95% RMSE and MAE bands must cover the
realized value in at least 90% of the windows keel reports reliable (issue 14's goal),
and the recalibrated loss model must follow the loss into the tails where the raw
boosted model shrinks toward the mean."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from keel.estimation import HoldoutFit, _inputs, _level_error, fit_holdout
from keel.seeds import derive_seed

WINDOWS = 60


def _rows(n: int, rng: np.random.Generator, spread: float = 1.0) -> pd.DataFrame:
    x = rng.normal(size=n) * spread
    return pd.DataFrame({"x": x, "prediction": 3 * x, "y": 3 * x + rng.normal(0, 0.2 + np.abs(x))})


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(derive_seed("regression bands", "holdout"))
    holdout = _rows(20_000, rng)
    return fit_holdout(holdout, "regression", "y", prediction="prediction", features=["x"]), rng


def test_rmse_and_mae_bands_cover_a_shift_outward_in_90_percent_of_reliable_windows(fitted):
    fit, rng = fitted
    covered = {"mae": 0, "rmse": 0}
    reliable = 0
    for index in range(WINDOWS):  # seeded windows, the shift growing to 40%
        window = _rows(2_000, rng, 1 + 0.4 * (index + 1) / WINDOWS)
        error = window["prediction"] - window["y"]
        realized = {"mae": error.abs().mean(), "rmse": np.sqrt((error**2).mean())}
        table = pa.Table.from_pandas(window[["x", "prediction"]], preserve_index=False)
        if not fit.reliability(table, index)["reliable"]:
            continue
        reliable += 1
        found = fit.estimator.estimate(window[["x", "prediction"]], "prediction")
        for name in covered:
            covered[name] += found[name].lower <= realized[name] <= found[name].upper
    assert reliable >= 0.8 * WINDOWS
    assert covered["rmse"] >= 0.9 * reliable and covered["mae"] >= 0.9 * reliable


def test_the_recalibrated_squared_loss_follows_the_tails(fitted):
    fit, rng = fitted
    estimator = fit.estimator
    x = np.linspace(-2.8, 2.8, 57)
    frame = pd.DataFrame({"x": x, "prediction": 3 * x})
    raw = estimator.squared.predict(_inputs(frame, ["x"], "prediction", {}))
    found = estimator.estimate(pd.concat([frame] * 2), "prediction")  # ≥ 50 rows
    assert found["rmse"].value is not None
    from keel.estimation import _interpolated

    recalibrated = _interpolated(raw, *estimator.recalibration[1])
    truth = (0.2 + np.abs(x)) ** 2
    tails = np.abs(x) > 1.5
    raw_bias = np.mean(raw[tails] / truth[tails] - 1)
    new_bias = np.mean(recalibrated[tails] / truth[tails] - 1)
    assert abs(new_bias) < abs(raw_bias) and abs(new_bias) < 0.05


def test_the_level_error_is_each_bin_s_variance_of_its_mean():
    rng = np.random.default_rng(derive_seed("regression bands", "levels"))
    predicted = rng.uniform(size=10_000)
    target = rng.exponential(predicted + 0.1)
    edges, variance = _level_error(predicted, target)
    bins = np.searchsorted(edges, predicted)
    for b in (0, 7, len(edges)):  # a low, a middle and the top bin
        rows = target[bins == b]
        assert variance[b] == pytest.approx(np.var(rows, ddof=1) / len(rows), rel=1e-9)


def test_the_new_loss_arrays_survive_a_save(fitted):
    fit, rng = fitted
    again = HoldoutFit.from_bytes(fit.meta(), fit.to_bytes())
    window = _rows(1_000, rng, 1.2)[["x", "prediction"]]
    first = fit.estimator.estimate(window, "prediction")
    second = again.estimator.estimate(window, "prediction")
    assert first["rmse"] == second["rmse"] and first["mae"] == second["mae"]
