"""Performance before labels arrive: expected metrics from the model's own confidence.

Everything here is fitted on the **labelled holdout** (rows the model did not learn
from: ``keel baseline create --holdout``), all of it up to 1,000,000 rows and a
class-stratified sample above, once per baseline; ``fit_holdout`` makes the
``HoldoutFit`` a baseline file keeps.

**Classifiers** (``ConfidenceEstimator``, binary). keel checks whether the scores
are calibrated: the raw scores are kept when they pass the Hosmer–Lemeshow test and
an isotonic fit does not beat their 5-fold cross-validated Brier score; otherwise
the isotonic fit is used (a parametric Platt fit is not offered: where
its shape is wrong it is biased in a region, and a window shifted there inherits a
bias no bootstrap shows). In a window, each
row's calibrated probability ``p`` is the chance its label is positive; with the
model's decisions fixed (the logged prediction; without it, the rule learned on
the holdout), the expected confusion matrix is

    TP = Σ p·[decided 1]   FP = Σ (1−p)·[decided 1]
    FN = Σ p·[decided 0]   TN = Σ (1−p)·[decided 0]

and accuracy, precision, recall, specificity, F1 and the value matrix follow from
it; ROC AUC from the expected pairs (a positive above a negative). When the
holdout's decisions are not a threshold of the score (overrides: no threshold
reproduces 99% of them), P(y | score) is calibrated within each decided class.

**Bands.** The calibration is refitted on 50 bootstrap resamples of the holdout;
each of 400 label draws takes its probabilities from one refit, so the band (the
central 95% of the drawn realized values) holds the calibration's own error as
well as the label draws' spread.

**Regressors** (``LossEstimator``). Two gradient-boosting models learn each
holdout row's absolute and squared error from its features and prediction; a
window's estimated MAE is the mean predicted absolute error, RMSE the root of
the mean predicted squared error. Each model is recalibrated on the holdout
(isotonic, target on prediction: boosting shrinks toward the mean), and beyond the
holdout's inputs the loss is carried on linearly from the models' slope toward the
edge. Bands hold each row's noise (normal with its predicted variance) and the loss
models' own error: the larger of 50 bootstrap refits' relative error (each model its
own) and the holdout's sampling error of the loss level in the window's bins of
predicted loss; plus the extrapolation's own size.

**Reliability** (``SupportReference``). A window row is *outside* the holdout's
support when its distance to its 10th nearest holdout row (inputs standardized on
the holdout) is above the holdout rows' own 99th percentile of that distance
(leave-one-out): the ``nearest`` method, the default. The alternative,
``domain_classifier`` (a ridge logistic regression on the standardized inputs and
their squares, 2-fold out-of-fold, holdout against window), calls a row outside
when its probability of "window" is above the 99th percentile of that probability
among holdout rows; it measures density ratio rather than support, so it also
flags strong shifts inside the support. A window is unreliable when more than 10%
of its rows are outside: there the estimate extrapolates.

**What estimation cannot see.** Concept drift (the same inputs, a new
relationship to the label): the estimate stays flat while the realized metric
falls. And under a pure prior (label) shift, P(y | x) is no longer the holdout's:
the mean calibrated probability moves only as far as the scores move, which
under-reacts. ``em_prior`` (Saerens, Latinne and Decaestecker, 2002) and
``bbse_prior`` (Lipton, Wang and Smola, 2018) estimate the new prior from the scores
alone, assuming P(x | y) stays (``prior_estimate``); under a covariate shift that
assumption fails and the mean probability is the right one. keel reports label shift
from the labels (``keel.checks.labels``) once they are decided.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> scores = rng.uniform(size=5000)
>>> labels = (rng.uniform(size=5000) < scores).astype(int)  # calibrated by construction
>>> estimator = ConfidenceEstimator.fit(scores, labels)
>>> estimator.calibration
'none'
>>> round(estimator.estimate(np.repeat([0.9, 0.8, 0.2], 20))["accuracy"].value, 3)
0.833
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import stats

from keel.errors import DataError
from keel.performance import Metric, _check_probabilities
from keel.threads import with_limited_threads

DRAWS = 400
MIN_ROWS = 50
OUTSIDE_SHARE = 0.10  # a window is unreliable above this share of rows outside
FIT_ROWS = 1_000_000  # holdout rows the estimator learns from; a stratified sample above
BOOTSTRAPS = 50
BOOTSTRAP_ROWS = 200_000  # each refit on at most this many rows, its spread scaled to n
GRID = 513  # knots of a stored calibration curve
RULE_SHARE = 0.99  # a learned decision rule must reproduce this share of the decisions


@dataclass(frozen=True)
class EstimateRequest:
    """What every estimator is asked for a window: the band's confidence, the seed of its
    label draws, the window's logged decisions (None: not logged), the value matrix
    (binary) and a configured decision threshold (used when no decision is logged)."""

    confidence: float
    seed: int = 0
    decisions: Any = None
    value_matrix: dict[str, float] | None = None
    decision_threshold: float | None = None


def rule_holds(rule: dict | None) -> bool:
    """A learned decision rule may stand for logged decisions: it reproduces ``RULE_SHARE``
    of the holdout's.

    >>> rule_holds({"kind": "threshold", "share": 0.995}), rule_holds(None)
    (True, False)
    """
    return rule is not None and rule.get("share", 0.0) >= RULE_SHARE


SUPPORT_ROWS = 2_000  # holdout rows the domain classifier compares windows with
OUTSIDE_QUANTILE = 0.99
NEIGHBOURS = 10
LOCAL_ROWS = 20_000  # holdout rows whose residuals correct the calibration locally
LOCAL_NEIGHBOURS = 100


# ---------------------------------------------------------------------------- decisions


def decided_positive(decisions: Any, positive: Any = 1) -> np.ndarray:
    """Which rows the model decided positive, from booleans or logged predicted labels.

    >>> decided_positive(np.array(["yes", "no", "yes"]), "yes").tolist()
    [True, False, True]
    >>> decided_positive(np.array([1.0, 0.0]), 1).tolist()
    [True, False]
    """
    values = np.asarray(decisions)
    if values.dtype == bool:
        return values
    if np.issubdtype(values.dtype, np.number) and isinstance(positive, int | float | np.number):
        return values.astype(float) == float(positive)
    return values.astype(str) == str(positive)


def learned_threshold(scores: Any, decided: Any) -> dict[str, float]:
    """The threshold ``t`` for which ``score >= t`` reproduces the most logged decisions,
    and the share it reproduces (vectorised over every candidate threshold).

    >>> s = np.array([0.1, 0.3, 0.6, 0.7, 0.9])
    >>> learned_threshold(s, s >= 0.65)
    {'threshold': 0.65, 'share': 1.0}
    """
    s = np.asarray(scores, dtype=float)
    d = np.asarray(decided, dtype=bool)
    order = np.argsort(s, kind="mergesort")
    s, d = s[order], d[order]
    n = len(s)
    # k rows below the threshold: agreement = negatives among them + positives above.
    below_negative = np.r_[0, np.cumsum(~d)]
    above_positive = d.sum() - np.r_[0, np.cumsum(d)]
    agreement = below_negative + above_positive
    cut = np.r_[True, s[1:] != s[:-1], True]  # a threshold falls between distinct scores
    agreement = np.where(cut, agreement, -1)
    k = int(np.argmax(agreement))
    if k == 0:
        threshold = float(s[0]) if n else 0.5
    elif k == n:
        threshold = float(np.nextafter(s[-1], np.inf))
    else:
        threshold = float((s[k - 1] + s[k]) / 2)
    return {"threshold": round(threshold, 12), "share": float(agreement[k] / max(n, 1))}


# ---------------------------------------------------------------------------- curves


def _knots(scores: np.ndarray, size: int = GRID) -> np.ndarray:
    """``size`` increasing knots over [0, 1]: the scores' quantiles, padded with 1."""
    inner = np.unique(np.quantile(scores, np.linspace(0, 1, size - 2))) if len(scores) else []
    knots = np.unique(np.r_[0.0, inner, 1.0])
    return np.r_[knots, np.ones(size - len(knots))]


def _fit_curve(
    name: str, scores: np.ndarray, y: np.ndarray, knots: np.ndarray, weights: Any = None
) -> np.ndarray:
    """A calibration (none, isotonic, sigmoid) fitted on the rows, evaluated at ``knots``."""
    if name == "none":
        return knots.copy()
    model = _calibrator(name).fit(_column(scores), y, weights)
    if name == "isotonic":
        return model.predict(knots)
    return model.predict_proba(_column(knots))[:, 1]


