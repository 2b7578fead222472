"""``keel alerts``: what is firing, silences, deliveries."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from keel.cli._shared import EXIT_FOUND, EXIT_OK, out

app = typer.Typer(help="What is firing, silences, deliveries.", no_args_is_help=True)


@app.command("list")
def alerts_list(
    monitor: Annotated[str | None, typer.Option(help="One monitor (default: all).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
) -> None:
    """What is pending or firing, since when, and why; then notices a channel refused."""
    from keel.alerts.delivery import queue
    from keel.alerts.engine import active
    from keel.store import ResultStore

    store = ResultStore()
    shown = active(store, monitor, everything)
    table = Table("state", "severity", "monitor", "rule", "version", "since", "why")
    for row in shown.itertuples(index=False):
        table.add_row(
            row.state,
            row.severity,
            row.monitor,
            row.rule,
            row.model_version or "-",
            row.first_window[:10],
            row.summary or "",
        )
    out.print(table if len(shown) else "no alert pending or firing")
    stuck = queue(store)
    stuck = stuck[stuck["last_error"].notna() & (stuck["status"] != "sent")]
    for row in stuck.itertuples(index=False):
        out.print(
            f"notice to {row.channel} {row.status} after {row.attempts} attempts: {row.last_error}"
        )
    raise typer.Exit(EXIT_FOUND if (shown["state"] == "firing").any() else EXIT_OK)


@app.command("silence")
def alerts_silence(
    monitor: Annotated[str, typer.Argument(help="The monitor (* for every one).")],
    rule: Annotated[str, typer.Option(help="One rule (default: every rule).")] = "*",
    hours: Annotated[float, typer.Option("--hours", help="How long it lasts.")] = 2.0,
    reason: Annotated[str | None, typer.Option(help="Why, for the event log.")] = None,
) -> None:
    """Stop notifications of a monitor's rule for a while (states still move)."""
    import getpass

    from keel.alerts.engine import silence
    from keel.store import ResultStore

    number = silence(ResultStore(), monitor, rule, hours, reason, created_by=getpass.getuser())
    out.print(f"silence {number}: {monitor}/{rule} for {hours:g} h")
