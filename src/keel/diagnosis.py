"""A window's first answer to "what broke?": one verdict from its Results.

The rule, in order (the first that holds wins; docs/diagnosis.md explains why):

0. **training–serving skew**: a feature served unlike its offline truth (check ``skew``):
   first, unless a pipeline fault lies outside the skewed features (then the fault,
   with the skew named after it). A skewed feature drifts too: skew wins over drift.
1. **pipeline fault**: a quality check failed (missing values, non-finite values,
   a unit change, volume, freshness), or a feature is missing or of another type.
   Fix the pipeline before reading any drift: broken data drifts too.
2. **data drift**: features drifted (univariate, new or vanished categories, or
   the multivariate checks), ranked by drift × importance: drift is the
   statistic over its threshold, importance the model's (given by the user) or a
   surrogate's (``surrogate_importance``).
3. **prediction drift without feature drift**: the outputs moved and the inputs
   did not: a changed model, or an input computed differently upstream in a way
   its distribution does not show.
4. **concept drift**: realized performance (or a KPI) fell beyond its uncertainty
   while the inputs are stable (checks ``performance`` and ``kpi``), or moved only in
   features of little importance ("concept drift or drift outside the model's view":
   a fall is never outranked by drift the model hardly feels). This rule is checked
   before data drift.
5. **unexplained alert**: some check alerted and no rule above names a cause. A
   window with an alerting check is never healthy.
6. **healthy**: nothing alerted; its warnings are counted in the summary.

>>> from keel.result import Result, readable
>>> moved = Result(check="feature_drift", column="income", metric="wasserstein", value=0.4,
...                threshold=0.1, status="alert")
>>> diagnose([moved]).verdict
'data drift'
>>> diagnose([]).verdict
'healthy'
>>> skewed = Result(check="skew", column="clicks_7d", metric="mismatch_share", value=0.3,
...                 threshold=0.001, status="alert", details={"kind": "truncated window"})
>>> diagnose([moved, skewed]).summary
'training–serving skew in clicks_7d (truncated window); drift also in income'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from keel.result import Result, readable
from keel.threads import with_limited_threads

VERDICTS = (
    "healthy",
    "pipeline fault",
    "data drift",
    "prediction drift without feature drift",
    "concept drift",
    "unexplained alert",
    "label shift",
    "training–serving skew",
)
SKEW = "training–serving skew"
MIN_IMPORTANCE = 0.02
PIPELINE_METRICS = frozenset(
    {"missing_share", "nonfinite_count", "unit_change", "volume", "freshness_lag_seconds"}
)
INPUT_METRICS = frozenset({"unseen_share", "vanished_categories", "out_of_range_share"})
PERFORMANCE_CHECKS = frozenset({"performance", "kpi"})


@dataclass
class Diagnosis:
    verdict: str
    summary: str
    causes: list[dict[str, Any]] = field(default_factory=list)

    def to_result(self, template: Result | None = None) -> Result:
        """The verdict as a Result (check ``diagnosis``, metric ``verdict``; value: its index
        in ``VERDICTS``), so it is stored, revised and sent like every other Result."""
        row = Result(
            check="diagnosis",
            column=None,
            metric="verdict",
            value=float(VERDICTS.index(self.verdict)),
            threshold=None,
            status="ok" if self.verdict == "healthy" else "alert",
            details={"verdict": self.verdict, "summary": self.summary, "causes": self.causes},
        )
        if template is None:
            return row
        return replace(
            row,
            monitor=template.monitor,
            model=template.model,
            model_version=template.model_version,
            segment=template.segment,
            window_start=template.window_start,
            window_end=template.window_end,
        )


def diagnose(
    results: Iterable[Result],
    importance: Mapping[str, float] | None = None,
    min_importance: float = MIN_IMPORTANCE,
) -> Diagnosis:
    """The verdict for one window's Results (see the module docstring for the rule).

    ``importance`` (feature → weight, normalised here) ranks the drift; without it, each
    feature drift Result's ``details.importance`` does. A realized performance fall beside
    drift only in features under ``min_importance`` is not explained by that drift.

    >>> fell = Result("performance", None, "roc_auc", 0.52, 0.7, "alert")
    >>> idle = Result("feature_drift", "zip", "psi", 0.4, 0.1, "alert")
    >>> diagnosis = diagnose([fell, idle], {"zip": 0.001, "income": 0.999})
    >>> diagnosis.verdict, diagnosis.summary.split(";")[0]
    ('concept drift', "concept drift or drift outside the model's view: roc_auc 0.52 vs 0.7 (-26%)")
    """
    results = list(results)
    diagnosis = _with_skew(_diagnosed(results, importance, min_importance), results)
    return with_label_shift(diagnosis, results)


def _diagnosed(
    results: list[Result], importance: Mapping[str, float] | None, min_importance: float
) -> Diagnosis:
    results = [r for r in results if r.check not in ("diagnosis", "window")]
    alerting = [r for r in results if r.status == "alert" and r.metric != "label_shift"]
    broken = [r for r in alerting if r.check == "quality" and r.metric in PIPELINE_METRICS]
    broken += [
        r for r in results if r.check == "feature_drift" and r.status == "error"
    ]  # a feature missing, or of another type
    skewed = [r for r in alerting if r.check == "skew"]
    if skewed:
        skew = _skew(skewed, broken, alerting)
        if skew is not None:
            return skew
    if broken:
        return Diagnosis(
            "pipeline fault",
            "pipeline fault: " + "; ".join(_describe_fault(r) for r in broken),
            [_cause(r) for r in broken],
        )
    # The model's outputs (and the target) are never inputs, whatever a check called them.
    not_inputs = {
        r.column for r in results if r.check in ("prediction_drift", "target_drift") and r.column
    }
    shares = _shares(importance, results)
    inputs = [
        _without_outputs(r, not_inputs)
        for r in alerting
        if (
            r.check in ("feature_drift", "multivariate")
            or (r.check == "quality" and r.metric in INPUT_METRICS)
        )
        and r.column not in not_inputs
    ]
    held = [
        r for r in results if r.status == "warn" and (r.details or {}).get("unimportant")
    ]  # drift in features of little importance, held back from paging
    outputs = [r for r in alerting if r.check == "prediction_drift"]
    performance = [r for r in alerting if r.check in PERFORMANCE_CHECKS]
    important = [r for r in inputs if not _unimportant(r, shares, min_importance)]
    if performance and not important and (inputs or held):
        fallen = ", ".join(_fall(r) for r in performance)
        idle = _rank([*inputs, *held], shares)
        summary = (
            f"concept drift or drift outside the model's view: {fallen}; drift only in "
            f"features of little importance: {_names(idle)}"
        )
        return Diagnosis("concept drift", summary, [_cause(r) for r in performance] + idle)
    if inputs:
        ranked = _rank(inputs, shares)
        named = _names(ranked)
        joint = [r for r in inputs if r.check == "multivariate"]
        summary = f"data drift: {named}" if named else "data drift"
        if joint and not named:
            involved = next((r.details.get("top_columns") for r in joint if r.details), None)
            summary += " in the joint distribution (no single feature moved" + (
                f"; most involved: {', '.join(involved[:3])})" if involved else ")"
            )
        if outputs:
            summary += f"; model outputs moved ({', '.join(r.column for r in outputs)})"
        return with_estimates(
            Diagnosis("data drift", summary, ranked + [_cause(r) for r in outputs]), alerting
        )
    if outputs:
        return Diagnosis(
            "prediction drift without feature drift",
            f"model outputs moved ({', '.join(r.column for r in outputs)}) with every input "
            "stable: a changed model, or an input computed differently upstream",
            [_cause(r) for r in outputs],
        )
    if performance:
        fallen = ", ".join(_fall(r) for r in performance)
        return Diagnosis(
            "concept drift",
            f"concept drift: {fallen}, with the inputs stable",
            [_cause(r) for r in performance],
        )
    if alerting:  # a window with any alerting check is never healthy
        return Diagnosis(
            "unexplained alert",
            "unexplained alert: "
            + "; ".join(_describe_other(r) for r in alerting)
            + " (no rule names a cause)",
            [_cause(r) for r in alerting],
        )
    warned = sorted({r.column or r.metric for r in results if r.status == "warn"})
    if warned:
        return Diagnosis(
            "healthy",
            f"healthy: no check alerted; {len(warned)} warning{'s' if len(warned) > 1 else ''} "
            f"({_listed(warned)})",
            [],
        )
    return Diagnosis("healthy", "healthy: no check alerted", [])


def _skew(skewed: list[Result], broken: list[Result], alerting: list[Result]) -> Diagnosis | None:
    """Training–serving skew: what was served differs from what training computes for the
    same rows. It wins over a pipeline fault when every fault is in a skewed feature (the
    serving path broke, not the data both sides read), and over drift and performance
    always (a skewed feature drifts too; skew explains a fall). A fault elsewhere (volume,
    freshness, another column) stays the verdict, with the skew said after it."""
    features = _skewed_features(skewed)
    said = "training–serving skew in " + _listed(
        [f"{name} ({kind})" if kind else name for name, kind in features.items()]
    )
    causes = [_cause(r) | {"kind": (r.details or {}).get("kind")} for r in skewed]
    if broken and not all(r.column in features for r in broken):
        return None
    drifted = sorted(
        {
            r.column
            for r in alerting
            if r.check == "feature_drift" and r.column and r.column not in features
        }
    )
    outputs = sorted({r.column for r in alerting if r.check == "prediction_drift" and r.column})
    summary = said + (f"; drift also in {_listed(drifted)}" if drifted else "")
    summary += f"; model outputs moved ({', '.join(outputs)})" if outputs else ""
    return Diagnosis(SKEW, summary, causes)


def _skewed_features(skewed: list[Result]) -> dict[str, str | None]:
    """Each skewed feature (first seen first) and the kind its Results name."""
    features: dict[str, str | None] = {}
    for result in skewed:
        kind = (result.details or {}).get("kind")
        if result.column not in features or features[result.column] is None:
            features[result.column or "?"] = kind
    return features


def _with_skew(diagnosis: Diagnosis, results: Iterable[Result]) -> Diagnosis:
    """A verdict that is not skew names the skew after its own summary."""
    skewed = [r for r in results if r.check == "skew" and r.status == "alert"]
    if not skewed or diagnosis.verdict == SKEW:
        return diagnosis
    names = _listed(list(_skewed_features(skewed)))
    return replace(
        diagnosis,
        summary=f"{diagnosis.summary}; training–serving skew in {names}",
        causes=[*diagnosis.causes, *[_cause(r) for r in skewed]],
    )


MAX_NAMED = 5


def _names(ranked: list[dict[str, Any]]) -> str:
    """Every column cause, the first five in full: 'a (3.1× threshold), b (…), and 3 more'."""
    columns = [c for c in ranked if c["column"]]
    parts = [
        f"{c['column']} ({_vector_test(c)}"
        if c["metric"] == VECTOR_TEST
        else f"{c['column']} ({c['drift']:.1f}× threshold"
        + (f", importance {c['importance']:.2f})" if c["importance"] is not None else ")")
        if c["check"] != "quality"
        else f"{c['column']} ({_readable_metric(c)}"
        + (f", importance {c['importance']:.2f})" if c["importance"] is not None else ")")
        for c in columns[:MAX_NAMED]
    ]
    text = ", ".join(parts)
    if len(columns) > MAX_NAMED:
        rest = [c["column"] for c in columns[MAX_NAMED:]]
        text += f", and {len(rest)} more ({', '.join(rest)})"
    return text


#: The verdict of an embedding, text or image column (``keel.checks.drift``): a p-value.
VECTOR_TEST = "mmd_p_value"


def _vector_test(cause: dict[str, Any]) -> str:
    """'MMD p = 0.002': how an embedding, text or image column's vectors moved."""
    value = _number(cause.get("value"))
    said = f"MMD p = {value:.2g}" if value is not None else "MMD"
    return said + (f", importance {cause['importance']:.2f})" if cause["importance"] else ")")


