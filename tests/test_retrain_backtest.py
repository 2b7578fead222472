"""The backtest, point-in-time (keel.retrain.backtest), on the generated scenario: 8 training
weeks, then 18 production weeks, 800 applications each; the upstream unit change in weeks
7–8 and a concept drift from week 13 on (the scenario plants weeks 13–14; weeks 15–18
are drawn with the same change, so the drift persists as long as the backtest looks).
Each week's labels are ingested two days after the week ends (``_ingested_at`` logged), and
the diagnoses are stored as the monitor stores them (one per window)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from keel.baseline import Baseline
from keel.monitor.config import parse_config
from keel.result import Result
from keel.retrain.backtest import backtest
from keel.scenario import CHANGES, ROLES, _applications, generate, log_weeks
from keel.store import ResultStore
from keel.store.logs import LogWriter

WEEKS = 18
ROWS = 800
TRAINER = """
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

INPUTS = ["age", "income", "amount", "tenure_months", "device"]

def fit(train, params):
    rows = train.select(INPUTS).to_pandas()
    prepare = ColumnTransformer([
        ("scaled", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "tenure_months"]),
        ("logs", make_pipeline(SimpleImputer(), FunctionTransformer(np.log1p),
                               StandardScaler()), ["income", "amount"]),
        ("device", OneHotEncoder(handle_unknown="ignore"), ["device"]),
    ])
    model = make_pipeline(prepare, LogisticRegression(max_iter=1000))
    return model.fit(rows, train["defaulted"].to_numpy())
