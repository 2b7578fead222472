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
