"""Prometheus metrics: each monitor's latest Results, its alerts, runs and deliveries.

``keel monitor serve --metrics-port N`` serves ``/metrics``; cron and Airflow
users get the same figures with ``keel monitor run --textfile PATH`` (the
node-exporter textfile collector's format) or ``--pushgateway URL``.

Series, one per monitor, model version, segment, check, column and metric,
for the newest window checked:

- ``keel_result_value``, ``keel_result_threshold``: the Result's value and threshold;
- ``keel_result_alerting``: 1 when its status is ``alert``;
- ``keel_result_status``: 1, with the status as a label;

and ``keel_window_start_timestamp_seconds`` (the newest window per series),
``keel_alerts`` (per monitor, rule, severity and state: pending, firing),
``keel_notifications`` (per channel and status: queued, failed, …),
``keel_last_run_duration_seconds`` per monitor (from the store), and, from a
serving process, ``keel_run_duration_seconds`` (a histogram) and
``keel_delivery_failures_total`` per channel.

>>> import tempfile, pathlib
>>> from prometheus_client import generate_latest
>>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
>>> "keel_result_value" in generate_latest(Metrics(store).registry).decode()
True
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from keel.store.results import ResultStore

LABELS = ("monitor", "model", "model_version", "segment", "check", "column", "metric")


class _StoreCollector:
    """Reads the store at scrape time (at most every ``refresh`` seconds)."""

    def __init__(self, store: ResultStore, refresh: float = 10.0) -> None:
        self.store, self.refresh = store, refresh
        self._cached: tuple[float, list] | None = None

    def collect(self):
        if self._cached is None or time.monotonic() - self._cached[0] > self.refresh:
            self._cached = (time.monotonic(), self._families())
        yield from self._cached[1]

    def _families(self) -> list:
        value = GaugeMetricFamily("keel_result_value", "A check's latest value", labels=LABELS)
        threshold = GaugeMetricFamily(
            "keel_result_threshold", "The threshold of a check's latest value", labels=LABELS
        )
        alerting = GaugeMetricFamily(
            "keel_result_alerting", "1 when a check's latest status is alert", labels=LABELS
        )
        status = GaugeMetricFamily(
            "keel_result_status", "A check's latest status, as a label", labels=(*LABELS, "status")
        )
        newest = GaugeMetricFamily(
            "keel_window_start_timestamp_seconds",
            "Start of the newest window checked",
            labels=("monitor", "model", "model_version", "segment"),
        )
        families = [value, threshold, alerting, status, newest]
        frame = self.store.latest()
        if not frame.empty:
            frame = frame[frame["check"] != "window"].fillna(
                {name: "" for name in ("model", "model_version", "segment", "column", "monitor")}
            )
            series = ["monitor", "model", "model_version", "segment"]
            last = frame.groupby(series)["window_start"].transform("max")
            frame = frame[frame["window_start"] == last]
            for row in frame.itertuples(index=False):  # one per check and column, not per data row
                labels = [str(getattr(row, name) or "") for name in LABELS]
                if row.value is not None and row.value == row.value:
                    value.add_metric(labels, float(row.value))
                if row.threshold is not None and row.threshold == row.threshold:
                    threshold.add_metric(labels, float(row.threshold))
                alerting.add_metric(labels, 1.0 if row.status == "alert" else 0.0)
                status.add_metric([*labels, row.status], 1.0)
            for key, group in frame.groupby(series):
                newest.add_metric([str(k) for k in key], _epoch(group["window_start"].iloc[0]))
        families += self._alerts_and_notices()
        families.append(self._last_runs())
        return families

    def _alerts_and_notices(self) -> list:
        firing = GaugeMetricFamily(
            "keel_alerts", "Alerts by state", labels=("monitor", "rule", "severity", "state")
        )
        notices = GaugeMetricFamily(
            "keel_notifications",
            "Notifications by channel and status",
            labels=("channel", "status"),
        )
        counts = self.store.alerts.counts()
        for monitor, rule, severity, state, count in counts["alerts"]:
            firing.add_metric([monitor, rule, severity, state], float(count))
        for channel, state, count in counts["notifications"]:
            notices.add_metric([channel, state], float(count))
        return [firing, notices]

    def _last_runs(self):
        family = GaugeMetricFamily(
            "keel_last_run_duration_seconds",
            "How long each monitor's last run took",
            labels=("monitor",),
        )
        for monitor, started, finished in self.store.alerts.last_runs():
            family.add_metric([monitor or ""], _epoch(finished) - _epoch(started))
        return family


class Metrics:
    """One registry: the store's figures plus this process's run and delivery counters."""

    def __init__(self, store: ResultStore, refresh: float = 10.0) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StoreCollector(store, refresh))
        self.run_seconds = Histogram(
            "keel_run_duration_seconds",
            "Monitor run durations in this process",
            ("monitor",),
            registry=self.registry,
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
        )
        self.delivery_failures = Counter(
            "keel_delivery_failures",
            "Notifications a channel did not take, in this process",
            ("channel",),
            registry=self.registry,
        )

    def serve(self, port: int, address: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on a thread; returns the server (``server_address`` has the port)."""
        from prometheus_client import start_http_server

        server, _ = start_http_server(port, addr=address, registry=self.registry)
        return server

    def write_textfile(self, path: str) -> None:
        """The node-exporter textfile collector's format, written atomically."""
        from prometheus_client import write_to_textfile

        write_to_textfile(path, self.registry)

    def push(self, gateway: str, job: str = "keel") -> None:
        from prometheus_client import push_to_gateway

        push_to_gateway(gateway, job=job, registry=self.registry, timeout=10)


def _epoch(moment: str) -> float:
    return datetime.fromisoformat(str(moment).replace("Z", "+00:00")).timestamp()
