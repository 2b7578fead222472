"""Requests checked against the baseline's schema before any model sees them.

A request's record must hold every input the model was trained on, each of the kind the
baseline recorded (a number for a numeric column, text for a categorical one, true or false
for a boolean), plus, optionally, the model's declared entity keys and, for an input the
caller's own online store served, ``<input>__as_of`` (when that value was computed, ISO
8601; logged beside it for the skew check). Anything else is
refused with an ``InvalidInput`` naming the record, the column and what was wrong, which
the gateway answers with a 422: a bad request is the caller's to fix, never a 5xx.

>>> from keel.schema import ColumnSpec, Schema
>>> schema = Schema([ColumnSpec("age", "numeric"), ColumnSpec("city", "categorical")])
>>> inputs = RecordSchema.from_schema(schema, entity_keys=["customer"])
>>> inputs.check([{"age": 41, "city": "Oslo", "customer": "c1"}])
[{'age': 41, 'city': 'Oslo', 'customer': 'c1'}]
>>> try:
...     inputs.check([{"age": "old", "city": "Oslo"}])
... except InvalidInput as error:
...     print(error, "|", error.column)
record 0, column 'age': expected a number, got text 'old' | age
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keel.errors import KeelError, SchemaError

#: ``<input>__as_of``: when the caller's own online store computed that input's value.
AS_OF = "__as_of"

#: Longest text value taken in a request (longer is refused, not truncated).
MAX_TEXT = 10_000
_INT64 = (-(2**63), 2**63 - 1)


class InvalidInput(KeelError):
    """A request the gateway refuses (422): names the record and column and what was wrong."""

    def __init__(self, message: str, column: str | None = None, record: int | None = None):
        super().__init__(message)
        self.column, self.record = column, record


@dataclass(frozen=True)
class Column:
    """One input column: its name, kind, Arrow type name and whether a null is allowed."""

    name: str
    kind: str
    dtype: str = ""
    nullable: bool = False


@dataclass(frozen=True)
class RecordSchema:
    """The inputs a model takes (in the model's order) and the entity keys it may be given."""

    inputs: tuple[Column, ...]
    entity_keys: tuple[str, ...] = ()
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({column.name: column for column in self.inputs})

    @classmethod
    def from_schema(
        cls,
        schema: Any,
        entity_keys: Iterable[str] = (),
        order: Iterable[str] | None = None,
        nullable: Iterable[str] = (),
    ) -> RecordSchema:
        """Inputs from a ``keel.schema.Schema``: its features, or the columns in ``order``
        (a fitted model's ``feature_names_in_``) when given; ``nullable`` names the columns
        whose reference held nulls.

        >>> from keel.schema import ColumnSpec, Schema
        >>> schema = Schema([ColumnSpec("a", "numeric"), ColumnSpec("id", "numeric", "id")])
        >>> [c.name for c in RecordSchema.from_schema(schema).inputs]
        ['a']
        """
        names = list(order) if order is not None else [c.name for c in schema.features]
        nullable = set(nullable)
        columns = []
        for name in names:
            if name not in schema:
                raise SchemaError(
                    f"the model takes column {name!r}, which the baseline does not describe "
                    f"(its columns: {schema.names})"
                )
            spec = schema[name]
            columns.append(Column(name, spec.kind, spec.dtype, name in nullable))
        keys = tuple(k for k in entity_keys if k not in {c.name for c in columns})
        return cls(tuple(columns), keys)

    @property
    def names(self) -> list[str]:
        """The input columns, in the model's order.

        >>> RecordSchema((Column("a", "numeric"), Column("b", "boolean"))).names
        ['a', 'b']
        """
        return [column.name for column in self.inputs]

    def check(self, records: list[Any]) -> list[dict[str, Any]]:
        """The records as plain dicts, or an ``InvalidInput`` for the first thing wrong.

        >>> try:
        ...     RecordSchema((Column("on", "boolean"),)).check([{"on": 1}])
        ... except InvalidInput as error:
        ...     print(error)
        record 0, column 'on': expected true or false, got 1
        """
        checked = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InvalidInput(
                    f"record {index}: expected an object of column values, got {_what(record)}",
                    record=index,
                )
            row: dict[str, Any] = {}
            for name, value in record.items():
                column = self._by_name.get(name)
                if column is None:
                    if name in self.entity_keys:
                        row[name] = _entity_key(index, name, value)
                        continue
                    if name.endswith(AS_OF) and name.removesuffix(AS_OF) in self._by_name:
                        row[name] = _served_as_of(index, name, value)  # the caller's store's
                        continue
                    allowed = ", ".join(self.names + list(self.entity_keys))
                    raise InvalidInput(
                        f"record {index}, column {name!r}: not an input of this model "
                        f"(it takes: {allowed})",
                        name,
                        index,
                    )
                row[name] = _value(index, column, value)
            missing = [c.name for c in self.inputs if c.name not in row]
            if missing:
                more = f" (and {len(missing) - 1} more: {missing[1:]})" if missing[1:] else ""
                raise InvalidInput(
                    f"record {index}, column {missing[0]!r}: missing{more}",
                    missing[0],
                    index,
                )
            checked.append(row)
        return checked

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema of one record (for the OpenAPI description).

        >>> RecordSchema((Column("a", "numeric"),)).json_schema()["properties"]["a"]
        {'type': 'number'}
        """
        kinds = {"numeric": "number", "boolean": "boolean"}
        properties: dict[str, Any] = {}
        for column in self.inputs:
            kind: Any = kinds.get(column.kind, "string")
            properties[column.name] = {"type": [kind, "null"] if column.nullable else kind}
        for key in self.entity_keys:
            properties[key] = {"type": ["string", "integer"]}
        return {"type": "object", "properties": properties, "required": self.names}


def _served_as_of(index: int, name: str, value: Any) -> datetime:
    """When the caller's own online store computed an input's value (ISO 8601; UTC when no
    offset is given), logged beside it for the skew check's staleness."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidInput(
            f"record {index}, column {name!r}: an ISO 8601 time, not {_what(value)}", name, index
        )
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"text {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return repr(value)


