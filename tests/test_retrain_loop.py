"""The self-correcting loop end to end (keel.retrain.loop), with real parts only: a SQLite
store, the embedded registry, the prediction and label logs, the user's entrypoint run in
its subprocess, and a real ``keel serve`` on loopback that shadows the challenger.

The story of the end-to-end test, on a clock that starts at the real ``now`` (the gateway
stamps its answers with it): four days of the champion's answers in which the label came
to mean the opposite (concept drift) → the monitor's windows say so → the loop's step
trains a challenger → the gateway shadows it → labels arrive → the steps compare it
(``insufficient_data`` before the horizon, then ``pending``) → a person approves with a
token → the monitor, reloaded with ``baseline: models:/loans@champion``, binds the new
version's baseline and its next window is a new series, and quiet. The fast
specifications after it each pin one way the step must not go wrong."""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from keel.monitor.config import parse_config
from keel.monitor.run import run_monitor
from keel.registry.aliases import promote
from keel.registry.base import load_model
from keel.registry.embedded import DEFAULT_ROOT, EmbeddedRegistry
from keel.result import Result
from keel.retrain.loop import retrain_step
from keel.retrain.promotion import approve, runs
from keel.store import ResultStore
from keel.store.logs import LogWriter
from keel.tokens import add_token
from keel.tracking import load_entrypoint, track

from .common.serving import Server

FEATURES = ["x", "y", "color"]
DAY = timedelta(days=1)
TRAINER = """
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

def fit(train, params):
    colour = OneHotEncoder(handle_unknown="ignore")
    columns = ColumnTransformer([("num", "passthrough", ["x", "y"]), ("cat", colour, ["color"])])
    model = Pipeline([("columns", columns), ("model", LogisticRegression())])
    return model.fit(train.select(["x", "y", "color"]).to_pandas(), train["label"].to_numpy())

def boom(train, params):
    raise ValueError("boom: the feature store is down")
"""


def _rows(count, seed, start, end, flipped):
    """Applications between ``start`` and ``end``; the label follows x, or (flipped: the
    concept changed) its opposite. The inputs' distribution is the same either way."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(0, 1, count),
            "y": rng.exponential(2.0, count),
            "color": rng.choice(["red", "green", "blue"], count),
        }
    )
    signal = frame.x + rng.normal(0, 0.5, count)
    frame["label"] = ((-signal if flipped else signal) > 0).astype(int)
    span = (end - start).total_seconds()
    frame["event_time"] = [
        start + timedelta(seconds=s) for s in np.sort(rng.uniform(0, span, count))
    ]
    frame["customer_id"] = [f"s{seed}-{i}" for i in range(count)]
    frame["request_id"] = [f"r{seed}-{i:05d}" for i in range(count)]
    return frame


def _config(folder, entrypoint="trainer:fit", baseline="models:/loans@champion"):
    return textwrap.dedent(f"""
        monitors:
          - name: loans-monitor
            model: loans
            baseline: {baseline}
            logs: {folder / "logs"}
            window: 1D
            performance: {{task: binary, label: label, metrics: [accuracy, roc_auc]}}
            retrain:
              entrypoint: {entrypoint}
              min_matured_labels: 200
              timeout: 120s
              training_window: {{last: 2w}}
              min_effect: 0.3
              margins: {{accuracy: 0.2}}
        """)


def _monitor(folder, **kwargs):
    (folder / "keel.yaml").write_text(_config(folder, **kwargs))
    return parse_config((folder / "keel.yaml").read_text(), str(folder / "keel.yaml"))[0]


def _log(folder, kind, rows):
    with LogWriter(folder / "logs", kind, model="loans") as writer:
        writer.append(rows)


def _labels(folder, frame, delay=timedelta(minutes=1)):
    _log(
        folder,
        "labels",
        [
            {"request_id": r, "event_time": t + delay, "label": int(v)}
            for r, t, v in zip(frame.request_id, frame.event_time, frame.label, strict=True)
        ],
    )


def _track(path, rows, registry, store):
    """Train ``trainer:fit`` on ``rows`` (written to ``path``) through keel.track: a version."""
    rows.drop(columns=["customer_id", "request_id"]).to_parquet(path)
    with track(
        "loans",
        train=str(path),
        holdout_last="20%",
        target="label",
        timestamp="event_time",
        entrypoint="trainer:fit",
        registry=registry,
        store=store,
    ) as run:
        return run.log_model(load_entrypoint("trainer:fit")(run.train, {}))


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A project folder: the trainer module, a store, the embedded registry with a champion
    (loans@1, trained by keel.track on the old concept) and the environment the gateway and
    the monitor's binding read (KEEL_DATABASE_URL, KEEL_REGISTRY)."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    monkeypatch.setenv("KEEL_DATABASE_URL", url)
    monkeypatch.setenv("KEEL_REGISTRY", "embedded")
    (tmp_path / "trainer.py").write_text(TRAINER)
    monkeypatch.syspath_prepend(str(tmp_path))
    # Other tests write their own trainer.py: import this folder's, not theirs.
    monkeypatch.delitem(sys.modules, "trainer", raising=False)
    store = ResultStore(url)
    registry = EmbeddedRegistry(store, tmp_path / DEFAULT_ROOT)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    old = _rows(400, 1, today - 50 * DAY, today - 20 * DAY, flipped=False)
    _track(tmp_path / "old.parquet", old, registry, store)
    promote(registry, store, "loans", 1, "champion", "first model", "ada")
    return tmp_path, store, registry, today, url


def _answered(folder, registry, frame, version):
    """Log ``version``'s answers to ``frame`` as the gateway logs its champion's."""
    model = load_model(registry, f"models:/loans/{version}")
    frame = frame.assign(score=model.predict_proba(frame[FEATURES])[:, 1])
    frame["prediction"] = (frame.score > 0.5).astype(int)
    answers = frame.drop(columns=["label"]).assign(
        model_name="loans", model_version=str(version), role="champion", route="champion"
    )
    _log(folder, "predictions", answers.to_dict("records"))


def _served_history(folder, registry, today, days=4, per_day=100):
    """The champion's answers over the last ``days`` days, with the labels a minute after:
    the concept flipped, the inputs did not move."""
    frame = _rows(days * per_day, 2, today - days * DAY, today - timedelta(minutes=10), True)
    _answered(folder, registry, frame, 1)
    _labels(folder, frame)
    return frame


def _step(monitor, store, now, registry):
    """What ``keel monitor run`` does for one monitor: its windows, then the loop's step."""
    ran = run_monitor(monitor, store, now=now)
    return ran, retrain_step(monitor, store, now, registry=registry)


