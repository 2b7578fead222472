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

Before labels, ``estimated_results`` also estimates the window's class prior from
its scores alone (``check: labels``; ``metric: estimated_positive_rate`` for binary,
its value the rate and its threshold the holdout's; ``estimated_prior`` for
multiclass, its value the PSI against the holdout's prior and its threshold the 0.1
floor): Saerens' EM on the calibrated probabilities, with BBSE and the mean calibrated
probability in ``details``. It assumes a pure prior shift (P(x | y) the holdout's),
which a window cannot check, so it ``warn``s at most: when its band at the monitor's
level excludes the holdout's prior and the PSI reaches 0.1. The label-shift check
alerts once labels are decided (``keel.checks.labels``).

Estimation cannot see concept drift: see ``keel.estimation``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from keel.checks.labels import RULE, _psi
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
    prior = prior_result(window, estimator, spec, false_alarm_rate)
    prior = [prior] if prior is not None else []
    if estimates is None:
        return _undecided(names, holdout, estimator.rule) + prior
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
        return results + prior
    # Outside what the holdout covered: reported, never alerting.
    return [
        replace(r, status="warn") if r.status in ("ok", "alert") else r for r in results
    ] + prior


def prior_result(
    window: pa.Table, estimator: Any, spec: Any, false_alarm_rate: float
) -> Result | None:
    """The window's class prior estimated before labels (see the module docstring); None
    for regression or when the window lacks the scores or has too few rows.

    >>> import pandas as pd
    >>> from keel.checks.performance import PerformanceSpec
    >>> from keel.estimation import fit_holdout
    >>> rng = np.random.default_rng(0)
    >>> def rows(n, rate):  # x | y the same in both: only the prior moves
    ...     y = (rng.random(n) < rate).astype(int)
    ...     x = rng.normal(1.5 * y, 1.0)
    ...     score = 1 / (1 + np.exp(-(1.5 * x - 1.125 + np.log(3 / 7))))  # P(y | x) at 0.3
    ...     return pd.DataFrame({"x": x, "score": score, "y": y})
    >>> fit = fit_holdout(rows(10_000, 0.3), "binary", "y", score="score")
    >>> spec = PerformanceSpec(task="binary", label="y", score="score")
    >>> found = prior_result(pa.Table.from_pandas(rows(3000, 0.6)), fit, spec, 0.01)
    >>> found.metric, found.status, abs(found.value - 0.6) < 0.04
    ('estimated_positive_rate', 'warn', True)
    >>> found.details["mean_probability"] < 0.5  # the mean probability under-reacts
    True
    """
    if estimator is None or spec.task == "regression":
        return None
    found = estimator.estimated_prior(
        window, 1 - false_alarm_rate, _logged(window, spec.prediction)
    )
    if found is None:
        return None
    em, holdout = np.asarray(found["em"]), np.asarray(found["holdout"])
    lower, upper = np.asarray(found["lower"]), np.asarray(found["upper"])
    effect = _psi(em, holdout)
    outside = bool(np.any((holdout < lower) | (holdout > upper)))
    status = "warn" if outside and effect >= RULE.categorical_floor else "ok"
    details: dict[str, Any] = {
        "method": "EM (Saerens, Latinne and Decaestecker 2002) on calibrated probabilities",
        "psi": effect,
        "level": false_alarm_rate,
        "rows": found["rows"],
        "assumes": "a pure prior shift: P(x | y) stays the holdout's",
    }
    if spec.task == "binary":
        details |= {
            "lower": found["lower"][1],
            "upper": found["upper"][1],
            "bbse": found["bbse"][1] if "bbse" in found else None,
            "mean_probability": found["mean_probability"][1],
            "summary": f"estimated label shift (if only the prior moved): positive rate "
            f"{em[1]:.2g} vs {holdout[1]:.2g}; mean probability {found['mean_probability'][1]:.2g}",
        }
        metric, value, threshold = "estimated_positive_rate", float(em[1]), float(holdout[1])
    else:
        classes = [str(c) for c in found["classes"]]
        moved = int(np.argmax(np.abs(em - holdout)))
        details |= {
            "classes": classes,
            "prior": found["em"],
            "lower": found["lower"],
            "upper": found["upper"],
            "bbse": found.get("bbse"),
            "mean_probability": found["mean_probability"],
            "holdout": found["holdout"],
            "summary": "estimated label shift (if only the prior moved): class "
            f"{classes[moved]} share {em[moved]:.2g} vs {holdout[moved]:.2g}",
        }
        metric, value, threshold = "estimated_prior", effect, RULE.categorical_floor
    return Result("labels", None, metric, value, threshold, status, details=details)


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
