"""A baseline's content fingerprint and reference sample: the same rows in any order, batching
or partitioning give the same fingerprint and the same sample; parts merge exactly; the
readings two engines make of one file (int32 or int64, string or large_string, ns or us, any
time zone) hash the same; any changed value changes the fingerprint."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.fingerprint import ContentFingerprint, row_hashes
from keel.sample import HashSample

ROWS = 3_000


def _table(seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "x": pa.array(rng.normal(size=ROWS), mask=rng.random(ROWS) < 0.05),
            "n": rng.integers(-5, 5, ROWS),
            "word": pa.array(
                rng.choice(np.array(["", "a", "bb", "ccc", "é✓"], dtype=object), ROWS),
                mask=rng.random(ROWS) < 0.05,
            ),
            "when": pa.array(
                (1_700_000_000_000_000 + rng.integers(0, 10**12, ROWS)), pa.timestamp("us", "UTC")
            ),
            "flag": rng.random(ROWS) < 0.5,
            "i": np.arange(ROWS),
        }
    )


def _digest(*parts: pa.Table) -> str:
    fingerprints = []
    for part in parts:
        fingerprint = ContentFingerprint()
        for batch in part.to_batches(max_chunksize=700):
            fingerprint.update(batch)
        fingerprints.append(fingerprint)
    merged = ContentFingerprint()
    for fingerprint in fingerprints:
        merged.merge(fingerprint)
    return merged.hexdigest()


def _sample(*parts: pa.Table, size: int = 50, seed: int = 3) -> pa.Table:
    merged = HashSample(size, seed)
    for part in parts:
        sample = HashSample(size, seed)
        for batch in part.to_batches(max_chunksize=700):
            sample.update(batch)
        state, rows = sample.to_state()  # as a worker sends it
        merged.merge(HashSample.from_state(state, rows))
    return merged.table()


@settings(max_examples=25, deadline=None)
@given(permutation_seed=st.integers(0, 2**16), cuts=st.lists(st.integers(0, ROWS), max_size=6))
def test_any_order_and_partitioning_gives_one_fingerprint_and_one_sample(permutation_seed, cuts):
    table = _table()
    shuffled = table.take(np.random.default_rng(permutation_seed).permutation(ROWS))
    bounds = [0, *sorted(cuts), ROWS]
    parts = [shuffled.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    assert _digest(*parts) == _digest(table)
    assert _sample(*parts).equals(_sample(table))


def test_the_sample_is_the_rows_with_the_smallest_keys():
    table = _table()
    sample = HashSample(40, seed=9)
    sample.update(table)
    keys = sample.keys(row_hashes(table))
    expected = table.take(np.argsort(keys, kind="stable")[:40])
    assert sample.table().equals(expected) and sample.rows_seen == ROWS
    other_seed = HashSample(40, seed=10)
    other_seed.update(table)
    assert not other_seed.table().equals(sample.table())  # the seed picks another sample


def test_the_sample_is_uniform_over_rows():
    table = pa.table({"i": np.arange(100_000)})
    picked = np.concatenate([_one_sample(table, seed).column("i").to_numpy() for seed in range(20)])
    counts = np.bincount(picked // 10_000, minlength=10)  # 20,000 picks in ten deciles
    assert counts.min() > 1_800 and counts.max() < 2_200


def _one_sample(table: pa.Table, seed: int) -> pa.Table:
    sample = HashSample(1_000, seed)
    sample.update(table)
    return sample.table()


def test_two_engines_readings_of_one_file_hash_the_same():
    table = _table()
    other = pa.table(
        {
            "x": table["x"],
            "n": table["n"].cast(pa.int32()),
            "word": table["word"].cast(pa.large_string()),
            "when": table["when"].cast(pa.timestamp("ns", "Europe/Paris")),
            "flag": table["flag"],
            "i": table["i"],
        }
    )
    assert _digest(other) == _digest(table)
    encoded = table.set_column(2, "word", table["word"].dictionary_encode())
    assert _digest(encoded) == _digest(table)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.set_column(0, "x", pa.array([0.5, *t["x"].to_pylist()[1:]])),
        lambda t: t.set_column(2, "word", pa.array(["bb", *t["word"].to_pylist()[1:]])),
        lambda t: t.set_column(2, "word", pa.array([None, *t["word"].to_pylist()[1:]])),
        lambda t: t.rename_columns(["y", "n", "word", "when", "flag", "i"]),
        lambda t: t.slice(1),
        lambda t: pa.concat_tables([t, t.slice(0, 1)]),  # one row twice
        lambda t: t.select(["n", "x", "word", "when", "flag", "i"]),
    ],
)
def test_any_change_changes_the_fingerprint(change):
    table = _table()
    table = table.set_column(2, "word", pa.array(["ccc", *table["word"].to_pylist()[1:]]))
    assert _digest(change(table)) != _digest(table)


def test_text_is_hashed_by_its_bytes_not_its_letters():
    a = pa.table({"s": ["ab", "c", "", None]})
    b = pa.table({"s": ["a", "bc", "", None]})
    c = pa.table({"s": ["ab", "c", None, ""]})
    assert len({_digest(a), _digest(b)}) == 2
    assert _digest(a) == _digest(c.take([0, 1, 3, 2]))
    low, high = row_hashes(a)
    assert len(set(low.tolist())) == 4 and len(set(high.tolist())) == 4


def test_nan_zero_and_null_are_three_values():
    assert len({_digest(pa.table({"v": [value]})) for value in (0.0, float("nan"), None)}) == 3
    signalling = np.array([0x7FF0000000000001], dtype=np.uint64).view(np.float64)
    assert _digest(pa.table({"v": signalling})) == _digest(pa.table({"v": [float("nan")]}))


def test_the_fingerprint_state_round_trips():
    fingerprint = ContentFingerprint()
    fingerprint.update(_table())
    again = ContentFingerprint.from_state(fingerprint.to_state())
    assert again.hexdigest() == fingerprint.hexdigest() and again.rows == ROWS


def test_nested_columns_hash_by_value():
    table = pa.table(
        {"tags": [["a", "b"], [], None, ["a"]], "pair": [{"k": 1}, {"k": 2}, None, {"k": 1}]}
    )
    assert _digest(table) == _digest(table.take([3, 1, 0, 2]))
    assert _digest(table) != _digest(table.slice(1))
