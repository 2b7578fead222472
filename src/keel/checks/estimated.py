"""Estimated performance as checks: every window, before its labels, with a reliability flag.

``fit_estimator`` returns what the baseline learned on its labelled holdout
(``keel.estimation.HoldoutFit``: ``keel baseline create --holdout`` or
``Baseline.from_data(..., holdout=...)``), never the 10,000-row drift sample or
training rows; without a holdout there is no estimate, and the Results say why.
``estimated_results`` gives a window's ``check: estimated_performance`` Results,
named like the realized ones, with the band a realized value would fall in
(``details.lower``/``upper``) and the reliability. They are judged like realized
metrics: against the holdout value with both errors, at the level that shares the
monitor's false alarm rate across the metrics.

The model's decisions: the window's logged prediction when it has one; else the
rule learned on the holdout (a threshold, or argmax, reproducing at least 99% of
the holdout's logged decisions) or ``decision_threshold`` from the monitor's
configuration; with neither, no estimate.

An unreliable estimate (more than ``unreliable_share`` of the window's rows
outside the holdout's support) is reported with status ``warn``, the share and
the reason, and neither fires nor clears an alert rule: a confident wrong number
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
NO_HOLDOUT = (
    "the baseline has no labelled holdout to fit the estimator on "
    "(keel baseline create --holdout FILE, or --reference-is-holdout)"
)


def fit_estimator(baseline: Any, spec: Any) -> Any:
    """The baseline's holdout fit (``keel.estimation.HoldoutFit``) when it was made for
    this task and score, else None (the Results then say why)."""
    fit = getattr(baseline, "holdout", None)
    if fit is None or fit.task != spec.task:
        return None
    if spec.task != "regression" and spec.score and fit.score and spec.score != fit.score:
        return None
    return fit


def estimated_results(
    window: pa.Table,
    estimator: Any,
    spec: Any,
    holdout: dict[str, float],
    false_alarm_rate: float,
    value_matrix: dict[str, float] | None = None,
    seed: int = 0,
) -> list[Result]:
    """The estimated-performance Results of one window; ``seed`` drives the label draws and
    the reliability check's folds. ``estimator`` is a ``HoldoutFit``."""
    names = list(ESTIMATED.get(spec.task, ()))
    if estimator is None or not names:
        return unjudged(
            "estimated_performance", names, holdout, "insufficient_data", reason=NO_HOLDOUT
        )
    if value_matrix and spec.task == "binary":
        names.append("value_per_1000")
    confidence = 1 - 2 * false_alarm_rate / max(len(names), 1)
    estimates = estimator.estimate(  # one shape for every task (keel.estimation.Estimator)
        window,
        confidence,
        seed=seed,
        decisions=_logged(window, spec.prediction) if spec.task != "regression" else None,
        value_matrix=value_matrix if spec.task == "binary" else None,
        decision_threshold=getattr(spec, "decision_threshold", None),
    )
    if estimates is None:
        return _undecided(names, holdout, estimator.rule)
    reliability = estimator.reliability(
        window,
        seed,
        getattr(spec, "unreliable_share", None),
        getattr(spec, "reliability", "nearest"),
    )
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
    # Outside what the holdout covered: reported, never alerting.
    return [replace(r, status="warn") if r.status in ("ok", "alert") else r for r in results]


def _logged(window: pa.Table, prediction: str | None) -> np.ndarray | None:
    """The window's logged decisions, when every row has one."""
    if not prediction or prediction not in window.column_names:
        return None
    column = window.column(prediction)
    return None if column.null_count else column.to_numpy(zero_copy_only=False)


def _undecided(names: list[str], holdout: dict[str, float], rule: dict | None) -> list[Result]:
    why = (
        "the holdout had no logged predictions to learn the decision rule from"
        if rule is None
        else f"the best {rule['kind']} rule reproduces only {rule['share']:.1%} of the "
        "holdout's decisions (99% needed)"
    )
    return unjudged(
        "estimated_performance",
        names,
        holdout,
        "insufficient_data",
        reason=f"the window has no logged prediction and {why}: log the prediction or set "
        "decision_threshold",
        decision_rule=rule,
    )
