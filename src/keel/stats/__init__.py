"""Drift statistics: distances, tests, multiple-testing corrections."""

from keel.stats.method import DriftMethod, MethodResult
from keel.stats.methods import METHODS, compute, get_method
from keel.stats.multiple_testing import benjamini_hochberg
from keel.stats.samples import CategoricalSample, NumericSample

__all__ = [
    "METHODS",
    "CategoricalSample",
    "DriftMethod",
    "MethodResult",
    "NumericSample",
    "benjamini_hochberg",
    "compute",
    "get_method",
]
