"""``keel retrain``: decide from the monitors' diagnoses, run the retrain job when due, and
compare, approve or reject the challenger it shadows (keel.retrain.promotion).

``run``: exit 0 nothing to do, or a challenger registered (or another job was running);
1 a job failed (the event and the alerting Result say why); 2 could not run.
``compare``: 0 decided or waiting for data; 1 a promotion waits for approval, or the gate
refused. ``approve`` / ``reject``: 0 done; 2 refused (audited). ``status``: 1 when a
promotion is pending.
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


Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="KEEL_TOKEN",
        show_envvar=True,
        help="Your keel token (keel tokens add NAME); else KEEL_TOKEN from the environment.",
    ),
]


@app.command("compare")
def retrain_compare(
    name: Annotated[str, typer.Argument(help="The monitor whose challenger to judge.")],
    config: ConfigPath = Path("keel.yaml"),
    now: Annotated[
        str | None,
        typer.Option(help="Decide as of this time (labels matured by then; ISO 8601)."),
    ] = None,
    entity: Annotated[
        str | None, typer.Option(help="A logged column whose ids repeat (clustered bounds).")
    ] = None,
    segment: Annotated[
        str | None,
        typer.Option(help="A logged column to gate per value (default: the first segment)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The run as JSON on stdout.")] = False,
    store_results: Annotated[
        bool,
        typer.Option(
            "--store-results",
            help="Also write the challenger check's Results for every closed window since "
            "the challenger's first answer (running estimates; they never promote).",
        ),
    ] = False,
) -> None:
    """Judge the challenger against the champion on the shadowed requests (or, with
    labels_depend_on_decision, on the canary's arm, unpaired), at the policy's horizon,
    and record the run. Exit 1 when a promotion waits for approval or the gate refused;
    0 otherwise (insufficient data, keep the champion, promoted under auto)."""
    import json

    from keel.monitor import load_config
    from keel.retrain.promotion import compare
    from keel.store import ResultStore

    moment = parse_moment("--now", now) if now is not None else None
    (monitor,) = monitors_named(load_config(config), name)
    store = ResultStore()
    run = compare(monitor, store, as_of=moment, entity=entity, segment=segment)
    written = []
    if store_results:
        from keel.retrain.watch import store_challenger_results

        written = store_challenger_results(monitor, store, moment)
    if as_json:
        out.print_json(
            json.dumps({**run.to_dict(), "results_written": len(written)}, default=str)
            if store_results
            else json.dumps(run.to_dict(), default=str)
        )
    else:
        out.print(_line(run), highlight=False)
        if store_results:
            windows = len({r.window_end for r in written})
            out.print(
                f"  challenger Results: {len(written)} in {windows} window(s)", highlight=False
            )
        if run.status == "pending":
            out.print(
                f"  approve: keel retrain approve {run.run}   "
                f"reject: keel retrain reject {run.run} --reason ...",
                highlight=False,
            )
    raise typer.Exit(run.exit_code)


@app.command("backtest")
def retrain_backtest(
    name: Annotated[str, typer.Argument(help="The monitor whose logged history to replay.")],
    start: Annotated[str, typer.Option("--from", help="Replay from (ISO 8601).")],
    end: Annotated[str, typer.Option("--to", help="Replay to (ISO 8601).")],
    config: ConfigPath = Path("keel.yaml"),
    policy: Annotated[
        Path | None,
        typer.Option(help="A YAML file with a retrain: block (default: the monitor's)."),
    ] = None,
    champion: Annotated[
        str | None,
        typer.Option(
            help="The model in force at --from: models:/NAME@ALIAS or a skops file "
            "(default: the log's prediction column)."
        ),
    ] = None,
    calendar: Annotated[
        str | None,
        typer.Option(help="The fixed calendar to compare with (default: schedule, or 28d)."),
    ] = None,
    diagnosis_delay: Annotated[
        str | None,
        typer.Option(
            help="How long after its window a concept drift is seen (default: label_maturity)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")] = False,
) -> None:
    """Replay the monitor's logged history with a retrain policy, point-in-time: when it
    would have retrained, what each candidate would have scored on the rows after its
    training window, and the value per 1,000 decisions against never retraining and a
    fixed calendar. Exit 0."""
    import json

    from keel.monitor import load_config
    from keel.retrain.backtest import backtest, load_champion, read_policy
    from keel.store import ResultStore

    (monitor,) = monitors_named(load_config(config), name)
    store = ResultStore()
    report = backtest(
        monitor,
        store,
        start=parse_moment("--from", start),
        end=parse_moment("--to", end),
        policy=read_policy(policy) if policy is not None else None,
        champion=load_champion(champion, store) if champion else None,
        diagnosis_delay=diagnosis_delay,
        calendar=calendar,
    )
    if as_json:
        out.print_json(json.dumps(report.to_dict(), default=str))
    else:
        for line in report.lines():
            out.print(line, highlight=False)
    raise typer.Exit(EXIT_OK)


@app.command("approve")
def retrain_approve(
    run: Annotated[str, typer.Argument(help="The pending run (keel retrain status MONITOR).")],
    token: Token = None,
    reason: Annotated[str | None, typer.Option(help="A note for the audit.")] = None,
) -> None:
    """Promote a pending run's challenger to champion (your token says who did it; the gate
    report is the audit's evidence). Exit 2 when refused (the refusal is audited)."""
    from keel.retrain.promotion import PREVIOUS, approve
    from keel.store import ResultStore

    done = approve(ResultStore(), run, token, reason=reason)
    out.print(
        f"{done.model}@champion → version {done.challenger_version} (was "
        f"{done.champion_version}, now {done.model}@{PREVIOUS}), by {done.decided_by}. "
        f"Rollback: keel models rollback {done.model} --reason ...",
        highlight=False,
    )
    raise typer.Exit(EXIT_OK)


@app.command("reject")
def retrain_reject(
    run: Annotated[str, typer.Argument(help="The pending run (keel retrain status MONITOR).")],
    reason: Annotated[str, typer.Option(help="Why not (recorded).")],
    token: Token = None,
) -> None:
    """Close a pending run without promoting. Exit 2 when refused (audited)."""
    from keel.retrain.promotion import reject
    from keel.store import ResultStore

    done = reject(ResultStore(), run, token, reason)
    out.print(f"run {done.run} rejected by {done.decided_by}: {reason}", highlight=False)
    raise typer.Exit(EXIT_OK)


@app.command("status")
def retrain_status(
    name: Annotated[str, typer.Argument(help="The monitor.")],
    last: Annotated[int, typer.Option(help="How many runs to show, newest last.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="The runs as JSON on stdout.")] = False,
) -> None:
    """The monitor's comparison runs: pending and decided, with who decided. Exit 1 when a
    promotion waits for approval."""
    import json

    from keel.retrain.promotion import runs
    from keel.store import ResultStore

    found = runs(ResultStore(), name)
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in found[-last:]], default=str))
    elif not found:
        out.print(f"{name}: no comparison runs yet (keel retrain compare {name})", highlight=False)
    for run in [] if as_json else found[-last:]:
        out.print(_line(run), highlight=False)
    raise typer.Exit(EXIT_FOUND if any(r.status == "pending" for r in found) else EXIT_OK)


def _line(run) -> str:
    n = (run.counts or {}).get("paired", 0)
    versions = f"v{run.challenger_version} vs champion v{run.champion_version}"
    decided = f", {run.status} by {run.decided_by} at {run.decided_at}" if run.decided_by else ""
    return (
        f"{run.run} {run.monitor}: {run.status} ({versions}, {n} of {run.horizon} paired "
        f"labels{decided}): {run.reason}"
    )
