import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data import open_source
from keel.errors import DataError


def test_dataframe_table_parquet_and_csv_read_the_same_rows(tmp_path):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "t.parquet")
    for data in (frame, pa.Table.from_pandas(frame), tmp_path / "t.csv", tmp_path / "t.parquet"):
        source = open_source(data)
        assert source.read_all().column("a").to_pylist() == [1, 2, 3]
        assert source.read_all().column("b").to_pylist() == ["x", "y", "z"]


def test_folder_of_parquet_files_streams_in_bounded_batches(tmp_path):
    for part in range(5):
        pq.write_table(
            pa.table({"v": list(range(part * 1000, part * 1000 + 1000))}),
            tmp_path / f"part-{part}.parquet",
        )
    source = open_source(tmp_path)
    assert source.num_rows == 5000
    sizes = [batch.num_rows for batch in source.batches(batch_rows=300)]
    assert sum(sizes) == 5000
    assert max(sizes) <= 300


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        open_source(tmp_path / "empty.csv")


def test_missing_path_unknown_type_and_empty_folder_are_named(tmp_path):
    with pytest.raises(DataError, match="nope.parquet: no such file"):
        open_source(tmp_path / "nope.parquet")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match="unknown file type '.xlsx'"):
        open_source(tmp_path / "data.xlsx")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="holds no .parquet files"):
        open_source(tmp_path / "folder")


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    (tmp_path / "fake.parquet").write_text("this is not parquet")
    with pytest.raises(DataError, match="fake.parquet: not a readable Parquet"):
        open_source(tmp_path / "fake.parquet")


def test_tab_separated_files_are_split_on_tabs(tmp_path):
    (tmp_path / "t.tsv").write_text("a\tb\n1\tx\n2\ty\n")
    source = open_source(tmp_path / "t.tsv")
    assert source.schema.names == ["a", "b"]
    assert source.read_all().column("b").to_pylist() == ["x", "y"]
