"""The drift-method protocol: every method takes two samples of one kind, returns one result.

>>> from keel.stats.methods import METHODS
>>> sorted(name for name, method in METHODS.items() if "categorical" in method.kinds)
['chisquare', 'hellinger', 'jensenshannon', 'l_infinity', 'psi', 'total_variation']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MethodResult:
    """A statistic, its p-value when the method is a test, and what else decided it."""

    statistic: float
    p_value: float | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftMethod:
    """A named drift method: the kinds it applies to, and its default threshold.

    ``has_p_value``: drift when the (adjusted) p-value is below ``threshold``;
    otherwise drift when the statistic is at or above ``threshold``.
    """

    name: str
    kinds: tuple[str, ...]
    has_p_value: bool
    default_threshold: float
    compute: Callable[..., MethodResult]
    description: str = ""
