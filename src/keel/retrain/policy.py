"""When to retrain, on what data, and how the candidate is judged: the ``retrain:`` block.

    retrain:
      entrypoint: loans.train:fit        # module:function, as in `keel train`
      triggers:                          # over the monitor's window diagnoses
        - verdict: concept drift
        - verdict: data drift hurting the model
          for: 2                         # consecutive windows
      min_interval: 7d
      min_matured_labels: 2000
      schedule: 90d                      # fallback: retrain this often without a trigger
      training_window: {last: 12w, exclude: [pipeline fault]}
      approval: manual                   # manual | auto (audited)
      primary_metric: accuracy
      min_effect: 0.02
      margins: {accuracy: 0.01, recall: 0.02}
      alpha: 0.05
      power: 0.8
      min_segment_labels: 500
      sequential: false

A pipeline fault or training–serving skew never triggers a retrain: broken upstream data
drifts too, and a model retrained on it learns the fault. Those page people instead, and
the decision says so. ``decide`` is a pure function of the policy, the diagnoses, the
clock, the last retrain and the matured label count.

>>> from datetime import datetime, timedelta
>>> policy = RetrainPolicy.model_validate({"min_matured_labels": 500})
>>> now = datetime(2026, 4, 6)
>>> week = [WindowDiagnosis(now - timedelta(days=7), now, "concept drift", "concept drift: ...")]
>>> decide(policy, week, now, last_retrain=None, matured_labels=800).action
'retrain'
>>> fault = [WindowDiagnosis(now - timedelta(days=7), now, "pipeline fault", "unit change: income")]
>>> decide(policy, fault, now, last_retrain=None, matured_labels=800).reason.split(":")[0]
'page, do not retrain'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keel.diagnosis import SKEW
from keel.retrain.gate import FIXED_ONLY, METRICS, GateConfig
from keel.retrain.horizon import accuracy_horizon, paired_horizon

#: Verdicts that page a person and never start a retrain.
NEVER_TRIGGER = ("pipeline fault", SKEW)
#: Verdicts only labels can tell.
NEEDS_LABELS = ("concept drift",)
#: Verdicts a trigger may name ("data drift hurting the model" is data drift whose
#: estimated performance fell: the diagnosis says so in its summary).
TRIGGERABLE = (
    "concept drift",
    "data drift hurting the model",
    "data drift",
    "prediction drift without feature drift",
    "label shift",
    "unexplained alert",
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> timedelta:
    """'12w', '7d', '6h', '30m', '45s' as a timedelta.

    >>> duration("12w").days
    84
    """
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f"{text!r}: write a number and a unit (s, m, h, d, w), e.g. '7d'")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    verdict: str
    for_windows: int = Field(default=1, ge=1, alias="for")

    @field_validator("verdict")
    @classmethod
    def _verdict(cls, value: str) -> str:
        if value in NEVER_TRIGGER:
            raise ValueError(
                f"{value!r} never triggers a retrain: a model retrained on broken or skewed "
                "data learns the fault; it pages people (an alert rule) instead"
            )
        if value not in TRIGGERABLE:
            raise ValueError(f"unknown verdict {value!r}; triggers: {', '.join(TRIGGERABLE)}")
        return value


class TrainingWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    last: str = "12w"
    exclude: list[str] = Field(default_factory=lambda: ["pipeline fault"])

    @field_validator("last")
    @classmethod
    def _last(cls, value: str) -> str:
        duration(value)
        return value


def _default_triggers() -> list[Trigger]:
    return [Trigger(verdict="concept drift"), Trigger(verdict="data drift hurting the model")]


class RetrainPolicy(BaseModel):
    """The ``retrain:`` block of a monitor; every field has a safe default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    entrypoint: str | None = None
    triggers: list[Trigger] = Field(default_factory=_default_triggers)
    min_interval: str = "7d"
    min_matured_labels: int = Field(default=1000, ge=1)
    schedule: str | None = None
    training_window: TrainingWindow = Field(default_factory=TrainingWindow)
    approval: Literal["manual", "auto"] = "manual"
    primary_metric: str = "accuracy"
    min_effect: float = Field(default=0.01, gt=0)
    margins: dict[str, float] = Field(default_factory=lambda: {"accuracy": 0.01})
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    min_segment_labels: int = Field(default=500, ge=1)
    max_shadow_drop_share: float = Field(default=0.01, gt=0, le=1)
    sequential: bool = False
    labels_depend_on_decision: bool = False
    #: A canary's guards (keel.retrain.canary): its p99 latency_ms at most this times the
    #: champion arm's (or at most max_latency_p99_ms), its error rate at most this above.
    max_latency_p99_ratio: float = Field(default=1.2, gt=0)
    max_latency_p99_ms: float | None = Field(default=None, gt=0)
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)
    timeout: str = "1h"
    #: ``keel monitor run`` (and ``serve``) run the loop's step after the windows
    #: (keel.retrain.loop); false leaves it to ``keel retrain run`` / ``compare``.
    run_with_monitor: bool = True

    @field_validator("min_interval", "timeout")
    @classmethod
    def _durations(cls, value: str) -> str:
        duration(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            duration(value)
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.]+:[\w]+", value):
            raise ValueError(f"{value!r}: write the training function as module:function")
        return value

    @model_validator(mode="after")
    def _metrics(self) -> RetrainPolicy:
        unknown = sorted({self.primary_metric, *self.margins} - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(METRICS)}")
        if self.primary_metric not in self.margins:
            raise ValueError(
                f"give the primary metric {self.primary_metric!r} a margin too: it guards each "
                "segment (the overall test is superiority)"
            )
        if any(m < 0 for m in self.margins.values()):
            raise ValueError("margins are amounts the challenger may lose: use values >= 0")
        if self.sequential and self.primary_metric in FIXED_ONLY:
            raise ValueError(
                f"sequential: true needs a bounded per-request primary metric; "
                f"{self.primary_metric} stays fixed-horizon"
            )
        return self

    def planned_horizon(
        self, discordant_share: float | None = None, sd: Mapping[str, float] | None = None
    ) -> Horizon:
        """The horizon: the largest n over the gate's conditions, each at ``power``.

        ``discordant_share``: for correctness metrics, the share of shadowed requests on
        which the two models disagree (no labels needed). ``sd``: per-request standard
        deviations of Δ for the other metrics (from the champion's own logged losses, for
        instance). The primary is planned at ``min_effect``; guarded metrics at Δ = 0.
        """
        sd = dict(sd or {})
        parts: dict[str, int] = {}
        missing = []
        for metric, margin in self.margins.items():
            effect = self.min_effect if metric == self.primary_metric else 0.0
            if metric == self.primary_metric:
                margin = 0.0
            elif margin == 0:
                missing.append(f"{metric} (margin 0 cannot be planned)")
                continue
            if metric in ("accuracy", "recall", "specificity") and discordant_share is not None:
                parts[metric] = accuracy_horizon(
                    effect, discordant_share, self.alpha, self.power, margin
                )
            elif metric in sd:
                parts[metric] = paired_horizon(
                    effect, -margin, sd[metric], None, self.alpha, self.power
                )
            else:
                missing.append(metric)
        if self.primary_metric not in parts:
            raise ValueError(
                f"the horizon needs the primary metric's variance: pass discordant_share for "
                f"{self.primary_metric!r} or sd={{{self.primary_metric!r}: ...}}"
            )
        return Horizon(max(parts.values()), parts, tuple(missing))

    def gate_config(self, horizon: int | None, **overrides: Any) -> GateConfig:
        """The gate this policy asks for, at a horizon fixed before the shadow started."""
        return GateConfig(
            primary=self.primary_metric,
            margins=dict(self.margins),
            alpha=self.alpha,
            horizon=horizon,
            min_segment_labels=self.min_segment_labels,
            max_shadow_drop_share=self.max_shadow_drop_share,
            sequential=self.sequential,
            **overrides,
        )


