"""The profile of an embedding column: a bounded, mergeable sample of its vectors.

An embedding, text or image column (``keel.profile.unstructured``) reaches the profile as
one vector per row plus, for rows that could not be turned into a vector, the reason
(a vector of the wrong dimension, a missing value in it, an empty text, an image that
cannot be decoded). The profile counts the rows, the missing ones and each fault by
reason (naming up to five rows or files per reason), and keeps a bottom-k sample of the
vectors by a hash of their content (at most 2,000: the rows the MMD test reads). The
hash is of the vector itself, so the sample is uniform over distinct vectors, the same
in every process, and the merge of the profiles of any split is the profile of the whole.

>>> import numpy as np, pyarrow as pa
>>> rng = np.random.default_rng(0)
>>> rows = vector_rows(rng.normal(size=(500, 4)))
>>> whole, left, right = VectorProfile(size=100), VectorProfile(size=100), VectorProfile(size=100)
>>> whole.update_array(rows)
>>> left.update_array(rows.slice(0, 200)); right.update_array(rows.slice(200))
>>> merged = left.merge(right)
>>> merged.count, merged.vectors.shape, bool(np.array_equal(merged.vectors, whole.vectors))
(500, (100, 4), True)
>>> faulty = vector_rows(np.ones((3, 4)), faults=[None, "wrong dimension: 3, not 4", None])
>>> column = VectorProfile(); column.update_array(faulty)
>>> column.count, column.missing, column.faults
(2, 1, {'wrong dimension: 3, not 4': 1})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Vectors kept per profile: the MMD test subsamples each side to this many rows anyway.
SAMPLE_SIZE = 2_000
#: Rows or files named per fault reason.
NAMED_FAULTS = 5
#: The struct an unstructured column becomes before it is profiled.
VECTOR_TYPE = pa.struct([("vector", pa.list_(pa.float64())), ("fault", pa.string())])

#: The fault a reference text carries when it was one of the texts the vectorizer was fitted
#: on: not sampled (its vector is in-sample) and not a fault (``fitted`` counts it).
FITTED = "fitted the vectorizer"

_MIX = np.uint64(0x9E3779B97F4A7C15)


def vector_rows(vectors: np.ndarray, faults: list[str | None] | None = None) -> pa.StructArray:
    """An array of ``VECTOR_TYPE`` rows: each row's vector, or (where ``faults`` names one)
    the reason it has none."""
    vectors = np.asarray(vectors, dtype=np.float64)
    rows, dimension = vectors.shape
    offsets = np.arange(rows + 1, dtype=np.int32) * dimension
    faulted = np.array([f is not None for f in faults or [None] * rows], dtype=bool)
    values = pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(vectors.ravel()), mask=pa.array(faulted)
    )
    return pa.StructArray.from_arrays(
        [values, pa.array(faults or [None] * rows, type=pa.string())], names=["vector", "fault"]
    )


def content_hashes(vectors: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's float64 bytes (vectorized multiply–xorshift mixing).

    >>> rows = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0]])
    >>> hashes = content_hashes(rows)
    >>> bool(hashes[0] == hashes[1]), bool(hashes[0] != hashes[2])
    (True, True)
    """
    bits = np.ascontiguousarray(vectors, dtype=np.float64).view(np.uint64)
    state = np.full(len(bits), np.uint64(0xCBF29CE484222325))
    with np.errstate(over="ignore"):
        for column in range(bits.shape[1]):  # a loop over dimensions, not rows
            state ^= bits[:, column] + _MIX + (state << np.uint64(6)) + (state >> np.uint64(2))
            state *= np.uint64(0xFF51AFD7ED558CCD)
            state ^= state >> np.uint64(33)
    return state


