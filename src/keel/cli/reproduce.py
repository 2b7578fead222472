"""``keel reproduce NAME@VERSION``: re-do a recorded training run and compare, item by item.

Exit codes: 0 everything matches, 1 something differs (said what), 2 cannot re-do it.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)


def reproduce(
    ref: Annotated[str, typer.Argument(help="loans@3, loans@champion or models:/loans/3")],
    tolerance: Annotated[
        float, typer.Option(help="Largest |Δscore| that still counts as the same.")
    ] = 1e-9,
    alpha: Annotated[float, typer.Option(help="Significance level of the paired test.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Re-do a recorded training run and compare it item by item. Exit 0/1/2.

    Runs the recorded entrypoint from a clean checkout of the recorded commit on the
    recorded data, and compare data fingerprints, code, package versions, params and the
    holdout predictions. Exit 0 all match, 1 something differs, 2 cannot run."""
    from keel.registry import open_registry
    from keel.reproduce import describe
    from keel.reproduce import reproduce as redo
    from keel.store import ResultStore

    found = redo(open_registry(store=ResultStore()), ref, tolerance=tolerance, alpha=alpha)
    if as_json:
        print(json.dumps(found.to_dict(), indent=2, default=str))
    else:
        for line in describe(found):
            out.print(line, highlight=False)
    if not found.matches:
        raise typer.Exit(1)