@dataclass(frozen=True)
class Horizon:
    """The planned n, the n each planned condition needs, and those left unplanned."""

    n: int
    parts: dict[str, int]
    unplanned: tuple[str, ...] = ()


@dataclass(frozen=True)
class WindowDiagnosis:
    """One monitor window's diagnosis, as ``keel.diagnosis`` writes it."""

    window_start: datetime
    window_end: datetime
    verdict: str
    summary: str = ""
    #: Whether the window's labels had come (its realized performance was judged).
    judged: bool = True

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> WindowDiagnosis:
        """From a stored diagnosis Result's fields (its ``details`` hold the verdict)."""
        details = row.get("details") or {}
        return cls(
            _time(row["window_start"]),
            _time(row["window_end"]),
            row.get("verdict") or details["verdict"],
            row.get("summary") or details.get("summary", ""),
        )

    def shows(self, verdict: str) -> bool:
        if verdict == "data drift hurting the model":
            return self.verdict == "data drift" and "hurting the model" in self.summary
        return self.verdict == verdict


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class TriggerDecision:
    """What the loop should do now, and why."""

    action: Literal["retrain", "wait", "page", "none"]
    reason: str
    trigger: str | None = None
    training_window: tuple[datetime, datetime] | None = None
    excluded_windows: tuple[tuple[datetime, datetime], ...] = field(default_factory=tuple)

    @property
    def retrain(self) -> bool:
        return self.action == "retrain"


