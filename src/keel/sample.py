"""A bounded uniform sample of rows, kept in one streaming pass (priority sampling).

Each row draws a random key; the sample is the ``size`` rows with the
smallest keys, which is a uniform sample without replacement of every row
seen, however the rows arrived in batches. Only rows whose key beats the
current largest kept key are looked at, with Arrow ``take`` and numpy
``argpartition`` (no Python loop over rows).

>>> import pyarrow as pa
>>> reservoir = RowSample(size=3, seed=1)
>>> for start in range(0, 100, 10):
...     reservoir.update(pa.table({"i": list(range(start, start + 10))}))
>>> reservoir.table().num_rows, reservoir.rows_seen
(3, 100)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class RowSample:
    def __init__(self, size: int = 10_000, seed: int = 0) -> None:
        self.size = size
        self.rows_seen = 0
        self._rng = np.random.default_rng(seed)
        self._rows: pa.Table | None = None
        self._keys = np.empty(0)

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        keys = self._rng.random(batch.num_rows)
        self.rows_seen += batch.num_rows
        if self.size == 0:
            return
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if len(self._keys) >= self.size:
            candidates = np.flatnonzero(keys < self._keys.max())
            if len(candidates) == 0:
                return
            table, keys = table.take(candidates), keys[candidates]
        if self._rows is None:
            merged_rows, merged_keys = table, keys
        else:
            merged_rows = pa.concat_tables([self._rows, table.cast(self._rows.schema)])
            merged_keys = np.concatenate([self._keys, keys])
        if len(merged_keys) > self.size:
            keep = np.argpartition(merged_keys, self.size - 1)[: self.size]
            keep.sort()
            merged_rows, merged_keys = merged_rows.take(keep), merged_keys[keep]
        self._rows, self._keys = merged_rows.combine_chunks(), merged_keys

    def table(self) -> pa.Table | None:
        return self._rows
