"""Where keel keeps what it found: the results store (SQLAlchemy: SQLite or PostgreSQL)."""

from keel.store.results import ResultStore, StoreError

__all__ = ["ResultStore", "StoreError"]
