"""Monitors from keel.yaml: closed windows once, late data revises, errors name key and line."""

from datetime import timedelta

import pytest

from keel.baseline import Baseline
from keel.errors import ConfigError
from keel.monitor import load_config, run_monitor, status
from keel.monitor.config import parse_config
from keel.scenario import ROLES, generate, log_weeks
from keel.store import ResultStore


@pytest.fixture
def setup(tmp_path):
    scenario = generate(seed=3, training_weeks=20, week_rows=2000, production_weeks=6)
    Baseline.from_data(scenario.training, **ROLES, sample_size=0).save(tmp_path / "b.keel")
    log = tmp_path / "logs"
    log_weeks(log, scenario.weeks, version="1")
    (tmp_path / "keel.yaml").write_text(
        "monitors:\n"
        "  - name: loans\n"
        "    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n"
        f"    logs: {log}\n"
        "    window: 7D\n"
        "    allowed_lateness: 1D\n"
    )
    end = scenario.week_start(7)
    return tmp_path, scenario, end


def test_a_run_checks_closed_windows_once_and_a_second_run_stores_nothing(setup):
    folder, scenario, end = setup
    monitor = load_config(folder / "keel.yaml")[0]
    store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    first = run_monitor(monitor, store, now=end + timedelta(days=1, hours=1))
    assert first["windows"] == 6 and first["written"] > 0
    assert first["alerting"][:1] == [scenario.week_start(5).strftime("%Y-%m-%dT00:00:00Z")]
    second = run_monitor(monitor, store, now=end + timedelta(days=1, hours=2))
    assert second["written"] == 0 and second["windows"] == 0  # nothing new closed
    rows = status(store, "loans", windows=10)
    assert [r["status"] for r in rows][:4] == ["ok"] * 4
    assert set(store.latest()["model_version"]) == {"1"}
    assert store.table("models")[["name", "version"]].values.tolist() == [["loans", "1"]]
    assert store.table("monitors")["name"].tolist() == ["loans"]
    assert len(store.table("baselines")) == 1


def test_rows_that_name_no_version_are_their_own_series_beside_a_versioned_one(tmp_path):
    # A log written before the gateway (no model_version), then by it ("1"): each window's
    # Results belong to the rows' own version, never a second series built of every row.
    scenario = generate(seed=3, training_weeks=20, week_rows=2000, production_weeks=4)
    Baseline.from_data(scenario.training, **ROLES, sample_size=0).save(tmp_path / "b.keel")
    log_weeks(tmp_path / "logs", scenario.weeks[:2])
    log_weeks(tmp_path / "logs", scenario.weeks[2:], version="1")
    (monitor,) = parse_config(
        f"monitors:\n  - {{name: loans, model: loans, baseline: {tmp_path / 'b.keel'}, "
        f"logs: {tmp_path / 'logs'}, window: 7D}}\n",
        "keel.yaml",
    )
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    run_monitor(monitor, store, now=scenario.week_start(5) + timedelta(days=1))
    rows = store.latest(monitor="loans", check="window", metric="rows")
    by_window = {
        (str(r.window_start)[:10], r.model_version if isinstance(r.model_version, str) else None): (
            r.value
        )
        for r in rows.itertuples()
        if not isinstance(r.segment, str)
    }
    starts = [scenario.week_start(n).strftime("%Y-%m-%d") for n in range(1, 5)]
    versions = [None, None, "1", "1"]
    assert {k for k in by_window} == {(s, v) for s, v in zip(starts, versions, strict=True)}
    assert set(by_window.values()) == {2000.0}


def test_a_window_not_yet_closed_waits_for_its_lateness(setup):
    folder, _, end = setup
    monitor = load_config(folder / "keel.yaml")[0]
    store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    early = run_monitor(monitor, store, now=end + timedelta(hours=12))  # lateness is 1 day
    assert early["windows"] == 5


def test_late_data_revises_its_window_and_the_event_log_says_so(setup):
    folder, scenario, end = setup
    monitor = load_config(folder / "keel.yaml")[0]
    store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
    run_monitor(monitor, store, now=end + timedelta(days=2))
    late = scenario.weeks[1].slice(0, 1500)
    late = late.set_column(2, "age", [[90.0] * late.num_rows])  # arrives late, and odd
    log_weeks(folder / "logs", [late], version="1")
    run_monitor(monitor, store, now=end + timedelta(days=3))
    revised = store.events()
    week_two = scenario.week_start(2).strftime("%Y-%m-%dT00:00:00Z")
    assert week_two in " ".join(revised[revised["action"] == "revised window"]["details"])
    history = store.history(
        monitor="loans", window_start=week_two, column="age", metric="wasserstein"
    )
    assert history["revision"].tolist() == [0, 1]


