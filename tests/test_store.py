"""One suite for every results-store backend: a SQLite file always, PostgreSQL where a URL is set.

``.ci/run`` sets KEEL_TEST_POSTGRES_URL, and on CI an unreachable server fails the suite
instead of skipping it.
"""


import pytest
import sqlalchemy as sa

from keel.result import Result
from keel.store import ResultStore, StoreError


@pytest.fixture
def url(store_url):
    return store_url  # a SQLite file, then a fresh PostgreSQL schema (tests/conftest.py)


def _row(value=0.3, status="alert", window="2026-01-01", column="age"):
    return Result(
        check="feature_drift",
        column=column,
        metric="wasserstein",
        value=value,
        threshold=0.1,
        status=status,
        monitor="loans",
        model="m",
        model_version="1",
        window_start=window,
        window_end="2026-01-02",
        details={"p": 0.01},
    )


def test_results_round_trip_with_their_details(url):
    store = ResultStore(url)
    run = store.start_run("loans")
    assert store.write([_row(), _row(column="income", value=0.05, status="ok")], run) == (2, 0)
    store.finish_run(run)
    latest = store.latest(monitor="loans").sort_values("column")
    assert latest["column"].tolist() == ["age", "income"]
    assert latest["details"].tolist()[0] == {"p": 0.01}
    assert set(latest["run_id"]) == {run}


def test_writing_the_same_results_twice_stores_nothing_twice(url):
    store = ResultStore(url)
    rows = [_row(window=f"2026-01-0{day}") for day in range(1, 6)]
    assert store.write(rows) == (5, 0)
    assert store.write(rows) == (0, 5)
    assert len(store.history(monitor="loans")) == 5


def test_a_changed_result_is_a_new_revision_and_latest_serves_it(url):
    store = ResultStore(url)
    store.write([_row(value=0.3)])
    assert store.write([_row(value=0.5)]) == (1, 0)
    assert store.history(monitor="loans")["revision"].tolist() == [0, 1]
    latest = store.latest(monitor="loans")
    assert latest[["value", "revision"]].values.tolist() == [[0.5, 1]]
    store.log_event("monitor", "revised", "loans 2026-01-01", {"reason": "late labels"})
    assert store.events()["action"].tolist() == ["revised"]


def test_a_failed_write_leaves_nothing_half_written(url):
    store = ResultStore(url)
    store.write([_row()])
    bad = [_row(window="2026-02-01"), _row(window="2026-02-02", value="not a number")]
    with pytest.raises(StoreError, match="nothing was written"):
        store.write(bad)
    assert store.history(monitor="loans")["window_start"].tolist() == ["2026-01-01"]


def test_a_store_from_a_newer_keel_is_refused(url):
    ResultStore(url)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE keel_schema_version SET version = 99"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 99, newer than this keel reads"):
        ResultStore(url)


def test_a_store_from_an_older_keel_is_migrated_and_keeps_its_results(url):
    ResultStore(url).write([_row()])
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # back to what version 1 had
        for name in (
            "keel_models",
            "keel_calibrations",
            "keel_monitors",
            "keel_alerts",
            "keel_silences",
            "keel_notifications",
        ):
            connection.execute(sa.text(f"DROP TABLE {name}"))
        _back_to_version_3(connection)
        connection.execute(sa.text("UPDATE keel_schema_version SET version = 1"))
    engine.dispose()
    store = ResultStore(url)
    assert store.version == 5
    assert store.latest(monitor="loans")["value"].tolist() == [0.3]
    assert store.table("models").empty
    migrated = store.events()
    assert migrated[migrated["action"] == "migrated the store"]["subject"].tolist() == ["1 -> 5"]


def _back_to_version_3(connection) -> None:
    """Undo versions 5 (tokens, embedded registry, audit) and 4 (no key hash on Results, no
    unique index, no lock table)."""
    for name in (
        "keel_tokens",
        "keel_model_versions",
        "keel_model_aliases",
        "keel_training_runs",
        "keel_alias_audit",
    ):
        connection.execute(sa.text(f"DROP TABLE {name}"))
    connection.execute(sa.text("DROP INDEX keel_results_once"))
    connection.execute(sa.text("ALTER TABLE keel_results DROP COLUMN key_hash"))
    connection.execute(sa.text("DROP TABLE keel_locks"))


