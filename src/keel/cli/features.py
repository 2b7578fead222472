"""``keel features``: compute windowed features offline, ingest events (docs/features.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli._shared import EXIT_OK, out
from keel.errors import ConfigError

app = typer.Typer(
    help="Windowed features: compute them offline, ingest events.", no_args_is_help=True
)

Definitions = Annotated[
    Path, typer.Argument(help="A YAML file with a features: list (keel.yaml works).")
]
Root = Annotated[Path | None, typer.Option(help="Log folder (default .keel/logs).")]


def _definitions(path: Path) -> list[Any]:
    import yaml

    from keel.features import parse_features

    try:
        payload = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the feature definitions ({error})") from error
    entries = payload.get("features") if isinstance(payload, dict) else payload
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a features: list of feature definitions")
    return parse_features(entries, str(path))


@app.command("compute")
def compute(
    definitions: Definitions,
    queries: Annotated[str, typer.Argument(help="Parquet or CSV: entity keys and a time.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The Parquet file to write.")],
    events: Annotated[
        str | None, typer.Option(help="Events (Parquet file or folder); default the event log.")
    ] = None,
    at: Annotated[str, typer.Option(help="The queries' time column.")] = "event_time",
    as_of: Annotated[
        bool, typer.Option(help="Also write each <name>__as_of (the query's time: complete then).")
    ] = False,
    root: Root = None,
) -> None:
    """The queries with each feature appended, point-in-time and as of availability."""
    import io

    import pyarrow.parquet as pq

    from keel._files import write_atomically
    from keel.features import compute_offline, event_log

    features = _definitions(definitions)
    source = events if events is not None else event_log(root)
    table = compute_offline(features, source, queries, at=at, as_of=as_of)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_atomically(output, buffer.getvalue())
    out.print(f"wrote {table.num_rows:,} rows with {len(features)} features to {output}")
    raise typer.Exit(EXIT_OK)


@app.command("ingest")
def ingest_events(
    definitions: Definitions,
    events: Annotated[str, typer.Argument(help="Parquet or CSV file, or a folder, of events.")],
    store: Annotated[
        str | None, typer.Option(help="Online store URL (default sqlite under the log root).")
    ] = None,
    root: Root = None,
) -> None:
    """Stamp the events available now, append them to the event log, update the state."""
    from keel.features import event_log, ingest

    features = _definitions(definitions)
    taken = ingest(events, features=features, root=root, online=store)
    out.print(f"ingested {taken:,} events into {event_log(root)}")
    raise typer.Exit(EXIT_OK)
