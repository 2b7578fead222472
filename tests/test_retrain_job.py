"""The retrain trigger and job (keel.retrain.job) on the generated scenario, with real parts:
a SQLite store, the embedded registry, the prediction and label logs, and the user's
entrypoint run in a real subprocess.

The diagnoses and the matured-label counts are stored as the monitor stores them (check
``diagnosis``/``verdict`` and ``labels``/``labelled_share`` Results, one per 7-day window),
so each test chooses what the monitor saw; one test then runs the real monitor after a
failed job."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc
import pytest

from keel.baseline import Baseline
from keel.errors import ConfigError
from keel.monitor import run_monitor
from keel.monitor.config import parse_config
from keel.registry.embedded import EmbeddedRegistry
from keel.result import Result
from keel.retrain.job import run_retrain
from keel.scenario import ROLES, generate, log_labels_of, log_weeks
from keel.store import ResultStore

WEEKS = 14
TRAINER = """
import os, time
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

FEATURES = ["age", "income", "amount", "tenure_months"]

def fit(train, params):
    rows = train.select(FEATURES).to_pandas()
    model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500))
    return model.fit(rows, train["defaulted"].to_numpy())

def slow(train, params):
    time.sleep(2.0)
    return fit(train, params)

def boom(train, params):
    raise ValueError("boom: the feature store is down")

def hang(train, params):
    with open("hang.pid", "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(600)

def not_a_model(train, params):
    return {"weights": [0.1, 0.2]}

def numeric_only(train, params):
    rows = train.select(["age", "amount"]).to_pandas()
    model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500))
    return model.fit(rows, train["defaulted"].to_numpy())
"""


def _iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retrain")
    scenario = generate(seed=3, training_weeks=8, week_rows=400, production_weeks=WEEKS)
    Baseline.from_data(scenario.training, **ROLES, sample_size=2_000).save(folder / "b.keel")
    log_weeks(folder / "logs", scenario.weeks)
    for number, week in enumerate(scenario.weeks, start=1):  # labels two days after the week
        log_labels_of(folder / "logs", week, scenario.week_start(number + 1) + timedelta(days=2))
    (folder / "trainer.py").write_text(TRAINER)
    return folder, scenario


@pytest.fixture
def here(logged, tmp_path, monkeypatch):
    folder, scenario = logged
    monkeypatch.chdir(folder)  # the entrypoint module is found from the working folder
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    registry = EmbeddedRegistry(store, tmp_path / "registry")
    return folder, scenario, store, registry


def _monitor(folder, entrypoint="trainer:fit", timeout="60s", extra="", logs=None):
    text = f"""
    monitors:
      - name: loans
        model: loans
        baseline: {folder / "b.keel"}
        logs: {logs or folder / "logs"}
        window: 7D
        retrain:
          entrypoint: {entrypoint}
          min_matured_labels: 1000
          timeout: {timeout}
          training_window: {{last: 12w, exclude: [pipeline fault]}}{extra}
    """
    return parse_config(textwrap.dedent(text), "keel.yaml")[0]


def _store_diagnoses(store, scenario, verdicts):
    """What the monitor would have stored: each week's verdict and its matured labels."""
    rows = []
    for number, verdict in verdicts.items():
        start, end = scenario.week_start(number), scenario.week_start(number + 1)
        where = dict(monitor="loans", model="loans", window_start=_iso(start), window_end=_iso(end))
        summary = f"{verdict}: planted in week {number}"
        rows.append(
            Result(
                "diagnosis",
                None,
                "verdict",
                1.0,
                None,
                "alert",
                **where,
                details={"verdict": verdict, "summary": summary},
            )
        )
        labelled = scenario.weeks[number - 1].num_rows
        rows.append(
            Result(
                "labels",
                None,
                "labelled_share",
                1.0,
                0.5,
                "ok",
                **where,
                details={"labelled": labelled, "rows": labelled},
            )
        )
    store.write(rows)


def _verdicts(last_week, faults=(7, 8), drift=(13, 14)):
    return {
        n: "pipeline fault" if n in faults else "concept drift" if n in drift else "healthy"
        for n in range(1, last_week + 1)
    }


def _events(store, action):
    events = store.events()
    return events[events["action"] == action]


