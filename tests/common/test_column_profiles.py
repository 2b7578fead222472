"""The column-profile battery: every kind in ``keel.profile.profile.PROFILE_KINDS`` updates,
merges and serializes the same way (DataSketches' lifecycle). A new kind of column profile
is one class and one entry there, and gets these for free."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from keel.profile import Profile
from keel.profile.profile import PROFILE_KINDS, ColumnProfile
from keel.profile.vectors import vector_rows
from keel.schema import Schema

ROWS = 6_000


def _table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    numbers = rng.normal(10.0, 3.0, rows)
    numbers[rng.random(rows) < 0.05] = np.nan
    colors = rng.choice(np.array(["red", "green", "blue"], dtype=object), rows)
    return pa.table(
        {
            "numeric": pa.array(numbers, mask=rng.random(rows) < 0.03),
            "categorical": pa.array(colors, mask=rng.random(rows) < 0.03),
            "text": pa.array([f"note {i} " * (i % 5 + 1) for i in range(rows)]),
            "datetime": pa.array(
                (np.datetime64("2026-01-01") + rng.integers(0, 10**6, rows)).astype(
                    "datetime64[s]"
                )
            ),
            "count": pa.array([{"k": int(i)} for i in range(rows)]),
            "embedding": vector_rows(  # rounded: some rows repeat, as embeddings of one text do
                rng.normal(size=(rows, 3)).round(1),
                [f"wrong dimension :: row {i}" if i % 97 == 0 else None for i in range(rows)],
            ),
        }
    )


SCHEMA = Schema.infer(_table(100, seed=0), kinds={"embedding": "embedding"})


def _profile(table: pa.Table) -> Profile:
    return Profile.build(table, SCHEMA)


@pytest.fixture(scope="module")
def whole() -> Profile:
    return _profile(_table(ROWS, seed=1))


def _column(profile: Profile, kind: str) -> ColumnProfile:
    column = profile.columns[kind]
    assert column.kind == kind, f"the generated column {kind!r} profiled as {column.kind}"
    return column


def _exact_fields(column: ColumnProfile) -> dict:
    state, blob = column.to_state()
    rounded = ("mean", "shift", "shifted_mean", "m2")  # moments: to rounding, below
    kept = {k: v for k, v in state.items() if k not in rounded}
    return {**kept, "rows": column.rows, "count": column.count, "missing": column.missing}


@pytest.mark.parametrize("kind", sorted(PROFILE_KINDS))
def test_every_kind_follows_the_protocol(whole, kind):
    column = _column(whole, kind)
    assert isinstance(column, ColumnProfile)
    assert column.rows == ROWS
    assert column.count + column.missing == column.rows


@pytest.mark.parametrize("kind", sorted(PROFILE_KINDS))
def test_the_merge_of_parts_is_the_profile_of_the_whole(whole, kind):
    table = _table(ROWS, seed=1)
    parts = [_profile(table.slice(i, 1_500)) for i in range(0, ROWS, 1_500)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    mine, theirs = _column(merged, kind), _column(whole, kind)
    assert _exact_fields(mine) == _exact_fields(theirs)
    if hasattr(mine, "vectors"):  # a sample of vectors: the very same rows
        assert np.array_equal(mine.vectors, theirs.vectors)
    if hasattr(mine, "mean") and mine.count:
        assert mine.mean == pytest.approx(theirs.mean, rel=1e-12)
        assert mine.variance == pytest.approx(theirs.variance, rel=1e-10)


@pytest.mark.parametrize("kind", sorted(PROFILE_KINDS))
def test_a_column_round_trips_through_its_state(whole, kind):
    column = _column(whole, kind)
    state, blob = column.to_state()
    again = PROFILE_KINDS[state["kind"]].from_state(state, blob)
    assert again.to_state() == (state, blob)


@pytest.mark.parametrize("kind", sorted(PROFILE_KINDS))
def test_merging_an_empty_profile_changes_nothing(whole, kind):
    table = _table(ROWS, seed=1)
    column = _column(_profile(table), kind)
    before = column.to_state()
    empty = _column(_profile(table.slice(0, 0)), kind)
    assert column.merge(empty).to_state() == before
