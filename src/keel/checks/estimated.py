"""Estimated performance as checks: every window, before its labels, with a reliability flag.

``fit_estimator`` learns from the baseline's labelled sample (the score or
prediction with the target, kept by ``Baseline.from_data``):
``keel.estimation.ConfidenceEstimator`` for binary classifiers,
``LossEstimator`` for regressors. ``estimated_results`` gives a window's
``check: estimated_performance`` Results, named like the realized ones, with
the band a realized value would fall in (``details.lower``/``upper``) and
the reliability. They are judged like realized metrics: an alert when the
whole band is on the worse side of the holdout value, at the level that
shares the monitor's false alarm rate across the metrics. An unreliable
estimate (the window outside what the reference covered) is reported with
status ``warn`` and its reason, and never alerts: a confident wrong number
is worse than none.

Estimation cannot see concept drift: see ``keel.estimation``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from keel.checks.performance import holdout_interval, judged, unjudged
from keel.result import Result

ESTIMATED = {
    "binary": ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc"),
    "multiclass": ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc"),
    "regression": ("mae", "rmse"),
}


def fit_estimator(baseline: Any, spec: Any) -> Any:
    """The estimator for this baseline and task, or None when its sample cannot teach one
    (no target, no score, one class); the reason is then the Results' ``reason``."""
    from keel.errors import DataError
    from keel.estimation import ConfidenceEstimator, LossEstimator, MulticlassEstimator
    from keel.seeds import derive_seed

    seed = derive_seed(baseline.id, "reference", "estimator", spec.task)
    sample = baseline.sample
    target = next((c.name for c in baseline.schema.by_role("target")), None)
    if sample is None or target is None or target not in sample.column_names:
        return None
    try:
        if spec.task == "binary" and spec.score in sample.column_names:
            scores = sample.column(spec.score).to_numpy(zero_copy_only=False).astype(float)
            labels = sample.column(target).to_numpy(zero_copy_only=False)
            keep = np.isfinite(scores) & ~_missing(labels)
            return ConfidenceEstimator.fit(scores[keep], labels[keep], seed=seed)
        columns = [f"{spec.score}_{c}" for c in spec.classes or []]
        if spec.task == "multiclass" and columns and set(columns) <= set(sample.column_names):
            scores = np.column_stack(
                [sample.column(c).to_numpy(zero_copy_only=False) for c in columns]
            ).astype(float)
            labels = sample.column(target).to_numpy(zero_copy_only=False)
            keep = np.isfinite(scores).all(axis=1) & ~_missing(labels)
            return MulticlassEstimator.fit(
                scores[keep], labels[keep], list(spec.classes), seed=seed
            )
        if spec.task == "regression" and spec.prediction in sample.column_names:
            features = [c.name for c in baseline.schema.features if c.name in sample.column_names]
            return LossEstimator.fit(sample, features, spec.prediction, target, seed=seed)
    except DataError:
        return None
    return None


def estimated_results(
    window: pa.Table,
    estimator: Any,
    spec: Any,
    holdout: dict[str, float],
    false_alarm_rate: float,
    value_matrix: dict[str, float] | None = None,
    seed: int = 0,
) -> list[Result]:
    """The estimated-performance Results of one window; ``seed`` drives the label draws."""
    names = list(ESTIMATED.get(spec.task, ()))
    if estimator is None or not names:
        return unjudged(
            "estimated_performance",
            names,
            holdout,
            "insufficient_data",
            reason="no labelled reference sample with the score (or prediction) and the target",
        )
    if value_matrix and spec.task == "binary":
        names.append("value_per_1000")
    confidence = 1 - 2 * false_alarm_rate / max(len(names), 1)
    if spec.task == "binary":
        scores = window.column(spec.score).to_numpy(zero_copy_only=False).astype(float)
        kept = np.isfinite(scores)
        decisions = None  # the model's own logged decisions, when the log has them
        if spec.prediction and spec.prediction in window.column_names:
            logged = window.column(spec.prediction)
            if logged.null_count == 0:
                decisions = logged.to_numpy(zero_copy_only=False)[kept]
        scores = scores[kept]
        estimates = estimator.estimate(
            scores, value_matrix, confidence, seed=seed, decisions=decisions
        )
        reliability = estimator.reliability(scores)
    elif spec.task == "multiclass":
        scores = np.column_stack(
            [
                window.column(f"{spec.score}_{c}").to_numpy(zero_copy_only=False)
                for c in spec.classes
            ]
        ).astype(float)
        scores = scores[np.isfinite(scores).all(axis=1)]
        estimates = estimator.estimate(scores, confidence, seed=seed)
        reliability = estimator.reliability(scores)
    else:
        frame = window.to_pandas()
        estimates = estimator.estimate(frame, spec.prediction, confidence)
        reliability = estimator.reliability(frame, spec.prediction)
    results = [
        judged(
            "estimated_performance",
            estimates[name],
            holdout.get(name),
            confidence,
            reference_interval=holdout_interval(holdout, name),
            **reliability,
        )
        for name in names
    ]
    if reliability["reliable"]:
        return results
    # Outside what the reference covered: reported, never alerting.
    return [replace(r, status="warn") if r.status in ("ok", "alert") else r for r in results]


def _missing(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)