def test_concept_drift_with_matured_labels_registers_a_challenger_with_lineage(here):
    folder, scenario, store, registry = here
    _store_diagnoses(store, scenario, _verdicts(WEEKS))
    now = scenario.week_start(WEEKS + 1) + timedelta(days=3)  # the last labels are in
    outcome = run_retrain(_monitor(folder), store, now, registry=registry)

    assert outcome.status == "done", outcome.reason
    assert outcome.challenger == "loans@1" and outcome.exit_code == 0
    assert registry.aliases("loans") == {"challenger": 1}
    version = registry.get_version("loans", 1)
    assert version.tags["keel.baseline"]  # its own baseline, so a monitor can judge it
    record = registry.run_record(version.tags["keel.run"])
    lineage = record["retrain"]
    assert lineage["trigger"] == "concept drift" and lineage["monitor"] == "loans"
    # Weeks 7 and 8 were pipeline faults: their rows are not trained on.
    assert [w[0][:10] for w in lineage["excluded_windows"]] == [
        scenario.week_start(7).date().isoformat(),
        scenario.week_start(8).date().isoformat(),
    ]
    train_rows = record["data"]["train"]["rows"] + record["data"]["holdout"]["rows"]
    window_start = now - timedelta(weeks=12)
    expected = pc.sum(
        pc.and_(
            pc.greater_equal(scenario.production()["event_time"], window_start),
            pc.invert(
                pc.and_(
                    pc.greater_equal(scenario.production()["event_time"], scenario.week_start(7)),
                    pc.less(scenario.production()["event_time"], scenario.week_start(9)),
                )
            ),
        )
    ).as_py()
    assert train_rows == lineage["rows"] == outcome.training_rows == expected
    assert record["data"]["train"]["time_range"][0] >= window_start.isoformat()[:10]
    # The alias move is audited, by keel-retrain, with the decision as the reason.
    audit = [r for r in store.audit_rows(registry.uri, "loans") if r["event"] == "done"]
    assert [(r["alias"], r["version"], r["actor"]) for r in audit] == [
        ("challenger", 1, "keel-retrain")
    ]
    assert audit[0]["reason"].startswith("retrain: concept drift")
    decision = _events(store, "retrain decision")
    assert len(decision) == 1 and '"action": "retrain"' in decision["details"].iloc[0]
    assert store.latest(monitor="loans", check="retrain")["status"].tolist() == ["ok"]
    # Asked again at once: min_interval holds, no second job.
    again = run_retrain(_monitor(folder), store, now + timedelta(hours=1), registry=registry)
    assert again.status == "nothing" and again.reason.startswith("wait:")
    assert len(store.model_version_rows("loans")) == 1


def test_a_pipeline_fault_pages_and_does_not_retrain_and_the_event_says_why(here):
    folder, scenario, store, registry = here
    _store_diagnoses(store, scenario, _verdicts(8, drift=(5, 6)))  # latest: weeks 7-8 faults
    now = scenario.week_start(9) + timedelta(days=3)
    outcome = run_retrain(_monitor(folder), store, now, registry=registry)

    assert outcome.status == "nothing" and outcome.decision.action == "page"
    assert outcome.reason.startswith("page, do not retrain") and "pipeline fault" in outcome.reason
    decision = _events(store, "retrain decision")
    assert len(decision) == 1 and "page, do not retrain" in decision["details"].iloc[0]
    assert _events(store, "retrain started").empty
    assert store.model_version_rows("loans") == []


def test_too_few_matured_labels_waits_and_says_so(here):
    folder, scenario, store, registry = here
    _store_diagnoses(store, scenario, {13: "concept drift"})  # one window: 400 labels
    now = scenario.week_start(14) + timedelta(days=3)
    outcome = run_retrain(_monitor(folder), store, now, registry=registry)
    assert outcome.status == "nothing"
    assert "only 400 of min_matured_labels 1000" in outcome.reason


