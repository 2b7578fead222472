"""Runs that race or die: Results stored once, one run per monitor, no alert lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from keel.baseline import Baseline
from keel.monitor import load_config, run_monitor
from keel.scenario import ROLES, generate, log_weeks
from keel.store import MonitorBusy, ResultStore

STORES = ["sqlite", "postgresql"]


@pytest.fixture(params=STORES)
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keel.db'}"
    server = os.environ.get("KEEL_TEST_POSTGRES_URL")
    if not server:
        if os.environ.get("CI"):
            pytest.fail("KEEL_TEST_POSTGRES_URL is not set on CI")
        pytest.skip("no PostgreSQL: set KEEL_TEST_POSTGRES_URL")
    import sqlalchemy as sa

    engine = sa.create_engine(server)
    with engine.begin() as connection:  # a clean store per test
        for table in sa.inspect(connection).get_table_names():
            if table.startswith("keel_"):
                connection.execute(sa.text(f'DROP TABLE "{table}" CASCADE'))
    engine.dispose()
    return server


WRITER = """
import sys, time, pathlib
from keel.result import Result
from keel.store import ResultStore
url, go, monitor = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
store = ResultStore(url)
rows = [Result("feature_drift", f"c{i}", "psi", 0.3, 0.1, "alert", monitor=monitor,
               window_start="2026-03-02T00:00:00Z") for i in range(20)]
while not go.exists():
    time.sleep(0.001)
print(store.write(rows))
"""


def test_concurrent_writers_store_each_result_once(url, tmp_path):
    ResultStore(url)  # created (and migrated) once, before the race
    for race in range(10):
        go = tmp_path / f"go-{race}"
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, url, str(go), f"race-{race}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        time.sleep(0.8)  # all three have read nothing yet and wait at the line
        go.touch()
        outputs = [w.communicate(timeout=60) for w in writers]
        assert all(w.returncode == 0 for w in writers), outputs
        stored = ResultStore(url).history(monitor=f"race-{race}")
        assert len(stored) == 20 and set(stored["revision"]) == {0}
        assert stored["column"].is_unique


@pytest.fixture
def world(tmp_path):
    scenario = generate(seed=3, training_weeks=20, week_rows=1000, production_weeks=6)
    Baseline.from_data(scenario.training, **ROLES, sample_size=0).save(tmp_path / "b.keel")
    log_weeks(tmp_path / "logs", scenario.weeks, version="1")
    (tmp_path / "keel.yaml").write_text(
        "monitors:\n"
        "  - name: loans\n"
        "    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n"
        f"    logs: {tmp_path / 'logs'}\n"
        "    window: 7D\n"
        "    alerts:\n"
        "      - {name: inputs, check: feature_drift}\n"
    )
    return tmp_path, scenario.week_start(7) + timedelta(days=1)


HOLDER = """
import sys, time, pathlib
from keel.store import ResultStore
store = ResultStore(sys.argv[1])
with store.monitor_lock("loans"):
    pathlib.Path(sys.argv[2]).touch()
    time.sleep(30)
"""


def test_a_second_run_of_a_monitor_says_it_is_busy_and_does_nothing(url, world, run_keel):
    folder, now = world
    held = folder / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(held)])
    try:
        deadline = time.monotonic() + 30
        while not held.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held.exists()
        with pytest.raises(MonitorBusy, match="loans"):
            run_monitor(load_config(folder / "keel.yaml")[0], ResultStore(url), now=now)
        os.environ["KEEL_DATABASE_URL"] = url
        try:
            busy = run_keel("monitor", "run", "--now", now.isoformat(), cwd=folder)
        finally:
            del os.environ["KEEL_DATABASE_URL"]
        assert busy.returncode == 0, busy.stderr
        assert "loans: skipped" in busy.stdout and "another process" in busy.stdout
        assert ResultStore(url).latest().empty  # the busy run stored nothing
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing: the next run takes the lock and runs.
    outcome = run_monitor(load_config(folder / "keel.yaml")[0], ResultStore(url), now=now)
    assert outcome["windows"] == 6


CRASH_BEFORE_ALERTS = """
import os, sys
from datetime import datetime
import keel.alerts.engine
from keel.monitor import load_config, run_monitor
from keel.store import ResultStore
def die(*args, **kwargs):
    os._exit(9)  # killed after the Results committed, before the alerts were evaluated
keel.alerts.engine.evaluate = die
run_monitor(load_config(sys.argv[2])[0], ResultStore(sys.argv[1]),
            now=datetime.fromisoformat(sys.argv[3]))
"""


def test_alerts_of_a_run_killed_before_evaluating_them_fire_on_the_next_run(url, world):
    folder, now = world
    killed = subprocess.run(
        [sys.executable, "-c", CRASH_BEFORE_ALERTS, url, folder / "keel.yaml", now.isoformat()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == 9, killed.stderr
    store = ResultStore(url)
    assert not store.latest(monitor="loans").empty  # its Results are stored
    outcome = run_monitor(load_config(folder / "keel.yaml")[0], store, now=now)
    assert outcome["windows"] == 0  # nothing changed since: no window to check again
    assert [(a["rule"], a["state"]) for a in outcome["alerts"]] == [("inputs", "firing")]
    ledger = store.run_log("loans")["status"].tolist()
    assert ledger == ["recovered"]  # the killed run, evaluated by the next (which had nothing)
