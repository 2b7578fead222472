"""Per-window challenger Results (keel.retrain.watch, keel.checks.challenger), against the
real parts of tests/test_retrain_promotion.py: a SQLite store, the embedded registry with
a champion (v1) and a challenger (v2), and the gateway-format logs of 4,000 requests over
three days, each labelled a day later. The monitor's windows are one day long."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import numpy as np
import pytest
from tests.test_retrain_promotion import START, _monitor, _write_logs, world  # noqa: F401

from keel.checks.base import CHECKS
from keel.checks.challenger import GATE_METRICS
from keel.monitor.config import parse_config
from keel.retrain.gate import METRICS
from keel.retrain.promotion import compare, runs
from keel.retrain.watch import challenger_results, store_challenger_results
from keel.store.logs import LogWriter
from keel.windows import window_key


def _watched(folder, min_effect=0.02):
    """The promotion tests' monitor, planned at a smaller effect (a horizon of about 2,500:
    more than the first day's 1,334 requests, less than the three days' 4,000)."""
    text = f"""
    monitors:
      - name: loans-monitor
        model: loans
        baseline: {folder / "b.keel"}
        logs: {folder / "logs"}
        window: 1D
        segments: [{{name: region, column: region}}]
        retrain: {{min_effect: {min_effect}, margins: {{accuracy: 0.02}}, min_segment_labels: 500}}
    """
    return parse_config(textwrap.dedent(text), "keel.yaml")[0]


def test_the_check_declares_the_gates_metrics():
    assert set(GATE_METRICS) == set(METRICS)
    assert set(METRICS) <= CHECKS["challenger"].metrics


def test_running_estimates_wait_for_the_horizon_and_never_promote(world):  # noqa: F811
    folder, store, registry = world
    _write_logs(folder / "logs", lift=0.06)
    monitor = _watched(folder)
    # Two days in: windows of day 1 and day 2 are closed; labels of day 1 have matured.
    early = store_challenger_results(monitor, store, START + timedelta(days=2), registry=registry)
    # Keyed as the monitor keys its own windows, so they sit beside the window's Results.
    assert {r.window_start for r in early} == {
        window_key(START.timestamp()),
        window_key((START + timedelta(days=1)).timestamp()),
    }
    assert all(r.check == "challenger" and r.model_version == "2" for r in early)
    assert {r.status for r in early} == {"insufficient_data"}
    declared = CHECKS["challenger"].metrics
    assert {r.metric for r in early} <= declared
    segments = {r.segment for r in early if r.metric == "accuracy"}
    assert segments == {None, "north", "south"}
    # The horizon was fixed by the first call after a full day of shadow answers.
    horizon = next(r.threshold for r in early if r.metric == "paired_labels")
    assert 1334 < horizon < 4000
    # Much later, every label has matured: the last window's running n reaches the horizon.
    later = START + timedelta(days=10)
    last = challenger_results(
        monitor,
        store,
        START + timedelta(days=2),
        START + timedelta(days=3),
        later,
        registry=registry,
    )
    n = next(r for r in last if r.metric == "paired_labels")
    assert n.value >= horizon and n.status == "ok"
    overall = next(r for r in last if r.metric == "accuracy" and r.segment is None)
    assert overall.status == "ok" and overall.value > 0 and overall.details["lower"] > 0
    assert overall.details["superiority_passed"] is True
    assert overall.threshold == -0.02
    # The first window's requests alone stay short of the horizon, even with every label.
    first = challenger_results(
        monitor, store, START, START + timedelta(days=1), later, registry=registry
    )
    assert next(r for r in first if r.metric == "paired_labels").value < horizon
    assert {r.status for r in first} == {"insufficient_data"}
    # Only compare decides: no run was recorded, and no alias moved.
    assert runs(store) == [] and registry.aliases("loans")["champion"] == 1
    stored = store.latest(check="challenger")
    assert len(stored) == len(early)


def test_no_challenger_or_no_shadow_means_no_results(world):  # noqa: F811
    folder, store, registry = world
    monitor = _monitor(folder)
    end = START + timedelta(days=1)
    assert challenger_results(monitor, store, START, end, end, registry=registry) == []
    _write_logs(folder / "logs")
    before = START - timedelta(days=3)
    assert challenger_results(monitor, store, before, START, end, registry=registry) == []


def test_compare_store_results_writes_them_from_the_cli(world):  # noqa: F811
    folder, store, registry = world
    _write_logs(folder / "logs")
    config = folder / "keel.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            monitors:
              - name: loans-monitor
                model: loans
                baseline: {folder / "b.keel"}
                logs: {folder / "logs"}
                window: 1D
                retrain: {{min_effect: 0.03, margins: {{accuracy: 0.02}}}}
            """
        )
    )
    env = {**os.environ, "KEEL_DATABASE_URL": f"sqlite:///{folder / 'keel.db'}"}
    env["KEEL_REGISTRY"] = "embedded"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli",
            "retrain",
            "compare",
            "loans-monitor",
            "--config",
            str(config),
            "--now",
            (START + timedelta(days=2)).isoformat(),
            "--store-results",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        check=False,
    )
    assert done.returncode == 1 and "pending" in done.stdout, done.stdout + done.stderr
    assert "challenger Results:" in done.stdout and "in 2 window(s)" in done.stdout
    assert len(store.latest(check="challenger", metric="paired_labels")) == 2