def decide(
    policy: RetrainPolicy,
    diagnoses: Iterable[WindowDiagnosis],
    now: datetime,
    last_retrain: datetime | None,
    matured_labels: int,
) -> TriggerDecision:
    """Retrain, wait, page or nothing, from the latest windows' diagnoses.

    In order: the latest window a pipeline fault or skew → page, never retrain; a trigger
    whose verdict holds in each of its ``for`` latest windows (or the schedule fallback,
    due) → retrain, unless ``min_interval`` has not passed since the last retrain or fewer
    than ``min_matured_labels`` labels have matured → wait. Two triggers firing at once
    are one decision (the first listed names it). The training window is the last
    ``training_window.last`` before ``now`` with its excluded windows listed.
    """
    windows = sorted(diagnoses, key=lambda w: w.window_end)
    latest = windows[-1] if windows else None
    if latest is not None and latest.verdict in NEVER_TRIGGER:
        return TriggerDecision(
            "page",
            f"page, do not retrain: the window ending {latest.window_end.isoformat()} is a "
            f"{latest.verdict} ({latest.summary or 'no summary'}); a model retrained on it "
            "would learn the fault",
        )
    fired = None
    for trigger in policy.triggers:
        # Concept drift is told by labels: a window whose labels have not come cannot show
        # it, so the trigger reads the latest windows whose realized performance was judged.
        eligible = [w for w in windows if w.judged] if trigger.verdict in NEEDS_LABELS else windows
        recent = eligible[-trigger.for_windows :]
        if len(recent) == trigger.for_windows and all(w.shows(trigger.verdict) for w in recent):
            fired = trigger.verdict
            break
    if (
        fired is None
        and policy.schedule is not None
        and (last_retrain is None or now - last_retrain >= duration(policy.schedule))
    ):
        fired = f"schedule {policy.schedule}"
    if fired is None:
        said = f"latest window: {latest.verdict}" if latest is not None else "no windows yet"
        return TriggerDecision("none", f"no trigger ({said})")
    if last_retrain is not None and now - last_retrain < duration(policy.min_interval):
        ready = last_retrain + duration(policy.min_interval)
        return TriggerDecision(
            "wait",
            f"wait: {fired}, but the last retrain was {last_retrain.isoformat()} and "
            f"min_interval is {policy.min_interval} (next at {ready.isoformat()})",
            fired,
        )
    if matured_labels < policy.min_matured_labels:
        return TriggerDecision(
            "wait",
            f"wait: {fired}, but only {matured_labels} of min_matured_labels "
            f"{policy.min_matured_labels} labels have matured",
            fired,
        )
    start = now - duration(policy.training_window.last)
    excluded = tuple(
        (w.window_start, w.window_end)
        for w in windows
        if w.verdict in policy.training_window.exclude and w.window_end > start
    )
    dropped = f", excluding {len(excluded)} window(s) diagnosed {policy.training_window.exclude}"
    return TriggerDecision(
        "retrain",
        f"retrain: {fired}; {matured_labels} matured labels; training on the last "
        f"{policy.training_window.last}{dropped if excluded else ''}",
        fired,
        (start, now),
        excluded,
    )