def _traffic(server, frame):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for start in range(0, len(frame), 100):
            rows = frame.iloc[start : start + 100]
            body = {
                "records": json.loads(rows[[*FEATURES, "customer_id"]].to_json(orient="records")),
                "request_ids": rows.request_id.tolist(),
            }
            answer = client.post("/v1/models/loans/predict", json=body)
            assert answer.status_code == 200, answer.text
    assert server.stop() == 0, server.stderr()  # drains the shadows, writes every log


def _serve_config(folder):
    served = {
        "model": "models:/loans@champion",
        "entity_keys": ["customer_id"],
        "shadow_queue": 10_000,
        "shadow_timeout": 30,
    }
    path = folder / "serve.yaml"
    path.write_text(
        yaml.safe_dump(
            {"serve": {"reload_seconds": 0, "min_free_mb": 0, "models": {"loans": served}}}
        )
    )
    return path


def _verdicts(store, version=None):
    frame = store.latest(monitor="loans-monitor", check="diagnosis", metric="verdict")
    frame = frame[frame["segment"].isna()]
    if version is not None:
        frame = frame[frame["model_version"] == version]
    frame = frame.sort_values("window_start")
    return [d["verdict"] for d in frame["details"]]


def test_concept_drift_is_retrained_shadowed_compared_approved_and_the_monitor_rebinds(world):
    folder, store, registry, today, url = world
    _served_history(folder, registry, today)
    monitor = _monitor(folder)
    assert monitor.baseline.endswith("registry-cache/loans/1/baseline.keel")

    # 1. The windows say concept drift; the step trains a challenger in its subprocess.
    now = datetime.now(UTC)
    ran, step = _step(monitor, store, now, registry)
    assert _verdicts(store) == ["concept drift"] * 4, ran
    assert (step.action, step.status) == ("retrain", "done"), step.reason
    assert step.challenger == "loans@2" and step.reason.startswith("retrain: concept drift")
    assert registry.aliases("loans") == {"champion": 1, "challenger": 2}

    # 2. The gateway answers with the champion and shadows the challenger.
    env = {"KEEL_REGISTRY": "embedded", "KEEL_DATABASE_URL": url}
    traffic = _rows(200, 3, now, now, flipped=True)
    _traffic(Server(_serve_config(folder), folder / "logs", env=env, cwd=folder), traffic)

    # 3. Before a first day of shadow answers the horizon is not fixed: insufficient data.
    _, early = _step(monitor, store, now + timedelta(hours=1), registry)
    assert (early.action, early.status) == ("compare", "insufficient_data"), early.reason
    assert "first day of shadow answers" in early.reason

    # 4. A day on, a fifth of the labels are in: below the horizon, running estimates.
    first = traffic.iloc[:40]
    _labels(folder, first.assign(event_time=now + timedelta(hours=2)))
    later = now + timedelta(hours=26)  # the shadowed day has closed, even near midnight
    _, waiting = _step(monitor, store, later, registry)
    assert (waiting.action, waiting.status) == ("compare", "insufficient_data"), waiting.reason
    assert waiting.reason.startswith("insufficient data: 40 of ")
    assert waiting.challenger_results > 0  # the day's challenger Results, never promoting
    challenger = store.latest(monitor="loans-monitor", check="challenger", metric="paired_labels")
    assert set(challenger["status"]) == {"insufficient_data"}

    # 5. Every label in: the gate says promote, and a person must approve.
    _labels(folder, traffic.iloc[40:].assign(event_time=now + timedelta(hours=2)))
    _, passed = _step(monitor, store, later + timedelta(hours=1), registry)
    assert (passed.action, passed.status) == ("compare", "pending"), passed.reason
    _, again = _step(monitor, store, later + timedelta(hours=2), registry)
    assert (again.action, again.status, again.run) == ("waiting", "pending", passed.run)
    assert f"keel retrain approve {passed.run}" in again.reason
    assert [r.status for r in runs(store, "loans-monitor")] == [
        "insufficient_data",
        "insufficient_data",
        "pending",
    ]

    # 6. A person approves with a per-person token.
    done = approve(store, passed.run, add_token(store, "erin"), registry=registry)
    assert done.status == "promoted" and done.decided_by == "erin"
    assert registry.aliases("loans")["champion"] == 2

    # 7. The monitor, reloaded, binds version 2's baseline; its next window is a new series.
    with pytest.warns(UserWarning, match=r"loans@2: only 3 reference windows of 1D"):
        rebound = _monitor(folder)  # trained on 4 days: calibrated, the one-off rule decides
    assert rebound.baseline.endswith("registry-cache/loans/2/baseline.keel")
    assert rebound.calibration  # on the job's training rows, which its lineage names
    # Version 2 answers now, logged as the gateway logs its champion (a restarted gateway
    # answering with the new champion is tests/test_retrain_promotion_gateway.py's).
    # the shadowed day's window, its answers spread to late in that day: answers that all
    # came in its first minutes (a run just after midnight) are a day's freshness lag
    served = _rows(150, 4, now, max(now, now.replace(hour=23, minute=0)), flipped=True)
    _answered(folder, registry, served, 2)
    _labels(folder, served)
    ran, after = _step(rebound, store, later + timedelta(days=1), registry)
    assert _verdicts(store, "2") == ["healthy"], ran
    stored = store.latest(monitor="loans-monitor")
    quiet = stored[(stored["model_version"] == "2") & (stored["check"] != "challenger")]
    assert len(quiet) > 20 and not (quiet["status"] == "alert").any()

    # The old champion's series is not the new one's to answer for: its latest window
    # (the shadowed day, the old model still wrong) does not trigger, page or wait.
    assert _verdicts(store, "1")[-1] != "healthy"
    assert (after.action, after.status) == ("retrain", "none"), after.reason
    assert after.reason == "no trigger (latest window: healthy)"

    # 8. The audit: who promoted what, when, on what evidence.
    moves = [r for r in store.audit_rows(registry.uri, "loans") if r["alias"] == "champion"]
    final = [r for r in moves if r["event"] == "done"][-1]
    assert (final["version"], final["previous_version"], final["actor"]) == (2, 1, "erin")
    assert final["at"] and f"run {passed.run}: approved by erin" in final["reason"]
    intent = [r for r in moves if r["event"] == "intent" and r["version"] == 2][-1]
    details = intent["details"]
    evidence = (json.loads(details) if isinstance(details, str) else details)["gate"]
    assert evidence["status"] == "promote" and evidence["run"] == passed.run
    assert evidence["counts"]["paired"] == 200 and evidence["n"] >= evidence["horizon"]