def test_results_an_old_race_stored_twice_are_kept_once_when_migrated(url):
    ResultStore(url).write([_row()])
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        _back_to_version_3(connection)
        columns = "run_id, monitor, model, model_version, segment, window_start, window_end, "
        columns += "\"check\", \"column\", metric, value, threshold, status, revision, details, "
        columns += "created_at"
        connection.execute(
            sa.text(f"INSERT INTO keel_results ({columns}) SELECT {columns} FROM keel_results")
        )
        connection.execute(sa.text("UPDATE keel_schema_version SET version = 3"))
    engine.dispose()
    store = ResultStore(url)
    assert len(store.history(monitor="loans")) == 1
    dropped = store.events()
    assert dropped[dropped["action"] == "dropped duplicated results"]["subject"].tolist() == ["1"]


def test_models_calibrations_and_monitors_are_registered_once_and_changes_logged(url):
    from types import SimpleNamespace

    store = ResultStore(url)
    store.register_model("loans", "3", baseline="ab" * 32)
    store.register_model("loans", "3")
    store.register_model("loans", "4")
    registered = store.table("models").sort_values("version")
    assert registered["version"].tolist() == ["3", "4"]
    assert (registered["last_seen"] >= registered["first_seen"]).all()
    calibration = SimpleNamespace(
        baseline_id="ab" * 32, window="7D", false_alarm_rate=0.01, reference_windows=25
    )
    store.register_calibration(calibration, "c.json")
    store.register_calibration(calibration, "c.json")
    assert store.table("calibrations")[["window", "reference_windows"]].values.tolist() == [
        ["7D", 25]
    ]
    assert store.save_monitor("m", "loans", {"window": "7D"}) is True
    assert store.save_monitor("m", "loans", {"window": "7D"}) is False
    assert store.save_monitor("m", "loans", {"window": "1D"}) is True
    actions = store.events()["action"].tolist()
    assert actions == ["monitor declared", "monitor changed"]
    with pytest.raises(StoreError, match="no table 'runs'"):
        store.table("runs")


def test_an_unreachable_server_is_a_clear_error_with_the_password_hidden():
    with pytest.raises(StoreError, match=r"cannot use the results store at .*:\*\*\*@127.0.0.1:1"):
        ResultStore("postgresql+psycopg://keel:secret@127.0.0.1:1/none?connect_timeout=2")


def test_the_default_store_is_a_sqlite_file_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEEL_DATABASE_URL", raising=False)
    ResultStore().write([_row()])
    assert (tmp_path / ".keel" / "keel.db").is_file()


def test_a_history_of_windows_saves_into_the_store(url):
    import numpy as np
    import pandas as pd

    from keel.baseline import Baseline
    from keel.history import check_history

    rng = np.random.default_rng(0)
    times = pd.date_range("2026-05-01", periods=48 * 60, freq="min", tz="UTC")
    frame = pd.DataFrame({"ts": times, "x": rng.normal(size=len(times))})
    baseline = Baseline.from_data(frame.iloc[:1440], timestamp="ts", sample_size=0)
    history = check_history(baseline, frame.iloc[1440:], "1h")
    store = ResultStore(url)
    written, _ = store.write(history.results())
    assert written == len(history.results())
    assert store.latest()["window_start"].nunique() == 24


def test_a_locked_database_is_retried_then_written(tmp_path):
    import threading
    import time

    url = f"sqlite:///{tmp_path / 'keel.db'}?timeout=0.05"
    store = ResultStore(url)
    blocker = sa.create_engine(url)
    connection = blocker.connect()
    connection.exec_driver_sql("BEGIN EXCLUSIVE")  # another writer holds the database

    def release():
        time.sleep(0.7)
        connection.exec_driver_sql("COMMIT")
        connection.close()

    threading.Thread(target=release).start()
    assert store.write([_row()]) == (1, 0)
    assert len(store.history()) == 1


def test_a_windows_identity_is_compared_exactly_not_within_the_tolerance(url):
    store = ResultStore(url)
    seen = Result(
        "window",
        None,
        "newest_ingestion",
        1_795_569_131.0,
        None,
        "ok",
        monitor="loans",
        window_start="2026-01-01",
    )
    store.write([seen])
    later = Result(
        "window",
        None,
        "newest_ingestion",
        1_795_569_131.0 + 86_400,
        None,
        "ok",
        monitor="loans",
        window_start="2026-01-01",
    )  # a day later: 0.005% apart
    assert store.write([later]) == (1, 0)
    assert store.latest(monitor="loans")["value"].tolist() == [1_795_655_531.0]


def test_a_key_read_back_as_nan_is_the_same_key_as_null(url):
    store = ResultStore(url)
    store.write([_row(column=None)])
    assert store.write([_row(column=float("nan"))]) == (0, 1)
    assert len(store.history(monitor="loans")) == 1
