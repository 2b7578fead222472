"""The canary, unpaired: a challenger judged on its randomized arm when labels depend on
the decision.

With ``labels_depend_on_decision: true`` (declined loans have no outcome) the champion's
decision chose which requests are labelled, so the shadow's pairs are biased. The gateway's
canary splits the traffic at random (sticky, by hash of the routing key): the requests it
routes to the canary arm (``role`` canary, ``route`` the arm's name, ``model_version`` the
challenger's) are decided by the challenger, and the rest (``role`` champion) by the
champion. Each arm's labels follow its own decisions, and the arms are two independent
random samples of the same traffic, so their metrics compare **unpaired**:

- accuracy, recall (on the positives), specificity (on the negatives): **Newcombe's
  hybrid score interval** for a difference of independent proportions
  (``paired.newcombe_lower``; Newcombe 1998, Stat Med 17:873, method 10);
- log loss, MAE, value: Welch's normal bound for a difference of means;
- ROC AUC, precision, F1: the bootstrap, each arm resampled on its own (Efron &
  Tibshirani 1993).

The gate is the same intersection–union rule (``keel.retrain.gate``): the primary's lower
bound above 0, every guarded metric's (overall and per segment with at least
``min_segment_labels`` labels in each arm) above −margin; plus the **guards** from the log:
the canary's p99 ``latency_ms`` at most ``max_latency_p99_ratio`` × the champion arm's (or
``max_latency_p99_ms``), and its error rate (logged rows with no prediction) at most
``max_error_rate_increase`` above the champion arm's (a Newcombe bound). n is the smaller
arm's matured labels; **the horizon** is fixed from the policy alone, before any label:
for the proportions, n per arm = ⌈((z₁₋α + z₁₋β) σ / (Δ₁ − Δ₀))²⌉ with the worst-case
σ² = 2 · ¼ (two arms of proportion ½), which is never too small; for another primary,
``min_matured_labels``. Until n reaches it: ``insufficient_data``.

>>> rng = np.random.default_rng(1)
>>> y_a, y_b = rng.random(3000) < 0.5, rng.random(3000) < 0.5
>>> champion = Arm(predictions=np.where(rng.random(3000) < 0.80, y_a, ~y_a), labels=y_a)
>>> canary = Arm(predictions=np.where(rng.random(3000) < 0.86, y_b, ~y_b), labels=y_b)
>>> from keel.retrain.gate import GateConfig
>>> config = GateConfig(primary="accuracy", margins={"accuracy": 0.01}, horizon=2500)
>>> report = evaluate_canary(champion, canary, config)
>>> report.status, report.conditions[0].method
('promote', 'newcombe')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from keel.errors import DataError
from keel.retrain import paired
from keel.retrain.gate import (
    PER_REQUEST,
    PROPORTIONS,
    Condition,
    GateConfig,
    GateReport,
    non_inferiority,
)
from keel.seeds import derive_seed

if TYPE_CHECKING:  # the monitor imports the policy; retrain never imports the monitor
    from keel.monitor.config import MonitorConfig

CANARY = "canary"


@dataclass(frozen=True)
class Arm:
    """One arm's labelled requests (aligned arrays), and its latency and errors over every
    logged request of the arm (labelled or not)."""

    predictions: Any = None
    scores: Any = None
    values: Any = None
    labels: Any = None
    segments: Any = None
    latency_ms: Any = None
    errors: Any = None

    @property
    def n(self) -> int:
        return 0 if self.labels is None else len(self.labels)


@dataclass(frozen=True)
class Guards:
    """The canary's latency and error-rate bounds (from the policy)."""

    max_latency_p99_ratio: float = 1.2
    max_latency_p99_ms: float | None = None
    max_error_rate_increase: float = 0.01


