"""The real ``keel`` command: outputs, JSON and exit codes (0 nothing, 1 found, 2 could not run)."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import make_table

REQUIRED_COLUMN_KEYS = {
    "column",
    "kind",
    "method",
    "statistic",
    "p_value",
    "threshold",
    "drift",
    "p_value_adjusted",
    "effect_size",
    "effect_floor",
}


def write(frame: pd.DataFrame, path):
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


@pytest.fixture
def files(tmp_path):
    return {
        "reference": write(make_table(20_000, seed=1), tmp_path / "reference.parquet"),
        "same": write(make_table(10_000, seed=2), tmp_path / "same.parquet"),
        "shifted": write(make_table(10_000, seed=3, shift=0.4), tmp_path / "shifted.parquet"),
    }


def test_drift_exits_0_without_drift_and_1_with_it_and_writes_json(run_keel, files, tmp_path):
    quiet = run_keel("drift", files["reference"], files["same"], "--json", tmp_path / "q.json")
    assert quiet.returncode == 0, quiet.stderr
    assert "no drift in 4 columns" in quiet.stdout
    found = run_keel("drift", files["reference"], files["shifted"], "--json", tmp_path / "d.json")
    assert found.returncode == 1, found.stderr
    assert "drift in 1 of 4 columns: x" in found.stdout
    result = json.loads((tmp_path / "d.json").read_text())
    assert result["dataset"]["drift"] is True and result["dataset"]["drifted_columns"] == ["x"]
    for column in result["columns"]:
        assert set(column) >= REQUIRED_COLUMN_KEYS
    assert {c["column"] for c in result["columns"]} == {"x", "y", "z", "color"}
    assert json.loads((tmp_path / "q.json").read_text())["dataset"]["drift"] is False


def test_baseline_create_show_and_drift_against_it(run_keel, files, tmp_path):
    made = run_keel(
        "baseline", "create", files["reference"], "-o", tmp_path / "b.keel", "--target", "z"
    )
    assert made.returncode == 0, made.stderr
    assert "20,000 rows" in made.stdout and "z=target" in made.stdout
    shown = run_keel("baseline", "show", tmp_path / "b.keel")
    assert shown.returncode == 0 and "target" in shown.stdout
    found = run_keel("drift", tmp_path / "b.keel", files["shifted"], "--json", tmp_path / "d.json")
    assert found.returncode == 1
    columns = {
        c["column"]: c["check"] for c in json.loads((tmp_path / "d.json").read_text())["columns"]
    }
    # The id is not compared; the target is, apart from the features.
    assert columns == {
        "x": "feature_drift",
        "y": "feature_drift",
        "color": "feature_drift",
        "z": "target_drift",
    }


def test_profile_writes_a_loadable_profile_usable_as_a_reference(run_keel, files, tmp_path):
    made = run_keel("profile", files["reference"], "-o", tmp_path / "p.keel")
    assert made.returncode == 0 and "20,000 rows" in made.stdout
    found = run_keel("drift", tmp_path / "p.keel", files["shifted"])
    assert found.returncode == 1 and "x" in found.stdout


def test_exact_mode_and_a_chosen_method(run_keel, files, tmp_path):
    exact = run_keel(
        "drift", files["reference"], files["shifted"], "--exact", "--json", tmp_path / "e.json"
    )
    assert exact.returncode == 1
    assert json.loads((tmp_path / "e.json").read_text())["dataset"]["mode"] == "exact"
    chosen = run_keel(
        "drift",
        files["reference"],
        files["shifted"],
        "--method",
        "psi",
        "--json",
        tmp_path / "p.json",
    )
    assert chosen.returncode in (0, 1), chosen.stderr
    columns = json.loads((tmp_path / "p.json").read_text())["columns"]
    assert {c["method"] for c in columns} == {"psi"} and all(c["p_value"] is None for c in columns)


def test_csv_inputs_work_like_parquet(run_keel, tmp_path):
    make_table(3000, seed=1).to_csv(tmp_path / "r.csv", index=False)
    make_table(3000, seed=2, shift=1.0).to_csv(tmp_path / "c.csv", index=False)
    found = run_keel("drift", tmp_path / "r.csv", tmp_path / "c.csv")
    assert found.returncode == 1 and "drift in 1 of 4 columns: x" in found.stdout


@pytest.mark.parametrize(
    "case", ["empty", "missing", "not_parquet", "unknown_method", "bad_option"]
)
def test_inputs_that_cannot_be_used_exit_2_with_one_clear_line(run_keel, files, tmp_path, case):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    args = {
        "empty": ("drift", files["reference"], tmp_path / "empty.csv"),
        "missing": ("drift", tmp_path / "nope.parquet", files["same"]),
        "not_parquet": ("drift", files["reference"], tmp_path / "junk.parquet"),
        "unknown_method": ("drift", files["reference"], files["same"], "--method", "kss"),
        "bad_option": ("drift", files["reference"], files["same"], "--frobnicate"),
    }[case]
    result = run_keel(*args)
    assert result.returncode == 2
    expected = {
        "empty": "empty.csv: the file is empty",
        "missing": "nope.parquet: no such file",
        "not_parquet": "junk.parquet: not a readable Parquet",
        "unknown_method": "unknown drift method 'kss'",
        "bad_option": "No such option",
    }[case]
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_a_truncated_baseline_exits_2_naming_the_file(run_keel, files, tmp_path):
    run_keel("baseline", "create", files["reference"], "-o", tmp_path / "b.keel")
    data = (tmp_path / "b.keel").read_bytes()
    (tmp_path / "b.keel").write_bytes(data[: len(data) // 2])
    result = run_keel("drift", tmp_path / "b.keel", files["same"])
    assert result.returncode == 2
    assert "b.keel: the baseline file is truncated or corrupted" in result.stderr


def test_schema_problems_are_findings_with_exit_1(run_keel, files, tmp_path):
    current = make_table(5000, seed=4).drop(columns=["y"])
    current["z"] = current["z"].astype(str)
    current["x"] = np.nan
    write(current, tmp_path / "broken.parquet")
    result = run_keel(
        "drift", files["reference"], tmp_path / "broken.parquet", "--json", tmp_path / "r.json"
    )
    assert result.returncode == 1
    assert "y: missing" in result.stdout and "z: type changed: int64 (numeric)" in result.stdout
    by_column = {c["column"]: c for c in json.loads((tmp_path / "r.json").read_text())["columns"]}
    assert by_column["x"]["status"] == "insufficient_data"
    assert "entirely null" in by_column["x"]["finding"]


def test_a_categorical_with_100000_distinct_values_is_profiled_and_compared(run_keel, tmp_path):
    rng = np.random.default_rng(5)
    rows = 150_000

    def cities(paris_share):
        tail = np.char.add("c", rng.integers(0, 100_000, rows).astype(str))
        draw = rng.random(rows)
        return np.where(
            draw < paris_share, "paris", np.where(draw < paris_share + 0.2, "rome", tail)
        )

    write(pd.DataFrame({"city": cities(0.3)}), tmp_path / "r.parquet")
    write(pd.DataFrame({"city": cities(0.3)}), tmp_path / "same.parquet")
    write(pd.DataFrame({"city": cities(0.45)}), tmp_path / "moved.parquet")
    same = run_keel(
        "drift", tmp_path / "r.parquet", tmp_path / "same.parquet", "--json", tmp_path / "same.json"
    )
    assert same.returncode == 0, same.stdout + same.stderr
    city = json.loads((tmp_path / "same.json").read_text())["columns"][0]
    # Past the exact cap only values the sketch guarantees frequent are named; the tail is pooled.
    assert city["details"]["categories"] == 3  # paris, rome, (other)
    moved = run_keel("drift", tmp_path / "r.parquet", tmp_path / "moved.parquet")
    assert moved.returncode == 1 and "drift in 1 of 1 columns: city" in moved.stdout


def test_the_html_and_script_in_column_names_do_not_break_the_table(run_keel, tmp_path):
    weird = "<script>alert(1)</script>"
    write(pd.DataFrame({weird: np.arange(50.0) % 7}), tmp_path / "r.parquet")
    result = run_keel("drift", tmp_path / "r.parquet", tmp_path / "r.parquet")
    assert result.returncode == 0 and weird in result.stdout


@pytest.mark.parametrize(
    "case, says",
    [
        ("scores_broken", "alert score: quality: nonfinite_count"),
        ("feature_all_null", "alert b: quality: missing_share 1"),
        ("no_rows", "alert the current data has no rows"),
    ],
)
def test_broken_data_is_a_finding_even_without_drift(run_keel, tmp_path, case, says):
    rng = np.random.default_rng(0)
    n = 5000
    reference = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "score": rng.uniform(size=n)}
    )
    write(reference, tmp_path / "r.parquet")
    current = reference.copy()
    if case == "scores_broken":  # a third infinite, a third NaN
        current.loc[: n // 3, "score"] = np.inf
        current.loc[n // 3 : 2 * n // 3, "score"] = np.nan
    elif case == "feature_all_null":
        current["b"] = np.nan
    else:
        current = current.iloc[:0]
    write(current, tmp_path / "c.parquet")
    for mode in ([], ["--exact"]):
        found = run_keel("drift", tmp_path / "r.parquet", tmp_path / "c.parquet", *mode)
        assert found.returncode == 1, found.stdout + found.stderr
        assert says in found.stdout
    same = run_keel("drift", tmp_path / "r.parquet", tmp_path / "r.parquet")
    assert same.returncode == 0