"""
VALUE = {"tp": 0.0, "fp": -400.0, "fn": -3000.0, "tn": 400.0}


def _iso(moment):
    return moment.isoformat()


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backtest")
    scenario = generate(seed=5, training_weeks=8, week_rows=ROWS, production_weeks=14)
    rng = np.random.default_rng(55)
    for week in range(15, WEEKS + 1):  # the concept drift goes on
        scenario.weeks.append(
            _applications(
                rng,
                ROWS,
                scenario.week_start(week),
                weeks=1,
                first_id=10_000_000 + week * ROWS,
                change=CHANGES[13],
            )
        )
    Baseline.from_data(scenario.training, **ROLES, sample_size=2_000).save(folder / "b.keel")
    log_weeks(folder / "logs", scenario.weeks)
    with LogWriter(folder / "logs", "labels", "loans") as writer:
        for number, week in enumerate(scenario.weeks, start=1):
            arrived = scenario.week_start(number + 1) + timedelta(days=2)
            times = pa.array([arrived] * week.num_rows, pa.timestamp("us", tz="UTC"))
            writer.append(
                pa.table(
                    {
                        "request_id": week[ROLES["id"]],
                        "event_time": times,
                        "defaulted": week["defaulted"],
                        "_ingested_at": times,
                    }
                )
            )
    (folder / "trainer.py").write_text(TRAINER)
    return folder, scenario


@pytest.fixture
def here(history, tmp_path, monkeypatch):
    folder, scenario = history
    monkeypatch.chdir(folder)  # the entrypoint module is found from the working folder
    monkeypatch.syspath_prepend(str(folder))
    # Other tests write their own trainer.py: import this folder's, not theirs.
    monkeypatch.delitem(sys.modules, "trainer", raising=False)
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    verdicts = {
        n: "pipeline fault" if n in (7, 8) else "concept drift" if n >= 13 else "healthy"
        for n in range(1, WEEKS + 1)
    }
    rows = []
    for number, verdict in verdicts.items():
        start, end = scenario.week_start(number), scenario.week_start(number + 1)
        rows.append(
            Result(
                "diagnosis",
                None,
                "verdict",
                1.0,
                None,
                "alert" if verdict != "healthy" else "ok",
                monitor="loans",
                model="loans",
                window_start=_iso(start),
                window_end=_iso(end),
                details={"verdict": verdict, "summary": f"{verdict}: planted in week {number}"},
            )
        )
    store.write(rows)
    return folder, scenario, store


def _monitor(
    folder, retrain="min_matured_labels: 500, min_interval: 28d, training_window: {last: 2w}"
):
    text = f"""
    monitors:
      - name: loans
        model: loans
        baseline: {folder / "b.keel"}
        logs: {folder / "logs"}
        window: 7D
        performance:
          task: binary
          label: defaulted
          decision_threshold: 0.15
          value_matrix: {VALUE}
        retrain: {{entrypoint: "trainer:fit", {retrain}}}
    """
    return parse_config(textwrap.dedent(text), "keel.yaml")[0]


def _champion(scenario):
    import importlib

    trainer = importlib.import_module("trainer")
    return trainer.fit(scenario.training, {})


def test_the_backtest_retrains_after_the_concept_drift_and_beats_never(here):
    folder, scenario, store = here
    start, end = scenario.week_start(3), scenario.week_start(WEEKS + 1)
    report = backtest(
        _monitor(folder),
        store,
        start=start,
        end=end,
        champion=_champion(scenario),
        diagnosis_delay="3d",  # a concept drift is seen once its week's labels are in
    )
    print("\n".join(report.lines()))  # shown with pytest -s
    # Retrained once the drift of week 13 was seen (its labels came two days after the
    # week), not before; never on the unit-change weeks.
    first = scenario.week_start(15)
    assert report.retrained_at[0] == first.isoformat(), report.lines()
    assert all(t >= first.isoformat() for t in report.retrained_at)
    by_time = {d.at: d for d in report.decisions}
    for week in (8, 9, 10):  # the windows after weeks 7 and 8 close (and the next)
        decision = by_time[scenario.week_start(week).isoformat()]
        assert decision.action != "retrain"
    assert by_time[scenario.week_start(9).isoformat()].action == "page"
    assert "pipeline fault" in by_time[scenario.week_start(9).isoformat()].reason
    # Point in time: at week 15's start, only week 13's labels (ingested two days after
    # it ended) were in the 2-week training window; week 14's were not.
    retrain = by_time[first.isoformat()]
    assert retrain.matured_labels == ROWS
    candidate = report.candidates[retrain.candidate]
    assert candidate.training_rows == ROWS
    assert candidate.training_window == (scenario.week_start(13).isoformat(), first.isoformat())
    # Scored only on rows after its training window.
    assert candidate.scored_from == first.isoformat() and candidate.scored_rows > 0
    assert candidate.metrics["value_per_1000"] > candidate.champion_metrics["value_per_1000"]
    assert report.value_per_1000["policy"] > report.value_per_1000["never"]
    assert set(report.value_per_1000) == {"policy", "never", "calendar"}
    assert report.scored_rows == (WEEKS - 2) * ROWS
    # Deterministic: the same history gives the same report.
    again = backtest(
        _monitor(folder),
        store,
        start=start,
        end=end,
        champion=_champion(scenario),
        diagnosis_delay="3d",
    )
    assert again.to_dict() == report.to_dict()


def test_too_few_matured_labels_waits_and_says_so(here):
    folder, scenario, store = here
    report = backtest(
        _monitor(folder, "min_matured_labels: 5000, training_window: {last: 2w}"),
        store,
        start=scenario.week_start(12),
        end=scenario.week_start(WEEKS + 1),
        champion=_champion(scenario),
        diagnosis_delay="3d",
    )
    assert report.retrained_at == []
    waits = [d for d in report.decisions if d.action == "wait"]
    assert waits and "of min_matured_labels 5000" in waits[0].reason
    assert report.value_per_1000["policy"] == report.value_per_1000["never"]


def test_the_cli_prints_the_backtest(here):
    folder, scenario, store = here
    (folder / "keel.yaml").write_text(
        textwrap.dedent(
            f"""
            monitors:
              - name: loans
                model: loans
                baseline: {folder / "b.keel"}
                logs: {folder / "logs"}
                window: 7D
                performance: {{task: binary, label: defaulted, value_matrix: {VALUE}}}
            """
        )
    )
    (folder / "policy.yaml").write_text(
        "retrain:\n  entrypoint: trainer:fit\n  min_matured_labels: 500\n"
        "  training_window: {last: 2w}\n"
    )
    champion = _champion(scenario)
    import skops.io as sio

    sio.dump(champion, folder / "champion.skops")
    env = {**os.environ, "KEEL_DATABASE_URL": store.engine.url.render_as_string(False)}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli",
            "retrain",
            "backtest",
            "loans",
            "--policy",
            "policy.yaml",
            "--from",
            scenario.week_start(10).isoformat(),
            "--to",
            scenario.week_start(WEEKS + 1).isoformat(),
            "--champion",
            str(folder / "champion.skops"),
            "--diagnosis-delay",
            "3d",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "value per 1,000 decisions" in done.stdout and "retrain" in done.stdout
