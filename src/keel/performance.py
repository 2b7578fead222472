"""Realized model performance on labelled rows, each metric with its sampling interval.

``classification_metrics`` (binary or multiclass) and ``regression_metrics``
return ``Metric`` values: the point estimate (equal to scikit-learn's on the
same rows), a two-sided interval at ``confidence``, the rows it rests on and
the interval's method:

- proportions (accuracy; binary precision, recall, specificity): Wilson score;
- ROC AUC (binary): DeLong's variance (structural components), normal interval
  clipped to [0, 1];
- F1, and multiclass macro precision, recall and F1: the confusion matrix
  resampled from its multinomial (2,000 draws), percentile interval;
- PR AUC (average precision), expected calibration error, R², multiclass ROC AUC
  (one-vs-rest, macro): Poisson bootstrap of the rows (200 draws), percentile
  interval; above 20,000 rows, of a uniform subsample of 20,000, the interval
  narrowed by √(20,000 / rows) around the full-data value;
- log loss, MAE, mean error, MAPE: Student t on the per-row values;
- RMSE: the square root of the t interval of the MSE.

Averaging for multiclass: macro (every class weighs the same). Expected
calibration error: 10 equal-width bins of the score of the predicted class
(binary: of the positive class), ECE = Σ (rows in bin / rows) · |label rate −
mean score|. A metric that is undefined on the rows (ROC AUC with one class
present; precision with no positive prediction) has status
``insufficient_data`` and a reason, never NaN.

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
>>> s = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.9, 0.6])
>>> metrics = classification_metrics(y, s)
>>> round(metrics["roc_auc"].value, 4), metrics["accuracy"].value
(0.875, 0.75)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from keel.errors import DataError

BOOTSTRAP_DRAWS = 200
MULTINOMIAL_DRAWS = 2000
BOOTSTRAP_ROWS = 20_000
CALIBRATION_BINS = 10
#: Metrics where a larger value is a better model.
HIGHER_IS_BETTER = frozenset(
    {"accuracy", "precision", "recall", "f1", "specificity", "roc_auc", "pr_auc", "r2"}
)


def worse_than(name: str, metric: Any, reference: float) -> bool:
    """Whether a metric's whole interval is on the worse side of a reference value (for the
    bias, ``mean_error``: whether the interval leaves it out, either way).

    >>> worse_than("roc_auc", Metric("roc_auc", 0.7, 0.65, 0.75, 100, "delong"), 0.8)
    True
    """
    if name == "mean_error":
        return not (metric.lower <= reference <= metric.upper)
    if name in HIGHER_IS_BETTER or name == "value_per_1000":
        return metric.upper < reference
    return metric.lower > reference


@dataclass(frozen=True)
class Metric:
    name: str
    value: float | None
    lower: float | None
    upper: float | None
    rows: int
    method: str
    status: str = "ok"  # ok or insufficient_data
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification_metrics(
    y_true: Any,
    scores: Any = None,
    predicted: Any = None,
    classes: list | None = None,
    threshold: float = 0.5,
    confidence: float = 0.95,
    seed: int = 0,
    only: Any = None,
) -> dict[str, Metric]:
    """Metrics of a classifier. Binary: ``scores`` is the positive class's probability
    (the positive class is the larger of two labels); multiclass: one column per class
    in ``classes`` order. ``predicted`` defaults to the score over ``threshold``
    (binary) or the class of the largest score. ``only`` (names) skips the bootstrapped
    metrics not named there, the costly ones."""
    y_true = np.asarray(y_true)
    if scores is not None:
        _check_probabilities(np.asarray(scores, dtype=float))
    rng = np.random.default_rng(seed)
    wanted = None if only is None else set(only)
    classes = list(classes) if classes is not None else _classes(y_true, predicted)
    if len(classes) <= 2:
        return _binary(y_true, scores, predicted, classes, threshold, confidence, rng, wanted)
    return _multiclass(y_true, scores, predicted, classes, confidence, rng, wanted)


def regression_metrics(
    y_true: Any, predicted: Any, confidence: float = 0.95, seed: int = 0, only: Any = None
) -> dict[str, Metric]:
    """MAE, RMSE, MAPE, R² and mean error (prediction − truth: positive is over-predicting)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(predicted, dtype=float)
    n = len(y)
    if n < 2:
        return {
            name: _undefined(name, n, "fewer than 2 labelled rows")
            for name in ("mae", "rmse", "mape", "r2", "mean_error")
        }
    errors = p - y
    out = {
        "mae": _t_interval("mae", np.abs(errors), confidence),
        "mean_error": _t_interval("mean_error", errors, confidence),
    }
    squared = _t_interval("mse", errors**2, confidence)
    out["rmse"] = Metric(
        "rmse",
        float(np.sqrt(squared.value)),
        float(np.sqrt(max(squared.lower, 0.0))),
        float(np.sqrt(squared.upper)),
        n,
        "sqrt of t interval of MSE",
    )
    nonzero = y != 0
    if nonzero.sum() >= 2:
        mape = _t_interval("mape", np.abs(errors[nonzero] / y[nonzero]), confidence)
        out["mape"] = Metric(
            "mape",
            mape.value,
            mape.lower,
            mape.upper,
            int(nonzero.sum()),
            f"t; {int((~nonzero).sum())} rows with truth 0 left out",
        )
    else:
        out["mape"] = _undefined("mape", n, "fewer than 2 rows with a non-zero truth")
    if np.ptp(y) == 0:
        out["r2"] = _undefined("r2", n, "the truth is constant in these rows")
    elif only is None or "r2" in only:

        def r2(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
            truth, error = y[rows], errors[rows]
            total = weights.sum(axis=-1)
            mean = (weights * truth).sum(axis=-1) / total
            sst = (weights * (truth - mean[..., None]) ** 2).sum(axis=-1)
            return 1 - (weights * error**2).sum(axis=-1) / sst

        out["r2"] = _bootstrap("r2", r2, n, confidence, np.random.default_rng(seed))
    return out


def _binary(
    y_true, scores, predicted, classes, threshold, confidence, rng, wanted=None
) -> dict[str, Metric]:
    # The positive class: the larger of two labels; with one label present, 1 for 0/1 labels.
    positive = classes[-1] if len(classes) == 2 or not set(classes) <= {0, 1} else 1
    if len(classes) == 2:
        _codes(y_true, classes, "label")  # a label of another type is an error, not a negative
    y = (y_true == positive).astype(np.int8)
    n = len(y)
    if n == 0:
        return {name: _undefined(name, 0, "no labelled rows") for name in _BINARY}
    if scores is not None:
        s = np.asarray(scores, dtype=float)
        guess = (s >= threshold) if predicted is None else (np.asarray(predicted) == positive)
    elif predicted is not None:
        s, guess = None, np.asarray(predicted) == positive
    else:
        raise ValueError("give scores or predicted labels")
    guess = guess.astype(np.int8)
    tp = int(((guess == 1) & (y == 1)).sum())
    fp = int(((guess == 1) & (y == 0)).sum())
    fn = int(((guess == 0) & (y == 1)).sum())
    tn = n - tp - fp - fn
    out = {
        "accuracy": _wilson("accuracy", tp + tn, n, confidence),
        "precision": _wilson("precision", tp, tp + fp, confidence, "no positive prediction"),
        "recall": _wilson("recall", tp, tp + fn, confidence, "no positive label"),
        "specificity": _wilson("specificity", tn, tn + fp, confidence, "no negative label"),
        "f1": _f1_from_counts(np.array([tp, fp, fn, tn]), confidence, rng),
    }
    out["confusion_matrix"] = Metric(
        "confusion_matrix",
        None,
        None,
        None,
        n,
        f"[[tn, fp], [fn, tp]] = [[{tn}, {fp}], [{fn}, {tp}]]",
    )
    if s is None:
        return out
    if y.min() == y.max():
        reason = f"only one class ({y_true[0]!r}) in these rows"
        for name in ("roc_auc", "pr_auc"):
            out[name] = _undefined(name, n, reason)
    else:
        out["roc_auc"] = _delong(y, s, confidence)
    if y.min() != y.max() and (wanted is None or "pr_auc" in wanted):
        out["pr_auc"] = _bootstrap(
            "pr_auc", lambda w, r: _average_precision(y[r], s[r], w), n, confidence, rng
        )
    out["log_loss"] = _t_interval("log_loss", _log_losses(y, s), confidence)
    if wanted is None or "ece" in wanted:
        out["ece"] = _bootstrap(
            "ece", lambda w, r: _calibration_error(y[r], s[r], w), n, confidence, rng
        )
    return out


_BINARY = (
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "ece",
)


def _multiclass(
    y_true, scores, predicted, classes, confidence, rng, wanted=None
) -> dict[str, Metric]:
    n, k = len(y_true), len(classes)
    truth = _codes(y_true, classes, "label")
    if scores is not None:
        s = np.asarray(scores, dtype=float).reshape(n, k)
        guess = s.argmax(axis=1) if predicted is None else _codes(predicted, classes, "prediction")
    else:
        s, guess = None, _codes(predicted, classes, "prediction")
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (truth, guess), 1)
    out = {
        "accuracy": _wilson("accuracy", int(np.trace(counts)), n, confidence),
        "confusion_matrix": Metric(
            "confusion_matrix",
            None,
            None,
            None,
            n,
            f"rows truth, columns predicted: {counts.tolist()} (classes {classes})",
        ),
    }
    draws = rng.multinomial(n, counts.ravel() / max(n, 1), size=MULTINOMIAL_DRAWS).reshape(-1, k, k)
    for name, fn in (("precision", _macro_precision), ("recall", _macro_recall), ("f1", _macro_f1)):
        value = fn(counts[None])[0]
        lower, upper = _percentiles(fn(draws), confidence)
        out[name] = Metric(
            name, float(value), lower, upper, n, "macro; multinomial bootstrap of the matrix"
        )
    if s is not None:
        present = np.unique(truth)
        if len(present) < 2:
            out["roc_auc"] = _undefined("roc_auc", n, "only one class in these rows")
        elif wanted is None or "roc_auc" in wanted:
            onehot = np.eye(k)[truth]

            def auc(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
                return np.mean(
                    [_weighted_auc(onehot[rows, c], s[rows, c], weights) for c in present],
                    axis=0,
                )

            out["roc_auc"] = _bootstrap("roc_auc", auc, n, confidence, rng, "ovr macro; ")
        probabilities = np.clip(s[np.arange(n), truth], 1e-15, 1.0)
        out["log_loss"] = _t_interval("log_loss", -np.log(probabilities), confidence)
    return out


def _macro_precision(m: np.ndarray) -> np.ndarray:
    return np.nanmean(_ratio(np.diagonal(m, axis1=1, axis2=2), m.sum(axis=1)), axis=1)


def _macro_recall(m: np.ndarray) -> np.ndarray:
    return np.nanmean(_ratio(np.diagonal(m, axis1=1, axis2=2), m.sum(axis=2)), axis=1)


def _macro_f1(m: np.ndarray) -> np.ndarray:
    diagonal = np.diagonal(m, axis1=1, axis2=2)
    return np.mean(_ratio(2 * diagonal, m.sum(axis=1) + m.sum(axis=2), zero=0.0), axis=1)


def _ratio(top, bottom, zero=np.nan):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.maximum(bottom, 1), zero)