def _interpolated(scores: np.ndarray, knots: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Piecewise-linear curves (``(..., G)`` on knots ``(G,)``) at the scores: ``(..., n)``."""
    index = np.clip(np.searchsorted(knots, scores, side="right") - 1, 0, len(knots) - 2)
    left, right = knots[index], knots[index + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(right > left, (scores - left) / (right - left), 0.0)
    weight = np.clip(weight, 0.0, 1.0)
    return curves[..., index] * (1 - weight) + curves[..., index + 1] * weight


def _bootstrap_curves(
    name: str, scores: np.ndarray, y: np.ndarray, knots: np.ndarray, curve: np.ndarray, seed: int
) -> np.ndarray:
    """``BOOTSTRAPS`` refits of the calibration on resamples of the rows, at the knots:
    the main curve plus each refit's deviation from the refits' mean, scaled by √(m/n)
    when the refits saw a subsample of m rows. Raw scores kept as they are get isotonic
    refits too: that they passed a test of calibration does not make them exact, and an
    isotonic fit's spread is what the holdout can tell about them."""
    rng = np.random.default_rng(seed)
    n = len(scores)
    name = "isotonic" if name == "none" else name
    if n == 0 or len(np.unique(y)) < 2:
        return np.repeat(curve[None], BOOTSTRAPS, axis=0)
    rows = min(n, BOOTSTRAP_ROWS)
    fits = np.empty((BOOTSTRAPS, len(knots)))
    for b in range(BOOTSTRAPS):  # a loop over refits; each fit is vectorised over rows
        chosen = rng.integers(0, n, rows)
        weights = np.bincount(chosen, minlength=n).astype(float)
        used = weights > 0
        fits[b] = _fit_curve(name, scores[used], y[used], knots, weights[used])
    scale = np.sqrt(rows / n)
    return np.clip(curve[None] + (fits - fits.mean(axis=0)) * scale, 0.0, 1.0)


def hosmer_lemeshow(scores: Any, y: Any, groups: int = 10) -> float:
    """The p-value of the Hosmer–Lemeshow test that the scores are calibrated: observed
    against expected positives in ``groups`` equal-count bins of the score, χ² with
    ``groups`` degrees of freedom (the scores come from a model fitted elsewhere).

    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(size=5000)
    >>> hosmer_lemeshow(s, rng.uniform(size=5000) < s) > 0.05
    True
    >>> hosmer_lemeshow(s, rng.uniform(size=5000) < s**2) < 0.001
    True
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(y, dtype=float)
    order = np.argsort(s, kind="mergesort")
    bins = np.array_split(order, groups)
    observed = np.array([y[b].sum() for b in bins])
    expected = np.array([s[b].sum() for b in bins])
    sizes = np.array([len(b) for b in bins], dtype=float)
    variance = expected * (1 - expected / np.maximum(sizes, 1))
    usable = variance > 0
    statistic = float(np.sum((observed - expected)[usable] ** 2 / variance[usable]))
    return float(stats.chi2.sf(statistic, int(usable.sum())))


def _choose(scores: np.ndarray, y: np.ndarray, seed: int) -> tuple[str, dict[str, float]]:
    """The raw scores when they pass the Hosmer–Lemeshow test (p ≥ 0.05) and an isotonic
    fit does not beat their cross-validated Brier score (on at most 200,000 rows); else
    the isotonic fit. A Brier score alone keeps biased raw scores on a small holdout (the
    isotonic fit's noise costs more Brier than their bias), though the bias moves every
    estimate; the isotonic fit's noise is in the bands. A parametric fit (Platt's sigmoid) is not
    offered: where its shape is wrong it is biased in a region, and a window shifted into
    that region inherits the bias, which no bootstrap of the fit shows."""
    if len(scores) > BOOTSTRAP_ROWS:
        keep = np.random.default_rng(seed).choice(len(scores), BOOTSTRAP_ROWS, replace=False)
        scores, y = scores[keep], y[keep]
    if len(np.unique(y)) < 2 or min(int(y.sum()), int(len(y) - y.sum())) < 5:
        return "none", {"none": float(np.mean((scores - y) ** 2))}
    brier = _cross_validated_brier(scores, y, seed)
    brier["calibrated_p_value"] = hosmer_lemeshow(scores, y)
    raw = brier["calibrated_p_value"] >= 0.05 and brier["none"] <= brier["isotonic"]
    return ("none" if raw else "isotonic"), brier


# ---------------------------------------------------------------------------- binary


@dataclass
class ConfidenceEstimator:
    """Expected binary-classifier metrics from calibrated scores (see the module docstring).

    ``knots``, ``curves`` (one per decided class when calibrated within decisions, else
    one) and ``bootstrap`` (``BOOTSTRAPS`` × curves) are the fitted calibration."""

    calibration: str  # none or isotonic ("a / b" when within each decided class)
    knots: np.ndarray  # (D, G)
    curves: np.ndarray  # (D, G)
    bootstrap: np.ndarray  # (B, D, G)
    threshold: float
    score_range: tuple[float, float]
    brier: dict[str, float] = field(default_factory=dict)
    positive: Any = 1  # the positive label: the larger of the reference's two
    rule: dict[str, Any] | None = None  # the holdout's decisions as a threshold, and its share
    prior: float = float("nan")  # the holdout's positive rate
    #: The holdout's joint confusion matrix C[decided j, true t] of ``score >= threshold``
    #: (for BBSE); None in baselines made before it was kept.
    confusion: list | None = None
    #: The holdout's mean calibrated probability: EM's starting prior (see ``prior_estimate``).
    calibrated_prior: float | None = None

    @property
    def within_decisions(self) -> bool:
        """Calibrated within each decided class (the decisions are not a threshold)."""
        return self.curves.shape[0] == 2

    @classmethod
    @with_limited_threads
    def fit(
        cls,
        scores: Any,
        labels: Any,
        threshold: float = 0.5,
        seed: int = 0,
        decisions: Any = None,
    ) -> ConfidenceEstimator:
        """Calibrate on labelled holdout rows; with the holdout's logged ``decisions``,
        learn the decision rule (a threshold reproducing ≥ 99% of them) or, failing that,
        calibrate within each decided class."""
        scores = np.asarray(scores, dtype=float)
        labels = np.asarray(labels)
        if len(scores) != len(labels):
            raise DataError(f"{len(scores):,} scores but {len(labels):,} labels")
        _check_probabilities(scores)
        classes = np.unique(labels)
        if len(classes) != 2:
            raise DataError(
                f"the reference has {len(classes)} label class(es) {classes.tolist()[:5]}: "
                "estimating a binary classifier's performance needs labelled rows of both"
            )
        y = (labels == classes[-1]).astype(float)
        positive = classes[-1].item() if hasattr(classes[-1], "item") else classes[-1]
        rule = None
        groups = [np.ones(len(scores), dtype=bool)]
        if decisions is not None:
            decided = decided_positive(decisions, positive)
            if len(decided) != len(scores):
                raise DataError(f"{len(decided):,} decisions for {len(scores):,} scores")
            rule = {"kind": "threshold", **learned_threshold(scores, decided)}
            if rule["share"] >= RULE_SHARE:
                threshold = rule["threshold"]
            elif min(decided.sum(), (~decided).sum()) >= 10:
                groups = [~decided, decided]  # overrides: P(y | score) per decided class
        names, knots, curves, boots, brier = [], [], [], [], {}
        for number, group in enumerate(groups):
            s, t = scores[group], y[group]
            name, found = _choose(s, t, seed + number)
            brier = brier or found
            grid = _knots(s)
            curve = _fit_curve(name, s, t, grid)
            names.append(name)
            knots.append(grid)
            curves.append(curve)
            boots.append(_bootstrap_curves(name, s, t, grid, curve, seed + 101 + number))
        low, high = np.quantile(scores, [0.005, 0.995])
        confusion = _confusion((scores >= threshold).astype(int), y.astype(int), 2)
        fitted = cls(
            " / ".join(names),
            np.stack(knots),
            np.stack(curves),
            np.stack(boots, axis=1),
            float(threshold),
            (float(low), float(high)),
            brier,
            positive,
            rule,
            float(y.mean()),
            confusion,
        )
        decided = None if not fitted.within_decisions else groups[1]
        fitted.calibrated_prior = float(fitted.probabilities(scores, decided).mean())
        return fitted

    def estimate_window(
        self, window: Any, fit: HoldoutFit, request: EstimateRequest
    ) -> dict[str, Metric] | None:
        """The family's one estimate (``Estimator``): a window's rows (an Arrow table with
        the score) → estimated metrics with bands; None when the window logs no decision
        and neither ``decision_threshold`` nor a learned rule can stand for them."""
        confidence, seed, decisions = request.confidence, request.seed, request.decisions
        value_matrix, decision_threshold = request.value_matrix, request.decision_threshold
        scores = window.column(fit.score).to_numpy(zero_copy_only=False).astype(float)
        kept = np.isfinite(scores)
        scores = scores[kept]
        decisions = None if decisions is None else np.asarray(decisions)[kept]
        if decisions is None:
            if decision_threshold is None and not rule_holds(self.rule):
                return None
            decisions = self.decide(scores, decision_threshold)
        local = None
        if fit.local_inputs is not None and fit.support is not None:
            columns = fit.support.columns
            if all(c in window.column_names for c in columns):
                local = fit.local_correction(window.select(columns).to_pandas()[kept])
        return self.estimate(
            scores, value_matrix, confidence, seed=seed, decisions=decisions, local=local
        )

    def probabilities(self, scores: np.ndarray, decided: Any = None) -> np.ndarray:
        """Calibrated P(positive) of each row (within its decided class when so fitted)."""
        scores = np.asarray(scores, dtype=float)
        return np.clip(self._curves_at(scores, decided, self.curves), 0, 1)

    def _curves_at(self, scores: np.ndarray, decided: Any, curves: np.ndarray) -> np.ndarray:
        """``curves`` (``(..., D, G)``) at the scores, each row on its decided class's."""
        if not self.within_decisions:
            return _interpolated(scores, self.knots[0], curves[..., 0, :])
        decided = np.asarray(decided, dtype=bool)
        out = np.empty((*curves.shape[:-2], len(scores)))
        for group in (0, 1):  # two decided classes
            rows = decided == bool(group)
            out[..., rows] = _interpolated(scores[rows], self.knots[group], curves[..., group, :])
        return out

    def decide(self, scores: Any, threshold: float | None = None) -> np.ndarray:
        """Decisions for a window without logged predictions: ``score >= threshold`` (the
        given one, else the learned or fitted one)."""
        return np.asarray(scores, dtype=float) >= (
            self.threshold if threshold is None else threshold
        )

    def prior_shift(
        self, scores: Any, confidence: float = 0.95, decisions: Any = None
    ) -> dict[str, Any] | None:
        """The window's positive rate estimated from its scores alone (``prior_estimate``):
        EM on the calibrated probabilities, BBSE on ``score >= threshold``; None when
        calibrated within decided classes and the window logs no decision."""
        scores = np.asarray(scores, dtype=float)
        if len(scores) < MIN_ROWS:
            return None
        decided = None
        if self.within_decisions:
            if decisions is None:
                return None
            decided = decided_positive(decisions, self.positive)
        p = np.clip(self._curves_at(scores, decided, self.curves), 0, 1)
        refits = np.clip(self._curves_at(scores, decided, self.bootstrap), 0, 1)
        calibrated = self.prior if self.calibrated_prior is None else self.calibrated_prior
        return prior_estimate(
            np.stack([1 - p, p], axis=-1),
            np.stack([1 - refits, refits], axis=-1),
            [1 - self.prior, self.prior],
            self.confusion,
            (scores >= self.threshold).astype(int),
            confidence,
            [1 - calibrated, calibrated],
        )

    def estimate(
        self,
        scores: Any,
        value_matrix: dict[str, float] | None = None,
        confidence: float = 0.95,
        seed: int = 0,
        decisions: Any = None,
        local: tuple[np.ndarray, float] | None = None,
    ) -> dict[str, Metric]:
        """Expected metrics of a window, each with the band a realized value would fall in.

        ``local`` is (each row's local correction, its window-level standard error)
        from ``HoldoutFit.local_correction``: the holdout's mean calibration residual
        among the row's nearest holdout rows, added to its calibrated probability.

        ``decisions`` are the model's logged decisions for these rows (True: decided
        positive; or the logged predicted labels): the expected confusion matrix then pairs
        each row's calibrated probability with what the model actually decided — exact for
        any decision rule, and it follows a threshold production moves later. Without
        them, a row is decided positive when its score reaches ``threshold``.
        """
        scores = np.asarray(scores, dtype=float)
        _check_probabilities(scores)
        n = len(scores)
        names = ["accuracy", "precision", "recall", "specificity", "f1", "roc_auc"]
        if value_matrix:
            names.append("value_per_1000")
        if n < MIN_ROWS:
            return _too_few(names, n, "confidence-based")
        decided = (
            self.decide(scores) if decisions is None else decided_positive(decisions, self.positive)
        )
        if len(decided) != n:
            raise DataError(f"{len(decided):,} decisions for {n:,} scores")
        correction, spread = (0.0, 0.0) if local is None else local
        p = np.clip(self.probabilities(scores, decided) + correction, 0, 1)
        expected = _metrics_from(p[None, :], decided, scores, value_matrix)  # expectations
        rng = np.random.default_rng(seed)
        refits = self._curves_at(scores, decided, self.bootstrap) + correction  # B × n
        # Each draw's labels come from one refit of the calibration (and, with a local
        # correction, one draw of its error): fit error and noise.
        chosen = refits[np.arange(DRAWS) % len(refits)]
        if spread > 0:
            chosen = chosen + rng.normal(0.0, spread, (DRAWS, 1))
        draws = rng.random((DRAWS, n)) < np.clip(chosen, 0, 1)
        drawn = _metrics_from(draws.astype(float), decided, scores, value_matrix)
        method = f"confidence-based ({self.calibration} calibration"
        method += ", locally corrected)" if local is not None else ")"
        return _banded(names, expected, drawn, confidence, n, method)


def _banded(names, expected, drawn, confidence, n, method) -> dict[str, Metric]:
    tail = (1 - confidence) / 2 * 100
    out = {}
    for name in names:
        value = float(np.ravel(expected[name])[0])
        finite = drawn[name][np.isfinite(drawn[name])]
        low, high = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (None,) * 2
        out[name] = Metric(
            name,
            value if np.isfinite(value) else None,
            None if low is None else float(low),
            None if high is None else float(high),
            n,
            method,
        )
    return out


def _too_few(names: Any, rows: int, method: str) -> dict[str, Metric]:
    """Every metric ``insufficient_data``: too few rows for a stable estimate."""
    reason = f"{rows} rows: fewer than {MIN_ROWS} for a stable estimate"
    return {
        name: Metric(name, None, None, None, rows, method, "insufficient_data", reason)
        for name in names
    }


def _metrics_from(
    labels: np.ndarray, decided: np.ndarray, scores: np.ndarray, matrix: dict | None
) -> dict[str, np.ndarray]:
    """Metrics for each row of ``labels`` (probabilities or 0/1 draws), decisions fixed."""
    yes = decided.astype(float)
    tp = labels @ yes
    fn = labels.sum(axis=1) - tp
    fp = yes.sum() - tp
    tn = len(yes) - tp - fn - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "accuracy": (tp + tn) / len(yes),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "f1": 2 * tp / (2 * tp + fp + fn),
        }
        # AUC from midranks: the pairs where a positive's score is above a negative's.
        ranks = stats.rankdata(scores)
        positives = labels.sum(axis=1)
        negatives = len(yes) - positives
        out["roc_auc"] = (labels @ ranks - positives * (positives + 1) / 2) / (
            positives * negatives
        )
    if labels.shape[0] == 1 and np.any((labels > 0) & (labels < 1)):
        out["roc_auc"] = np.array([_expected_auc(labels[0], scores)])
    if matrix:
        worth = (
            matrix.get("tp", 0.0) * tp
            + matrix.get("fp", 0.0) * fp
            + matrix.get("fn", 0.0) * fn
            + matrix.get("tn", 0.0) * tn
        )
        out["value_per_1000"] = worth / len(yes) * 1000
    return out