def _readable_metric(cause: dict[str, Any]) -> str:
    value = cause.get("value")
    share = (
        f" {value:.0%}" if isinstance(value, float) and cause["metric"].endswith("share") else ""
    )
    return cause["metric"].replace("_", " ") + share


def _listed(names: list[str], limit: int = MAX_NAMED) -> str:
    head = ", ".join(names[:limit])
    return head + (f", and {len(names) - limit} more" if len(names) > limit else "")


def _shares(
    importance: Mapping[str, float] | None, results: list[Result]
) -> dict[str, float] | None:
    """Importance as shares summing to 1; else what the drift Results carry."""
    if importance:
        weights = {k: max(float(v), 0.0) for k, v in importance.items()}
        total = sum(weights.values())
        return {k: v / total for k, v in weights.items()} if total > 0 else None
    carried = {
        r.column: float(r.details["importance"])
        for r in results
        if r.check == "feature_drift" and r.column and "importance" in (r.details or {})
    }
    return carried or None


def _unimportant(result: Result, shares: Mapping[str, float] | None, min_importance: float) -> bool:
    """Drift in features the model hardly uses (unknown importance counts as important)."""
    if not shares:
        return False
    if result.check == "multivariate":
        involved = (result.details or {}).get("top_columns") or []
        return bool(involved) and shares.get(involved[0], 1.0) < min_importance
    return result.column in shares and shares[result.column] < min_importance


