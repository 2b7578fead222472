"""Profile: a mergeable, serializable summary of a table, built in one vectorized pass.

A profile holds one column profile per column (numeric, categorical or
counts only, by the column's kind and role). ``merge`` is associative and
commutative: profiling the parts of a table and merging gives exactly the
whole table's counts, moments and bin counts, and quantiles within the
sketches' stated error. Profiles round-trip through compact versioned bytes.

>>> import pandas as pd
>>> frame = pd.DataFrame({"x": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", None]})
>>> whole = Profile.build(frame)
>>> halves = Profile.build(frame.iloc[:2]).merge(Profile.build(frame.iloc[2:]))
>>> halves.columns["x"].mean == whole.columns["x"].mean, halves.columns["c"].category_counts()
(True, {'a': 2, 'b': 1})
>>> Profile.from_bytes(whole.to_bytes()).rows
4
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel import _container
from keel.errors import SchemaError
from keel.profile.categorical import DEFAULT_MAX_EXACT, CategoricalProfile
from keel.profile.count import CountProfile
from keel.profile.numeric import DEFAULT_SKETCH_K, NumericProfile
from keel.profile.vectors import VectorProfile
from keel.schema import ColumnSpec, Schema

#: 4: embedding columns (``keel.profile.vectors``), written only by profiles that have one;
#: 3: numeric moments about a pilot (``shift``, ``shifted_mean``); 2: keel quantile sketches;
#: 1: DataSketches KLL. Every older version still reads.
FORMAT_VERSION = 4
_KIND = b"PROF"



@runtime_checkable
class ColumnProfile(Protocol):
    """What every column profile is: DataSketches' lifecycle (update, merge, serialize).

    ``rows`` counts every row seen, ``missing`` the nulls (and NaN where the kind has it),
    ``count`` the values summarised; ``merge`` folds another profile of the same kind in
    (associative: the merge of parts is the profile of the whole) and returns ``self``;
    ``to_state`` and ``from_state`` round-trip through a JSON-able dict and a blob. Each
    kind is registered in ``PROFILE_KINDS``; ``tests/common/test_column_profiles.py`` runs
    one battery over all of them.
    """

    kind: str
    rows: int

    @property
    def count(self) -> int: ...

    @property
    def missing(self) -> int: ...

    def merge(self, other: Any) -> Any: ...

    def to_state(self) -> tuple[dict[str, Any], bytes]: ...


class TextProfile(NumericProfile):
    """A text column, summarised by the distribution of its lengths in characters."""

    kind = "text"


class DatetimeProfile(NumericProfile):
    """A datetime column, summarised as seconds since the Unix epoch (UTC)."""

    kind = "datetime"


#: Every kind of column profile, by the ``kind`` its state records.
PROFILE_KINDS: dict[str, type] = {
    "numeric": NumericProfile,
    "categorical": CategoricalProfile,
    "count": CountProfile,
    "text": TextProfile,
    "datetime": DatetimeProfile,
    "embedding": VectorProfile,  # embedding, text and image columns (keel.profile.unstructured)
}


@dataclass
class Profile:
    """Summary of a table: its schema, row count and one profile per column."""

    schema: Schema
    rows: int = 0
    columns: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(
        cls,
        schema: Schema,
        bin_edges: Mapping[str, np.ndarray] | None = None,
        sketch_k: int = DEFAULT_SKETCH_K,
        max_exact: int = DEFAULT_MAX_EXACT,
    ) -> Profile:
        """A profile with no rows yet, ready for ``update``."""
        bin_edges = bin_edges or {}
        columns = {
            spec.name: _new_column(spec, bin_edges.get(spec.name), sketch_k, max_exact)
            for spec in schema.columns
        }
        return cls(schema=schema, rows=0, columns=columns)

    @classmethod
    def build(
        cls,
        data: Any,
        schema: Schema | None = None,
        bin_edges: Mapping[str, np.ndarray] | None = None,
        sketch_k: int = DEFAULT_SKETCH_K,
        max_exact: int = DEFAULT_MAX_EXACT,
        on_batch: Callable[[int], None] | None = None,
    ) -> Profile:
        """Profile any input ``keel.data.open_source`` takes, streaming it batch by batch.

        ``bin_edges`` (by column) adds exact counts in those bins, as a baseline
        fixes them. ``on_batch`` is called with each batch's row count (progress).
        """
        from keel.data import open_source

        source = open_source(data)
        schema = schema or Schema.infer(source)
        missing = [name for name in schema.names if name not in source.schema.names]
        if missing:
            raise SchemaError(f"{source.name}: columns {missing} are missing")
        profile = cls.empty(schema, bin_edges, sketch_k, max_exact)
        for batch in source.batches(columns=schema.names):
            profile.update(batch)
            if on_batch is not None:
                on_batch(batch.num_rows)
        return profile

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add one batch of rows (a RecordBatch or Table holding every profiled column)."""
        for name, column in self.columns.items():
            _update_column(column, name, batch.column(name))
        self.rows += batch.num_rows

    def merge(self, other: Profile) -> Profile:
        """Fold another profile of the same columns into this one, in place; returns self."""
        if set(self.columns) != set(other.columns):
            raise SchemaError(
                f"cannot merge profiles of different columns: {sorted(self.columns)} "
                f"and {sorted(other.columns)}"
            )
        for name, column in self.columns.items():
            theirs = other.columns[name]
            if type(theirs) is not type(column):
                raise SchemaError(
                    f"column {name!r}: cannot merge a {column.kind} profile "
                    f"with a {theirs.kind} one"
                )
            column.merge(theirs)
        self.rows += other.rows
        return self

    def to_bytes(self) -> bytes:
        """Compact versioned bytes (see docs/formats.md)."""
        states, blobs = {}, {}
        for name, column in self.columns.items():
            states[name], blob = column.to_state()
            blobs[f"column:{name}"] = blob
        header = {"rows": self.rows, "schema": self.schema.to_dict(), "columns": states}
        # without an embedding column: version 3, which keel before them reads
        version = FORMAT_VERSION if "embedding" in {c["kind"] for c in states.values()} else 3
        return _container.pack(_KIND, version, header, blobs)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "profile") -> Profile:
        header, blobs = _container.unpack(data, _KIND, FORMAT_VERSION, source)
        return cls._from_header(header, blobs)

    @classmethod
    def _from_header(cls, header: dict[str, Any], blobs: dict[str, bytes]) -> Profile:
        columns = {
            name: PROFILE_KINDS[state["kind"]].from_state(state, blobs[f"column:{name}"])
            for name, state in header["columns"].items()
        }
        return cls(schema=Schema.from_dict(header["schema"]), rows=header["rows"], columns=columns)

    def save(self, path: str | Path) -> None:
        from keel._files import write_atomically

        write_atomically(Path(path), self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        from keel._files import read_keel_file

        return cls.from_bytes(read_keel_file(Path(path)), source=str(path))


def profile_kind(spec: ColumnSpec) -> str:
    """Which column profile a column gets: ids and nested types only count rows and nulls."""
    if spec.role == "id" or spec.kind == "other":
        return "count"
    if spec.kind == "boolean":
        return "categorical"
    return spec.kind


def _new_column(spec: ColumnSpec, edges: np.ndarray | None, sketch_k: int, max_exact: int) -> Any:
    kind = profile_kind(spec)
    if kind == "numeric":
        return NumericProfile(sketch_k=sketch_k, bin_edges=edges)
    if kind in ("text", "datetime"):
        return PROFILE_KINDS[kind](sketch_k=sketch_k)
    if kind == "categorical":
        return CategoricalProfile(max_exact=max_exact)
    if kind == "embedding":
        return VectorProfile()
    return CountProfile()


def _update_column(column: Any, name: str, array: pa.Array | pa.ChunkedArray) -> None:
    nulls = array.null_count
    if isinstance(column, CountProfile):
        column.rows += len(array)
        column.nulls += nulls
        return
    if isinstance(column, VectorProfile):
        column.update_array(array, name)
        return
    present = pc.drop_null(array) if nulls else array
    if isinstance(column, CategoricalProfile):
        column.update_counts(value_counts(present, name), nulls=nulls)
        return
    if isinstance(column, TextProfile):
        values = pc.utf8_length(_as_strings(present, name))
    elif isinstance(column, DatetimeProfile):
        values = _epoch_seconds(present, name)
    else:
        values = present
    column.update_values(_to_float64(values, name, column.kind), nulls=nulls)


def value_counts(present: pa.Array | pa.ChunkedArray, name: str) -> dict[str, int]:
    if pa.types.is_boolean(present.type):
        present = pc.if_else(present, "true", "false")
    else:
        present = _as_strings(present, name)
    if len(present) == 0:
        return {}
    counted = pc.value_counts(present)
    return dict(
        zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True)
    )


def _as_strings(present: Any, name: str) -> Any:
    if pa.types.is_string(present.type) or pa.types.is_large_string(present.type):
        return present
    try:
        return pc.cast(present, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SchemaError(f"column {name!r}: cannot read {present.type} values as text") from error


def _epoch_seconds(present: Any, name: str) -> Any:
    try:
        if pa.types.is_timestamp(present.type) or pa.types.is_date(present.type):
            # Through microseconds (years 1 to 9999; nanoseconds stop in 2262), then seconds.
            micros = pc.cast(pc.cast(present, pa.timestamp("us", tz="UTC"), safe=False), pa.int64())
            return pc.divide(pc.cast(micros, pa.float64(), safe=False), 1e6)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SchemaError(f"column {name!r}: cannot read {present.type} as a time") from error
    return present


def _to_float64(values: Any, name: str, kind: str) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):  # dictionary-encoded numbers: decode first
        values = values.cast(values.type.value_type)
    if pa.types.is_duration(values.type):  # durations count in their own unit
        values = values.cast(pa.int64())
    if pa.types.is_decimal(values.type):
        values = pc.cast(values, pa.float64())
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        raise SchemaError(f"column {name!r}: expected {kind} values, found {values.type}")
    return values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