def _expected_auc(p: np.ndarray, scores: np.ndarray) -> float:
    """E[positive-above-negative pairs] / E[pairs], ties half, a row never paired with itself."""
    order = np.argsort(scores, kind="mergesort")
    p, s = p[order], scores[order]
    negatives = 1 - p
    below = np.cumsum(negatives) - negatives
    first = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    group = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(s)]))
    start = np.take(below, first)[group]  # negatives strictly below the tie group
    tied = np.add.reduceat(negatives, first)[group] - negatives  # others in the tie group
    pairs = p.sum() * negatives.sum() - (p * negatives).sum()
    return float((p * (start + tied / 2)).sum() / pairs) if pairs > 0 else float("nan")


def _cross_validated_brier(scores: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    """5-fold cross-validated Brier scores of the raw scores and of an isotonic fit."""
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    errors: dict[str, list[float]] = {"none": [], "isotonic": []}
    for train, test in folds.split(scores, y):
        errors["none"].append(np.mean((scores[test] - y[test]) ** 2))
        fitted = _calibrator("isotonic").fit(_column(scores[train]), y[train])
        errors["isotonic"].append(np.mean((fitted.predict(scores[test]) - y[test]) ** 2))
    return {name: float(np.mean(values)) for name, values in errors.items()}


def _calibrator(name: str) -> Any:
    if name == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        return _Isotonic(IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0))
    from sklearn.linear_model import LogisticRegression

    return _Sigmoid(LogisticRegression(C=1e6))


class _Isotonic:
    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, x: np.ndarray, y: np.ndarray, weights: Any = None) -> _Isotonic:
        self.model.fit(x[:, 0], y, sample_weight=weights)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(np.ravel(x))


