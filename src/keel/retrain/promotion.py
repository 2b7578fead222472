"""From a shadowed challenger to a promotion a person approves: compare, approve, reject.

``compare(monitor, store)`` reads the monitor's champion, shadow and label logs
(``keel.retrain.shadow_pairs``), runs the gate (``keel.retrain.gate``) at the policy's
horizon and writes the decision, gate report included, as a **run**: a ``promotion
compared`` event in the store's append-only event log (``keel_events``), read back by
``runs`` and ``get_run``. A run's status is

- ``insufficient_data``: fewer matured paired labels than the horizon (running estimates
  only), or no shadow answers yet; ``keep_champion``: the gate said no; ``refused``: the
  gate refused (the shadow dropped too much), or there is nothing to compare;
- ``pending``: the gate said promote and a person must approve (``approval: manual``, the
  default); a newer pending run of the same model supersedes it (``superseded``);
- ``promoted``: approved (``approve``), or at once under ``approval: auto``, audited as
  automatic (actor ``keel-retrain (approval: auto)``); ``rejected``: a person said no.

**The horizon is fixed once**, before the comparison looks at any label: the first
``compare`` after a full day of shadow answers plans it (``RetrainPolicy.planned_horizon``)
from the share of that first day's requests on which the two models' predictions differ
(the discordant share; no labels needed), and writes it as a ``promotion horizon`` event;
every later comparison of that challenger version reuses it.

``approve(store, run, token)`` and ``reject(store, run, token, reason)`` need a per-person
token (``keel tokens add``): a wrong or missing one is refused, and the refusal is a
``promotion refused`` event and a ``refused`` row in the alias audit (``keel_alias_audit``).
Approval takes the store's named lock ``promotion:<model>`` (a second promotion while one
is in progress is refused), checks that the champion has not moved since the comparison,
moves ``champion`` to the challenger's version through ``keel.registry.aliases.promote``
with the gate report as the evidence in the audit, and points ``previous`` at the old
champion: rollback is ``keel models rollback MODEL champion --reason ...``, and the old
champion stays addressable as ``MODEL@previous``.

>>> PromotionRun("r1", "m", "loans", "pending", "promote", "promote: ...").exit_code
1
>>> PromotionRun("r1", "m", "loans", "insufficient_data", "insufficient_data", "").exit_code
0
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigError, KeelError, MonitorBusy
from keel.retrain.gate import GateReport, evaluate_gate
from keel.retrain.policy import RetrainPolicy

if TYPE_CHECKING:  # the monitor imports the policy; retrain never imports the monitor
    from keel.monitor.config import MonitorConfig

ACTOR = "keel-retrain"
AUTO_ACTOR = "keel-retrain (approval: auto)"
UNKNOWN_ACTOR = "unknown (no valid token)"
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
#: Events of a run, in the store's event log; ``subject`` is the monitor.
COMPARED, HORIZON, SUPERSEDED = "promotion compared", "promotion horizon", "promotion superseded"
APPROVED, REJECTED, REFUSED = "promotion approved", "promotion rejected", "promotion refused"
#: How long the shadow runs before the horizon is planned from its first day.
FIRST_DAY = timedelta(days=1)
#: Run statuses that are still open (a person may still decide).
OPEN = ("pending",)


class PromotionRefused(KeelError):
    """An approval or rejection that was refused (the reason is said, and audited)."""


@dataclass
class PromotionRun:
    """One comparison and what became of it (see the module docstring for ``status``)."""

    run: str
    monitor: str
    model: str
    status: str
    gate_status: str
    reason: str
    champion_version: int | None = None
    challenger_version: int | None = None
    horizon: int | None = None
    compared_at: str | None = None
    as_of: str | None = None
    counts: dict = field(default_factory=dict)
    gate: dict = field(default_factory=dict)
    decided_by: str | None = None
    decided_at: str | None = None
    decision_reason: str | None = None
    audit_id: int | None = None

    @property
    def exit_code(self) -> int:
        """1 when a person should look (a pending promotion, a refused gate); else 0."""
        return 1 if self.status in ("pending", "refused") else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)


def compare(
    monitor: MonitorConfig,
    store: Any,
    *,
    registry: Any = None,
    as_of: datetime | None = None,
    horizon: int | None = None,
    entity: str | None = None,
    segment: str | None = None,
) -> PromotionRun:
    """Judge the monitor's model's ``challenger`` against its ``champion`` on the shadowed
    requests and record the run (see the module docstring).

    ``as_of``: the decision's time (labels matured by then; default now); ``horizon``:
    override the planned horizon (else planned once from the first day of shadow answers);
    ``entity``: a logged column whose ids repeat (clustered intervals); ``segment``: a
    logged column whose values gate one by one (default: the monitor's first column
    segment, when it is logged).

    >>> import tempfile, pathlib, textwrap
    >>> from keel.monitor.config import parse_config
    >>> from keel.store import ResultStore
    >>> from keel.registry.embedded import EmbeddedRegistry
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    >>> monitor = parse_config(textwrap.dedent(f'''
    ...     monitors:
    ...       - {{name: m, model: loans, baseline: b.keel, window: 7D, logs: {folder},
    ...          retrain: {{}}}}'''), "keel.yaml")[0]
    >>> run = compare(monitor, store, registry=EmbeddedRegistry(store, folder))
    >>> run.status, run.reason
    ('refused', "model 'loans' has no challenger alias: nothing to compare")
    >>> [r.run for r in runs(store, "m")] == [run.run]
    True
    """
    policy = _policy(monitor)
    registry = registry if registry is not None else _open_registry(store)
    as_of = _aware(as_of or datetime.now(UTC))
    aliases = registry.aliases(monitor.model)
    champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
    base = dict(
        run=uuid.uuid4().hex[:12],
        monitor=monitor.name,
        model=monitor.model,
        champion_version=champion,
        challenger_version=challenger,
        as_of=as_of.isoformat(),
    )
    if challenger is None or challenger == champion:
        said = "no challenger alias" if challenger is None else "its challenger is the champion"
        reason = f"model {monitor.model!r} has {said}: nothing to compare"
        return _record(
            store, PromotionRun(status="refused", gate_status="refused", **base, reason=reason)
        )
    if policy.labels_depend_on_decision:
        return _compare_canary(store, registry, monitor, policy, challenger, as_of, segment, base)
    pairs = _pairs(monitor, challenger, as_of, entity, segment)
    planned = horizon or _horizon(store, monitor, policy, challenger, pairs, as_of)
    if planned is None:
        waits = (
            f"the horizon is fixed from the first day of shadow answers (from "
            f"{pairs.first_answer.isoformat()}); compare again after "
            f"{(pairs.first_answer + FIRST_DAY).isoformat()}"
            if pairs.first_answer
            else "no shadow answers of the challenger yet"
        )
        report = _report(policy, None, pairs, f"insufficient data: {waits}")
    elif pairs.n < 2:
        report = _report(policy, planned, pairs, None)
    else:
        report = evaluate_gate(
            pairs.champion,
            pairs.challenger,
            pairs.labels,
            policy.gate_config(planned, seed_parts=("retrain-gate", monitor.name, str(challenger))),
            segments=pairs.segments,
            entities=pairs.entities,
            shadow_drop_share=pairs.drop_share,
        )
    report = latency_guard(report, pairs, policy)
    status = report.status
    if status == "promote":
        status = "pending"
    found = PromotionRun(
        status=status,
        gate_status=report.status,
        reason=report.reason,
        horizon=planned,
        counts=pairs.counts(),
        gate=report.to_dict(),
        **base,
    )
    return _settle(store, registry, monitor, policy, _record(store, found))


def _compare_canary(store, registry, monitor, policy, challenger, as_of, segment, base):
    """``labels_depend_on_decision: true``: the canary's randomized arm, unpaired
    (``keel.retrain.canary``); refused, with the reason, when no canary arm is logged."""
    from keel.retrain.canary import canary_report

    found = canary_report(monitor, store, challenger, as_of, segment=segment)
    if found is None:
        reason = (
            "labels_depend_on_decision: true: the champion's decision chose which requests "
            "have labels, so pairs on the shadowed requests are biased; the comparison is "
            f"the canary's randomized arm, and no canary answer of version {challenger} is "
            f"logged for model {monitor.model!r} (serve it as a canary arm: docs/serving.md)"
        )
        return _record(
            store, PromotionRun(status="refused", gate_status="refused", **base, reason=reason)
        )
    report, counts = found
    status = "pending" if report.status == "promote" else report.status
    run = PromotionRun(
        status=status,
        gate_status=report.status,
        reason=report.reason,
        horizon=report.horizon,
        counts={"comparison": "canary", "paired": report.n, **counts},
        gate=report.to_dict(),
        **base,
    )
    return _settle(store, registry, monitor, policy, _record(store, run))


def _settle(store, registry, monitor, policy, found: PromotionRun) -> PromotionRun:
    """A pending run supersedes the older pending ones, and is promoted at once under
    ``approval: auto``."""
    if found.status == "pending":
        for older in runs(store, monitor.name):
            if older.status == "pending" and older.run != found.run and older.model == found.model:
                store.log_event(
                    ACTOR,
                    SUPERSEDED,
                    subject=monitor.name,
                    details={"run": older.run, "by": found.run},
                )
        if policy.approval == "auto":
            try:
                return _promote_locked(store, registry, found, AUTO_ACTOR, "approval: auto")
            except PromotionRefused:
                return get_run(store, found.run)
    return found


def approve(
    store: Any, run: str, token: str | None, *, registry: Any = None, reason: str | None = None
) -> PromotionRun:
    """Promote a pending run's challenger, for the person whose token this is (see the
    module docstring); raises ``PromotionRefused`` (audited) otherwise.

    >>> import tempfile, pathlib
    >>> from keel.store import ResultStore
    >>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> approve(store, "abc123", "not-a-token")
    Traceback (most recent call last):
    ...
    keel.retrain.promotion.PromotionRefused: refused: no valid token (keel tokens add NAME)
    >>> store.events()["action"].tolist()
    ['promotion refused']
    """
    actor, found = _authorised(store, run, token, "approve")
    registry = registry if registry is not None else _open_registry(store)
    return _promote_locked(store, registry, found, actor, reason)


def reject(
    store: Any, run: str, token: str | None, reason: str, *, registry: Any = None
) -> PromotionRun:
    """Close a pending run without promoting, for the person whose token this is, with a
    reason; raises ``PromotionRefused`` (audited) otherwise.

    >>> import tempfile, pathlib
    >>> from keel.store import ResultStore
    >>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> reject(store, "abc123", None, "not now")
    Traceback (most recent call last):
    ...
    keel.retrain.promotion.PromotionRefused: refused: no valid token (keel tokens add NAME)
    """
    actor, found = _authorised(store, run, token, "reject", registry)
    if not (reason or "").strip():
        _refuse(store, found, actor, "a rejection needs a reason (--reason)", registry)
    try:
        with store.monitor_lock(f"promotion:{found.model}"):
            current = get_run(store, found.run)  # an approval may have finished first
            if current.status not in OPEN:
                _refuse(
                    store,
                    current,
                    actor,
                    f"run {run} is {current.status}, not pending: nothing to reject",
                    registry,
                )
            store.log_event(
                actor,
                REJECTED,
                subject=found.monitor,
                details={"run": found.run, "reason": reason, "version": found.challenger_version},
            )
    except MonitorBusy:
        _refuse(
            store,
            found,
            actor,
            f"a promotion of model {found.model!r} is in progress: not rejected",
            registry,
        )
    return get_run(store, found.run)


def runs(store: Any, monitor: str | None = None) -> list[PromotionRun]:
    """Every run (of one monitor), oldest first, with what became of it.

    >>> import tempfile, pathlib
    >>> from keel.store import ResultStore
    >>> runs(ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}"))
    []
    """
    return list(_replayed(store, subject=monitor).values())


def _replayed(store: Any, **only: Any) -> dict[str, PromotionRun]:
    """The runs the event log's promotion entries tell of (those the store's filter
    ``only`` keeps: ``subject``, ``containing``), by run id, oldest first."""
    from keel.store.views import event_rows

    found: dict[str, PromotionRun] = {}
    for at, actor, action, text in event_rows(
        store, (COMPARED, SUPERSEDED, APPROVED, REJECTED), **only
    ):
        details = json.loads(text or "{}")
        if action == COMPARED:
            record = details["record"]
            found[record["run"]] = PromotionRun(**{**record, "compared_at": at})
            continue
        run = found.get(details.get("run"))
        if run is None or run.status not in OPEN:
            continue
        run.status = {SUPERSEDED: "superseded", APPROVED: "promoted", REJECTED: "rejected"}[action]
        run.decided_by, run.decided_at = actor, at
        run.decision_reason = (
            f"superseded by run {details.get('by')}"
            if action == SUPERSEDED
            else details.get("reason")
        )
        run.audit_id = details.get("audit_id")
    return found


def get_run(store: Any, run: str) -> PromotionRun:
    """One run by its id; ``KeelError`` when there is none.

    >>> import tempfile, pathlib
    >>> from keel.store import ResultStore
    >>> get_run(ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'k.db'}"), "x1")
    Traceback (most recent call last):
    ...
    keel.errors.KeelError: no promotion run 'x1' (keel retrain status MONITOR lists them)
    """
    # Only the entries that name the run (as its JSON text) are read: a run's story is its
    # comparison and the decisions about it, each naming it.
    found = _replayed(store, containing=json.dumps(str(run))).get(run)
    if found is not None:
        return found
    raise KeelError(f"no promotion run {run!r} (keel retrain status MONITOR lists them)")


# -- approval -----------------------------------------------------------------------------


def _authorised(store, run, token, verb, registry=None) -> tuple[str, PromotionRun]:
    from keel.tokens import SHARED_TOKEN_ACTOR, verify_token

    actor = verify_token(store, token)
    try:
        found = get_run(store, run)
    except KeelError:
        found = PromotionRun(run, "", "", "unknown", "", "")
    if actor is None:
        _refuse(store, found, UNKNOWN_ACTOR, "no valid token (keel tokens add NAME)", registry)
    if actor == SHARED_TOKEN_ACTOR:
        _refuse(
            store,
            found,
            actor,
            "a promotion needs a per-person token (keel tokens add "
            "NAME): the shared KEEL_ADMIN_TOKEN does not say who decided",
            registry,
        )
    if found.status == "unknown":
        _refuse(store, found, actor, f"no promotion run {run!r}", registry)
    if found.status not in OPEN:
        _refuse(
            store,
            found,
            actor,
            f"run {run} is {found.status}, not pending: nothing to {verb}",
            registry,
        )
    return actor, found


def _promote_locked(store, registry, found: PromotionRun, actor: str, reason: str | None):
    try:
        with store.monitor_lock(f"promotion:{found.model}"):
            current = get_run(store, found.run)  # another approval may have finished first
            if current.status not in OPEN:
                _refuse(
                    store,
                    current,
                    actor,
                    f"run {found.run} is {current.status}, not pending: nothing to approve",
                    registry,
                )
            champion = registry.aliases(found.model).get(CHAMPION)
            if champion != found.champion_version:
                _refuse(
                    store,
                    found,
                    actor,
                    f"the champion moved since run {found.run} "
                    f"compared (version {found.champion_version} then, {champion} now): "
                    "compare again",
                    registry,
                )
            return _promote(store, registry, found, actor, reason)
    except MonitorBusy:
        _refuse(
            store,
            found,
            actor,
            f"another promotion of model {found.model!r} is in progress: this one was not done",
            registry,
        )
    raise AssertionError("unreachable")


def _promote(store, registry, found: PromotionRun, actor: str, reason: str | None):
    from keel.registry.aliases import promote
    from keel.registry.base import RegistryError

    automatic = actor == AUTO_ACTOR
    said = (
        f"run {found.run}: automatic promotion (approval: auto); {found.reason}"
        if automatic
        else f"run {found.run}: approved by {actor}"
        + (f" ({reason})" if reason else "")
        + f"; {found.reason}"
    )
    evidence = {
        **found.gate,
        "run": found.run,
        "monitor": found.monitor,
        "counts": found.counts,
        "as_of": found.as_of,
        "automatic": automatic,
    }
    try:
        done = promote(
            registry,
            store,
            found.model,
            found.challenger_version,
            CHAMPION,
            said,
            actor,
            gate_report=evidence,
        )
    except RegistryError as error:
        _refuse(store, found, actor, f"the registry refused the move: {error}", registry)
    if found.champion_version is not None:
        promote(
            registry,
            store,
            found.model,
            found.champion_version,
            PREVIOUS,
            f"the champion before run {found.run}",
            actor,
            require_baseline=False,
        )
    store.log_event(
        actor,
        APPROVED,
        subject=found.monitor,
        details={
            "run": found.run,
            "reason": said,
            "automatic": automatic,
            "audit_id": done["id"],
            "version": found.challenger_version,
            "previous_version": found.champion_version,
        },
    )
    return get_run(store, found.run)


def _refuse(store, found: PromotionRun, actor: str, reason: str, registry=None):
    """Write the refusal to the event log and the alias audit, and raise it."""
    store.log_event(
        actor, REFUSED, subject=found.monitor or None, details={"run": found.run, "reason": reason}
    )
    if found.model:
        registry = registry if registry is not None else _open_registry(store)
        store.append_audit(
            registry=registry.uri,
            model=found.model,
            alias=CHAMPION,
            event="refused",
            version=found.challenger_version,
            previous_version=found.champion_version,
            actor=actor,
            reason=reason,
            operation=uuid.uuid4().hex,
            details={"action": "promote", "run": found.run},
        )
    raise PromotionRefused(f"refused: {reason}")


# -- comparing ----------------------------------------------------------------------------


def latency_guard(report: GateReport, pairs: Any, policy: RetrainPolicy) -> GateReport:
    """The shadow's latency guard, when the policy sets ``max_latency_p99_ms``: the
    challenger's p99 predict time (the shadow log's ``latency_ms``, over the requests both
    answered) at most that. A promote that fails it becomes keep_champion. Without the
    bound (or without logged latencies) the report is unchanged: the shadow's predict time
    and the champion's request time are measured in different processes (the shadow
    behind its queue, its batches, on the same cores), so a ratio of the two would judge
    the gateway's load, not the model (measured: 79 ms against 34 ms for the same model
    class on a loaded 2-core machine). Both p99s are in the run's counts either way.

    >>> from types import SimpleNamespace
    >>> from keel.retrain.policy import RetrainPolicy
    >>> report = GateReport("promote", "promote: ...", 5000, 3000, False, 0.0, ())
    >>> slow = SimpleNamespace(champion_latency_p99=4.0, shadow_latency_p99=9.0, n=5000)
    >>> latency_guard(report, slow, RetrainPolicy()).status
    'promote'
    >>> guarded = latency_guard(report, slow, RetrainPolicy(max_latency_p99_ms=5))
    >>> guarded.status, guarded.conditions[-1].threshold, guarded.reason.split(",")[-1]
    ('keep_champion', 5.0, ' limit 5.0 ms')
    """
    from dataclasses import replace

    from keel.retrain.gate import Condition

    champion, shadow = pairs.champion_latency_p99, pairs.shadow_latency_p99
    limit = policy.max_latency_p99_ms
    if shadow is None or limit is None:
        return report
    said = f", champion p99 {champion:.1f} ms (the whole request)" if champion is not None else ""
    note = f"challenger p99 {shadow:.1f} ms (its own predict time){said}, limit {limit:.1f} ms"
    passed = bool(shadow <= limit)
    guard = Condition(
        "latency_p99_ms",
        None,
        "non-inferiority",
        "p99 of latency_ms",
        pairs.n,
        shadow,
        shadow,
        float(limit),
        passed,
        True,
        note,
    )
    found = replace(report, conditions=(*report.conditions, guard))
    if report.status == "promote" and not passed:
        reason = f"keep the champion: latency_p99_ms: {note}"
        found = replace(found, status="keep_champion", reason=reason)
    return found


def _maturity(monitor) -> timedelta:
    """The monitor's ``performance.label_maturity`` (0 when none)."""
    performance = getattr(monitor, "performance", None)
    if performance is not None and performance.label_maturity:
        from keel.windows import duration_seconds

        return timedelta(seconds=duration_seconds(performance.label_maturity))
    return timedelta(0)


