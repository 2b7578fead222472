"""Anything tabular in, Arrow record batches out.

keel accepts a pandas DataFrame, a pyarrow Table, a path to a Parquet or CSV
file, or a folder of Parquet files. Files and folders are streamed in record
batches, so memory does not grow with the number of rows.

>>> import pandas as pd
>>> source = open_source(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
>>> source.num_rows, source.schema.names
(3, ['x'])
>>> sum(batch.num_rows for batch in source.batches())
3
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from keel.errors import DataError

DEFAULT_BATCH_ROWS = 262_144


class Source(Protocol):
    """What every source is: a name to quote in errors, an Arrow schema, the row count when
    known, and a stream of record batches (optionally some columns only). ``open_source``
    opens every kind keel reads today (``SOURCE_KINDS``); ``tests/common/test_sources.py``
    runs one battery over them. Sources that answer for entities and times (an offline
    feature store) extend this protocol."""

    name: str
    schema: pa.Schema
    num_rows: int | None

    def batches(
        self, columns: list[str] | None = None, batch_rows: int = ...
    ) -> Iterator[pa.RecordBatch]: ...

    def read_all(self, columns: list[str] | None = None) -> pa.Table: ...


#: Every kind of input ``open_source`` reads.
SOURCE_KINDS = ("pandas", "arrow", "parquet file", "parquet folder", "csv file")


@dataclass
class DataSource:
    """A readable table: its Arrow schema, its row count when known, and a way to stream it."""

    name: str
    schema: pa.Schema
    num_rows: int | None
    _table: pa.Table | None = None
    _path: Path | None = None
    _format: str | None = None
    #: Arrow's own decoding threads: on for one process, off when one process per core
    #: profiles columns in parallel (extra threads there only compete).
    use_threads: bool = True

    def batches(
        self, columns: list[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Stream the table as record batches, optionally only some columns."""
        if self._table is not None:
            table = self._table.select(columns) if columns is not None else self._table
            yield from table.to_batches(max_chunksize=batch_rows)
            return
        assert self._path is not None
        if self._format == "csv":
            yield from _csv_batches(self._path, columns, batch_rows)
            return

        # One file at a time, no read-ahead threads: peak memory is one batch's worth,
        # however many files and rows the folder holds.
        for path in _parquet_files(self._path):
            yield from _parquet_batches(path, columns, batch_rows, self.use_threads)

    def read_all(self, columns: list[str] | None = None) -> pa.Table:
        """The whole table in memory (exact mode and small inputs only)."""
        batches = list(self.batches(columns))
        schema = (
            self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        )
        return pa.Table.from_batches(batches, schema=schema)


def open_source(data: Any) -> DataSource:
    """Open a DataFrame, Arrow table, Parquet/CSV file or folder of Parquet files.

    Raises DataError naming the path when it does not exist, has an unknown
    extension, or holds no columns.
    """
    if isinstance(data, DataSource):
        return data
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return _from_table(data, "table")
    if _is_pandas(data):
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise DataError(f"cannot convert the DataFrame to Arrow: {error}") from error
        return _from_table(table, "DataFrame")
    if isinstance(data, str | os.PathLike):
        return _from_path(Path(data))
    raise DataError(
        f"cannot read {type(data).__name__}: give a pandas DataFrame, a pyarrow Table, "
        "or a path to a Parquet file, a CSV file or a folder of Parquet files"
    )


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns")


def _from_table(table: pa.Table, name: str) -> DataSource:
    if table.num_columns == 0:
        raise DataError(f"the {name} has no columns")
    return DataSource(name=name, schema=table.schema, num_rows=table.num_rows, _table=table)


def _from_path(path: Path) -> DataSource:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        if not _parquet_files(path):
            raise DataError(f"{path}: the folder holds no .parquet files")
        return _parquet_source(path, path)
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if suffix in (".parquet", ".pq"):
        return _parquet_source(path, path)
    if suffix in (".csv", ".csv.gz", ".tsv"):
        return _csv_source(path)
    raise DataError(f"{path}: unknown file type {suffix!r}; keel reads .parquet, .csv and folders")


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if p.is_file())
    return [path]


