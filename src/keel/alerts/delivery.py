"""Delivering queued notifications: in parallel, with timeouts, retries and backoff.

Notifications wait in the store (``keel_notifications``, status ``queued``)
until a channel takes them, so nothing is lost to a crash or a restart:
``deliver`` picks up whatever is due, sends each on its own thread (a
channel that hangs holds only its own thread, and only for its timeout), and
records the outcome. A failure is retried after 30 s, 1 min, 2 min, … (at
most an hour apart); after ``MAX_ATTEMPTS`` the notice is marked ``failed``
and stays in the store, with its last error, for ``keel alerts list``.

>>> backoff(1), backoff(3), backoff(20)
(30.0, 120.0, 3600.0)
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import Any

from keel.alerts.channels import DeliveryError, send
from keel.alerts.config import ChannelConfig
from keel.store.results import ResultStore, stamp

MAX_ATTEMPTS = 10


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failure."""
    return float(min(30 * 2 ** (attempts - 1), 3600))


def deliver(
    store: ResultStore,
    channels: dict[str, ChannelConfig],
    now: datetime | None = None,
    wait_seconds: float = 30.0,
    on_failure: Any = None,
) -> dict[str, int]:
    """Send every due notification; returns counts of sent, failed (for now) and waiting."""
    now = now or datetime.now(UTC)
    due = store.alerts.due_notices(now)
    counts = {"sent": 0, "failed": 0, "waiting": 0}
    if not due:
        return counts
    pool = ThreadPoolExecutor(max_workers=min(8, len(due)), thread_name_prefix="keel-deliver")
    futures = {}
    for notice in due:
        channel = channels.get(notice["channel"])
        if channel is None:  # the channel left keel.yaml: keep the notice for when it is back
            counts["waiting"] += 1
            continue
        futures[pool.submit(send, channel, json.loads(notice["payload"]))] = notice
    done, pending = wait(futures, timeout=wait_seconds)
    pool.shutdown(wait=False, cancel_futures=True)
    for future, notice in futures.items():
        if future in pending:
            error: BaseException | None = DeliveryError(
                f"{notice['channel']}: still sending after {wait_seconds:g} s"
            )
        else:
            error = future.exception()
        if error is None:
            _record(
                store,
                notice["id"],
                status="sent",
                sent_at=stamp(now),
                last_error=None,
                attempts=notice["attempts"] + 1,
            )
            counts["sent"] += 1
            continue
        attempts = notice["attempts"] + 1
        _record(
            store,
            notice["id"],
            status="failed" if attempts >= MAX_ATTEMPTS else "queued",
            attempts=attempts,
            last_error=str(error)[:2000],
            next_attempt_at=stamp(now + timedelta(seconds=backoff(attempts))),
        )
        counts["failed"] += 1
        if on_failure is not None:
            on_failure(notice["channel"], str(error))
    return counts


def _record(store: ResultStore, number: int, **values: Any) -> None:
    store.alerts.mark_notice(number, **values)


def queue(store: ResultStore, status: str | None = None):
    """Notifications as a DataFrame (newest first), optionally of one status."""
    return store.alerts.notices(status)