def _segment_of(monitor, root, segment):
    """The segment column: the one asked for, else the monitor's first column segment
    when the gateway logs it."""
    if segment is None:
        segment = next((s.column for s in monitor.segments if s.column), None)
        if segment is not None and segment not in _logged(root, monitor.model):
            segment = None
    return segment


def _pairs(monitor, challenger: int, as_of: datetime, entity, segment, labels_as_of=None):
    from keel.retrain.shadow_pairs import read_shadow_pairs
    from keel.store.logs import log_root

    performance = getattr(monitor, "performance", None)
    root = log_root(monitor.logs)
    segment = _segment_of(monitor, root, segment)
    return read_shadow_pairs(
        root,
        monitor.model,
        challenger,
        as_of=as_of,
        label=performance.label if performance is not None else "label",
        maturity=_maturity(monitor),
        entity=entity,
        segment=segment,
        labels_as_of=labels_as_of,
    )


def _logged(root, model: str) -> set[str]:
    import pyarrow.parquet as pq

    from keel.store.queries import log_files

    return {n for f in log_files(root, "predictions", model) for n in pq.read_schema(f).names}


def _horizon(store, monitor, policy: RetrainPolicy, challenger, pairs, as_of) -> int | None:
    """The horizon fixed for this challenger version, planning it once when a first day of
    shadow answers is in (and recording it); None before."""
    events = store.events()
    fixed = events[(events["action"] == HORIZON) & (events["subject"] == monitor.name)]
    for text in fixed["details"].tolist():  # the first fixed is the horizon, even after a race
        details = json.loads(text or "{}")
        if details.get("challenger_version") == challenger:
            return int(details["horizon"])
    if pairs.first_answer is None or as_of < pairs.first_answer + FIRST_DAY:
        return None
    psi, note = pairs.first_day_discordant, ""
    try:
        planned = policy.planned_horizon(discordant_share=psi)
        horizon, parts = planned.n, planned.parts
    except ValueError as error:  # too few disagreements to carry the effect, or no variance
        horizon, parts = policy.min_matured_labels, {}
        note = f"not planned ({error}); min_matured_labels {horizon} instead"
    store.log_event(
        ACTOR,
        HORIZON,
        subject=monitor.name,
        details={
            "model": monitor.model,
            "challenger_version": challenger,
            "horizon": horizon,
            "parts": parts,
            "discordant_share": psi,
            "first_day_answers": pairs.first_day_answers,
            "first_answer": pairs.first_answer.isoformat(),
            "note": note,
        },
    )
    return horizon


