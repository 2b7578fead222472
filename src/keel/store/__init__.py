"""Where keel keeps what it found: the results store (SQLAlchemy: SQLite or PostgreSQL)."""

from keel.store.results import MonitorBusy, ResultStore, StoreError

__all__ = ["MonitorBusy", "ResultStore", "StoreError"]