def _without_outputs(result: Result, outputs: set) -> Result:
    """A multivariate Result whose involved columns name no model output."""
    involved = (result.details or {}).get("top_columns")
    if not involved or not outputs.intersection(involved):
        return result
    kept = [c for c in involved if c not in outputs]
    return replace(result, details={**result.details, "top_columns": kept})


def _describe_other(result: Result) -> str:
    if result.check in PERFORMANCE_CHECKS or result.check == "estimated_performance":
        return f"{result.check.replace('_', ' ')} {_fall(result)}"
    where = f" in {result.column}" if result.column else ""
    value = "" if result.value is None else f" {readable(result.value, 3)}"
    return f"{result.check.replace('_', ' ')}: {result.metric}{where}{value}"


def with_label_shift(diagnosis: Diagnosis, results: Iterable[Result]) -> Diagnosis:
    """A label shift that alerted is named: the verdict when nothing else alerted, else
    said after the verdict's own summary.

    >>> shift = Result("labels", None, "label_shift", 0.35, 0.1, "alert",
    ...                details={"summary": "label shift: positive rate 0.23 vs 0.51"})
    >>> diagnose([shift]).summary
    'label shift: positive rate 0.23 vs 0.51'
    """
    shifted = [r for r in results if r.metric == "label_shift" and r.status == "alert"]
    if not shifted:
        return diagnosis
    said = (shifted[0].details or {}).get("summary") or "label shift"
    cause = _cause(shifted[0])
    if diagnosis.verdict == "healthy":
        return Diagnosis("label shift", said, [cause])
    return replace(
        diagnosis, summary=f"{diagnosis.summary}; {said}", causes=[*diagnosis.causes, cause]
    )


