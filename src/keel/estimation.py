"""Performance before labels arrive: expected metrics from the model's own confidence.

**Classifiers** (``ConfidenceEstimator``, binary). On the labelled reference,
keel checks whether the scores are calibrated: it compares, by 5-fold
cross-validated Brier score, the raw scores, an isotonic fit and a sigmoid
(Platt) fit, and keeps the best. In a window, each row's calibrated
probability ``p`` is the chance its label is positive; with the model's
decisions fixed (score ≥ threshold), the expected confusion matrix is

    TP = Σ p·[decided 1]   FP = Σ (1−p)·[decided 1]
    FN = Σ p·[decided 0]   TN = Σ (1−p)·[decided 0]

and accuracy, precision, recall, specificity, F1 and the value matrix follow
from it; ROC AUC from the expected pairs (a positive above a negative). The
band is the range the *realized* metric would take if labels were drawn from
those probabilities: 400 label draws, percentile interval. It is the
sampling uncertainty; calibration error is not in it.

**Regressors** (``LossEstimator``). Two gradient-boosting models learn, on the
reference, each row's absolute and squared error from its features and
prediction; a window's estimated MAE is the mean predicted absolute error,
RMSE the root of the mean predicted squared error, MAPE the mean predicted
absolute error over |prediction|. Bands assume each row's error is normal
with its predicted variance. A loss model cannot extrapolate: a window whose
inputs (or predictions) leave the reference's central 99.8% on more than 10% of
rows is flagged unreliable.

**What estimation cannot see.** It sees the inputs move into regions where
the model is less (or more) sure or accurate. It cannot see concept drift
(the same inputs, a new relationship to the label): nothing it looks at
changes, so the estimate stays flat while the realized metric falls. And in
regions the reference never covered, the calibration is extrapolated:
``reliability`` flags such windows (``unreliable`` when more than 10% of the
window's scores fall outside the reference's central 99%, or, for regressors,
more than 10% of its rows have an input outside the reference's central 99.8%).

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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from keel.errors import DataError
from keel.performance import Metric, _check_probabilities
from keel.threads import with_limited_threads

DRAWS = 400
MIN_ROWS = 50
OUTSIDE_SHARE = 0.10


@dataclass
class ConfidenceEstimator:
    """Expected binary-classifier metrics from calibrated scores (see the module docstring)."""

    calibration: str  # none, isotonic or sigmoid
    model: Any
    threshold: float
    score_range: tuple[float, float]
    brier: dict[str, float] = field(default_factory=dict)
    positive: Any = 1  # the positive label: the larger of the reference's two

    @classmethod
    @with_limited_threads
    def fit(
        cls, scores: Any, labels: Any, threshold: float = 0.5, seed: int = 0
    ) -> ConfidenceEstimator:
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
        brier = _cross_validated_brier(scores, y, seed)
        choice = min(brier, key=brier.get)
        model = _calibrator(choice).fit(_column(scores), y) if choice != "none" else None
        low, high = np.quantile(scores, [0.005, 0.995])
        positive = classes[-1].item() if hasattr(classes[-1], "item") else classes[-1]
        return cls(choice, model, threshold, (float(low), float(high)), brier, positive)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        if self.model is None:
            return scores
        if self.calibration == "isotonic":
            return self.model.predict(scores)
        return self.model.predict_proba(_column(scores))[:, 1]

    def estimate(
        self,
        scores: Any,
        value_matrix: dict[str, float] | None = None,
        confidence: float = 0.95,
        seed: int = 0,
        decisions: Any = None,
    ) -> dict[str, Metric]:
        """Expected metrics of a window, each with the band a realized value would fall in.

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
        p = np.clip(self.probabilities(scores), 0.0, 1.0)
        decided = (
            scores >= self.threshold
            if decisions is None
            else decided_positive(decisions, self.positive)
        )
        if len(decided) != n:
            raise DataError(f"{len(decided):,} decisions for {n:,} scores")
        expected = _metrics_from(p[None, :], decided, scores, value_matrix)  # expectations
        rng = np.random.default_rng(seed)
        draws = rng.random((DRAWS, n)) < p  # labels as the calibrated model expects them
        drawn = _metrics_from(draws.astype(float), decided, scores, value_matrix)
        tail = (1 - confidence) / 2 * 100
        out = {}
        for name in names:
            value = float(expected[name][0])
            finite = drawn[name][np.isfinite(drawn[name])]
            low, high = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (None,) * 2
            out[name] = Metric(
                name,
                value if np.isfinite(value) else None,
                None if low is None else float(low),
                None if high is None else float(high),
                n,
                f"confidence-based ({self.calibration} calibration)",
            )
        return out

    def reliability(self, scores: Any) -> dict[str, Any]:
        """Whether the window stays where the reference taught the calibration."""
        scores = np.asarray(scores, dtype=float)
        low, high = self.score_range
        outside = float(((scores < low) | (scores > high)).mean()) if len(scores) else 0.0
        return {
            "reliable": outside <= OUTSIDE_SHARE,
            "outside_reference_share": outside,
            "reason": None
            if outside <= OUTSIDE_SHARE
            else f"{outside:.0%} of scores outside the reference's central 99%",
        }


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
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    errors = {"none": [], "isotonic": [], "sigmoid": []}
    for train, test in folds.split(scores, y):
        errors["none"].append(np.mean((scores[test] - y[test]) ** 2))
        for name in ("isotonic", "sigmoid"):
            fitted = _calibrator(name).fit(_column(scores[train]), y[train])
            predicted = (
                fitted.predict(scores[test])
                if name == "isotonic"
                else fitted.predict_proba(_column(scores[test]))[:, 1]
            )
            errors[name].append(np.mean((predicted - y[test]) ** 2))
    # Keep the raw scores unless a fit is clearly better: a tie goes to the simplest.
    result = {name: float(np.mean(values)) for name, values in errors.items()}
    for name in ("isotonic", "sigmoid"):
        if result[name] > result["none"] * 0.995:
            result[name] = result[name] + 1.0  # not clearly better: never chosen
    return result


