"""``keel demo``: the main job on generated data, start to finish, with nothing to set up.

The story: a loan-default model is trained on 26 weeks of applications;
keel records a baseline of its training data (with the model's holdout
metrics), calibrates weekly thresholds on the training weeks, then checks
every week of the production log, and says in plain words what changed and
when: a quiet month, a covariate shift, an upstream unit change, a null
spike, a new category, concept drift, and two weeks whose user-level 7-day
feature is served wrong (a truncated online window, then a stale value) that the
skew check finds row by row. A timeline report shows every check across weeks;
each week also gets a drift report.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from keel.calibration import Calibration
from keel.compare import drift
from keel.history import WindowResult, check_history
from keel.report import write_drift_report
from keel.report.timeline import write_timeline_report
from keel.scenario import (
    FEATURES,
    USER_FEATURE,
    USER_FEATURE_DEFINITION,
    generate,
    log_labels_of,
    log_weeks,
)

NUMERIC_FEATURES = ["age", "income", "amount", "tenure_months"]
CATEGORICAL_FEATURES = ["country", "device"]


def model_inputs(table: pa.Table) -> list[str]:
    """The model's inputs: the scenario's features, and the user-level one when present."""
    return [*FEATURES, *([USER_FEATURE] if USER_FEATURE in table.column_names else [])]


#: The latest training rows the model learns from (plenty for it), and the holdout after them.
FIT_ROWS, HOLDOUT_ROWS = 48_000, 12_000


def fit_champion(train: pa.Table, params: dict[str, Any]) -> Any:
    """The demo's training entrypoint (``keel.track`` records it; ``keel reproduce`` calls
    it): gradient boosting on the latest ``FIT_ROWS`` applications of ``train``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder
    from threadpoolctl import threadpool_limits

    inputs = model_inputs(train)
    rows = int(params.get("rows", FIT_ROWS))
    frame = train.slice(max(train.num_rows - rows, 0)).select([*inputs, "defaulted"]).to_pandas()
    model = make_pipeline(
        ColumnTransformer(
            [
                (
                    "categories",
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                    CATEGORICAL_FEATURES,
                )
            ],
            remainder="passthrough",
        ),
        HistGradientBoostingClassifier(
            max_iter=int(params.get("max_iter", 100)), random_state=int(params.get("seed", 0))
        ),
    )
    # The user's own training, not keel's monitoring: it may use every core.
    with threadpool_limits(limits=os.cpu_count() or 1):
        model.fit(frame[inputs], frame["defaulted"])
    return model


