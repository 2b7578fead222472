"""Baselines written by earlier keel versions still load: tests/data/baseline-v2.baseline was
written before the order-independent fingerprint and the pilot-shifted moments (baseline
format 2, profile format 2) and is read here as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.baseline import Baseline

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def old():
    return Baseline.load(DATA / "baseline-v2.baseline")


def test_a_version_2_baseline_still_loads_with_its_id_and_sample(old):
    assert old.id == "71f1fcaf497f5daf"
    assert old.rows == 300 and old.sample.num_rows == 25
    assert old.schema["label"].role == "target" and old.schema["score"].role == "score"


def test_a_version_2_profile_reads_its_moments_about_zero(old):
    age = old.profile.columns["age"]
    assert (age.shift, age.mean, age.m2) == (0.0, 38.681666666666665, 25516.609166666665)
    assert age.count == 300 and age.bin_counts.sum() == 300


def test_a_version_2_baseline_drives_a_comparison(old):
    import keel

    frame = old.sample.to_pandas()
    report = keel.drift(old, frame)
    assert report is not None


def test_the_same_rows_in_another_order_make_the_same_baseline():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    rows = pd.DataFrame(
        {
            "x": rng.normal(size=5_000),
            "c": rng.choice(list("abc"), 5_000),
            "y": rng.integers(0, 2, 5_000),
        }
    )
    first = Baseline.from_data(rows, target="y", sample_size=200, seed=4)
    again = Baseline.from_data(
        rows.sample(frac=1.0, random_state=3), target="y", sample_size=200, seed=4
    )
    assert first.id == again.id and first.sample.equals(again.sample)
    assert first.config["digest"] == "keel-rows-sum/1"
    other_seed = Baseline.from_data(rows, target="y", sample_size=200, seed=5)
    assert other_seed.id != first.id and not other_seed.sample.equals(first.sample)


def test_a_version_3_baseline_round_trips(tmp_path):
    import pandas as pd

    from keel import _container

    baseline = Baseline.from_data(pd.DataFrame({"x": [1.0, 2.0, 3.0] * 50}), sample_size=10)
    baseline.save(tmp_path / "b.baseline")
    header, _ = _container.unpack((tmp_path / "b.baseline").read_bytes(), b"BASE", 99, "b")
    assert header["format_version"] == 3
    loaded = Baseline.load(tmp_path / "b.baseline")
    assert loaded.id == baseline.id and loaded.sample.equals(baseline.sample)
