"""``keel profile`` and ``keel drift``: profiles, and one comparison or a history of windows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from keel.cli._shared import (
    EXIT_FOUND,
    EXIT_OK,
    Columns,
    err,
    formatted,
    out,
    progress_bar,
    role_names,
    spinner,
)
from keel.errors import KeelError


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
        roles=role_names(id=id, timestamp=timestamp),
        kinds={c: "categorical" for c in categorical or []},
    )
    with progress_bar(source.num_rows, "profiling") as advance:
        result = Profile.build(source, schema, on_batch=advance)
    result.save(output)
    out.print(f"profiled {result.rows:,} rows × {len(result.columns)} columns → {output}")


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

    roles = role_names(
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

    with spinner("profiling and comparing"):
        report = run_drift(
            reference,
            current,
            exact=exact,
            method=method,
            rule=DefaultRule(alpha=alpha),
            roles=role_names(
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
        with spinner("recording a baseline of the reference"):
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
    with spinner("checking every window"):
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
    from keel.store import ResultStore

    results_store = ResultStore()
    written, unchanged = history.save(results_store, monitor, actor="keel drift")
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
    for column in report.most_changed_first():
        verdict = {
            "alert": "[bold red]drift[/]",
            "ok": "ok",
            "error": "[red]error[/]",
            "warn": "[yellow]warn[/]",
            "insufficient_data": "[yellow]no data[/]",
        }[column.status]
        effect = (
            f"{column.effect_method} {formatted(column.effect_size)}"
            if column.effect_method
            else ""
        )
        p_value = formatted(
            column.p_value_adjusted if column.p_value_adjusted is not None else column.p_value
        )
        role = {"prediction_drift": " (output)", "target_drift": " (target)"}.get(column.check, "")
        table.add_row(
            column.column + role,
            column.kind,
            column.method or "",
            formatted(column.statistic),
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