def canary_horizon(policy: Any) -> tuple[int, str]:
    """The canary's horizon, n labelled requests per arm, from the policy alone (see the
    module docstring), and how it was planned.

    >>> from keel.retrain.policy import RetrainPolicy
    >>> canary_horizon(RetrainPolicy.model_validate({"min_effect": 0.02,
    ...                                             "margins": {"accuracy": 0.01}}))
    (7729, 'per arm, worst-case variance (p = 0.5): accuracy 7729')
    """
    from keel.retrain.horizon import paired_horizon

    sd = float(np.sqrt(0.5))
    parts = {}
    for metric, margin in policy.margins.items():
        if metric not in PROPORTIONS:
            continue
        if metric == policy.primary_metric:
            parts[metric] = paired_horizon(
                policy.min_effect, 0.0, sd, None, policy.alpha, policy.power
            )
        elif margin > 0:
            parts[metric] = paired_horizon(0.0, -margin, sd, None, policy.alpha, policy.power)
    if policy.primary_metric not in parts:
        return policy.min_matured_labels, (
            f"{policy.primary_metric} is not a proportion: min_matured_labels "
            f"{policy.min_matured_labels} per arm"
        )
    said = ", ".join(f"{m} {n}" for m, n in parts.items())
    return max(parts.values()), f"per arm, worst-case variance (p = 0.5): {said}"


def evaluate_canary(
    champion: Arm, canary: Arm, config: GateConfig, guards: Guards | None = None
) -> GateReport:
    """Judge the canary arm against the champion arm, unpaired (see the module docstring).

    >>> champion = Arm(predictions=np.array([1, 0] * 50), labels=np.array([1, 0] * 50))
    >>> config = GateConfig(primary="accuracy", margins={"accuracy": 0.01}, horizon=500)
    >>> evaluate_canary(champion, champion, config).reason.split(";")[0]
    'insufficient data: 100 of 500 matured labels per arm (the fixed horizon)'
    """
    guards = guards or Guards()
    n = min(champion.n, canary.n)
    guarded = [config.primary, *sorted(set(config.margins) - {config.primary})]
    groups: list[tuple[str | None, np.ndarray | None, np.ndarray | None]] = [(None, None, None)]
    if champion.segments is not None and canary.segments is not None:
        a_seg, b_seg = (
            np.asarray(champion.segments).astype(str),
            np.asarray(canary.segments).astype(str),
        )
        for value in np.unique(np.concatenate([a_seg, b_seg])):
            groups.append((str(value), a_seg == value, b_seg == value))
    conditions: list[Condition] = []
    for metric in guarded:
        for segment, rows_a, rows_b in groups:
            a = _subset(champion, rows_a)
            b = _subset(canary, rows_b)
            measured = _measure(metric, a, b, config, segment)
            if measured is None:
                continue
            method, size, estimate, lower = measured
            gating = segment is None or size >= config.min_segment_labels
            conditions.append(
                non_inferiority(metric, segment, method, size, estimate, lower, gating, config)
            )
            if metric == config.primary and segment is None:
                conditions.insert(
                    0,
                    Condition(
                        metric,
                        None,
                        "superiority",
                        method,
                        size,
                        estimate,
                        lower,
                        0.0,
                        bool(lower > 0),
                        True,
                        "",
                    ),
                )
    conditions += _guards(champion, canary, config, guards)
    return _decide(config, n, tuple(conditions))


def _subset(arm: Arm, rows) -> Arm:
    if rows is None:
        return arm

    def take(values):
        return None if values is None else np.asarray(values)[rows]

    return Arm(take(arm.predictions), take(arm.scores), take(arm.values), take(arm.labels))


def _measure(metric, a: Arm, b: Arm, config: GateConfig, segment):
    """(method, n, estimate, lower) for the canary's Δ, or None when an arm has no data."""
    alpha = config.alpha
    if a.labels is None or b.labels is None:
        raise DataError(f"the canary's metric {metric!r} needs labels in both arms")
    ya, yb = np.asarray(a.labels), np.asarray(b.labels)
    seed = derive_seed(*config.seed_parts, CANARY, metric, segment or "")
    if metric in PROPORTIONS:
        cls = PROPORTIONS[metric]
        keep_a = np.ones(len(ya), bool) if cls is None else ya == cls
        keep_b = np.ones(len(yb), bool) if cls is None else yb == cls
        na, nb = int(keep_a.sum()), int(keep_b.sum())
        if na == 0 or nb == 0:
            return None
        xa = int((_need(a, "predictions", metric)[keep_a] == ya[keep_a]).sum())
        xb = int((_need(b, "predictions", metric)[keep_b] == yb[keep_b]).sum())
        lower = paired.newcombe_lower(xb, nb, xa, na, alpha)
        return "newcombe", min(na, nb), xb / nb - xa / na, float(lower)
    size = min(len(ya), len(yb))
    if size < 2:
        return None
    if metric in PER_REQUEST:
        # Δ as an improvement: champion loss − canary loss, or canary value − champion value.
        la, lb = _per_request(metric, a, ya), _per_request(metric, b, yb)
        estimate = lb.mean() - la.mean() if metric == "value" else la.mean() - lb.mean()
        se = np.sqrt(la.var(ddof=1) / len(la) + lb.var(ddof=1) / len(lb))
        return "welch", size, float(estimate), float(estimate - paired._z(alpha) * se)
    draws = []
    for arm, y, offset in ((a, ya, 0), (b, yb, 1)):
        draws.append(_bootstrap_statistic(metric, arm, y, config.resamples, seed + offset))
    estimate = float(_statistic(metric, b, yb) - _statistic(metric, a, ya))
    values = draws[1] - draws[0]
    values = values[np.isfinite(values)]
    lower = float(np.quantile(values, alpha)) if len(values) else float("nan")
    return "bootstrap (unpaired)", size, estimate, lower


