"""The store battery: every table in the store's ``metadata`` makes a round trip through the
public API (written by it, read back by it), on a SQLite file and on PostgreSQL where
``KEEL_TEST_POSTGRES_URL`` is set (a fresh schema per test).

``ROUND_TRIPS`` maps each table to its round trip. A table added to ``metadata`` without an
entry fails ``test_every_table_has_a_round_trip`` (and its own case below); each round trip
must also send SQL that names its table, so an entry cannot pass without touching it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from keel.result import Result
from keel.store import MonitorBusy, ResultStore
from keel.store.alerts import AlertStore
from keel.store.results import SCHEMA_VERSION, metadata, stamp

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
KEY = ("loans", "drift", "3", "")


@pytest.fixture
def url(store_url):
    return store_url  # a SQLite file, then a fresh PostgreSQL schema (tests/conftest.py)


# -- one round trip per table: public calls that write, then read back what they wrote --


def _schema_version(store: ResultStore, tmp_path) -> None:
    assert store.version == SCHEMA_VERSION
    again = ResultStore(store.engine.url.render_as_string(hide_password=False))
    assert again.version == SCHEMA_VERSION  # reopened: read, not created again
    again.engine.dispose()


def _runs(store: ResultStore, tmp_path) -> None:
    first, second = store.start_run("loans", {"why": "test"}), store.start_run("loans")
    assert sorted(store.unfinished_runs("loans")) == [first, second]
    store.mark_runs([first], "written")
    store.finish_run(second, "alert")
    log = store.run_log("loans")
    assert log["status"].tolist() == ["written", "alert"]
    assert log["finished_at"].notna().all()
    assert store.unfinished_runs("loans") == [first]
    [(monitor, started, finished)] = store.alerts.last_runs()
    assert (monitor, started) == ("loans", log["started_at"].iloc[1]) and finished


def _results(store: ResultStore, tmp_path) -> None:
    row = Result(
        check="feature_drift",
        column="age",
        metric="wasserstein",
        value=0.3,
        threshold=0.1,
        status="alert",
        monitor="loans",
        model_version="3",
        window_start="2026-03-01",
        details={"p": 0.01},
    )
    assert store.write([row]) == (1, 0)
    assert store.write([row]) == (0, 1)
    assert store.write([replace(row, value=0.5)]) == (1, 0)
    latest = store.latest(monitor="loans")
    assert latest[["value", "revision"]].values.tolist() == [[0.5, 1]]
    assert latest["details"].iloc[0] == {"p": 0.01}
    assert len(store.history(monitor="loans")) == 2


def _events(store: ResultStore, tmp_path) -> None:
    store.log_event("ada", "looked", "loans", {"n": 1})
    last = store.events().iloc[-1]
    assert (last["actor"], last["action"], last["subject"]) == ("ada", "looked", "loans")


def _baselines(store: ResultStore, tmp_path) -> None:
    baseline = SimpleNamespace(fingerprint="f" * 64, rows=120, created_at=stamp(NOW))
    store.register_baseline(baseline, tmp_path / "b.keel")
    store.register_baseline(baseline, tmp_path / "elsewhere.keel")  # indexed once
    table = store.table("baselines")
    assert table[["fingerprint", "rows"]].values.tolist() == [["f" * 64, 120]]
    assert table["path"].tolist() == [str(tmp_path / "b.keel")]


def _models(store: ResultStore, tmp_path) -> None:
    store.register_model("loans", "3", baseline="f" * 64)
    store.register_model("loans", "3")
    store.register_model("loans", None)
    table = store.table("models").sort_values("version")
    assert table[["name", "version"]].values.tolist() == [["loans", ""], ["loans", "3"]]
    assert table["baseline"].tolist()[1] == "f" * 64


def _calibrations(store: ResultStore, tmp_path) -> None:
    calibration = SimpleNamespace(
        baseline_id="f" * 64, window="7d", false_alarm_rate=0.01, reference_windows=30
    )
    store.register_calibration(calibration, tmp_path / "c.json")
    store.register_calibration(
        SimpleNamespace(**{**calibration.__dict__, "false_alarm_rate": 0.02}), tmp_path / "c.json"
    )
    table = store.table("calibrations")
    assert table[["window", "false_alarm_rate", "reference_windows"]].values.tolist() == [
        ["7d", 0.02, 30]
    ]


def _monitors(store: ResultStore, tmp_path) -> None:
    assert store.save_monitor("loans", "loans-model", {"window": "7d"})
    assert not store.save_monitor("loans", "loans-model", {"window": "7d"})
    assert store.save_monitor("loans", "loans-model", {"window": "1d"})
    table = store.table("monitors")
    assert table[["name", "model"]].values.tolist() == [["loans", "loans-model"]]
    assert '"1d"' in table["config"].iloc[0]


def _locks(store: ResultStore, tmp_path) -> None:
    with store.monitor_lock("loans"):
        other = ResultStore(store.engine.url.render_as_string(hide_password=False))
        with pytest.raises(MonitorBusy), other.monitor_lock("loans"):
            pass
        other.engine.dispose()
    with store.monitor_lock("loans"):  # released: taken again
        pass


def _alerts(store: ResultStore, tmp_path) -> None:
    alerts = store.alerts
    assert isinstance(alerts, AlertStore) and alerts.current(KEY) is None
    values = dict(state="pending", last_window="2026-03-01", revision=0, updated_at=stamp(NOW))
    alerts.save("a1", KEY, severity="warning", first_window="2026-03-01", started_at=NOW, **values)
    assert alerts.state("a1") == "pending"
    alerts.save("a1", KEY, severity="x", first_window="x", started_at=NOW, state="firing")
    alerts.update("a1", last_window="2026-03-02", summary="drifted")
    current = alerts.current(KEY)
    assert (current["id"], current["state"], current["severity"]) == ("a1", "firing", "warning")
    assert (current["first_window"], current["last_window"]) == ("2026-03-01", "2026-03-02")
    assert alerts.state("nobody") is None
    assert alerts.earlier_since(KEY, "a2", NOW - timedelta(hours=1)) == "a1"
    assert alerts.earlier_since(KEY, "a1", NOW - timedelta(hours=1)) is None
    assert alerts.earlier_since(KEY, "a2", NOW + timedelta(hours=1)) is None
    assert alerts.listing("loans")["id"].tolist() == ["a1"]
    alerts.update("a1", state="resolved", resolved_at=stamp(NOW))
    assert alerts.listing("loans").empty
    assert alerts.listing("loans", everything=True)["state"].tolist() == ["resolved"]
    assert alerts.counts()["alerts"] == []


def _notifications(store: ResultStore, tmp_path) -> None:
    alerts = store.alerts
    payload = {"alert_id": "a1", "state": "firing", "idempotency_key": "a1:firing:0"}
    assert alerts.queue_notice("a1", "ops", "a1:firing:0", payload, "queued", NOW) == "queued"
    assert alerts.queue_notice("a1", "ops", "a1:firing:0", payload, "silenced", NOW) == "queued"
    assert alerts.queue_notice("a1", "pager", "a1:firing:0", payload, "backfill", NOW) == "backfill"
    [due] = alerts.due_notices(NOW)
    assert (due["channel"], due["attempts"]) == ("ops", 0)
    assert alerts.due_notices(NOW - timedelta(seconds=1)) == []
    alerts.mark_notice(due["id"], status="sent", attempts=1, sent_at=stamp(NOW))
    assert alerts.release_backfilled("a1:firing:0", "queued") == 1
    assert alerts.release_backfilled("a1:firing:0", "queued") == 0
    assert alerts.notices()["channel"].tolist() == ["pager", "ops"]  # newest first
    assert alerts.notices("sent")["attempts"].tolist() == [1]
    assert sorted(alerts.counts()["notifications"]) == [("ops", "sent", 1), ("pager", "queued", 1)]


def _silences(store: ResultStore, tmp_path) -> None:
    alerts = store.alerts
    number = alerts.add_silence("loans", "drift", NOW, NOW + timedelta(hours=2), "ada", "deploy")
    assert isinstance(number, int)
    assert alerts.silenced("loans", "drift", NOW + timedelta(hours=1))
    assert not alerts.silenced("loans", "drift", NOW + timedelta(hours=3))
    assert not alerts.silenced("loans", "labels", NOW)
    alerts.add_silence("*", "*", NOW, NOW + timedelta(hours=1), "ada", None)
    assert alerts.silenced("cards", "labels", NOW)


def _tokens(store: ResultStore, tmp_path) -> None:
    from keel.tokens import add_token, list_tokens, revoke_token, verify_token

    token = add_token(store, "ada")
    assert verify_token(store, token) == "ada"
    revoke_token(store, "ada")
    assert verify_token(store, token) is None
    assert [(t["name"], t["revoked_at"] is not None) for t in list_tokens(store)] == [("ada", True)]


def _registry(store: ResultStore, tmp_path):
    from sklearn.dummy import DummyClassifier

    from keel.registry.embedded import EmbeddedRegistry

    registry = EmbeddedRegistry(store, tmp_path / "registry")
    run = registry.log_run("loans", {"params": {"C": 1}}, {})
    version = registry.register("loans", DummyClassifier().fit([[0], [1]], [0, 1]), run)
    return registry, run, version


def _training_runs(store: ResultStore, tmp_path) -> None:
    registry, run, _ = _registry(store, tmp_path)
    assert registry.run_record(run) == {"params": {"C": 1}}


def _model_versions(store: ResultStore, tmp_path) -> None:
    registry, run, version = _registry(store, tmp_path)
    registry.set_tags("loans", version.version, {"keel.baseline": "f" * 64})
    again = registry.get_version("loans", 1)
    assert (again.version, again.run_id, again.tags) == (1, run, {"keel.baseline": "f" * 64})
    assert [v.version for v in registry.versions("loans")] == [1]


def _model_aliases(store: ResultStore, tmp_path) -> None:
    registry, _, version = _registry(store, tmp_path)
    registry.set_alias("loans", "champion", version.version)
    assert registry.aliases("loans") == {"champion": 1}
    registry.delete_alias("loans", "champion")
    assert registry.aliases("loans") == {}


def _alias_audit(store: ResultStore, tmp_path) -> None:
    from keel.registry.aliases import history, promote, verify_chain

    registry, _, version = _registry(store, tmp_path)
    promote(registry, store, "loans", 1, "champion", "first", "ada", require_baseline=False)
    [interval] = history(registry, store, "loans")
    assert (interval["version"], interval["actor"], interval["end"]) == (1, "ada", None)
    assert verify_chain(store) == []


ROUND_TRIPS: dict[str, Callable] = {
    "keel_schema_version": _schema_version,
    "keel_runs": _runs,
    "keel_results": _results,
    "keel_events": _events,
    "keel_baselines": _baselines,
    "keel_models": _models,
    "keel_calibrations": _calibrations,
    "keel_monitors": _monitors,
    "keel_locks": _locks,
    "keel_alerts": _alerts,
    "keel_notifications": _notifications,
    "keel_silences": _silences,
    "keel_tokens": _tokens,
    "keel_model_versions": _model_versions,
    "keel_model_aliases": _model_aliases,
    "keel_training_runs": _training_runs,
    "keel_alias_audit": _alias_audit,
}

#: Tables a backend does not use: PostgreSQL holds a monitor's lock as a session advisory
#: lock, so ``keel_locks`` (SQLite's lock rows) stays empty there; the round trip still runs.
UNUSED = {"postgresql": {"keel_locks"}}


def test_every_table_has_a_round_trip():
    missing = sorted(set(metadata.tables) - set(ROUND_TRIPS))
    stale = sorted(set(ROUND_TRIPS) - set(metadata.tables))
    assert not missing, f"tables with no round trip in the store battery: {missing}"
    assert not stale, f"round trips for tables the store no longer has: {stale}"


@pytest.mark.parametrize("table", sorted(metadata.tables))
def test_the_table_makes_a_round_trip_through_the_public_api(table, url, tmp_path):
    assert table in ROUND_TRIPS, f"{table} has no round trip in ROUND_TRIPS"
    statements: list[str] = []

    def record(connection, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    # Every engine, so the store's opening (its schema version) and a second store count.
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        store = ResultStore(url)
        ROUND_TRIPS[table](store, tmp_path)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    store.engine.dispose()
    if table in UNUSED.get(store.engine.dialect.name, ()):
        return
    named = re.compile(rf"\b{re.escape(table)}\b")
    verbs = [s.lstrip().split(None, 1)[0].upper() for s in statements if named.search(s)]
    assert {"INSERT", "UPDATE", "DELETE"} & set(verbs), f"the round trip wrote nothing to {table}"
    assert "SELECT" in verbs, f"the round trip read nothing back from {table}"