def _parquet_source(path: Path, display: Path) -> DataSource:
    """Schema and row count from the files' footers only; every file must share the schema."""
    import pyarrow.parquet as pq

    schema, num_rows = None, 0
    for file in _parquet_files(path):
        try:
            metadata = pq.read_metadata(file)
            file_schema = metadata.schema.to_arrow_schema()
        except (pa.ArrowInvalid, OSError) as error:
            raise DataError(f"{file}: not a readable Parquet file ({error})") from error
        if schema is None:
            schema = file_schema
        elif not file_schema.equals(schema, check_metadata=False):
            raise DataError(
                f"{file}: its columns differ from the folder's first file "
                f"({file_schema.names} vs {schema.names})"
            )
        num_rows += metadata.num_rows
    if schema is None or len(schema) == 0:
        raise DataError(f"{display}: no columns")
    return DataSource(
        name=str(display), schema=schema, num_rows=num_rows, _path=path, _format="parquet"
    )


def _csv_source(path: Path) -> DataSource:
    import pyarrow.csv as csv

    try:
        reader = csv.open_csv(
            str(path),
            read_options=csv.ReadOptions(block_size=1 << 24),
            parse_options=_parse_options(path),
        )
        schema = reader.schema
        reader.close()
    except pa.ArrowInvalid as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from error
    if len(schema) == 0:
        raise DataError(f"{path}: no columns")
    return DataSource(name=str(path), schema=schema, num_rows=None, _path=path, _format="csv")


def _csv_batches(
    path: Path, columns: list[str] | None, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as csv

    # Type inference runs on the first block only; pinning the inferred types keeps
    # later blocks from failing or changing type mid-stream.
    convert = csv.ConvertOptions(include_columns=columns) if columns else None
    try:
        reader = csv.open_csv(
            str(path),
            read_options=csv.ReadOptions(block_size=1 << 24),
            convert_options=convert,
            parse_options=_parse_options(path),
        )
        for batch in reader:
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)
    except pa.ArrowInvalid as error:
        import re

        found = re.search(r"CSV column #(\d+)", str(error))
        names = reader.schema.names if "reader" in locals() else []
        where = ""
        if found and int(found.group(1)) < len(names):
            where = f" in column {names[int(found.group(1))]!r}"
        raise DataError(f"{path}: CSV parse error{where} ({error})") from error


def _parquet_batches(
    path: Path, columns: list[str] | None, batch_rows: int, use_threads: bool
) -> Iterator[pa.RecordBatch]:
    """One file's batches, row group by row group. A corrupted file is refused, naming the
    file and the column: a page whose checksum fails or that does not decode, or numbers
    outside the minimum and maximum the file's own statistics give for their row group (a
    damaged page of plain numbers decodes as garbage such as ±1e308)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from error
    names = reader.schema_arrow.names
    for group in range(reader.num_row_groups):
        bounds = _statistics(reader.metadata.row_group(group), names, columns)
        batches = reader.iter_batches(
            batch_size=batch_rows, row_groups=[group], columns=columns, use_threads=use_threads
        )
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as error:
                column = _failing_column(reader, group, columns or names)
                raise DataError(
                    f"{path}: corrupted Parquet in column {column!r} (row group {group}): {error}"
                ) from error
            for name, (low, high) in bounds.items():
                found = pc.min_max(batch.column(name)).as_py()
                if found["min"] is not None and (found["min"] < low or found["max"] > high):
                    raise DataError(
                        f"{path}: corrupted Parquet in column {name!r} (row group {group}): "
                        f"values from {found['min']!r} to {found['max']!r}, outside the file's "
                        f"own statistics ({low!r} to {high!r})"
                    )
            if batch.num_rows:
                yield batch


def _statistics(
    row_group: Any, names: list[str], columns: list[str] | None
) -> dict[str, tuple[Any, Any]]:
    """Minimum and maximum per plain numeric column of a row group, from its metadata."""
    bounds = {}
    wanted = set(columns) if columns is not None else set(names)
    for index in range(row_group.num_columns):
        chunk = row_group.column(index)
        name = chunk.path_in_schema
        stats = chunk.statistics
        if name not in wanted or stats is None or not stats.has_min_max:
            continue
        if chunk.physical_type not in ("INT32", "INT64", "FLOAT", "DOUBLE"):
            continue
        if stats.logical_type is not None and stats.logical_type.type not in ("NONE", "INT"):
            continue
        low, high = stats.min, stats.max
        if isinstance(low, int | float) and isinstance(high, int | float):
            bounds[name] = (low, high)
    return bounds


def _failing_column(reader: Any, group: int, columns: list[str]) -> str:
    for name in columns:
        try:
            reader.read_row_group(group, columns=[name], use_threads=False)
        except (pa.ArrowException, OSError):
            return name
    return ", ".join(columns)


def _parse_options(path: Path) -> Any:
    import pyarrow.csv as csv

    return csv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