def _check_probabilities(scores: np.ndarray) -> None:
    """Scores must be probabilities: in [0, 1], and per-class scores summing to 1."""
    outside = int((~np.isfinite(scores) | (scores < 0) | (scores > 1)).sum())
    if outside:
        raise DataError(
            f"{outside:,} scores are not probabilities (outside [0, 1] or not finite): log the "
            "predicted probability, or apply a sigmoid (softmax for classes) to margins or logits"
        )
    if scores.ndim == 2 and len(scores):
        off = int((np.abs(scores.sum(axis=1) - 1) > 1e-3).sum())
        if off:
            raise DataError(
                f"{off:,} rows' per-class scores do not sum to 1 (within 0.001): log the "
                "softmax of the model's outputs"
            )


def _codes(values: Any, classes: list, what: str) -> np.ndarray:
    """Each value's position in ``classes``; a value that is not a class is an error."""
    import pandas as pd

    values = np.asarray(values)
    codes = pd.Index(classes).get_indexer(values)  # hashing: any mix of types
    if (codes < 0).any():
        strange = pd.unique(values[codes < 0])[:5].tolist()
        raise DataError(
            f"{int((codes < 0).sum()):,} rows have a {what} the model never produced: "
            f"{strange} (classes: {classes})"
        )
    return codes.astype(np.int64)


