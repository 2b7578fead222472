"""Alert states over stored Results: pending → firing → resolved, once each.

After a monitor run, ``evaluate`` reads the monitor's latest Results and, per
rule, model version and segment, finds how many of the newest decided windows
in a row break the rule (the streak). A window is decided for a rule when one
of its matching Results is neither ``insufficient_data`` nor provisional (a
performance Result still waiting for its labels). A streak shorter than the rule's ``for`` is
*pending*; as long as ``for`` or longer, *firing*; a firing alert whose
newest window no longer breaks the rule is *resolved*. The state is stored
(``keel_alerts``), so evaluating again (a second run, a restart) changes
nothing and notifies nobody twice. An alert's id is derived from its first
breaching window, so the same episode keeps the same id everywhere.

Entering *firing* and *resolved* queues one notification per channel of the
rule (``keel_notifications``), keyed by alert id + state + revision (the
triggering Results' revision), which receivers can use to drop duplicates.
A notification is not sent, but recorded with the reason, when a silence
matches (``silence``), within the rule's cooldown after the previous
episode fired, or when the run is a backfill. A backfill replays its windows one
by one (``replay``): every episode is stored in order, and only the state at
the end is notified (an alert still firing), unless ``notify_history``.

>>> from keel.alerts.config import AlertRule
>>> rule = AlertRule.model_validate({"name": "r", "check": "feature_drift", "for": 2})
>>> streak([True, False, True, True]), state_for(streak([True, False, True, True]), rule)
(2, 'firing')
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from keel.alerts.config import AlertRule
from keel.store.results import ResultStore, stamp

FIELDS = ("check", "column", "metric", "value", "threshold", "status", "revision")


@dataclass
class Transition:
    """An alert that changed state in this evaluation, and what was done about it."""

    alert_id: str
    monitor: str
    rule: str
    state: str
    previous: str | None
    window_start: str
    summary: str
    payload: dict[str, Any] = field(default_factory=dict)
    notices: dict[str, str] = field(default_factory=dict)  # channel -> queued/silenced/...


def streak(breaches: list[bool]) -> int:
    """How many of the newest windows in a row break the rule."""
    count = 0
    for breach in reversed(breaches):
        if not breach:
            break
        count += 1
    return count


def state_for(run: int, rule: AlertRule) -> str:
    """The state a streak of ``run`` breaching windows puts the rule's alert in."""
    if run >= rule.for_windows:
        return "firing"
    return "pending" if run else "inactive"


def evaluate(
    monitor: Any,
    store: ResultStore,
    now: datetime | None = None,
    notify: bool = True,
    report_url: str | None = None,
    until: str | None = None,
    frame: Any = None,
) -> list[Transition]:
    """Move the monitor's alerts to their new states; queue notifications for the changes.

    ``until`` judges the windows up to that start only (a replay, window by window);
    ``frame`` is the monitor's latest Results when already read."""
    if not monitor.alerts:
        return []
    now = now or datetime.now(UTC)
    frame = store.latest(monitor=monitor.name) if frame is None else frame
    if until is not None and not frame.empty:
        frame = frame[frame["window_start"] <= until]
    if frame.empty:
        return []
    frame = frame.assign(
        model_version=frame["model_version"].fillna(""), segment=frame["segment"].fillna("")
    )
    transitions = []
    for (version, segment), series in frame.groupby(["model_version", "segment"], sort=True):
        for rule in monitor.alerts:
            transition = _evaluate_rule(
                monitor, rule, store, series, version, segment, now, notify, report_url
            )
            if transition is not None:
                transitions.append(transition)
    return transitions


