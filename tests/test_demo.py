import json
import re
import subprocess
import sys

import numpy as np
import pytest

from keel.scenario import generate

#: Which weeks the drift checks alone alert in: the planted changes of weeks 5–11 and the
#: truncated window of week 15 (the stale value of week 16 is invisible to them).
ALERTING_WEEKS = [False] * 4 + [True] * 7 + [False] * 3 + [True, False]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli", "demo", "-o", str(folder / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return folder / "out", result


def test_the_demo_tells_every_event_in_its_week_and_nothing_in_the_quiet_ones(demo_run):
    _, result = demo_run
    assert result.returncode == 0, result.stderr
    lines = {
        int(found.group(1)): line
        for line in result.stdout.splitlines()
        if (found := re.match(r"\s*week (\d+) \(", line))
    }
    assert sorted(lines) == list(range(1, 17))
    # 13 and 14: concept drift, invisible in the inputs; 16: a stale value, distributed like
    # a fresh one
    for week in (1, 2, 3, 4, 12, 13, 14, 16):
        assert lines[week].endswith(": quiet"), lines[week]
    assert "covariate shift in age, income" in lines[5] and "covariate shift" in lines[6]
    assert "upstream unit change in amount — values 100× the reference" in lines[7]
    assert "null spike in income: 25% missing" in lines[9]
    assert "new category in device: smart-tv" in lines[10]
    # Only the multivariate checks see the broken correlation: no single column moved.
    assert "broken correlation between amount and income: no single column moved" in lines[11]
    assert "covariate shift in user_applications_7d" in lines[15]  # what drift alone says
    assert "holdout ROC AUC" in result.stdout and "calibrated on 26 training weeks" in result.stdout


def test_the_demo_writes_reports_a_history_and_a_baseline_with_the_models_metrics(demo_run):
    from keel.baseline import Baseline

    folder, _ = demo_run
    for week in range(1, 17):
        assert (folder / "reports" / f"week_{week}.html").stat().st_size < 300_000
    timeline = (folder / "reports" / "timeline.html").read_text()
    assert "Alerts in 8 of 16 windows" in timeline
    history = json.loads((folder / "history.json").read_text())
    assert [w["alert"] for w in history["windows"]] == ALERTING_WEEKS
    baseline = Baseline.load(folder / "baseline.keel")
    assert 0.5 < baseline.metrics["roc_auc"] <= 1.0
    roles = {c.name: c.role for c in baseline.schema.columns}
    assert (roles["score"], roles["prediction"], roles["defaulted"]) == (
        "score",
        "prediction",
        "target",
    )


def test_keel_drift_on_each_demo_week_names_the_changed_inputs(demo_run, run_keel):
    folder, _ = demo_run
    changes = generate(training_weeks=1, week_rows=10).changes
    for week in range(1, 9):
        report = folder / f"w{week}.json"
        run_keel(
            "drift",
            folder / "baseline.keel",
            folder / "production" / f"week_{week}.parquet",
            "--json",
            report,
        )
        drifted = set(json.loads(report.read_text())["dataset"]["drifted_columns"])
        assert drifted == set(changes.get(week, {}).get("columns", [])), week


def test_the_windowed_cli_on_the_demo_log_finds_the_same_weeks(demo_run, run_keel):
    folder, _ = demo_run
    result = run_keel(
        "drift",
        folder / "baseline.keel",
        folder / "production.parquet",
        "--window",
        "7D",
        "--calibrate-on",
        folder / "training.parquet",
        "--false-alarm-rate",
        "0.001",
        "--json",
        folder / "windows.json",
    )
    assert result.returncode == 1, result.stderr
    windows = json.loads((folder / "windows.json").read_text())["windows"]
    assert [w["alert"] for w in windows] == ALERTING_WEEKS
    assert windows[4]["drifted_columns"] == ["age", "income"]
    assert {"start", "end", "drift", "columns", "quality"} <= set(windows[0])


def test_the_demo_runs_the_same_weeks_through_logs_a_monitor_and_the_store(
    demo_run, run_keel, monkeypatch
):
    folder, result = demo_run
    # keel.yaml names it; loading checks it is there (and long enough)
    monkeypatch.setenv("KEEL_DEMO_WEBHOOK_SECRET", "any-secret-of-at-least-32-bytes-long")
    assert "keel monitor status" in result.stdout
    assert (folder / "keel.yaml").is_file() and (folder / ".keel" / "keel.db").is_file()
    assert list((folder / "logs" / "predictions" / "model=loans").glob("date=*"))
    from keel.store import ResultStore

    windows = ResultStore(f"sqlite:///{folder / '.keel' / 'keel.db'}").latest(
        check="window", metric="rows"
    )
    assert len(windows) == 22  # the watched weeks, then the served ones (each its own series)
    again = run_keel("monitor", "run", "--config", folder / "keel.yaml", cwd=folder)
    assert "0 closed windows checked" in again.stdout  # the store already holds every week