def _classes(y_true, predicted) -> list:
    values = np.unique(y_true) if predicted is None else np.union1d(y_true, predicted)
    return values.tolist()


def _wilson(name, successes, trials, confidence, undefined="no rows") -> Metric:
    if trials == 0:
        return _undefined(name, 0, undefined)
    z = stats.norm.ppf(0.5 + confidence / 2)
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials**2)) / (1 + z * z / trials)
    )
    return Metric(name, float(share), float(centre - half), float(centre + half), trials, "wilson")


def _t_interval(name, values, confidence) -> Metric:
    n = len(values)
    mean = float(np.mean(values))
    spread = float(np.std(values, ddof=1)) / np.sqrt(n) if n > 1 else 0.0
    half = stats.t.ppf(0.5 + confidence / 2, max(n - 1, 1)) * spread
    return Metric(name, mean, mean - half, mean + half, n, "t")


def _f1_from_counts(counts, confidence, rng) -> Metric:
    tp, fp, fn, _ = counts
    n = int(counts.sum())
    if tp + fp + fn == 0:
        return _undefined("f1", n, "no positive label and no positive prediction")

    def f1(c):
        return 2 * c[..., 0] / (2 * c[..., 0] + c[..., 1] + c[..., 2])

    draws = rng.multinomial(n, counts / n, size=MULTINOMIAL_DRAWS)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower, upper = _percentiles(f1(draws), confidence)
    return Metric("f1", float(f1(counts)), lower, upper, n, "multinomial bootstrap")