def _calibrator(name: str) -> Any:
    if name == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        return _Isotonic(IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0))
    from sklearn.linear_model import LogisticRegression

    return _Sigmoid(LogisticRegression(C=1e6))


class _Isotonic:
    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Isotonic:
        self.model.fit(x[:, 0], y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(np.ravel(x))


class _Sigmoid:
    """Platt scaling on the score's log-odds."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Sigmoid:
        self.model.fit(_logit(x), y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(_logit(x))


def _logit(x: np.ndarray) -> np.ndarray:
    clipped = np.clip(x, 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped))


def _column(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float).reshape(-1, 1)


@dataclass
class LossEstimator:
    """Expected regression errors from learned loss models (see the module docstring)."""

    absolute: Any
    squared: Any
    features: list[str]
    input_range: Any  # (2, inputs): each input's 0.1% and 99.9% quantiles on the reference
    categories: dict[str, list] = field(default_factory=dict)

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

        def learner() -> Any:
            return HistGradientBoostingRegressor(
                max_iter=200, learning_rate=0.05, early_stopping=True, random_state=seed
            )

        absolute = learner().fit(inputs, np.abs(error))
        squared = learner().fit(inputs, error**2)
        # Trees do not extrapolate: beyond the reference's inputs a loss model repeats its
        # edge, so reliability looks at the inputs themselves, not at the predicted losses.
        input_range = np.nanquantile(inputs, [0.001, 0.999], axis=0)
        return cls(absolute, squared, list(features), input_range, categories)

    @with_limited_threads
    def estimate(self, frame: Any, prediction: str, confidence: float = 0.95) -> dict[str, Metric]:
        import pandas as pd

        frame = frame.to_pandas() if hasattr(frame, "to_pandas") else pd.DataFrame(frame)
        n = len(frame)
        if n < MIN_ROWS:
            return _too_few(("mae", "rmse", "mape"), n, "loss model")
        inputs = _inputs(frame, self.features, prediction, self.categories)
        absolute = np.maximum(self.absolute.predict(inputs), 0)
        squared = np.maximum(self.squared.predict(inputs), absolute**2)
        z = stats.norm.ppf(0.5 + confidence / 2)
        mae = absolute.mean()
        mae_half = z * np.sqrt(np.maximum(squared - absolute**2, 0).sum()) / n
        mse = squared.mean()
        mse_half = z * np.sqrt((2 * squared**2).sum()) / n  # var(e²) = 2σ⁴ for normal errors
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

    @with_limited_threads
    def reliability(self, frame: Any, prediction: str) -> dict[str, Any]:
        import pandas as pd

        frame = frame.to_pandas() if hasattr(frame, "to_pandas") else pd.DataFrame(frame)
        if len(frame) == 0:
            return {"reliable": False, "outside_reference_share": 0.0, "reason": "no rows"}
        inputs = _inputs(frame, self.features, prediction, self.categories)
        low, high = self.input_range
        with np.errstate(invalid="ignore"):
            beyond = (inputs < low) | (inputs > high) | (np.isnan(inputs) & ~np.isnan(low))
        outside = float(beyond.any(axis=1).mean())
        return {
            "reliable": outside <= OUTSIDE_SHARE,
            "outside_reference_share": outside,
            "reason": None
            if outside <= OUTSIDE_SHARE
            else f"{outside:.0%} of rows have an input (or prediction) outside the reference's "
            "central 99.8%",
        }


def _inputs(frame: Any, features: list[str], prediction: str, categories: dict) -> Any:
    """Numbers for the loss models: categories coded as the reference coded them (a value
    the reference never had is missing, which gradient boosting handles)."""
    import pandas as pd

    inputs = frame[[*features, prediction]].copy()
    for name, known in categories.items():
        codes = pd.Categorical(inputs[name].astype(str), categories=known).codes.astype(float)
        inputs[name] = np.where(codes < 0, np.nan, codes)
    return inputs.to_numpy(dtype=float)


@dataclass
class MulticlassEstimator:
    """Expected multiclass metrics (macro averages) from calibrated per-class scores.

    Each class's scores are calibrated one-vs-rest (isotonic, kept only when the
    cross-validated multiclass Brier score improves) and the rows renormalized; the
    expected confusion matrix is C[true t, decided j] = Σ P[row, t] over rows decided j
    (the class of the largest raw score); bands come from label draws, as for binary.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.dirichlet([1, 1, 1], 6000)
    >>> labels = np.array(["a", "b", "c"])[[rng.choice(3, p=p) for p in scores[:50]] * 120]
    >>> MulticlassEstimator.fit(scores, labels, ["a", "b", "c"]).classes
    ['a', 'b', 'c']
    """

    classes: list
    calibrators: list | None
    confidence_range: tuple[float, float]
    brier: dict[str, float] = field(default_factory=dict)

    @classmethod
    @with_limited_threads
    def fit(cls, scores: Any, labels: Any, classes: list, seed: int = 0) -> MulticlassEstimator:
        from keel.performance import _codes

        scores = np.asarray(scores, dtype=float)
        _check_probabilities(scores)
        truth = _codes(labels, classes, "label")
        present = np.unique(truth)
        if len(present) < 2:
            raise DataError(
                f"the reference has {len(present)} label class(es): estimating needs several"
            )
        onehot = np.eye(len(classes))[truth]
        raw = float(np.mean(((scores - onehot) ** 2).sum(axis=1)))
        calibrated = _cross_validated_multiclass(scores, onehot, seed)
        use = calibrated < raw * 0.995
        calibrators = (
            [
                _calibrator("isotonic").fit(_column(scores[:, c]), onehot[:, c])
                for c in range(len(classes))
            ]
            if use
            else None
        )
        top = scores.max(axis=1)
        low, high = np.quantile(top, [0.005, 0.995])
        return cls(
            list(classes),
            calibrators,
            (float(low), float(high)),
            {"none": raw, "isotonic": calibrated},
        )

    @property
    def calibration(self) -> str:
        return "none" if self.calibrators is None else "isotonic"

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        if self.calibrators is None:
            return scores
        fitted = np.column_stack([c.predict(scores[:, i]) for i, c in enumerate(self.calibrators)])
        total = fitted.sum(axis=1, keepdims=True)
        return np.where(total > 0, fitted / np.where(total > 0, total, 1), scores)

    def estimate(self, scores: Any, confidence: float = 0.95, seed: int = 0) -> dict[str, Metric]:
        scores = np.asarray(scores, dtype=float)
        _check_probabilities(scores)
        n, k = scores.shape
        names = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")
        if n < MIN_ROWS:
            return _too_few(names, n, "confidence-based")
        p = self.probabilities(scores)
        decided = np.eye(k)[scores.argmax(axis=1)]  # n × k
        expected = _multiclass_from(p.T @ decided)  # k × k: truth × decided
        rng = np.random.default_rng(seed)
        cumulative = np.cumsum(p, axis=1)
        drawn_labels = (rng.random((DRAWS, n))[..., None] > cumulative[None]).sum(axis=2)
        drawn_labels = np.minimum(drawn_labels, k - 1)
        matrices = np.stack(
            [np.eye(k)[labels].T @ decided for labels in drawn_labels]
        )  # a loop over draws (400), each a matrix product over rows
        drawn = _multiclass_from(matrices)
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
        tail = (1 - confidence) / 2 * 100
        out = {}
        for name in names:
            low, high = np.percentile(drawn[name][np.isfinite(drawn[name])], [tail, 100 - tail])
            out[name] = Metric(
                name,
                float(expected[name]),
                float(low),
                float(high),
                n,
                f"confidence-based, macro ({self.calibration} calibration)",
            )
        return out

    def reliability(self, scores: Any) -> dict[str, Any]:
        top = np.asarray(scores, dtype=float).max(axis=1)
        low, high = self.confidence_range
        outside = float(((top < low) | (top > high)).mean()) if len(top) else 0.0
        return {
            "reliable": outside <= OUTSIDE_SHARE,
            "outside_reference_share": outside,
            "reason": None
            if outside <= OUTSIDE_SHARE
            else f"{outside:.0%} of top-class scores outside the reference's central 99%",
        }


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
