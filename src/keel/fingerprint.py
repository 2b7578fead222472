"""A fingerprint of a table's content: every row, in order, whatever the batch boundaries.

Each row is hashed (pandas' vectorized 64-bit row hash over all columns) and
the stream of row hashes is fed to SHA-256. Two tables with the same
columns and the same rows in the same order get the same fingerprint, read
from Parquet or CSV, in any batch size; a change to any value changes it.

>>> import pyarrow as pa
>>> table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
>>> whole = TableFingerprint(); whole.update(table)
>>> parts = TableFingerprint()
>>> for batch in table.to_batches(max_chunksize=2): parts.update(batch)
>>> whole.hexdigest() == parts.hexdigest()
True
"""

from __future__ import annotations

import hashlib

import pyarrow as pa


class TableFingerprint:
    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._columns: list[str] | None = None

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self._columns is None:
            self._columns = list(batch.schema.names)
            self._digest.update("\x1f".join(self._columns).encode())
        import pandas as pd  # lazy: only baselines fingerprint, and pandas is slow to import

        frame = batch.to_pandas()
        row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        self._digest.update(row_hashes.tobytes())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
