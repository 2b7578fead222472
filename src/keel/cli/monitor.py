"""``keel monitor``: run the monitors declared in keel.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from keel.cli._shared import EXIT_FOUND, EXIT_OK, ConfigPath, err, monitors_named, out, parse_moment

app = typer.Typer(help="Run the monitors declared in keel.yaml.", no_args_is_help=True)


@app.command("run")
def monitor_run(
    name: Annotated[str | None, typer.Argument(help="One monitor (default: all).")] = None,
    config: ConfigPath = Path("keel.yaml"),
    textfile: Annotated[
        Path | None, typer.Option(help="Write Prometheus metrics here (textfile collector).")
    ] = None,
    pushgateway: Annotated[
        str | None, typer.Option(help="Push Prometheus metrics to this Pushgateway URL.")
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(help="Run as if it were this time (ISO 8601, UTC unless it says): replays."),
    ] = None,
) -> None:
    """Check every window that closed since the last run, then send due alert notices.
    Exit 1 when one alerts."""
    from keel.alerts.delivery import deliver
    from keel.monitor import load_config, run_monitor
    from keel.monitor.stream import run_stream
    from keel.store import MonitorBusy, ResultStore

    moment = parse_moment("--now", now) if now is not None else None
    store, alerting = ResultStore(), False
    chosen = monitors_named(load_config(config), name)
    for monitor in chosen:
        try:
            outcome = run_monitor(monitor, store, now=moment)
        except MonitorBusy as busy:  # another run has it: not an error, and not a finding
            out.print(f"{monitor.name}: skipped: {busy}")
            continue
        alerting |= bool(outcome.alerting)
        for warning in outcome.warnings:
            err.print(f"[yellow]warning:[/] {monitor.name}: {warning}", highlight=False)
        out.print(
            f"{monitor.name}: {outcome.windows} closed windows checked, "
            f"{outcome.written:,} results stored ({outcome.unchanged:,} "
            f"unchanged); alerting: {', '.join(outcome.alerting) or 'none'}"
        )
        for alert in outcome.alerts:
            out.print(f"  alert {alert['state']}: {alert['rule']}: {alert['summary']}")
        if monitor.stream is not None:  # the streaming detectors, after the windows
            try:
                step = run_stream(monitor, store, now=moment)
            except MonitorBusy as busy:
                out.print(f"{monitor.name}: stream skipped: {busy}")
            else:
                alerting |= _streamed(monitor, step)
        if monitor.retrain is not None:  # the loop: compare the live challenger, or retrain
            from keel.retrain.loop import retrain_step

            looped = retrain_step(monitor, store, now=moment)
            alerting |= looped.alerting
            out.print(looped.line(), highlight=False)
            for alert in looped.alerts:
                out.print(f"  alert {alert['state']}: {alert['rule']}: {alert['summary']}")
    channels = {key: c for m in chosen for key, c in m.channels.items()}
    if channels:  # queued notices, this run's and any a channel refused before
        sent = deliver(store, channels)
        if sent["sent"] or sent["failed"]:
            out.print(
                f"notifications: {sent['sent']} sent, {sent['failed']} failed (kept, retried "
                "at the next run)"
            )
    _export_metrics(store, textfile, pushgateway)
    raise typer.Exit(EXIT_FOUND if alerting else EXIT_OK)


def _streamed(monitor, step) -> bool:
    """Print one streaming step; whether it alarmed."""
    for warning in step.warnings:
        err.print(f"[yellow]warning:[/] {monitor.name}: {warning}", highlight=False)
    out.print(
        f"{monitor.name}: stream: "
        + ", ".join(f"{name} {count:,} values" for name, count in step.fed.items())
        + f"; {len(step.alarms)} alarms"
    )
    for alert in step.alerts:
        out.print(f"  alert {alert['state']}: {alert['rule']}: {alert['summary']}")
    return bool(step.alarms)


def _export_metrics(store, textfile: Path | None, pushgateway: str | None) -> None:
    if textfile is None and pushgateway is None:
        return
    from keel.monitor.prometheus import Metrics

    metrics = Metrics(store, refresh=0)
    if textfile is not None:
        metrics.write_textfile(str(textfile))
    if pushgateway is not None:
        try:
            metrics.push(pushgateway)
        except OSError as error:  # the run itself is done and stored; say so, do not fail it
            err.print(f"warning: could not push metrics to {pushgateway}: {error}")


@app.command("backfill")
def monitor_backfill(
    name: Annotated[str, typer.Argument(help="The monitor.")],
    since: Annotated[str, typer.Option(help="First day to compute (ISO 8601).")],
    config: ConfigPath = Path("keel.yaml"),
    notify_history: Annotated[
        bool,
        typer.Option(help="Send every alert change of the replay, not only the state at its end."),
    ] = False,
    now: Annotated[str | None, typer.Option(help="Run as if it were this time (ISO 8601).")] = None,
) -> None:
    """Compute history from a date: every window's Results and alert states, in order. Only
    the alerts firing at the end are notified (--notify-history: every change)."""
    from keel.alerts.delivery import deliver
    from keel.monitor import backfill, load_config
    from keel.store import ResultStore

    start = parse_moment("--since", since)
    moment = parse_moment("--now", now) if now is not None else None
    store = ResultStore()
    chosen = monitors_named(load_config(config), name)
    for monitor in chosen:
        outcome = backfill(monitor, store, since=start, now=moment, notify_history=notify_history)
        firing = sorted({a["rule"] for a in outcome.alerts if a["state"] == "firing"})
        out.print(
            f"{monitor.name}: backfilled {outcome.windows} windows, "
            f"{outcome.written:,} results stored; "
            f"{len(outcome.alerts)} alert changes replayed"
            + (f" (fired: {', '.join(firing)})" if firing else "")
        )
    channels = {key: c for m in chosen for key, c in m.channels.items()}
    if channels:
        sent = deliver(store, channels)
        if sent["sent"] or sent["failed"]:
            out.print(f"notifications: {sent['sent']} sent, {sent['failed']} failed")


@app.command("serve")
def monitor_serve(
    config: ConfigPath = Path("keel.yaml"),
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port (0: any free).")
    ] = None,
    metrics_address: Annotated[str, typer.Option(help="Address /metrics listens on.")] = (
        "127.0.0.1"
    ),
) -> None:
    """Run the monitors on their schedules until stopped (SIGTERM or Ctrl-C)."""
    from keel.monitor import load_config
    from keel.monitor.schedule import serve
    from keel.store import ResultStore

    monitors = load_config(config)
    store, metrics = ResultStore(), None
    if metrics_port is not None:
        from keel.monitor.prometheus import Metrics

        metrics = Metrics(store)
        server = metrics.serve(metrics_port, metrics_address)
        host, port = server.server_address[:2]
        out.print(f"metrics: http://{host}:{port}/metrics")
    out.print(
        f"serving {len(monitors)} monitors: "
        + ", ".join(f"{m.name} ({m.schedule})" for m in monitors)
    )
    serve(
        monitors,
        store,
        report=lambda line: out.print(line),
        metrics=metrics,
        reload=lambda: load_config(config),  # a promotion moves models:/NAME@champion
    )


@app.command("status")
def monitor_status(
    name: Annotated[str | None, typer.Argument(help="One monitor (default: all).")] = None,
    last: Annotated[int, typer.Option("--last", min=1, help="How many windows per monitor.")] = 5,
) -> None:
    """Each monitor's latest windows and their statuses."""
    from keel.monitor import status
    from keel.store import ResultStore

    table = Table("monitor", "window", "status", "diagnosis", "alerts")
    for row in status(ResultStore(), name, windows=last):
        colour = {"alert": "bold red", "error": "red"}.get(row["status"], "")
        shown = f"[{colour}]{row['status']}[/]" if colour else row["status"]
        table.add_row(
            row["monitor"],
            row["window_start"],
            shown,
            row.get("diagnosis") or "",
            "; ".join(row["alerts"]),
        )
    out.print(table)


@app.command("report")
def monitor_report(
    name: Annotated[str, typer.Argument(help="The monitor.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="HTML file.")] = None,
) -> None:
    """One HTML page of a monitor's windows: statuses, diagnoses, metrics with bands, alerts."""
    from keel.report.monitor import write_monitor_report
    from keel.store import ResultStore

    path = write_monitor_report(ResultStore(), name, output or Path(f"keel-report-{name}.html"))
    out.print(f"report: {path}")
