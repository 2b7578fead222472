"""Performance judged against a holdout recorded from the command line, or a warning why not."""

from __future__ import annotations

from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from keel.baseline import Baseline
from keel.monitor import load_config, run_monitor
from keel.scenario import generate, log_weeks
from keel.store import ResultStore


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from keel.demo import score, train_model

    folder = tmp_path_factory.mktemp("holdout")
    scenario = generate(seed=9, training_weeks=6, week_rows=2000, production_weeks=2)
    model, _ = train_model(scenario.training, seed=9)
    training = score(model, scenario.training)
    holdout = score(model, scenario.weeks[0])  # rows the model never saw
    pq.write_table(training, folder / "training.parquet")
    pq.write_table(holdout, folder / "holdout.parquet")
    return folder, holdout, scenario, [score(model, w) for w in scenario.weeks]


ROLES = ("--target", "defaulted", "--score", "score", "--prediction", "prediction")


def test_a_holdout_gives_the_baseline_its_metrics_with_intervals(run_keel, scored, tmp_path):
    folder, holdout, _, _ = scored
    made = run_keel(
        "baseline",
        "create",
        folder / "training.parquet",
        "-o",
        "b.keel",
        *ROLES,
        "--id",
        "application_id",
        "--holdout",
        folder / "holdout.parquet",
    )
    assert made.returncode == 0, made.stderr
    assert "holdout metrics on 2,000 rows" in made.stdout
    metrics = Baseline.load(tmp_path / "b.keel").metrics
    truth = holdout["defaulted"].to_numpy()
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(truth, holdout["score"].to_numpy()))
    assert metrics["accuracy"] == pytest.approx(
        accuracy_score(truth, holdout["prediction"].to_numpy())
    )
    assert metrics["roc_auc_lower"] < metrics["roc_auc"] < metrics["roc_auc_upper"]
    assert metrics["holdout_rows"] == 2000


def test_without_a_holdout_the_baseline_says_why_it_has_no_metrics(run_keel, scored, tmp_path):
    folder, *_ = scored
    made = run_keel("baseline", "create", folder / "training.parquet", "-o", "b.keel", *ROLES)
    assert made.returncode == 0
    assert "no holdout metrics recorded" in made.stderr and "--holdout" in made.stderr
    assert Baseline.load(tmp_path / "b.keel").metrics == {}


def test_a_monitor_without_holdout_metrics_warns_in_every_window(run_keel, scored, tmp_path):
    folder, _, scenario, weeks = scored
    run_keel("baseline", "create", folder / "training.parquet", "-o", "b.keel", *ROLES)
    log_weeks(tmp_path / "logs", weeks)
    (tmp_path / "keel.yaml").write_text(
        "monitors:\n  - name: loans\n    model: loans\n"
        f"    baseline: {tmp_path / 'b.keel'}\n    logs: {tmp_path / 'logs'}\n    window: 7D\n"
        "    performance: {task: binary, label: defaulted}\n"
    )
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    now = scenario.week_start(3) + timedelta(days=1)
    run_monitor(load_config(tmp_path / "keel.yaml")[0], store, now=now)
    warned = store.latest(metric="holdout_missing")
    assert len(warned) == 2 and set(warned["status"]) == {"warn"}
    assert "--holdout" in warned["details"].iloc[0]["reason"]
