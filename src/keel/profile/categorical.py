"""Profile of one categorical (or boolean) column: exact counts up to a cap, then a sketch.

While a column has at most ``max_exact`` distinct values, every count is
exact. Past that cap the profile switches, for good, to a frequent-items
sketch (Apache DataSketches, Misra–Gries): the heaviest values keep counts
within ``count_error`` rows, and the rest fall into ``other``; a HyperLogLog
sketch then counts distinct values within ``distinct_relative_error``
(two standard deviations).

>>> column = CategoricalProfile()
>>> column.update_counts({"a": 3, "b": 1}, nulls=1)
>>> column.update_counts({"b": 2})
>>> column.category_counts(), column.rows, column.distinct
({'a': 3, 'b': 3}, 7, 2)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import datasketches

DEFAULT_MAX_EXACT = 2_000
FREQUENT_LG_MAX_K = 11
DISTINCT_LG_K = 12


@dataclass
class CategoricalProfile:
    """Mergeable summary of a categorical column (see the module docstring)."""

    max_exact: int = DEFAULT_MAX_EXACT
    rows: int = 0
    nulls: int = 0
    counts: dict[str, int] | None = field(default_factory=dict)
    frequent: Any = field(default=None, repr=False)
    distinct_sketch: Any = field(default=None, repr=False)

    kind = "categorical"

    @property
    def count(self) -> int:
        """Rows with a value."""
        return self.rows - self.nulls

    @property
    def missing(self) -> int:
        return self.nulls

    @property
    def is_exact(self) -> bool:
        return self.frequent is None

    def update_counts(self, value_counts: dict[str, int], nulls: int = 0) -> None:
        """Add the counts of one batch (``{value: rows}``) and its null count."""
        self.rows += sum(value_counts.values()) + nulls
        self.nulls += nulls
        self._add(value_counts)

    def _add(self, value_counts: dict[str, int]) -> None:
        if self.counts is not None:
            merged = Counter(self.counts)
            merged.update(value_counts)
            if len(merged) <= self.max_exact:
                self.counts = dict(merged)
                return
            self._switch_to_sketch()
        # Loops run over distinct values of a batch, not over rows.
        for value, weight in value_counts.items():
            self.frequent.update(value, int(weight))
            self.distinct_sketch.update(value)

    def _switch_to_sketch(self) -> None:
        self.frequent = datasketches.frequent_strings_sketch(FREQUENT_LG_MAX_K)
        self.distinct_sketch = datasketches.hll_sketch(DISTINCT_LG_K)
        exact, self.counts = self.counts or {}, None
        for value, weight in exact.items():
            self.frequent.update(value, int(weight))
            self.distinct_sketch.update(value)

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        """Fold another profile of the same column into this one, in place; returns self."""
        self.rows += other.rows
        self.nulls += other.nulls
        if other.counts is not None:
            self._add(other.counts)
            return self
        if self.counts is not None:
            self._switch_to_sketch()
        self.frequent.merge(other.frequent)
        union = datasketches.hll_union(DISTINCT_LG_K)
        union.update(self.distinct_sketch)
        union.update(other.distinct_sketch)
        self.distinct_sketch = union.get_result()
        return self

    def category_counts(self, limit: int | None = None) -> dict[str, int]:
        """Counts by value, largest first.

        Past the cap, only values the sketch guarantees to be frequent (no false
        positives: their count exceeds ``count_error``), with estimated counts.
        """
        if self.counts is not None:
            items = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        else:
            estimates = self.frequent.get_frequent_items(datasketches.NO_FALSE_POSITIVES)
            items = [(value, int(estimate)) for value, estimate, _, _ in estimates]
        return dict(items[:limit] if limit is not None else items)

    def count_of(self, value: str) -> int:
        """The (estimated, past the cap) count of any one value; 0 if never seen."""
        if self.counts is not None:
            return self.counts.get(value, 0)
        return int(self.frequent.get_estimate(value))

    @property
    def count_error(self) -> float:
        """Bound on the error of any single count; 0 while counts are exact."""
        if self.counts is not None:
            return 0.0
        return float(self.frequent.get_apriori_error(FREQUENT_LG_MAX_K, self.count))

    @property
    def distinct(self) -> int:
        """Number of distinct values (exact under the cap, an HLL estimate past it)."""
        if self.counts is not None:
            return len(self.counts)
        return round(self.distinct_sketch.get_estimate())

    @property
    def distinct_relative_error(self) -> float:
        if self.counts is not None:
            return 0.0
        return abs(datasketches.hll_sketch.get_rel_err(True, False, DISTINCT_LG_K, 2))

    def to_state(self) -> tuple[dict[str, Any], bytes]:
        state = {
            "kind": self.kind,
            "max_exact": self.max_exact,
            "rows": self.rows,
            "nulls": self.nulls,
            "counts": self.counts,
        }
        if self.counts is not None:
            return state, b""
        frequent = self.frequent.serialize()
        distinct = self.distinct_sketch.serialize_compact()
        state["frequent_bytes"] = len(frequent)
        return state, frequent + distinct

    @classmethod
    def from_state(cls, state: dict[str, Any], blob: bytes) -> CategoricalProfile:
        profile = cls(
            max_exact=state["max_exact"],
            rows=state["rows"],
            nulls=state["nulls"],
            counts=state["counts"],
        )
        if state["counts"] is None:
            split = state["frequent_bytes"]
            profile.frequent = datasketches.frequent_strings_sketch.deserialize(blob[:split])
            profile.distinct_sketch = datasketches.hll_sketch.deserialize(blob[split:])
        return profile
