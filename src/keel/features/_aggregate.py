"""The values of a window and their aggregation: one function, shared by both engines.

Both engines reduce a query to the multiset of its window's values, then call
``aggregate`` here. Every reduction is independent of the
order of the values, so the engines agree bit for bit whatever order the events
arrived in or DuckDB returned them:

* count and distinct_count: exact integers; sum, min, max of integers and decimals:
  exact (integers summed in int64, checked against overflow; decimals as their
  unscaled integers);
* float sum: ``math.fsum``, the exactly rounded sum; mean: that sum (exact for integers
  and decimals) divided once by the count, correctly rounded; std: ``sqrt(M2 / (n − ddof))``
  with ``M2 = fsum((x − mean)²)`` (exactly 0 when the values are all equal), null when
  ``n ≤ ddof``;
* nulls and NaN are missing values; ``-0.0`` is read as ``0.0`` (its sign would make min
  and max depend on the order of equal values).

>>> import numpy as np
>>> from keel.features.definition import WindowedFeature
>>> feature = WindowedFeature("s", entity="u", column="x", aggregation="sum", window="1D")
>>> kind = ValueKind("float")
>>> aggregate(feature, kind, np.array([0.1, 0.2, 0.3, 5.0]), np.array([3, 0, 1])).to_pylist()
[0.6, None, 5.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import DataError, SchemaError

_EXACT = 2.0**53


@dataclass(frozen=True)
class ValueKind:
    """How a feature's values are held: int (int64), float (float64), decimal (the unscaled
    int64, with its precision and scale), or text (distinct_count only)."""

    kind: str
    precision: int = 0
    scale: int = 0

    def encode(self) -> str:
        return f"{self.kind}:{self.precision}:{self.scale}"

    @classmethod
    def decode(cls, text: str) -> ValueKind:
        kind, precision, scale = text.split(":")
        return cls(kind, int(precision), int(scale))

    @property
    def dtype(self) -> Any:
        return {"int": np.int64, "decimal": np.int64, "float": np.float64}.get(self.kind, object)

    def arrow(self, values: np.ndarray, mask: np.ndarray, *, wide: bool = False) -> pa.Array:
        """Values of this kind (sum, min, max) as an Arrow array; ``wide``: a sum's type."""
        if self.kind == "decimal":
            precision = 38 if wide else self.precision
            data = [
                None if m else int(v) for v, m in zip(values.tolist(), mask.tolist(), strict=True)
            ]
            unscaled = pa.array(data, pa.decimal128(38, 0))
            kind = pa.decimal128(precision, self.scale)
            return _rescale(unscaled, kind)
        return pa.array(values, pa.int64() if self.kind == "int" else pa.float64(), mask=mask)


def _rescale(unscaled: pa.Array, kind: pa.DataType) -> pa.Array:
    """Unscaled decimal integers → decimals of ``kind``'s scale, exactly (no division)."""
    # The buffers of decimal128(38, 0) and decimal128(p, s) hold the same unscaled integers.
    return pa.Array.from_buffers(kind, len(unscaled), unscaled.buffers(), unscaled.null_count)


def value_kind(feature: Any, column: pa.DataType) -> ValueKind:
    """The kind of a feature's column, or a SchemaError saying why it cannot be aggregated."""
    if pa.types.is_dictionary(column):
        column = column.value_type
    numeric = feature.aggregation not in ("distinct_count", "count")
    if pa.types.is_boolean(column) or pa.types.is_integer(column):
        return ValueKind("int")
    if pa.types.is_floating(column):
        return ValueKind("float")
    if pa.types.is_decimal(column):
        if column.precision > 18:
            raise SchemaError(
                f"feature {feature.name!r}: column {feature.column!r} is {column}: decimals "
                "of more than 18 digits are not supported (cast to decimal128(18, s))"
            )
        return ValueKind("decimal", column.precision, column.scale)
    if pa.types.is_null(column):
        return ValueKind("float") if numeric else ValueKind("text")
    if not numeric and (pa.types.is_string(column) or pa.types.is_large_string(column)):
        return ValueKind("text")
    raise SchemaError(
        f"feature {feature.name!r}: column {feature.column!r} is {column}: "
        f"{feature.aggregation} needs numbers (integers, floats or decimals)"
        + ("" if numeric else " or text")
    )