# -- fast specifications: one way each the step must not go wrong -------------------------


def _store_verdicts(store, today, verdicts):
    """What the monitor would have stored for the last len(verdicts) days, oldest first:
    each day's verdict and its 100 matured labels (the champion's series)."""
    rows = []
    for back, verdict in enumerate(reversed(verdicts), start=1):
        start, end = today - back * DAY, today - (back - 1) * DAY
        where = dict(
            monitor="loans-monitor",
            model="loans",
            model_version="1",
            window_start=start.isoformat(),
            window_end=end.isoformat(),
        )
        details = {"verdict": verdict, "summary": f"{verdict}: planted"}
        rows.append(
            Result("diagnosis", None, "verdict", 1.0, None, "alert", **where, details=details)
        )
        labelled = {"labelled": 100, "rows": 100}
        rows.append(
            Result("labels", None, "labelled_share", 1.0, 0.5, "ok", **where, details=labelled)
        )
    store.write(rows)


def _actions(store):
    return store.events()["action"].tolist()


def test_a_pipeline_fault_window_makes_the_step_page_not_train_and_say_why(world):
    folder, store, registry, today, _ = world
    _store_verdicts(store, today, ["concept drift", "concept drift", "pipeline fault"])
    step = retrain_step(_monitor(folder), store, today + timedelta(hours=1), registry=registry)

    assert (step.action, step.status) == ("retrain", "page")
    assert step.reason.startswith("page, do not retrain: the window ending ")
    assert "is a pipeline fault (pipeline fault: planted)" in step.reason
    assert "loans-monitor: retrain: page: page, do not retrain" in step.line()
    assert "retrain decision" in _actions(store) and "retrain started" not in _actions(store)
    assert [v.version for v in registry.versions("loans")] == [1]