def test_the_demo_prints_each_alert_as_its_webhook_received_it_with_the_diagnosis(demo_run):
    _, result = demo_run
    notices = [line for line in result.stdout.splitlines() if "⇢ webhook" in line]
    assert notices, result.stdout
    first_week = min(int(line.split()[1]) for line in notices)
    assert first_week == 5  # nothing during the quiet month
    assert any("[FIRING] inputs-drifted" in line and "age, income" in line for line in notices)
    assert any("[FIRING] data-quality (critical)" in line for line in notices)
    diagnoses = [line for line in result.stdout.splitlines() if "diagnosis:" in line]
    assert len(diagnoses) == len(notices)
    assert all(line.endswith("(signature verified)") for line in diagnoses)
    assert any("diagnosis: data drift: income" in line for line in diagnoses)
    assert any("diagnosis: pipeline fault: unit change in amount" in line for line in diagnoses)


def test_the_demo_streams_the_score_and_alerts_within_a_day_of_the_covariate_shift(demo_run):
    _, result = demo_run
    streamed = [line for line in result.stdout.splitlines() if "[FIRING] outputs-streamed" in line]
    assert streamed, result.stdout
    # week 5 starts on 2026-07-30: the first day's reading of the log catches it, where the
    # weekly window tells it when the week has closed
    assert streamed[0].lstrip().startswith("week  5 day 1 ⇢ webhook"), streamed[0]
    assert "stream alarm in window 2026-07-30: score" in streamed[0]


def test_the_demo_tells_the_concept_drift_once_the_labels_have_come(demo_run):
    _, result = demo_run
    lines = result.stdout.splitlines()
    money = [i for i, line in enumerate(lines) if "[FIRING] money" in line]
    performance = [i for i, line in enumerate(lines) if "[FIRING] realized-performance" in line]
    assert money and performance
    last = re.search(r"in window (\d{4}-\d\d-\d\d)", lines[performance[-1]]).group(1)
    assert last >= "2026-09-24"  # the concept drift, from week 13 on
    assert "diagnosis: concept drift: roc_auc" in lines[performance[-1] + 1]
    assert "with the inputs stable" in lines[performance[-1] + 1]
    assert "value_per_1000" in lines[money[-1]]


def test_the_demo_shows_estimation_warning_early_and_flat_through_the_concept_drift(demo_run):
    _, result = demo_run
    lines = result.stdout.splitlines()
    rows = {
        int(found.group(1)): (float(found.group(2)), float(found.group(3)))
        for line in lines
        if (
            found := re.match(
                r"\s*\S+ \(week\s+(\d+)\): estimated ([\d.]+) /.*realized ([\d.]+) /", line
            )
        )
    }
    assert sorted(rows) == list(range(1, 23))  # the watched weeks, then the served ones
    quiet = np.mean([rows[week][0] for week in (1, 2, 3, 4)])
    for week in (5, 6):  # the covariate shift: estimated close to what the labels later say
        estimated, realized = rows[week]
        assert estimated < quiet - 0.03 and abs(estimated - realized) < 0.03
    for week in (13, 14):  # the concept drift: the estimate stays flat, the realized falls
        estimated, realized = rows[week]
        assert abs(estimated - quiet) < 0.01 and realized < estimated - 0.02
    early = [i for i, line in enumerate(lines) if "[FIRING] estimated-performance" in line]
    confirmed = [
        line
        for line in lines
        if "[FIRING] realized-performance" in line and "window 2026-07-30" in line
    ]
    assert early and lines[early[0]].strip().startswith("week  5")
    assert "data drift hurting the model" in lines[early[0] + 1]
    assert confirmed and int(confirmed[0].split()[1]) >= 8  # three weeks later, from labels
    assert "cannot see concept drift" in result.stdout
    assert "(unreliable:" in result.stdout  # the unit change weeks


def test_the_demo_names_training_serving_skew_where_drift_saw_a_shift_or_nothing(demo_run):
    from keel.store import ResultStore

    folder, result = demo_run
    lines = result.stdout.splitlines()
    skewed = [i for i, line in enumerate(lines) if "[FIRING] served-features" in line]
    assert skewed and lines[skewed[0]].strip().startswith("week 15"), result.stdout
    assert "user_applications_7d" in lines[skewed[0]]
    truncated = "diagnosis: training–serving skew in user_applications_7d (truncated window)"
    stale = "diagnosis: training–serving skew in user_applications_7d (stale value)"
    assert truncated in lines[skewed[0] + 1]
    assert any(stale in line for line in lines)
    store = ResultStore(f"sqlite:///{folder / '.keel' / 'keel.db'}")
    latest = store.latest(monitor="loans", check="skew")
    mismatch = latest[latest["metric"] == "mismatch_share"].set_index("window_start")["value"]
    stale_share = latest[latest["metric"] == "stale_share"].set_index("window_start")["value"]
    assert (mismatch.iloc[:14] == 0).all()  # served exactly as recomputed, row for row
    assert mismatch.iloc[14] > 0.3 and stale_share.iloc[14] == 0  # week 15: truncated
    assert mismatch.iloc[15] > 0.1 and stale_share.iloc[15] > 0.5  # week 16: stale
    verdicts = store.latest(monitor="loans", check="diagnosis").sort_values("window_start")
    weekly = verdicts[verdicts["window_start"] != verdicts["window_end"]]  # not stream alarms
    assert [d["verdict"] for d in weekly["details"].iloc[14:16]] == ["training–serving skew"] * 2
    assert "no drift check can see it" in result.stdout


