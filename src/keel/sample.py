"""Bounded uniform samples of rows, kept in one streaming pass.

``HashSample`` (a baseline's reference sample, from format 3): a bottom-k by a hash of
(seed, row), the same under any partitioning, and mergeable. ``RowSample`` (windows, and
baselines of format 2): priority sampling with random keys, described below.

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


class HashSample:
    """The reference sample of a baseline (format 3): the ``size`` rows with the smallest
    keys, a row's key being a 64-bit hash of (``seed``, the row's 128-bit hash).

    Deterministic and the same under any batching, order or partitioning: the ``size``
    smallest keys of a union are the ``size`` smallest of each part's ``size`` smallest, so
    ``merge`` is exact. The sample's rows are in key order. Rows are a uniform sample of the
    distinct rows; identical rows share a key, so they enter (or leave) together.

    >>> import pyarrow as pa
    >>> table = pa.table({"i": list(range(100))})
    >>> whole = HashSample(size=5, seed=1); whole.update(table)
    >>> halves = [HashSample(size=5, seed=1), HashSample(size=5, seed=1)]
    >>> halves[0].update(table.slice(50)); halves[1].update(table.slice(0, 50))
    >>> halves[0].merge(halves[1]).table() == whole.table(), whole.rows_seen
    (True, 100)
    """

    def __init__(self, size: int = 10_000, seed: int = 0) -> None:
        self.size = size
        self.seed = seed
        self.rows_seen = 0
        self._rows: pa.Table | None = None
        self._keys = np.empty(0, dtype=np.uint64)

    def keys(self, hashes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        from keel.fingerprint import _mix

        salt = _mix(np.array([self.seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
        low, high = hashes
        return _mix(_mix(low ^ salt) + high)

    def update(
        self,
        batch: pa.RecordBatch | pa.Table,
        hashes: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Add a batch (``hashes``: its ``keel.fingerprint.row_hashes``, if already made)."""
        self.rows_seen += batch.num_rows
        if self.size == 0 or batch.num_rows == 0:
            return
        if hashes is None:
            from keel.fingerprint import row_hashes

            hashes = row_hashes(batch)
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        self._offer(table, self.keys(hashes))

    def merge(self, other: HashSample) -> HashSample:
        """Fold in another part's sample (same size and seed); returns self."""
        if (other.size, other.seed) != (self.size, self.seed):
            raise ValueError("cannot merge samples of different sizes or seeds")
        self.rows_seen += other.rows_seen
        if other._rows is not None:
            self._offer(other._rows, other._keys)
        return self

    def _offer(self, table: pa.Table, keys: np.ndarray) -> None:
        if len(self._keys) >= self.size:
            candidates = np.flatnonzero(keys < self._keys[-1])
            if len(candidates) == 0:
                return
            table, keys = table.take(candidates), keys[candidates]
        if self._rows is not None:
            table = pa.concat_tables([self._rows, _like(table, self._rows.schema)])
            keys = np.concatenate([self._keys, keys])
        # Sorted by key, ties (identical rows) by nothing else: any tied pick is the same rows.
        order = np.argsort(keys, kind="stable")[: self.size]
        self._rows, self._keys = table.take(order).combine_chunks(), keys[order]

    def table(self) -> pa.Table | None:
        return self._rows

    def to_state(self) -> tuple[dict, pa.Table | None]:
        """What crosses from a worker: counts, and the rows with a ``__key`` column."""
        state = {"size": self.size, "seed": self.seed, "rows_seen": self.rows_seen}
        if self._rows is None:
            return state, None
        return state, self._rows.append_column("__key", pa.array(self._keys, pa.uint64()))

    @classmethod
    def from_state(cls, state: dict, rows: pa.Table | None) -> HashSample:
        sample = cls(state["size"], state["seed"])
        sample.rows_seen = state["rows_seen"]
        if rows is not None and rows.num_rows:
            sample._keys = rows.column("__key").to_numpy().astype(np.uint64)
            sample._rows = rows.drop_columns(["__key"])
        return sample


def _like(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``'s types where they can be cast (a part read as another type)."""
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return table
