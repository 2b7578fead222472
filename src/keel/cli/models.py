"""``keel models``: move aliases with a reason and a named actor, roll back, read history.

Exit codes: 0 done (history: the audit chain is intact), 1 history found the audit chain
broken, 2 could not (unknown model, version or alias; no reason; registry unreachable).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Model versions and their aliases, with history.", no_args_is_help=True)
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)

Actor = Annotated[
    str | None,
    typer.Option(help="Who does it (recorded); else the owner of the token in KEEL_TOKEN."),
]
Reason = Annotated[str, typer.Option(help="Why (recorded in the audit table).")]
AliasOption = Annotated[str, typer.Option("--alias", help="The alias to move.")]


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="The version the alias moves to.")],
    reason: Reason,
    alias: AliasOption = "champion",
    actor: Actor = None,
    without_baseline: Annotated[
        bool, typer.Option(help="Allow a version with no baseline attached.")
    ] = False,
) -> None:
    """Point ALIAS of NAME at VERSION, audited: who, when, why, the previous version."""
    from keel.registry.aliases import promote as move

    registry, store = _open()
    done = move(
        registry,
        store,
        name,
        version,
        alias,
        reason,
        _actor(store, actor),
        require_baseline=not without_baseline,
    )
    was = done["previous_version"]
    out.print(
        f"{name}@{alias} → version {version} (was {was if was is not None else 'unset'}), "
        f"by {done['actor']}: {reason}",
        highlight=False,
    )


@app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Reason,
    alias: AliasOption = "champion",
    actor: Actor = None,
) -> None:
    """Point ALIAS back at the version it pointed at before its current one."""
    from keel.registry.aliases import rollback as back

    registry, store = _open()
    done = back(registry, store, name, alias, reason, _actor(store, actor))
    out.print(
        f"{name}@{alias} rolled back to version {done['version']} (was "
        f"{done['previous_version']}), by {done['actor']}: {reason}",
        highlight=False,
    )


@app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    when: Annotated[
        str | None,
        typer.Option("--at", help="Which version each alias pointed at then (a date: that day)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Every move of NAME's aliases (moves made outside keel marked uncertain), or with --at
    which version was, say, champion on 2026-03-04. Exit 1 when the audit chain is broken."""
    from keel.registry.aliases import at, verify_chain
    from keel.registry.aliases import history as read

    registry, store = _open()
    intervals = read(registry, store, name, alias)
    problems = verify_chain(store)
    answer = None
    if when is not None:
        start, end = _period(when)
        answer = {
            a: [{"version": v, "certain": c} for v, c in at(intervals, a, start, end)]
            for a in sorted({i["alias"] for i in intervals})
        }
    if as_json:
        payload = {"model": name, "registry": registry.uri, "intervals": intervals}
        payload |= {"at": when, "answer": answer} if when else {}
        print(json.dumps(payload | {"chain_problems": problems}, indent=2, default=str))
    elif answer is not None:
        for name_of_alias, found in answer.items():
            text = ", ".join(
                f"version {f['version']}" + ("" if f["certain"] else " (uncertain)") for f in found
            )
            out.print(f"{name}@{name_of_alias} on {when}: {text or 'not set'}", highlight=False)
        if not answer:
            out.print(f"{name}: no alias has been set", highlight=False)
    else:
        for i in intervals:
            mark = "" if i["certain"] else f"  uncertain from {i['earliest_start']}"
            out.print(
                f"{i['start']}  {i['alias']} → {i['version']}  {i['action']} by {i['actor']}: "
                f"{i['reason']}{mark}{'  (repaired)' if i['repaired'] else ''}",
                highlight=False,
            )
        if not intervals:
            out.print(f"{name}: no alias has been set", highlight=False)
    for problem in problems:
        err.print(f"[red]audit chain broken:[/] {problem}", highlight=False)
    if problems:
        raise typer.Exit(1)


def _open():
    from keel.registry import open_registry
    from keel.store import ResultStore

    store = ResultStore()
    return open_registry(store=store), store


def _actor(store, actor: str | None) -> str:
    """``--actor``, else the owner of the token in ``KEEL_TOKEN`` (verified)."""
    from keel.errors import ConfigError
    from keel.tokens import verify_token

    presented = os.environ.get("KEEL_TOKEN")
    if presented:
        owner = verify_token(store, presented)
        if owner is None:
            raise ConfigError("KEEL_TOKEN is not a valid token (keel tokens list shows them)")
        if actor and actor != owner:
            raise ConfigError(f"--actor {actor!r} is not the owner of KEEL_TOKEN ({owner!r})")
        return owner
    if not actor:
        raise ConfigError("name who does this: --actor NAME, or KEEL_TOKEN with a keel token")
    return actor


def _period(text: str) -> tuple[datetime, datetime | None]:
    from keel.errors import ConfigError

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at {text!r}: a date or time in ISO 8601 (2026-03-04)") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if len(text) == 10:  # a date: the whole day
        return moment, moment + timedelta(days=1)
    return moment, None
