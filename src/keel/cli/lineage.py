"""``keel lineage NAME@ALIAS``: what trained this model, who promoted it and why.

Exit codes: 0 answered, 2 could not (unknown model, version or alias; registry unreachable).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)


def lineage(
    ref: Annotated[str, typer.Argument(help="loans@champion, loans@3 or models:/loans@champion")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """What trained this model, who promoted it and why.

    Walks version → run → data → baseline → monitors and says what trained the model:
    data (fingerprints, time ranges), code, params, environment, holdout metrics, and who
    moved its aliases and why."""
    from keel.lineage import describe
    from keel.lineage import lineage as walk
    from keel.registry import open_registry
    from keel.store import ResultStore

    store = ResultStore()
    found = walk(open_registry(store=store), store, ref)
    if as_json:
        print(json.dumps(found, indent=2, default=str))
        return
    for line in describe(found):
        out.print(line, highlight=False)
