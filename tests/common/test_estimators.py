"""The estimator battery: every member of ``keel.estimation.ESTIMATORS`` (one per task) is
fitted on a labelled holdout by ``fit_holdout`` and answers through the same
``estimate_window`` shape: close to the realized value on a window like the holdout,
deterministic, the same after a save and load, reliable where the holdout had rows and
unreliable far from them. A new task's estimator is one class and one entry there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from keel.estimation import ESTIMATORS, HoldoutFit, fit_holdout
from keel.performance import classification_metrics, regression_metrics

CLASSES = ["a", "b", "c"]


def _rows(task: str, n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Two inputs, a label drawn from the model's own probabilities (so the model is
    calibrated on the holdout), the model's score(s) and its decision."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(shift, 1, n), rng.normal(0, 1, n)
    frame = pd.DataFrame({"x1": x1, "x2": x2})
    if task == "binary":
        p = 1 / (1 + np.exp(-(1.5 * x1 - x2)))
        frame["score"] = p
        frame["prediction"] = (p >= 0.5).astype(int)
        frame["y"] = (rng.uniform(size=n) < p).astype(int)
    elif task == "multiclass":
        logits = np.column_stack([x1, x2, -x1 - x2])
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        for k, c in enumerate(CLASSES):
            frame[f"score_{c}"] = p[:, k]
        frame["prediction"] = np.array(CLASSES)[p.argmax(axis=1)]
        frame["y"] = np.array(CLASSES)[(rng.uniform(size=(n, 1)) > p.cumsum(axis=1)).sum(axis=1)]
    else:
        frame["prediction"] = 2 * x1 - x2
        frame["y"] = frame["prediction"] + rng.normal(0, 0.5 + 0.5 * np.abs(x2), n)
    return frame


def _fit(task: str) -> HoldoutFit:
    scored = {"binary": {"score": "score"}, "multiclass": {"score": "score", "classes": CLASSES}}
    return fit_holdout(
        _rows(task, 6_000, seed=1),
        task,
        "y",
        prediction="prediction",
        features=["x1", "x2"],
        seed=5,
        **scored.get(task, {}),
    )


def _realized(task: str, window: pd.DataFrame) -> dict:
    if task == "regression":
        return regression_metrics(window["y"], window["prediction"])
    if task == "binary":
        return classification_metrics(window["y"], window["score"], window["prediction"])
    scores = window[[f"score_{c}" for c in CLASSES]].to_numpy()
    return classification_metrics(window["y"], scores, window["prediction"], classes=CLASSES)


def _estimate(fit: HoldoutFit, window: pd.DataFrame, seed: int = 3):
    table = pa.Table.from_pandas(window.drop(columns=["y"]), preserve_index=False)
    decisions = None if fit.task == "regression" else window["prediction"].to_numpy()
    return fit.estimate(table, 0.95, seed=seed, decisions=decisions)


@pytest.fixture(scope="module", params=sorted(ESTIMATORS))
def fitted(request):
    return request.param, _fit(request.param)


def test_each_task_is_estimated_by_its_registered_estimator(fitted):
    task, fit = fitted
    assert isinstance(fit.estimator, ESTIMATORS[task])
    assert fit.task == task and fit.fitted_rows == 6_000


def test_on_a_window_like_the_holdout_the_estimate_is_close_to_the_realized_value(fitted):
    task, fit = fitted
    window = _rows(task, 3_000, seed=2)
    estimates, realized = _estimate(fit, window), _realized(task, window)
    assert estimates, "no metric estimated"
    checked = []
    for name, estimate in estimates.items():
        if name not in realized or realized[name].value is None or estimate.lower is None:
            continue
        checked.append(name)
        width = estimate.upper - estimate.lower
        assert estimate.lower <= estimate.value <= estimate.upper, name
        # The band is a 95% interval; widened by half, it must hold the realized value.
        assert abs(realized[name].value - estimate.value) <= 0.75 * width, (name, estimate)
    assert len(checked) >= 2, (checked, estimates)


def test_the_estimate_is_deterministic_and_survives_a_save_and_load(fitted):
    task, fit = fitted
    window = _rows(task, 1_000, seed=4)
    first, again = _estimate(fit, window), _estimate(fit, window)
    loaded = HoldoutFit.from_bytes(fit.meta(), fit.to_bytes())
    reloaded = _estimate(loaded, window)
    for name in first:
        assert first[name] == again[name] == reloaded[name], name


def test_rows_where_the_holdout_had_rows_are_reliable_and_far_from_them_are_not(fitted):
    task, fit = fitted
    quiet = pa.Table.from_pandas(_rows(task, 1_000, seed=6), preserve_index=False)
    far = pa.Table.from_pandas(_rows(task, 1_000, seed=7, shift=12.0), preserve_index=False)
    assert fit.reliability(quiet, seed=1)["reliable"] is True
    unreliable = fit.reliability(far, seed=1)
    assert unreliable["reliable"] is False and unreliable["outside_share"] > 0.5