@dataclass
class VectorProfile:
    """Rows, missing rows, faults by reason, and a bottom-k sample of the vectors."""

    size: int = SAMPLE_SIZE
    rows: int = 0
    nulls: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    named: dict[str, list[str]] = field(default_factory=dict)
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    valid: int = 0
    fitted: int = 0

    kind = "embedding"

    @property
    def count(self) -> int:
        return self.valid

    @property
    def missing(self) -> int:
        """Missing rows and rows without a vector (faults)."""
        return self.rows - self.valid - self.fitted

    @property
    def dimension(self) -> int | None:
        return int(self.vectors.shape[1]) if len(self.vectors) else None

    def update_array(self, array: pa.Array | pa.ChunkedArray, name: str = "vectors") -> None:
        """Add a ``VECTOR_TYPE`` column (nulls: missing rows), or a column of plain vectors
        (lists of numbers: rows of another length than the first vector's are faults).

        >>> column = VectorProfile()
        >>> column.update_array(pa.array([[1.0, 2.0], [3.0, 4.0], [5.0]]))
        >>> column.count, column.faults
        (2, {'1 dimensions, not 2': 1})
        """
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks else pa.array([], VECTOR_TYPE)
        if not pa.types.is_struct(array.type):
            array = self._as_vector_rows(array, name)
        self.rows += len(array)
        self.nulls += array.null_count
        present = array.filter(pc.is_valid(array)) if array.null_count else array
        faults = present.field("fault")
        for reason, name in _reasons(faults):
            if reason == FITTED:
                self.fitted += 1
                continue
            self.faults[reason] = self.faults.get(reason, 0) + 1
            kept = self.named.setdefault(reason, [])
            if name and len(kept) < NAMED_FAULTS and name not in kept:
                kept.append(name)
        lists = present.field("vector").filter(pc.is_null(faults))
        lists = lists.filter(pc.is_valid(lists)) if lists.null_count else lists
        if not len(lists):
            return
        flat = lists.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        vectors = flat.reshape(len(lists), -1)
        self.valid += len(vectors)
        self._offer(content_hashes(vectors), vectors)

    def _as_vector_rows(self, array: pa.Array, name: str) -> pa.StructArray:
        from keel.errors import SchemaError
        from keel.profile.unstructured import Unstructured

        kind = array.type
        if not (
            pa.types.is_list(kind)
            or pa.types.is_fixed_size_list(kind)
            or pa.types.is_large_list(kind)
        ):
            raise SchemaError(f"column {name!r} is an embedding but holds {kind}, not vectors")
        lengths = pc.list_value_length(array).drop_null()
        dimension = self.dimension or (int(lengths[0].as_py()) if len(lengths) else 0)
        columns = Unstructured({name: "embedding"}, dimensions={name: dimension})
        return columns.expand_batch(pa.record_batch({name: array}), self.rows).column(0)

    def merge(self, other: VectorProfile) -> VectorProfile:
        self.rows += other.rows
        self.nulls += other.nulls
        self.valid += other.valid
        self.fitted += other.fitted
        for reason, count in other.faults.items():
            self.faults[reason] = self.faults.get(reason, 0) + count
            kept = self.named.setdefault(reason, [])
            kept += [n for n in other.named.get(reason, []) if n not in kept]
            del kept[NAMED_FAULTS:]
        if len(other.vectors):
            self._offer(other.hashes, other.vectors)
        return self

    def _offer(self, hashes: np.ndarray, vectors: np.ndarray) -> None:
        if len(self.vectors):
            hashes = np.concatenate([self.hashes, hashes])
            vectors = np.vstack([self.vectors, vectors])
        # the smallest hashes; equal hashes are equal vectors, so any order of ties is one
        order = np.argsort(hashes, kind="stable")[: self.size]
        self.hashes, self.vectors = hashes[order], vectors[order]

    def to_state(self) -> tuple[dict[str, Any], bytes]:
        """The counts as a dict; the blob: the kept hashes (uint64), then the vectors
        (float64, row-major), little-endian."""
        blob = self.hashes.astype("<u8").tobytes() + self.vectors.astype("<f8").tobytes()
        state = {
            "kind": self.kind,
            "size": self.size,
            "rows": self.rows,
            "nulls": self.nulls,
            "valid": self.valid,
            "fitted": self.fitted,
            "faults": dict(sorted(self.faults.items())),
            "named": dict(sorted(self.named.items())),
            "kept": len(self.hashes),
            "dimension": self.dimension or 0,
        }
        return state, blob

    @classmethod
    def from_state(cls, state: dict[str, Any], blob: bytes) -> VectorProfile:
        kept, dimension = int(state["kept"]), int(state["dimension"])
        hashes = np.frombuffer(blob, dtype="<u8", count=kept).astype(np.uint64)
        vectors = np.frombuffer(blob, dtype="<f8", offset=8 * kept).astype(np.float64)
        return cls(
            size=int(state["size"]),
            rows=int(state["rows"]),
            nulls=int(state["nulls"]),
            faults={k: int(v) for k, v in state["faults"].items()},
            named={k: list(v) for k, v in state["named"].items()},
            hashes=hashes,
            vectors=vectors.reshape(kept, dimension) if kept else np.zeros((0, 0)),
            valid=int(state["valid"]),
            fitted=int(state.get("fitted", 0)),
        )


@dataclass(frozen=True)
class VectorSample:
    """The vectors one side of a comparison holds, with its counts and faults."""

    vectors: np.ndarray
    count: int
    missing: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    named: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_profile(cls, profile: VectorProfile) -> VectorSample:
        return cls(profile.vectors, profile.count, profile.nulls, profile.faults, profile.named)

    @classmethod
    def from_array(cls, array: pa.Array | pa.ChunkedArray, size: int = SAMPLE_SIZE) -> VectorSample:
        profile = VectorProfile(size=size)
        profile.update_array(array)
        return cls.from_profile(profile)


def _reasons(faults: pa.Array) -> list[tuple[str, str | None]]:
    """(reason, name) of each fault: ``"reason: name"`` names a file or row."""
    present = faults.drop_null()
    if not len(present):
        return []
    out = []
    for text in present.to_pylist():  # only the faulty rows
        reason, _, name = text.partition(" :: ")
        out.append((reason, name or None))
    return out
