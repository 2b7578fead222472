"""``keel logs``: the prediction and label logs (``keel.store.logs``) — forgetting entities.

Exit codes: 0 done, 2 could not (bad arguments, a log or the store that cannot be written).
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer

from keel.cli._shared import out

app = typer.Typer(help="The prediction and label logs.", no_args_is_help=True)


@app.command("forget")
def forget(
    model: Annotated[str, typer.Argument(help="The model whose logs forget (its shadows too).")],
    values: Annotated[list[str], typer.Argument(help="The entity key values to forget.")],
    entity: Annotated[str, typer.Option("--entity", help="The entity key column (customer_id).")],
    logs: Annotated[
        Path | None, typer.Option("--logs", help="Log root (KEEL_LOG_ROOT, .keel/logs).")
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who asks (recorded; default: the OS user).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Forget entities: `keel logs forget loans --entity customer_id C1 C2`.

    Writes a tombstone, then rewrites every file of the model's prediction, label, shadow
    and rejected logs holding their rows without them; prints the rows removed per log.
    Recorded in the store's event log (KEEL_DATABASE_URL) with the actor.
    """
    from keel.store import ResultStore
    from keel.store.logs import forget as forget_rows
    from keel.store.logs import log_root

    who = actor or getpass.getuser()
    root = log_root(logs)
    counts = forget_rows(root, model, entity, values, actor=who)
    ResultStore().log_event(
        who,
        "logs forget",
        subject=model,
        details={"column": entity, "entities": len(values), "root": str(root), **counts},
    )
    if as_json:
        print(json.dumps(counts))
        return
    removed = ", ".join(f"{log} {n}" for log, n in counts.items() if log != "pending_segments")
    out.print(f"forgot {len(values)} {entity} value(s) of {model}: rows removed: {removed}")
    if counts["pending_segments"]:
        out.print(
            f"{counts['pending_segments']} WAL segment(s) held by a running writer: hidden from "
            "reads now, cleaned when that writer compacts them"
        )