def _text(index: int, name: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise InvalidInput(
            f"record {index}, column {name!r}: text longer than {MAX_TEXT} characters",
            name,
            index,
        )
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidInput(
            f"record {index}, column {name!r}: text that is not valid Unicode", name, index
        ) from None
    return value


def _entity_key(index: int, name: str, value: Any) -> Any:
    if isinstance(value, str):
        return _text(index, name, value)
    if isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]:
        return value
    raise InvalidInput(
        f"record {index}, entity key {name!r}: expected text or a 64-bit integer, "
        f"got {_what(value)}",
        name,
        index,
    )


def _value(index: int, column: Column, value: Any) -> Any:
    name = column.name
    if value is None:
        if column.nullable:
            return None
        raise InvalidInput(
            f"record {index}, column {name!r}: null, and the baseline had no nulls here",
            name,
            index,
        )
    kind = column.kind
    if kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(
                f"record {index}, column {name!r}: expected a number, got {_what(value)}",
                name,
                index,
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(
                f"record {index}, column {name!r}: {value} is not a finite number", name, index
            )
        if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
            raise InvalidInput(
                f"record {index}, column {name!r}: {value} is outside the 64-bit range",
                name,
                index,
            )
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput(
                f"record {index}, column {name!r}: expected true or false, got {_what(value)}",
                name,
                index,
            )
        return value
    if kind == "categorical" and "int" in column.dtype:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(
                f"record {index}, column {name!r}: expected an integer category, "
                f"got {_what(value)}",
                name,
                index,
            )
        return value
    if kind in ("categorical", "text", "datetime"):
        if not isinstance(value, str):
            raise InvalidInput(
                f"record {index}, column {name!r}: expected text, got {_what(value)}",
                name,
                index,
            )
        value = _text(index, name, value)
        if kind == "datetime":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise InvalidInput(
                    f"record {index}, column {name!r}: {_what(value)} is not an ISO 8601 time",
                    name,
                    index,
                ) from None
        return value
    if isinstance(value, str):
        return _text(index, name, value)
    raise InvalidInput(
        f"record {index}, column {name!r}: expected a plain value, got {_what(value)}",
        name,
        index,
    )
