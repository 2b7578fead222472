"""Performance checks: a window's labelled predictions against the baseline's holdout metrics.

``performance_results`` turns one window of predictions joined to their
labels (``keel.store.queries.read_labelled``) into Results:

- ``check: labels``: ``labelled_share`` (labelled rows / rows), the label
  latency's median and 90th percentile (``label_latency_p50_seconds``,
  ``..._p90_seconds``: label time − prediction time), and
  ``labelled_subset_shift`` (the KS distance between the labelled rows' scores
  and the unlabelled rows': early labels are often a biased subset, e.g.
  confirmed frauds first), which warns when its p-value is below 0.01;
- ``check: performance``: each realized metric (``keel.performance``) with its
  interval, the labelled rows it rests on, and ``provisional`` while the
  labelled share is below ``min_labelled_share``.

The decision. A metric alerts when its whole interval lies on the worse side
of the baseline's holdout value (its ``threshold``): the window is worse than
the holdout beyond sampling noise. The interval's level is set so that a
window whose true performance equals the holdout's alerts on any of the ``k``
metrics checked with probability at most the monitor's false alarm rate
(one-sided, Bonferroni: each at rate / k). A provisional metric never
alerts (``warn`` at most): early labels are too few, and often biased.
Without a holdout value the metric is reported, not judged.

Label maturity: where the domain says an unlabelled prediction is a negative
after some time (no chargeback after 60 days: not fraud), rows older than
``label_maturity`` without a label take ``unlabelled_as``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import DataError
from keel.performance import classification_metrics, regression_metrics, worse_than
from keel.result import Result

DEFAULT_METRICS = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"),
    "multiclass": ("accuracy", "precision", "recall", "f1", "log_loss"),
    "regression": ("mae", "rmse", "r2", "mean_error"),
}
SUBSET_SHIFT_P = 0.01


@dataclass
class PerformanceSpec:
    task: str  # binary, multiclass, regression
    label: str = "label"
    score: str | None = "score"
    prediction: str | None = "prediction"
    classes: list | None = None
    metrics: tuple[str, ...] | None = None
    min_labelled_share: float = 0.5
    label_maturity_seconds: float | None = None
    unlabelled_as: Any = 0
    value_matrix: dict[str, float] | None = None
    estimate: bool = True
    decision_threshold: float | None = None  # for windows without a logged prediction
    unreliable_share: float = 0.10  # estimates unreliable above this share of rows outside
    reliability: str = "nearest"  # or domain_classifier: how a row is outside the holdout

    @property
    def checked(self) -> tuple[str, ...]:
        return tuple(self.metrics or DEFAULT_METRICS[self.task])


def performance_results(
    window: pa.Table,
    spec: PerformanceSpec,
    holdout: dict[str, float],
    false_alarm_rate: float,
    now: datetime,
    seed: int = 0,
    label_reference: dict[str, Any] | None = None,
) -> list[Result]:
    """The labels and performance Results of one window (see the module docstring).

    ``seed`` drives the intervals' resampling (a monitor derives it from the baseline
    and the window, so the same window gets the same interval in every run).
    ``label_reference`` is the holdout's label distribution (``HoldoutFit.labels``):
    with it, the window's labels are checked for label shift (``keel.checks.labels``)."""
    rows = window.num_rows
    labels = _matured(window, spec, now)
    labelled = pc.is_valid(labels)
    count = int(pc.sum(labelled).as_py() or 0)
    share = count / rows if rows else 0.0
    provisional = share < spec.min_labelled_share
    results = [
        Result(
            "labels",
            None,
            "labelled_share",
            share,
            spec.min_labelled_share,
            "ok" if not provisional else "warn",
            details={"labelled": count, "rows": rows},
        ),
        *_latency(window, labelled),
    ]
    shift = _subset_shift(window, spec, labelled)
    if shift is not None:
        results.append(shift)
    if count == 0:
        return results + unjudged(
            "performance",
            spec.checked,
            holdout,
            "insufficient_data",
            reason="no labelled rows yet",
            provisional=True,
        )
    chosen = window.filter(labelled)
    truth = labels.filter(labelled).to_numpy(zero_copy_only=False)
    if label_reference is not None:
        from keel.checks.labels import label_shift_result

        decided = not provisional and _all_matured(window, spec, now)
        shift = label_shift_result(
            truth, label_reference, spec.task, false_alarm_rate, provisional=not decided
        )
        results += [shift] if shift is not None else []
    confidence = 1 - 2 * false_alarm_rate / max(len(spec.checked), 1)
    try:
        metrics = _metrics(chosen, truth, spec, confidence, seed)
    except (DataError, ValueError) as error:  # bad labels or scores: said, never a crash
        return results + unjudged(
            "performance",
            spec.checked,
            holdout,
            "error",
            reason=str(error),
            labelled_share=share,
        )
    results += [
        judged(
            "performance",
            metrics[name],
            holdout.get(name),
            confidence,
            worse="warn" if provisional else "alert",  # early labels never alert
            reference_interval=holdout_interval(holdout, name),
            labelled_rows=metrics[name].rows,
            labelled_share=share,
            provisional=provisional,
        )
        for name in spec.checked
        if name in metrics
    ]
    if spec.value_matrix and spec.task == "binary":
        results += _value(chosen, truth, spec, holdout, confidence, provisional)
    return results


