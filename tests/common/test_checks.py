"""The check battery: every member of ``keel.checks.base.CHECKS`` declares its name, the
metrics it writes and a one-line summary, and what keel writes stays inside what it
declares. A new check is one module and one entry in CHECKS, and gets these for free."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keel.baseline import Baseline
from keel.checks.base import CHECKS, stable_names
from keel.monitor.config import parse_config
from keel.monitor.run import run_monitor
from keel.scenario import ROLES, generate, log_weeks
from keel.store import ResultStore


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_check_is_registered_under_its_own_name_with_its_metrics(name):
    check = CHECKS[name]
    assert check.name == name
    assert check.metrics and all(isinstance(m, str) and m for m in check.metrics)
    assert stable_names()[name] == set(check.metrics)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_checks_alert_summary_is_one_line_naming_its_window(name):
    metric = sorted(CHECKS[name].metrics)[0]
    results = [
        {
            "column": "income",
            "metric": metric,
            "value": 0.5,
            "threshold": 0.1,
            "details": {"verdict": "data drift"},
        },
        {"column": "age", "metric": metric, "value": 0.4, "threshold": 0.1, "details": {}},
    ]
    line = CHECKS[name].summary(results, "2026-07-30")
    assert "\n" not in line and "2026-07-30" in line
    assert line.strip() == line and len(line) < 300


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_an_alert_rule_may_name_every_metric_a_check_declares(name, tmp_path):
    for metric in sorted(CHECKS[name].metrics):
        # KPI metrics are each monitor's own KPI names: declare one by that name.
        kpis = f'    kpis: [{{name: {metric}, expression: "count(*)"}}]\n' if name == "kpi" else ""
        monitors = parse_config(
            "monitors:\n  - name: m\n    model: m\n    baseline: b.keel\n    window: 1D\n"
            f"{kpis}    alerts: [{{name: r, check: {name}, metric: {metric}}}]\n",
            "keel.yaml",
        )
        assert monitors[0].alerts[0].metric == metric


def test_every_result_a_monitor_writes_is_a_declared_check_and_metric(tmp_path):
    scenario = generate(seed=9, training_weeks=20, week_rows=1_000, production_weeks=3)
    Baseline.from_data(scenario.training, **ROLES, sample_size=5_000).save(tmp_path / "b.keel")
    log_weeks(tmp_path / "logs", scenario.weeks)
    monitor = parse_config(
        "monitors:\n  - name: loans\n    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    logs: {tmp_path / 'logs'}\n    window: 7D\n"
        "    segments:\n      - {name: country, column: country}\n"
        '    kpis:\n      - {name: value, expression: "avg(amount)"}\n',
        "keel.yaml",
    )[0]
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    run_monitor(monitor, store, now=scenario.week_start(4) + timedelta(days=1))
    written = store.latest(monitor="loans")[["check", "metric"]].drop_duplicates()
    assert {"feature_drift", "quality", "multivariate", "diagnosis", "kpi", "window"} <= set(
        written["check"]
    )
    undeclared = [
        (check, metric)
        for check, metric in written.itertuples(index=False)
        if check not in CHECKS or metric not in CHECKS[check].metrics
    ]
    assert not undeclared
