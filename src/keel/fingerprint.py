"""Fingerprints of a table's content.

``ContentFingerprint`` (baselines from format 3): the rows as a multiset, the same in any
order, batching or partitioning, and mergeable; ``row_hashes`` gives each row's 128-bit
hash, vectorized over a batch, and also keys the reference sample (``keel.sample``).

``TableFingerprint`` (baselines of format 2, lineage records made before ``digest`` was
recorded): every row, in order, whatever the batch boundaries. ``data_digest`` is the one
way to fingerprint a whole table by either digest's name: lineage records, leakage
reports and baselines all use ``CONTENT_DIGEST``, so a baseline's ``data_digest`` is its
training data's lineage fingerprint.

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
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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


# --- The order-independent, mergeable content fingerprint (baselines, format 3) -----------

_MASK = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
#: The two 64-bit lanes of a 128-bit row hash start from these keys.
_LANES = (np.uint64(0x6B65656C2D726F77), np.uint64(0x726F77732D73756D))
_NULL = np.uint64(0x4E554C4C4E554C4C)
_POLY = (np.uint64(0x100000001B3), np.uint64(0xC6A4A7935BD1E995))  # odd multipliers
#: What ``ContentFingerprint.hexdigest`` digests, named in the baseline's config.
CONTENT_DIGEST = "keel-rows-sum/1"
#: What ``TableFingerprint`` digests: the name records made before ``digest`` imply.
ORDERED_DIGEST = "keel-rows-sha/1"


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, elementwise (uint64 arithmetic wraps modulo 2^64)."""
    z = values + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _canonical(array: pa.Array) -> tuple[str, pa.Array]:
    """A column's values in the one representation every reader agrees on, and its family:
    integers as int64 (uint64 above 2^63 wrap), floats as float64, times as UTC microseconds,
    dates as days, text and bytes as large binary. Spark's and pandas' readings of one file
    (int32 or int64, string or large_string, ns or us, any time zone) hash the same."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _canonical(array.cast(kind.value_type))
    if pa.types.is_null(kind):
        return "null", pa.array(
            np.zeros(len(array), dtype=np.int64), mask=np.ones(len(array), bool)
        )
    if pa.types.is_boolean(kind):
        return "bool", pc.cast(array, pa.int64())
    if pa.types.is_unsigned_integer(kind):
        return "int", pc.cast(array, pa.uint64())
    if pa.types.is_integer(kind):
        return "int", pc.cast(array, pa.int64())
    if pa.types.is_floating(kind):
        return "float", pc.cast(array, pa.float64())
    if pa.types.is_timestamp(kind):
        micros = pc.cast(array, pa.timestamp("us", tz=kind.tz), safe=False)
        return "time", pc.cast(micros, pa.int64())
    if pa.types.is_date(kind):
        return "date", pc.cast(pc.cast(array, pa.date32()), pa.int32()).cast(pa.int64())
    if pa.types.is_time(kind):
        return "clock", pc.cast(pc.cast(array, pa.time64("us"), safe=False), pa.int64())
    if pa.types.is_duration(kind):
        return "duration", pc.cast(pc.cast(array, pa.duration("us"), safe=False), pa.int64())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or kind == pa.string_view():
        return "text", pc.cast(array, pa.large_binary())
    if (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    ):
        return "bytes", pc.cast(array, pa.large_binary())
    if pa.types.is_decimal(kind):
        return "decimal", pc.cast(pc.cast(array, pa.string()), pa.large_binary())
    # Nested values (lists, structs, maps): by their JSON, one value at a time (rare columns).
    texts = [
        None if v is None else json.dumps(v, sort_keys=True, default=str) for v in array.to_pylist()
    ]
    return "nested", pa.array(texts, type=pa.large_binary())


def _bytes_hashes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Two polynomial hashes of each value's bytes (Σ bᵢ·Pⁱ mod 2^64), vectorized over the
    whole batch with a cumulative sum (no loop over rows)."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    data = array.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    start, end = int(offsets[0]), int(offsets[-1])
    chunk = raw[start:end].astype(np.uint64)
    relative = offsets - start
    lengths = np.diff(relative)
    longest = int(lengths.max()) if len(lengths) else 0
    position = np.arange(end - start, dtype=np.int64) - np.repeat(relative[:-1], lengths)
    lanes = []
    for multiplier in _POLY:
        powers = np.cumprod(np.full(max(longest, 1), multiplier, dtype=np.uint64))
        terms = (chunk + np.uint64(1)) * powers[position]
        sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(terms, dtype=np.uint64)])
        lanes.append(sums[relative[1:]] - sums[relative[:-1]] + lengths.astype(np.uint64))
    return lanes[0], lanes[1]


def _column_hashes(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each value's 64-bit hash (nulls one constant), by its family and canonical value."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    family, values = _canonical(array)
    tag = np.uint64(int.from_bytes(hashlib.sha256(family.encode()).digest()[:8], "little"))
    if family in ("text", "bytes", "decimal", "nested"):
        head = len(pc.dictionary_encode(values.slice(0, 4096)).dictionary)
        encoded = pc.dictionary_encode(values) if head <= 1024 else None
        if encoded is not None and len(encoded.dictionary) <= len(values) // 4:
            # Few distinct values (the usual text column): each hashed once.
            first, second = _bytes_hashes(encoded.dictionary)
            distinct = _mix(first ^ tag) ^ second
            codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
            hashes = distinct[codes] if len(distinct) else np.zeros(len(values), np.uint64)
        else:
            first, second = _bytes_hashes(values)
            hashes = _mix(first ^ tag) ^ second
    else:
        numbers = values.fill_null(0).to_numpy(zero_copy_only=False)
        if family == "float":
            nan = np.isnan(numbers)
            if nan.any():  # one NaN, whatever its bits
                numbers = np.where(nan, np.nan, numbers)
        hashes = numbers.view(np.uint64) ^ tag  # a new array: the rest is in place
        hashes *= _MIX1
        hashes ^= hashes >> np.uint64(29)  # the row's final SplitMix64 does the avalanche
    if values.null_count:
        hashes = np.where(np.asarray(values.is_valid()), hashes, _NULL)
    return hashes


def row_hashes(batch: pa.RecordBatch | pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Each row's 128-bit hash as two uint64 lanes: its columns' hashes, in order, combined
    by two polynomials (multipliers ``_POLY``) and each lane finished by SplitMix64.

    >>> low, high = row_hashes(pa.table({"a": [1, 1, 2], "b": ["x", "x", "y"]}))
    >>> bool(low[0] == low[1]), bool(low[0] == low[2]), bool(low[0] == high[0])
    (True, False, False)
    """
    low = np.full(batch.num_rows, _LANES[0], dtype=np.uint64)
    high = np.full(batch.num_rows, _LANES[1], dtype=np.uint64)
    for column in batch.columns:
        hashes = _column_hashes(column)
        low *= _POLY[0]
        low += hashes
        high *= _POLY[1]
        high ^= hashes
    return _mix(low), _mix(high ^ _NULL)


