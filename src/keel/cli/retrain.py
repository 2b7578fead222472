"""``keel retrain``: decide from the monitors' diagnoses, and run the retrain job when due.

Exit codes: 0 nothing to do, or a challenger registered (or another job was running);
1 a job failed (the event and the alerting Result say why); 2 could not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.cli._shared import EXIT_FOUND, EXIT_OK, ConfigPath, monitors_named, out, parse_moment

app = typer.Typer(help="Retrain models when their monitors' data says so.", no_args_is_help=True)


@app.command("run")
def retrain_run(
    name: Annotated[str | None, typer.Argument(help="One monitor (default: all).")] = None,
    config: ConfigPath = Path("keel.yaml"),
    now: Annotated[
        str | None,
        typer.Option(help="Decide as if it were this time (ISO 8601, UTC unless it says)."),
    ] = None,
) -> None:
    """For each monitor with a retrain: policy, decide (retrain, wait, page or none, and
    why) and, when due, train a challenger. Exit 1 when a job failed."""
    from keel.monitor import load_config
    from keel.retrain.job import run_retrain
    from keel.store import ResultStore

    moment = parse_moment("--now", now) if now is not None else None
    store, failed = ResultStore(), False
    for monitor in monitors_named(load_config(config), name):
        outcome = run_retrain(monitor, store, moment)
        failed |= outcome.status == "failed"
        said = f" → {outcome.challenger}" if outcome.challenger else ""
        out.print(f"{monitor.name}: {outcome.status}{said}: {outcome.reason}", highlight=False)
    raise typer.Exit(EXIT_FOUND if failed else EXIT_OK)