class _Sigmoid:
    """Platt scaling on the score's log-odds."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, x: np.ndarray, y: np.ndarray, weights: Any = None) -> _Sigmoid:
        self.model.fit(_logit(x), y, sample_weight=weights)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(_logit(x))


def _logit(x: np.ndarray) -> np.ndarray:
    clipped = np.clip(x, 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped))


def _column(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(-1, 1)


# ---------------------------------------------------------------------------- prior shift

PRIOR_ITERATIONS = 2_000
PRIOR_TOLERANCE = 1e-9


def em_prior(probabilities: Any, prior: Any) -> np.ndarray:
    """The new class prior of rows whose calibrated probabilities were learned at ``prior``:
    Saerens, Latinne and Decaestecker's EM (2002, "Adjusting the outputs of a classifier to
    new a priori probabilities"). Each step re-weights every row's posterior by the new
    prior over the old, renormalizes, and takes the mean as the next prior; the fixed
    point is the maximum-likelihood mixture weight when P(x | y) stays the holdout's.

    ``probabilities``: ``(..., n, K)``, vectorised over leading axes (bootstrap refits).

    >>> p = np.array([[0.8, 0.2], [0.3, 0.7], [0.2, 0.8]])  # mean P(1): 0.567
    >>> em_prior(p, [0.5, 0.5]).round(3).tolist()
    [0.28, 0.72]
    """
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    old = np.maximum(np.asarray(prior, dtype=float), 1e-12)
    ratio = p / old
    if p.shape[-1] == 2:
        return _binary_mle_prior(ratio)
    q = np.broadcast_to(old / old.sum(), (*p.shape[:-2], p.shape[-1])).copy()
    for _ in range(PRIOR_ITERATIONS):  # EM steps; each is vectorised over rows and refits
        weighted = ratio * q[..., None, :]
        total = weighted.sum(axis=-1, keepdims=True)
        posterior = np.where(total > 0, weighted / np.where(total > 0, total, 1), q[..., None, :])
        new = posterior.mean(axis=-2)
        if np.max(np.abs(new - q)) < PRIOR_TOLERANCE:
            return new
        q = new
    return q


def _binary_mle_prior(ratio: np.ndarray) -> np.ndarray:
    """EM's fixed point for two classes, found directly: the log-likelihood
    Σᵢ log(q·r₁ᵢ + (1 − q)·r₀ᵢ) is concave in q, so bisection on the sign of its derivative
    reaches it to 2⁻⁵² in 52 vectorised steps, where EM itself crawls (linearly, slower the
    more the classes overlap: thousands of steps for a weak model)."""
    r0, r1 = ratio[..., 0], ratio[..., 1]
    difference = r1 - r0
    low = np.zeros(ratio.shape[:-2])
    high = np.ones(ratio.shape[:-2])
    for _ in range(52):
        middle = (low + high) / 2
        mixed = middle[..., None] * r1 + (1 - middle[..., None]) * r0
        rising = (difference / np.maximum(mixed, 1e-300)).sum(axis=-1) > 0
        low, high = np.where(rising, middle, low), np.where(rising, high, middle)
    positive = (low + high) / 2
    return np.stack([1 - positive, positive], axis=-1)


def em_prior_covariance(probabilities: Any, prior: Any, new: Any) -> np.ndarray:
    """The EM prior's sampling covariance (``K × K``) from the empirical Fisher information
    of the mixture likelihood: the score of row i for the free weights q₁…q_{K−1} is
    P'ᵢₖ/qₖ − P'ᵢ_K/q_K (P' the posterior re-weighted to the new prior)."""
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    old = np.maximum(np.asarray(prior, dtype=float), 1e-12)
    q = np.maximum(np.asarray(new, dtype=float), 1e-6)
    weighted = p / old * q
    posterior = weighted / np.maximum(weighted.sum(axis=1, keepdims=True), 1e-300)
    scores = posterior[:, :-1] / q[:-1] - posterior[:, -1:] / q[-1]
    free = np.linalg.pinv(scores.T @ scores)
    jacobian = np.vstack([np.eye(len(q) - 1), -np.ones(len(q) - 1)])
    return jacobian @ free @ jacobian.T


def bbse_prior(confusion: Any, decided_shares: Any, rows: int | None = None):
    """Black-box shift estimation (Lipton, Wang and Smola, 2018): with the holdout's joint
    confusion matrix C[decided j, true t] and a window's shares μ of rows decided j, the
    weights w = C⁻¹μ are q(t)/p(t) and the new prior is q = w ⊙ p (negative weights
    clipped, renormalized). With ``rows``, also q's covariance from μ's multinomial
    spread, D_p C⁻¹ Σ_μ C⁻ᵀ D_p (the holdout's own error in C left out).

    >>> c = np.array([[0.6, 0.1], [0.1, 0.2]])  # holdout prior 0.7 / 0.3
    >>> bbse_prior(c, [0.5, 0.5]).round(3).tolist()
    [0.4, 0.6]
    """
    c = np.asarray(confusion, dtype=float)
    mu = np.asarray(decided_shares, dtype=float)
    prior = c.sum(axis=0)
    inverse = np.linalg.pinv(c)
    weights = np.maximum(inverse @ mu, 0.0)
    q = weights * prior
    q = q / q.sum() if q.sum() > 0 else prior
    if rows is None:
        return q
    spread = (np.diag(mu) - np.outer(mu, mu)) / max(rows, 1)
    scale = np.diag(prior) @ inverse
    return q, scale @ spread @ scale.T


def _confusion(decided: np.ndarray, truth: np.ndarray, k: int) -> list[list[float]]:
    """The joint confusion matrix C[decided j, true t] (shares of all rows)."""
    counts = np.bincount(decided * k + truth, minlength=k * k).reshape(k, k)
    return (counts / max(len(truth), 1)).tolist()


def prior_estimate(
    probabilities: np.ndarray,
    refits: np.ndarray,
    prior: Any,
    confusion: Any,
    decided: np.ndarray,
    confidence: float,
    calibrated: Any = None,
) -> dict[str, Any]:
    """A window's estimated class prior before labels: EM (the value) with its band, from
    the Fisher information and the EM prior's spread over the calibration's bootstrap
    refits; BBSE beside it (when the holdout's confusion matrix is kept); and the mean
    calibrated probability, which under a pure prior shift under-reacts.

    EM starts from ``calibrated``, the holdout's mean calibrated probability, not its
    label rate: that is the prior at which the probabilities are a fixed point on the
    holdout itself. Raw scores kept as calibrated can miss the label rate by a little,
    and EM magnifies such a miss (measured: a mean off by 0.005 moved EM by 0.016 in
    windows like the holdout); the holdout's own gap (label rate − mean probability) is
    added back to the EM prior instead."""
    n, k = probabilities.shape
    prior = np.asarray(prior, dtype=float)
    start = prior if calibrated is None else np.asarray(calibrated, dtype=float)
    gap = prior - start
    em = em_prior(probabilities, start)
    variance = np.diag(em_prior_covariance(probabilities, start, em))
    if refits is not None and len(refits) > 1:
        variance = variance + em_prior(refits, start).var(axis=0)
    em = np.clip(em + gap, 0, 1)
    em = em / em.sum()
    z = stats.norm.ppf(0.5 + confidence / 2)
    half = z * np.sqrt(np.maximum(variance, 0.0))
    out: dict[str, Any] = {
        "em": em.tolist(),
        "lower": np.clip(em - half, 0, 1).tolist(),
        "upper": np.clip(em + half, 0, 1).tolist(),
        "mean_probability": probabilities.mean(axis=0).tolist(),
        "holdout": prior.tolist(),
        "rows": int(n),
    }
    if confusion is not None:
        shares = np.bincount(decided, minlength=k) / max(n, 1)
        bbse, covariance = bbse_prior(confusion, shares, n)
        out["bbse"] = bbse.tolist()
        out["bbse_standard_error"] = np.sqrt(np.maximum(np.diag(covariance), 0)).tolist()
    return out


# ---------------------------------------------------------------------------- multiclass


@dataclass
class MulticlassEstimator:
    """Expected multiclass metrics (macro averages) from calibrated per-class scores.

    Each class's scores are calibrated one-vs-rest (isotonic, kept only when the
    cross-validated multiclass Brier score improves) and the rows renormalized; the
    expected confusion matrix is C[true t, decided j] = Σ P[row, t] over rows decided j
    (the logged prediction; without it, the class of the largest score, a rule whose
    share of the holdout's decisions is kept in ``rule``); bands come from label draws
    on bootstrap refits of the calibration, as for binary.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.dirichlet([1, 1, 1], 6000)
    >>> labels = np.array(["a", "b", "c"])[[rng.choice(3, p=p) for p in scores[:50]] * 120]
    >>> MulticlassEstimator.fit(scores, labels, ["a", "b", "c"]).classes
    ['a', 'b', 'c']
    """

    classes: list
    calibrated: bool
    knots: np.ndarray  # (K, G)
    curves: np.ndarray  # (K, G)
    bootstrap: np.ndarray  # (B, K, G)
    confidence_range: tuple[float, float]
    brier: dict[str, float] = field(default_factory=dict)
    rule: dict[str, Any] | None = None
    prior: list[float] = field(default_factory=list)
    #: The holdout's joint confusion matrix C[argmax j, true t] (for BBSE), or None.
    confusion: list | None = None
    #: The holdout's mean calibrated probabilities: EM's starting prior.
    calibrated_prior: list | None = None

    @classmethod
    @with_limited_threads
    def fit(
        cls, scores: Any, labels: Any, classes: list, seed: int = 0, decisions: Any = None
    ) -> MulticlassEstimator:
        from keel.performance import _codes

        scores = np.asarray(scores, dtype=float)
        _check_probabilities(scores)
        truth = _codes(labels, classes, "label")
        present = np.unique(truth)
        if len(present) < 2:
            raise DataError(
                f"the reference has {len(present)} label class(es): estimating needs several"
            )
        k = len(classes)
        onehot = np.eye(k)[truth]
        raw = float(np.mean(((scores - onehot) ** 2).sum(axis=1)))
        calibrated = _cross_validated_multiclass(scores, onehot, seed)
        use = calibrated < raw * 0.995
        name = "isotonic" if use else "none"
        knots = np.stack([_knots(scores[:, c]) for c in range(k)])
        curves = np.stack(
            [_fit_curve(name, scores[:, c], onehot[:, c], knots[c]) for c in range(k)]
        )
        boots = np.stack(
            [
                _bootstrap_curves(name, scores[:, c], onehot[:, c], knots[c], curves[c], seed + c)
                for c in range(k)
            ],
            axis=1,
        )
        rule = None
        if decisions is not None:
            decided = _codes(decisions, classes, "prediction")
            rule = {"kind": "argmax", "share": float(np.mean(decided == scores.argmax(axis=1)))}
        top = scores.max(axis=1)
        low, high = np.quantile(top, [0.005, 0.995])
        fitted = cls(
            list(classes),
            bool(use),
            knots,
            curves,
            boots,
            (float(low), float(high)),
            {"none": raw, "isotonic": calibrated},
            rule,
            onehot.mean(axis=0).tolist(),
            _confusion(scores.argmax(axis=1), truth, k),
        )
        fitted.calibrated_prior = fitted.probabilities(scores).mean(axis=0).tolist()
        return fitted

    @property
    def calibration(self) -> str:
        return "isotonic" if self.calibrated else "none"

    def _at(self, scores: np.ndarray, curves: np.ndarray) -> np.ndarray:
        """Per-class curves (``(..., K, G)``) at the scores, renormalized: ``(..., n, K)``."""
        if not self.calibrated and curves is self.curves:
            return scores
        fitted = np.stack(
            [
                _interpolated(scores[:, c], self.knots[c], curves[..., c, :])
                for c in range(len(self.classes))
            ],
            axis=-1,
        )
        fitted = np.clip(fitted, 0, 1)
        total = fitted.sum(axis=-1, keepdims=True)
        return np.where(total > 0, fitted / np.where(total > 0, total, 1), scores)

    def estimate_window(
        self, window: Any, fit: HoldoutFit, request: EstimateRequest
    ) -> dict[str, Metric] | None:
        """The family's one estimate (``Estimator``): the per-class score columns
        ``<score>_<class>`` of a window → estimated macro metrics; None when the window logs
        no decision and argmax does not reproduce the holdout's."""
        confidence, seed, decisions = request.confidence, request.seed, request.decisions
        columns = [f"{fit.score}_{c}" for c in self.classes]
        scores = np.column_stack(
            [window.column(c).to_numpy(zero_copy_only=False) for c in columns]
        ).astype(float)
        kept = np.isfinite(scores).all(axis=1)
        scores = scores[kept]
        decisions = None if decisions is None else np.asarray(decisions)[kept]
        if decisions is None and not rule_holds(self.rule):
            return None
        local = None
        if fit.local_inputs is not None and fit.support is not None:
            inputs = fit.support.columns
            if all(c in window.column_names for c in inputs):
                local = fit.local_correction(window.select(inputs).to_pandas()[kept])
        return self.estimate(scores, confidence, seed=seed, decisions=decisions, local=local)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        return self._at(np.asarray(scores, dtype=float), self.curves)

    def prior_shift(self, scores: Any, confidence: float = 0.95) -> dict[str, Any] | None:
        """The window's class prior estimated from its scores alone (``prior_estimate``):
        EM on the calibrated probabilities, BBSE on the argmax."""
        scores = np.asarray(scores, dtype=float)
        if len(scores) < MIN_ROWS:
            return None
        refits = self._at(scores, self.bootstrap) if self.calibrated else None
        return prior_estimate(
            self.probabilities(scores),
            refits,
            self.prior,
            self.confusion,
            scores.argmax(axis=1),
            confidence,
            self.calibrated_prior,
        )

    def estimate(
        self,
        scores: Any,
        confidence: float = 0.95,
        seed: int = 0,
        decisions: Any = None,
        local: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, Metric]:
        """Expected macro metrics of a window with bands; ``decisions`` are the logged
        predicted labels (else the class of the largest score). ``local`` is (each row's
        correction per class, its window-level covariance) from
        ``HoldoutFit.local_correction``, added to the calibrated probabilities as for
        binary; each label draw takes one normal draw of the correction's error."""
        from keel.performance import _codes

        scores = np.asarray(scores, dtype=float)
        _check_probabilities(scores)
        n, k = scores.shape
        names = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")
        if n < MIN_ROWS:
            return _too_few(names, n, "confidence-based")
        codes = (
            scores.argmax(axis=1)
            if decisions is None
            else _codes(decisions, self.classes, "prediction")
        )
        decided = np.eye(k)[codes]  # n × k
        correction, covariance = (0.0, None) if local is None else local
        p = _renormalized(self.probabilities(scores) + correction)
        expected = _multiclass_from(p.T @ decided)  # k × k: truth × decided
        rng = np.random.default_rng(seed)
        refits = self._at(scores, self.bootstrap)  # B × n × k
        chosen = refits[np.arange(DRAWS) % len(refits)] + correction
        if covariance is not None and np.any(covariance):
            error = rng.multivariate_normal(np.zeros(k), covariance, DRAWS, method="eigh")
            chosen = chosen + error[:, None, :]
        chosen = _renormalized(chosen) if local is not None else chosen
        cumulative = np.cumsum(chosen, axis=2)
        drawn_labels = (rng.random((DRAWS, n))[..., None] > cumulative).sum(axis=2)
        drawn_labels = np.minimum(drawn_labels, k - 1)
        cells = (np.arange(DRAWS)[:, None] * k + drawn_labels) * k + codes[None, :]
        matrices = np.bincount(cells.ravel(), minlength=DRAWS * k * k).reshape(DRAWS, k, k)
        drawn = _multiclass_from(matrices.astype(float))
        # One-vs-rest macro ROC AUC: expected per class, and per draw from its midranks.
        expected["roc_auc"] = np.mean([_expected_auc(p[:, c], scores[:, c]) for c in range(k)])
        per_class = []
        for c in range(k):  # a loop over classes; each vectorized over draws and rows
            positives = (drawn_labels == c).astype(float)
            ranks = stats.rankdata(scores[:, c])
            count = positives.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                per_class.append(
                    (positives @ ranks - count * (count + 1) / 2) / (count * (n - count))
                )
        drawn["roc_auc"] = np.nanmean(np.stack(per_class), axis=0)
        method = f"confidence-based, macro ({self.calibration} calibration"
        method += ", locally corrected)" if local is not None else ")"
        return _banded(names, expected, drawn, confidence, n, method)


def _renormalized(p: Any) -> np.ndarray:
    """Probabilities clipped to [0, 1] and rescaled to sum to 1 over the last axis."""
    p = np.clip(p, 0.0, 1.0)
    total = p.sum(axis=-1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / p.shape[-1])


def _multiclass_from(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy and macro precision, recall, specificity (one-vs-rest: the true negatives of
    each class over its negatives), F1 of (stacks of) confusion matrices."""
    m = matrix if matrix.ndim == 3 else matrix[None]
    diagonal = np.diagonal(m, axis1=-2, axis2=-1)
    truth, decided = m.sum(axis=-1), m.sum(axis=-2)
    total = m.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "accuracy": diagonal.sum(axis=-1) / m.sum(axis=(-2, -1)),
            "precision": np.nanmean(np.where(decided > 0, diagonal / decided, np.nan), axis=-1),
            "recall": np.nanmean(np.where(truth > 0, diagonal / truth, np.nan), axis=-1),
            "specificity": np.nanmean(
                np.where(
                    total[..., None] - truth > 0,
                    (total[..., None] - truth - decided + diagonal) / (total[..., None] - truth),
                    np.nan,
                ),
                axis=-1,
            ),
            "f1": np.mean(
                np.where(truth + decided > 0, 2 * diagonal / (truth + decided), 0.0), axis=-1
            ),
        }
    return out if matrix.ndim == 3 else {name: values[0] for name, values in out.items()}


def _cross_validated_multiclass(scores: np.ndarray, onehot: np.ndarray, seed: int) -> float:
    from sklearn.model_selection import KFold

    if len(scores) > BOOTSTRAP_ROWS:
        keep = np.random.default_rng(seed).choice(len(scores), BOOTSTRAP_ROWS, replace=False)
        scores, onehot = scores[keep], onehot[keep]
    errors = []
    for train, test in KFold(5, shuffle=True, random_state=seed).split(scores):
        fitted = np.column_stack(
            [
                _calibrator("isotonic")
                .fit(_column(scores[train, c]), onehot[train, c])
                .predict(scores[test, c])
                for c in range(onehot.shape[1])
            ]
        )
        total = fitted.sum(axis=1, keepdims=True)
        fitted = np.where(total > 0, fitted / np.where(total > 0, total, 1), scores[test])
        errors.append(np.mean(((fitted - onehot[test]) ** 2).sum(axis=1)))
    return float(np.mean(errors))


# ---------------------------------------------------------------------------- regression


@dataclass
class Forest:
    """A fitted gradient-boosting regressor as plain arrays (numeric splits), so a baseline
    file can keep it; ``predict`` walks every tree at once, level by level.

    >>> from sklearn.ensemble import HistGradientBoostingRegressor
    >>> x = np.linspace(0, 1, 400)[:, None]
    >>> model = HistGradientBoostingRegressor(max_iter=20).fit(x, np.sin(6 * x[:, 0]))
    >>> bool(np.allclose(Forest.from_sklearn(model).predict(x), model.predict(x)))
    True
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    baseline: float

    @classmethod
    def from_sklearn(cls, model: Any) -> Forest:
        trees = [predictors[0].nodes for predictors in model._predictors]
        offsets = np.r_[0, np.cumsum([len(t) for t in trees])[:-1]].astype(np.int64)
        nodes = np.concatenate(trees) if trees else np.zeros(0, trees[0].dtype)
        shift = np.repeat(offsets, [len(t) for t in trees])
        index = np.arange(len(nodes))
        leaf = nodes["is_leaf"].astype(bool)
        left = np.where(leaf, index, nodes["left"].astype(np.int64) + shift)
        right = np.where(leaf, index, nodes["right"].astype(np.int64) + shift)
        return cls(
            nodes["feature_idx"].astype(np.int64),
            nodes["num_threshold"].astype(float),
            left,
            right,
            nodes["missing_go_to_left"].astype(bool),
            np.where(leaf, nodes["value"], 0.0).astype(float),
            offsets,
            float(np.ravel(model._baseline_prediction)[0]),
        )

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        inputs = np.asarray(inputs, dtype=float)
        out = np.full(len(inputs), self.baseline)
        for start in range(0, len(inputs), 20_000):  # bounded memory: trees × 20,000 rows
            x = inputs[start : start + 20_000]
            rows = np.tile(np.arange(len(x)), len(self.roots))
            node = np.repeat(self.roots, len(x))  # every (tree, row) pair at its root
            active = np.flatnonzero(self.left[node] != node)
            while len(active):  # one level at a time; pairs that reach a leaf drop out
                at = node[active]
                value = x[rows[active], self.feature[at]]
                go_left = np.where(
                    np.isnan(value), self.missing_left[at], value <= self.threshold[at]
                )
                moved = np.where(go_left, self.left[at], self.right[at])
                node[active] = moved
                active = active[self.left[moved] != moved]
            out[start : start + len(x)] += self.value[node].reshape(len(self.roots), -1).sum(axis=0)
        return out

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        names = ("feature", "threshold", "left", "right", "missing_left", "value", "roots")
        out = {f"{prefix}.{name}": getattr(self, name) for name in names}
        out[f"{prefix}.baseline"] = np.array([self.baseline])
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Forest:
        names = ("feature", "threshold", "left", "right", "missing_left", "value", "roots")
        values = {name: arrays[f"{prefix}.{name}"] for name in names}
        return cls(**values, baseline=float(arrays[f"{prefix}.baseline"][0]))


@dataclass
class LossEstimator:
    """Expected regression errors from learned loss models (see the module docstring)."""

    rule = None  # a regressor's predictions are its decisions: no rule to learn

    absolute: Forest
    squared: Forest
    features: list[str]
    input_range: Any  # (2, inputs): each input's 0.1% and 99.9% quantiles on the holdout
    categories: dict[str, list] = field(default_factory=dict)
    fit_edges: np.ndarray = field(default_factory=lambda: np.zeros(0))  # predicted-loss deciles
    fit_error: np.ndarray = field(default_factory=lambda: np.zeros((1, 1)))  # (B, bins) relative
    #: The squared-loss model's own relative fit error, by bin of its prediction (None in
    #: baselines made before it was kept: twice the absolute one's is used there).
    fit_edges_squared: np.ndarray | None = None
    fit_error_squared: np.ndarray | None = None
    #: The holdout's own sampling error of the loss level, by bin of each model's
    #: prediction (``_level_error``): edges and the variance of the bin's mean target;
    #: rows 0 and 1 for the absolute and the squared loss. None in older baselines.
    level_edges: np.ndarray | None = None
    level_variance: np.ndarray | None = None
    #: Each loss model recalibrated on the holdout (``_loss_curve``): ``(2, 2, G)``, the
    #: absolute and the squared model's knots and values. None in older baselines.
    recalibration: np.ndarray | None = None
    #: Each input's 5% and 95% quantiles on the holdout: where ``_extrapolated`` measures
    #: the loss's slope toward the edge. None in older baselines (no extrapolation).
    inner_range: np.ndarray | None = None

    @classmethod
    @with_limited_threads
    def fit(cls, frame: Any, features: list[str], prediction: str, truth: str, seed: int = 0):
        import pandas as pd
        from sklearn.ensemble import HistGradientBoostingRegressor

        frame = frame.to_pandas() if hasattr(frame, "to_pandas") else pd.DataFrame(frame)
        missing = [c for c in [*features, prediction, truth] if c not in frame.columns]
        if missing:
            raise DataError(f"the reference has no column(s) {missing}")
        frame = frame.dropna(subset=[truth, prediction])
        if len(frame) < 200:
            raise DataError(f"{len(frame)} labelled reference rows: at least 200 are needed")
        categories = {
            name: sorted(frame[name].dropna().astype(str).unique().tolist())
            for name in features
            if not pd.api.types.is_numeric_dtype(frame[name])
        }
        inputs = _inputs(frame, features, prediction, categories)
        error = frame[prediction].to_numpy(float) - frame[truth].to_numpy(float)

        def learner(iterations: int = 200) -> Any:
            return HistGradientBoostingRegressor(
                max_iter=iterations, learning_rate=0.05, early_stopping=True, random_state=seed
            )

        absolute = learner().fit(inputs, np.abs(error))
        squared = learner().fit(inputs, error**2)
        edges, fit_error = _loss_fit_error(
            inputs, np.abs(error), absolute, learner(absolute.n_iter_), seed
        )
        edges_squared, fit_error_squared = _loss_fit_error(
            inputs, error**2, squared, learner(squared.n_iter_), seed + 1
        )
        curves = np.stack(
            [
                _loss_curve(model.predict(inputs), target)
                for model, target in ((absolute, np.abs(error)), (squared, error**2))
            ]
        )
        levels = [
            _level_error(_interpolated(model.predict(inputs), *curve), target)
            for model, target, curve in (
                (absolute, np.abs(error), curves[0]),
                (squared, error**2, curves[1]),
            )
        ]
        # Trees do not extrapolate: beyond the holdout's inputs a loss model repeats its edge.
        input_range = np.nanquantile(inputs, [0.001, 0.999], axis=0)
        inner_range = np.nanquantile(inputs, [0.05, 0.95], axis=0)
        return cls(
            Forest.from_sklearn(absolute),
            Forest.from_sklearn(squared),
            list(features),
            input_range,
            categories,
            edges,
            fit_error,
            edges_squared,
            fit_error_squared,
            np.stack([edges for edges, _ in levels]),
            np.stack([variance for _, variance in levels]),
            curves,
            inner_range,
        )

    @with_limited_threads
    def estimate_window(
        self, window: Any, fit: HoldoutFit, request: EstimateRequest
    ) -> dict[str, Metric] | None:
        """The family's one estimate (``Estimator``): a window's inputs and predictions →
        expected MAE and RMSE with bands (decisions play no part in regression)."""
        confidence = request.confidence
        frame = window.to_pandas() if hasattr(window, "to_pandas") else window
        return self.estimate(frame, fit.prediction, confidence)

    def _losses(self, absolute: np.ndarray, squared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The loss models' raw predictions through their recalibration (``_loss_curve``)."""
        if self.recalibration is None:
            return absolute, squared
        return (
            np.maximum(_interpolated(absolute, *self.recalibration[0]), 0),
            np.maximum(_interpolated(squared, *self.recalibration[1]), 0),
        )

    def _extrapolated(
        self, inputs: np.ndarray, absolute: np.ndarray, squared: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """What a row beyond the holdout's inputs adds to its losses, which trees hold flat
        there: the losses' growth from the row's point clipped to the 5–95% range to its
        point clipped to the 0.1–99.9% range (the models' own slope toward the edge),
        carried on linearly to the row, never negative. Its size is also its error in the
        band: beyond the holdout, the slope is a guess."""
        zero = np.zeros(len(inputs))
        if self.inner_range is None or not len(inputs):
            return zero, zero
        low, high = np.asarray(self.input_range, dtype=float)
        inner_low, inner_high = np.asarray(self.inner_range, dtype=float)
        edge = np.clip(inputs, low, high)
        beyond = np.nan_to_num(np.abs(inputs - edge)).sum(axis=1) > 0
        if not beyond.any():
            return zero, zero
        scale = np.where(high > low, high - low, 1.0)
        rows = inputs[beyond]
        at_edge, inside = edge[beyond], np.clip(rows, inner_low, inner_high)
        out = np.nan_to_num(np.linalg.norm((rows - at_edge) / scale, axis=1))
        run = np.nan_to_num(np.linalg.norm((at_edge - inside) / scale, axis=1))
        inner = self._losses(
            np.maximum(self.absolute.predict(inside), 0),
            np.maximum(self.squared.predict(inside), 0),
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(run > 0, out / run, 0.0)
        extra = []
        for edge_loss, inner_loss in zip((absolute[beyond], squared[beyond]), inner, strict=True):
            grown = np.zeros(len(inputs))
            grown[beyond] = np.maximum(edge_loss - inner_loss, 0) * ratio
            extra.append(grown)
        return extra[0], extra[1]

    def _level_sd(self, which: int, predicted: np.ndarray) -> float:
        """The holdout's sampling error of the window's mean loss (0: absolute, 1: squared)."""
        if self.level_edges is None or self.level_variance is None:
            return 0.0
        return _level_sd_of(self.level_edges[which], self.level_variance[which], predicted)

    def estimate(self, frame: Any, prediction: str, confidence: float = 0.95) -> dict[str, Metric]:
        import pandas as pd

        frame = frame.to_pandas() if hasattr(frame, "to_pandas") else pd.DataFrame(frame)
        n = len(frame)
        if n < MIN_ROWS:
            return _too_few(("mae", "rmse", "mape"), n, "loss model")
        inputs = _inputs(frame, self.features, prediction, self.categories)
        raw_absolute = np.maximum(self.absolute.predict(inputs), 0)
        raw_squared = np.maximum(self.squared.predict(inputs), 0)
        absolute, squared = self._losses(raw_absolute, raw_squared)
        beyond_absolute, beyond_squared = self._extrapolated(inputs, absolute, squared)
        absolute, squared = absolute + beyond_absolute, squared + beyond_squared
        squared = np.maximum(squared, absolute**2)
        z = stats.norm.ppf(0.5 + confidence / 2)
        # The loss model's own error: a relative error per decile of predicted loss, the
        # same for every row of a window (fully correlated: the conservative choice).
        relative = self.fit_error[:, np.searchsorted(self.fit_edges, raw_absolute)]  # B × n
        fit_sd = max(float(np.std((relative * absolute).mean(axis=1))), self._level_sd(0, absolute))
        fit_sd = float(np.hypot(fit_sd, beyond_absolute.mean()))  # extrapolation: ±its size
        fit_share = fit_sd / max(absolute.mean(), 1e-12)
        mae = absolute.mean()
        noise = np.sqrt(np.maximum(squared - absolute**2, 0).sum()) / n
        mae_half = z * np.hypot(noise, fit_sd)
        mse = squared.mean()
        # The squared loss's own fit error (bootstrapped like the absolute one's; in older
        # baselines, twice the absolute one's relative error). var(e²) = 2σ⁴ for normal errors.
        if self.fit_error_squared is not None:
            bins = np.searchsorted(self.fit_edges_squared, raw_squared)
            mse_fit_sd = float(np.std((self.fit_error_squared[:, bins] * squared).mean(axis=1)))
        else:
            mse_fit_sd = 2 * fit_share * mse
        mse_fit_sd = max(mse_fit_sd, self._level_sd(1, squared))
        mse_fit_sd = float(np.hypot(mse_fit_sd, beyond_squared.mean()))
        mse_half = z * np.hypot(np.sqrt((2 * squared**2).sum()) / n, mse_fit_sd)
        denominator = np.abs(frame[prediction].to_numpy(float))
        usable = denominator > 0
        mape = (absolute[usable] / denominator[usable]).mean() if usable.any() else np.nan
        return {
            "mae": Metric(
                "mae", float(mae), float(mae - mae_half), float(mae + mae_half), n, "loss model"
            ),
            "rmse": Metric(
                "rmse",
                float(np.sqrt(mse)),
                float(np.sqrt(max(mse - mse_half, 0))),
                float(np.sqrt(mse + mse_half)),
                n,
                "loss model",
            ),
            "mape": Metric(
                "mape",
                float(mape) if np.isfinite(mape) else None,
                None,
                None,
                n,
                "loss model over |prediction|; no band",
            ),
        }


def _loss_curve(predicted: np.ndarray, target: np.ndarray, size: int = GRID) -> np.ndarray:
    """A loss model recalibrated on the holdout: the isotonic fit of the target on the
    model's prediction, as ``(2, size)`` knots and values (padded with the last). Boosting
    with early stopping on a noisy, heavy-tailed target (a squared error) stops before it
    has fitted the loss's curvature, so it shrinks toward the mean: too high where the
    loss is low and too low in the tails, where a shift outward puts its rows (measured
    on the study's regressor: −4% to −6% for |x| in 1–2.5, +2.6% below 1). The isotonic
    map stretches it back wherever the holdout has rows."""
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(out_of_bounds="clip").fit(predicted, target)
    knots = np.unique(np.quantile(predicted, np.linspace(0, 1, size)))
    values = fitted.predict(knots)
    pad = size - len(knots)
    return np.stack(
        [np.r_[knots, np.repeat(knots[-1], pad)], np.r_[values, np.repeat(values[-1], pad)]]
    )


def _level_sd_of(edges: np.ndarray, variance: np.ndarray, predicted: np.ndarray) -> float:
    """The window mean's level error: Σ_b s_b² v_b with s_b the window's share of rows in
    bin b (bins independent, rows within a bin fully correlated)."""
    share = np.bincount(np.searchsorted(edges, predicted), minlength=len(variance))
    share = share / max(len(predicted), 1)
    return float(np.sqrt(np.sum(share**2 * variance)))


def _level_error(predicted: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The holdout's own sampling error of the loss level where each prediction falls: the
    fitted rows in 20 equal-count bins of the model's prediction, the top one split at the
    99th and 99.9th percentiles, and per bin the variance of its rows' mean target,
    var(target) / rows. A tree's prediction in a region is about the mean of the holdout's
    targets there, so it errs by about that mean's sampling error; where the holdout is
    thin (the tails a shift outward reaches), that error is large."""
    edges = np.quantile(predicted, [*np.linspace(0.05, 0.95, 19), 0.99, 0.999])
    bins = np.searchsorted(edges, predicted)
    size = len(edges) + 1
    counts = np.bincount(bins, minlength=size).astype(float)
    total = np.bincount(bins, target, minlength=size)
    squares = np.bincount(bins, target**2, minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / counts
        variance = (squares / counts - mean**2) * counts / np.maximum(counts - 1, 1)
        variance = np.where(counts > 1, variance / counts, 0.0)
    return edges, np.maximum(np.nan_to_num(variance), 0.0)


def _loss_fit_error(
    inputs: np.ndarray, target: np.ndarray, model: Any, learner: Any, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The loss model's relative fit error by bin of its prediction (deciles, the top one
    split at the 95th and 99th percentiles, where a shift outward puts its rows):
    ``BOOTSTRAPS`` refits on resamples of at most 2,000 rows, each one's deviation from
    the refits' mean over the fit's prediction, averaged per bin and scaled by
    √(2,000/n)."""
    rng = np.random.default_rng(seed)
    n = len(inputs)
    rows = min(n, 2_000)
    evaluation = rng.choice(n, min(n, 2_000), replace=False)
    predicted = np.maximum(model.predict(inputs[evaluation]), 1e-12)
    edges = np.quantile(predicted, [*np.linspace(0.1, 0.9, 9), 0.95, 0.99])
    bins = np.searchsorted(edges, predicted)
    refits = np.empty((BOOTSTRAPS, len(evaluation)))
    for b in range(BOOTSTRAPS):  # a loop over refits; each is one vectorised fit
        chosen = rng.integers(0, n, rows)
        refits[b] = learner.fit(inputs[chosen], target[chosen]).predict(inputs[evaluation])
    relative = (refits - refits.mean(axis=0)) / predicted * np.sqrt(rows / n)
    size = len(edges) + 1
    counts = np.bincount(bins, minlength=size)
    per_bin = np.stack([np.bincount(bins, r, minlength=size) for r in relative])
    return edges, per_bin / np.maximum(counts, 1)


def _inputs(frame: Any, features: list[str], prediction: str, categories: dict) -> Any:
    """Numbers for the loss models: categories coded as the reference coded them (a value
    the reference never had is missing, which gradient boosting handles)."""
    import pandas as pd

    inputs = frame[[*features, prediction]].copy()
    for name, known in categories.items():
        codes = pd.Categorical(inputs[name].astype(str), categories=known).codes.astype(float)
        inputs[name] = np.where(codes < 0, np.nan, codes)
    return inputs.to_numpy(dtype=float)


# ---------------------------------------------------------------------------- reliability


@dataclass
class SupportReference:
    """Where the holdout taught the estimator: a window's rows against it, by a domain
    classifier (see the module docstring).

    >>> rng = np.random.default_rng(0)
    >>> holdout = {"x": rng.normal(size=2000)}
    >>> support = SupportReference.fit(holdout, ["x"])
    >>> support.reliability({"x": rng.normal(size=1000)})["reliable"]
    True
    >>> far = support.reliability({"x": rng.normal(5, 1, size=1000)})
    >>> far["reliable"], far["outside_share"] > 0.9
    (False, True)
    """

    columns: list[str]
    center: np.ndarray
    scale: np.ndarray
    categories: dict[str, dict[str, float]]
    reference: np.ndarray  # encoded holdout rows
    unreliable_share: float = OUTSIDE_SHARE
    #: The holdout rows' own 99th percentile of the distance to their 10th nearest other
    #: holdout row (the ``nearest`` method's limit).
    nearest_limit: float = float("nan")

    @classmethod
    def fit(cls, frame: Any, columns: list[str], seed: int = 0) -> SupportReference:
        import pandas as pd

        frame = _frame(frame)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"the holdout has no column(s) {missing} for the reliability check")
        if len(frame) > SUPPORT_ROWS:
            frame = frame.iloc[np.random.default_rng(seed).choice(len(frame), SUPPORT_ROWS, False)]
        categories = {
            name: frame[name].astype(str).value_counts(normalize=True).to_dict()
            for name in columns
            if not pd.api.types.is_numeric_dtype(frame[name])
        }
        raw = _encoded(frame, columns, categories)
        center = np.nanmedian(raw, axis=0)
        spread = np.nanquantile(raw, 0.75, axis=0) - np.nanquantile(raw, 0.25, axis=0)
        scale = np.where(spread > 0, spread / 1.349, np.nanstd(raw, axis=0))
        scale = np.where(scale > 0, scale, 1.0)
        center, scale = np.nan_to_num(center), np.nan_to_num(scale, nan=1.0)
        reference = _standardized(raw, center, scale)
        return cls(
            list(columns), center, scale, categories, reference, OUTSIDE_SHARE,
            _nearest_limit(reference),
        )  # fmt: skip

    def encode(self, frame: Any) -> np.ndarray:
        return _standardized(
            _encoded(_frame(frame), self.columns, self.categories), self.center, self.scale
        )

    def outside(self, frame: Any, seed: int = 0, method: str = "nearest") -> np.ndarray:
        """Which window rows (a sample of at most 2,000) are outside the holdout's support.

        ``nearest``: the distance to the 10th nearest holdout row is above the holdout
        rows' own 99th percentile of it (leave-one-out). ``domain_classifier``: the
        out-of-fold P(window) is above the 99th percentile of the holdout rows' own."""
        window = self.encode(frame)
        rng = np.random.default_rng(seed)
        if len(window) > SUPPORT_ROWS:
            window = window[rng.choice(len(window), SUPPORT_ROWS, replace=False)]
        if method == "nearest":
            from scipy.spatial import cKDTree

            k = min(NEIGHBOURS, len(self.reference))
            distance, _ = cKDTree(self.reference).query(window, k=k, workers=-1)
            return np.reshape(distance, (len(window), -1))[:, -1] > self.nearest_limit
        if method != "domain_classifier":
            raise DataError(f"reliability {method!r}: nearest or domain_classifier")
        reference = self.reference
        x = np.vstack([reference, window])
        y = np.r_[np.zeros(len(reference)), np.ones(len(window))]
        fold = np.r_[rng.permutation(len(reference)) % 2, rng.permutation(len(window)) % 2]
        features = _expanded(x)
        probability = np.empty(len(x))
        for part in (0, 1):  # two folds: each row scored by the model that never saw it
            train = fold != part
            weights = np.where(y[train] == 1, len(reference) / max(len(window), 1), 1.0)
            beta = _ridge_logistic(features[train], y[train], weights)
            probability[~train] = features[~train] @ beta
        limit = np.quantile(probability[y == 0], OUTSIDE_QUANTILE)
        return probability[y == 1] > limit

    def reliability(
        self,
        frame: Any,
        seed: int = 0,
        unreliable_share: float | None = None,
        method: str = "nearest",
    ) -> dict[str, Any]:
        """``reliable``, ``outside_share`` and, when unreliable, the ``reason``: a window is
        unreliable when more than ``unreliable_share`` (default 10%) of its rows are outside."""
        frame = _frame(frame)
        if len(frame) == 0:
            return {"reliable": False, "outside_share": 0.0, "reason": "no rows"}
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            return {
                "reliable": False,
                "outside_share": None,
                "reason": f"the window has no column(s) {missing}: its support is unknown",
            }
        limit = self.unreliable_share if unreliable_share is None else unreliable_share
        share = float(self.outside(frame, seed, method).mean())
        reliable = share <= limit
        how = (
            "farther from the holdout's rows than 99% of holdout rows are"
            if method == "nearest"
            else "more window-like than 99% of holdout rows to a domain classifier"
        )
        return {
            "reliable": reliable,
            "outside_share": share,
            "reliability_method": method,
            "reason": None
            if reliable
            else f"{share:.0%} of rows outside the holdout's support ({how})",
        }


def _nearest_limit(reference: np.ndarray) -> float:
    """The 99th percentile, over holdout rows, of the distance to their 10th nearest other."""
    from scipy.spatial import cKDTree

    if len(reference) < 2:
        return float("inf")
    k = min(NEIGHBOURS, len(reference) - 1)
    # The first neighbour is the row itself. Every core: the same neighbours, sooner.
    distance, _ = cKDTree(reference).query(reference, k=k + 1, workers=-1)
    return float(np.quantile(distance[:, -1], OUTSIDE_QUANTILE))


def _frame(data: Any) -> Any:
    import pandas as pd

    return data.to_pandas() if hasattr(data, "to_pandas") else pd.DataFrame(data)


def _encoded(frame: Any, columns: list[str], categories: dict) -> np.ndarray:
    """Numbers per column: numeric as they are, categories by their holdout share."""
    out = np.empty((len(frame), len(columns)))
    for j, name in enumerate(columns):
        if name in categories:
            out[:, j] = frame[name].astype(str).map(categories[name]).fillna(0.0).to_numpy(float)
        else:
            out[:, j] = frame[name].to_numpy(dtype=float, na_value=np.nan)
    return out


def _standardized(raw: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    z = (raw - center) / scale
    return np.clip(np.nan_to_num(z, nan=0.0, posinf=50.0, neginf=-50.0), -50, 50)


def _expanded(x: np.ndarray) -> np.ndarray:
    """An intercept, the inputs and their squares (scaled down): a boundary that can close
    around the holdout on each input."""
    return np.hstack([np.ones((len(x), 1)), x, x**2 / 10])


def _ridge_logistic(x: np.ndarray, y: np.ndarray, weights: np.ndarray, penalty: float = 1.0):
    """Weighted logistic regression with an L2 penalty (not on the intercept), by Newton's
    method; returns the coefficients on the log-odds scale."""
    beta = np.zeros(x.shape[1])
    ridge = np.full(x.shape[1], penalty)
    ridge[0] = 1e-6
    for _ in range(25):  # Newton steps; each vectorised over rows
        eta = np.clip(x @ beta, -30, 30)
        p = 1 / (1 + np.exp(-eta))
        gradient = x.T @ (weights * (p - y)) + ridge * beta
        hessian = (x * (weights * p * (1 - p))[:, None]).T @ x + np.diag(ridge)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-6:
            break
    return beta


# ---------------------------------------------------------------------------- the holdout


@dataclass
class HoldoutFit:
    """What a baseline keeps of its labelled holdout for estimation and label shift: the
    fitted estimator, the support reference, the label distribution; as JSON plus arrays.

    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(size=3000)
    >>> rows = pd.DataFrame({"x": s, "score": s, "y": (rng.uniform(size=3000) < s).astype(int)})
    >>> fit = fit_holdout(rows, "binary", "y", score="score", features=["x"])
    >>> again = HoldoutFit.from_bytes(fit.meta(), fit.to_bytes())
    >>> again.labels["counts"] == fit.labels["counts"], again.fitted_rows
    (True, 3000)
    """

    task: str
    target: str
    score: str | None
    prediction: str | None
    classes: list | None
    rows: int  # holdout rows with a label
    fitted_rows: int  # the rows the estimator learned from (≤ 1,000,000)
    estimator: Any
    support: SupportReference | None
    labels: dict[str, Any]  # classes and counts, or a sample of the regression targets
    #: Binary: holdout rows (≤ 20,000, encoded as the support encodes) and their
    #: calibration residuals (label − calibrated probability), for ``local_correction``.
    local_inputs: np.ndarray | None = None
    local_residuals: np.ndarray | None = None

    @property
    def rule(self) -> dict[str, Any] | None:
        return getattr(self.estimator, "rule", None)

    def estimate(
        self,
        window: Any,
        confidence: float,
        seed: int = 0,
        decisions: Any = None,
        value_matrix: dict[str, float] | None = None,
        decision_threshold: float | None = None,
    ) -> dict[str, Metric] | None:
        """A window's estimated metrics by this holdout's estimator, whatever its task
        (``Estimator.estimate_window``)."""
        request = EstimateRequest(confidence, seed, decisions, value_matrix, decision_threshold)
        return self.estimator.estimate_window(window, self, request)

    def estimated_prior(
        self, window: Any, confidence: float = 0.95, decisions: Any = None
    ) -> dict[str, Any] | None:
        """A window's class prior from its scores alone, before labels (EM and BBSE: see
        ``prior_estimate``), with ``classes`` in the order of its lists; None for
        regression, without the score columns, or with too few rows."""
        estimator = self.estimator
        if isinstance(estimator, ConfidenceEstimator):
            if self.score not in window.column_names:
                return None
            scores = window.column(self.score).to_numpy(zero_copy_only=False).astype(float)
            kept = np.isfinite(scores)
            decisions = None if decisions is None else np.asarray(decisions)[kept]
            found = estimator.prior_shift(scores[kept], confidence, decisions)
            classes = ["negative", estimator.positive]
        elif isinstance(estimator, MulticlassEstimator):
            columns = [f"{self.score}_{c}" for c in estimator.classes]
            if any(c not in window.column_names for c in columns):
                return None
            scores = np.column_stack(
                [window.column(c).to_numpy(zero_copy_only=False) for c in columns]
            ).astype(float)
            found = estimator.prior_shift(scores[np.isfinite(scores).all(axis=1)], confidence)
            classes = list(estimator.classes)
        else:
            return None
        return None if found is None else {"classes": classes, **found}

    def reliability(
        self, window: Any, seed: int = 0, share: float | None = None, method: str = "nearest"
    ) -> dict[str, Any]:
        """Whether the window's rows lie where the holdout had rows (``SupportReference``):
        ``{"reliable": ..., "outside_share": ...}``; reliable when there is no support."""
        if self.support is None:
            return {"reliable": True, "outside_share": None}
        columns = [c for c in self.support.columns if c in window.column_names]
        return self.support.reliability(window.select(columns).to_pandas(), seed, share, method)

    def local_correction(self, frame: Any) -> tuple[np.ndarray, Any] | None:
        """Each window row's local correction to its calibrated probability — the mean
        calibration residual of its 100 nearest holdout rows — and that correction's
        window-level standard error, Σⱼ mⱼ² pⱼ(1−pⱼ) under ``mⱼ``, holdout row j's share
        of all the window's neighbours. None without holdout residuals or inputs.

        Calibration on the score alone assumes P(y | score) is the holdout's; under a
        covariate shift within the support a misspecified model breaks that (the
        study's "shift that hurts": accuracy bias −0.020 on the score alone, −0.002
        corrected). Inside the support, the neighbours' residuals carry P(y | x).

        Multiclass: the residuals are one-hot label − calibrated probabilities (a row per
        holdout row, a column per class), the correction is their mean per class (it sums
        to zero), and its error is the covariance Σⱼ mⱼ² (diag pⱼ − pⱼpⱼᵀ)."""
        if self.local_inputs is None or self.support is None:
            return None
        frame = _frame(frame)
        if any(c not in frame.columns for c in self.support.columns):
            return None
        from scipy.spatial import cKDTree

        window = self.support.encode(frame[self.support.columns])
        k = min(LOCAL_NEIGHBOURS, len(self.local_inputs))
        _, index = cKDTree(self.local_inputs).query(window, k=k, workers=-1)
        index = np.reshape(index, (len(window), -1))
        residuals = self.local_residuals
        correction = residuals[index].mean(axis=1)
        share = np.bincount(index.ravel(), minlength=len(residuals)) / index.size
        fitted = np.clip(self.local_probabilities, 0, 1)
        if residuals.ndim == 2:  # multiclass: the multinomial covariance of the mean residual
            weighted = fitted * (share**2)[:, None]
            return correction, np.diag(weighted.sum(axis=0)) - (fitted.T * share**2) @ fitted
        spread = float(np.sqrt(np.sum(share**2 * fitted * (1 - fitted))))
        return correction, spread

    @property
    def local_probabilities(self) -> np.ndarray:
        """The calibrated probabilities behind the local residuals (label − residual is
        0 or 1, so residual = label − p); per class for multiclass."""
        residuals = self.local_residuals
        if residuals.ndim == 2:  # the label's class is the one residual that is not negative
            return np.eye(residuals.shape[1])[residuals.argmax(axis=1)] - residuals
        return np.where(residuals >= 0, 1 - residuals, -residuals)

    def meta(self) -> dict[str, Any]:
        estimator = self.estimator
        meta: dict[str, Any] = {
            "task": self.task,
            "target": self.target,
            "score": self.score,
            "prediction": self.prediction,
            "classes": self.classes,
            "rows": self.rows,
            "fitted_rows": self.fitted_rows,
            "labels": {k: v for k, v in self.labels.items() if k != "sample"},
            "support": None
            if self.support is None
            else {
                "columns": self.support.columns,
                "categories": self.support.categories,
                "nearest_limit": self.support.nearest_limit,
            },
        }
        if isinstance(estimator, ConfidenceEstimator):
            meta["estimator"] = {
                "calibration": estimator.calibration,
                "threshold": estimator.threshold,
                "score_range": list(estimator.score_range),
                "brier": estimator.brier,
                "positive": estimator.positive,
                "rule": estimator.rule,
                "prior": estimator.prior,
                "confusion": estimator.confusion,
                "calibrated_prior": estimator.calibrated_prior,
            }
        elif isinstance(estimator, MulticlassEstimator):
            meta["estimator"] = {
                "calibrated": estimator.calibrated,
                "confidence_range": list(estimator.confidence_range),
                "brier": estimator.brier,
                "rule": estimator.rule,
                "prior": estimator.prior,
                "confusion": estimator.confusion,
                "calibrated_prior": estimator.calibrated_prior,
            }
        else:
            meta["estimator"] = {
                "features": estimator.features,
                "categories": estimator.categories,
            }
        return meta

    def to_bytes(self) -> bytes:
        """The fit's arrays (``numpy.savez``, no pickles)."""
        estimator = self.estimator
        arrays: dict[str, np.ndarray] = {}
        if isinstance(estimator, ConfidenceEstimator | MulticlassEstimator):
            arrays |= {
                "knots": estimator.knots,
                "curves": estimator.curves,
                "bootstrap": estimator.bootstrap,
            }
        else:
            arrays |= estimator.absolute.arrays("absolute") | estimator.squared.arrays("squared")
            arrays |= {
                "input_range": np.asarray(estimator.input_range, dtype=float),
                "fit_edges": estimator.fit_edges,
                "fit_error": estimator.fit_error,
                **(
                    {}
                    if estimator.level_edges is None
                    else {
                        "level_edges": estimator.level_edges,
                        "level_variance": estimator.level_variance,
                        "recalibration": estimator.recalibration,
                        "inner_range": np.asarray(estimator.inner_range, dtype=float),
                    }
                ),
                **(
                    {}
                    if estimator.fit_error_squared is None
                    else {
                        "fit_edges_squared": estimator.fit_edges_squared,
                        "fit_error_squared": estimator.fit_error_squared,
                    }
                ),
            }
        if self.support is not None:
            arrays |= {
                "support.center": self.support.center,
                "support.scale": self.support.scale,
                "support.reference": self.support.reference,
            }
        if "sample" in self.labels:
            arrays["labels.sample"] = np.asarray(self.labels["sample"], dtype=float)
        if self.local_inputs is not None:
            arrays["local.inputs"] = self.local_inputs
            arrays["local.residuals"] = self.local_residuals
        sink = io.BytesIO()
        np.savez_compressed(sink, **arrays)
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, meta: dict[str, Any], data: bytes) -> HoldoutFit:
        arrays = dict(np.load(io.BytesIO(data), allow_pickle=False))
        kept = meta["estimator"]
        if meta["task"] == "binary":
            estimator: Any = ConfidenceEstimator(
                kept["calibration"],
                arrays["knots"],
                arrays["curves"],
                arrays["bootstrap"],
                kept["threshold"],
                tuple(kept["score_range"]),
                kept["brier"],
                kept["positive"],
                kept["rule"],
                kept["prior"],
                kept.get("confusion"),
                kept.get("calibrated_prior"),
            )
        elif meta["task"] == "multiclass":
            estimator = MulticlassEstimator(
                list(meta["classes"]),
                kept["calibrated"],
                arrays["knots"],
                arrays["curves"],
                arrays["bootstrap"],
                tuple(kept["confidence_range"]),
                kept["brier"],
                kept["rule"],
                kept["prior"],
                kept.get("confusion"),
                kept.get("calibrated_prior"),
            )
        else:
            estimator = LossEstimator(
                Forest.from_arrays(arrays, "absolute"),
                Forest.from_arrays(arrays, "squared"),
                kept["features"],
                arrays["input_range"],
                kept["categories"],
                arrays["fit_edges"],
                arrays["fit_error"],
                arrays.get("fit_edges_squared"),
                arrays.get("fit_error_squared"),
                arrays.get("level_edges"),
                arrays.get("level_variance"),
                arrays.get("recalibration"),
                arrays.get("inner_range"),
            )
        support = None
        if meta.get("support"):
            support = SupportReference(
                meta["support"]["columns"],
                arrays["support.center"],
                arrays["support.scale"],
                meta["support"]["categories"],
                arrays["support.reference"],
                OUTSIDE_SHARE,
                meta["support"]["nearest_limit"],
            )
        labels = dict(meta["labels"])
        if "labels.sample" in arrays:
            labels["sample"] = arrays["labels.sample"]
        return cls(
            meta["task"],
            meta["target"],
            meta["score"],
            meta["prediction"],
            meta["classes"],
            meta["rows"],
            meta["fitted_rows"],
            estimator,
            support,
            labels,
            arrays.get("local.inputs"),
            arrays.get("local.residuals"),
        )


def stratified_rows(labels: Any, limit: int, seed: int) -> np.ndarray:
    """Row positions: all of them up to ``limit``, else a sample keeping each class's share.

    >>> rows = stratified_rows(np.r_[np.zeros(900), np.ones(100)], 100, seed=0)
    >>> len(rows), int(np.r_[np.zeros(900), np.ones(100)][rows].sum())
    (100, 10)
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    _, codes = np.unique(labels.astype(str), return_inverse=True)
    chosen = []
    for code in np.unique(codes):  # a loop over classes
        members = np.flatnonzero(codes == code)
        take = max(1, int(round(len(members) * limit / n)))
        chosen.append(rng.choice(members, min(take, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


@with_limited_threads
def fit_holdout(
    data: Any,
    task: str,
    target: str,
    score: str | None = None,
    prediction: str | None = None,
    classes: list | None = None,
    features: list[str] | None = None,
    seed: int = 0,
) -> HoldoutFit:
    """Fit the estimator, the support reference and the label distribution on a labelled
    holdout (a table or frame): all rows with a label up to 1,000,000, a class-stratified
    sample above (regression: uniform). Multiclass scores are ``<score>_<class>``."""
    import pandas as pd

    frame = _frame(data)
    needed = [target, *([prediction] if prediction else [])]
    if task == "binary":
        needed += [score] if score else []
    if task == "multiclass":
        needed += [f"{score}_{c}" for c in classes or []]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"the holdout has no column(s) {', '.join(missing)}")
    frame = frame[pd.notna(frame[target])]
    labelled = len(frame)
    truth = frame[target].to_numpy()
    keep = (
        stratified_rows(truth, FIT_ROWS, seed)
        if task != "regression"
        else np.sort(np.random.default_rng(seed).permutation(labelled)[:FIT_ROWS])
    )
    frame = frame.iloc[keep]
    features = [c for c in (features or []) if c in frame.columns]
    if task == "binary":
        if not score:
            raise DataError("estimating a binary classifier needs its score column")
        scores = frame[score].to_numpy(float)
        decisions = frame[prediction].to_numpy() if prediction else None
        if decisions is not None and pd.isna(decisions).any():
            decisions = None
        estimator: Any = ConfidenceEstimator.fit(
            scores, frame[target].to_numpy(), seed=seed, decisions=decisions
        )
        inputs = [*features, score]
    elif task == "multiclass":
        if not score or not classes:
            raise DataError("estimating a multiclass classifier needs --score PREFIX and classes")
        columns = [f"{score}_{c}" for c in classes]
        decisions = frame[prediction].to_numpy() if prediction else None
        estimator = MulticlassEstimator.fit(
            frame[columns].to_numpy(float),
            frame[target].to_numpy(),
            list(classes),
            seed=seed,
            decisions=decisions,
        )
        inputs = [*features, *columns]
    else:
        if not prediction:
            raise DataError("estimating a regressor needs its prediction column")
        estimator = LossEstimator.fit(frame, features, prediction, target, seed=seed)
        inputs = [*features, prediction]
    support = SupportReference.fit(frame, inputs, seed=seed)
    local_inputs = local_residuals = None
    if task == "binary":
        local = stratified_rows(frame[target].to_numpy(), LOCAL_ROWS, seed + 7)
        rows = frame.iloc[local]
        decided = (
            decided_positive(rows[prediction].to_numpy(), estimator.positive)
            if decisions is not None
            else estimator.decide(rows[score].to_numpy(float))
        )
        calibrated = estimator.probabilities(rows[score].to_numpy(float), decided)
        positive = decided_positive(rows[target].to_numpy(), estimator.positive)
        local_inputs = support.encode(rows[inputs])
        local_residuals = positive.astype(float) - calibrated
    elif task == "multiclass":
        from keel.performance import _codes

        local = stratified_rows(frame[target].to_numpy(), LOCAL_ROWS, seed + 7)
        rows = frame.iloc[local]
        onehot = np.eye(len(classes))[_codes(rows[target].to_numpy(), list(classes), "label")]
        local_inputs = support.encode(rows[inputs])
        local_residuals = onehot - estimator.probabilities(rows[columns].to_numpy(float))
    truth = frame[target].to_numpy()
    if task == "regression":
        sample = truth.astype(float)
        if len(sample) > 5_000:
            sample = np.random.default_rng(seed).choice(sample, 5_000, replace=False)
        labels: dict[str, Any] = {"sample": np.sort(sample), "rows": labelled}
    else:
        names = list(classes) if classes else np.unique(truth).tolist()
        counts = [int(np.sum(truth.astype(str) == str(c))) for c in names]
        labels = {"classes": [_plain(c) for c in names], "counts": counts}
    return HoldoutFit(
        task, target, score, prediction, list(classes) if classes else None,
        labelled, len(frame), estimator, support, labels, local_inputs, local_residuals,
    )  # fmt: skip


def _plain(value: Any) -> Any:
    """A label as JSON keeps it (numpy scalars become Python ones)."""
    value = value.item() if hasattr(value, "item") else value
    return json.loads(json.dumps(value, default=str))


class Estimator(Protocol):
    """The estimator family: one per task, fitted on a labelled holdout (``fit_holdout``
    calls the task's ``fit``), each with one ``estimate_window`` shape; reliability is the
    holdout's support (``HoldoutFit.reliability``), shared by all. ``ESTIMATORS`` holds
    every member; ``tests/common/test_estimators.py`` runs one battery over them."""

    rule: dict[str, Any] | None

    def estimate_window(
        self, window: Any, fit: HoldoutFit, request: EstimateRequest
    ) -> dict[str, Metric] | None: ...


#: Every estimator, by the task it estimates.
ESTIMATORS: dict[str, type] = {
    "binary": ConfidenceEstimator,
    "multiclass": MulticlassEstimator,
    "regression": LossEstimator,
}