def _delong(y, s, confidence) -> Metric:
    """ROC AUC with DeLong's variance: the mean and variance of the structural components."""
    positives, negatives = s[y == 1], s[y == 0]
    m, n = len(positives), len(negatives)
    ranks_all = stats.rankdata(np.concatenate([positives, negatives]))
    v10 = (ranks_all[:m] - stats.rankdata(positives)) / n  # per positive: share of negatives below
    v01 = 1 - (ranks_all[m:] - stats.rankdata(negatives)) / m  # per negative: share above it
    auc = float(v10.mean())
    variance = (np.var(v10, ddof=1) / m if m > 1 else 0.0) + (
        np.var(v01, ddof=1) / n if n > 1 else 0.0
    )
    half = stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(variance)
    return Metric(
        "roc_auc", auc, float(max(auc - half, 0.0)), float(min(auc + half, 1.0)), m + n, "delong"
    )


def _average_precision(y, s, weights) -> np.ndarray:
    """Average precision (scikit-learn's step definition) for each row of ``weights``."""
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    w = weights[..., order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each distinct score
    true_positives = np.cumsum(w * y, axis=-1)[..., last]
    predicted = np.cumsum(w, axis=-1)[..., last]
    positives = true_positives[..., -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(positives > 0, true_positives / positives, 0.0)
    steps = np.diff(recall, axis=-1, prepend=0.0)
    return (steps * precision).sum(axis=-1)


def _weighted_auc(y, s, weights) -> np.ndarray:
    """ROC AUC (ties count half) for each row of ``weights``."""
    order = np.argsort(s, kind="mergesort")
    y, s = y[order], s[order]
    w = weights[..., order]
    first = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    negatives = w * (1 - y)
    below = np.cumsum(negatives, axis=-1) - negatives  # negatives strictly before, in sort order
    group = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(s)]))
    starts = np.take(below, first, axis=-1)[..., group]  # negatives below the tie group
    tied = np.add.reduceat(negatives, first, axis=-1)[..., group]
    positives = w * y
    total = positives.sum(axis=-1) * negatives.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (positives * (starts + tied / 2)).sum(axis=-1) / total


