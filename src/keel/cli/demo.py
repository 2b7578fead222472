"""``keel demo``: the story keel tells on generated data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.cli._shared import out


def demo(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for the demo's files.")
    ] = Path("keel-demo"),
    seed: Annotated[int, typer.Option(help="Random seed of the scenario.")] = 7,
) -> None:
    """Generate a production scenario, record a baseline, and find what changed, week by week."""
    from keel.demo import run_demo

    # The demo exits 0 when it told its story: finding the planted changes is its success.
    run_demo(output, seed=seed, console=out)
