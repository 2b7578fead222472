"""Column roles and kinds, inferred by documented rules and overridable.

Kinds come from the Arrow type: booleans are ``boolean``; integers, floats and
decimals are ``numeric``, except integers that are only 0 and 1 (labels,
flags, class predictions), which are ``categorical``; timestamps and dates
are ``datetime``; strings are ``categorical``, or ``text`` when most values
are long and distinct. Roles
default to ``feature``; keel recognises two more on its own, so that they are
never reported as drifted:

* ``timestamp``: a datetime column, or a column named like a time
  (``timestamp``, ``ts``, ``event_time``, ``created_at``, ``date``...).
* ``id``: a column named ``id`` or ending in ``_id``/``id`` whose sampled
  values are (almost) all distinct; a string column whose sampled values are
  all distinct and contain no spaces; an integer column that strictly
  increases (a row number).

Target, prediction and score are never guessed: the user names them.
Strings that look like numbers are flagged (finding ``numeric_strings``) and
stay strings: keel never parses them silently.

>>> import pyarrow as pa
>>> table = pa.table({"user_id": ["a1", "b2", "c3"], "age": [31, 45, 27], "city": ["x", "y", "x"]})
>>> for column in Schema.infer(table).columns:
...     print(column.name, column.kind, column.role)
user_id categorical id
age numeric feature
city categorical feature
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import SchemaError

KINDS = ("numeric", "categorical", "boolean", "datetime", "text", "embedding", "other")
ROLES = ("feature", "target", "prediction", "score", "timestamp", "id", "segment", "ignored")

#: Rows read to infer roles; kinds come from the Arrow type, whatever the size.
INFERENCE_SAMPLE_ROWS = 100_000

_TIME_NAME = re.compile(
    r"^(ts|time|timestamp|datetime|date|event_?time|event_?ts|created(_at)?|updated(_at)?|"
    r".*_(at|time|timestamp|ts|date))$",
    re.IGNORECASE,
)
_ID_NAME = re.compile(r"^(id|uuid|guid|key|.*[_-]id|.*[a-z]Id|.*_uuid|.*_key)$")
_NUMBER_LIKE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its name, kind, role, Arrow type and inference findings."""

    name: str
    kind: str
    role: str = "feature"
    dtype: str = ""
    findings: tuple[str, ...] = ()

    @property
    def is_feature(self) -> bool:
        return self.role == "feature"


@dataclass
class Schema:
    """The columns of a table with their kinds and roles."""

    columns: list[ColumnSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"duplicated column names: {duplicated}")

    def __getitem__(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise SchemaError(f"column {name!r} is not in the schema (columns: {self.names})")

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def features(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.is_feature]

    def by_role(self, role: str) -> list[ColumnSpec]:
        return [c for c in self.columns if c.role == role]

    def with_roles(self, roles: Mapping[str, str]) -> Schema:
        """A copy with the given roles set (``{"label": "target"}``)."""
        return self._replaced(roles, "role", ROLES)

    def with_kinds(self, kinds: Mapping[str, str]) -> Schema:
        """A copy with the given kinds set (``{"zip": "categorical"}``)."""
        return self._replaced(kinds, "kind", KINDS)

    def _replaced(self, values: Mapping[str, str], attribute: str, allowed: tuple) -> Schema:
        for name, value in values.items():
            if value not in allowed:
                raise SchemaError(
                    f"column {name!r}: unknown {attribute} {value!r}; one of {allowed}"
                )
            self[name]  # raises a SchemaError naming the missing column
        columns = [
            replace(c, **{attribute: values[c.name]}) if c.name in values else c
            for c in self.columns
        ]
        return Schema(columns)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(c) | {"findings": list(c.findings)} for c in self.columns]}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Schema:
        return cls(
            [
                ColumnSpec(**(dict(c) | {"findings": tuple(c.get("findings", ()))}))
                for c in payload["columns"]
            ]
        )

    @classmethod
    def infer(
        cls,
        data: Any,
        roles: Mapping[str, str] | None = None,
        kinds: Mapping[str, str] | None = None,
    ) -> Schema:
        """Infer kinds and roles from data (any input ``keel.data.open_source`` takes).

        ``roles`` and ``kinds`` override what is inferred; a named column that
        does not exist raises SchemaError.
        """
        from keel.data import open_source

        source = open_source(data)
        sample = _head(source, INFERENCE_SAMPLE_ROWS)
        roles = dict(roles or {})
        kinds = dict(kinds or {})
        for name in list(roles) + list(kinds):
            if name not in source.schema.names:
                raise SchemaError(
                    f"column {name!r} is not in {source.name} (columns: {source.schema.names})"
                )
        columns = []
        for arrow_field in source.schema:
            values = sample.column(arrow_field.name)
            kind, findings = kinds.get(arrow_field.name), ()
            if kind is None:
                kind, findings = _infer_kind(arrow_field.type, values)
            role = roles.get(arrow_field.name) or _infer_role(arrow_field.name, kind, values)
            columns.append(
                ColumnSpec(arrow_field.name, kind, role, str(arrow_field.type), tuple(findings))
            )
        return cls(columns)