# The hang's timeout leaves the child time to import what it needs and write its pid
# on a loaded 2-core machine (a 3 s one was killed while still importing).
@pytest.mark.parametrize(
    ("entrypoint", "timeout", "said"),
    [
        ("trainer:boom", "60s", "ValueError: boom: the feature store is down"),
        ("trainer:hang", "10s", "ran past the timeout 10s: killed"),
        ("trainer:not_a_model", "60s", "returned a dict, not a model"),
    ],
    ids=["raises", "hangs", "not-a-model"],
)
def test_a_failed_job_is_an_event_and_an_alert_never_a_crash(here, entrypoint, timeout, said):
    folder, scenario, store, registry = here
    _store_diagnoses(store, scenario, _verdicts(WEEKS))
    now = scenario.week_start(WEEKS + 1) + timedelta(days=3)
    monitor = _monitor(folder, entrypoint, timeout=timeout)
    began = time.monotonic()
    outcome = run_retrain(monitor, store, now, registry=registry)

    assert outcome.status == "failed" and outcome.exit_code == 1
    assert said in outcome.reason
    failed = _events(store, "retrain failed")
    assert len(failed) == 1 and said in failed["details"].iloc[0]
    stored = store.latest(monitor="loans", check="retrain")
    assert stored[["metric", "status"]].values.tolist() == [["retrain_failed", "alert"]]
    assert said in stored["details"].iloc[0]["reason"]
    assert store.model_version_rows("loans") == [] and registry.aliases("loans") == {}
    if entrypoint == "trainer:hang":
        assert time.monotonic() - began < 30
        pid = int((folder / "hang.pid").read_text())
        with pytest.raises(ProcessLookupError):  # the hung process was killed
            os.kill(pid, 0)
    if entrypoint == "trainer:boom":  # the monitor's next run still works
        ran = run_monitor(monitor, store, now=scenario.week_start(3) + timedelta(days=1))
        assert ran.windows == 2
        assert len(store.latest(monitor="loans", check="retrain")) == 1


def test_a_candidate_whose_schema_differs_from_the_champions_gets_no_alias(here, tmp_path):
    import pyarrow as pa

    folder, scenario, store, registry = here
    # Upstream dropped tenure_months and now sends income as text: the rows the job
    # selects (the baseline's features that the log holds) make another schema.
    changed = [
        week.drop_columns(["tenure_months"]).set_column(
            week.schema.get_field_index("income"), "income", pc.cast(week["income"], pa.string())
        )
        for week in scenario.weeks
    ]
    log_weeks(tmp_path / "logs", changed)
    for number, week in enumerate(changed, start=1):
        log_labels_of(tmp_path / "logs", week, scenario.week_start(number + 1) + timedelta(days=2))
    _store_diagnoses(store, scenario, _verdicts(WEEKS))
    now = scenario.week_start(WEEKS + 1) + timedelta(days=3)
    monitor = _monitor(folder, "trainer:numeric_only", logs=tmp_path / "logs")
    outcome = run_retrain(monitor, store, now, registry=registry)

    assert outcome.status == "failed" and outcome.exit_code == 1
    assert outcome.reason.startswith(
        f"the candidate loans@1's schema differs from the monitor's baseline {folder / 'b.keel'}'s"
    )
    assert "removed tenure_months; retyped income (numeric (double) -> " in outcome.reason
    assert outcome.reason.endswith("it gets no challenger alias")
    assert registry.aliases("loans") == {}  # registered (its lineage kept), never a challenger
    assert [v.version for v in registry.versions("loans")] == [1]
    (stored,) = store.latest(monitor="loans", check="retrain").to_dict("records")
    assert (stored["metric"], stored["status"]) == ("retrain_failed", "alert")
    assert stored["details"]["schema"]["removed"] == ["tenure_months"]
    assert list(stored["details"]["schema"]["retyped"]) == ["income"]
    assert "added" not in stored["details"]["schema"]
    failed = _events(store, "retrain failed")
    assert len(failed) == 1 and '"removed": ["tenure_months"]' in failed["details"].iloc[0]
    assert _events(store, "challenger registered").empty


def test_the_schema_is_judged_against_the_registered_champions_baseline(here):
    from sklearn.linear_model import LogisticRegression

    from keel.baseline import Baseline
    from keel.registry.aliases import promote
    from keel.retrain.job import SchemaMismatch, check_schema

    folder, scenario, store, registry = here
    narrow = scenario.training.drop_columns(["device"])
    baseline = Baseline.from_data(narrow, **ROLES, sample_size=500)
    run = registry.log_run("loans", {}, {"baseline.keel": baseline.to_bytes()})
    registry.register(
        "loans", LogisticRegression(), run, tags={"keel.baseline": baseline.fingerprint}
    )
    promote(registry, store, "loans", 1, "champion", "first model", "ada")
    wide = Baseline.from_data(scenario.training, **ROLES, sample_size=500)
    run = registry.log_run("loans", {}, {"baseline.keel": wide.to_bytes()})
    registry.register("loans", LogisticRegression(), run, tags={"keel.baseline": wide.fingerprint})
    with pytest.raises(SchemaMismatch, match=r"differs from the champion loans@1's: added device;"):
        check_schema(_monitor(folder), registry, {"version": 2})


