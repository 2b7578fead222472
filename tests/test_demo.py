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