def _sum_128(low: np.ndarray, high: np.ndarray) -> int:
    """Σ (high·2^64 + low) mod 2^128, summed in 32-bit limbs so no carry is lost."""
    total = 0
    for shift, lane in ((0, low), (64, high)):
        for half in (0, 32):
            limb = (lane >> np.uint64(half)) & np.uint64(0xFFFFFFFF)
            total += int(limb.sum(dtype=np.uint64)) << (shift + half)
    return total % (1 << 128)


class ContentFingerprint:
    """The content of a table as a multiset of rows: the row count, the column names and the
    sum modulo 2^128 of its 128-bit row hashes. The same rows in any order, batching or
    partitioning give the same fingerprint; ``merge`` adds two parts' (exact: sums and counts
    add). Not a cryptographic hash: it identifies data, it does not authenticate it.

    >>> table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    >>> whole = ContentFingerprint(); whole.update(table)
    >>> shuffled = ContentFingerprint(); shuffled.update(table.take([2, 0, 1]))
    >>> first, rest = ContentFingerprint(), ContentFingerprint()
    >>> first.update(table.slice(0, 1)); rest.update(table.slice(1))
    >>> whole.hexdigest() == shuffled.hexdigest() == first.merge(rest).hexdigest()
    True
    """

    def __init__(self) -> None:
        self.rows = 0
        self.total = 0
        self.columns: list[str] | None = None

    def update(
        self,
        batch: pa.RecordBatch | pa.Table,
        hashes: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Add a batch's rows (``hashes``: its ``row_hashes``, if already made)."""
        self._columns_are(list(batch.schema.names))
        low, high = hashes if hashes is not None else row_hashes(batch)
        self.total = (self.total + _sum_128(low, high)) % (1 << 128)
        self.rows += batch.num_rows

    def merge(self, other: ContentFingerprint) -> ContentFingerprint:
        if other.columns is not None:
            self._columns_are(other.columns)
        self.total = (self.total + other.total) % (1 << 128)
        self.rows += other.rows
        return self

    def _columns_are(self, names: list[str]) -> None:
        if self.columns is None:
            self.columns = names
        elif names != self.columns:
            from keel.errors import SchemaError

            raise SchemaError(f"cannot fingerprint columns {names} with {self.columns}")

    def hexdigest(self) -> str:
        """SHA-256 of the digest's name, the column names, the row count and the sum."""
        text = "\x1f".join([CONTENT_DIGEST, *(self.columns or []), str(self.rows)])
        return hashlib.sha256(text.encode() + self.total.to_bytes(16, "little")).hexdigest()

    def to_state(self) -> dict:
        return {"rows": self.rows, "sum": f"{self.total:032x}", "columns": self.columns}

    @classmethod
    def from_state(cls, state: dict) -> ContentFingerprint:
        fingerprint = cls()
        fingerprint.rows, fingerprint.total = state["rows"], int(state["sum"], 16)
        fingerprint.columns = state["columns"]
        return fingerprint


def data_digest(table: pa.Table, digest: str = CONTENT_DIGEST) -> str:
    """A whole table's fingerprint by the digest named: ``CONTENT_DIGEST`` (rows as a
    multiset; what keel records now) or ``ORDERED_DIGEST`` (every row in order; how records
    made before their ``digest`` field were fingerprinted, so they are checked the same way).

    >>> table = pa.table({"a": [1, 2, 3]})
    >>> data_digest(table) == data_digest(table.take([2, 1, 0]))
    True
    >>> data_digest(table, ORDERED_DIGEST) == data_digest(table.take([2, 1, 0]), ORDERED_DIGEST)
    False
    """
    if digest == CONTENT_DIGEST:
        fingerprint: ContentFingerprint | TableFingerprint = ContentFingerprint()
    elif digest == ORDERED_DIGEST:
        fingerprint = TableFingerprint()
    else:
        from keel.errors import FormatError

        raise FormatError(
            f"unknown data digest {digest!r}: this keel knows {CONTENT_DIGEST} and {ORDERED_DIGEST}"
        )
    if not table.num_rows and digest == CONTENT_DIGEST:
        fingerprint.update(table)  # the columns are part of it, even with no row
    for batch in table.to_batches(max_chunksize=262_144):
        fingerprint.update(batch)
    return fingerprint.hexdigest()