def judged(
    check: str,
    metric: Any,
    reference: float | None,
    confidence: float,
    worse: str = "alert",
    **details: Any,
) -> Result:
    """A metric with its interval as a Result, judged against a reference value: status
    ``worse`` when the whole interval is on the worse side of it (``worse_than``).

    ``reference_interval`` is the reference's own 95% interval (a holdout is a sample
    too): then the window is worse when the one-sided interval of (window − holdout),
    from both errors, lies on the worse side of zero at the same level
    (``worse_than_uncertain``)."""
    status = metric.status
    interval = details.pop("reference_interval", None)
    if status == "ok" and None not in (reference, metric.value, metric.lower, metric.upper):
        if interval is not None and None not in interval:
            found = worse_than_uncertain(metric, reference, interval, confidence)
        else:
            found = worse_than(metric.name, metric, reference)
        status = worse if found else "ok"
        if interval is not None:
            details["reference_lower"], details["reference_upper"] = interval
    return Result(
        check,
        None,
        metric.name,
        metric.value,
        reference,
        status,
        details={
            "lower": metric.lower,
            "upper": metric.upper,
            "confidence": confidence,
            "method": metric.method,
            **details,
            **({"reason": metric.reason} if metric.reason else {}),
        },
    )


def worse_than_uncertain(
    metric: Any, reference: float, interval: tuple[float, float], confidence: float
) -> bool:
    """Whether (window − reference) is worse than zero beyond both sampling errors.

    Each side's standard error is read off its interval (the window's at ``confidence``,
    the reference's at 95%); the difference is judged at the window interval's one-sided
    level, with errors combined in quadrature.

    >>> from keel.performance import Metric
    >>> window = Metric("roc_auc", 0.70, 0.66, 0.74, 2000, "delong")
    >>> worse_than_uncertain(window, 0.75, (0.70, 0.80), 0.95)  # the holdout is too small
    False
    >>> worse_than_uncertain(window, 0.75, (0.745, 0.755), 0.95)
    True
    """
    from scipy.stats import norm

    from keel.performance import HIGHER_IS_BETTER

    z = float(norm.ppf((1 + confidence) / 2))
    window_se = (metric.upper - metric.lower) / (2 * z)
    reference_se = (interval[1] - interval[0]) / (2 * float(norm.ppf(0.975)))
    margin = z * float(np.hypot(window_se, reference_se))
    difference = metric.value - reference
    if metric.name == "mean_error":
        return abs(difference) > margin
    if metric.name in HIGHER_IS_BETTER or metric.name == "value_per_1000":
        return difference + margin < 0
    return difference - margin > 0


def holdout_interval(holdout: dict[str, float], name: str) -> tuple[float, float] | None:
    """The holdout's recorded interval for ``name`` (``keel baseline create --holdout``)."""
    lower, upper = holdout.get(f"{name}_lower"), holdout.get(f"{name}_upper")
    return None if lower is None or upper is None else (lower, upper)


def unjudged(
    check: str, names: Any, holdout: dict[str, float], status: str, **details: Any
) -> list[Result]:
    """The same verdict for every metric, when none can be computed (no labels, bad data)."""
    return [
        Result(check, None, name, None, holdout.get(name), status, details=dict(details))
        for name in names
    ]


def _value(chosen, truth, spec, holdout, confidence, provisional) -> list[Result]:
    from keel.checks.kpis import value_results

    if spec.prediction and spec.prediction in chosen.column_names:
        predicted = chosen.column(spec.prediction).to_numpy(zero_copy_only=False)
    elif spec.score and spec.score in chosen.column_names:
        predicted = (chosen.column(spec.score).to_numpy(zero_copy_only=False) >= 0.5).astype(int)
    else:
        return []
    classes = spec.classes or sorted(set(np.unique(truth).tolist()) | {0, 1})
    positive = classes[-1]
    return value_results(
        truth,
        predicted,
        positive,
        spec.value_matrix,
        holdout.get("value_per_1000"),
        confidence,
        provisional,
    )


