"""Recording a training run (keel.track and keel train): every item of the lineage record is
checked against what it describes — a real git repo, real Parquet data, a real store."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pyarrow as pa
import pytest
import sklearn

from keel.baseline import Baseline
from keel.errors import KeelError
from keel.fingerprint import data_digest
from keel.monitor.config import load_config
from keel.performance import holdout_metrics
from keel.registry import load_model
from keel.registry.embedded import EmbeddedRegistry
from keel.store import ResultStore
from keel.tracking import TrainingError, load_entrypoint, table_from_bytes, track

from .common.registry_battery import make_training_repo


@pytest.fixture
def project(tmp_path, monkeypatch):
    repo = tmp_path / "project"
    data = make_training_repo(repo)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("KEEL_REGISTRY", "embedded")  # what load_config and keel train open
    (repo / ".keel").mkdir()
    store = ResultStore(f"sqlite:///{repo / '.keel' / 'keel.db'}")
    return repo, data, EmbeddedRegistry(store, repo / ".keel" / "registry")


def _train(data, registry, **options):
    fit = load_entrypoint("train.py:fit")
    with track(
        "loans",
        train=str(data),
        holdout_last=options.pop("holdout_last", "20%"),
        target="y",
        timestamp="t",
        params=options.pop("params", {"C": 0.5}),
        entrypoint="train.py:fit",
        registry=registry,
        **options,
    ) as run:
        version = run.log_model(fit(run.train, run.params))
    return run, version


def _fingerprint(table):
    return data_digest(table)


def test_the_record_describes_the_data_split_by_time(project):
    _, data, registry = project
    run, _ = _train(data, registry)
    train, holdout = run.record["data"]["train"], run.record["data"]["holdout"]
    assert (train["rows"], holdout["rows"]) == (480, 120)
    assert train["time_range"][1] < holdout["time_range"][0]  # the holdout is the latest
    assert holdout["time_range"][1].startswith("2026-01-25T23:00")
    assert train["fingerprint"] == _fingerprint(run.train) != holdout["fingerprint"]
    assert train["source"] == str(data) and train["reproducible"] is True
    assert train["schema"]["y"] == "int64" and set(train["schema"]) == {"x", "z", "t", "y"}
    assert run.record["data"]["split"] == {
        "holdout_last": "20%",
        "timestamp": "t",
        "whole": run.record["data"]["split"]["whole"],
    }
    assert run.record["data"]["split"]["whole"]["rows"] == 600


def test_the_record_names_the_code_params_and_environment(project):
    repo, data, registry = project
    run, _ = _train(data, registry, params={"C": 0.25})
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    code = run.record["code"]
    assert (code["commit"], code["dirty"], code["diff"]) == (head, False, None)
    assert code["entrypoint"] == "train.py:fit"
    assert run.record["params"] == {"C": 0.25}
    assert run.record["model"]["params"]["C"] == 0.25
    assert run.record["model"]["type"] == "sklearn.linear_model._logistic.LogisticRegression"
    environment = run.record["environment"]
    assert environment["python"] == ".".join(map(str, sys.version_info[:3]))
    assert environment["packages"]["scikit-learn"] == sklearn.__version__


def test_keel_scores_the_holdout_itself_and_the_metrics_are_keels(project):
    _, data, registry = project
    run, version = _train(data, registry)
    stored = table_from_bytes(registry.run_artifact(version.run_id, "holdout_predictions.parquet"))
    model = load_model(registry, version.ref)
    expected = model.predict_proba(run.holdout.select(["x", "z"]).to_pandas())[:, 1]
    np.testing.assert_array_equal(stored["score"].to_numpy(), expected)
    assert stored["y"].to_pylist() == run.holdout["y"].to_pylist()
    metrics = run.record["holdout"]["metrics"]
    assert metrics == holdout_metrics(stored, "binary", "y", score="score")
    assert metrics["roc_auc_lower"] < metrics["roc_auc"] < metrics["roc_auc_upper"]
    assert metrics["holdout_rows"] == 120


def test_the_baseline_is_built_from_the_training_rows_and_attached(project):
    _, data, registry = project
    run, version = _train(data, registry)
    baseline = Baseline.from_bytes(registry.run_artifact(version.run_id, "baseline.keel"))
    assert version.tags["keel.baseline"] == baseline.fingerprint
    # The reference is the training rows with the model's outputs, as keel scored them.
    model = load_model(registry, version.ref)
    scores = model.predict_proba(run.train.select(["x", "z"]).to_pandas())[:, 1]
    classes = np.asarray(model.classes_)
    reference = run.train.append_column("score", pa.array(scores)).append_column(
        "prediction", pa.array(classes[(scores >= 0.5).astype(int)])
    )
    assert baseline.rows == 480 and baseline.config["data_digest"] == _fingerprint(reference)
    assert run.record["baseline"]["data_digest"] == baseline.config["data_digest"]
    assert run.record["data"]["train"]["fingerprint"] == _fingerprint(run.train)
    assert baseline.schema["score"].role == "score"
    assert baseline.schema["prediction"].role == "prediction"
    # The performance estimator is fitted on the holdout, which the model never saw.
    assert baseline.holdout is not None and baseline.config["holdout"]["rows"] == 120
    assert baseline.metrics == run.record["holdout"]["metrics"]
    assert baseline.schema["y"].role == "target" and baseline.schema["t"].role == "timestamp"
    assert baseline.lineage["model"] == "loans"


def test_a_monitor_reads_the_baseline_of_models_loans_at_champion(project):
    repo, data, registry = project
    _, version = _train(data, registry)
    (repo / "keel.yaml").write_text(
        "monitors:\n  - name: loans\n    model: loans\n"
        "    baseline: models:/loans@champion\n    window: 1D\n"
    )
    with pytest.raises(KeelError, match=r"monitors\[0\]\.baseline: .*no alias 'champion'"):
        load_config(repo / "keel.yaml")
    registry.set_alias("loans", "champion", version.version)
    (monitor,) = load_config(repo / "keel.yaml")
    assert monitor.baseline.endswith("registry-cache/loans/1/baseline.keel")
    assert Baseline.load(monitor.baseline).fingerprint == version.tags["keel.baseline"]
    # Calibrated when first bound, at the monitor's window, on the recorded training rows.
    from keel.calibration import Calibration

    calibration = Calibration.load(monitor.calibration)
    assert calibration.baseline_id == Baseline.load(monitor.baseline).id
    assert calibration.reference_windows == 20 and calibration.window == "1D"
    # The model's outputs too: the training rows are scored again by the bound version.
    assert calibration.threshold("score") is not None and calibration.threshold("x") is not None
    assert registry.store.table("calibrations")["path"].tolist() == [monitor.calibration]
    (repo / "keel.yaml").write_text(
        (repo / "keel.yaml").read_text().replace("window: 1D", "window: 7D")
    )
    with pytest.warns(UserWarning, match=r"loans@1: only 2 reference windows of 7D .at least 20"):
        (weekly,) = load_config(repo / "keel.yaml")
    assert Calibration.load(weekly.calibration).fallback


def test_a_dirty_tree_is_recorded_with_its_diff_and_warned_about(project):
    repo, data, registry = project
    (repo / "train.py").write_text((repo / "train.py").read_text() + "\n# tuned by hand\n")
    (repo / "notes.py").write_text("WHY = 'untracked'\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run, _ = _train(data, registry)
    assert any("dirty git tree" in str(w.message) for w in caught)
    code = run.record["code"]
    assert code["dirty"] is True
    assert "+# tuned by hand" in code["diff"] and "+WHY = 'untracked'" in code["diff"]


def test_an_in_memory_frame_is_recorded_as_not_reproducible(project):
    _, data, registry = project
    import pandas as pd

    frame = pd.read_parquet(data)
    with track("loans", train=frame, holdout_last="20%", target="y", registry=registry) as run:
        assert run.timestamp == "t"  # the one timestamp column
        run.log_model(load_entrypoint("train.py:fit")(run.train, {}))
    assert run.record["data"]["train"]["source"] is None
    assert run.record["data"]["train"]["reproducible"] is False
    with pytest.raises(TrainingError, match="already registered loans@1"):
        run.log_model(None)


def test_bad_input_is_refused_with_the_field_named(project):
    _, data, registry = project
    with pytest.raises(TrainingError, match="needs a holdout"):
        track("loans", train=str(data), registry=registry).__enter__()
    with pytest.raises(KeelError, match="'20'.*a share of the rows"):
        track("loans", train=str(data), holdout_last="20", registry=registry).__enter__()
    with pytest.raises(KeelError, match="no target column 'label'"):
        track(
            "loans", train=str(data), holdout_last="20%", target="label", registry=registry
        ).__enter__()
    with pytest.raises(KeelError, match="no function 'train'"):
        load_entrypoint("train.py:train")


def test_keel_train_registers_a_version_and_exits_0_or_2(project, run_keel):
    repo, _, registry = project
    trained = run_keel(
        "train",
        "train.py:fit",
        "--data",
        "loans.parquet",
        "--holdout-last",
        "20%",
        "--target",
        "y",
        "--param",
        "C=0.5",
        "--name",
        "loans",
        cwd=repo,
    )
    assert trained.returncode == 0, trained.stderr
    assert "loans@1 registered in the embedded registry" in trained.stdout
    assert "roc_auc" in trained.stdout
    record = registry.run_record(registry.get_version("loans", 1).run_id)
    assert record["params"] == {"C": 0.5} and record["code"]["entrypoint"] == "train.py:fit"
    for bad in (
        ["train.py:nothing", "--data", "loans.parquet", "--holdout-last", "20%"],
        ["train.py:fit", "--data", "loans.parquet"],
        ["train.py:fit", "--data", "missing.parquet", "--holdout-last", "20%"],
        ["train.py:fit", "--data", "loans.parquet", "--holdout-last", "20%", "--param", "C"],
    ):
        failed = run_keel("train", *bad, "--target", "y", cwd=repo)
        assert failed.returncode == 2, (bad, failed.stdout, failed.stderr)
        assert failed.stderr.startswith("error:"), failed.stderr
    assert [v.version for v in registry.versions("loans")] == [1]


def test_a_monitor_bound_to_the_champion_runs_and_lineage_counts_its_windows(project):
    from datetime import UTC, datetime

    import pandas as pd

    from keel.lineage import lineage
    from keel.monitor.run import run_monitor
    from keel.registry.aliases import promote
    from keel.store.logs import ingest_file, log_root

    repo, data, registry = project
    _train(data, registry)
    promote(registry, registry.store, "loans", 1, "champion", "first model", "ada")
    rng = np.random.default_rng(5)
    hours = 24 * 6
    served = pd.DataFrame(
        {
            "x": rng.normal(1.5, 1.0, hours),  # shifted: every day should drift
            "z": rng.normal(size=hours),
            "event_time": pd.date_range("2026-04-01", periods=hours, freq="h", tz="UTC"),
            "request_id": [f"r{i}" for i in range(hours)],
            "score": rng.uniform(size=hours),
        }
    )
    served["prediction"] = (served["score"] > 0.5).astype(int)
    ingest_file(served, log_root(None), "predictions", "loans")
    (repo / "keel.yaml").write_text(
        "monitors:\n  - name: loans\n    model: loans\n"
        "    baseline: models:/loans@champion\n    window: 1D\n"
    )
    (monitor,) = load_config(repo / "keel.yaml")
    outcome = run_monitor(monitor, registry.store, now=datetime(2026, 4, 10, tzinfo=UTC))
    assert outcome["windows"] == 6 and len(outcome["alerting"]) >= 5
    (watching,) = lineage(registry, registry.store, "loans@champion")["monitors"]
    assert watching["bound_to_this_version"] and watching["windows"] == 6
    assert len(watching["alerting_windows"]) == len(outcome["alerting"])


def test_the_owners_own_holdout_metrics_are_recorded_beside_keels(project):
    _, data, registry = project
    fit = load_entrypoint("train.py:fit")
    with track(
        "loans", train=str(data), holdout_last="20%", target="y", timestamp="t", registry=registry
    ) as run:
        run.log_model(fit(run.train, {}), metrics={"value_per_1000": -12.5, "roc_auc": 2.0})
    metrics = run.record["holdout"]["metrics"]
    assert metrics["value_per_1000"] == -12.5  # the owner's business value, kept
    assert 0.5 < metrics["roc_auc"] <= 1.0  # keel measures ROC AUC itself: its value wins
    assert run.baseline.metrics["value_per_1000"] == -12.5