def _calibration_error(y, s, weights) -> np.ndarray:
    bins = np.minimum((s * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    total = weights.sum(axis=-1)
    error = np.zeros(weights.shape[:-1])
    for b in range(CALIBRATION_BINS):  # ten bins, each a vectorized sum over rows
        inside = bins == b
        if not inside.any():
            continue
        gap = (weights[..., inside] * (y[inside] - s[inside])).sum(axis=-1)
        error = error + np.abs(gap)
    return error / total


def _log_losses(y, s) -> np.ndarray:
    p = np.clip(s, np.finfo(float).eps, 1 - np.finfo(float).eps)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def _bootstrap(name, statistic, n, confidence, rng, method="") -> Metric:
    """``statistic(weights, rows)`` on all rows, and a percentile interval from Poisson(1)
    weights on (a subsample of) the rows."""
    everything = np.arange(n)
    value = float(np.asarray(statistic(np.ones(n), everything)).item())
    rows = everything
    if n > BOOTSTRAP_ROWS:
        rows = np.sort(rng.choice(n, BOOTSTRAP_ROWS, replace=False))
    weights = rng.poisson(1.0, size=(BOOTSTRAP_DRAWS, len(rows))).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = np.asarray(statistic(weights, rows), dtype=float)
    lower, upper = _percentiles(draws, confidence)
    if len(rows) < n and lower is not None:
        shrink = np.sqrt(len(rows) / n)
        lower, upper = value - (value - lower) * shrink, value + (upper - value) * shrink
    return Metric(name, value, lower, upper, n, f"{method}poisson bootstrap")


def _percentiles(draws, confidence) -> tuple[float | None, float | None]:
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def _undefined(name: str, rows: int, reason: str) -> Metric:
    return Metric(name, None, None, None, rows, "none", "insufficient_data", reason)


def holdout_metrics(
    data: Any,
    task: str,
    target: str,
    score: str | None = None,
    prediction: str | None = None,
    classes: list | None = None,
) -> dict[str, float]:
    """A baseline's holdout metrics from rows the model did not learn from (any input
    ``keel.data.open_source`` takes): each defined metric's value, its interval as
    ``<name>_lower`` / ``<name>_upper``, and ``holdout_rows``. Multiclass scores are the
    columns ``<score>_<class>``. The keys are what monitors judge windows against.

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"y": [0, 0, 1, 1, 1, 0], "p": [0.2, 0.6, 0.7, 0.9, 0.4, 0.1]})
    >>> found = holdout_metrics(rows, "binary", "y", score="p")
    >>> found["accuracy"], found["holdout_rows"]
    (0.6666666666666666, 6.0)
    """
    from keel.data import open_source
    from keel.errors import SchemaError

    table = open_source(data).read_all()
    wanted = [
        target,
        *([score] if score and task != "multiclass" else []),
        *([prediction] if prediction else []),
    ]
    if task == "multiclass":
        if not score or not classes:
            raise SchemaError("multiclass holdout metrics need --score PREFIX and the classes")
        wanted += [f"{score}_{c}" for c in classes]
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise SchemaError(
            f"the holdout has no column(s) {', '.join(missing)} "
            f"(it has: {', '.join(table.column_names)})"
        )
    truth = table.column(target).to_numpy(zero_copy_only=False)
    predicted = table.column(prediction).to_numpy(zero_copy_only=False) if prediction else None
    if task == "regression":
        if predicted is None:
            raise SchemaError("regression holdout metrics need the prediction column")
        found = regression_metrics(truth, predicted)
    else:
        if task == "multiclass":
            scores = np.column_stack(
                [table.column(f"{score}_{c}").to_numpy(zero_copy_only=False) for c in classes]
            ).astype(float)
        else:
            scores = (
                table.column(score).to_numpy(zero_copy_only=False).astype(float) if score else None
            )
        found = classification_metrics(truth, scores, predicted, classes=classes)
    out: dict[str, float] = {"holdout_rows": float(table.num_rows)}
    for name, metric in found.items():
        if metric.value is None or metric.status != "ok":
            continue
        out[name] = float(metric.value)
        if metric.lower is not None and metric.upper is not None:
            out[f"{name}_lower"], out[f"{name}_upper"] = float(metric.lower), float(metric.upper)
    return out