def _metrics(
    chosen: pa.Table, truth: np.ndarray, spec: PerformanceSpec, confidence: float, seed: int = 0
):
    if spec.task == "regression":
        predicted = chosen.column(spec.prediction).to_numpy(zero_copy_only=False)
        return regression_metrics(
            truth, predicted, confidence=confidence, seed=seed, only=spec.checked
        )
    scores = None
    if spec.task == "binary" and spec.score and spec.score in chosen.column_names:
        scores = chosen.column(spec.score).to_numpy(zero_copy_only=False).astype(float)
    elif spec.task == "multiclass" and spec.classes:
        names = [f"{spec.score}_{c}" for c in spec.classes]
        if all(n in chosen.column_names for n in names):
            scores = np.column_stack(
                [chosen.column(n).to_numpy(zero_copy_only=False) for n in names]
            )
    predicted = (
        chosen.column(spec.prediction).to_numpy(zero_copy_only=False)
        if spec.prediction and spec.prediction in chosen.column_names
        else None
    )
    return classification_metrics(
        truth,
        scores,
        predicted,
        classes=spec.classes,
        confidence=confidence,
        seed=seed,
        only=spec.checked,
    )


def _matured(window: pa.Table, spec: PerformanceSpec, now: datetime) -> pa.Array:
    """The window's labels; with a maturity, old unlabelled rows take ``unlabelled_as``."""
    fill = pa.scalar(spec.unlabelled_as)
    if spec.label in window.column_names:
        labels = window.column(spec.label).combine_chunks()
        if labels.type == pa.null():
            labels = pa.nulls(window.num_rows, fill.type)
    else:  # no label has arrived for any row yet
        labels = pa.nulls(window.num_rows, fill.type)
    if spec.label_maturity_seconds is None:
        return labels
    times = pc.cast(window.column("event_time"), pa.timestamp("us", tz="UTC")).combine_chunks()
    cutoff = pa.scalar(
        datetime.fromtimestamp(now.timestamp() - spec.label_maturity_seconds, tz=UTC),
        pa.timestamp("us", tz="UTC"),
    )
    mature = pc.and_(pc.less(times, cutoff), pc.is_null(labels))
    return pc.if_else(mature, pc.cast(fill, labels.type), labels)


def _all_matured(window: pa.Table, spec: PerformanceSpec, now: datetime) -> bool:
    """Every row past ``label_maturity`` (always, without one): its labels are final."""
    if spec.label_maturity_seconds is None or window.num_rows == 0:
        return True
    newest = pc.max(pc.cast(window.column("event_time"), pa.timestamp("us", tz="UTC"))).as_py()
    return newest is None or newest.timestamp() <= now.timestamp() - spec.label_maturity_seconds


def _latency(window: pa.Table, labelled: pa.Array) -> list[Result]:
    if "label_time" not in window.column_names:
        return []
    made = pc.cast(window.column("event_time"), pa.timestamp("us", tz="UTC"), safe=False)
    came = pc.cast(window.column("label_time"), pa.timestamp("us", tz="UTC"), safe=False)
    seconds = pc.divide(
        pc.cast(pc.subtract(pc.cast(came, pa.int64()), pc.cast(made, pa.int64())), pa.float64()),
        1e6,
    )
    values = seconds.to_numpy(zero_copy_only=False)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return []
    return [
        Result(
            "labels",
            None,
            f"label_latency_p{q}_seconds",
            float(np.percentile(values, q)),
            None,
            "ok",
            details={"labelled": int(len(values))},
        )
        for q in (50, 90)
    ]


def _subset_shift(window: pa.Table, spec: PerformanceSpec, labelled: pa.Array) -> Result | None:
    """Whether the labelled rows' scores look like the window's (KS): a biased subset warns."""
    column = spec.score if spec.score in window.column_names else spec.prediction
    if column is None or column not in window.column_names:
        return None
    values = window.column(column)
    if not pa.types.is_floating(values.type) and not pa.types.is_integer(values.type):
        return None
    everything = values.to_numpy(zero_copy_only=False).astype(float)
    mask = labelled.to_numpy(zero_copy_only=False).astype(bool)
    if mask.sum() < 30 or mask.all():
        return None
    from scipy.stats import ks_2samp

    test = ks_2samp(everything[mask], everything[~mask])
    biased = test.pvalue < SUBSET_SHIFT_P
    return Result(
        "labels",
        None,
        "labelled_subset_shift",
        float(test.statistic),
        None,
        "warn" if biased else "ok",
        details={
            "p_value": float(test.pvalue),
            "column": column,
            "note": "the labelled rows' scores differ from the unlabelled rows': metrics on them "
            "may not hold for the window"
            if biased
            else "",
        },
    )
