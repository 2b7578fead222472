"""Leakage checked where models are trained: ``keel.track`` and ``keel baseline create``.

Findings are warned and recorded (the lineage record, the baseline's notes) and never
fail training unless asked.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel.baseline import Baseline
from keel.registry.embedded import EmbeddedRegistry
from keel.store import ResultStore
from keel.tracking import LeakageError, track

from .test_leakage import START, population


@pytest.fixture
def registry(tmp_path):
    return EmbeddedRegistry(ResultStore(f"sqlite:///{tmp_path / 'keel.db'}"), tmp_path)


@pytest.fixture(scope="module")
def splits():
    train = population(1500, 1, 0, START)
    holdout = population(400, 2, 10_000, START + pd.Timedelta(days=40))
    duplicated = holdout.copy()
    columns = ["good", "x2", "x3", "noise", "region", "spend"]
    duplicated.loc[range(6), columns] = train.loc[range(6), columns].to_numpy()
    for column in ("good", "x2", "x3", "noise", "spend"):
        duplicated[column] = duplicated[column].astype(float)
    return train, holdout, duplicated


FEATURES = ["good", "x2", "x3"]


def fit(run):
    frame = run.train.select(FEATURES).to_pandas()
    return LogisticRegression().fit(frame, run.train["y"].to_numpy())


def tracked(registry, train, holdout, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with track(
            "loans", train=train, holdout=holdout, target="y", registry=registry, **options
        ) as run:
            run.log_model(fit(run))
    leakage = [str(w.message) for w in caught if str(w.message).startswith("leakage")]
    return run, leakage


def test_a_clean_run_records_no_leakage(registry, splits):
    train, holdout, _ = splits
    run, warned = tracked(
        registry,
        train,
        holdout,
        prediction_time="predicted_at",
        available={"spend": "spend_at"},
        entity="customer_id",
    )
    assert warned == []
    assert run.record["leakage"]["format"] == "keel.leakage/v1"
    assert run.record["leakage"]["findings"] == []
    assert {"duplicates", "availability", "shared_entities", "identifiers"} <= set(
        run.record["leakage"]["checked"]
    )
    assert "probes" not in run.record["leakage"]["checked"]  # only when asked


def test_duplicates_across_the_splits_are_warned_recorded_and_kept_in_the_baseline(
    registry, splits
):
    train, _, duplicated = splits
    run, warned = tracked(registry, train, duplicated)
    assert len(warned) == 1 and "duplicates" in warned[0] and "6 holdout rows" in warned[0]
    assert run.version.ref == "loans@1"  # training went on
    (finding,) = run.record["leakage"]["findings"]
    assert finding["kind"] == "duplicates" and finding["rows"]["holdout"]["first"] == list(range(6))
    assert any(note.startswith("leakage alert duplicates") for note in run.baseline.notes)
    assert registry.run_record(run.record["run_id"])["leakage"] == run.record["leakage"]


def test_fail_on_leakage_refuses_the_run_before_training(registry, splits):
    train, _, duplicated = splits
    with (
        pytest.raises(LeakageError, match="duplicates"),
        track(
            "loans",
            train=train,
            holdout=duplicated,
            target="y",
            registry=registry,
            fail_on_leakage=True,
        ),
    ):
        pytest.fail("the run must not start")


def test_probes_run_in_a_training_run_only_when_asked(registry, splits):
    train, holdout, _ = splits
    train = train.copy()
    train["refund_issued"] = train["y"] + np.random.default_rng(5).normal(0, 0.2, len(train))
    _, quiet = tracked(registry, train, holdout.assign(refund_issued=holdout["y"] * 1.0))
    assert quiet == []
    run, warned = tracked(
        registry, train, holdout.assign(refund_issued=holdout["y"] * 1.0), leakage_probes=True
    )
    assert [f["column"] for f in run.record["leakage"]["findings"]] == ["refund_issued"]
    assert "suspiciously_predictive refund_issued" in warned[0]


def test_baseline_create_prints_and_keeps_leakage_and_fails_only_when_asked(
    run_keel, splits, tmp_path
):
    train, _, duplicated = splits
    rng = np.random.default_rng(0)
    for frame, name in ((train, "train"), (duplicated, "holdout")):
        scored = frame.assign(score=rng.random(len(frame)))
        scored.to_parquet(tmp_path / f"{name}.parquet")
    arguments = [
        "baseline",
        "create",
        "train.parquet",
        "--target",
        "y",
        "--score",
        "score",
        "--holdout",
        "holdout.parquet",
    ]
    done = run_keel(*arguments, "-o", "loans.baseline")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "leakage: alert duplicates" in done.stderr
    baseline = Baseline.load(tmp_path / "loans.baseline")
    assert any(note.startswith("leakage alert duplicates") for note in baseline.notes)
    assert baseline.lineage["leakage"]["findings"][0]["rows"]["holdout"]["count"] == 6
    refused = run_keel(*arguments, "-o", "refused.baseline", "--fail-on-leakage")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert not (tmp_path / "refused.baseline").exists()
