"""A window's first answer to "what broke?": one verdict from its Results.

The rule, in order (the first that holds wins; docs/diagnosis.md explains why):

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
   while the inputs are stable (checks ``performance`` and ``kpi``).
5. **healthy**.

>>> from keel.result import Result, readable
>>> moved = Result(check="feature_drift", column="income", metric="wasserstein", value=0.4,
...                threshold=0.1, status="alert")
>>> diagnose([moved]).verdict
'data drift'
>>> diagnose([]).verdict
'healthy'
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
)
PIPELINE_METRICS = frozenset(
    {"missing_share", "nonfinite_count", "unit_change", "volume", "freshness_lag_seconds"}
)
INPUT_METRICS = frozenset({"unseen_share", "vanished_categories"})
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


def diagnose(results: Iterable[Result], importance: Mapping[str, float] | None = None) -> Diagnosis:
    """The verdict for one window's Results (see the module docstring for the rule)."""
    results = [r for r in results if r.check not in ("diagnosis", "window")]
    alerting = [r for r in results if r.status == "alert"]
    broken = [r for r in alerting if r.check == "quality" and r.metric in PIPELINE_METRICS]
    broken += [
        r for r in results if r.check == "feature_drift" and r.status == "error"
    ]  # a feature missing, or of another type
    if broken:
        return Diagnosis(
            "pipeline fault",
            "pipeline fault: " + "; ".join(_describe_fault(r) for r in broken),
            [_cause(r) for r in broken],
        )
    inputs = [
        r
        for r in alerting
        if r.check in ("feature_drift", "multivariate")
        or (r.check == "quality" and r.metric in INPUT_METRICS)
    ]
    outputs = [r for r in alerting if r.check == "prediction_drift"]
    if inputs:
        ranked = _rank(inputs, importance)
        named = ", ".join(
            f"{c['column']} ({c['drift']:.1f}× threshold"
            + (f", importance {c['importance']:.2f})" if c["importance"] is not None else ")")
            for c in ranked[:5]
            if c["column"]
        )
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
    performance = [r for r in alerting if r.check in PERFORMANCE_CHECKS]
    if performance:
        fallen = ", ".join(_fall(r) for r in performance)
        return Diagnosis(
            "concept drift",
            f"concept drift: {fallen}, with the inputs stable",
            [_cause(r) for r in performance],
        )
    return Diagnosis("healthy", "healthy: no check alerted", [])


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
    """Drift (statistic over threshold) × importance, largest first."""
    weights = dict(importance or {})
    total = sum(weights.values()) or 1.0
    causes = []
    for result in inputs:
        cause = _cause(result)
        threshold = result.threshold or 0.0
        value = _number(result.value)
        drift = abs(value) / threshold if value is not None and threshold > 0 else 1.0
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
    return sorted(strongest.values(), key=lambda c: -c["score"])


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
