"""The check family: every check keel writes, by the name its Results carry.

A ``Check`` says what it is: its ``name`` (``Result.check``), the ``metrics`` its Results
may carry (what alert rules may name; ``stable_names`` is derived from them), and how its
alerting Results read in one line (``summary``, the alert's headline). ``CHECKS`` holds
every member; ``tests/common/test_checks.py`` runs one battery over all of them. A new
check is one module that computes its Results plus one entry here.

>>> CHECKS["quality"].summary([{"column": "amount", "metric": "unit_change"}], "2026-08-13")
'1 quality check failed in window 2026-08-13: amount'
>>> kpi = {"column": None, "metric": "value_per_1000", "value": -242680.0, "threshold": -120150.0}
>>> CHECKS["kpi"].summary([kpi], "2026-09-24")
'KPIs past their threshold in window 2026-09-24: value_per_1000 -242,680 vs -120,150'
>>> CHECKS["stream"].summary([{"column": "score", "status": "alert"}], "2026-07-31")
'stream alarm in window 2026-07-31: score'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from keel.result import readable


class Check(Protocol):
    """What every member of the check family declares (see the module docstring)."""

    name: str
    metrics: frozenset[str]

    def summary(self, results: list[dict[str, Any]], day: str) -> str:
        """One line for a window's alerting Results (each a dict of Result fields)."""
        ...


@dataclass(frozen=True)
class CountedCheck:
    """A check whose alert counts what broke, by column: "2 features drifted: a, b"."""

    name: str
    metrics: frozenset[str]
    plural: str  # "features drifted", "quality checks failed"
    singular: str  # "feature drifted", "quality check failed"

    def summary(self, results, day) -> str:
        columns = [r["column"] for r in results if isinstance(r.get("column"), str)]
        count = len(set(columns)) or len(results)
        what = self.singular if count == 1 else self.plural
        named = f": {', '.join(sorted(set(columns))[:10])}" if columns else ""
        return f"{count} {what} in window {day}{named}"


@dataclass(frozen=True)
class MeasuredCheck:
    """A check whose alert lists its metrics' values: "accuracy 0.78 vs 0.85"."""

    name: str
    metrics: frozenset[str]
    what: str  # "realized metrics worse than the holdout"

    def summary(self, results, day) -> str:
        listed = ", ".join(
            f"{r['metric']} {readable(r.get('value'))}"
            + (f" vs {readable(r.get('threshold'))}" if _known(r.get("threshold")) else "")
            for r in results
            if _known(r.get("value"))
        )
        return f"{self.what} in window {day}: {listed}"


@dataclass(frozen=True)
class VerdictCheck:
    """The diagnosis: its alert is its verdict."""

    name: str
    metrics: frozenset[str]

    def summary(self, results, day) -> str:
        verdicts = [(r.get("details") or {}).get("verdict") for r in results]
        verdicts = [v for v in verdicts if v]
        return f"{verdicts[0] if verdicts else self.name} in window {day}"


@dataclass(frozen=True)
class StreamCheck:
    """A streaming detector's alarms (keel.monitor.stream): "stream alarm in window ...: score"."""

    name: str
    metrics: frozenset[str]

    def summary(self, results, day) -> str:
        alarms = [r for r in results if r.get("status", "alert") == "alert"]
        streams = sorted(
            {str((r.get("details") or {}).get("stream") or r.get("column")) for r in alarms}
        )
        what = "stream alarm" if len(alarms) == 1 else f"{len(alarms)} stream alarms"
        return f"{what} in window {day}: {', '.join(streams) or 'none'}"


def _known(value: Any) -> bool:
    return value is not None and value == value  # neither None nor NaN


def _drift_metrics() -> frozenset[str]:
    from keel.stats.methods import METHODS

    return frozenset(METHODS) | {f"{name}_p_value" for name in METHODS}


def _skew_metrics() -> frozenset[str]:
    from keel.checks.skew import METRICS

    return METRICS


def _challenger_metrics() -> frozenset[str]:
    from keel.checks.challenger import METRICS

    return METRICS


