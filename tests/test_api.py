"""The public API: every name keel exports resolves, and a monitor can be declared in Python."""

from datetime import timedelta

import keel
from keel.scenario import ROLES, generate, log_weeks


def test_every_exported_name_resolves():
    missing = [name for name in keel.__all__ if getattr(keel, name, None) is None]
    assert missing == []


def test_a_monitor_declared_in_python_runs_like_one_from_keel_yaml(tmp_path):
    scenario = generate(seed=2, training_weeks=20, week_rows=1000, production_weeks=2)
    keel.Baseline.from_data(scenario.training, **ROLES, sample_size=0).save(
        tmp_path / "loans.baseline"
    )
    log_weeks(tmp_path / "logs", scenario.weeks)
    monitor = keel.MonitorConfig(
        name="loans",
        model="loans",
        baseline=str(tmp_path / "loans.baseline"),
        logs=str(tmp_path / "logs"),
        window="7D",
        performance={"task": "binary", "label": "defaulted", "score": None},
    )
    store = keel.ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    outcome = keel.run_monitor(monitor, store, now=scenario.week_start(3) + timedelta(days=1))
    assert outcome["windows"] == 2
    assert set(store.latest(monitor="loans")["check"]) >= {"feature_drift", "diagnosis"}
