"""The smallest profile: rows and nulls, for columns keel does not summarise (ids, nested types).

>>> column = CountProfile()
>>> column.rows, column.nulls = 10, 2
>>> column.merge(CountProfile(rows=5)).count
13
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class CountProfile:
    rows: int = 0
    nulls: int = 0

    kind = "count"

    @property
    def count(self) -> int:
        return self.rows - self.nulls

    @property
    def missing(self) -> int:
        return self.nulls

    def merge(self, other: CountProfile) -> CountProfile:
        self.rows += other.rows
        self.nulls += other.nulls
        return self

    def to_state(self) -> tuple[dict[str, Any], bytes]:
        return {"kind": self.kind, "rows": self.rows, "nulls": self.nulls}, b""

    @classmethod
    def from_state(cls, state: dict[str, Any], blob: bytes) -> CountProfile:
        return cls(rows=state["rows"], nulls=state["nulls"])