def _need(arm: Arm, attribute: str, metric: str) -> np.ndarray:
    value = getattr(arm, attribute)
    if value is None:
        raise DataError(f"the canary's metric {metric!r} needs both arms' {attribute}")
    return np.asarray(value)


def _per_request(metric: str, arm: Arm, y: np.ndarray) -> np.ndarray:
    if metric == "value":
        return _need(arm, "values", metric).astype(float)
    if metric == "mae":
        return np.abs(_need(arm, "predictions", metric).astype(float) - y)
    p = np.clip(_need(arm, "scores", metric).astype(float), 1e-15, 1 - 1e-15)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def _statistic(metric: str, arm: Arm, y: np.ndarray, weights=None) -> np.ndarray | float:
    """ROC AUC, precision or F1 of one arm, under each row of ``weights`` (resample counts)."""
    w = np.ones((1, len(y))) if weights is None else weights
    truth = y.astype(bool)
    if metric == "roc_auc":
        found = paired._weighted_auc(w, _need(arm, "scores", metric).astype(float), truth)
    else:
        predicted = _need(arm, "predictions", metric) == 1
        tp = w @ (predicted & truth).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric == "precision":
                found = tp / (w @ predicted.astype(float))
            else:
                found = 2 * tp / (2 * tp + w @ (predicted != truth).astype(float))
    return found if weights is not None else float(found[0])


def _bootstrap_statistic(metric, arm: Arm, y, resamples: int, seed: int) -> np.ndarray:
    parts = [
        _statistic(metric, arm, y, counts)
        for counts in paired._resample_counts(len(y), resamples, seed)
    ]
    return np.concatenate(parts)


def _guards(champion: Arm, canary: Arm, config: GateConfig, guards: Guards) -> list[Condition]:
    found = []
    if champion.latency_ms is not None and canary.latency_ms is not None:
        a = np.asarray(champion.latency_ms, float)
        b = np.asarray(canary.latency_ms, float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) and len(b):
            pa, pb = float(np.quantile(a, 0.99)), float(np.quantile(b, 0.99))
            limit = (
                guards.max_latency_p99_ms
                if guards.max_latency_p99_ms is not None
                else pa * guards.max_latency_p99_ratio
            )
            # Δ as "canary better": the limit minus the canary's p99 (must stay above 0).
            found.append(
                Condition(
                    "latency_p99_ms",
                    None,
                    "non-inferiority",
                    "p99 of latency_ms",
                    len(b),
                    pb,
                    pb,
                    limit,
                    bool(pb <= limit),
                    True,
                    f"canary p99 {pb:.1f} ms, champion p99 {pa:.1f} ms, limit {limit:.1f} ms",
                )
            )
    if champion.errors is not None and canary.errors is not None:
        ea, eb = np.asarray(champion.errors, bool), np.asarray(canary.errors, bool)
        if len(ea) and len(eb):
            # Newcombe on the rates of answers without an error (higher is better).
            lower = paired.newcombe_lower(
                int((~eb).sum()), len(eb), int((~ea).sum()), len(ea), config.alpha
            )
            found.append(
                Condition(
                    "error_rate",
                    None,
                    "non-inferiority",
                    "newcombe",
                    min(len(ea), len(eb)),
                    float(ea.mean() - eb.mean()),
                    float(lower),
                    -guards.max_error_rate_increase,
                    bool(lower > -guards.max_error_rate_increase),
                    True,
                    f"canary {eb.mean():.2%} vs champion {ea.mean():.2%} of logged rows "
                    "without a prediction",
                )
            )
    return found


