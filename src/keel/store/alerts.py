"""The store's alert tables: alert states, their notifications and silences.

``keel.alerts`` decides what an alert's state is and what to send; this is where those
decisions are kept (``keel_alerts``, ``keel_notifications``, ``keel_silences``) and read
back. Each method is one transaction (or one read), so a failure leaves nothing
half-written. Reach it as ``store.alerts`` or ``AlertStore(store)``; an alert's key is
(monitor, rule, model version, segment), with "" for no version or no segment, and moments
are datetimes, written as ``stamp`` writes them.

>>> import tempfile, pathlib
>>> from datetime import UTC, datetime, timedelta
>>> from keel.store import ResultStore
>>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
>>> now = datetime(2026, 1, 5, tzinfo=UTC)
>>> store.alerts.save("a1", ("loans", "drift", "", ""), severity="warning",
...                   first_window="2026-01-01", started_at=now, state="firing",
...                   last_window="2026-01-02", revision=0, updated_at=stamp(now))
>>> store.alerts.state("a1"), store.alerts.current(("loans", "drift", "", ""))["id"]
('firing', 'a1')
>>> store.alerts.queue_notice("a1", "ops", "a1:firing:0", {"state": "firing"}, "queued", now)
'queued'
>>> [n["channel"] for n in store.alerts.due_notices(now)]
['ops']
>>> _ = store.alerts.add_silence("loans", "*", now, now + timedelta(hours=1), "ada", None)
>>> store.alerts.silenced("loans", "drift", now), store.alerts.silenced("cards", "drift", now)
(True, False)
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from keel.store.results import ResultStore, alerts, notifications, runs, silences, stamp

#: An alert's key: monitor, rule, model version ("" for none), segment ("" for none).
AlertKey = tuple[str, str, str, str]

OPEN = ("pending", "firing")


class AlertStore:
    """Alert states, notifications and silences in a ``ResultStore`` (see the module)."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store

    # -- alert states --

    def current(self, key: AlertKey) -> dict | None:
        """The newest episode of ``key`` (by first window, then start), or None."""
        monitor, rule, version, segment = key
        query = (
            sa.select(alerts)
            .where(
                (alerts.c.monitor == monitor)
                & (alerts.c.rule == rule)
                & (alerts.c.model_version == version)
                & (alerts.c.segment == segment)
            )
            .order_by(alerts.c.first_window.desc(), alerts.c.started_at.desc())
            .limit(1)
        )
        with self.store._connection() as connection:
            row = connection.execute(query).mappings().first()
        return dict(row) if row is not None else None

    def save(
        self,
        alert_id: str,
        key: AlertKey,
        *,
        severity: str,
        first_window: str,
        started_at: datetime,
        **values: Any,
    ) -> None:
        """Store an alert in its new state: inserted with its key, severity, first window and
        start when it is new, else only ``values`` (its columns) are updated."""
        with self.store._transaction() as connection:
            exists = connection.execute(
                sa.select(alerts.c.id).where(alerts.c.id == alert_id)
            ).first()
            if exists is None:
                connection.execute(
                    alerts.insert().values(
                        id=alert_id,
                        monitor=key[0],
                        rule=key[1],
                        model_version=key[2],
                        segment=key[3],
                        severity=severity,
                        first_window=first_window,
                        started_at=stamp(started_at),
                        **values,
                    )
                )
            else:
                connection.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))

    def update(self, alert_id: str, **values: Any) -> None:
        """Set columns of a stored alert (its state, last window, summary, …)."""
        with self.store._transaction() as connection:
            connection.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))

    def state(self, alert_id: str) -> str | None:
        """A stored alert's state, or None when there is no such alert."""
        with self.store._transaction() as connection:
            return connection.execute(
                sa.select(alerts.c.state).where(alerts.c.id == alert_id)
            ).scalar()

    def earlier_since(self, key: AlertKey, alert_id: str, since: datetime) -> str | None:
        """The id of another episode of ``key`` that started at ``since`` or later and
        fired (firing or resolved since), or None: the rule's cooldown is still running."""
        monitor, rule, version, segment = key
        query = sa.select(alerts.c.id).where(
            (alerts.c.monitor == monitor)
            & (alerts.c.rule == rule)
            & (alerts.c.model_version == version)
            & (alerts.c.segment == segment)
            & (alerts.c.id != alert_id)
            & (alerts.c.started_at >= stamp(since))
            & (alerts.c.state.in_(["firing", "resolved"]))
        )
        with self.store._connection() as connection:
            row = connection.execute(query).first()
        return None if row is None else row[0]

    def listing(self, monitor: str | None = None, everything: bool = False):
        """Alerts as a DataFrame, newest change first: pending and firing ones (of
        ``monitor``; ``everything``: resolved and cleared too)."""
        import pandas as pd

        query = sa.select(alerts).order_by(alerts.c.updated_at.desc())
        if monitor:
            query = query.where(alerts.c.monitor == monitor)
        if not everything:
            query = query.where(alerts.c.state.in_(list(OPEN)))
        with self.store._connection() as connection:
            rows = connection.execute(query).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=list(alerts.c.keys()))

    # -- notifications --

    def queue_notice(
        self,
        alert_id: str,
        channel: str,
        idempotency_key: str,
        payload: dict,
        status: str,
        now: datetime,
    ) -> str:
        """Queue one notice for ``channel`` with ``status`` (``queued``, or why it is
        withheld), due ``now``; returns its status: the stored one when this idempotency key
        was queued for this channel before (then nothing is written)."""
        with self.store._transaction() as connection:
            done = connection.execute(
                sa.select(notifications.c.status).where(
                    (notifications.c.idempotency_key == idempotency_key)
                    & (notifications.c.channel == channel)
                )
            ).scalar()
            if done is not None:
                return done
            connection.execute(
                notifications.insert().values(
                    alert_id=alert_id,
                    channel=channel,
                    idempotency_key=idempotency_key,
                    status=status,
                    attempts=0,
                    next_attempt_at=stamp(now),
                    payload=json.dumps(payload, default=str, sort_keys=True),
                    created_at=stamp(now),
                )
            )
        return status

    def release_backfilled(self, idempotency_key: str | None, status: str) -> int:
        """Give the notices withheld as ``backfill`` under ``idempotency_key`` the status
        ``status`` (``queued`` or ``silenced``); returns how many there were."""
        with self.store._transaction() as connection:
            return connection.execute(
                notifications.update()
                .where(
                    (notifications.c.idempotency_key == idempotency_key)
                    & (notifications.c.status == "backfill")
                )
                .values(status=status)
            ).rowcount

    def due_notices(self, now: datetime) -> list[dict]:
        """The queued notices whose next attempt is due at ``now``, oldest first."""
        query = (
            sa.select(notifications)
            .where(
                (notifications.c.status == "queued")
                & (notifications.c.next_attempt_at <= stamp(now))
            )
            .order_by(notifications.c.id)
        )
        with self.store._connection() as connection:
            return [dict(r) for r in connection.execute(query).mappings().all()]

    def mark_notice(self, number: int, **values: Any) -> None:
        """Record a delivery attempt's outcome on notice ``number`` (status, attempts, …)."""
        with self.store._transaction() as connection:
            connection.execute(
                notifications.update().where(notifications.c.id == number).values(**values)
            )

    def notices(self, status: str | None = None):
        """Notifications as a DataFrame, newest first (of one ``status``)."""
        import pandas as pd

        query = sa.select(notifications).order_by(notifications.c.id.desc())
        if status:
            query = query.where(notifications.c.status == status)
        with self.store._connection() as connection:
            rows = connection.execute(query).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=list(notifications.c.keys()))

    # -- silences --

    def add_silence(
        self,
        monitor: str,
        rule: str,
        created_at: datetime,
        expires_at: datetime,
        created_by: str,
        reason: str | None,
    ) -> int:
        """Store a silence of ``monitor``'s ``rule`` (``*``: any) until ``expires_at``;
        returns its id."""
        with self.store._transaction() as connection:
            created = connection.execute(
                silences.insert().values(
                    monitor=monitor,
                    rule=rule,
                    created_at=stamp(created_at),
                    expires_at=stamp(expires_at),
                    created_by=created_by,
                    reason=reason,
                )
            )
            return int(created.inserted_primary_key[0])

    def silenced(self, monitor: str, rule: str, now: datetime) -> bool:
        """Whether a silence of this monitor (or ``*``) and rule (or ``*``) holds at ``now``."""
        query = sa.select(silences.c.id).where(
            silences.c.monitor.in_([monitor, "*"])
            & silences.c.rule.in_([rule, "*"])
            & (silences.c.expires_at > stamp(now))
        )
        with self.store._connection() as connection:
            return connection.execute(query).first() is not None

    # -- what the Prometheus export reads --

    def counts(self) -> dict[str, list[tuple]]:
        """In one read: open alerts counted by (monitor, rule, severity, state), and every
        notification counted by (channel, status), under ``alerts`` and ``notifications``."""
        open_alerts = (
            sa.select(
                alerts.c.monitor, alerts.c.rule, alerts.c.severity, alerts.c.state, sa.func.count()
            )
            .where(alerts.c.state.in_(list(OPEN)))
            .group_by(alerts.c.monitor, alerts.c.rule, alerts.c.severity, alerts.c.state)
        )
        notices = sa.select(
            notifications.c.channel, notifications.c.status, sa.func.count()
        ).group_by(notifications.c.channel, notifications.c.status)
        with self.store._connection() as connection:
            return {
                "alerts": [tuple(row) for row in connection.execute(open_alerts)],
                "notifications": [tuple(row) for row in connection.execute(notices)],
            }

    def last_runs(self) -> list[tuple[str | None, str, str]]:
        """(monitor, started_at, finished_at) of each monitor's newest finished run: the
        run ledger figure the Prometheus export shows beside the alert counts."""
        newest = (
            sa.select(runs.c.monitor, sa.func.max(runs.c.id).label("id"))
            .where(runs.c.finished_at.is_not(None))
            .group_by(runs.c.monitor)
            .subquery()
        )
        query = sa.select(runs.c.monitor, runs.c.started_at, runs.c.finished_at).join(
            newest, runs.c.id == newest.c.id
        )
        with self.store._connection() as connection:
            return [tuple(row) for row in connection.execute(query)]
