"""A monitor run is one pipeline: it reads what the store holds once, then for each changed
window reads → checks → writes; each window is diagnosed once (docs/architecture.md)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

import keel.diagnosis
import keel.history
from keel.baseline import Baseline
from keel.monitor.config import parse_config
from keel.monitor.run import run_monitor
from keel.scenario import ROLES, generate, log_weeks
from keel.store import ResultStore


@pytest.fixture(scope="module")
def scenario_logged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    scenario = generate(seed=5, training_weeks=20, week_rows=1_500, production_weeks=4)
    Baseline.from_data(scenario.training, **ROLES, sample_size=5_000).save(folder / "b.keel")
    log_weeks(folder / "logs", scenario.weeks)
    return folder, scenario


def _monitor(folder, segments: bool, performance: bool):
    text = (
        "monitors:\n  - name: loans\n    model: loans\n"
        f"    baseline: {folder / 'b.keel'}\n    logs: {folder / 'logs'}\n    window: 7D\n"
    )
    if segments:
        text += "    segments:\n      - {name: country, column: country}\n"
    if performance:  # a KPI joins the window's verdict as performance does (judge_with)
        text += "    kpis:\n"
        text += '      - {name: big_loans, expression: "avg(CAST(amount > 5000 AS INTEGER))"}\n'
    return parse_config(text, "keel.yaml")[0]


def _run_counting(monitor, store, now, monkeypatch):
    """Run the monitor; count the SELECTs on the Result table and the diagnoses per window."""
    selects: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        # Reads of what the store holds; a write's own look-up of the keys it is about to
        # write (``window_start IN (...)``) is the write's, one per series written.
        selecting = statement.lstrip().upper().startswith("SELECT")
        reading = selecting and "keel_results" in statement
        if reading and "window_start IN" not in statement:
            selects.append(statement)

    diagnosed: Counter = Counter()
    original = keel.diagnosis.diagnose

    def counting(results, *args, **kwargs):
        starts = {(r.window_start, r.segment) for r in results if r.window_start}
        diagnosed.update(starts)
        return original(results, *args, **kwargs)

    monkeypatch.setattr(keel.history, "diagnose", counting)
    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        outcome = run_monitor(monitor, store, now=now)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    return outcome, selects, diagnosed


@pytest.mark.parametrize("performance", [False, True], ids=["drift", "with-kpis"])
def test_each_window_is_diagnosed_once(scenario_logged, tmp_path, monkeypatch, performance):
    folder, scenario = scenario_logged
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    now = scenario.week_start(5) + timedelta(days=1)
    outcome, _, diagnosed = _run_counting(
        _monitor(folder, segments=False, performance=performance), store, now, monkeypatch
    )
    assert outcome["windows"] == 4
    assert len(diagnosed) == 4 and set(diagnosed.values()) == {1}, diagnosed
    stored = store.latest(monitor="loans", check="diagnosis")
    assert sorted(stored["window_start"]) == sorted(start for start, _ in diagnosed)


def test_the_stored_identities_are_read_once_whatever_the_number_of_series(
    scenario_logged, tmp_path, monkeypatch
):
    folder, scenario = scenario_logged
    now = scenario.week_start(5) + timedelta(days=1)
    counts = {}
    for segments in (False, True):
        store = ResultStore(f"sqlite:///{tmp_path / f'keel-{segments}.db'}")
        monitor = _monitor(folder, segments=segments, performance=False)
        outcome, selects, _ = _run_counting(monitor, store, now, monkeypatch)
        assert outcome["windows"] == 4
        # and again: nothing changed, nothing is checked, and the store is read the same way
        again, selects_again, diagnosed = _run_counting(monitor, store, now, monkeypatch)
        assert again["windows"] == 0 and not diagnosed
        counts[segments] = (len(selects), len(selects_again))
    series = store.latest(monitor="loans", check="window")["segment"].fillna("").nunique()
    assert series >= 3  # the whole and at least two countries
    # One read of what the store holds per run, not one per series (or per window); the
    # first run also reads back the revisions it wrote, to log late data.
    assert counts[True] == counts[False] == (2, 1), counts