def _evaluate_rule(
    monitor, rule, store, series, version, segment, now, notify, report_url
) -> Transition | None:
    matching = series[
        np.array(
            [
                rule.matches(check, metric, column)
                for check, metric, column in zip(
                    series["check"], series["metric"], series["column"], strict=True
                )
            ],
            dtype=bool,
        )
    ]  # a loop over this series' Results (tens per window), not over data rows
    breaking = matching[
        np.array(
            [
                rule.breaches(_number(value), _number(threshold), status)
                for value, threshold, status in zip(
                    matching["value"], matching["threshold"], matching["status"], strict=True
                )
            ],
            dtype=bool,
        )
    ]
    # Only windows whose matching Results are decided count: a performance Result waiting
    # for labels (provisional, or insufficient data) neither breaks the rule nor clears it,
    # so an alert can fire on an older window once its labels have come in.
    decided = matching[
        np.array(
            [
                status != "insufficient_data" and not (isinstance(d, dict) and d.get("provisional"))
                for status, d in zip(matching["status"], matching["details"], strict=True)
            ],
            dtype=bool,
        )
    ]
    windows = sorted(set(decided["window_start"]))
    if not windows:
        return None
    hit = set(breaking["window_start"]) & set(windows)
    run = streak([window in hit for window in windows])
    state, newest = state_for(run, rule), windows[-1]
    key = (monitor.name, rule.name, version, segment)
    current = store.alerts.current(key)

    context = _Context(store, monitor, rule, key, series, now, notify, report_url)

    def resolve(triggering) -> Transition:
        """The current episode, resolved at the newest window."""
        return _move(
            context,
            current["id"],
            current,
            "resolved",
            newest,
            current["first_window"],
            triggering,
        )

    if state == "inactive":
        if current is None or current["state"] in ("resolved", "cleared"):
            return None
        if current["state"] == "pending":
            store.alerts.update(current["id"], state="cleared", updated_at=stamp(now))
            return None
        return resolve(breaking[breaking["window_start"] == newest])
    first = windows[-run]
    alert_id = _alert_id(*key, first)
    triggering = breaking[breaking["window_start"] == newest]
    if current is not None and current["id"] == alert_id and current["state"] == state:
        store.alerts.update(  # the same episode, one more window: stored, nobody told again
            alert_id,
            last_window=newest,
            updated_at=stamp(now),
            summary=_summary(rule, triggering, newest, state),
        )
        return None
    if current is not None and current["id"] != alert_id and current["state"] == "firing":
        resolve(triggering.iloc[0:0])  # an older episode ended before this one began
    previous = current if current is not None and current["id"] == alert_id else None
    return _move(context, alert_id, previous, state, newest, first, triggering)


@dataclass
class _Context:
    """What one rule's evaluation works with, for one model version and segment."""

    store: ResultStore
    monitor: Any
    rule: AlertRule
    key: tuple[str, str, str, str]  # monitor, rule, model version, segment
    series: Any  # the series' latest Results
    now: datetime
    notify: bool
    report_url: str | None


def _move(context: _Context, alert_id, current, state, newest, first, triggering) -> Transition:
    """Store the alert in its new state; queue its notices when it fires or resolves."""
    store, monitor, rule, key = context.store, context.monitor, context.rule, context.key
    series, now, report_url = context.series, context.now, context.report_url
    revision = int(triggering["revision"].max()) if len(triggering) else 0
    summary = _summary(rule, triggering, newest, state)
    diagnosis = _diagnosis(series, newest)
    results = [{name: _plain(row[name]) for name in FIELDS} for _, row in triggering.iterrows()]
    window_end = _window_end(series, newest)
    payload = {
        "version": "keel.alert/v1",
        "alert_id": alert_id,
        "state": state,
        "previous_state": current["state"] if current is not None else None,
        "idempotency_key": f"{alert_id}:{state}:{revision}",
        "rule": rule.name,
        "severity": rule.severity,
        "monitor": monitor.name,
        "model": monitor.model,
        "model_version": key[2] or None,
        "segment": key[3] or None,
        "window": {"start": newest, "end": window_end},
        "first_window": first,
        "summary": summary,
        "results": results,
        "diagnosis": diagnosis,
        "report_url": report_url,
    }
    values = dict(
        state=state,
        last_window=newest,
        revision=revision,
        updated_at=stamp(now),
        summary=summary,
        details=json.dumps(payload, default=str),
    )
    if state == "resolved":
        values["resolved_at"] = stamp(now)
    store.alerts.save(
        alert_id, key, severity=rule.severity, first_window=first, started_at=now, **values
    )
    transition = Transition(
        alert_id,
        monitor.name,
        rule.name,
        state,
        current["state"] if current is not None else None,
        newest,
        summary,
        payload,
    )
    if state in ("firing", "resolved"):
        reason = _withheld(store, rule, key, alert_id, state, now, context.notify)
        for channel in rule.channels:
            transition.notices[channel] = _queue(store, alert_id, channel, payload, reason, now)
        store.log_event(
            "alerts",
            f"alert {state}",
            f"{monitor.name}/{rule.name}",
            {"alert_id": alert_id, "window": newest, "notices": transition.notices},
        )
    return transition


