"""A monitor that would watch nothing says so; keel.yaml refuses what it would ignore."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keel.baseline import Baseline
from keel.errors import ConfigError
from keel.monitor import load_config, run_monitor
from keel.monitor.config import parse_config
from keel.scenario import ROLES, generate, log_labels_of, log_weeks
from keel.store import ResultStore

QUIET = "monitors:\n  - name: loans\n    model: loans\n    baseline: b.keel\n    window: 7D\n"


def test_a_key_given_twice_is_refused_naming_both_lines():
    text = QUIET + "    window: 1D\n"
    with pytest.raises(
        ConfigError, match=r"line 6\): key 'window' is given twice \(first on line 5"
    ):
        parse_config(text, "keel.yaml")


def test_an_unknown_top_level_key_is_refused_naming_its_line():
    with pytest.raises(ConfigError, match=r"keel.yaml \(line 6\): unknown top-level key 'alert'"):
        parse_config(QUIET + "alert:\n  - {name: x}\n", "keel.yaml")


@pytest.fixture
def world(tmp_path):
    scenario = generate(seed=3, training_weeks=20, week_rows=500, production_weeks=3)
    Baseline.from_data(scenario.training, **ROLES, sample_size=0).save(tmp_path / "b.keel")
    log_weeks(tmp_path / "logs", scenario.weeks)
    for number, week in enumerate(scenario.weeks, start=1):
        log_labels_of(tmp_path / "logs", week, scenario.week_start(number) + timedelta(days=3))
    return tmp_path, scenario.week_start(4) + timedelta(days=1)


def _monitor(folder, model="loans", label="defaulted"):
    text = (
        "monitors:\n  - name: loans\n"
        f"    model: {model}\n    baseline: {folder / 'b.keel'}\n    logs: {folder / 'logs'}\n"
        f"    window: 7D\n    performance: {{task: binary, label: {label}}}\n"
    )
    (folder / "keel.yaml").write_text(text)
    return load_config(folder / "keel.yaml")[0]


def test_a_model_with_no_records_warns_in_every_run_naming_the_models_logged(world, run_keel):
    folder, now = world
    store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    for _ in range(2):
        outcome = run_monitor(_monitor(folder, model="laons"), store, now=now)
        assert outcome["windows"] == 0
        assert outcome["warnings"] == [
            f"no prediction records for model 'laons' in {folder / 'logs'} "
            "(models logged there: loans)"
        ]
    stored = store.latest(check="monitor")
    assert stored["status"].tolist() == ["warn"] and stored["metric"].tolist() == ["records_in_log"]
    ran = run_keel("monitor", "run", "--now", now.isoformat(), cwd=folder)
    assert ran.returncode == 0
    assert "warning: loans: no prediction records for model 'laons'" in ran.stderr


def test_a_label_column_the_label_log_lacks_warns(world):
    folder, now = world
    store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    outcome = run_monitor(_monitor(folder, label="default_flag"), store, now=now)
    assert outcome["windows"] == 3
    (warning,) = outcome["warnings"]
    assert "the label log of 'loans' has no column 'default_flag'" in warning
    assert "defaulted" in warning  # what it has instead