def _latency_logs(root, shadow_ms, n=4000, seed=3):
    """A challenger 6 points more accurate whose own predict time is ``shadow_ms``; the
    champion's whole request takes about 5 ms."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    champion = np.where(rng.random(n) < 0.80, y, 1 - y)
    challenger = np.where(rng.random(n) < 0.86, y, 1 - y)
    times = [START + timedelta(days=3) * (i / n) for i in range(n)]
    common = {"model_name": "loans", "record_format": "keel.serve/1"}
    with LogWriter(root, "predictions", model="loans") as writer:
        writer.append(
            [
                {
                    **common,
                    "request_id": f"r{i:05d}",
                    "event_time": times[i],
                    "model_version": "1",
                    "role": "champion",
                    "route": "champion",
                    "prediction": int(champion[i]),
                    "latency_ms": 4.0 + rng.random() * 2,
                }
                for i in range(n)
            ]
        )
    with LogWriter(root, "predictions", model="loans.shadow") as writer:
        writer.append(
            [
                {
                    **common,
                    "request_id": f"r{i:05d}",
                    "event_time": times[i] + timedelta(milliseconds=5),
                    "model_version": "2",
                    "role": "shadow",
                    "prediction": int(challenger[i]),
                    "latency_ms": shadow_ms * (0.8 + rng.random() * 0.4),
                    "shadow_dropped": None,
                }
                for i in range(n)
            ]
        )
    with LogWriter(root, "labels", model="loans") as writer:
        writer.append(
            [
                {
                    "request_id": f"r{i:05d}",
                    "event_time": times[i] + timedelta(days=1),
                    "label": int(y[i]),
                }
                for i in range(n)
            ]
        )


@pytest.mark.parametrize("shadow_ms, status", [(2.0, "pending"), (20.0, "keep_champion")])
def test_the_shadows_latency_guards_the_promotion(world, shadow_ms, status):  # noqa: F811
    folder, store, registry = world
    _latency_logs(folder / "logs", shadow_ms)
    unbounded = compare(
        _monitor(folder), store, registry=registry, as_of=START + timedelta(days=10)
    )
    assert unbounded.status == "pending"  # no bound: the p99s are reported, not judged
    assert unbounded.counts["shadow_latency_p99_ms"] == pytest.approx(shadow_ms * 1.2, rel=0.05)
    monitor = _monitor(folder, "\n          max_latency_p99_ms: 8")
    run = compare(monitor, store, registry=registry, as_of=START + timedelta(days=10))
    assert run.status == status, run.reason
    guard = run.gate["conditions"][-1]
    assert guard["metric"] == "latency_p99_ms" and guard["passed"] == (status == "pending")
    if status == "keep_champion":
        assert "latency_p99_ms" in run.reason and "limit" in run.reason
    rows = challenger_results(
        monitor,
        store,
        START + timedelta(days=2),
        START + timedelta(days=3),
        START + timedelta(days=10),
        registry=registry,
    )
    latency = next(r for r in rows if r.metric == "latency_p99_ms")
    assert latency.status == ("ok" if status == "pending" else "warn")
    assert latency.value == pytest.approx(guard["estimate"], rel=0.5)