def kind_of_type(arrow_type: pa.DataType) -> str:
    """The kind a column of this Arrow type has before looking at values.

    >>> kind_of_type(pa.float32()), kind_of_type(pa.string()), kind_of_type(pa.bool_())
    ('numeric', 'categorical', 'boolean')
    """
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_decimal(arrow_type):
        return "numeric"
    if pa.types.is_duration(arrow_type):
        return "numeric"
    if pa.types.is_temporal(arrow_type):
        return "datetime"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "categorical"
    if pa.types.is_null(arrow_type):
        return "categorical"
    return "other"


def _head(source: Any, rows: int) -> pa.Table:
    batches, taken = [], 0
    for batch in source.batches(batch_rows=min(rows, 65_536)):
        batches.append(batch.slice(0, rows - taken))
        taken += batches[-1].num_rows
        if taken >= rows:
            break
    if not batches:
        return source.schema.empty_table()
    return pa.Table.from_batches(batches, schema=source.schema)


def _infer_kind(arrow_type: pa.DataType, values: pa.ChunkedArray) -> tuple[str, list[str]]:
    kind = kind_of_type(arrow_type)
    if kind == "numeric" and pa.types.is_integer(arrow_type) and _is_binary(values):
        return "categorical", []
    if kind != "categorical" or pa.types.is_null(arrow_type):
        return kind, []
    strings = values.cast(pa.string()) if pa.types.is_dictionary(arrow_type) else values
    present = pc.drop_null(strings)
    if len(present) == 0:
        return kind, []
    findings = []
    numeric_share = pc.mean(pc.cast(pc.match_substring_regex(present, _NUMBER_LIKE), pa.int8()))
    if numeric_share.as_py() >= 0.95:
        findings.append("numeric_strings")
        return kind, findings
    distinct_share = len(pc.unique(present)) / len(present)
    mean_length = pc.mean(pc.utf8_length(present)).as_py()
    has_space = pc.mean(pc.cast(pc.match_substring(present, " "), pa.int8())).as_py()
    if distinct_share > 0.5 and mean_length >= 20 and has_space >= 0.5:
        return "text", findings
    return kind, findings


def _is_binary(values: pa.ChunkedArray) -> bool:
    """Integers that are only 0 and 1 (labels, flags, class predictions) are categories:
    a distance between two shares is what matters, and sketches blur shares of two values."""
    present = pc.drop_null(values)
    return (
        len(present) > 0
        and pc.all(pc.is_in(present, value_set=pa.array([0, 1], type=present.type))).as_py()
    )


def _infer_role(name: str, kind: str, values: pa.ChunkedArray) -> str:
    if kind == "datetime":
        return "timestamp"
    time_named = _TIME_NAME.match(name) and kind in ("numeric", "categorical")
    if time_named and _looks_like_time(values):
        return "timestamp"
    present = pc.drop_null(values)
    count = len(present)
    if count == 0 or kind not in ("numeric", "categorical"):
        return "feature"
    is_integer = pa.types.is_integer(values.type)
    is_string = kind == "categorical"
    id_named = _ID_NAME.match(name) and (is_integer or is_string) and count >= 2
    if id_named and len(pc.unique(present)) >= 0.95 * count:
        return "id"
    if is_string and count >= 20 and len(pc.unique(present)) == count:
        strings = present.cast(pa.string()) if pa.types.is_dictionary(values.type) else present
        if not pc.any(pc.match_substring(strings, " ")).as_py():
            return "id"
    if is_integer and count >= 20:
        array = present.to_numpy()
        if (array[1:] > array[:-1]).all():
            return "id"
    return "feature"


def _looks_like_time(values: pa.ChunkedArray) -> bool:
    """A time-named column is a timestamp if it is numeric or its strings look like dates."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        # Numbers are times only as epoch seconds, ms, µs or ns after 2001 (1e9 seconds):
        # a "response_time" of 0.3 s is a feature.
        present = pc.drop_null(values)
        return len(present) > 0 and pc.min(present).as_py() >= 1e9
    present = pc.drop_null(values)
    if len(present) == 0:
        return False
    if pa.types.is_dictionary(present.type):
        present = present.cast(pa.string())
    date_like = pc.match_substring_regex(present, r"^\d{4}-\d{2}-\d{2}")
    return bool(pc.mean(pc.cast(date_like, pa.int8())).as_py() >= 0.95)