def track_champion(output: Path, training: pa.Table, seed: int, store: Any) -> Any:
    """Train the model through ``keel.track`` and make it the champion: the training rows
    and the holdout (the latest ``HOLDOUT_ROWS``) as files, so that the run can be
    reproduced; returns the ``TrainingRun`` (its ``version``, ``baseline``, ``record``).
    Run in the demo's folder: keel's default store and registry live there."""
    import warnings

    from keel.registry import open_registry
    from keel.registry.aliases import promote
    from keel.tracking import track

    columns = [*model_inputs(training), "defaulted", "event_time", "application_id"]
    rows = training.select(columns)
    cut = rows.num_rows - HOLDOUT_ROWS
    pq.write_table(rows.slice(0, cut), output / "train.parquet")
    pq.write_table(rows.slice(cut), output / "holdout.parquet")
    registry = open_registry(store=store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keel's own checkout may be dirty: recorded anyway
        with track(
            "loans",
            train=output / "train.parquet",
            holdout=output / "holdout.parquet",
            params={"seed": seed, "max_iter": 100, "rows": FIT_ROWS},
            target="defaulted",
            timestamp="event_time",
            id="application_id",
            entrypoint="keel.demo:fit_champion",
            registry=registry,
            store=store,
        ) as run:
            model = fit_champion(run.train, run.params)
            holdout = run.holdout.select(model_inputs(run.holdout)).to_pandas()
            declined = model.predict_proba(holdout)[:, 1] >= 0.5
            worth = value_per_1000(run.holdout["defaulted"].to_numpy(), declined)
            run.log_model(model, metrics={"value_per_1000": worth})
    promote(registry, store, "loans", run.version.version, "champion", "first model", "keel demo")
    run.model = model
    return run


#: What each outcome is worth to the lender, in euros: a declined defaulter costs nothing,
#: a declined good customer loses the margin, an approved defaulter loses the loan's value.
VALUE_MATRIX = {"tp": 0.0, "fp": -400.0, "fn": -3000.0, "tn": 400.0}


def value_per_1000(defaulted: np.ndarray, declined: np.ndarray) -> float:
    from keel.checks.kpis import outcome_values

    return float(outcome_values(defaulted == 1, declined, VALUE_MATRIX).mean() * 1000)


def score(model: Any, table: pa.Table) -> pa.Table:
    """The table with the model's ``score`` (probability of default) and ``prediction``."""
    probabilities = model.predict_proba(table.select(model_inputs(table)).to_pandas())[:, 1]
    table = table.append_column("score", pa.array(probabilities))
    return table.append_column("prediction", pa.array((probabilities >= 0.5).astype(np.int8)))


def run_demo(output: Path, seed: int = 7, console: Console | None = None) -> bool:
    """Run the demo into ``output``; True when every planted change was found in its week."""
    console = console or Console()
    started = time.perf_counter()
    output = Path(output).resolve()
    for folder in (output, output / "production", output / "reports", output / ".keel"):
        folder.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(output):  # keel's default store and registry: the demo's own
        return _run_demo(output, seed, console, started)


def _run_demo(output: Path, seed: int, console: Console, started: float) -> bool:
    from keel.store import ResultStore

    scenario = generate(seed=seed, production_weeks=16, user_features=True)
    served_as_of = USER_FEATURE + "__as_of"  # when the served value was computed: the log's
    store = ResultStore(f"sqlite:///{output / '.keel' / 'keel.db'}")
    run = track_champion(output, scenario.training, seed, store)
    model, metrics = run.model, run.record["holdout"]["metrics"]
    training = score(model, scenario.training).drop_columns([served_as_of])
    pq.write_table(training, output / "training.parquet")
    # The applications as the feature pipeline saw them: the user-level feature's events.
    pq.write_table(scenario.user_events, output / "applications.parquet")
    # The prediction log: what the model saw and said; labels arrive later (not here yet).
    production = score(model, scenario.production()).drop_columns(["defaulted", served_as_of])
    pq.write_table(production, output / "production.parquet")
    for number, week in enumerate(scenario.weeks, start=1):
        pq.write_table(
            score(model, week).drop_columns(["defaulted", served_as_of]),
            output / "production" / f"week_{number}.parquet",
        )
    console.print(
        f"[bold]keel demo[/]: a loan-default model (gradient boosting, holdout ROC AUC "
        f"{metrics['roc_auc']:.3f}) trained on {training.num_rows:,} applications over 26 weeks"
        f", recorded by keel.track as {run.version.ref} ({run.registry.kind} registry) and "
        f"made champion; then {len(scenario.weeks)} production weeks → {output}/"
    )
    # The baseline keel.track built and attached to the version: the training rows with the
    # model's scores (the drift reference), the holdout's metrics and its estimator.
    baseline = run.baseline
    baseline.save(output / "baseline.keel")
    # Weekly checks: one false alert in a thousand weeks is a rate people can live with.
    calibration = Calibration.fit(
        baseline, output / "training.parquet", "7D", false_alarm_rate=0.001
    )
    calibration.save(output / "baseline.calibration-7D.json")
    console.print(
        f"baseline {baseline.id}: features {', '.join(c.name for c in baseline.schema.features)};"
        f" thresholds calibrated on {calibration.reference_windows} training weeks for at most "
        f"1 false drift alert in {round(1 / calibration.false_alarm_rate)} weeks"
    )
    history = check_history(
        baseline,
        output / "production.parquet",
        "7D",
        calibration=calibration,
        false_alarm_rate=0.001,
    )
    found_all = True
    for number, window in enumerate(history.windows, start=1):
        sentence, columns = describe_window(window)
        console.print(f"  week {number} ({window.start[:10]}): {sentence}")
        change = scenario.changes.get(number, {})
        planted = set(change.get("columns", [])) if change.get("drift_visible", True) else set()
        found_all &= columns == planted
    run_the_loop(output, scenario, [score(model, week) for week in scenario.weeks], console)
    write_timeline_report(history, output / "reports" / "timeline.html")
    (output / "history.json").write_text(json.dumps(history.to_dict(), indent=2, default=str))
    for number in range(1, len(scenario.weeks) + 1):
        report = drift(baseline, output / "production" / f"week_{number}.parquet")
        write_drift_report(report, output / "reports" / f"week_{number}.html")
    elapsed = time.perf_counter() - started
    console.print(
        f"reports: {output}/reports/timeline.html (every week, every check) and "
        f"week_1.html … week_{len(scenario.weeks)}.html. Done in {elapsed:.1f} s."
    )
    console.print(
        f"Try: [bold]keel drift {output}/baseline.keel {output}/production.parquet --window 7D "
        f"--calibrate-on {output}/training.parquet[/], or [bold]cd {output} && keel monitor "
        f"status[/]"
    )
    console.print(
        f"See it all in the dashboard: [bold]cd {output} && keel ui[/] (then "
        "http://127.0.0.1:8765/; read-only until you log in with a token from keel tokens add)"
    )
    return found_all


DEMO_SECRET_ENV = "KEEL_DEMO_WEBHOOK_SECRET"


def run_the_loop(output: Path, scenario: Any, weeks: list[pa.Table], console: Console) -> None:
    """The same weeks the unattended way: each week's predictions logged as they happen, the
    monitor run once the week has closed, and its alerts sent to a local webhook receiver
    (started and stopped here), which prints each notice as it arrives."""
    import os
    import secrets
    from datetime import timedelta

    from rich.table import Table

    from keel.alerts.delivery import deliver
    from keel.alerts.receiver import WebhookReceiver
    from keel.monitor.config import load_config
    from keel.monitor.run import run_monitor, status
    from keel.monitor.stream import run_stream
    from keel.store import ResultStore

    logs = output / "logs"
    calibration_path = output / "baseline.calibration-7D.json"
    # The receiver and keel share a signing key through the environment, as in production.
    secret = os.environ.setdefault(DEMO_SECRET_ENV, secrets.token_hex(16))
    # The default store of a keel command run in the demo's folder: `keel monitor status` there.
    (output / ".keel").mkdir(exist_ok=True)
    store = ResultStore(f"sqlite:///{output / '.keel' / 'keel.db'}")
    console.print(
        "[bold]the unattended loop[/]: each week logged as it happens, the monitor run when "
        "the week closes, alerts signed and sent to a local webhook:"
    )
    with WebhookReceiver(secret=secret.encode()) as receiver:
        (output / "keel.yaml").write_text(
            f"features:\n  - {json.dumps(USER_FEATURE_DEFINITION)}\n"
            "channels:\n"
            f"  - name: team\n    type: webhook\n    url: {receiver.url}\n"
            f"    secret_env: {DEMO_SECRET_ENV}\n"
            "monitors:\n  - name: loans\n    model: loans\n"
            "    baseline: models:/loans@champion\n"  # the champion's own, from the registry
            f"    logs: {logs}\n"
            f"    window: 7D\n    allowed_lateness: 1D\n    false_alarm_rate: 0.001\n"
            f"    calibration: {calibration_path}\n"
            "    alerts:\n"
            "      - {name: inputs-drifted, check: feature_drift, severity: warning, "
            "channels: [team]}\n"
            "      - {name: outputs-drifted, check: prediction_drift, severity: warning, "
            "channels: [team]}\n"
            "      - {name: data-quality, check: quality, severity: critical, channels: [team]}\n"
            "      - {name: joint-drift, check: multivariate, severity: warning, "
            "channels: [team]}\n"
            "      - {name: estimated-performance, check: estimated_performance, "
            "severity: warning, channels: [team]}\n"
            "      - {name: realized-performance, check: performance, severity: critical, "
            "channels: [team]}\n"
            "      - {name: money, check: kpi, metric: value_per_1000, severity: critical, "
            "channels: [team]}\n"
            "      - {name: served-features, check: skew, severity: critical, channels: [team]}\n"
            "      - {name: outputs-streamed, check: stream, column: score, severity: warning, "
            "channels: [team]}\n"
            "    stream:\n"  # the score, record by record, between the weekly windows
            "      streams: [score]\n      false_alarm_every: 120D\n      lateness: 0s\n"
            f"      state: {output / 'stream' / 'loans.json'}\n"
            "    skew:\n"
            f"      features: [{USER_FEATURE}]\n"
            f"      events: {output / 'applications.parquet'}\n"
            "      entity_keys: [user_id]\n"
            "      ttl: 1D\n"
            "    performance:\n"
            "      task: binary\n      label: defaulted\n"
            "      metrics: [roc_auc, accuracy]\n      min_labelled_share: 0.9\n"
            f"      value_matrix: {json.dumps(VALUE_MATRIX)}\n"
        )
        monitor = load_config(output / "keel.yaml")[0]
        shown = 0
        # Labels come late: 30% of a week's outcomes a week after it (the riskiest
        # applications are followed up first, a biased subset), the rest three weeks after.
        steps = len(weeks) + 3
        (output / "stream" / "loans.json").unlink(missing_ok=True)  # the loop starts afresh
        for number in range(1, steps + 1):
            if number <= len(weeks):
                log_weeks(logs, [weeks[number - 1]])
                for day in range(1, 8):  # the detectors read the log's tail: daily here
                    moment = scenario.week_start(number) + timedelta(days=day)
                    if run_stream(monitor, store, now=moment).alerts:
                        deliver(store, monitor.channels)
                        for notice in receiver.notices[shown:]:
                            line = _describe_notice(number, notice, day)
                            console.print("  " + line, markup=False)
                        shown = len(receiver.notices)
            closed = scenario.week_start(number + 1) + timedelta(days=1, hours=1)
            _log_labels(logs, weeks, number, closed)
            run_monitor(monitor, store, now=closed)
            deliver(store, monitor.channels)
            arrived = sorted(  # delivered in parallel: shown in a stable order
                receiver.notices[shown:],
                key=lambda n: (n["payload"]["state"] != "firing", n["payload"]["rule"]),
            )
            if number > len(weeks) and arrived:
                console.print(f"  (week {number}: no new predictions; labels still arriving)")
            for notice in arrived:
                console.print("  " + _describe_notice(number, notice), markup=False)
            shown = len(receiver.notices)
    _tell_estimation(store, console)
    _tell_skew(store, console)
    table = Table(
        "window",
        "status",
        "diagnosis",
        "alerts",
        title=f"keel monitor status ({len(weeks)} weekly windows from the prediction log)",
    )
    for row in status(store, "loans", windows=20):
        table.add_row(
            row["window_start"][:10],
            row["status"],
            row.get("diagnosis") or "",
            "; ".join(row["alerts"][:3]),
        )
    console.print(table)
    _tell_lineage(store, console)


def _tell_lineage(store: Any, console: Console) -> None:
    """The auditors' question, answered: ``keel lineage loans@champion``."""
    from keel.lineage import describe, lineage
    from keel.registry import open_registry

    console.print("[bold]what trained the champion?[/] keel lineage loans@champion:")
    for line in describe(lineage(open_registry(store=store), store, "loans@champion")):
        console.print("  " + line, markup=False, highlight=False)


def _tell_estimation(store: Any, console: Console) -> None:
    """Estimated against realized accuracy and money, week by week: the early warning (from
    the scores, the day a week closes) and the blind spot (concept drift)."""
    latest = store.latest(monitor="loans")
    wanted = latest["metric"].isin(["accuracy", "value_per_1000"])
    rows = latest[wanted & latest["check"].isin(["estimated_performance", "performance", "kpi"])]
    if rows.empty or not (rows["check"] == "estimated_performance").any():
        return
    rows = rows.assign(side=np.where(rows["check"] == "estimated_performance", "est", "real"))
    table = rows.pivot_table(
        index="window_start", columns=["side", "metric"], values="value", aggfunc="first"
    )
    flags = {
        start: details.get("reason")
        for start, details, metric in zip(
            rows["window_start"], rows["details"], rows["metric"], strict=True
        )
        if metric == "accuracy" and isinstance(details, dict) and details.get("reliable") is False
    }
    console.print(
        "Estimated (from the scores, the day each week closed) against realized (once its "
        "labels came): accuracy, and euros per 1,000 decisions"
    )
    for number, (start, row) in enumerate(table.iterrows(), start=1):
        flag = f"  (unreliable: {flags[start]})" if start in flags else ""
        console.print(
            f"  {start[:10]} (week {number:>2}): estimated {row[('est', 'accuracy')]:.3f} "
            f"/ {row[('est', 'value_per_1000')]:>9,.0f} €, realized "
            f"{row[('real', 'accuracy')]:.3f} / {row[('real', 'value_per_1000')]:>9,.0f} €{flag}"
        )
    console.print(
        "The covariate shift (weeks 5-6) shows in the estimate the day each week closes, weeks "
        "before its labels; the estimate is flagged unreliable where the inputs leave the "
        "holdout's support (the unit change); and it cannot see concept drift (weeks 13-14): "
        "the same inputs with a new relationship to the label leave it flat while the realized "
        "values fall. Only labels reveal that."
    )


def _tell_skew(store: Any, console: Console) -> None:
    """What the skew check found, week by week: served against recomputed, row by row."""
    latest = store.latest(monitor="loans", check="skew")
    alerts = latest[(latest["status"] == "alert") & (latest["metric"] == "mismatch_share")]
    stale = latest[latest["metric"] == "stale_share"].set_index("window_start")["value"]
    if alerts.empty:
        return
    console.print(
        f"The skew check recomputed every served {USER_FEATURE} at its request's time from "
        "the applications (keel.features: event time and availability):"
    )
    for _, row in alerts.sort_values("window_start").iterrows():
        details = row["details"] if isinstance(row["details"], dict) else {}
        console.print(
            f"  {row['window_start'][:10]}: {row['value']:.0%} of served values differ, "
            f"{stale.get(row['window_start'], 0.0):.0%} stale: {details.get('finding', '')}",
            markup=False,
        )
    console.print(
        "Drift saw only the truncated window (its values fell) and would have called it a "
        "covariate shift; a stale value is distributed like a fresh one, so no drift check "
        "can see it. Both are training–serving skew, and the diagnosis says so."
    )


def _log_labels(logs: Path, weeks: list[pa.Table], now: int, closed: Any) -> None:
    """The labels known by the end of week ``now``: early ones of the last week, the rest of
    the week three weeks back."""
    import pyarrow.compute as pc

    arriving = []
    if 1 <= now - 1 <= len(weeks):
        week = weeks[now - 2]
        order = pc.sort_indices(week, [("score", "descending")])
        arriving.append(week.take(order).slice(0, int(0.3 * week.num_rows)))
    if 1 <= now - 3 <= len(weeks):
        week = weeks[now - 4]
        order = pc.sort_indices(week, [("score", "descending")])
        arriving.append(week.take(order).slice(int(0.3 * week.num_rows)))
    for rows in arriving:
        log_labels_of(logs, rows, closed)


def _describe_notice(week: int, notice: dict, day: int | None = None) -> str:
    payload = notice["payload"]
    diagnosis = (payload.get("diagnosis") or {}).get("summary", "")
    signed = "signature verified" if notice["verified"] else "SIGNATURE MISMATCH"
    when = f" day {day}" if day is not None else ""  # a stream alert, read between windows
    return (
        f"week {week:>2}{when} ⇢ webhook [{payload['state'].upper()}] {payload['rule']} "
        f"({payload['severity']}): {payload['summary']}\n"
        f"           diagnosis: {diagnosis} ({signed})"
    )


def describe_window(window: WindowResult) -> tuple[str, set[str]]:
    """One sentence for a window, and the columns it names as changed."""
    alerts = [r for r in window.quality if r.status == "alert"]
    parts, explained = [], set()
    for result in alerts:
        column = result.column
        if result.metric == "unit_change":
            factor = result.details.get("likely_factor", result.value)
            parts.append(
                f"upstream unit change in {column} — values {factor:,.0f}× the reference"
                if factor >= 1
                else f"upstream unit change in {column} — values 1/{1 / factor:,.0f} of the "
                f"reference"
            )
        elif result.metric == "missing_share":
            parts.append(
                f"null spike in {column}: {result.value:.0%} missing "
                f"(reference {result.details['reference_share']:.0%})"
            )
        elif result.metric == "unseen_share":
            values = ", ".join(result.details["new_values"][:3])
            parts.append(f"new category in {column}: {values} ({result.value:.0%} of rows)")
        elif result.metric == "volume":
            parts.append(
                f"volume: {result.value:,.0f} rows, expected about "
                f"{result.details['expected_rows']:,.0f}"
            )
        else:
            continue
        explained.add(column)
    for result in alerts:  # what is left once unit changes and the like are named
        if result.check == "multivariate" or result.column in window.drift.dataset.get(
            "prediction_drift", []
        ):
            continue
        if result.column not in explained and result.metric not in ("volume",):
            parts.append(f"{result.metric.replace('_', ' ')} in {result.column}")
            explained.add(result.column)
    shifted = [c for c in window.drift.dataset["drifted_columns"] if c not in explained]
    if shifted:
        parts.insert(0, f"covariate shift in {', '.join(shifted)}")
    columns = explained | set(shifted)
    multivariate = {
        r.metric: r for r in window.quality if r.check == "multivariate" and r.status == "alert"
    }
    if multivariate and not columns:  # only the multivariate checks saw it
        broken = multivariate.get("reconstruction_error") or next(iter(multivariate.values()))
        involved = sorted(broken.details.get("top_columns", [])[:2])  # a pair, not a ranking
        parts.append(
            f"broken correlation between {' and '.join(involved)}: no single column "
            f"moved, {broken.metric.replace('_', ' ')} {broken.value:.3g} "
            f"(threshold {broken.threshold:.3g})"
        )
        columns = set(involved)
    outputs = window.drift.dataset["prediction_drift"]
    if outputs and parts:
        parts.append(f"model outputs moved ({', '.join(outputs)})")
    elif outputs:
        parts.append(f"model outputs moved ({', '.join(outputs)}) with inputs stable")
    return ("; ".join(parts) if parts else "quiet"), columns
