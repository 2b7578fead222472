"""``keel ui``: the dashboard (``keel.ui``) on 127.0.0.1 unless told otherwise.

Exit codes: 0 stopped cleanly, 2 could not start (the store unreachable, the port taken).
"""

from __future__ import annotations

from typing import Annotated

import typer


def ui(
    store: Annotated[
        str | None,
        typer.Option(help="The store's URL (default: KEEL_DATABASE_URL, else .keel/keel.db)."),
    ] = None,
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8765,
    host: Annotated[
        str, typer.Option(help="The address to bind: loopback unless you mean otherwise.")
    ] = "127.0.0.1",
) -> None:
    """Every model's health in one place: monitors, alerts, models. Read-only until you log
    in with an admin token (keel tokens add NAME)."""
    import uvicorn

    from keel.errors import KeelError
    from keel.ui.app import create_app, warm_up

    app = create_app(store)
    warm_up(app)  # the first page a person opens is then served from memory
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(
            f"warning: binding {host}: anyone who reaches it can read the pages; use HTTPS in "
            "front of it, or the session cookie travels in the clear",
            err=True,
        )
    typer.echo(f"keel ui on http://{host}:{port}/ (store {app.state.store.name}); Ctrl-C stops")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except OSError as error:
        raise KeelError(f"keel ui cannot listen on {host}:{port}: {error}") from error
