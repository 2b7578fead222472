"""``keel ingest``: take prediction and label logs in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.cli._shared import EXIT_FOUND, EXIT_OK, err, out
from keel.errors import KeelError

app = typer.Typer(help="Take prediction and label logs in.", no_args_is_help=True)


IdColumn = Annotated[str, typer.Option("--id", help="The column holding the request id.")]


TimeColumn = Annotated[str, typer.Option("--time", help="The column holding the event time.")]


@app.command("predictions")
def ingest_predictions(
    data: Annotated[str, typer.Argument(help="Parquet or CSV file, or a folder, of predictions.")],
    model: Annotated[str, typer.Option(help="The model the predictions came from.")],
    root: Annotated[Path | None, typer.Option(help="Log folder (default .keel/logs).")] = None,
    id_column: IdColumn = "request_id",
    time_column: TimeColumn = "event_time",
) -> None:
    """Append prediction records (request_id, event_time, …) to the model's log."""
    _ingest(data, "predictions", model, root, {id_column: "request_id", time_column: "event_time"})


@app.command("labels")
def ingest_labels(
    data: Annotated[str, typer.Argument(help="Parquet or CSV file, or a folder, of labels.")],
    model: Annotated[str, typer.Option(help="The model the labels are for.")],
    root: Annotated[Path | None, typer.Option(help="Log folder (default .keel/logs).")] = None,
    id_column: IdColumn = "request_id",
    time_column: TimeColumn = "event_time",
) -> None:
    """Append label records (request_id, event_time, label) to the model's log."""
    _ingest(data, "labels", model, root, {id_column: "request_id", time_column: "event_time"})


def _ingest(data: str, kind: str, model: str, root: Path | None, names: dict[str, str]) -> None:
    from keel.store.logs import ingest_file, log_root
    from keel.store.queries import unmatched_labels

    # All or nothing: staged, then committed; a file that fails midway leaves no rows.
    counts = ingest_file(data, log_root(root), kind, model, names=names)
    accepted, rejected = counts["accepted"], counts["rejected"]
    out.print(
        f"logged {accepted:,} {kind} for {model} in {log_root(root)}"
        + (f"; {rejected:,} rejected (see rejected/)" if rejected else "")
    )
    if kind == "labels" and (waiting := unmatched_labels(log_root(root), model)):
        out.print(f"{waiting:,} labels have no prediction yet (kept; they join when it arrives)")
    _warn_if_unwatched(model)
    raise typer.Exit(EXIT_FOUND if rejected else EXIT_OK)


def _warn_if_unwatched(model: str, config: Path = Path("keel.yaml")) -> None:
    """A model no monitor in ./keel.yaml reads is logged, and the user told so."""
    if not config.is_file():
        return
    from keel.monitor import load_config

    try:
        watched = {monitor.model for monitor in load_config(config)}
    except KeelError:
        return  # `keel monitor run` reports a broken configuration; ingestion goes on
    if model not in watched:
        err.print(
            f"warning: no monitor in {config} reads model {model!r} (monitors read: "
            f"{', '.join(sorted(watched)) or 'none'}); its log is kept, nothing checks it yet"
        )
