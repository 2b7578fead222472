"""What the leakage checks find: ``Finding`` (one problem) and ``LeakageReport`` (all).

>>> finding = Finding("duplicates", "alert", None, "2 holdout rows (1.0%) are equal to a "
...                   "training row", rows={"holdout": rows_of(np.array([4, 9]))})
>>> report = LeakageReport([finding], ["duplicates"], [], "y", "binary", {"train": 800}, "ab")
>>> report.alert, report.lines()
(True, ['alert duplicates: 2 holdout rows (1.0%) are equal to a training row'])
>>> report.to_dict()["findings"][0]["rows"]
{'holdout': {'count': 2, 'first': [4, 9]}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT = "keel.leakage/v1"
#: Row positions a finding lists per split (the count is always whole).
FIRST_ROWS = 20


@dataclass(frozen=True)
class Finding:
    """One leakage finding: what (``kind``), how bad (``level``: alert or warning), which
    column (None for whole rows), a one-line ``message``, the rows (per split: a count and
    the first positions) and the ``evidence`` (numbers behind it)."""

    kind: str
    level: str
    column: str | None
    message: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "level": self.level,
            "column": self.column,
            "message": self.message,
            "rows": self.rows,
            "evidence": self.evidence,
        }


@dataclass
class LeakageReport:
    """The findings, which checks ran (``checked``), what could not be checked and why
    (``notes``), and the data's shape."""

    findings: list[Finding]
    checked: list[str]
    notes: list[str]
    target: str
    task: str
    rows: dict[str, int]
    fingerprint: str
    seconds: float = 0.0

    @property
    def alert(self) -> bool:
        """True when any finding is at alert level."""
        return any(f.level == "alert" for f in self.findings)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``keel.leakage/v1``, docs/formats.md)."""
        return {
            "format": FORMAT,
            "target": self.target,
            "task": self.task,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
            "alert": self.alert,
            "checked": self.checked,
            "notes": self.notes,
            "findings": [f.to_dict() for f in self.findings],
        }

    def lines(self) -> list[str]:
        """One line per finding: ``level kind column: message``."""
        return [
            f"{f.level} {f.kind}{' ' + f.column if f.column else ''}: {f.message}"
            for f in self.findings
        ]


def rows_of(positions: np.ndarray) -> dict[str, Any]:
    return {"count": int(len(positions)), "first": [int(p) for p in positions[:FIRST_ROWS]]}
