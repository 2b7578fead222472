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


def _corrupt(path, value, replacement):
    import struct

    data = bytearray(path.read_bytes())
    at = data.find(struct.pack("<d", value))
    assert at > 0
    data[at : at + 8] = struct.pack("<d", replacement)
    path.write_bytes(bytes(data))


def test_a_parquet_page_decoded_as_garbage_is_refused_naming_the_file_and_column(tmp_path):
    import numpy as np

    table = pa.table({"a": np.arange(100_000) + 0.5, "income": np.arange(100_000) + 0.25})
    path = tmp_path / "damaged.parquet"
    pq.write_table(table, path, compression="none", use_dictionary=False, row_group_size=50_000)
    _corrupt(path, 12_345.25, 1e308)  # a plain page: it decodes, into nonsense
    assert pq.read_table(path)["income"].to_numpy().max() == 1e308  # what pyarrow gives
    with pytest.raises(DataError, match=r"damaged.parquet: corrupted Parquet in column 'income'"):
        sum(b.num_rows for b in open_source(path).batches())
    assert sum(b.num_rows for b in open_source(path).batches(columns=["a"])) == 100_000


def test_a_parquet_page_failing_its_checksum_is_refused_naming_the_column(tmp_path):
    import numpy as np

    table = pa.table({"a": np.arange(10_000) + 0.5, "score": np.arange(10_000) + 0.25})
    path = tmp_path / "flipped.parquet"
    pq.write_table(table, path, compression="none", use_dictionary=False, write_page_checksum=True)
    _corrupt(path, 1234.25, 1234.0)  # inside the statistics: only the checksum can tell
    with pytest.raises(DataError, match=r"flipped.parquet: corrupted Parquet in column 'score'.*"):
        list(open_source(path).batches())


def big_csv_failing_late(path, rows=240_000):
    """A CSV whose `amount` column is numbers for its first 16 MB, then not."""
    import numpy as np

    frame = pd.DataFrame(
        {
            "request_id": [f"req-{i:08d}" for i in range(rows)],
            "event_time": "2026-03-01T00:00:00Z",
            "amount": np.arange(rows),
            "note": "x" * 30,
        }
    )
    frame["amount"] = frame["amount"].astype(str)
    frame.loc[rows - 10, "amount"] = "twelve"
    frame.to_csv(path, index=False)
    assert path.stat().st_size > 1 << 24


def test_a_csv_that_fails_after_16_mb_names_the_file_and_the_column(tmp_path):
    path = tmp_path / "late.csv"
    big_csv_failing_late(path)
    with pytest.raises(DataError, match=r"late.csv: CSV parse error in column 'amount'"):
        list(open_source(path).batches())
