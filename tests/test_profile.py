import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keel.errors import FormatError
from keel.profile import CategoricalProfile, Profile
from keel.schema import Schema

from .conftest import make_table

EDGES = {"x": np.array([-1.0, 0.0, 1.0]), "y": np.array([0.5, 1.0, 3.0])}


def _with_gaps(frame: pd.DataFrame) -> pa.Table:
    """The test table plus nulls, NaN and ±inf in the numeric column ``y``."""
    y = frame["y"].to_numpy().copy()
    y[::17], y[5::29], y[7::31] = np.nan, np.inf, -np.inf
    mask = np.zeros(len(y), dtype=bool)
    mask[3::13] = True
    table = pa.Table.from_pandas(frame.assign(y=y), preserve_index=False)
    index = table.schema.get_field_index("y")
    return table.set_column(index, "y", pa.array(y, mask=mask))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=6))
def test_merge_of_any_split_equals_the_whole(cuts):
    table = _with_gaps(make_table(3000, seed=3))
    schema = Schema.infer(table)
    whole = Profile.build(table, schema, bin_edges=EDGES)
    bounds = [0, *sorted(cuts), 3000]
    parts = [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    merged = Profile.empty(schema, bin_edges=EDGES)
    for part in parts:
        merged.merge(Profile.build(part, schema, bin_edges=EDGES))
    assert merged.rows == whole.rows == 3000
    for name in ("x", "y", "z"):
        a, b = merged.columns[name], whole.columns[name]
        for field in ("rows", "nulls", "nan", "pos_inf", "neg_inf", "count", "minimum", "maximum"):
            assert getattr(a, field) == getattr(b, field), (name, field)
        assert a.mean == pytest.approx(b.mean, rel=1e-12, abs=1e-12)
        assert a.m2 == pytest.approx(b.m2, rel=1e-10)
        if name in EDGES:
            assert a.bin_counts.tolist() == b.bin_counts.tolist()
        # Quantiles: both within the stated rank error of the true ranks.
        values = np.sort(table.column(name).to_numpy(zero_copy_only=False).astype(float))
        values = values[np.isfinite(values)]
        ranks = np.array([0.1, 0.5, 0.9])
        # With ties a quantile covers a range of ranks: [share below it, share at or below it].
        below = np.searchsorted(values, a.quantiles(ranks), side="left") / len(values)
        at_or_below = np.searchsorted(values, a.quantiles(ranks), side="right") / len(values)
        slack = a.rank_error + 1 / len(values)
        assert np.all((below - slack <= ranks) & (ranks <= at_or_below + slack))
    assert merged.columns["color"].category_counts() == whole.columns["color"].category_counts()


def test_numeric_profile_matches_numpy_exactly_where_exact():
    table = _with_gaps(make_table(5000, seed=4))
    column = Profile.build(table).columns["y"]
    raw = table.column("y").to_numpy(zero_copy_only=False).astype(float)
    finite = raw[np.isfinite(raw)]
    assert column.nulls == table.column("y").null_count
    assert column.nan == np.isnan(raw).sum() - column.nulls  # nulls arrive as NaN in numpy
    assert column.pos_inf == np.isposinf(raw).sum()
    assert column.neg_inf == np.isneginf(raw).sum()
    assert column.count == len(finite)
    assert column.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert column.variance == pytest.approx(finite.var(ddof=1), rel=1e-10)
    assert (column.minimum, column.maximum) == (finite.min(), finite.max())


def test_kll_quantiles_are_within_the_stated_rank_error_at_a_million_rows():
    values = np.random.default_rng(5).lognormal(size=1_000_000)
    column = Profile.build(pd.DataFrame({"v": values})).columns["v"]
    assert 0 < column.rank_error < 0.003  # k=1024: about 0.27%
    ranks = np.linspace(0.01, 0.99, 99)
    estimates = column.quantiles(ranks)
    true_ranks = np.searchsorted(np.sort(values), estimates, side="right") / len(values)
    assert np.max(np.abs(true_ranks - ranks)) <= column.rank_error


def test_categories_past_the_cap_switch_to_a_sketch_with_a_stated_error():
    rng = np.random.default_rng(6)
    heavy = rng.choice(["a", "b", "c"], 60_000, p=[0.5, 0.3, 0.2])
    rare = np.array([f"user-{i}" for i in range(100_000)])  # 100,000 distinct values
    values = np.concatenate([heavy, rare])
    column = Profile.build(
        pd.DataFrame({"c": values}), Schema.infer(pd.DataFrame({"c": values[:10]}))
    ).columns["c"]
    assert isinstance(column, CategoricalProfile) and not column.is_exact
    counts = column.category_counts(limit=3)
    truth = {v: int((heavy == v).sum()) for v in "abc"}
    assert list(counts) == ["a", "b", "c"]
    for value, estimate in counts.items():
        assert abs(estimate - truth[value]) <= column.count_error
    assert abs(column.distinct - 100_003) <= 100_003 * column.distinct_relative_error


def test_profiles_round_trip_through_bytes():
    table = _with_gaps(make_table(2000, seed=7))
    profile = Profile.build(table, bin_edges=EDGES)
    restored = Profile.from_bytes(profile.to_bytes())
    assert restored.rows == profile.rows
    assert restored.schema == profile.schema
    for name in ("x", "y"):
        assert (
            restored.columns[name].bin_counts.tolist() == profile.columns[name].bin_counts.tolist()
        )
        assert restored.columns[name].quantiles(np.array([0.5])) == pytest.approx(
            profile.columns[name].quantiles(np.array([0.5]))
        )
    assert restored.columns["color"].category_counts() == profile.columns["color"].category_counts()
    assert len(profile.to_bytes()) < 200_000


def test_a_corrupted_profile_is_refused(tmp_path):
    data = bytearray(Profile.build(make_table(100, seed=8)).to_bytes())
    data[40] ^= 0xFF
    with pytest.raises(FormatError, match="truncated or corrupted"):
        Profile.from_bytes(bytes(data), source="p.keel")


def test_all_null_and_single_row_columns_profile_without_error():
    frame = pd.DataFrame(
        {
            "empty": pd.Series([None, None], dtype="float64"),
            "label": pd.Series([None, None], dtype="object"),
        }
    )
    profile = Profile.build(frame)
    assert profile.columns["empty"].count == 0 and profile.columns["empty"].missing == 2
    assert profile.columns["label"].count == 0
    single = Profile.build(pd.DataFrame({"v": [3.0]}))
    assert single.columns["v"].mean == 3.0 and np.isnan(single.columns["v"].variance)
