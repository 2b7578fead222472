"""Result: one row, one schema everywhere (Python, JSON, the store, Prometheus, alert rules).

>>> row = Result(check="feature_drift", column="age", metric="wasserstein", value=0.31,
...              threshold=0.1, status="alert")
>>> row.to_dict()["status"], RESULT_COLUMNS[:3]
('alert', ('monitor', 'model', 'model_version'))
"""

from __future__ import annotations

from dataclasses import KW_ONLY, asdict, dataclass, field, fields
from typing import Any

STATUSES = ("ok", "warn", "alert", "error", "insufficient_data")


@dataclass(frozen=True)
class Result:
    check: str
    column: str | None
    metric: str
    value: float | None
    threshold: float | None
    status: str
    _: KW_ONLY  # the rest by name: a dict passed seventh must not become the monitor
    monitor: str | None = None
    model: str | None = None
    model_version: str | None = None
    segment: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    revision: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; one of {STATUSES}")

    def to_dict(self) -> dict[str, Any]:
        return {name: asdict(self)[name] for name in RESULT_COLUMNS}


RESULT_COLUMNS: tuple[str, ...] = (
    "monitor",
    "model",
    "model_version",
    "segment",
    "window_start",
    "window_end",
    "check",
    "column",
    "metric",
    "value",
    "threshold",
    "status",
    "revision",
    "details",
)
assert set(RESULT_COLUMNS) == {f.name for f in fields(Result)}

#: What identifies a Result across runs: the same key with another value is a new revision.
RESULT_KEY: tuple[str, ...] = RESULT_COLUMNS[:9]


def readable(value: float | None, digits: int = 4) -> str:
    """A value as people read it: thousands separated when large, a few digits otherwise.

    >>> readable(-242700.0), readable(0.52151), readable(None)
    ('-242,700', '0.5215', '-')
    """
    if value is None or value != value:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.{digits}g}"