def with_estimates(diagnosis: Diagnosis, results: Iterable[Result]) -> Diagnosis:
    """Data drift whose estimated performance fell says so: the drift is costing the model.

    >>> drifted = Diagnosis("data drift", "data drift: income", [])
    >>> fell = Result("estimated_performance", None, "accuracy", 0.79, 0.85, "alert")
    >>> with_estimates(drifted, [fell]).summary
    'data drift: income; estimated accuracy 0.79 vs 0.85 (-7%): data drift hurting the model'
    """
    hurt = [r for r in results if r.check == "estimated_performance" and r.status == "alert"]
    if diagnosis.verdict != "data drift" or not hurt or "hurting the model" in diagnosis.summary:
        return diagnosis
    return Diagnosis(
        diagnosis.verdict,
        diagnosis.summary
        + "; estimated "
        + ", ".join(_fall(r) for r in hurt)
        + ": data drift hurting the model",
        diagnosis.causes + [_cause(r) for r in hurt],
    )


def _fall(result: Result) -> str:
    """'roc_auc 0.53 vs 0.6 (-12%)': a realized metric or KPI against its threshold."""
    if result.value is None:
        return f"{result.metric} undefined"
    if not result.threshold:
        return f"{result.metric} {readable(result.value, 3)}"
    change = (result.value - result.threshold) / abs(result.threshold)
    return (
        f"{result.metric} {readable(result.value, 3)} vs {readable(result.threshold, 3)} "
        f"({change:+.0%})"
    )