def _decide(config: GateConfig, n: int, conditions: tuple[Condition, ...]) -> GateReport:
    def report(status, reason: str) -> GateReport:
        return GateReport(status, reason, n, config.horizon, False, 0.0, conditions)

    if config.horizon is None or n < config.horizon:
        return report(
            "insufficient_data",
            f"insufficient data: {n} of {config.horizon} matured labels per arm (the fixed "
            "horizon); running estimates only, no decision",
        )
    failed = [c for c in conditions if c.gating and not c.passed]
    if not failed:
        return report(
            "promote",
            f"promote: {conditions[0].describe()} (canary, unpaired); all "
            f"{sum(c.gating for c in conditions)} gating conditions hold",
        )
    first = failed[0]
    said = f"{first.metric}: {first.note}" if first.metric == "latency_p99_ms" else first.describe()
    return report("keep_champion", f"keep the champion: {said}")


# -- from the gateway's log -------------------------------------------------------------


@dataclass(frozen=True)
class CanaryArms:
    """Both arms as read from the champion's log, with their counts."""

    champion: Arm
    canary: Arm
    logged: dict[str, int]
    routes: tuple[str, ...] = ()


def read_canary_arms(
    root: str | Path,
    model: str,
    challenger_version: str | int,
    *,
    as_of: datetime,
    label: str = "label",
    maturity: timedelta = timedelta(0),
    labels_as_of: datetime | None = None,
    segment: str | None = None,
    point_in_time: bool = False,
) -> CanaryArms | None:
    """The canary arm (``role`` canary, ``model_version`` the challenger's) and the champion
    arm (``role`` champion) of one model's log up to ``as_of``, each with its matured labels
    (as ``read_shadow_pairs`` matures them); None when no canary row of that version is
    logged.

    >>> import tempfile, datetime as dt
    >>> from keel.store.logs import LogWriter
    >>> root, t = tempfile.mkdtemp(), dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    >>> with LogWriter(root, "predictions", model="loans") as w:
    ...     w.append([{"request_id": f"r{i}", "event_time": t, "role": role, "route": route,
    ...                "model_version": v, "prediction": i % 2, "latency_ms": 3.0}
    ...               for i, (role, route, v) in enumerate(
    ...                   [("champion", "champion", "1"), ("canary", "c", "2")] * 3)])
    6
    >>> with LogWriter(root, "labels", model="loans") as w:
    ...     w.append([{"request_id": f"r{i}", "event_time": t, "label": 1} for i in range(6)])
    6
    >>> arms = read_canary_arms(root, "loans", 2, as_of=t + dt.timedelta(days=1))
    >>> arms.champion.n, arms.canary.n, arms.routes, arms.canary.predictions.tolist()
    (3, 3, ('c',), [1, 1, 1])
    """
    from keel.retrain.shadow_pairs import _columns, _name, _run, _utc
    from keel.store.queries import ORDERED, log_files

    as_of = _utc(as_of)
    labels_at = _utc(labels_as_of) if labels_as_of is not None else as_of
    files = log_files(root, "predictions", model, None, as_of)
    if not files:
        return None
    columns = _columns(files)
    if "role" not in columns:
        return None
    label_files = log_files(root, "labels", model)
    if segment is not None and segment not in columns:
        raise DataError(f"the segment column {segment!r} is not in model {model!r}'s log")
    optional = {
        "score": "score",
        "latency_ms": "latency_ms",
        "route": "CAST(route AS VARCHAR)",
    }
    picked = ", ".join(
        f"{expression if name in columns else 'NULL'} AS _{name}"
        for name, expression in optional.items()
    )
    seg = f", CAST({_name(segment)} AS VARCHAR) AS _segment" if segment else ""
    have_labels = bool(label_files) and label in _columns(label_files)
    ingested = point_in_time and have_labels and "_ingested_at" in _columns(label_files)
    labelled = (
        f""", l AS (
            SELECT request_id, {_name(label)} AS _label FROM read_parquet($labels, {ORDERED})
            WHERE {_name(label)} IS NOT NULL AND event_time <= $matured
            {"AND _ingested_at <= $labels_as_of" if ingested else ""}
            QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY _ingested_at DESC,
                _keel_file DESC, file_row_number DESC) = 1)"""
        if have_labels
        else ""
    )
    sql = f"""
        WITH p AS (
            SELECT request_id, CAST(role AS VARCHAR) AS _role, prediction AS _prediction,
                CAST(model_version AS VARCHAR) AS _version, {picked}{seg}
            FROM read_parquet($files, {ORDERED})
            WHERE event_time IS NOT NULL AND event_time < $as_of
                AND CAST(role AS VARCHAR) IN ('champion', 'canary')
            QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY _ingested_at DESC,
                _keel_file DESC, file_row_number DESC) = 1
        ){labelled}
        SELECT p.*{", l._label" if labelled else ", NULL AS _label"} FROM p
        {"LEFT JOIN l USING (request_id)" if labelled else ""}
        ORDER BY request_id
    """
    parameters: dict[str, Any] = {"files": files, "as_of": as_of}
    if labelled:
        parameters["labels"] = label_files
        parameters["matured"] = labels_at - maturity
        if ingested:
            parameters["labels_as_of"] = labels_at
    table = _run(sql, parameters, files + (label_files if labelled else []), root, model)
    frame = table.to_pandas()
    version = str(challenger_version)
    is_canary = (frame["_role"] == "canary") & (frame["_version"] == version)
    if not is_canary.any():
        return None
    arms = []
    for rows in (frame[frame["_role"] == "champion"], frame[is_canary]):
        errors = rows["_prediction"].isna().to_numpy()
        done = rows[rows["_label"].notna() & ~rows["_prediction"].isna()]
        arms.append(
            Arm(
                predictions=_numbers(done["_prediction"]),
                scores=None if done["_score"].isna().all() else done["_score"].to_numpy(float),
                labels=_numbers(done["_label"]),
                segments=done["_segment"].to_numpy(str) if segment else None,
                latency_ms=rows["_latency_ms"].to_numpy(float, na_value=np.nan),
                errors=errors,
            )
        )
    routes = tuple(sorted(str(r) for r in frame.loc[is_canary, "_route"].dropna().unique()))
    logged = {
        "champion_rows": int((frame["_role"] == "champion").sum()),
        "canary_rows": int(is_canary.sum()),
        "champion_labelled": arms[0].n,
        "canary_labelled": arms[1].n,
    }
    return CanaryArms(arms[0], arms[1], logged, routes)


