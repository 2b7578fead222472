"""Windowed features: one definition, computed offline (DuckDB) and online, bit for bit.

``WindowedFeature`` and ``parse_features`` declare them (``definition.py``, with the
interval convention); ``compute_offline`` computes them for every training row
(``offline.py``); ``OnlineFeatures`` keeps an incremental state per entity, in SQLite or
Redis (``online.py``); ``ingest`` stamps events with their availability time and feeds
the event log and the state (``events.py``). DuckDB and Redis are imported on first use;
``import keel`` does not import this package.
"""

from __future__ import annotations

from keel.features.definition import AGGREGATIONS, AVAILABLE_TIME, WindowedFeature, parse_features
from keel.features.events import EVENT_LOG_FORMAT, event_log, ingest
from keel.features.offline import compute_offline
from keel.features.online import OnlineFeatures

__all__ = [
    "AGGREGATIONS",
    "AVAILABLE_TIME",
    "EVENT_LOG_FORMAT",
    "OnlineFeatures",
    "WindowedFeature",
    "compute_offline",
    "event_log",
    "ingest",
    "parse_features",
]
