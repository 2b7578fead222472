"""``keel ui``: the dashboard over the results store (``keel.ui.app.create_app``).

Nothing here is imported until the dashboard is asked for: FastAPI and uvicorn load only
when ``keel ui`` runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(store_url: str | None = None, **options: Any) -> Any:
    """The dashboard's FastAPI app (see ``keel.ui.app.create_app``)."""
    from keel.ui.app import create_app as make

    return make(store_url, **options)