def _numbers(series) -> np.ndarray:
    values = series.to_numpy()
    try:
        return values.astype(float).astype(int) if len(values) else values.astype(int)
    except (TypeError, ValueError):
        return values


def canary_report(
    monitor: MonitorConfig,
    store: Any,
    challenger: int,
    as_of: datetime,
    *,
    labels_as_of: datetime | None = None,
    segment: str | None = None,
) -> tuple[GateReport, dict[str, Any]] | None:
    """The canary gate's report for a monitor's challenger version as of a time, and the
    counts behind it; None when no canary arm of that version is logged.

    >>> import tempfile, pathlib, textwrap, datetime as dt
    >>> from keel.monitor.config import parse_config
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> monitor = parse_config(textwrap.dedent(f'''
    ...     monitors:
    ...       - {{name: m, model: loans, baseline: b.keel, window: 7D, logs: {folder},
    ...          retrain: {{labels_depend_on_decision: true}}}}'''), "keel.yaml")[0]
    >>> canary_report(monitor, None, 2, dt.datetime(2026, 1, 8, tzinfo=dt.UTC)) is None
    True
    """
    from keel.retrain.promotion import _maturity, _segment_of
    from keel.store.logs import log_root

    policy = monitor.retrain
    root = log_root(monitor.logs)
    performance = getattr(monitor, "performance", None)
    arms = read_canary_arms(
        root,
        monitor.model,
        challenger,
        as_of=as_of,
        label=performance.label if performance is not None else "label",
        maturity=_maturity(monitor),
        labels_as_of=labels_as_of,
        segment=_segment_of(monitor, root, segment),
    )
    if arms is None:
        return None
    horizon, planned = canary_horizon(policy)
    config = policy.gate_config(
        horizon, seed_parts=("retrain-canary", monitor.name, str(challenger))
    )
    guards = Guards(
        policy.max_latency_p99_ratio, policy.max_latency_p99_ms, policy.max_error_rate_increase
    )
    report = evaluate_canary(arms.champion, arms.canary, config, guards)
    counts = {**arms.logged, "routes": list(arms.routes), "horizon_planned": planned}
    return report, counts