# Starlette's test client warns that it wants httpx2; the page it fetches is the same.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_demo_ends_with_the_dashboard_command_and_its_store_opens_there(demo_run):
    from fastapi.testclient import TestClient

    from keel.ui.app import create_app

    folder, result = demo_run
    assert "keel ui" in result.stdout
    page = TestClient(create_app(f"sqlite:///{folder / '.keel' / 'keel.db'}")).get("/")
    assert page.status_code == 200 and "loans" in page.text


def test_the_champion_is_trained_through_keel_track_and_lineage_answers_what_trained_it(demo_run):
    folder, result = demo_run
    assert "recorded by keel.track as loans@1" in result.stdout
    assert "baseline: models:/loans@champion" in (folder / "keel.yaml").read_text()
    assert "what trained the champion? keel lineage loans@champion:" in result.stdout
    answered = subprocess.run(
        [sys.executable, "-m", "keel.cli", "lineage", "loans@1", "--json"],
        capture_output=True,
        text=True,
        cwd=folder,  # the demo's folder holds keel's default store and registry
        timeout=120,
    )
    assert answered.returncode == 0, answered.stderr
    found = json.loads(answered.stdout)
    train, holdout = found["data"]["train"], found["data"]["holdout"]
    assert train["source"] == str(folder / "train.parquet") and train["rows"] == 248_000
    assert holdout["rows"] == 12_000 and train["reproducible"]
    assert found["code"]["entrypoint"].endswith("keel/demo.py:fit_champion")
    assert found["promotions"][0]["actor"] == "keel demo"
    assert found["monitors"][0]["monitor"] == "loans"


def test_the_loop_pages_on_faults_retrains_on_concept_drift_and_promotes_through_the_gate(
    demo_run,
):
    folder, result = demo_run
    lines = result.stdout.splitlines()
    loop = {
        int(found.group(1)): line
        for line in lines
        if (found := re.match(r"\s*week\s+(\d+) ⇢ retrain loop: ", line))
    }
    # The unit change and the skewed weeks page people; the decision says why.
    for week in (7, 8, 15, 16):
        assert "page, do not retrain" in loop[week] and "learn the fault" in loop[week], week
    assert not any(week < 17 and "retrained: " in line for week, line in loop.items())
    # Once the concept drift's labels matured: retrained, without the faulty windows.
    assert "retrained: loans@2 is the challenger" in loop[17]
    assert "concept drift" in loop[17] and "excluding 2 window(s)" in loop[17]
    # Shadowed through the gateway, judged at its horizon, never before.
    assert "insufficient_data" in loop[18] and "insufficient_data" in loop[19]
    pending = next(w for w, line in sorted(loop.items()) if ": pending: promote" in line)
    assert "delong" in loop[pending] and "all 3 gating conditions hold" in loop[pending]
    assert any(f"week {pending} ⇢ ada approves run" in line for line in lines)
    assert "served by keel serve models:/loans@champion" in result.stdout
    assert list((folder / "logs" / "predictions").glob("model=loans.shadow/date=*"))
    # The audit answers who promoted what, when, on what evidence; the lineage names it.
    answered = subprocess.run(
        [sys.executable, "-m", "keel.cli", "lineage", "loans@champion", "--json"],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
    )
    found = json.loads(answered.stdout)
    assert found["version"]["version"] == 2
    promoted = [p for p in found["promotions"] if p["alias"] == "champion"]
    assert promoted[-1]["actor"] == "ada" and "delong" in promoted[-1]["reason"]
    assert "retrain-data" in found["data"]["train"]["source"]  # kept: it can be reproduced
    # The monitor judges the new champion as a new series, and it is quiet.
    from keel.store import ResultStore

    store = ResultStore(f"sqlite:///{folder / '.keel' / 'keel.db'}")
    latest = store.latest(monitor="loans")
    served = latest[latest["model_version"] == "2"]
    served = served[served["check"] != "challenger"]
    assert len(served) and not (served["status"] == "alert").any()