def _rank(inputs: list[Result], importance: Mapping[str, float] | None) -> list[dict[str, Any]]:
    """Drift (statistic over threshold) × importance, largest first; columns before the
    multivariate checks, which name no column."""
    weights = dict(importance or {})
    total = sum(weights.values()) or 1.0
    causes = []
    for result in inputs:
        cause = _cause(result)
        threshold = result.threshold or 0.0
        value = _number(result.value)
        drift = abs(value) / threshold if value is not None and threshold > 0 else 1.0
        if result.metric == VECTOR_TEST and value:  # a p-value: the level over it
            drift = threshold / value
        weight = weights.get(result.column) if weights else None
        cause["drift"] = float(drift)
        cause["importance"] = None if weight is None else float(weight / total)
        cause["score"] = float(drift * (cause["importance"] if weight is not None else 1.0))
        causes.append(cause)
    strongest: dict[Any, dict[str, Any]] = {}
    for cause in causes:  # one entry per column: its strongest signal (drift, new categories)
        key = cause["column"] if cause["column"] is not None else (cause["check"], cause["metric"])
        if key not in strongest or cause["score"] > strongest[key]["score"]:
            strongest[key] = cause
    # Named columns first (what a person acts on), then the joint checks' signals. An image
    # or text column's statistics (photo.brightness) say how it moved; a vector test's
    # p-value (MMD), only that the vectors did, not how far (a strong change sits at the
    # permutation floor, 1/501, whatever its size): the vector tests come after the named
    # statistics, smallest p first.
    return sorted(
        strongest.values(),
        key=lambda c: (c["column"] is None, c["metric"] == VECTOR_TEST, -c["score"]),
    )


def _number(value: Any) -> float | None:
    """A Result's value as a float: JSON carries infinities as "inf" and "-inf"."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _cause(result: Result) -> dict[str, Any]:
    return {
        "check": result.check,
        "column": result.column,
        "metric": result.metric,
        "value": result.value,
        "threshold": result.threshold,
    }


def _describe_fault(result: Result) -> str:
    details = result.details or {}
    if result.check == "feature_drift":
        return f"{result.column}: {details.get('finding') or 'cannot be compared'}"
    if result.metric == "missing_share":
        return f"{result.value:.0%} missing in {result.column}"
    if result.metric == "unit_change":
        factor = details.get("likely_factor", result.value)
        return f"unit change in {result.column} (values ×{factor:g})"
    if result.metric == "volume":
        return f"{result.value:,.0f} rows, expected about {details.get('expected_rows', 0):,.0f}"
    if result.metric == "freshness_lag_seconds":
        return f"data {result.value / 3600:.1f} h late"
    return f"{result.metric} in {result.column}: {result.value:g}"


@with_limited_threads
def surrogate_importance(
    sample: Any, features: list[str], output: str, max_rows: int = 5000, seed: int = 0
) -> dict[str, float]:
    """How much the model's output depends on each feature, without the model.

    Fits a gradient-boosting surrogate that predicts the logged ``output`` (a score
    or a prediction) from ``features`` on half of the reference sample, then
    measures permutation importance (the drop in R² when a feature is shuffled) on
    the other half. Negative importances (noise) count as zero.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    >>> frame["score"] = 3 * frame["a"] + 0.1 * rng.normal(size=2000)
    >>> weights = surrogate_importance(frame, ["a", "b"], "score")
    >>> weights["a"] > 10 * weights["b"]
    True
    """
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.inspection import permutation_importance

    frame = sample.to_pandas() if hasattr(sample, "to_pandas") else pd.DataFrame(sample)
    frame = frame[[*features, output]].dropna(subset=[output]).head(max_rows)
    if len(frame) < 50:
        return {}
    inputs = frame[features].copy()
    categorical = []
    for index, name in enumerate(features):
        if not pd.api.types.is_numeric_dtype(inputs[name]):
            inputs[name] = inputs[name].astype("category").cat.codes.replace(-1, np.nan)
            categorical.append(index)
    target = pd.to_numeric(frame[output], errors="coerce").to_numpy(dtype=float)
    half = len(frame) // 2
    surrogate = HistGradientBoostingRegressor(
        max_iter=100, categorical_features=categorical or None, random_state=seed
    ).fit(inputs.iloc[:half], target[:half])
    measured = permutation_importance(
        surrogate, inputs.iloc[half:], target[half:], n_repeats=3, random_state=seed
    )
    return {
        name: float(max(value, 0.0))
        for name, value in zip(features, measured.importances_mean, strict=True)
    }
