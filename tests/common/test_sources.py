"""The source battery: every kind of input ``keel.data.open_source`` reads
(``SOURCE_KINDS``) gives the same rows, schema and column selection, and names itself in
its errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data import SOURCE_KINDS, Source, open_source
from keel.errors import DataError

ROWS = 3_000


def _table() -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table(
        {
            "x": rng.normal(size=ROWS),
            "n": pa.array(rng.integers(0, 100, ROWS)),
            "color": pa.array(rng.choice(np.array(["a", "b"], dtype=object), ROWS)),
        }
    )


def _open(kind: str, folder) -> Source:
    table = _table()
    if kind == "pandas":
        return open_source(table.to_pandas())
    if kind == "arrow":
        return open_source(table)
    if kind == "parquet file":
        pq.write_table(table, folder / "t.parquet", row_group_size=700)
        return open_source(folder / "t.parquet")
    if kind == "parquet folder":
        (folder / "parts").mkdir()
        for i, start in enumerate(range(0, ROWS, 1_000)):
            pq.write_table(table.slice(start, 1_000), folder / "parts" / f"{i}.parquet")
        return open_source(folder / "parts")
    if kind == "csv file":
        table.to_pandas().to_csv(folder / "t.csv", index=False)
        return open_source(folder / "t.csv")
    raise AssertionError(f"no battery entry for source kind {kind!r}")


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_every_kind_streams_the_same_rows(kind, tmp_path):
    source = _open(kind, tmp_path)
    assert isinstance(source.name, str) and source.name
    assert source.schema.names == ["x", "n", "color"]
    whole = source.read_all()
    expected = _table()
    assert whole.num_rows == ROWS and source.num_rows in (None, ROWS)
    np.testing.assert_allclose(whole["x"].to_numpy(), expected["x"].to_numpy(), rtol=1e-12)
    assert whole["n"].to_pylist() == expected["n"].to_pylist()
    assert whole["color"].to_pylist() == expected["color"].to_pylist()


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_every_kind_reads_only_the_columns_asked_for_in_bounded_batches(kind, tmp_path):
    source = _open(kind, tmp_path)
    batches = list(source.batches(columns=["color"], batch_rows=500))
    assert all(b.schema.names == ["color"] for b in batches)
    assert all(b.num_rows <= 1_000 for b in batches)  # a batch, or one file's worth
    assert sum(b.num_rows for b in batches) == ROWS


def test_an_input_of_no_known_kind_is_refused_naming_what_it_was(tmp_path):
    with pytest.raises(DataError, match="cannot read dict"):
        open_source({"x": [1]})
    with pytest.raises(DataError, match="missing.parquet"):
        open_source(tmp_path / "missing.parquet")
