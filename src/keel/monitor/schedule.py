"""``keel monitor serve``: run each monitor on its cron schedule, for as long as it is left running.

On start it runs every monitor once, so windows that closed while it was
down are caught up; the results store says which windows were checked, so a
restart repeats none and misses none. A monitor that fails (a missing
baseline, an unreadable log) is recorded in the event log and retried at its
next time; it never stops the others or the loop. SIGTERM and SIGINT stop it
between runs. Schedules are cron expressions (five fields, or six with
seconds last), read with croniter.

A monitor with a ``stream:`` block also runs its streaming step
(``keel.monitor.stream.run_stream``) every ``stream_interval`` (default 60 s)
between its cron runs, and once at start.

Beside the schedule, a delivery thread sends queued alert notifications
every few seconds (``keel.alerts.delivery``: a slow or broken channel holds
only its own notices), and, given ``metrics``, ``/metrics`` is served for
Prometheus (``keel.monitor.prometheus``).

>>> from keel.monitor.schedule import next_times
>>> next_times({"m": "0 * * * *"}, now=0.0)
{'m': 3600.0}
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from keel.monitor.config import MonitorConfig
from keel.monitor.run import run_monitor
from keel.store import MonitorBusy
from keel.windows import duration_seconds


def next_times(schedules: dict[str, str], now: float) -> dict[str, float]:
    from croniter import croniter

    return {
        name: float(croniter(expression, now).get_next(float))
        for name, expression in schedules.items()
    }


def serve(
    monitors: list[MonitorConfig],
    store: Any,
    stop: threading.Event | None = None,
    report: Callable[[str], None] = print,
    clock: Callable[[], float] = time.time,
    metrics: Any = None,
    deliver_every: float = 5.0,
    reload: Callable[[], list[MonitorConfig]] | None = None,
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT arrive, in the main thread).

    ``reload`` (``keel monitor serve``: reading keel.yaml again) is called before each run
    of a monitor whose baseline was bound from the registry (``models:/NAME@champion``),
    so that after a promotion the next run judges the new champion against its own
    baseline; if it fails, the run keeps the configuration it had, and says so."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
    by_name = {m.name: m for m in monitors}
    schedules = {m.name: m.schedule for m in monitors}
    channels = {name: c for m in monitors for name, c in m.channels.items()}
    courier = threading.Thread(
        target=_deliver_until,
        args=(stop, store, channels, deliver_every, report, metrics),
        name="keel-courier",
        daemon=True,
    )
    courier.start()
    streaming = {m.name: duration_seconds(m.stream.stream_interval) for m in monitors if m.stream}
    for monitor in monitors:  # catch up on whatever closed while nobody was watching
        monitor = by_name[monitor.name] = _rebound(monitor, reload, report)
        _run_safely(monitor, store, report, metrics)
        if monitor.name in streaming:
            _stream_safely(monitor, store, report)
    due: dict[tuple[str, str], float] = {
        (name, "cron"): moment for name, moment in next_times(schedules, clock()).items()
    }
    due |= {(name, "stream"): clock() + every for name, every in streaming.items()}
    while not stop.is_set():
        key = min(due, key=due.get)
        name, kind = key
        if stop.wait(max(due[key] - clock(), 0.0)):
            break
        if kind == "stream":  # between the cron runs: the detectors read the logs' tail
            _stream_safely(by_name[name], store, report)
            due[key] = clock() + streaming[name]
        else:
            by_name[name] = _rebound(by_name[name], reload, report)
            _run_safely(by_name[name], store, report, metrics)
            due[key] = next_times({name: schedules[name]}, clock())[name]
    courier.join(timeout=deliver_every + 35)


def _rebound(
    monitor: MonitorConfig,
    reload: Callable[[], list[MonitorConfig]] | None,
    report: Callable[[str], None],
) -> MonitorConfig:
    """The monitor as the configuration now binds it, when its baseline came from the
    registry (the alias may have moved since); otherwise, or on a failure, as it was."""
    from keel.binding import bound_version

    if reload is None or bound_version(str(monitor.baseline)) is None:
        return monitor
    try:
        fresh = {m.name: m for m in reload()}
    except Exception as error:  # noqa: BLE001 - a bad edit must not stop the loop
        report(f"{monitor.name}: keel.yaml could not be read again ({error}); keeping its baseline")
        return monitor
    found = fresh.get(monitor.name)
    if found is None:
        return monitor
    if found.baseline != monitor.baseline:
        report(f"{monitor.name}: now judged against {found.baseline} (the alias moved)")
    return found


def _deliver_until(stop, store, channels, every, report, metrics) -> None:
    """Send queued notices until stopped; a failing store or channel only waits a turn."""
    from keel.alerts.delivery import deliver

    def failed(channel: str, error: str) -> None:
        report(f"delivery to {channel} failed (will retry): {error}")
        if metrics is not None:
            metrics.delivery_failures.labels(channel).inc()

    while True:
        try:
            if channels:
                deliver(store, channels, on_failure=failed)
        except Exception as error:  # noqa: BLE001 - the courier outlives a bad turn
            report(f"delivery failed: {error}")
        if stop.wait(every):
            return


def _stream_safely(monitor: MonitorConfig, store: Any, report: Callable[[str], None]) -> None:
    """One streaming step (keel.monitor.stream); a failure is reported and retried next time."""
    from keel.monitor.stream import run_stream

    try:
        step = run_stream(monitor, store)
        if step.alarms or step.alerts:
            report(
                f"{monitor.name}: stream: {len(step.alarms)} alarms"
                + "".join(f"; alert {a['state']}: {a['summary']}" for a in step.alerts)
            )
    except MonitorBusy as busy:
        report(f"{monitor.name}: stream skipped: {busy}")
    except Exception as error:  # noqa: BLE001 - one monitor failing must not stop the loop
        report(f"{monitor.name}: stream failed: {error}")
        try:
            store.log_event("monitor serve", "stream failed", monitor.name, {"error": str(error)})
        except Exception:  # noqa: BLE001 - the store itself may be what failed
            report(f"{monitor.name}: could not record the failure in the store")


def _run_safely(
    monitor: MonitorConfig, store: Any, report: Callable[[str], None], metrics: Any = None
) -> None:
    started = time.perf_counter()
    try:
        outcome = run_monitor(monitor, store)
        if metrics is not None:
            metrics.run_seconds.labels(monitor.name).observe(time.perf_counter() - started)
        report(
            f"{monitor.name}: {outcome.windows} windows checked, "
            f"alerting: {', '.join(outcome.alerting) or 'none'}"
            + "".join(f"; alert {a['state']}: {a['summary']}" for a in outcome.alerts)
        )
        if getattr(monitor, "retrain", None) is not None:  # the loop, after the windows
            from keel.retrain.loop import retrain_step

            step = retrain_step(monitor, store)  # never raises; a failure is in the step
            report(
                step.line() + "".join(f"; alert {a['state']}: {a['summary']}" for a in step.alerts)
            )
    except MonitorBusy as busy:  # another process runs it now: its turn, not a failure
        report(f"{monitor.name}: skipped: {busy}")
    except Exception as error:  # noqa: BLE001 - one monitor failing must not stop the loop
        report(f"{monitor.name}: failed: {error}")
        try:
            store.log_event("monitor serve", "run failed", monitor.name, {"error": str(error)})
        except Exception:  # noqa: BLE001 - the store itself may be what failed
            report(f"{monitor.name}: could not record the failure in the store")
