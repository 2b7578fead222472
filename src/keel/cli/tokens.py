"""``keel tokens``: admin tokens, one per person (only hashes are stored).

Exit codes: 0 done, 2 could not (a name already taken or unknown, the store unreachable).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Admin tokens, one per person.", no_args_is_help=True)
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)


@app.command("add")
def add(name: Annotated[str, typer.Argument(help="The person the token is for.")]) -> None:
    """Make a token for NAME and print it once: keel keeps only its hash."""
    from keel.store import ResultStore
    from keel.tokens import add_token

    token = add_token(ResultStore(), name)
    err.print(f"token for {name} (shown once; keel stores only its hash):", highlight=False)
    print(token)


@app.command("list")
def list_() -> None:
    """Every token's owner, when it was made and when revoked."""
    from keel.store import ResultStore
    from keel.tokens import list_tokens

    rows = list_tokens(ResultStore())
    if not rows:
        out.print("no tokens (keel tokens add NAME makes one)")
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        out.print(f"{row['name']}\tcreated {row['created_at']}\t{state}", highlight=False)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="Whose token stops working.")],
    actor: Annotated[str | None, typer.Option(help="Who revokes it (recorded).")] = None,
) -> None:
    """Revoke NAME's token: it stops verifying at once."""
    from keel.store import ResultStore
    from keel.tokens import revoke_token

    revoke_token(ResultStore(), name, actor=actor)
    out.print(f"revoked the token of {name}", highlight=False)
