import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.baseline import Baseline
from keel.errors import FormatError

from .conftest import make_table


def test_a_baseline_round_trips_with_everything_it_records(tmp_path):
    frame = make_table(5000, seed=1)
    baseline = Baseline.from_data(
        frame, id="row_id", sample_size=500, metrics={"auc": 0.81}, lineage={"git": "abc123"}
    )
    baseline.save(tmp_path / "b.keel")
    loaded = Baseline.load(tmp_path / "b.keel")
    assert loaded.id == baseline.id and len(loaded.fingerprint) == 64
    assert loaded.schema == baseline.schema and loaded.schema["row_id"].role == "id"
    assert loaded.metrics == {"auc": 0.81} and loaded.lineage == {"git": "abc123"}
    assert loaded.sample.num_rows == 500 and loaded.sample.schema == baseline.sample.schema
    for name in ("x", "y", "z"):
        assert np.array_equal(loaded.bin_edges[name], baseline.bin_edges[name])
        counts = loaded.profile.columns[name].bin_counts
        assert counts.sum() == 5000  # exact counts in the fixed bins, every row


def test_bin_edges_are_reference_quantiles_and_bins_hold_equal_shares():
    baseline = Baseline.from_data(make_table(50_000, seed=2), sample_size=0)
    counts = baseline.profile.columns["x"].bin_counts
    assert len(counts) == 10
    assert np.all(np.abs(counts / counts.sum() - 0.1) < 0.01)


def test_the_fingerprint_covers_every_row_and_the_configuration(tmp_path):
    frame = make_table(3000, seed=3)
    first = Baseline.from_data(frame, sample_size=10)
    changed = frame.copy()
    changed.loc[2999, "y"] += 1e-9  # the very last row
    assert Baseline.from_data(changed, sample_size=10).fingerprint != first.fingerprint
    assert Baseline.from_data(frame, sample_size=10).fingerprint == first.fingerprint
    assert Baseline.from_data(frame, sample_size=11).fingerprint != first.fingerprint
    # The same rows read from a file in other batch sizes give the same fingerprint.
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False),
        tmp_path / "f.parquet",
        row_group_size=700,
    )
    assert Baseline.from_data(tmp_path / "f.parquet", sample_size=10).fingerprint == (
        first.fingerprint
    )


def test_the_sample_is_uniform_over_all_rows():
    frame = make_table(100_000, seed=4)
    sample = Baseline.from_data(frame, sample_size=5000).sample
    ids = sample.column("row_id").to_numpy() - frame["row_id"].iloc[0]
    assert len(np.unique(ids)) == 5000
    # Every tenth of the table is represented about equally (a biased reservoir would not be).
    shares = np.bincount(ids // 10_000, minlength=10) / 5000
    assert np.all(np.abs(shares - 0.1) < 0.02)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "b.keel"
    Baseline.from_data(make_table(1000, seed=5), sample_size=50).save(path)
    return path


def test_a_truncated_baseline_fails_clearly(saved):
    saved.write_bytes(saved.read_bytes()[:-100])
    with pytest.raises(FormatError, match=r"b.keel: the baseline file is truncated or corrupted"):
        Baseline.load(saved)


def test_a_corrupted_baseline_fails_clearly(saved):
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="truncated or corrupted"):
        Baseline.load(saved)


def test_a_baseline_from_a_newer_format_asks_for_an_upgrade(saved):
    data = bytearray(saved.read_bytes())
    struct.pack_into("<H", data, 8, 99)
    saved.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="format version 99 is newer.*upgrade keel"):
        Baseline.load(saved)


def test_a_profile_file_is_not_taken_for_a_baseline(tmp_path):
    from keel.profile import Profile

    Profile.build(make_table(10, seed=6)).save(tmp_path / "p.keel")
    with pytest.raises(FormatError, match="a keel PROF file, not a baseline file"):
        Baseline.load(tmp_path / "p.keel")


def test_a_baseline_from_a_trusted_period_of_a_log(run_keel, tmp_path):
    import pandas as pd

    rng = np.random.default_rng(8)
    times = pd.date_range("2026-01-01", periods=24 * 30, freq="h", tz="UTC")
    log = pd.DataFrame({"ts": times, "x": rng.normal(size=len(times))})
    log.loc[log.ts >= "2026-01-20", "x"] += 5  # a later period nobody trusts
    baseline = Baseline.from_data(
        log, timestamp="ts", start="2026-01-05", end="2026-01-15", sample_size=0
    )
    assert baseline.rows == 240 and baseline.config["period"] == ["2026-01-05", "2026-01-15"]
    assert baseline.profile.columns["x"].maximum < 5
    log.to_parquet(tmp_path / "log.parquet")
    made = run_keel(
        "baseline",
        "create",
        tmp_path / "log.parquet",
        "-o",
        tmp_path / "b.keel",
        "--timestamp",
        "ts",
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-15",
    )
    assert made.returncode == 0 and "240 rows" in made.stdout
    empty = run_keel(
        "baseline",
        "create",
        tmp_path / "log.parquet",
        "-o",
        tmp_path / "e.keel",
        "--timestamp",
        "ts",
        "--from",
        "2027-01-01",
    )
    assert empty.returncode == 2 and "no rows to make a baseline of" in empty.stderr


def test_a_fit_on_the_baseline_is_kept_beside_its_file_and_read_back(tmp_path):
    import json

    frame = pa.table({"x": np.arange(500.0), "y": np.arange(500.0) % 7})
    Baseline.from_data(frame).save(tmp_path / "m.baseline")
    calls = []

    def fit(baseline):
        calls.append(baseline.id)
        return {"x": 0.75, "y": 0.25}

    first = Baseline.load(tmp_path / "m.baseline").kept_beside("importance", fit)
    second = Baseline.load(tmp_path / "m.baseline").kept_beside("importance", fit)
    assert first == second == {"x": 0.75, "y": 0.25} and len(calls) == 1
    kept = json.loads((tmp_path / "m.baseline.importance.json").read_text())
    assert kept["baseline_id"] == calls[0] and kept["format"] == "keel.fit/v1"
    # A file made for another baseline is not trusted: fitted again.
    kept["baseline_id"] = "someone-else"
    (tmp_path / "m.baseline.importance.json").write_text(json.dumps(kept))
    Baseline.load(tmp_path / "m.baseline").kept_beside("importance", fit)
    assert len(calls) == 2