def test_two_triggers_at_once_start_one_job(here):
    folder, scenario, store, registry = here
    _store_diagnoses(store, scenario, _verdicts(WEEKS))
    now = scenario.week_start(WEEKS + 1) + timedelta(days=3)
    monitor = _monitor(folder, "trainer:slow")
    start = threading.Barrier(2)
    outcomes = []

    def call():
        start.wait()
        outcomes.append(run_retrain(monitor, store, now, registry=registry))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(o.status for o in outcomes) == ["busy", "done"]
    assert len(store.model_version_rows("loans")) == 1
    assert len(_events(store, "retrain started")) == 1
    assert len(_events(store, "retrain skipped")) == 1


def test_an_unknown_retrain_key_is_refused_with_its_line(logged):
    folder, _ = logged
    with pytest.raises(ConfigError, match=r"\(line 13\): monitors\[0\]\.retrain\.bogus"):
        _monitor(folder, extra="\n          bogus: 1")


def test_the_command_line_exits_0_nothing_to_do_1_failed_2_could_not_run(
    here, run_keel, tmp_path, monkeypatch
):
    folder, scenario, store, _ = here
    monkeypatch.setenv("KEEL_DATABASE_URL", f"sqlite:///{tmp_path / 'keel.db'}")
    monkeypatch.setenv("KEEL_REGISTRY", "embedded")
    config = tmp_path / "keel.yaml"
    config.write_text(
        textwrap.dedent(f"""
        monitors:
          - name: loans
            model: loans
            baseline: {folder / "b.keel"}
            logs: {folder / "logs"}
            window: 7D
            retrain: {{entrypoint: "trainer:boom", min_matured_labels: 1000}}
        """)
    )
    _store_diagnoses(store, scenario, _verdicts(8, drift=(5, 6)))
    paged = run_keel(
        "retrain",
        "run",
        "loans",
        "--config",
        config,
        "--now",
        _iso(scenario.week_start(9) + timedelta(days=3)),
        cwd=folder,
    )
    assert paged.returncode == 0, paged.stdout + paged.stderr
    assert "loans: nothing: page, do not retrain" in paged.stdout
    _store_diagnoses(store, scenario, _verdicts(WEEKS))
    failed = run_keel(
        "retrain",
        "run",
        "--config",
        config,
        "--now",
        _iso(scenario.week_start(WEEKS + 1) + timedelta(days=3)),
        cwd=folder,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "loans: failed: the entrypoint failed: ValueError: boom" in failed.stdout
    missing = run_keel("retrain", "run", "--config", tmp_path / "nope.yaml", cwd=folder)
    assert missing.returncode == 2 and "no such configuration file" in missing.stderr


def test_a_stream_alarms_instant_diagnosis_is_not_a_window(here):
    from keel.retrain.job import stored_diagnoses

    _, scenario, store, _ = here
    _store_diagnoses(store, scenario, _verdicts(WEEKS))
    instant = _iso(scenario.week_start(WEEKS) + timedelta(hours=5))
    store.write(
        [
            Result(
                "diagnosis",
                None,
                "verdict",
                5.0,
                None,
                "alert",
                monitor="loans",
                model="loans",
                window_start=instant,
                window_end=instant,
                details={"verdict": "unexplained alert", "summary": "stream alarm: score"},
            )
        ]
    )
    found = stored_diagnoses(store, "loans", scenario.week_start(WEEKS + 1))
    assert len(found) == WEEKS
    assert all(d.window_start < d.window_end for d in found)


def test_the_last_retrain_is_the_decisions_own_time_so_a_replay_keeps_its_interval(tmp_path):
    from keel.retrain.job import last_retrain

    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    assert last_retrain(store, "loans") is None
    # A replay (keel monitor run --now ...) decides at its own time, months before the clock.
    store.log_event(
        "keel-retrain", "challenger registered", "loans", {"now": "2026-03-05T01:00:00+00:00"}
    )
    assert last_retrain(store, "loans") == datetime(2026, 3, 5, 1, tzinfo=UTC)
    store.log_event("keel-retrain", "challenger registered", "loans", {})  # an older record
    assert last_retrain(store, "loans").year == datetime.now(UTC).year  # when it was written