def _report(policy: RetrainPolicy, horizon, pairs, reason: str | None) -> GateReport:
    """The gate's answer with too few pairs to measure anything: refused on drops, else
    insufficient data."""
    cap = policy.max_shadow_drop_share
    if pairs.drop_share >= cap:
        status = "refused"
        reason = (
            f"refused: the shadow dropped {pairs.drop_share:.2%} of requests, at or above "
            f"max_shadow_drop_share {cap:.2%}; the paired sample is not the traffic"
        )
    else:
        status = "insufficient_data"
        reason = reason or (
            f"insufficient data: {pairs.n} of {horizon} matured paired labels (the fixed "
            "horizon); no decision"
        )
    return GateReport(status, reason, pairs.n, horizon, policy.sequential, pairs.drop_share, ())


def _record(store, found: PromotionRun) -> PromotionRun:
    record = _plain(found.to_dict())
    record.pop("compared_at")
    store.log_event(ACTOR, COMPARED, subject=found.monitor, details={"record": record})
    return get_run(store, found.run)


def _plain(value: Any) -> Any:
    """JSON-ready: numpy numbers as Python numbers (never their text)."""

    def number(item: Any) -> Any:
        if hasattr(item, "item"):
            return item.item()
        return str(item)

    return json.loads(json.dumps(value, default=number))


def _policy(monitor) -> RetrainPolicy:
    policy = getattr(monitor, "retrain", None)
    if policy is None:
        raise ConfigError(f"monitor {monitor.name!r} has no retrain: policy to compare with")
    return policy


def _open_registry(store: Any) -> Any:
    from keel.registry import open_registry

    return open_registry(store=store)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
