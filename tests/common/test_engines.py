"""The engine battery: every engine in ``keel.engines.ENGINES`` profiles the same files into
the same profiles — counts, nulls and bins exactly, quantiles within the sketch's error."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.engines import ENGINES
from keel.parallel import MIN_PARALLEL_VALUES

COLUMNS, ROWS = 12, 400_000  # above MIN_PARALLEL_VALUES: the process engine does fork


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engines")
    rng = np.random.default_rng(3)
    for name, shift in (("reference", 0.0), ("current", 0.3)):
        data = {f"x{i}": rng.normal(shift * i, 1.0 + i, ROWS) for i in range(COLUMNS)}
        data["color"] = rng.choice(np.array(["red", "green", "blue"], dtype=object), ROWS)
        table = pa.table(data)
        nulls = rng.random(ROWS) < 0.02
        table = table.set_column(0, "x0", pa.array(data["x0"], mask=nulls))
        pq.write_table(table, folder / f"{name}.parquet", row_group_size=100_000)
    assert COLUMNS * ROWS > MIN_PARALLEL_VALUES
    return folder / "reference.parquet", folder / "current.parquet"


@pytest.fixture(scope="module")
def local(files):
    return ENGINES["local"].profile_sides(*files)


def _exact(profile) -> dict:
    out = {}
    for name, column in profile.columns.items():
        out[name] = (column.rows, column.missing, column.count)
        if getattr(column, "bin_counts", None) is not None:
            out[name] += (tuple(column.bin_counts.tolist()),)
        if hasattr(column, "category_counts"):
            out[name] += (tuple(sorted(column.category_counts().items())),)
    return out


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_engine_gives_the_same_counts_and_bins(files, local, engine):
    reference, current = ENGINES[engine].profile_sides(*files)
    assert _exact(reference) == _exact(local[0])
    assert _exact(current) == _exact(local[1])
    assert current.columns["x3"].bin_counts.sum() == ROWS


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_engines_quantiles_agree_within_the_sketch_error(files, local, engine):
    _, current = ENGINES[engine].profile_sides(*files)
    ranks = np.linspace(0.01, 0.99, 25)
    for name in (f"x{i}" for i in range(COLUMNS)):
        mine, theirs = current.columns[name], local[1].columns[name]
        error = mine.rank_error + theirs.rank_error
        # Each engine's quantile at rank r must sit within the local one's ranks r ± error.
        low = theirs.quantiles(np.clip(ranks - error, 0, 1))
        high = theirs.quantiles(np.clip(ranks + error, 0, 1))
        got = mine.quantiles(ranks)
        assert np.all((got >= low - 1e-12) & (got <= high + 1e-12)), name


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_with_a_baselines_edges_the_reference_is_not_read(files, local, engine):
    edges = {"x1": np.array([-1.0, 0.0, 1.0])}
    reference, current = ENGINES[engine].profile_sides(None, files[1], edges=edges)
    assert reference is None
    x1 = current.columns["x1"]
    assert len(x1.bin_counts) == 4 and x1.bin_counts.sum() == ROWS