def test_while_a_challenger_is_live_a_step_compares_it_and_starts_no_new_job(world):
    folder, store, registry, today, _ = world
    fresh = _rows(300, 5, today - 10 * DAY, today - DAY, flipped=True)
    _track(folder / "fresh.parquet", fresh, registry, store)
    promote(registry, store, "loans", 2, "challenger", "retrained", "keel-retrain")
    _store_verdicts(store, today, ["concept drift"] * 3)  # a trigger holds, labels matured
    monitor = _monitor(folder)

    for hours in (1, 2):
        step = retrain_step(monitor, store, today + timedelta(hours=hours), registry=registry)
        assert (step.action, step.status, step.challenger) == ("compare", "insufficient_data", "2")
        assert "no shadow answers of the challenger yet" in step.reason
    assert "retrain decision" not in _actions(store) and "retrain started" not in _actions(store)
    assert [v.version for v in registry.versions("loans")] == [1, 2]
    assert registry.aliases("loans") == {"champion": 1, "challenger": 2}


def test_an_entrypoint_that_raises_makes_keel_monitor_run_exit_1_its_windows_stored(
    world, run_keel
):
    folder, store, registry, today, _ = world
    _served_history(folder, registry, today)  # four days of concept drift
    text = _config(folder, entrypoint="trainer:boom") + textwrap.indent(
        "alerts:\n  - {name: retrain-failed, check: retrain, metric: retrain_failed}\n", "    "
    )
    (folder / "keel.yaml").write_text(text)
    ran = run_keel(
        "monitor", "run", "--config", folder / "keel.yaml", "--now", today.isoformat(), cwd=folder
    )

    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "loans-monitor: 4 closed windows checked" in ran.stdout
    said = "loans-monitor: retrain: failed: the entrypoint failed: ValueError: boom"
    assert said in ran.stdout
    assert "alert firing: retrain-failed:" in ran.stdout
    assert _verdicts(store) == ["concept drift"] * 4  # the windows' Results are stored
    failed = store.latest(monitor="loans-monitor", check="retrain")
    assert failed[["metric", "status"]].values.tolist() == [["retrain_failed", "alert"]]
    assert "retrain failed" in _actions(store)
    assert [v.version for v in registry.versions("loans")] == [1]


@pytest.mark.parametrize("table", ["keel_results", "keel_model_aliases", "keel_events"])
def test_a_step_whose_store_or_registry_raises_returns_error_and_never_raises(world, table):
    import sqlalchemy as sa

    folder, store, registry, today, _ = world
    _store_verdicts(store, today, ["concept drift"] * 3)
    monitor = _monitor(folder)
    with store.engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE {table}"))
    step = retrain_step(monitor, store, today + timedelta(hours=1), registry=registry)

    assert (step.action, step.status) == ("error", "error") and step.alerting
    assert f"no such table: {table}" in step.error and step.reason == step.error
    assert step.line().startswith("loans-monitor: retrain step failed: StoreError: ")
    if table != "keel_events":  # the failure is an event, where the event log still works
        assert _actions(store)[-1] == "retrain step failed"
