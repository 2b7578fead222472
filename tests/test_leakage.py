"""Leakage at training time: every kind found and named on generated data, none on a twin.

The twin is built correctly: features available before the prediction, served as they
were trained, splits apart in rows, entities and time, ids assigned at random, and a
legitimate feature (``good``) whose single-feature AUC is about 0.8. Each leaky dataset
changes one thing in it, and the check must name that thing: the column, the rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score

from keel.checks.leakage import Availability, check_leakage
from keel.errors import ConfigError, SchemaError
from keel.fingerprint import data_digest
from keel.seeds import derive_seed

START = pd.Timestamp("2026-01-01", tz="UTC")


def population(rows: int, seed: int, first_customer: int, start: pd.Timestamp) -> pd.DataFrame:
    """Rows of a correct training set: the label depends on good, x2, x3 (not time, not ids)."""
    rng = np.random.default_rng(seed)
    good, x2, x3 = rng.normal(size=(3, rows))
    logit = 2.2 * good + 1.6 * x2 + 1.2 * x3
    y = (logit + rng.logistic(size=rows) > 0).astype(np.int64)
    predicted_at = start + pd.to_timedelta(np.arange(rows) * 600, unit="s")
    return pd.DataFrame(
        {
            "customer_id": first_customer + rng.permutation(rows),
            "predicted_at": predicted_at,
            "good": good,
            "x2": x2,
            "x3": x3,
            "noise": rng.normal(size=rows),
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "spend": rng.gamma(2.0, 50.0, rows),
            "spend_at": predicted_at - pd.to_timedelta(rng.integers(60, 86_400, rows), unit="s"),
            "y": y,
        }
    )


@pytest.fixture(scope="module")
def twin():
    train = population(4000, 1, 0, START)
    holdout = population(1000, 2, 10_000, START + pd.Timedelta(days=40))
    served = population(600, 3, 20_000, START + pd.Timedelta(days=60))
    return train, holdout, served


def check(train, holdout=None, served=None, **options):
    defaults = {
        "target": "y",
        "prediction_time": "predicted_at",
        "available": {"spend": "spend_at"},
        "entity": "customer_id",
        "time_column": "predicted_at",
    }
    return check_leakage(train, holdout=holdout, served=served, **(defaults | options))


def kinds(report) -> list[tuple[str, str | None]]:
    return [(f.kind, f.column) for f in report.findings]


def test_a_correctly_built_twin_has_no_finding_at_all(twin):
    train, holdout, served = twin
    report = check(train, holdout, served)
    assert report.findings == [], report.lines()
    assert set(report.checked) == {
        "availability",
        "serving",
        "duplicates",
        "shared_entities",
        "time_overlap",
        "identifiers",
        "probes",
    }
    assert not report.alert


def test_the_twins_legitimate_feature_scores_about_0_8_alone_and_is_not_flagged(twin):
    train, _, _ = twin
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    model = HistGradientBoostingClassifier(max_iter=25, random_state=0)
    auc = cross_val_score(model, train[["good"]], train["y"], cv=cv, scoring="roc_auc").mean()
    assert 0.75 <= auc <= 0.85
    assert "good" not in [f.column for f in check(train).findings]


def test_a_copy_of_the_label_with_small_noise_is_suspiciously_predictive(twin):
    train = twin[0].copy()
    train["refund_issued"] = train["y"] + np.random.default_rng(5).normal(0, 0.3, len(train))
    report = check(train)
    assert kinds(report) == [("suspiciously_predictive", "refund_issued")]
    (finding,) = report.findings
    assert finding.level == "warning" and not report.alert
    assert finding.evidence["metric"] == "roc_auc" and finding.evidence["score"] >= 0.95
    assert len(finding.evidence["folds"]) == 5 and finding.evidence["rows"] == len(train)


def test_the_probes_auc_is_sklearns_cross_val_score_on_the_same_rows_and_seed(twin):
    train = twin[0].copy()
    train["refund_issued"] = train["y"] + np.random.default_rng(5).normal(0, 0.3, len(train))
    (finding,) = check(train).findings
    fingerprint = data_digest(pa.Table.from_pandas(train, preserve_index=False))
    seed = derive_seed(fingerprint[:16], "leakage", "probe")
    assert finding.evidence["seed"] == seed
    model = HistGradientBoostingClassifier(
        max_iter=25, learning_rate=0.2, max_leaf_nodes=15, early_stopping=False, random_state=seed
    )
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    expected = cross_val_score(
        model, train[["refund_issued"]].to_numpy(), train["y"].to_numpy(), cv=cv, scoring="roc_auc"
    )
    assert finding.evidence["folds"] == pytest.approx(expected.tolist(), abs=1e-12)
    assert finding.evidence["score"] == pytest.approx(expected.mean(), abs=1e-12)


def test_a_regression_target_copy_is_flagged_by_r2(twin):
    train = twin[0].copy()
    train["amount"] = train["good"] * 3 + train["x2"]
    train["amount_rounded"] = (train["amount"] * 100).round() / 100 + 0.01
    report = check_leakage(train.drop(columns=["y"]), target="amount", probes=True)
    found = [(f.kind, f.column) for f in report.findings]
    assert ("suspiciously_predictive", "amount_rounded") in found
    assert report.task == "regression"
    assert (
        next(f for f in report.findings if f.column == "amount_rounded").evidence["metric"] == "r2"
    )


def test_a_feature_available_after_the_prediction_names_its_rows(twin):
    train = twin[0].copy()
    late = [5, 17, 300]
    train.loc[late, "spend_at"] = train.loc[late, "predicted_at"] + pd.Timedelta(hours=3)
    train.loc[40, "spend_at"] = train.loc[40, "predicted_at"]  # at the instant: not seen
    report = check(train, probes=False)
    assert kinds(report) == [("availability", "spend")]
    (finding,) = report.findings
    assert finding.level == "alert" and report.alert
    assert finding.rows["train"] == {"count": 4, "first": [5, 17, 40, 300]}
    assert finding.evidence["max_late_seconds"] == pytest.approx(3 * 3600)


def test_availability_by_a_lag_after_the_event_time(twin):
    train = twin[0].copy()
    train["spend_event"] = train["predicted_at"] - pd.Timedelta(hours=1)
    lagged = {"spend": Availability("spend_event", 2 * 3600)}
    assert kinds(check(train, available=lagged, probes=False)) == [("availability", "spend")]
    assert check(train, available={"spend": "spend_event+30min"}, probes=False).findings == []


def test_an_id_assigned_in_label_order_predicts_the_label(twin):
    train = twin[0].copy()
    order = np.argsort(train["y"].to_numpy(), kind="stable")
    train.loc[order, "customer_id"] = np.arange(len(train))
    report = check(train, probes=False)
    assert kinds(report) == [("identifier", "customer_id")]
    assert report.findings[0].evidence["score"] > 0.95


def test_a_time_column_that_sorts_the_labels_is_named(twin):
    train = twin[0].copy().sort_values("y", kind="stable").reset_index(drop=True)
    train["predicted_at"] = START + pd.to_timedelta(np.arange(len(train)) * 600, unit="s")
    train["spend_at"] = train["predicted_at"] - pd.Timedelta(minutes=5)
    report = check(train, probes=False)
    assert kinds(report) == [("time_column", "predicted_at"), ("time_column", "spend_at")]


def test_exact_and_near_duplicates_across_the_splits_name_their_rows(twin):
    train, holdout, _ = twin
    holdout = holdout.copy()
    exact, near = list(range(10)), list(range(10, 15))
    columns = ["good", "x2", "x3", "noise", "region", "spend"]
    holdout.loc[exact, columns] = train.loc[range(100, 110), columns].to_numpy()
    copied = train.loc[range(200, 205), columns].copy()
    copied[["good", "x2", "spend"]] *= 1.0000001
    copied["region"] = "  " + copied["region"].str.upper() + " "
    holdout.loc[near, columns] = copied.to_numpy()
    for column in ("good", "x2", "x3", "noise", "spend"):
        holdout[column] = holdout[column].astype(float)
    report = check(train, holdout, probes=False)
    assert kinds(report) == [("duplicates", None), ("near_duplicates", None)]
    duplicates, near_duplicates = report.findings
    assert duplicates.rows["holdout"] == {"count": 10, "first": exact}
    assert [p["train"] for p in duplicates.evidence["pairs"]] == list(range(100, 110))
    assert near_duplicates.rows["holdout"] == {"count": 5, "first": near}
    assert [p["train"] for p in near_duplicates.evidence["pairs"]] == list(range(200, 205))


def test_one_point_0000001_and_one_are_near_duplicates_not_exact():
    train = pd.DataFrame({"a": [1.0, 5.0] * 30, "b": np.arange(60) * 1.5, "y": [0, 1] * 30})
    holdout = pd.DataFrame({"a": [1.0000001], "b": [0.0], "y": [0]})
    report = check_leakage(train, target="y", holdout=holdout, probes=False)
    assert kinds(report) == [("near_duplicates", None)]


def test_shared_entities_and_time_overlap_across_the_splits(twin):
    train, holdout, _ = twin
    holdout = holdout.copy()
    holdout.loc[:49, "customer_id"] = train["customer_id"].iloc[:50].to_numpy()
    holdout.loc[:99, "predicted_at"] = train["predicted_at"].iloc[-100:].to_numpy()
    report = check(train, holdout, probes=False)
    assert kinds(report) == [("shared_entities", "customer_id"), ("time_overlap", "predicted_at")]
    shared, overlap = report.findings
    assert shared.rows["holdout"]["count"] == 50 and shared.evidence["shared"] == 50
    assert overlap.rows["holdout"]["count"] == 100 and overlap.rows["train"]["count"] == 100


def test_features_missing_or_defaulted_when_served(twin):
    train, _, served = twin
    served = served.copy()
    served["spend"] = np.nan
    served["x3"] = 0.0
    served = served.drop(columns=["noise"])
    report = check(train, served=served, probes=False)
    assert sorted(kinds(report)) == [
        ("absent_at_serving", "noise"),
        ("absent_at_serving", "spend"),
        ("defaulted_at_serving", "x3"),
    ]
    by_column = {f.column: f for f in report.findings}
    assert by_column["spend"].rows["served"]["count"] == len(served)
    assert by_column["x3"].evidence["value"] == 0.0


def test_a_feature_that_is_often_zero_in_training_too_is_not_a_default():
    rng = np.random.default_rng(3)
    clicks = np.where(rng.random(2000) < 0.7, 0, rng.integers(1, 9, 2000))
    train = pd.DataFrame({"clicks": clicks, "y": rng.integers(0, 2, 2000)})
    served = pd.DataFrame({"clicks": np.zeros(100, dtype=np.int64)})
    assert check_leakage(train, target="y", served=served, probes=False).findings == []


def test_bad_input_names_the_column_or_option(twin):
    train = twin[0]
    with pytest.raises(SchemaError, match="'label'"):
        check_leakage(train, target="label")
    with pytest.raises(SchemaError, match="--entity 'account'"):
        check_leakage(train, target="y", entity="account")
    with pytest.raises(SchemaError, match="--available 'spend_time'"):
        check_leakage(
            train, target="y", prediction_time="predicted_at", available={"spend": "spend_time"}
        )
    with pytest.raises(SchemaError, match="--prediction-time"):
        check_leakage(train, target="y", available={"spend": "spend_at"})
    with pytest.raises(ConfigError, match="--task"):
        check_leakage(train, target="y", task="ranking")


def test_same_data_same_findings(twin):
    train = twin[0].copy()
    train["refund_issued"] = train["y"] + np.random.default_rng(5).normal(0, 0.3, len(train))
    first, second = check(train).to_dict(), check(train).to_dict()
    assert first == second


def test_fifty_thousand_rows_by_twenty_columns_take_seconds():
    import time

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50_000, 19)), columns=[f"x{i}" for i in range(19)])
    frame["y"] = (frame["x0"] + rng.normal(size=50_000) > 0).astype(int)
    started = time.perf_counter()
    report = check_leakage(frame, target="y")
    assert report.findings == []
    assert time.perf_counter() - started < 30


def test_training_values_that_differ_from_their_as_of_availability_values():
    from keel.features import WindowedFeature, compute_offline

    rng = np.random.default_rng(9)
    users = np.array([f"u{i}" for i in range(40)])
    event_time = START + pd.to_timedelta(rng.integers(0, 30 * 86_400, 3000), unit="s")
    late = rng.random(3000) < 0.05  # 5% of events arrive two days late
    events = pd.DataFrame(
        {
            "user": rng.choice(users, 3000),
            "amount": rng.integers(1, 100, 3000),
            "event_time": event_time,
            "available_time": event_time + pd.to_timedelta(np.where(late, 2 * 86_400, 60), "s"),
        }
    )
    spend = WindowedFeature(
        "spend_7d", entity="user", column="amount", aggregation="sum", window="7D"
    )
    queries = pd.DataFrame(
        {
            "user": rng.choice(users, 800),
            "predicted_at": START + pd.to_timedelta(rng.integers(8, 30, 800) * 86_400, "s"),
        }
    )
    served_truth = compute_offline([spend], events, queries, at="predicted_at")
    train = served_truth.to_pandas()
    train["y"] = rng.integers(0, 2, len(train))
    options = {"target": "y", "prediction_time": "predicted_at", "probes": False}
    assert check_leakage(train, features=[spend], events=events, **options).findings == []

    # Computed by event time alone, as a naive offline query would: late events leak in.
    naive = events.assign(available_time=events["event_time"])
    train["spend_7d"] = compute_offline([spend], naive, queries, at="predicted_at")["spend_7d"]
    truth = served_truth["spend_7d"].to_numpy(zero_copy_only=False)
    expected = np.flatnonzero(train["spend_7d"].to_numpy() != truth)
    assert len(expected) > 0
    report = check_leakage(train, features=[spend], events=events, **options)
    assert kinds(report) == [("not_as_of_availability", "spend_7d")]
    (finding,) = report.findings
    assert finding.rows["train"]["count"] == len(expected)
    assert finding.rows["train"]["first"] == expected[:20].tolist()
    assert finding.level == "alert"


def dominated(strength: float, rows: int = 3000) -> pd.DataFrame:
    """One informative feature and two of noise: the full model is that feature."""
    rng = np.random.default_rng(11)
    signal = rng.normal(size=rows)
    y = (strength * signal + rng.logistic(size=rows) > 0).astype(int)
    return pd.DataFrame(
        {"signal": signal, "n1": rng.normal(size=rows), "n2": rng.normal(size=rows), "y": y}
    )


def test_a_feature_carrying_a_strong_model_alone_is_flagged_a_weak_one_is_not():
    strong = check_leakage(dominated(3.5), target="y")
    (finding,) = strong.findings
    assert finding.column == "signal" and "within 0.02 of the full model" in finding.message
    assert 0.9 <= finding.evidence["score"] < 0.95
    assert check_leakage(dominated(1.5), target="y").findings == []