def replay(
    monitor: Any,
    store: ResultStore,
    windows: list[str],
    now: datetime | None = None,
    notify_history: bool = False,
    report_url: str | None = None,
) -> list[Transition]:
    """Evaluate the rules window by window over ``windows`` (a backfill's, oldest first), so
    every episode in them is stored in order, as a run per window would have stored it.
    Only the state at the end is notified: an alert firing after the last window gets its
    notice (once), the episodes that came and went in between are stored, withheld as
    ``backfill``; ``notify_history`` sends every change instead."""
    if not monitor.alerts or not windows:
        return []
    frame = store.latest(monitor=monitor.name)
    transitions: list[Transition] = []
    for window in sorted(windows):  # a loop over windows, each a few rules
        transitions += evaluate(
            monitor, store, now, notify_history, report_url, until=window, frame=frame
        )
    if not notify_history:
        for transition in transitions:
            _release(store, transition)
    return transitions


def _release(store: ResultStore, transition: Transition) -> None:
    """Send the notices of an alert still firing at the end of a backfill (withheld till
    then): its state is the one people need to know."""
    if store.alerts.state(transition.alert_id) != "firing" or transition.state != "firing":
        return
    rule = transition.rule
    released = (
        "silenced" if silenced(store, transition.monitor, rule, datetime.now(UTC)) else "queued"
    )
    store.alerts.release_backfilled(transition.payload.get("idempotency_key"), released)
    for channel, status in transition.notices.items():
        if status == "backfill":
            transition.notices[channel] = released


def _withheld(store, rule, key, alert_id, state, now, notify) -> str | None:
    """Why this notice is not to be sent, if it is not."""
    if not notify:
        return "backfill"
    if silenced(store, key[0], key[1], now):
        return "silenced"
    if state == "firing" and rule.cooldown_seconds:
        since = now - timedelta(seconds=rule.cooldown_seconds)
        if store.alerts.earlier_since(key, alert_id, since) is not None:
            return "cooldown"
    return None


def _queue(store, alert_id, channel, payload, reason, now) -> str:
    return store.alerts.queue_notice(
        alert_id, channel, payload["idempotency_key"], payload, reason or "queued", now
    )


def silence(
    store: ResultStore,
    monitor: str,
    rule: str = "*",
    hours: float = 2.0,
    reason: str | None = None,
    created_by: str = "cli",
    now: datetime | None = None,
) -> int:
    """Silence a monitor's rule (or every rule: ``*``) for ``hours``; returns the silence id."""
    now = now or datetime.now(UTC)
    number = store.alerts.add_silence(
        monitor, rule, now, now + timedelta(hours=hours), created_by, reason
    )
    store.log_event(created_by, "silence", f"{monitor}/{rule}", {"id": number, "hours": hours})
    return number


def silenced(store: ResultStore, monitor: str, rule: str, now: datetime) -> bool:
    """Whether a silence of the monitor (or ``*``) and rule (or ``*``) holds at ``now``."""
    return store.alerts.silenced(monitor, rule, now)


def active(store: ResultStore, monitor: str | None = None, everything: bool = False):
    """Alerts as a DataFrame: pending and firing ones (``everything``: resolved too)."""
    return store.alerts.listing(monitor, everything)


def _summary(rule: AlertRule, triggering, window: str, state: str) -> str:
    """The alert's headline: its check's one-line summary of the triggering Results."""
    from keel.checks.base import CHECKS

    day = window[:10]
    if state == "resolved":
        return f"resolved: {rule.name} is quiet again in window {day}"
    pending = " (pending)" if state == "pending" else ""
    rows = triggering.to_dict("records")
    check = CHECKS.get(rule.check)
    if check is None:
        return f"{len(rows)} {rule.check} results broke the rule in window {day}{pending}"
    return check.summary(rows, day) + pending


def _diagnosis(series, window: str) -> dict | None:
    rows = series[(series["check"] == "diagnosis") & (series["window_start"] == window)]
    if rows.empty:
        return None
    details = rows.iloc[0]["details"]
    return details if isinstance(details, dict) else None


def _window_end(series, window: str) -> str | None:
    ends = series[series["window_start"] == window]["window_end"].dropna()
    return ends.iloc[0] if len(ends) else None


def _alert_id(monitor: str, rule: str, version: str, segment: str, first: str) -> str:
    text = "\x1f".join((monitor, rule, version, segment, first))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
