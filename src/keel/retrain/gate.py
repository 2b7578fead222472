"""The promotion gate: does the challenger beat the champion on the same requests, safely?

The gate promotes only when every condition holds:

- **superiority** of the primary metric overall: its lower bound for
  Δ = challenger − champion exceeds 0 (for accuracy, McNemar's mid-p is below α);
- **non-inferiority** of every guarded metric (the primary included), overall and in
  every segment with at least ``min_segment_labels`` paired labels: the lower bound of
  Δ exceeds −margin. Smaller segments are reported and do not gate;
- the shadow dropped less than ``max_shadow_drop_share`` of the requests (a shadow that
  missed requests is compared on a sample the gateway chose, not on the traffic);
- n has reached the horizon fixed before the shadow started; until then the report says
  ``insufficient_data`` and shows running estimates, and never promotes.

**No multiplicity correction, on purpose.** This is an intersection–union test
(Berger 1982): the null is "some condition is false", the union of the conditions'
nulls, and the gate rejects it only when every condition's own level-α test rejects.
If condition k is false, promoting requires its test to reject, which happens with
probability at most α, whatever the other conditions do. So P(promote | any condition
false) ≤ α with each test at the full α; a Bonferroni split would only cost power.
The price is paid in power instead: every condition must pass, so adding guarded
metrics and segments makes promotion harder, never easier.

Each bound is one-sided at 1 − α: Tango's score bound for per-request correctness
(accuracy; recall on the positives; specificity on the negatives); paired t for log
loss, MAE and value; DeLong for ROC AUC; the paired bootstrap for precision and F1
(and for any metric on request, ``methods={"roc_auc": "bootstrap"}``). When an entity
has more than one request the requests are not independent: correctness and values use
the entity-clustered bootstrap, t uses the cluster-robust error, and ROC AUC the
entity bootstrap. With ``sequential=True`` the bounded metrics (correctness; MAE and
value with declared ``difference_bounds``) use an always-valid confidence sequence and
may promote at any look; log loss, ROC AUC, precision and F1 stay fixed-horizon. A
sequential look may come before the segments are large: a segment gates as soon as its
share of the requests would bring it to ``min_segment_labels`` by the horizon (the cap),
so an early look cannot skip a segment that the fixed-horizon gate would have judged.

Δ is "challenger better" positive for every metric: for a loss it is
champion_loss − challenger_loss.

Reference: Berger (1982), "Multiparameter hypothesis testing and acceptance
sampling", Technometrics 24:295; Berger & Hsu (1996), Statistical Science 11:283.

>>> rng = np.random.default_rng(0)
>>> y = (rng.random(4000) < 0.5).astype(int)
>>> champion = np.where(rng.random(4000) < 0.80, y, 1 - y)
>>> challenger = np.where(rng.random(4000) < 0.86, y, 1 - y)
>>> config = GateConfig(primary="accuracy", margins={"accuracy": 0.01}, horizon=3000)
>>> report = evaluate_gate(Outcomes(predictions=champion), Outcomes(predictions=challenger),
...                        y, config)
>>> report.status
'promote'
>>> evaluate_gate(Outcomes(predictions=champion), Outcomes(predictions=champion), y,
...               config).failed[0].metric
'accuracy'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from keel.errors import ConfigError, DataError
from keel.retrain import paired
from keel.seeds import derive_seed

#: Per-request correctness on a subset of requests: all, the positives, the negatives.
PROPORTIONS = {"accuracy": None, "recall": 1, "specificity": 0}
#: Per-request values whose difference is averaged (log loss and MAE as improvements).
PER_REQUEST = ("log_loss", "mae", "value")
#: Ratios of counts, judged by the paired bootstrap only.
RATIOS = ("precision", "f1")
METRICS = (*PROPORTIONS, *PER_REQUEST, "roc_auc", *RATIOS)
#: Metrics that stay fixed-horizon under ``sequential`` (unbounded, or not a mean).
FIXED_ONLY = ("log_loss", "roc_auc", *RATIOS)

Status = Literal["promote", "keep_champion", "insufficient_data", "refused"]


@dataclass(frozen=True)
class Outcomes:
    """One model's outputs on the paired requests, in arrival order.

    ``predictions``: predicted classes (0/1) or, for MAE, predicted values; ``scores``:
    probabilities of the positive class (log loss, ROC AUC); ``values``: the value of each
    request's decision (higher is better).
    """

    predictions: Any = None
    scores: Any = None
    values: Any = None


@dataclass(frozen=True)
class GateConfig:
    """What the gate judges and how; see the module docstring."""

    primary: str = "accuracy"
    margins: Mapping[str, float] = field(default_factory=lambda: {"accuracy": 0.01})
    alpha: float = 0.05
    horizon: int | None = None
    min_segment_labels: int = 500
    max_shadow_drop_share: float = 0.01
    sequential: bool = False
    methods: Mapping[str, str] = field(default_factory=dict)
    resamples: int = 1000
    #: Bounds of the per-request difference for MAE and value, for the confidence sequence.
    difference_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    #: The confidence sequence's v_min: the expected Σ(Δᵢ − Δ̄)² at the horizon.
    sequence_v_min: float = 100.0
    seed_parts: tuple[str, ...] = ("retrain-gate",)

    def __post_init__(self) -> None:
        unknown = sorted({self.primary, *self.margins, *self.methods} - set(METRICS))
        if unknown:
            raise ConfigError(
                f"unknown gate metric(s) {', '.join(unknown)}; valid: {', '.join(METRICS)}"
            )
        if self.primary not in self.margins:
            raise ConfigError(f"the primary metric {self.primary!r} needs a margin in margins")
        if any(m < 0 for m in self.margins.values()):
            raise ConfigError("margins are amounts the challenger may lose: use values >= 0")
        if not 0 < self.alpha < 0.5:
            raise ConfigError(f"alpha must lie in (0, 0.5), got {self.alpha}")
        if (
            self.sequential
            and self.horizon is None
            and any(_fixed_only(m, self) for m in self.margins)
        ):
            raise ConfigError(
                "a sequential gate with log_loss, roc_auc, precision, f1 (or mae/value without "
                "difference_bounds) needs a horizon: those are judged once, at the horizon"
            )
        if not self.sequential and self.horizon is None:
            raise ConfigError("a fixed-horizon gate needs its horizon (keel.retrain.horizon)")


@dataclass(frozen=True)
class Condition:
    """One test of the gate, with its numbers: passed means lower > threshold."""

    metric: str
    segment: str | None
    kind: Literal["superiority", "non-inferiority"]
    method: str
    n: int
    estimate: float
    lower: float
    threshold: float
    passed: bool
    gating: bool
    note: str = ""

    def describe(self) -> str:
        where = f" in segment {self.segment!r}" if self.segment is not None else ""
        relation = ">" if self.passed else "<="
        text = (
            f"{self.metric}{where}: Δ {self.estimate:+.4f}, lower bound {self.lower:+.4f} "
            f"{relation} {self.threshold:+.4f} ({self.kind}, {self.method}, n={self.n})"
        )
        return f"{text}; {self.note}" if self.note else text


@dataclass(frozen=True)
class GateReport:
    """The gate's decision, the condition that decided it, and every number behind it."""

    status: Status
    reason: str
    n: int
    horizon: int | None
    sequential: bool
    shadow_drop_share: float
    conditions: tuple[Condition, ...]

    @property
    def failed(self) -> list[Condition]:
        return [c for c in self.conditions if c.gating and not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data for the audit record."""
        return {**asdict(self), "conditions": [asdict(c) for c in self.conditions]}


def evaluate_gate(
    champion: Outcomes,
    challenger: Outcomes,
    labels,
    config: GateConfig,
    *,
    segments=None,
    entities=None,
    shadow_drop_share: float = 0.0,
) -> GateReport:
    """Judge the challenger against the champion on the same requests (arrays aligned)."""
    y = None if labels is None else np.asarray(labels)
    n = _length(champion, challenger, y)
    segment_of = None if segments is None else np.asarray(segments).astype(str)
    entity_of = None if entities is None else np.asarray(entities)
    for name, array in (("segments", segment_of), ("entities", entity_of)):
        if array is not None and len(array) != n:
            raise DataError(f"{len(array)} {name} for {n} paired requests")

    guarded = [config.primary, *sorted(set(config.margins) - {config.primary})]
    groups: list[tuple[str | None, np.ndarray]] = [(None, np.ones(n, bool))]
    if segment_of is not None:
        groups += [(str(s), segment_of == s) for s in np.unique(segment_of)]

    conditions = []
    waiting = []
    for metric in guarded:
        for segment, rows in groups:
            count = int(rows.sum())
            gating = segment is None or count >= config.min_segment_labels
            if config.sequential and config.horizon and not gating:
                # A sequential look may come early: a segment on course to reach
                # min_segment_labels by the horizon gates already (wide, not skipped).
                gating = count / n * config.horizon >= config.min_segment_labels
            measured = _measure(metric, champion, challenger, y, rows, entity_of, config, segment)
            if measured is None:
                continue
            method, size, estimate, lower, mid_p = measured
            fixed_only = config.sequential and _fixed_only(metric, config)
            if fixed_only and config.horizon is not None and n < config.horizon:
                waiting.append(metric)
            conditions.append(
                non_inferiority(metric, segment, method, size, estimate, lower, gating, config)
            )
            if metric == config.primary and segment is None:
                if mid_p is not None:
                    passed, note = bool(mid_p < config.alpha), f"McNemar mid-p {mid_p:.4g}"
                else:
                    passed, note = bool(lower > 0), ""
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
                        passed,
                        True,
                        note,
                    ),
                )
    return _decide(config, n, shadow_drop_share, tuple(conditions), waiting)


def non_inferiority(
    metric: str,
    segment: str | None,
    method: str,
    size: int,
    estimate: float,
    lower: float,
    gating: bool,
    config: GateConfig,
) -> Condition:
    """The condition "Δ's lower bound exceeds −margin" of one metric (and segment); a segment
    below ``min_segment_labels`` is reported and does not gate. The paired gate and the
    canary's unpaired one state it the same way.

    >>> config = GateConfig(primary="accuracy", margins={"accuracy": 0.01}, horizon=5000)
    >>> c = non_inferiority("accuracy", None, "tango", 5000, 0.02, -0.004, True, config)
    >>> c.threshold, c.passed
    (-0.01, True)
    """
    note = "" if gating else f"segment below min_segment_labels {config.min_segment_labels}"
    threshold = -float(config.margins[metric])
    return Condition(
        metric,
        segment,
        "non-inferiority",
        method,
        size,
        estimate,
        lower,
        threshold,
        bool(lower > threshold),
        gating,
        note,
    )


def _fixed_only(metric: str, config: GateConfig) -> bool:
    """A metric the confidence sequence cannot take: unbounded, or bounds not declared."""
    return metric in FIXED_ONLY or (
        metric in ("mae", "value") and metric not in config.difference_bounds
    )


def _decide(config, n, drop_share, conditions, waiting) -> GateReport:
    def report(status: Status, reason: str) -> GateReport:
        return GateReport(
            status, reason, n, config.horizon, config.sequential, float(drop_share), conditions
        )

    failed = [c for c in conditions if c.gating and not c.passed]
    if drop_share >= config.max_shadow_drop_share:
        return report(
            "refused",
            f"refused: the shadow dropped {drop_share:.2%} of requests, at or above "
            f"max_shadow_drop_share {config.max_shadow_drop_share:.2%}; the paired sample "
            "is not the traffic",
        )
    horizon = config.horizon
    if not config.sequential and n < horizon:
        return report(
            "insufficient_data",
            f"insufficient data: {n} of {horizon} matured paired labels (the fixed horizon); "
            "running estimates only, no decision",
        )
    if not failed and not waiting:
        superiority = conditions[0]
        return report(
            "promote",
            f"promote: {superiority.describe()}; all {sum(c.gating for c in conditions)} "
            "gating conditions hold",
        )
    if config.sequential and (horizon is None or n < horizon):
        first = (
            failed[0].describe()
            if failed
            else f"{', '.join(sorted(set(waiting)))} stay fixed-horizon ({n} of {horizon})"
        )
        return report("insufficient_data", f"sequential, not yet shown: {first}")
    return report("keep_champion", f"keep the champion: {failed[0].describe()}")


def _length(champion: Outcomes, challenger: Outcomes, labels) -> int:
    lengths = {
        len(np.asarray(v))
        for arm in (champion, challenger)
        for v in (arm.predictions, arm.scores, arm.values)
        if v is not None
    }
    if labels is not None:
        lengths.add(len(labels))
    if len(lengths) != 1:
        raise DataError(
            f"champion, challenger and labels must cover the same requests; lengths {lengths}"
        )
    return lengths.pop()


def _need(arm: Outcomes, attribute: str, metric: str) -> np.ndarray:
    value = getattr(arm, attribute)
    if value is None:
        raise DataError(f"the gate's metric {metric!r} needs both models' {attribute}")
    return np.asarray(value)


def _measure(metric, champion, challenger, y, rows, entities, config, segment):
    """(method, n, estimate, lower, McNemar mid-p or None), or None when there is no data."""
    alpha = config.alpha
    seed = derive_seed(*config.seed_parts, metric, segment or "")
    method = config.methods.get(metric)
    if y is None and metric != "value":
        raise DataError(f"the gate's metric {metric!r} needs labels")
    if metric in PROPORTIONS:
        cls = PROPORTIONS[metric]
        if cls is not None:
            rows = rows & (y == cls)
        a = _need(champion, "predictions", metric)[rows] == y[rows]
        b = _need(challenger, "predictions", metric)[rows] == y[rows]
        d = b.astype(float) - a
        return _mean_difference(d, metric, rows, entities, config, seed, method or "tango", a, b)
    if metric in PER_REQUEST:
        d = _per_request_improvement(metric, champion, challenger, y)[rows]
        return _mean_difference(d, metric, rows, entities, config, seed, method or "t")
    size = int(rows.sum())
    if size < 2:
        return None
    clustered = entities is not None and paired._units(entities[rows], size)[0] is not None
    if metric == "roc_auc":
        a, b = _need(champion, "scores", metric)[rows], _need(challenger, "scores", metric)[rows]
        if (method or "delong") == "delong" and not clustered:
            bound = paired.delong_lower(a, b, y[rows], alpha)
            return "delong", size, bound.estimate, bound.lower, None
        bound = paired.paired_bootstrap_auc_lower(
            a,
            b,
            y[rows],
            alpha,
            seed=seed,
            resamples=config.resamples,
            entities=None if entities is None else entities[rows],
        )
        return _named("bootstrap", clustered), size, bound.estimate, bound.lower, None
    # precision, F1: ratios of counts
    truth = y[rows] == 1
    nums, dens = [], []
    for arm in (champion, challenger):
        predicted = _need(arm, "predictions", metric)[rows] == 1
        tp = (predicted & truth).astype(float)
        if metric == "precision":
            nums.append(tp), dens.append(predicted.astype(float))
        else:
            nums.append(2 * tp), dens.append(2 * tp + (predicted != truth))
    bound = paired.paired_bootstrap_ratio_lower(
        nums,
        dens,
        alpha,
        seed=seed,
        resamples=config.resamples,
        entities=None if entities is None else entities[rows],
    )
    return _named("bootstrap", clustered), size, bound.estimate, bound.lower, None


def _named(method: str, clustered: bool) -> str:
    return f"{method} (entities)" if clustered else method


def _per_request_improvement(metric, champion, challenger, y) -> np.ndarray:
    if metric == "value":
        return _need(challenger, "values", metric).astype(float) - _need(
            champion, "values", metric
        ).astype(float)
    if metric == "mae":
        if y is None:
            raise DataError("the gate's metric 'mae' needs labels")
        loss = [
            np.abs(_need(arm, "predictions", metric).astype(float) - y)
            for arm in (champion, challenger)
        ]
    else:
        loss = []
        for arm in (champion, challenger):
            p = np.clip(_need(arm, "scores", metric).astype(float), 1e-15, 1 - 1e-15)
            loss.append(-(y * np.log(p) + (1 - y) * np.log1p(-p)))
    return loss[0] - loss[1]


def _mean_difference(d, metric, rows, entities, config, seed, method, a=None, b=None):
    size = len(d)
    if size == 0:
        return None
    alpha = config.alpha
    ent = None if entities is None else entities[rows]
    clustered = ent is not None and paired._units(ent, size)[0] is not None
    if config.sequential and metric not in FIXED_ONLY:
        low, high = (
            (-1.0, 1.0)
            if metric in PROPORTIONS
            else config.difference_bounds.get(metric, (None, None))
        )
        if low is not None:
            if d.min() < low or d.max() > high:
                raise DataError(f"{metric} differences leave their declared bounds {low, high}")
            lower = paired.confidence_sequence_lower(d, alpha, low, high, config.sequence_v_min)
            return "confidence sequence", size, float(d.mean()), float(lower[-1]), None
    if a is not None and method == "tango" and not clustered:
        n10, n01 = int(np.sum(b & ~a)), int(np.sum(a & ~b))
        lower = paired.tango_lower(n10, n01, size, alpha)
        mid_p = paired.mcnemar_mid_p(n10, n01) if metric == "accuracy" else None
        return "tango", size, (n10 - n01) / size, lower, mid_p
    if method == "t":
        bound = paired.paired_t_lower(d, alpha, entities=ent)
        return ("t (entities)" if clustered else "t"), size, bound.estimate, bound.lower, None
    bound = paired.paired_bootstrap_lower(
        d, alpha, seed=seed, resamples=config.resamples, entities=ent
    )
    return _named("bootstrap", clustered), size, bound.estimate, bound.lower, None


def gate_metrics_needing(metrics: Sequence[str]) -> dict[str, set[str]]:
    """Which model outputs each metric reads (the adapter from the serve log uses this).

    >>> gate_metrics_needing(["accuracy", "roc_auc"])
    {'accuracy': {'predictions'}, 'roc_auc': {'scores'}}
    """
    needs = {"log_loss": {"scores"}, "roc_auc": {"scores"}, "value": {"values"}}
    return {m: needs.get(m, {"predictions"}) for m in metrics}
