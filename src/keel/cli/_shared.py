"""What every command group shares: the consoles, the exit codes, common options and helpers."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from keel.errors import KeelError

# Off a terminal (pipes, CI logs) rich would wrap at 80 columns; tables need more.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)


err = Console(stderr=True, soft_wrap=True)


EXIT_OK, EXIT_FOUND, EXIT_ERROR = 0, 1, 2


ConfigPath = Annotated[Path, typer.Option("--config", help="The monitors' configuration.")]


Columns = Annotated[list[str] | None, typer.Option(help="Column name (repeatable).")]


def parse_moment(option: str, text: str):
    """An ISO 8601 time from the command line, UTC unless it says otherwise."""
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except ValueError as error:
        raise KeelError(f"{option} {text!r} is not a date or time (ISO 8601)") from error
    if stamp is pd.NaT:
        raise KeelError(f"{option} {text!r} is not a date or time (ISO 8601)")
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


def monitors_named(monitors, name):
    chosen = [m for m in monitors if name is None or m.name == name]
    if not chosen:
        raise KeelError(f"no monitor named {name!r} (known: {[m.name for m in monitors]})")
    return chosen


def role_names(**named: str | list[str] | None) -> dict[str, str]:
    roles: dict[str, str] = {}
    for role, columns in named.items():
        for column in [columns] if isinstance(columns, str) else columns or []:
            roles[column] = "ignored" if role == "ignore" else role
    return roles


@contextmanager
def progress_bar(total: int | None, label: str):
    """A progress bar on stderr for long work (only on a terminal)."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda rows: progress.advance(task, rows)


@contextmanager
def spinner(label: str):
    """A spinner on stderr while work runs in several processes (only on a terminal)."""
    if not err.is_terminal:
        yield
        return
    with err.status(label):
        yield


def as_number(value) -> float | None:
    return value if isinstance(value, int | float) else None


def formatted(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)