def test_the_cli_runs_monitors_and_shows_their_status(setup, run_keel):
    folder, _, _ = setup
    result = run_keel("monitor", "run", "--config", folder / "keel.yaml", cwd=folder)
    assert result.returncode == 1, result.stderr  # the covariate shift weeks alert
    assert "loans: 6 closed windows checked" in result.stdout
    again = run_keel("monitor", "run", "--config", folder / "keel.yaml", cwd=folder)
    assert "0 results stored" in again.stdout
    shown = run_keel("monitor", "status", cwd=folder)
    assert shown.returncode == 0 and "loans" in shown.stdout and "alert" in shown.stdout


def test_configuration_errors_name_the_key_and_the_line(tmp_path, run_keel):
    text = (
        "monitors:\n  - name: loans\n    model: loans\n    baseline: b.keel\n"
        "    window: 7D\n    false_alarm_rate: 2\n"
    )
    with pytest.raises(ConfigError, match=r"keel.yaml \(line 6\): monitors\[0\]\.false_alarm_rate"):
        parse_config(text, "keel.yaml")
    quiet = text.replace("2\n", "0.1\n")
    with pytest.raises(ConfigError, match=r"monitors\[0\]\.window: .*a number of windows"):
        parse_config(quiet.replace("7D", "10windows"), "keel.yaml")
    assert parse_config(quiet.replace("7D", "1000rows"), "keel.yaml")[0].window == "1000rows"
    with pytest.raises(ConfigError, match=r"monitors\[0\]: row windows .*prediction log"):
        parse_config(quiet.replace("7D", "1000rows") + "    source: t.parquet\n", "keel.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("monitors: [\n", "keel.yaml")
    (tmp_path / "keel.yaml").write_text(text.replace("2\n", "0.1\n"))
    missing = run_keel("monitor", "run", "--config", tmp_path / "keel.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "baseline file b.keel is missing" in missing.stderr


def _wait(condition, seconds=90.0):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def test_serve_survives_a_failing_monitor_and_a_kill_repeating_no_window(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    scenario = generate(seed=4, training_weeks=20, week_rows=1000, production_weeks=7)
    Baseline.from_data(scenario.training, **ROLES, sample_size=0).save(tmp_path / "b.keel")

    def log(weeks):
        log_weeks(tmp_path / "logs", weeks)

    log(scenario.weeks[:6])
    (tmp_path / "keel.yaml").write_text(
        "monitors:\n"
        "  - name: loans\n    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    logs: {tmp_path / 'logs'}\n"
        "    window: 7D\n    schedule: '* * * * * */2'\n"
        "  - name: broken\n    model: loans\n    baseline: nowhere.keel\n"
        f"    logs: {tmp_path / 'logs'}\n    window: 7D\n    schedule: '* * * * * */2'\n"
    )
    database = tmp_path / "keel.db"
    environment = {**os.environ, "KEEL_DATABASE_URL": f"sqlite:///{database}"}

    def start():
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keel.cli",
                "monitor",
                "serve",
                "--config",
                str(tmp_path / "keel.yaml"),
            ],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def windows_seen():
        if not database.exists():
            return set()
        try:
            rows = ResultStore(f"sqlite:///{database}").history(
                monitor="loans", check="window", metric="rows"
            )
        except Exception:  # the server may be mid-write  # noqa: BLE001
            return set()
        return set(rows["window_start"])

    server = start()
    try:
        assert _wait(lambda: len(windows_seen()) == 6), "the first run never stored its windows"
        server.send_signal(signal.SIGKILL)
        server.wait()
        log(scenario.weeks[6:])  # a week closes while the server is down
        server = start()
        assert _wait(lambda: len(windows_seen()) == 7), "the restart did not catch up"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    store = ResultStore(f"sqlite:///{database}")
    rows = store.history(monitor="loans", check="window", metric="rows")
    assert rows.groupby("window_start").size().max() == 1  # no window checked twice
    failures = store.events()
    assert (failures["action"] == "run failed").any()  # the broken monitor, recorded
    assert "broken: failed:" in output and "baseline file nowhere.keel is missing" in output


def test_from_a_trained_model_to_a_monitor_in_a_handful_of_commands(tmp_path, run_keel):
    """The README's steps, as a user types them."""
    import pyarrow.parquet as pq

    scenario = generate(seed=5, training_weeks=20, week_rows=2000, production_weeks=6)
    pq.write_table(scenario.training, tmp_path / "training.parquet")
    pq.write_table(scenario.production().drop_columns(["defaulted"]), tmp_path / "served.parquet")
    steps = [
        (
            "baseline",
            "create",
            "training.parquet",
            "-o",
            "loans.baseline",
            "--target",
            "defaulted",
            "--id",
            "application_id",
            "--timestamp",
            "event_time",
        ),
        ("baseline", "calibrate", "loans.baseline", "training.parquet", "--window", "7D"),
        ("ingest", "predictions", "served.parquet", "--model", "loans", "--id", "application_id"),
    ]
    for step in steps:
        done = run_keel(*step)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    assert (tmp_path / "loans.calibration-7D.json").is_file()
    (tmp_path / "keel.yaml").write_text(
        "monitors:\n"
        "  - name: loans\n"
        "    model: loans\n"
        "    baseline: loans.baseline\n"
        "    calibration: loans.calibration-7D.json\n"
        "    window: 7D\n"
        "    schedule: '0 * * * *'\n"
    )
    checked = run_keel("monitor", "run")
    assert checked.returncode == 1, checked.stderr  # weeks 5 and 6 shift
    assert "loans: 6 closed windows checked" in checked.stdout
    shown = run_keel("monitor", "status")
    assert shown.stdout.count("alert") >= 2 and shown.stdout.count(" ok ") >= 3, shown.stdout
    store = ResultStore(f"sqlite:///{tmp_path / '.keel' / 'keel.db'}")
    assert store.table("calibrations")["window"].tolist() == ["7D"]


def test_an_unreachable_database_at_start_is_one_clear_line_and_exit_2(
    setup, run_keel, monkeypatch
):
    folder, _, _ = setup
    monkeypatch.setenv(
        "KEEL_DATABASE_URL", "postgresql+psycopg://keel:secret@127.0.0.1:1/none?connect_timeout=2"
    )
    result = run_keel("monitor", "run", "--config", folder / "keel.yaml", cwd=folder)
    assert result.returncode == 2
    assert "cannot use the results store at" in result.stderr and "secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_replay_runs_as_of_a_time_and_status_shows_the_last_n_windows(setup, run_keel):
    folder, scenario, end = setup
    as_of = (scenario.week_start(4) + timedelta(days=1, hours=1)).isoformat()
    early = run_keel("monitor", "run", "--config", folder / "keel.yaml", "--now", as_of, cwd=folder)
    assert early.returncode == 0, early.stderr  # weeks 1–3 closed, all quiet
    assert "loans: 3 closed windows checked" in early.stdout
    run_keel("monitor", "run", "--config", folder / "keel.yaml", cwd=folder)
    shown = run_keel("monitor", "status", "--last", "6", cwd=folder)
    assert shown.returncode == 0 and shown.stdout.count("loans ") == 6, shown.stdout
    default = run_keel("monitor", "status", cwd=folder)
    assert default.stdout.count("loans ") == 5
    bad = run_keel("monitor", "run", "--config", folder / "keel.yaml", "--now", "soon", cwd=folder)
    assert bad.returncode == 2 and "--now 'soon' is not a date or time" in bad.stderr


def test_monitor_serve_rebinds_a_registry_baseline_before_each_run(setup):
    # After a promotion, models:/loans@champion names another version: `keel monitor serve`
    # reads keel.yaml again before a run, so the new champion is judged on its own baseline.
    import threading
    import time

    from keel.monitor.schedule import serve

    folder, scenario, _ = setup
    (monitor,) = load_config(folder / "keel.yaml")
    cache = folder / ".keel" / "registry-cache" / "loans"
    paths = []
    for version, bins in ((1, 20), (2, 10)):  # two versions' baselines, where binding keeps them
        path = cache / str(version) / "baseline.keel"
        path.parent.mkdir(parents=True)
        Baseline.from_data(scenario.training, **ROLES, sample_size=0, bins=bins).save(path)
        paths.append(path)
    stale = monitor.model_copy(update={"baseline": str(paths[0]), "schedule": "0 0 1 1 *"})
    fresh = stale.model_copy(update={"baseline": str(paths[1])})
    store, stop, lines = ResultStore(f"sqlite:///{folder / 'keel.db'}"), threading.Event(), []
    server = threading.Thread(
        target=serve,
        args=([stale], store),
        kwargs={"stop": stop, "report": lines.append, "reload": lambda: [fresh]},
    )
    server.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("windows checked" in x for x in lines):
            time.sleep(0.1)
    finally:
        stop.set()
        server.join(timeout=60)
    assert any("now judged against" in line and "/2/" in line for line in lines), lines
    assert store.table("baselines")["fingerprint"].tolist() == [Baseline.load(paths[1]).fingerprint]
