"""Label shift: a window's labels against the holdout's, once they are decided.

A window's labels are *decided* when its labelled share reaches
``min_labelled_share`` and, with a ``label_maturity``, every row is past it (before
that, unlabelled rows are not yet the negatives they will become, and early
labels are often one class). Then its label distribution is compared with the
holdout's (``keel.estimation.HoldoutFit.labels``) at the monitor's false alarm
rate, with an effect floor so that a large window cannot alert on a trivial
change:

- **binary**: an exact binomial test of the window's positives against the
  holdout's positive rate (``scipy.stats.binomtest``); effect: the population
  stability index of the two class shares (floor 0.1, keel's categorical floor);
- **multiclass**: χ² of homogeneity of the window's and the holdout's class counts
  (no continuity correction); effect: PSI (floor 0.1);
- **regression**: Kolmogorov–Smirnov of the window's targets against the holdout's
  (a sample of 5,000); effect: the Wasserstein distance in the holdout's standard
  deviations (floor 0.1), keel's numeric drift rule.

The Result is ``check: labels``, ``metric: label_shift``, its value the effect,
its threshold the floor; ``details.summary`` says it in words ("positive rate 0.23
vs 0.51"), which the diagnosis repeats. A window whose labels are not decided yet
is ``warn`` at most (``provisional``).

Before labels, the window's prior is estimated from its scores alone
(``metric: estimated_positive_rate`` / ``estimated_prior``, from
``keel.checks.estimated.prior_result``): Saerens' EM, with BBSE and the mean
calibrated probability beside it. Under a pure prior shift the mean probability
under-reacts and EM recovers the prior; under a covariate shift it is the other way
round, so the estimate ``warn``s at most (see ``keel.estimation``).

>>> import numpy as np
>>> holdout = {"classes": [0, 1], "counts": [4900, 5100]}
>>> shifted = label_shift_result(np.r_[np.zeros(770), np.ones(230)], holdout, "binary", 0.01)
>>> shifted.status, shifted.details["summary"]
('alert', 'label shift: positive rate 0.23 vs 0.51')
>>> same = label_shift_result(np.r_[np.zeros(490), np.ones(510)], holdout, "binary", 0.01)
>>> same.status
'ok'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keel.result import Result
from keel.stats.verdict import DefaultRule

MIN_LABELS = 30
RULE = DefaultRule()


def label_shift_result(
    truth: Any,
    reference: dict[str, Any] | None,
    task: str,
    false_alarm_rate: float,
    provisional: bool = False,
) -> Result | None:
    """The label-shift Result of one window's labels (see the module docstring); None when
    the baseline keeps no holdout labels."""
    if not reference:
        return None
    truth = np.asarray(truth)
    if len(truth) < MIN_LABELS:
        return _unjudged("insufficient_data", f"{len(truth)} labels: fewer than {MIN_LABELS}")
    if task != "regression":
        known = np.zeros(len(truth), dtype=bool)
        for label in reference["classes"]:  # a loop over classes
            known |= _same(truth, label)
        if not known.all():
            strange = np.unique(truth[~known].astype(str))[:5].tolist()
            return _unjudged(
                "error",
                f"{int((~known).sum()):,} labels are not among the holdout's classes "
                f"{reference['classes']}: {strange}",
            )
    if task == "regression":
        effect, p_value, test, summary = _numeric(truth.astype(float), reference["sample"])
        floor = RULE.numeric_floor
    else:
        effect, p_value, test, summary = _classes(truth, reference, task)
        floor = RULE.categorical_floor
    shifted = p_value < false_alarm_rate and effect >= floor
    status = ("warn" if provisional else "alert") if shifted else "ok"
    return Result(
        "labels",
        None,
        "label_shift",
        float(effect),
        floor,
        status,
        details={
            "p_value": float(p_value),
            "test": test,
            "level": false_alarm_rate,
            "labels": int(len(truth)),
            "provisional": bool(provisional),
            "summary": f"label shift: {summary}",
        },
    )


def _unjudged(status: str, reason: str) -> Result:
    """A window whose labels could not be compared with the holdout's, and why."""
    return Result("labels", None, "label_shift", None, None, status, details={"reason": reason})


def _classes(truth: np.ndarray, reference: dict[str, Any], task: str):
    from scipy import stats

    classes = list(reference["classes"])
    expected = np.asarray(reference["counts"], dtype=float)
    observed = np.array([np.sum(_same(truth, c)) for c in classes], dtype=float)
    n = observed.sum()
    shares, holdout = observed / max(n, 1), expected / expected.sum()
    effect = _psi(shares, holdout)
    if task == "binary" and len(classes) == 2:
        p_value = stats.binomtest(int(observed[1]), int(n), float(holdout[1])).pvalue
        summary = f"positive rate {shares[1]:.2g} vs {holdout[1]:.2g}"
        return effect, p_value, "exact binomial", summary
    seen = (observed + expected) > 0
    table = np.vstack([observed[seen], expected[seen]])
    p_value = stats.chi2_contingency(table, correction=False).pvalue if seen.sum() > 1 else 1.0
    moved = int(np.argmax(np.abs(shares - holdout)))
    summary = f"class {classes[moved]} share {shares[moved]:.2g} vs {holdout[moved]:.2g}"
    return effect, p_value, "chi-square of homogeneity", summary


def _same(values: np.ndarray, label: Any) -> np.ndarray:
    """Which values are this label: numerically when both are numbers (1.0 is 1)."""
    if np.issubdtype(values.dtype, np.number) and isinstance(label, int | float):
        return values.astype(float) == float(label)
    return values.astype(str) == str(label)


def _numeric(truth: np.ndarray, sample: np.ndarray):
    from keel.stats.methods import compute
    from keel.stats.samples import NumericSample

    window, holdout = NumericSample.from_values(truth), NumericSample.from_values(sample)
    ks = compute("ks", holdout, window)
    distance = compute("wasserstein", holdout, window).statistic
    summary = f"mean {np.nanmean(truth):.4g} vs {np.nanmean(sample):.4g}"
    return distance, ks.p_value, "Kolmogorov-Smirnov", summary


def _psi(shares: np.ndarray, holdout: np.ndarray) -> float:
    """Population stability index, empty shares floored at 1e-4."""
    a, b = np.maximum(shares, 1e-4), np.maximum(holdout, 1e-4)
    return float(np.sum((a - b) * np.log(a / b)))
