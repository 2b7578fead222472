"""``keel leakage``: training data checked for features the model will not have live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from keel.cli._shared import EXIT_FOUND, EXIT_OK, Columns, err, out, spinner
from keel.errors import KeelError


def leakage(
    training: Annotated[str, typer.Argument(help="Training data: Parquet, CSV or a folder.")],
    target: Annotated[str, typer.Option(help="The label column.")],
    holdout: Annotated[
        str | None, typer.Option(help="Holdout rows: duplicates, entities, time overlap.")
    ] = None,
    served_log: Annotated[
        str | None,
        typer.Option(
            help="Served rows (Parquet, CSV, a folder); with --model, keel's prediction log "
            "root (default KEEL_LOG_ROOT, .keel/logs)."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Read the served rows of this model from keel's log.")
    ] = None,
    prediction_time: Annotated[
        str | None, typer.Option(help="Column: when each row's prediction is made.")
    ] = None,
    available: Annotated[
        list[str] | None,
        typer.Option(
            help="FEATURE=COLUMN or FEATURE=COLUMN+LAG: when a feature became available "
            "(repeatable)."
        ),
    ] = None,
    entity: Annotated[
        str | None, typer.Option(help="Entity column that must not be in both splits.")
    ] = None,
    time_column: Annotated[
        str | None, typer.Option(help="Time column whose ranges must not overlap across splits.")
    ] = None,
    id: Columns = None,  # noqa: A002
    ignore: Columns = None,
    probes: Annotated[
        bool, typer.Option(help="Probe every feature alone (cross-validated).")
    ] = True,
    task: Annotated[
        str | None, typer.Option(help="binary, multiclass or regression (else inferred).")
    ] = None,
    json_path: Annotated[
        str | None, typer.Option("--json", help="Write the findings as JSON ('-': stdout).")
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option(help="A keel.yaml whose features: are recomputed as of availability."),
    ] = None,
    events: Annotated[
        str | None, typer.Option(help="With --features: their event log (Parquet).")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 on warnings too.")] = False,
) -> None:
    """Check TRAINING for leakage. Exit 0: nothing at alert level; 1: leakage found; 2: error.

    Alerts: features available after the prediction time, features absent or defaulted
    when served, duplicate rows, shared entities and time overlap across the splits.
    Warnings (exit 0 unless --strict): features, ids and times that alone predict the
    label suspiciously well."""
    from keel.checks.leakage import check_leakage, parse_availability

    availability = dict(parse_availability(spec) for spec in available or [])
    served = _served_rows(served_log, model)
    with spinner("checking for leakage"):
        report = check_leakage(
            training,
            target=target,
            holdout=holdout,
            served=served,
            prediction_time=prediction_time,
            available=availability,
            entity=entity,
            time_column=time_column,
            ids=id,
            ignore=ignore,
            probes=probes,
            task=task,
            features=_definitions(features),
            events=events,
        )
    document = json.dumps(report.to_dict(), indent=2, default=str)
    if json_path == "-":
        typer.echo(document)
    else:
        if json_path is not None:
            from keel._files import write_atomically

            write_atomically(Path(json_path), document)
        print_report(report)
    found = report.alert or (strict and bool(report.findings))
    raise typer.Exit(EXIT_FOUND if found else EXIT_OK)


def _definitions(path: Path | None):
    """The windowed features a keel.yaml declares (its top-level ``features:`` list)."""
    if path is None:
        return None
    import yaml

    from keel.features import parse_features

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise KeelError(f"--features {path}: cannot read it ({error})") from error
    if not isinstance(document, dict) or "features" not in document:
        raise KeelError(f"--features {path}: no top-level features: list")
    return parse_features(document["features"], str(path))


def _served_rows(served_log: str | None, model: str | None):
    """The served rows: a file or folder, or a model's prediction log (latest per request)."""
    if model is None:
        if served_log is not None and (Path(served_log) / "predictions").is_dir():
            raise KeelError(f"--served-log {served_log} is a log root: name the --model")
        return served_log
    from keel.store.logs import log_root
    from keel.store.queries import read_log

    root = log_root(Path(served_log) if served_log else None)
    rows = read_log(root, "predictions", model, latest_per_request=True)
    if rows.num_rows == 0:
        raise KeelError(f"--model {model!r}: no served predictions in the log at {root}")
    return rows


def print_report(report) -> None:
    """The findings as a table, then what was not checked."""
    shape = ", ".join(f"{rows:,} {split}" for split, rows in report.rows.items())
    if report.findings:
        table = Table("level", "kind", "column", "rows", "finding")
        for finding in report.findings:
            color = "red" if finding.level == "alert" else "yellow"
            rows = "; ".join(
                f"{split} {part['count']:,}"
                + (f" ({_first(part['first'])})" if part["first"] else "")
                for split, part in finding.rows.items()
            )
            table.add_row(
                f"[{color}]{finding.level}[/]",
                finding.kind,
                finding.column or "(rows)",
                rows,
                finding.message,
            )
        out.print(table)
    alerts = sum(f.level == "alert" for f in report.findings)
    warnings = len(report.findings) - alerts
    verdict = f"[bold red]{alerts} leakage alert(s)[/]" if alerts else "[green]no leakage alert[/]"
    out.print(
        f"{verdict}, {warnings} warning(s) in {shape} ({report.task}; checked: "
        f"{', '.join(report.checked)}) in {report.seconds:.1f}s"
    )
    for note in report.notes:
        err.print(f"[dim]note:[/] {note}", highlight=False)


def _first(positions: list[int]) -> str:
    shown = ", ".join(str(p) for p in positions[:5])
    return f"rows {shown}{', …' if len(positions) > 5 else ''}"
