"""The ``keel`` command line.

Exit codes: 0 ran and found nothing, 1 found something alerting, 2 could not run.
"""

from __future__ import annotations

import json
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from keel.errors import KeelError

app = typer.Typer(
    help="keel keeps machine-learning models healthy in production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
baseline_app = typer.Typer(help="Record and inspect baselines.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")
ingest_app = typer.Typer(help="Take prediction and label logs in.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
monitor_app = typer.Typer(help="Run the monitors declared in keel.yaml.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
alerts_app = typer.Typer(help="What is firing, silences, deliveries.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
ConfigPath = Annotated[Path, typer.Option("--config", help="The monitors' configuration.")]


@monitor_app.command("run")
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
    from keel.store import MonitorBusy, ResultStore

    moment = _moment("--now", now) if now is not None else None
    store, alerting = ResultStore(), False
    chosen = _monitors(load_config(config), name)
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


def _moment(option: str, text: str):
    """An ISO 8601 time from the command line, UTC unless it says otherwise."""
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except ValueError as error:
        raise KeelError(f"{option} {text!r} is not a date or time (ISO 8601)") from error
    if stamp is pd.NaT:
        raise KeelError(f"{option} {text!r} is not a date or time (ISO 8601)")
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


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


@monitor_app.command("backfill")
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

    start = _moment("--since", since)
    moment = _moment("--now", now) if now is not None else None
    store = ResultStore()
    chosen = _monitors(load_config(config), name)
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


@monitor_app.command("serve")
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
    serve(monitors, store, report=lambda line: out.print(line), metrics=metrics)


@monitor_app.command("status")
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


@monitor_app.command("report")
def monitor_report(
    name: Annotated[str, typer.Argument(help="The monitor.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="HTML file.")] = None,
) -> None:
    """One HTML page of a monitor's windows: statuses, diagnoses, metrics with bands, alerts."""
    from keel.report.monitor import write_monitor_report
    from keel.store import ResultStore

    path = write_monitor_report(ResultStore(), name, output or Path(f"keel-report-{name}.html"))
    out.print(f"report: {path}")


@alerts_app.command("list")
def alerts_list(
    monitor: Annotated[str | None, typer.Option(help="One monitor (default: all).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
) -> None:
    """What is pending or firing, since when, and why; then notices a channel refused."""
    from keel.alerts.delivery import queue
    from keel.alerts.engine import active
    from keel.store import ResultStore

    store = ResultStore()
    shown = active(store, monitor, everything)
    table = Table("state", "severity", "monitor", "rule", "version", "since", "why")
    for row in shown.itertuples(index=False):
        table.add_row(
            row.state,
            row.severity,
            row.monitor,
            row.rule,
            row.model_version or "-",
            row.first_window[:10],
            row.summary or "",
        )
    out.print(table if len(shown) else "no alert pending or firing")
    stuck = queue(store)
    stuck = stuck[stuck["last_error"].notna() & (stuck["status"] != "sent")]
    for row in stuck.itertuples(index=False):
        out.print(
            f"notice to {row.channel} {row.status} after {row.attempts} attempts: {row.last_error}"
        )
    raise typer.Exit(EXIT_FOUND if (shown["state"] == "firing").any() else EXIT_OK)


@alerts_app.command("silence")
def alerts_silence(
    monitor: Annotated[str, typer.Argument(help="The monitor (* for every one).")],
    rule: Annotated[str, typer.Option(help="One rule (default: every rule).")] = "*",
    hours: Annotated[float, typer.Option("--hours", help="How long it lasts.")] = 2.0,
    reason: Annotated[str | None, typer.Option(help="Why, for the event log.")] = None,
) -> None:
    """Stop notifications of a monitor's rule for a while (states still move)."""
    import getpass

    from keel.alerts.engine import silence
    from keel.store import ResultStore

    number = silence(ResultStore(), monitor, rule, hours, reason, created_by=getpass.getuser())
    out.print(f"silence {number}: {monitor}/{rule} for {hours:g} h")


def _monitors(monitors, name):
    chosen = [m for m in monitors if name is None or m.name == name]
    if not chosen:
        raise KeelError(f"no monitor named {name!r} (known: {[m.name for m in monitors]})")
    return chosen


# Off a terminal (pipes, CI logs) rich would wrap at 80 columns; tables need more.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_FOUND, EXIT_ERROR = 0, 1, 2

Columns = Annotated[list[str] | None, typer.Option(help="Column name (repeatable).")]


def _roles(**named: str | list[str] | None) -> dict[str, str]:
    roles: dict[str, str] = {}
    for role, columns in named.items():
        for column in [columns] if isinstance(columns, str) else columns or []:
            roles[column] = "ignored" if role == "ignore" else role
    return roles


@contextmanager
def _progress(total: int | None, label: str):
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
def _spinner(label: str):
    """A spinner on stderr while work runs in several processes (only on a terminal)."""
    if not err.is_terminal:
        yield
        return
    with err.status(label):
        yield


@app.command()
def profile(
    data: Annotated[str, typer.Argument(help="Parquet or CSV file, or a folder of Parquet files.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Profile file to write.")],
    id: Columns = None,  # noqa: A002
    timestamp: Columns = None,
    categorical: Columns = None,
) -> None:
    """Profile DATA in one streaming pass and write a mergeable profile file."""
    from keel.data import open_source
    from keel.profile import Profile
    from keel.schema import Schema

    source = open_source(data)
    schema = Schema.infer(
        source,
        roles=_roles(id=id, timestamp=timestamp),
        kinds={c: "categorical" for c in categorical or []},
    )
    with _progress(source.num_rows, "profiling") as advance:
        result = Profile.build(source, schema, on_batch=advance)
    result.save(output)
    out.print(f"profiled {result.rows:,} rows × {len(result.columns)} columns → {output}")


@baseline_app.command("create")
def baseline_create(
    data: Annotated[str, typer.Argument(help="Reference data: Parquet, CSV or a folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Baseline file to write.")],
    target: Annotated[str | None, typer.Option(help="Target (label) column.")] = None,
    prediction: Annotated[str | None, typer.Option(help="Prediction column.")] = None,
    score: Annotated[
        list[str] | None,
        typer.Option(
            help="Score (probability) column; repeat it for per-class scores (score_a, "
            "score_b, ...), or give their prefix with --classes."
        ),
    ] = None,
    timestamp: Annotated[str | None, typer.Option(help="Event-time column.")] = None,
    id: Annotated[str | None, typer.Option(help="Row or entity id column.")] = None,  # noqa: A002
    ignore: Columns = None,
    categorical: Columns = None,
    sample_size: Annotated[int, typer.Option(help="Rows kept in the reference sample.")] = 10_000,
    start: Annotated[
        str | None, typer.Option("--from", help="Keep rows at or after this time (ISO 8601).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Keep rows before this time (ISO 8601).")
    ] = None,
    holdout: Annotated[
        str | None,
        typer.Option(help="Rows the model did not learn from: its holdout metrics come from here."),
    ] = None,
    reference_is_holdout: Annotated[
        bool,
        typer.Option(help="The reference's labelled rows are out of sample: metrics from them."),
    ] = False,
    task: Annotated[
        str | None, typer.Option(help="binary, multiclass or regression (with the holdout).")
    ] = None,
    classes: Columns = None,
) -> None:
    """Record a baseline of reference data: schema, profile, bins, sample, fingerprint.

    With --holdout (or --reference-is-holdout), also the model's holdout metrics, with
    their intervals: what a monitor's performance checks judge windows against."""
    from keel.baseline import Baseline
    from keel.data import open_source

    score, classes = _per_class_scores(score, classes)
    task, why_none = _holdout_task(
        holdout if holdout is not None else (data if reference_is_holdout else None),
        task,
        target,
        score,
        prediction,
        classes,
    )
    source = open_source(data)
    with _progress(source.num_rows, "baseline") as advance:
        result = Baseline.from_data(
            source,
            target=target,
            prediction=prediction,
            score=score,  # multiclass: the prefix of one score column per class
            timestamp=timestamp,
            id=id,
            roles=_roles(ignore=ignore),
            sample_size=sample_size,
            kinds={c: "categorical" for c in categorical or []},
            start=start,
            end=end,
            on_batch=advance,
            holdout=holdout if task else None,
            reference_is_holdout=bool(task and reference_is_holdout and holdout is None),
            task=task,
            classes=classes,
        )
    metrics = result.metrics
    result.save(output)
    roles = ", ".join(f"{c.name}={c.role}" for c in result.schema.columns if c.role != "feature")
    out.print(
        f"baseline {result.id}: {result.rows:,} rows, {len(result.schema.features)} "
        f"features{'; ' + roles if roles else ''} → {output}"
    )
    if metrics:
        shown = [k for k in metrics if not k.endswith(("_lower", "_upper")) and k != "holdout_rows"]
        out.print(
            f"holdout metrics on {int(metrics['holdout_rows']):,} rows: "
            + ", ".join(f"{k} {metrics[k]:.4g}" for k in shown)
        )
    elif why_none:
        err.print(f"[yellow]no holdout metrics recorded:[/] {why_none}", highlight=False)


def _per_class_scores(scores: list[str] | None, classes: list | None):
    """(the score column or prefix, the classes): repeated ``--score score_a --score score_b``
    means the prefix ``score`` and the classes a, b."""
    import os

    if not scores or len(scores) == 1:
        return (scores[0] if scores else None), classes
    prefix = os.path.commonprefix(scores)
    prefix = prefix[: prefix.rfind("_")] if "_" in prefix else ""
    found = [name[len(prefix) + 1 :] for name in scores]
    if not prefix or not all(found):
        raise KeelError(
            f"--score {' --score '.join(scores)}: per-class scores are named <prefix>_<class> "
            "(score_a, score_b)"
        )
    if classes and [str(c) for c in classes] != found:
        raise KeelError(f"--classes {classes} do not match the --score columns' classes {found}")
    return prefix, classes or found


def _holdout_task(holdout, task, target, score, prediction, classes):
    """(the holdout's task, or None with the reason no holdout metrics are recorded) for
    ``baseline create``; the baseline computes them and fits its estimator there."""
    if target is None:
        return None, None  # no label: nothing to measure, nothing to say
    if holdout is None:
        return None, (
            "performance checks cannot alert without them; give --holdout FILE (rows the "
            "model did not learn from) or --reference-is-holdout"
        )
    if task is None:
        task = "regression" if score is None and prediction is not None else "binary"
        task = "multiclass" if classes else task
    if task not in ("binary", "multiclass", "regression"):
        raise KeelError(f"--task {task!r}: one of binary, multiclass, regression")
    return task, None


@baseline_app.command("calibrate")
def baseline_calibrate(
    baseline_path: Annotated[Path, typer.Argument(help="Baseline file.")],
    data: Annotated[str, typer.Argument(help="Its reference data, with event times.")],
    window: Annotated[str, typer.Option(help="The monitor's window (1h, 1D, 7D).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Calibration file to write.")
    ] = None,
    false_alarm_rate: Annotated[
        float, typer.Option(help="Share of quiet windows allowed to alert.")
    ] = 0.01,
    timestamp: Annotated[str | None, typer.Option(help="Event-time column.")] = None,
) -> None:
    """Fit thresholds for a monitor's windows on the baseline's reference data."""
    from keel.baseline import Baseline
    from keel.calibration import Calibration
    from keel.store import ResultStore

    baseline = Baseline.load(baseline_path)
    output = output or baseline_path.with_name(f"{baseline_path.stem}.calibration-{window}.json")
    with _spinner(f"calibrating windows of {window}"):
        calibration = Calibration.fit(
            baseline, data, window, timestamp=timestamp, false_alarm_rate=false_alarm_rate
        )
    calibration.save(output)
    ResultStore().register_calibration(calibration, output)
    how = (
        f"fallback ({calibration.fallback})"
        if calibration.fallback
        else f"{len(calibration.thresholds)} columns"
    )
    out.print(
        f"calibrated {calibration.reference_windows} reference windows of {window} at a false "
        f"alarm rate of {false_alarm_rate:g}: {how} → {output}"
    )


@baseline_app.command("show")
def baseline_show(path: Annotated[Path, typer.Argument(help="Baseline file.")]) -> None:
    """Print a baseline's id, size and columns."""
    from keel.baseline import Baseline

    summary = Baseline.load(path).summary()
    out.print(
        f"baseline {summary['id']}: {summary['rows']:,} rows from {summary['source']} "
        f"({summary['created_at']})"
    )
    table = Table("column", "kind", "role")
    for column in summary["columns"]:
        table.add_row(column["column"], column["kind"], column["role"])
    out.print(table)


IdColumn = Annotated[str, typer.Option("--id", help="The column holding the request id.")]
TimeColumn = Annotated[str, typer.Option("--time", help="The column holding the event time.")]


@ingest_app.command("predictions")
def ingest_predictions(
    data: Annotated[str, typer.Argument(help="Parquet or CSV file, or a folder, of predictions.")],
    model: Annotated[str, typer.Option(help="The model the predictions came from.")],
    root: Annotated[Path | None, typer.Option(help="Log folder (default .keel/logs).")] = None,
    id_column: IdColumn = "request_id",
    time_column: TimeColumn = "event_time",
) -> None:
    """Append prediction records (request_id, event_time, …) to the model's log."""
    _ingest(data, "predictions", model, root, {id_column: "request_id", time_column: "event_time"})


@ingest_app.command("labels")
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


@app.command()
def drift(
    reference: Annotated[str, typer.Argument(help="Baseline or profile file, or reference data.")],
    current: Annotated[str, typer.Argument(help="Current data: Parquet, CSV or a folder.")],
    html_path: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the result as JSON.")
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="Decide every column with this method.")
    ] = None,
    exact: Annotated[
        bool, typer.Option(help="Compare raw values in memory (agrees with scipy).")
    ] = False,
    id: Columns = None,  # noqa: A002
    timestamp: Columns = None,
    target: Columns = None,
    prediction: Columns = None,
    score: Columns = None,
    ignore: Columns = None,
    alpha: Annotated[float, typer.Option(help="False discovery rate across columns.")] = 0.05,
    window: Annotated[
        str | None,
        typer.Option(help="Check CURRENT window by window: a period (1h, 1D, 7D) or a row count."),
    ] = None,
    false_alarm_rate: Annotated[
        float, typer.Option(help="With --window: the share of windows allowed a false alert.")
    ] = 0.01,
    calibrate_on: Annotated[
        str | None,
        typer.Option(help="With --window and a baseline: its reference data, to calibrate on."),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="With --window and a baseline: a calibration file (keel baseline calibrate)."
        ),
    ] = None,
    incomplete: Annotated[
        str, typer.Option(help="The last, incomplete window: keep, merge or drop.")
    ] = "keep",
    store: Annotated[
        bool,
        typer.Option(
            help="With --window: keep the results in the results store "
            "(KEEL_DATABASE_URL, or .keel/keel.db)."
        ),
    ] = False,
    monitor: Annotated[
        str, typer.Option(help="With --store: the monitor the results belong to.")
    ] = "adhoc",
) -> None:
    """Compare CURRENT with REFERENCE column by column. Exit 0: no drift; 1: drift; 2: error.

    With --window, every window of CURRENT is checked (drift, calibrated, and data
    quality) and the exit code is 1 when any window alerts.
    """
    from keel.compare import drift as run_drift
    from keel.stats.verdict import DefaultRule

    roles = _roles(
        id=id, timestamp=timestamp, target=target, prediction=prediction, score=score, ignore=ignore
    )
    if calibration is not None and (window is None or calibrate_on is not None):
        raise KeelError("--calibration goes with --window, and instead of --calibrate-on")
    if window is not None:
        history = _run_history(
            reference,
            current,
            window,
            roles,
            false_alarm_rate,
            calibrate_on,
            incomplete,
            DefaultRule(alpha=alpha),
            calibration,
        )
        if json_path is not None:
            from keel._files import write_atomically

            write_atomically(json_path, json.dumps(history.to_dict(), indent=2, default=str))
        if html_path is not None:
            from keel.report.timeline import write_timeline_report

            write_timeline_report(history, html_path)
        if store:
            _store_history(history, monitor)
        print_history(history)
        raise typer.Exit(EXIT_FOUND if history.alert else EXIT_OK)

    with _spinner("profiling and comparing"):
        report = run_drift(
            reference,
            current,
            exact=exact,
            method=method,
            rule=DefaultRule(alpha=alpha),
            roles=_roles(
                id=id,
                timestamp=timestamp,
                target=target,
                prediction=prediction,
                score=score,
                ignore=ignore,
            ),
        )
    if json_path is not None:
        from keel._files import write_atomically

        write_atomically(json_path, report.to_json())
    if html_path is not None:
        from keel.report import write_drift_report

        write_drift_report(report, html_path)
    print_drift(report)
    raise typer.Exit(EXIT_FOUND if report.alert else EXIT_OK)


def _run_history(
    reference, current, window, roles, rate, calibrate_on, incomplete, rule, calibration=None
):
    from keel.baseline import Baseline
    from keel.calibration import Calibration
    from keel.compare import load_reference
    from keel.history import check_history

    loaded = load_reference(reference)
    fitted = None
    if calibration is not None:
        if not isinstance(loaded, Baseline):
            raise KeelError(f"--calibration needs a baseline as REFERENCE, not {reference}")
        if not calibration.is_file():
            raise KeelError(f"--calibration {calibration}: no such file")
        fitted = Calibration.load(calibration)
        fitted.check_fits(loaded.id, _window_name(window))
    timestamp = next((column for column, role in roles.items() if role == "timestamp"), None)
    if isinstance(loaded, Baseline):
        baseline, calibration_data = loaded, calibrate_on
    else:
        with _spinner("recording a baseline of the reference"):
            named = {
                role: column
                for column, role in roles.items()
                if role in ("target", "prediction", "score", "timestamp", "id")
            }
            baseline = Baseline.from_data(
                reference,
                roles={c: r for c, r in roles.items() if r == "ignored"},
                sample_size=0,
                **named,
            )
        calibration_data = calibrate_on or reference
    with _spinner("checking every window"):
        return check_history(
            baseline,
            current,
            window,
            timestamp=timestamp,
            calibration=fitted,
            reference=None if fitted is not None else calibration_data,
            false_alarm_rate=rate,
            incomplete=incomplete,
            rule=rule,
        )


def _window_name(window: str) -> str:
    from keel.windows import WindowSpec

    return WindowSpec.parse(window).describe()


def _store_history(history, monitor: str) -> None:
    from dataclasses import replace

    from keel.store import ResultStore

    results_store = ResultStore()
    run = results_store.start_run(
        monitor, {"window": history.window, "baseline": history.baseline_id}
    )
    rows = [replace(r, monitor=monitor) for r in history.results()]
    written, unchanged = results_store.write(rows, run)
    results_store.finish_run(run, "alert" if history.alert else "ok")
    results_store.log_event(
        "keel drift",
        "stored results",
        monitor,
        {"written": written, "unchanged": unchanged, "run": run},
    )
    err.print(f"stored {written:,} results ({unchanged:,} unchanged) in {results_store.name}")


def print_history(history) -> None:
    """One line per window, then what changed, when."""
    table = Table("window", "rows", "drift", "quality alerts")
    for window in history.windows:
        alerts = [
            f"{r.column or 'table'}: {r.metric}" for r in window.quality if r.status == "alert"
        ]
        drift = ", ".join(
            window.drift.dataset["drifted_columns"]
            + [f"{c} (output)" for c in window.drift.dataset["prediction_drift"]]
            + [f"{c} (target)" for c in window.drift.dataset["target_drift"]]
        )
        marker = "[bold red]" if window.alert else ""
        table.add_row(f"{marker}{window.start}", f"{window.rows:,}", drift, "; ".join(alerts))
    out.print(table)
    calibration = history.calibration
    if calibration is None or calibration.fallback:
        reason = calibration.fallback if calibration else "no reference data to calibrate on"
        out.print(f"[yellow]not calibrated[/]: {reason}; the one-off rule decides drift")
    else:
        out.print(
            f"calibrated on {calibration.reference_windows} reference windows of "
            f"{calibration.window}: at most {calibration.false_alarm_rate:.0%} of windows "
            f"with a false drift alert"
        )
    summary = history.summary()
    if summary:
        out.print("[bold]what changed, when[/]")
        for line in summary:
            out.print(f"  {line}")
    else:
        out.print(f"no alert in {len(history.windows)} windows")


def print_drift(report) -> None:
    """A table of columns, most changed first, and the verdict in one sentence."""
    table = Table("column", "kind", "test", "statistic", "p (adj.)", "effect", "verdict")
    ordered = sorted(
        report.columns,
        key=lambda c: (not c.drift, c.status == "ok", -(_number(c.effect_size) or 0.0)),
    )
    for column in ordered:
        verdict = {
            "alert": "[bold red]drift[/]",
            "ok": "ok",
            "error": "[red]error[/]",
            "insufficient_data": "[yellow]no data[/]",
        }[column.status]
        effect = (
            f"{column.effect_method} {_fmt(column.effect_size)}" if column.effect_method else ""
        )
        p_value = _fmt(
            column.p_value_adjusted if column.p_value_adjusted is not None else column.p_value
        )
        role = {"prediction_drift": " (output)", "target_drift": " (target)"}.get(column.check, "")
        table.add_row(
            column.column + role,
            column.kind,
            column.method or "",
            _fmt(column.statistic),
            p_value,
            effect,
            verdict + (f" — {column.finding}" if column.finding else ""),
        )
    out.print(table)
    dataset = report.dataset
    if dataset["drift"]:
        out.print(
            f"[bold red]drift[/] in {len(dataset['drifted_columns'])} of "
            f"{dataset['columns_checked']} columns: {', '.join(dataset['drifted_columns'])}"
        )
    else:
        out.print(f"no drift in {dataset['columns_checked']} columns")
    if dataset["prediction_drift"]:
        out.print(f"[bold red]prediction drift[/]: {', '.join(dataset['prediction_drift'])}")
    if dataset["target_drift"]:
        out.print(f"[bold red]target drift[/]: {', '.join(dataset['target_drift'])}")
    for finding in dataset["findings"]:
        out.print(
            f"[{'red' if finding['level'] == 'alert' else 'yellow'}]{finding['level']}[/] "
            + (f"{finding['column']}: " if finding["column"] is not None else "")
            + finding["finding"]
        )
    out.print(f"[dim]rule: {dataset['rule']}[/]")


def _number(value) -> float | None:
    return value if isinstance(value, int | float) else None


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


@app.command()
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


# Command groups that live in their own modules (one module per group): each defines ``app``.
# One line per group; keep the list sorted.
# -- command groups --
app.command("lineage")(__import__("keel.cli.lineage", fromlist=["lineage"]).lineage)
app.add_typer(__import__("keel.cli.models", fromlist=["app"]).app, name="models")
app.command("reproduce")(__import__("keel.cli.reproduce", fromlist=["reproduce"]).reproduce)
app.add_typer(__import__("keel.cli.serve", fromlist=["app"]).app, name="serve")
app.add_typer(__import__("keel.cli.tokens", fromlist=["app"]).app, name="tokens")
app.command("train")(__import__("keel.cli.train", fromlist=["train"]).train)
# -- end of command groups --


def main() -> None:
    """Entry point: KeelError exits 2 with its message; anything unexpected too, with a log."""
    try:
        from keel.threads import limit_process

        limit_process()  # numeric pools on KEEL_THREADS threads (one): cores are shared
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else EXIT_OK)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except KeelError as error:
        err.print(f"[red]error:[/] {error}", highlight=False)
        sys.exit(EXIT_ERROR)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(EXIT_ERROR)
    except Exception as error:  # noqa: BLE001 - the last line of defence, never exit 1
        if _is_usage_error(error):
            # A mistyped command or option: Typer's parser (Click's, vendored by Typer ≥ 0.26)
            # explains it itself; it is a usage error, never a finding.
            error.show()
            sys.exit(EXIT_ERROR)
        sys.exit(_unexpected(error))


def _is_usage_error(error: Exception) -> bool:
    """True for the parser's own errors, whichever Click (installed or vendored) raised them."""
    return callable(getattr(error, "show", None)) and any(
        kind.__name__ == "ClickException" for kind in type(error).__mro__
    )


def _unexpected(error: Exception) -> int:
    """One line on stderr, the traceback in the per-user error log; exit code 2."""
    from keel.errorlog import write_error_log

    try:
        where = f"details in {write_error_log(traceback.format_exc())}"
    except OSError as log_error:
        where = f"no error log written: {log_error}"
    err.print(
        f"[red]error:[/] unexpected {type(error).__name__}: {error} ({where})", highlight=False
    )
    return EXIT_ERROR
