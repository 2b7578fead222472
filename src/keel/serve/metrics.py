"""The gateway's Prometheus metrics, in a registry of its own (one per gateway).

>>> metrics = ServeMetrics()
>>> metrics.shadow_dropped.labels("loans", "challenger", "queue_full").inc()
>>> b"keel_shadow_dropped_total" in metrics.exposition()
True
"""

from __future__ import annotations

from typing import Any

_LATENCY = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
_FSYNC = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1.0)


class ServeMetrics:
    """Latency per model and route, shadow outcomes, WAL syncs and backlog."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "keel_serve_request_seconds",
            "Time to answer a prediction request (validation, model, durable log).",
            ["model", "route"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.responses = Counter(
            "keel_serve_responses_total",
            "Prediction responses by HTTP status.",
            ["model", "status"],
            registry=registry,
        )
        self.records = Counter(
            "keel_serve_records_total",
            "Records answered, by model and route.",
            ["model", "route"],
            registry=registry,
        )
        self.shadow_dropped = Counter(
            "keel_shadow_dropped_total",
            "Sampled requests a shadow did not answer, by reason "
            "(queue_full, timeout, crashed, not_running, error, shutdown).",
            ["model", "challenger", "reason"],
            registry=registry,
        )
        self.shadow_done = Counter(
            "keel_shadow_completed_total",
            "Requests a shadow answered (logged beside the champion's).",
            ["model", "challenger"],
            registry=registry,
        )
        self.shadow_lag = Histogram(
            "keel_shadow_lag_seconds",
            "From a request's answer to its shadow's answer.",
            ["model", "challenger"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.shadow_queue = Gauge(
            "keel_shadow_queue_depth",
            "Requests waiting for or in a shadow process.",
            ["model", "challenger"],
            registry=registry,
        )
        self.fsync = Histogram(
            "keel_wal_fsync_seconds",
            "Time of one fdatasync of the prediction WAL (one per group commit).",
            ["log"],
            buckets=_FSYNC,
            registry=registry,
        )
        self.batch = Histogram(
            "keel_wal_commit_records",
            "Records per group commit.",
            ["log"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
            registry=registry,
        )
        self.backlog = Gauge(
            "keel_wal_backlog_records",
            "Records handed to the log and not yet written.",
            ["log"],
            registry=registry,
        )
        self.log_failures = Counter(
            "keel_wal_failures_total",
            "Group commits that failed (their requests got 503).",
            ["log"],
            registry=registry,
        )
        self.model_info = Gauge(
            "keel_serve_model_info",
            "The versions loaded, by model and arm or shadow (value 1).",
            ["model", "arm", "version"],
            registry=registry,
        )

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def set_models(self, models: dict[str, dict[str, Any]]) -> None:
        """Record which version each arm runs (``{model: {arm: version}}``)."""
        self.model_info.clear()
        for model, arms in models.items():
            for arm, version in arms.items():
                self.model_info.labels(model, arm, str(version)).set(1)
