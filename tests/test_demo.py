import json

import pytest

from keel.scenario import generate


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli", "demo", "-o", str(folder / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return folder / "out", result


def test_the_demo_tells_what_changed_week_by_week(demo_run):
    _, result = demo_run
    assert result.returncode == 0, result.stderr
    lines = result.stdout
    for week in (1, 2, 3, 4):
        assert f"week {week}: quiet" in lines
    assert "week 5: covariate shift in age, income" in lines
    assert "week 7: upstream unit change in amount — values" in lines
    assert "× the reference" in lines
    assert "holdout ROC AUC" in lines


def test_the_demo_writes_a_report_per_week_and_a_baseline_with_the_models_metrics(demo_run):
    from keel.baseline import Baseline

    folder, _ = demo_run
    for week in range(1, 9):
        report = folder / "reports" / f"week_{week}.html"
        assert report.stat().st_size < 300_000
        assert ("Drift in" in report.read_text()) == (week >= 5)
    baseline = Baseline.load(folder / "baseline.keel")
    assert 0.5 < baseline.metrics["roc_auc"] <= 1.0
    roles = {c.name: c.role for c in baseline.schema.columns}
    assert (roles["score"], roles["prediction"], roles["defaulted"]) == (
        "score",
        "prediction",
        "target",
    )


def test_keel_drift_on_the_demo_data_names_the_changed_columns_and_only_them(demo_run, run_keel):
    folder, _ = demo_run
    changes = generate().changes
    for week in range(1, 9):
        report = folder / f"w{week}.json"
        result = run_keel(
            "drift",
            folder / "baseline.keel",
            folder / "production" / f"week_{week}.parquet",
            "--json",
            report,
        )
        drifted = set(json.loads(report.read_text())["dataset"]["drifted_columns"])
        expected = set(changes.get(week, {}).get("columns", []))
        assert drifted == expected, week
        assert result.returncode == (1 if expected else 0)
