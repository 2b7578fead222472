"""Where "training–serving skew" ranks: above drift and performance always, above a pipeline
fault in the skewed features, below one elsewhere (named after it)."""

from __future__ import annotations

from keel.diagnosis import VERDICTS, diagnose
from keel.result import Result


def _skew(column="clicks_7d", kind="truncated window", metric="mismatch_share"):
    return Result("skew", column, metric, 0.4, 0.001, "alert", details={"kind": kind})


DRIFT = Result("feature_drift", "clicks_7d", "wasserstein", 0.9, 0.1, "alert")
OTHER_DRIFT = Result("feature_drift", "income", "wasserstein", 0.5, 0.1, "alert")


def test_the_verdict_is_appended_and_the_others_keep_their_numbers():
    assert VERDICTS[:7] == (
        "healthy",
        "pipeline fault",
        "data drift",
        "prediction drift without feature drift",
        "concept drift",
        "unexplained alert",
        "label shift",
    )
    assert diagnose([_skew()]).to_result().value == 7.0 == VERDICTS.index("training–serving skew")


def test_skew_wins_over_the_drift_it_causes_and_names_other_drift_after():
    diagnosis = diagnose([DRIFT, OTHER_DRIFT, _skew(), _skew("spend_7d", "unit mismatch")])
    assert diagnosis.verdict == "training–serving skew"
    assert diagnosis.summary == (
        "training–serving skew in clicks_7d (truncated window), spend_7d (unit mismatch); "
        "drift also in income"
    )
    assert {c["column"] for c in diagnosis.causes} == {"clicks_7d", "spend_7d"}


def test_skew_wins_over_a_performance_fall():
    fell = Result("performance", None, "roc_auc", 0.52, 0.7, "alert")
    assert diagnose([fell, _skew()]).verdict == "training–serving skew"


def test_a_fault_in_the_skewed_feature_is_the_skew():
    nulls = Result("quality", "clicks_7d", "missing_share", 0.3, 0.01, "alert")
    diagnosis = diagnose([nulls, _skew(kind="default-filled nulls", metric="missing_share")])
    assert diagnosis.verdict == "training–serving skew"
    assert diagnosis.summary == "training–serving skew in clicks_7d (default-filled nulls)"


def test_a_fault_elsewhere_stays_the_verdict_with_the_skew_named_after():
    volume = Result(
        "quality", None, "volume", 10.0, 1000.0, "alert", details={"expected_rows": 1000}
    )
    diagnosis = diagnose([volume, _skew()])
    assert diagnosis.verdict == "pipeline fault"
    assert diagnosis.summary.endswith("; training–serving skew in clicks_7d")


def test_skew_results_that_do_not_alert_change_nothing():
    quiet = Result("skew", "clicks_7d", "mismatch_share", 0.0, 0.001, "ok")
    assert diagnose([quiet]).verdict == "healthy"
    assert diagnose([quiet, OTHER_DRIFT]).verdict == "data drift"
