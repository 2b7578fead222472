"""Same data, same config, same answer: in one process, in two, and after a round trip."""

from __future__ import annotations

import json

import datasketches
import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from keel.calibration import exact_wasserstein_loo
from keel.profile import NumericProfile, Profile
from keel.profile.quantiles import QuantileSketch


def normal(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


def test_the_same_values_give_the_same_sketch_bytes():
    values = normal(1_000_000)
    first, second = QuantileSketch(), QuantileSketch()
    for start in range(0, len(values), 65_536):
        first.update(values[start : start + 65_536])
        second.update(values[start : start + 65_536])
    assert not first.is_exact
    assert first.to_bytes() == second.to_bytes()
    assert QuantileSketch.from_bytes(first.to_bytes()).to_bytes() == first.to_bytes()


def test_up_to_the_exact_limit_every_value_is_kept():
    values = normal(200_000)
    sketch = QuantileSketch()
    sketch.update(values[:150_000])
    sketch.update(values[150_000:])
    kept, weights = sketch.weighted()
    assert sketch.is_exact and sketch.rank_error == 0.0
    assert np.array_equal(kept, np.sort(values)) and set(weights) == {1.0}
    sketch.update(normal(1, seed=9))
    assert not sketch.is_exact and sketch.retained < 5_000


@pytest.mark.parametrize("batch", [1_000, 65_536, 1_000_000])
def test_ranks_are_within_the_stated_error(batch):
    values = np.random.default_rng(3).lognormal(size=1_000_000)
    sketch = QuantileSketch()
    for start in range(0, len(values), batch):
        sketch.update(values[start : start + batch])
    ordered = np.sort(values)
    queries = np.quantile(values, np.linspace(0.01, 0.99, 99))
    true = np.searchsorted(ordered, queries, side="right") / len(values)
    found = np.array([sketch.rank(q) for q in queries])
    assert 0 < sketch.rank_error < 0.005
    assert np.abs(found - true).max() <= sketch.rank_error


def test_merged_parts_agree_with_the_whole_within_both_errors():
    values = normal(600_000, seed=4)
    whole = QuantileSketch()
    whole.update(values)
    parts = [QuantileSketch() for _ in range(3)]
    for part, chunk in zip(parts, np.array_split(values, 3), strict=True):
        part.update(chunk)
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged.n == whole.n
    for q in (-1.0, 0.0, 0.5, 2.0):
        assert abs(merged.rank(q) - whole.rank(q)) <= merged.rank_error + whole.rank_error


def test_a_profile_written_with_a_datasketches_kll_still_reads():
    values = normal(50_000, seed=5)
    kll = datasketches.kll_doubles_sketch(1024)
    kll.update(values)
    state, _ = NumericProfile().to_state()
    state.pop("sketch"), state.pop("exact_limit")
    state.update(count=len(values), rows=len(values), minimum=values.min(), maximum=values.max())
    old = NumericProfile.from_state(state, kll.serialize())
    assert old.rank_error == pytest.approx(kll.normalized_rank_error(False))
    for q in (-1.0, 0.0, 1.0):
        assert old.sketch.rank(q) == pytest.approx(kll.get_rank(q), abs=1e-9)


def test_profiles_of_the_same_table_are_byte_identical():
    frame = pd.DataFrame({"x": normal(400_000, 6), "k": np.repeat(list("abcd"), 100_000)})
    assert Profile.build(frame).to_bytes() == Profile.build(frame).to_bytes()


def test_the_exact_leave_one_out_wasserstein_equals_scipys():
    rng = np.random.default_rng(7)
    parts = [np.sort(rng.normal(loc=i % 3 * 0.1, size=rng.integers(50, 400))) for i in range(12)]
    parts[4] = np.sort(np.round(parts[4], 1))  # ties
    statistics = exact_wasserstein_loo(parts)
    for index, part in enumerate(parts):
        rest = np.concatenate(parts[:index] + parts[index + 1 :])
        expected = wasserstein_distance(part, rest) / rest.std(ddof=1)
        assert statistics[index] == pytest.approx(expected, rel=1e-9)


def test_the_exact_rest_keeps_its_precision_far_from_zero():
    rng = np.random.default_rng(8)
    parts = [1e9 + rng.normal(size=300) for _ in range(5)]
    rest = np.concatenate(parts[1:])
    expected = wasserstein_distance(parts[0], rest) / rest.std(ddof=1)
    assert exact_wasserstein_loo([np.sort(p) for p in parts])[0] == pytest.approx(expected, 1e-6)


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    rng = np.random.default_rng(11)
    rows = 300_000
    start = pd.Timestamp("2026-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "event_time": start
            + pd.to_timedelta(np.sort(rng.uniform(0, 26 * 7 * 86_400, rows)), "s"),
            "age": rng.normal(40, 10, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "device": rng.choice(["ios", "android", "web"], rows, p=[0.5, 0.3, 0.2]),
            "label": rng.integers(0, 2, rows),
        }
    )
    path = folder / "training.parquet"
    frame.to_parquet(path)
    return path


def test_two_calibrations_in_separate_processes_are_byte_identical(
    run_keel, reference_file, tmp_path
):
    made = run_keel(
        "baseline", "create", reference_file, "-o", "loans.baseline", "--target", "label"
    )
    assert made.returncode == 0, made.stderr
    for name in ("first.json", "second.json"):
        calibrated = run_keel(
            "baseline", "calibrate", "loans.baseline", reference_file, "--window", "7D", "-o", name
        )
        assert calibrated.returncode == 0, calibrated.stderr
    first, second = (tmp_path / "first.json").read_bytes(), (tmp_path / "second.json").read_bytes()
    assert first == second
    thresholds = json.loads(first)["thresholds"]
    assert {"age", "income", "device"} <= set(thresholds)
    for entry in thresholds.values():  # the threshold lies within its resampled spread
        assert entry["spread"]["low"] <= entry["threshold"] <= entry["spread"]["high"]


def test_a_version_1_profile_file_still_reads():
    from keel import _container

    values = normal(30_000, seed=12)
    current = Profile.build(pd.DataFrame({"x": values}))
    header, blobs = _container.unpack(current.to_bytes(), b"PROF", 99, "profile")  # any version
    kll = datasketches.kll_doubles_sketch(1024)
    kll.update(values)
    header["columns"]["x"].pop("sketch")
    header["columns"]["x"].pop("exact_limit")
    header.pop("format_version", None)
    old_bytes = _container.pack(b"PROF", 1, header, {"column:x": kll.serialize()})
    old = Profile.from_bytes(old_bytes)
    assert old.rows == 30_000 and old.columns["x"].mean == pytest.approx(values.mean())
    assert old.columns["x"].quantiles(np.array([0.5]))[0] == pytest.approx(
        np.median(values), abs=0.05
    )


MONITOR_YAML = """\
monitors:
  - name: loans
    model: loans
    baseline: loans.baseline
    window: 7D
    logs: logs
    performance:
      task: binary
      label: defaulted
"""


@pytest.fixture(scope="module")
def fifty_thousand_row_weeks(tmp_path_factory):
    """A prediction log of weeks of 50,000 rows (labels logged too), and its baseline."""
    from datetime import timedelta

    from keel.baseline import Baseline
    from keel.demo import score, train_model
    from keel.scenario import SCORED_ROLES, generate, log_labels_of, log_weeks

    folder = tmp_path_factory.mktemp("weeks")
    scenario = generate(seed=5, training_weeks=4, week_rows=50_000, production_weeks=5)
    model, metrics = train_model(scenario.training, seed=5)
    Baseline.from_data(
        score(model, scenario.training), **SCORED_ROLES, metrics=metrics, sample_size=5000
    ).save(folder / "loans.baseline")
    weeks = [score(model, week) for week in scenario.weeks]
    log_weeks(folder / "logs", weeks)
    for number, week in enumerate(weeks, start=1):
        log_labels_of(folder / "logs", week, scenario.week_start(number) + timedelta(days=8))
    (folder / "keel.yaml").write_text(MONITOR_YAML)
    return folder


def test_two_monitor_runs_into_fresh_stores_store_identical_results(fifty_thousand_row_weeks):
    import os
    import subprocess
    import sys

    import sqlalchemy as sa

    folder = fifty_thousand_row_weeks
    tables = []
    for name in ("first", "second"):
        env = dict(os.environ, KEEL_DATABASE_URL=f"sqlite:///{folder / name}.db")
        ran = subprocess.run(
            [sys.executable, "-m", "keel.cli", "monitor", "run"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert ran.returncode in (0, 1), ran.stderr
        engine = sa.create_engine(f"sqlite:///{folder / name}.db")
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM keel_results")).mappings().all()
        engine.dispose()
        drop = {"id", "run_id", "created_at"}
        kept = [tuple((k, v) for k, v in r.items() if k not in drop) for r in rows]
        tables.append(sorted(kept, key=repr))
    first, second = tables
    assert len(first) > 100
    checks = {dict(row)["check"] for row in first}
    assert {"feature_drift", "performance", "estimated_performance", "diagnosis"} <= checks
    assert first == second
