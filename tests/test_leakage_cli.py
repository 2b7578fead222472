"""``keel leakage`` in a subprocess: exit codes, the table, the JSON, bad input, the log."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from .test_leakage import START, population


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("leakage")
    train = population(3000, 1, 0, START)
    holdout = population(800, 2, 10_000, START + pd.Timedelta(days=40))
    train.to_parquet(folder / "train.parquet")
    holdout.to_parquet(folder / "holdout.parquet")
    duplicated = holdout.copy()
    columns = ["good", "x2", "x3", "noise", "region", "spend"]
    duplicated.loc[range(7), columns] = train.loc[range(7), columns].to_numpy()
    for column in ("good", "x2", "x3", "noise", "spend"):
        duplicated[column] = duplicated[column].astype(float)
    duplicated.to_parquet(folder / "duplicated.parquet")
    leaky = train.copy()
    leaky["refund_issued"] = leaky["y"] + np.random.default_rng(5).normal(0, 0.2, len(leaky))
    leaky.to_parquet(folder / "leaky.parquet")
    (folder / "broken.parquet").write_bytes(b"PAR1 not really")
    (folder / "logs" / "predictions").mkdir(parents=True)
    return folder


OPTIONS = ["--target", "y", "--prediction-time", "predicted_at", "--available", "spend=spend_at"]


def test_a_clean_training_set_exits_0(run_keel, files):
    done = run_keel(
        "leakage", files / "train.parquet", *OPTIONS, "--holdout", files / "holdout.parquet"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no leakage alert, 0 warning(s)" in done.stdout


def test_duplicates_across_the_splits_exit_1_and_the_json_names_the_rows(run_keel, files, tmp_path):
    done = run_keel(
        "leakage",
        files / "train.parquet",
        *OPTIONS,
        "--holdout",
        files / "duplicated.parquet",
        "--no-probes",
        "--json",
        tmp_path / "leakage.json",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "duplicates" in done.stdout and "1 leakage alert(s)" in done.stdout
    document = json.loads((tmp_path / "leakage.json").read_text())
    assert document["format"] == "keel.leakage/v1" and document["alert"] is True
    (finding,) = document["findings"]
    assert finding["kind"] == "duplicates" and finding["level"] == "alert"
    assert finding["rows"]["holdout"] == {"count": 7, "first": list(range(7))}
    assert [pair["train"] for pair in finding["evidence"]["pairs"]] == list(range(7))
    assert document["rows"] == {"train": 3000, "holdout": 800}


def test_a_warning_alone_exits_0_unless_strict(run_keel, files):
    done = run_keel("leakage", files / "leaky.parquet", "--target", "y", "--json", "-")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [(f["kind"], f["column"]) for f in document["findings"]] == [
        ("suspiciously_predictive", "refund_issued")
    ]
    assert document["alert"] is False
    strict = run_keel("leakage", files / "leaky.parquet", "--target", "y", "--strict")
    assert strict.returncode == 1 and "refund_issued" in strict.stdout


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--target", "label"], "'label'"),
        (["--target", "y", "--entity", "account", "--holdout", "HOLDOUT"], "--entity 'account'"),
        (["--target", "y", "--available", "spend"], "FEATURE=COLUMN"),
        (["--target", "y", "--holdout", "BROKEN"], "broken.parquet"),
        (["--target", "y", "--holdout", "MISSING"], "missing.parquet"),
        (["--target", "y", "--served-log", "LOGS"], "name the --model"),
        (["--target", "y", "--task", "ranking"], "--task 'ranking'"),
    ],
)
def test_bad_input_exits_2_naming_it(run_keel, files, arguments, named):
    paths = {
        "HOLDOUT": files / "holdout.parquet",
        "BROKEN": files / "broken.parquet",
        "MISSING": files / "missing.parquet",
        "LOGS": files / "logs",
    }
    arguments = [str(paths.get(a, a)) for a in arguments]
    done = run_keel("leakage", files / "train.parquet", "--no-probes", *arguments)
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr


def test_served_rows_from_keels_prediction_log(run_keel, files, tmp_path):
    from keel.store.logs import LogWriter

    served = population(300, 3, 20_000, START + pd.Timedelta(days=60))
    served["spend"] = None
    served["request_id"] = [f"r{i}" for i in range(len(served))]
    served["event_time"] = served["predicted_at"]
    root = tmp_path / "logs"
    with LogWriter(root, "predictions", model="loans") as writer:
        assert writer.append(served.drop(columns=["y"])) == 300
    done = run_keel(
        "leakage",
        files / "train.parquet",
        "--target",
        "y",
        "--no-probes",
        "--served-log",
        root,
        "--model",
        "loans",
        "--json",
        "-",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert [(f["kind"], f["column"]) for f in findings] == [("absent_at_serving", "spend")]
    assert findings[0]["rows"]["served"]["count"] == 300


def test_windowed_features_recomputed_as_of_availability(run_keel, tmp_path):
    from keel.features import WindowedFeature, compute_offline

    rng = np.random.default_rng(4)
    event_time = START + pd.to_timedelta(rng.integers(0, 20 * 86_400, 2000), unit="s")
    late = rng.random(2000) < 0.1
    events = pd.DataFrame(
        {
            "user": rng.choice(["a", "b", "c", "d"], 2000),
            "amount": rng.integers(1, 50, 2000),
            "event_time": event_time,
            "available_time": event_time + pd.to_timedelta(np.where(late, 86_400, 0), "s"),
        }
    )
    events.to_parquet(tmp_path / "events.parquet")
    (tmp_path / "keel.yaml").write_text(
        "features:\n  - {name: spend_7d, entity: user, column: amount, aggregation: sum, "
        "window: 7D}\n"
    )
    spend = WindowedFeature(
        "spend_7d", entity="user", column="amount", aggregation="sum", window="7D"
    )
    queries = pd.DataFrame(
        {
            "user": rng.choice(["a", "b", "c", "d"], 300),
            "predicted_at": START + pd.to_timedelta(rng.integers(8, 20, 300) * 86_400, "s"),
        }
    )
    naive = events.assign(available_time=events["event_time"])
    train = compute_offline([spend], naive, queries, at="predicted_at").to_pandas()
    train["y"] = rng.integers(0, 2, len(train))
    train.to_parquet(tmp_path / "train.parquet")
    done = run_keel(
        "leakage",
        "train.parquet",
        "--target",
        "y",
        "--no-probes",
        "--prediction-time",
        "predicted_at",
        "--features",
        "keel.yaml",
        "--events",
        "events.parquet",
        "--json",
        "-",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (finding,) = json.loads(done.stdout)["findings"]
    assert (finding["kind"], finding["column"]) == ("not_as_of_availability", "spend_7d")