#: An output's unseen, vanished or out-of-range values (warnings, never quality).
OUTPUT_FINDINGS = frozenset({"unseen_share", "vanished_categories", "out_of_range_share"})


def _members() -> Iterable[Check]:
    drift = _drift_metrics()
    yield CountedCheck("feature_drift", drift, "features drifted", "feature drifted")
    yield CountedCheck(
        "prediction_drift",
        drift | OUTPUT_FINDINGS,
        "model outputs drifted",
        "model output drifted",
    )
    yield CountedCheck("target_drift", drift, "targets drifted", "target drifted")
    yield CountedCheck(
        "quality",
        frozenset(
            {
                "missing_share",
                "nonfinite_count",
                "out_of_range_share",
                "unit_change",
                "unseen_share",
                "vanished_categories",
                "constant",
                "volume",
                "freshness_lag_seconds",
            }
        ),
        "quality checks failed",
        "quality check failed",
    )
    yield CountedCheck(
        "multivariate",
        frozenset({"domain_auc", "reconstruction_error"}),
        "multivariate checks alerted",
        "multivariate check alerted",
    )
    yield VerdictCheck("diagnosis", frozenset({"verdict"}))
    # Served features against their offline truth (keel.checks.skew).
    yield CountedCheck("skew", _skew_metrics(), "features skewed", "feature skewed")
    yield MeasuredCheck(
        "performance",
        frozenset(
            {
                "accuracy",
                "precision",
                "recall",
                "f1",
                "specificity",
                "roc_auc",
                "pr_auc",
                "log_loss",
                "ece",
                "mae",
                "rmse",
                "mape",
                "r2",
                "mean_error",
                "holdout_missing",
            }
        ),
        "realized metrics worse than the holdout",
    )
    yield MeasuredCheck(
        "estimated_performance",
        frozenset(
            {
                "specificity",
                "accuracy",
                "precision",
                "recall",
                "f1",
                "roc_auc",
                "value_per_1000",
                "mae",
                "rmse",
            }
        ),
        "estimated metrics worse than the holdout",
    )
    yield MeasuredCheck(
        "labels",
        frozenset(
            {
                "labelled_share",
                "label_latency_p50_seconds",
                "label_latency_p90_seconds",
                "labelled_subset_shift",
                "label_shift",
                "hours_since_last_label",
                "label_column_missing",
                "estimated_positive_rate",
                "estimated_prior",
            }
        ),
        "label checks alerted",
    )
    # A retrain job (keel.retrain.job): the rows it trained on, or that it failed.
    yield MeasuredCheck(
        "retrain", frozenset({"retrain_failed", "training_rows"}), "retraining failed"
    )
    # A shadowed or canary challenger's running estimates (keel.checks.challenger).
    yield MeasuredCheck("challenger", _challenger_metrics(), "challenger against the champion")
    # A monitor that watches nothing says so.
    yield MeasuredCheck("monitor", frozenset({"records_in_log"}), "the monitor warns")
    # And each monitor's own KPI names.
    yield MeasuredCheck("kpi", frozenset({"value", "value_per_1000"}), "KPIs past their threshold")
    # Streaming detectors run by the monitor between windows (keel.monitor.stream).
    yield StreamCheck("stream", frozenset({"alarm"}))
    # What identifies a checked window (never alerting).
    yield MeasuredCheck(
        "window",
        frozenset({"rows", "newest_ingestion", "labels", "newest_label_ingestion"}),
        "window identities",
    )


#: Every check keel writes, by name.
CHECKS: dict[str, Check] = {check.name: check for check in _members()}


def stable_names() -> dict[str, set[str]]:
    """Every check keel writes and the metrics it can carry: what alert rules may name.

    >>> names = stable_names()
    >>> "wasserstein" in names["feature_drift"], sorted(names["multivariate"])
    (True, ['domain_auc', 'reconstruction_error'])
    """
    return {name: set(check.metrics) for name, check in CHECKS.items()}