def normalize(column: Any, kind: ValueKind) -> tuple[np.ndarray, np.ndarray]:
    """A column → (values as ``kind`` holds them, valid: not null and not NaN)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if kind.kind == "text":
        filled = pc.fill_null(pc.cast(column, pa.string()), "")
        return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=object), valid
    if kind.kind == "decimal":
        return _unscaled(column), valid
    if kind.kind == "int":
        if pa.types.is_boolean(column.type):
            column = pc.cast(column, pa.int8())
        if pa.types.is_unsigned_integer(column.type) and len(column):
            top = pc.max(column).as_py()
            if top is not None and top >= 2**63:
                raise SchemaError(f"unsigned integers up to {top} do not fit int64")
        values = pc.fill_null(pc.cast(column, pa.int64()), 0).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=np.int64), valid
    values = pc.fill_null(pc.cast(column, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    values = np.asarray(values, dtype=np.float64) + 0.0  # -0.0 + 0.0 is 0.0
    return values, valid & ~np.isnan(values)


def _unscaled(column: pa.Array) -> np.ndarray:
    """The unscaled integers of a decimal128 column (precision ≤ 18: they fit int64)."""
    column = pc.cast(column, pa.decimal128(column.type.precision, column.type.scale))
    words = np.frombuffer(column.buffers()[1], dtype="<i8")
    low = words[2 * column.offset : 2 * (column.offset + len(column)) : 2]
    return np.where(np.asarray(column.is_valid().to_numpy(zero_copy_only=False)), low, 0)


def aggregate(
    feature: Any,
    kind: ValueKind,
    values: np.ndarray,
    counts: np.ndarray,
    describe: Callable[[int], str] | None = None,
) -> pa.Array:
    """One feature over groups of values → its value per group.

    ``values`` holds each group's values one group after another (``counts[i]`` values
    for group ``i``), missing values already left out; ``describe(i)`` names group
    ``i``'s entity in errors.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    empty = counts == 0
    starts = offsets[:-1][~empty]
    aggregation = feature.aggregation
    if aggregation == "count":
        return pa.array(counts, pa.int64())
    if aggregation == "distinct_count":
        return _distinct(feature, values, counts, describe)
    if aggregation in ("min", "max"):
        ufunc = np.minimum if aggregation == "min" else np.maximum
        out = np.zeros(n, dtype=kind.dtype)
        if len(starts):
            out[~empty] = ufunc.reduceat(values, starts)
        return kind.arrow(out, empty)
    if aggregation == "sum":
        if kind.kind == "float":
            return pa.array(_fsums(values, offsets), pa.float64(), mask=empty)
        return kind.arrow(_int_sums(feature, values, offsets), empty, wide=True)
    if aggregation == "mean":
        return pa.array(_means(feature, kind, values, offsets), pa.float64(), mask=empty)
    if aggregation == "std":
        deviations = counts - feature.ddof
        stds = _stds(kind, values, offsets, deviations)
        return pa.array(stds, pa.float64(), mask=deviations <= 0)
    raise AssertionError(aggregation)  # WindowedFeature validated it


def _fsums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The exactly rounded sum of each group (math.fsum; a loop over groups, not values)."""
    items = values.tolist()
    bounds = offsets.tolist()
    return np.array(
        [math.fsum(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
        dtype=np.float64,
    )


def _int_sums(feature: Any, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Exact int64 sums of each group; an overflow of int64 is refused, naming the feature."""
    n = len(offsets) - 1
    counts = np.diff(offsets)
    sums = np.zeros(n, dtype=np.int64)
    if not len(values):
        return sums
    nonempty = counts > 0
    bound = float(np.abs(values.astype(np.float64)).max()) * float(counts.max())
    if bound < 2.0**62:  # no partial sum can overflow
        sums[nonempty] = np.add.reduceat(values, offsets[:-1][nonempty])
        return sums
    items = values.tolist()
    for group in np.nonzero(nonempty)[0].tolist():  # rare: sums near the int64 range
        total = sum(items[offsets[group] : offsets[group + 1]])
        if not -(2**63) <= total < 2**63:
            raise DataError(f"feature {feature.name!r}: a window's sum {total} overflows int64")
        sums[group] = total
    return sums


def _means(feature: Any, kind: ValueKind, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    counts = np.diff(offsets)
    safe = np.maximum(counts, 1)
    if kind.kind == "float":
        return _fsums(values, offsets) / safe
    sums = _int_sums(feature, values, offsets)
    denominators = safe * 10**kind.scale
    means = sums.astype(np.float64) / denominators.astype(np.float64)
    # Both operands exact as doubles: one IEEE division, correctly rounded, as int / int is.
    inexact = (np.abs(sums) > _EXACT) | (denominators > _EXACT)
    for group in np.nonzero(inexact)[0].tolist():
        means[group] = int(sums[group]) / int(denominators[group])
    return means


def _stds(kind: ValueKind, values: np.ndarray, offsets: np.ndarray, dof: np.ndarray) -> np.ndarray:
    floats = values.astype(np.float64)
    if kind.kind == "decimal":
        floats = floats / 10.0**kind.scale
    counts = np.diff(offsets)
    means = _fsums(floats, offsets) / np.maximum(counts, 1)
    squares = (floats - np.repeat(means, counts)) ** 2
    m2 = _fsums(squares, offsets)
    # A window of equal values has no spread at all, even where their correctly rounded
    # mean is not exactly the value (three 0.1s): exactly 0, as any other system says.
    filled = counts > 0
    starts = offsets[:-1][filled]
    if len(starts):
        equal = np.minimum.reduceat(floats, starts) == np.maximum.reduceat(floats, starts)
        m2[np.nonzero(filled)[0][equal]] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(np.where(dof > 0, m2 / np.maximum(dof, 1), 0.0))


def _distinct(
    feature: Any, values: np.ndarray, counts: np.ndarray, describe: Callable[[int], str] | None
) -> pa.Array:
    n = len(counts)
    groups = np.repeat(np.arange(n, dtype=np.int64), counts)
    pairs = pa.table({"g": groups, "v": pa.array(values)}).group_by(["g", "v"]).aggregate([])
    distinct = np.bincount(np.asarray(pairs["g"].to_numpy(), dtype=np.int64), minlength=n).astype(
        np.int64
    )
    if len(distinct) and distinct.max() > feature.max_distinct:
        group = int(np.argmax(distinct))
        raise_over_cap(feature, int(distinct[group]), describe(group) if describe else None)
    return pa.array(distinct, pa.int64())


def raise_over_cap(feature: Any, distinct: int, entity: str | None) -> None:
    where = f" for entity {entity}" if entity else ""
    raise DataError(
        f"feature {feature.name!r}: {distinct} distinct values{where} in one window, past "
        f"max_distinct={feature.max_distinct}: an exact distinct count is refused past its "
        "cap (raise max_distinct, or shorten the window)"
    )
