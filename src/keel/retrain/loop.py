"""The loop's one step after a monitor's windows: compare the live challenger, or retrain.

``retrain_step(monitor, store, now)`` is what ``keel monitor run`` (and ``keel monitor
serve``, after each scheduled run) does for a monitor with a ``retrain:`` policy, once its
windows are checked and stored:

- **a challenger is live** (the ``challenger`` alias names a version that is not the
  champion, and no run of that version has been decided): its per-window ``challenger``
  Results are written (``keel.retrain.watch``; running estimates, never promoting), then
  ``compare`` judges it at its fixed horizon and records a run — ``insufficient_data``
  until the horizon, then ``pending`` (a person approves: ``keel retrain approve RUN``),
  ``promoted`` under ``approval: auto``, or ``keep_champion``. While a run waits for a
  person, it is not compared again (the approval names that run). No new job starts
  while a challenger is live: one candidate at a time, and its horizon is not reset.
- **otherwise**: ``run_retrain`` decides from the stored diagnoses (retrain, wait, page
  or none, and why) and, when due, trains the next challenger in a subprocess.

Nothing here raises into the monitor: a failure of the step is a ``retrain step failed``
event and is returned in ``RetrainStep.error`` (the monitor's Results are already
stored). ``run_with_monitor: false`` in the policy leaves the loop to ``keel retrain run``
and ``keel retrain compare``.

>>> RetrainStep("m", "retrain", "none", "no trigger (latest window: healthy)").line()
'm: retrain: none: no trigger (latest window: healthy)'
>>> RetrainStep("m", "compare", "pending", "promote: ...", run="ab12").alerting
False
>>> RetrainStep("m", "retrain", "failed", "the entrypoint raised ValueError: boom").alerting
True
>>> RetrainStep("m", "error", "error", "StoreError: no such table").line()
'm: retrain step failed: StoreError: no such table'
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the monitor imports the policy; retrain never imports the monitor
    from keel.monitor.config import MonitorConfig

ACTOR = "keel-retrain"
#: Run statuses that end a challenger's comparison (it is not compared again).
DECIDED = ("promoted", "rejected", "keep_champion")


@dataclass(frozen=True)
class RetrainStep:
    """What the step did: ``action`` is ``retrain`` (``status``: the decision's ``none``,
    ``wait`` or ``page`` when no job ran, else the job's ``done``, ``failed`` or ``busy``),
    ``compare`` (``status`` is the run's), ``waiting`` (a run waits for a person), ``off``
    (no policy, or ``run_with_monitor: false``) or ``error`` (the step failed; ``error``
    says why)."""

    monitor: str
    action: str
    status: str
    reason: str
    run: str | None = None
    challenger: str | None = None
    challenger_results: int = 0
    error: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def alerting(self) -> bool:
        """Whether this step found something that alerts: a failed job or step."""
        return self.status == "failed" or self.action == "error"

    def line(self) -> str:
        """One line for the CLI."""
        if self.action == "error":
            return f"{self.monitor}: retrain step failed: {self.reason}"
        said = f" (run {self.run})" if self.run else ""
        return f"{self.monitor}: {self.action}: {self.status}{said}: {self.reason}"


def retrain_step(
    monitor: MonitorConfig,
    store: Any,
    now: datetime | None = None,
    *,
    registry: Any = None,
    python: str | None = None,
) -> RetrainStep:
    """One step of the loop for ``monitor`` (see the module docstring).

    >>> import tempfile, pathlib, textwrap
    >>> from keel.monitor.config import parse_config
    >>> from keel.store import ResultStore
    >>> from keel.registry.embedded import EmbeddedRegistry
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    >>> monitor = parse_config(textwrap.dedent(f'''
    ...     monitors:
    ...       - {{name: m, model: loans, baseline: b.keel, window: 7D, logs: {folder},
    ...          retrain: {{entrypoint: "trainer:fit"}}}}'''), "keel.yaml")[0]
    >>> step = retrain_step(monitor, store, registry=EmbeddedRegistry(store, folder))
    >>> step.action, step.status, step.reason
    ('retrain', 'none', 'no trigger (no windows yet)')
    """
    policy = getattr(monitor, "retrain", None)
    if policy is None or not policy.run_with_monitor:
        said = "no retrain: policy" if policy is None else "run_with_monitor: false"
        return RetrainStep(monitor.name, "off", "off", said)
    now = _aware(now or datetime.now(UTC))
    try:
        step = _step(monitor, store, now, registry, python)
        if step.status in ("done", "failed") or step.challenger_results:
            from dataclasses import replace

            from keel.alerts.engine import evaluate  # the step's Results alert like others

            transitions = evaluate(monitor, store, now=now, notify=True)
            alerts = [
                {"rule": t.rule, "state": t.state, "summary": t.summary, "notices": t.notices}
                for t in transitions
            ]
            step = replace(step, alerts=alerts)
        return step
    except Exception as error:  # noqa: BLE001 - the loop never takes the monitor down
        reason = f"{type(error).__name__}: {error}"
        with contextlib.suppress(Exception):  # the store itself may be what failed
            store.log_event(ACTOR, "retrain step failed", monitor.name, {"error": reason})
        return RetrainStep(monitor.name, "error", "error", reason, error=reason)


def _step(monitor, store, now: datetime, registry, python) -> RetrainStep:
    from keel.retrain import promotion
    from keel.retrain.job import run_retrain

    registry = registry if registry is not None else promotion._open_registry(store)
    live = live_challenger(monitor, store, registry)
    if live is None:
        outcome = run_retrain(monitor, store, now, registry=registry, python=python)
        status = outcome.status
        if status == "nothing" and outcome.decision is not None:
            status = outcome.decision.action  # none, wait or page: the decision says why
        return RetrainStep(
            monitor.name, "retrain", status, outcome.reason, challenger=outcome.challenger
        )
    version, waiting = live
    if waiting is not None:
        reason = (
            f"challenger version {version} passed the gate; waiting for a person: "
            f"keel retrain approve {waiting.run} (or reject)"
        )
        return RetrainStep(monitor.name, "waiting", "pending", reason, run=waiting.run)
    from keel.retrain.watch import store_challenger_results

    written = store_challenger_results(monitor, store, now, registry=registry)
    found = promotion.compare(monitor, store, registry=registry, as_of=now)
    return RetrainStep(
        monitor.name,
        "compare",
        found.status,
        found.reason,
        run=found.run,
        challenger=str(version),
        challenger_results=len(written),
    )


def live_challenger(monitor: MonitorConfig, store: Any, registry: Any) -> tuple[int, Any] | None:
    """The challenger version still being judged, with its pending run when one waits for a
    person; None when there is none (no alias, it is the champion, or it was decided)."""
    from keel.retrain import promotion

    aliases = registry.aliases(monitor.model)
    challenger = aliases.get(promotion.CHALLENGER)
    if challenger is None or challenger == aliases.get(promotion.CHAMPION):
        return None
    mine = [
        r
        for r in promotion.runs(store, monitor.name)
        if r.model == monitor.model and r.challenger_version == challenger
    ]
    if any(r.status in DECIDED for r in mine):
        return None
    pending = [r for r in mine if r.status == "pending"]
    return challenger, (pending[-1] if pending else None)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
