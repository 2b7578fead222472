"""``keel baseline``: record and inspect baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from keel.cli._shared import EXIT_FOUND, Columns, err, out, progress_bar, role_names, spinner
from keel.errors import KeelError

app = typer.Typer(help="Record and inspect baselines.", no_args_is_help=True)


@app.command("create")
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
    prediction_time: Annotated[
        str | None, typer.Option(help="Leakage: the column of when rows are predicted.")
    ] = None,
    available: Annotated[
        list[str] | None,
        typer.Option(help="Leakage: FEATURE=COLUMN[+LAG], when a feature became available."),
    ] = None,
    entity: Annotated[
        str | None, typer.Option(help="Leakage: an entity column not to share with the holdout.")
    ] = None,
    leakage_probes: Annotated[
        bool, typer.Option(help="Leakage: also probe every feature alone (cross-validated).")
    ] = False,
    fail_on_leakage: Annotated[
        bool, typer.Option(help="Leakage at alert level: write no baseline, exit 1.")
    ] = False,
    embedding: Annotated[
        list[str] | None,
        typer.Option(help="An embedding column (lists of numbers); repeat it for more."),
    ] = None,
    text: Annotated[
        list[str] | None,
        typer.Option(help="A free-text column (descriptors and a fitted vectorizer); repeatable."),
    ] = None,
    image: Annotated[
        list[str] | None,
        typer.Option(help="An image column (.npy paths or encoded image bytes); repeatable."),
    ] = None,
) -> None:
    """Record a baseline of reference data: schema, profile, bins, sample, fingerprint.

    With --holdout (or --reference-is-holdout), also the model's holdout metrics, with
    their intervals: what a monitor's performance checks judge windows against.

    With --target, leakage is checked first (``keel leakage``): duplicates across the data
    and the holdout, ids and times that predict the label, and availability and entities
    when declared; findings are printed and kept in the baseline's notes.

    --embedding, --text and --image name unstructured columns: each is tested by one MMD
    test on its vectors, and texts and images gain derived numeric columns
    (``comment.length``, ``photo.brightness``, ...) checked like any other."""
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
    leakage = None
    if target is not None:
        leakage = _leakage(
            source,
            data,
            holdout if not reference_is_holdout else None,
            target,
            id=id,
            prediction_time=prediction_time,
            available=available,
            entity=entity,
            probes=leakage_probes,
            ignore=_model_outputs(source, prediction, score, classes) + list(ignore or []),
        )
        if fail_on_leakage and leakage is not None and leakage["alert"]:
            err.print("[red]leakage at alert level:[/] no baseline written", highlight=False)
            raise typer.Exit(EXIT_FOUND)
    with progress_bar(source.num_rows, "baseline") as advance:
        result = Baseline.from_data(
            source,
            target=target,
            prediction=prediction,
            score=score,  # multiclass: the prefix of one score column per class
            timestamp=timestamp,
            id=id,
            roles=role_names(ignore=ignore),
            sample_size=sample_size,
            kinds={c: "categorical" for c in categorical or []},
            start=start,
            end=end,
            on_batch=advance,
            holdout=holdout if task else None,
            reference_is_holdout=bool(task and reference_is_holdout and holdout is None),
            task=task,
            classes=classes,
            embeddings=embedding,
            texts=text,
            images=image,
        )
    metrics = result.metrics
    if leakage is not None:
        from keel.tracking import leakage_notes

        result.notes += leakage_notes(leakage)
        result.lineage["leakage"] = leakage
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


#: Above this many rows, ``baseline create`` leaves leakage to ``keel leakage`` (it reads
#: the rows into memory; the baseline itself streams).
LEAKAGE_MAX_ROWS = 2_000_000
LEAKAGE_MAX_BYTES = 256 * 2**20


def _leakage(source, data, holdout, target, **options):
    """The leakage findings (``keel.leakage/v1``) of the reference and its holdout, printed;
    None when there are too many rows to read into memory."""
    from keel.checks.leakage import check_leakage, parse_availability

    small_file = Path(data).is_file() and Path(data).stat().st_size <= LEAKAGE_MAX_BYTES
    if (source.num_rows is None and not small_file) or (source.num_rows or 0) > LEAKAGE_MAX_ROWS:
        err.print(
            f"[dim]note:[/] leakage not checked: over {LEAKAGE_MAX_ROWS:,} rows (or a large "
            "file of unknown length); run keel leakage",
            highlight=False,
        )
        return None
    available = dict(parse_availability(spec) for spec in options.pop("available") or [])
    identifier = options.pop("id")
    with spinner("checking for leakage"):
        report = check_leakage(
            source.read_all(),
            target=target,
            holdout=holdout,
            available=available,
            ids=[identifier] if identifier else None,
            **options,
        )
    for line in report.lines():
        color = "red" if line.startswith("alert") else "yellow"
        err.print(f"[{color}]leakage:[/] {line}", highlight=False)
    return report.to_dict()


def _model_outputs(source, prediction, score, classes) -> list[str]:
    """The model's own columns in the data (prediction, scores): never leakage suspects."""
    named = [prediction, score] + [f"{score}_{c}" for c in classes or []] if score else [prediction]
    return [c for c in named if c and c in source.schema.names]


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


@app.command("calibrate")
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
    with spinner(f"calibrating windows of {window}"):
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


@app.command("show")
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
