"""The challenger check: a shadowed (or canary) challenger's running estimates per window.

While a challenger is shadowed, each monitor window gets one Result per guarded metric
(and per segment) with the running estimate of Δ = challenger − champion (positive means
the challenger is better; for a loss, champion loss − challenger loss), its one-sided
lower bound in ``details``, and ``threshold`` −margin; plus ``paired_labels`` (n against
the horizon) and ``shadow_drop_share`` (against ``max_shadow_drop_share``).

Until n reaches the horizon every Result is ``insufficient_data``: running estimates
only. **These Results never promote**; only ``keel retrain compare`` decides, at the
horizon, and records a run. At and after the horizon a condition that holds is ``ok`` and
one that fails is ``warn`` (the champion stays); a shadow that dropped too much is
``warn``.

The check is pure: it turns the gate's report (``keel.retrain.gate.GateReport.to_dict()``,
plain data; the check family never imports the retrain loop) into Results.

>>> report = {"status": "insufficient_data", "reason": "insufficient data: 120 of 3090",
...           "n": 120, "horizon": 3090, "shadow_drop_share": 0.0, "conditions": [
...     {"metric": "accuracy", "segment": None, "kind": "superiority", "method": "tango",
...      "n": 120, "estimate": 0.025, "lower": -0.01, "threshold": 0.0, "passed": False,
...      "gating": True, "note": ""},
...     {"metric": "accuracy", "segment": None, "kind": "non-inferiority", "method": "tango",
...      "n": 120, "estimate": 0.025, "lower": -0.01, "threshold": -0.01, "passed": False,
...      "gating": True, "note": ""}]}
>>> rows = challenger_results(report, max_shadow_drop_share=0.01, monitor="m",
...                           model_version="2", window_start="2026-01-01T00:00:00+00:00",
...                           window_end="2026-01-08T00:00:00+00:00")
>>> [(r.metric, r.value, r.status) for r in rows]
[('accuracy', 0.025, 'insufficient_data'), ('paired_labels', 120.0, 'insufficient_data'), \
('shadow_drop_share', 0.0, 'insufficient_data')]
>>> rows[0].details["lower"], rows[0].details["superiority_lower"]
(-0.01, -0.01)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keel.result import Result

CHECK = "challenger"
#: The gate's metrics (``keel.retrain.gate.METRICS``; a test keeps the two equal).
GATE_METRICS = (
    "accuracy",
    "recall",
    "specificity",
    "log_loss",
    "mae",
    "value",
    "roc_auc",
    "precision",
    "f1",
)
#: A canary's guards (``keel.retrain.canary``): its p99 latency and its error rate.
GUARD_METRICS = ("latency_p99_ms", "error_rate")
#: Every metric a challenger Result may carry.
METRICS = frozenset({*GATE_METRICS, *GUARD_METRICS, "paired_labels", "shadow_drop_share"})


def challenger_results(
    report: Mapping[str, Any],
    *,
    max_shadow_drop_share: float,
    monitor: str | None = None,
    model: str | None = None,
    model_version: str | None = None,
    window_start: str | None = None,
    window_end: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> list[Result]:
    """One window's challenger Results from the gate's report (see the module docstring).

    ``model_version``: the challenger's version (a Result names what it measures);
    ``details``: extra plain data added to every Result's details (the champion's version,
    the comparison's kind).

    >>> rows = challenger_results({"status": "insufficient_data", "reason": "no shadow yet",
    ...                            "n": 0, "horizon": None, "shadow_drop_share": 0.0,
    ...                            "conditions": []}, max_shadow_drop_share=0.01)
    >>> [(r.metric, r.threshold, r.status) for r in rows]
    [('paired_labels', None, 'insufficient_data'), ('shadow_drop_share', 0.01, \
'insufficient_data')]
    """
    gate = str(report.get("status"))
    waiting = gate == "insufficient_data"
    where = dict(
        monitor=monitor,
        model=model,
        model_version=None if model_version is None else str(model_version),
        window_start=window_start,
        window_end=window_end,
    )
    common = {"gate_status": gate, "gate_reason": report.get("reason"), **dict(details or {})}
    conditions = list(report.get("conditions") or [])
    superiority = {
        c["metric"]: c for c in conditions if c.get("kind") == "superiority" and not c["segment"]
    }
    rows = []
    for condition in conditions:
        if condition.get("kind") == "superiority":
            continue
        metric = condition["metric"]
        if waiting or not condition.get("gating", True):
            status = "insufficient_data"
        else:
            status = "ok" if condition.get("passed") else "warn"
        extra = {
            "lower": condition.get("lower"),
            "method": condition.get("method"),
            "n": condition.get("n"),
            "kind": condition.get("kind"),
            "gating": condition.get("gating"),
            "note": condition.get("note") or "",
        }
        if metric in superiority and condition.get("segment") is None:
            best = superiority[metric]
            extra.update(
                superiority_lower=best.get("lower"),
                superiority_passed=best.get("passed"),
                superiority_note=best.get("note") or "",
            )
            if not waiting and not best.get("passed"):
                status = "warn"
        rows.append(
            Result(
                CHECK,
                None,
                metric,
                _number(condition.get("estimate")),
                _number(condition.get("threshold")),
                status,
                **{**where, "segment": condition.get("segment")},
                details={**common, **extra},
            )
        )
    n, horizon = report.get("n") or 0, report.get("horizon")
    rows.append(
        Result(
            CHECK,
            None,
            "paired_labels",
            float(n),
            _number(horizon),
            "insufficient_data" if waiting else "ok",
            **where,
            details=common,
        )
    )
    share = float(report.get("shadow_drop_share") or 0.0)
    too_many = gate == "refused" and share >= max_shadow_drop_share
    rows.append(
        Result(
            CHECK,
            None,
            "shadow_drop_share",
            share,
            float(max_shadow_drop_share),
            "warn" if too_many else ("insufficient_data" if waiting else "ok"),
            **where,
            details=common,
        )
    )
    return rows


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
