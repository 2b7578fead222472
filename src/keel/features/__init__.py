"""Windowed features: one definition, computed offline (DuckDB) and online, bit for bit.

``WindowedFeature`` and ``parse_features`` declare them (``definition.py``, with the
interval convention); ``compute_offline`` computes them for every training row;
``OnlineFeatures`` keeps an incremental state per entity (SQLite, or Redis); ``ingest``
stamps events with their availability time and feeds both. DuckDB and Redis are imported
on first use, never by ``import keel``.
"""

from __future__ import annotations

from typing import Any

from keel.features.definition import AGGREGATIONS, AVAILABLE_TIME, WindowedFeature, parse_features

__all__ = [
    "AGGREGATIONS",
    "AVAILABLE_TIME",
    "OnlineFeatures",
    "WindowedFeature",
    "compute_offline",
    "ingest",
    "parse_features",
]


def __getattr__(name: str) -> Any:
    if name == "compute_offline":
        from keel.features.offline import compute_offline

        return compute_offline
    if name == "OnlineFeatures":
        from keel.features.online import OnlineFeatures

        return OnlineFeatures
    if name == "ingest":
        from keel.features.ingest import ingest

        return ingest
    raise AttributeError(f"module 'keel.features' has no attribute {name!r}")
