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
#: Production weeks logged as they happen, then weeks served through ``keel serve``.
WEEKS, SERVED_WEEKS = 16, 6
#: The person who approves the promotion, with her own token (``keel tokens add``).
APPROVER = "ada"


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


def train_model(training: pa.Table, seed: int = 0) -> tuple[Any, dict[str, float]]:
    """(model, holdout metrics) without ``keel.track``, for tests and benchmarks: the same
    gradient boosting on the first 80% of the latest 60,000 training rows, scored on the
    rest."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    latest = training.slice(max(training.num_rows - 60_000, 0))
    cut = int(latest.num_rows * 0.8)  # time-ordered: the holdout is the last weeks
    model = fit_champion(latest.slice(0, cut), {"seed": seed, "rows": cut})
    holdout = latest.slice(cut)
    scores = model.predict_proba(holdout.select(model_inputs(holdout)).to_pandas())[:, 1]
    truth = holdout["defaulted"].to_numpy()
    metrics = {
        "roc_auc": float(roc_auc_score(truth, scores)),
        "accuracy": float(accuracy_score(truth, scores >= 0.5)),
        "value_per_1000": value_per_1000(truth, scores >= 0.5),
        "holdout_rows": float(holdout.num_rows),
    }
    return model, metrics


def holdout_rows(training: pa.Table) -> pa.Table:
    """The scored training rows ``train_model`` held out: the last 20% of the latest 60,000."""
    latest = min(training.num_rows, 60_000)
    return training.slice(training.num_rows - (latest - int(latest * 0.8)))


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

    scenario = generate(seed=seed, production_weeks=WEEKS + SERVED_WEEKS, user_features=True)
    # The first WEEKS are the story told twice (checked, then watched); the rest are served
    # by `keel serve` while the loop retrains, shadows, compares and promotes.
    served_weeks = scenario.weeks[WEEKS:]
    scenario.weeks = scenario.weeks[:WEEKS]
    scenario.changes = {k: v for k, v in scenario.changes.items() if k <= WEEKS}
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
    run_the_loop(
        output,
        scenario,
        [score(model, week) for week in [*scenario.weeks, *served_weeks]],
        console,
    )
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
    import warnings
    from datetime import timedelta

    from rich.table import Table

    from keel.alerts.delivery import deliver
    from keel.alerts.receiver import WebhookReceiver
    from keel.monitor.config import load_config
    from keel.monitor.run import run_monitor, status
    from keel.monitor.stream import run_stream
    from keel.retrain.loop import retrain_step
    from keel.retrain.promotion import approve
    from keel.store import ResultStore
    from keel.tokens import add_token

    logs = output / "logs"
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
            f"      value_matrix: {json.dumps(VALUE_MATRIX)}\n" + RETRAIN_POLICY
        )
        monitor = load_config(output / "keel.yaml")[0]
        shown = 0
        # Labels come late: 30% of a week's outcomes a week after it (the riskiest
        # applications are followed up first, a biased subset), the rest three weeks after.
        steps = len(weeks) + 3
        (output / "stream" / "loans.json").unlink(missing_ok=True)  # the loop starts afresh
        token = add_token(store, APPROVER)  # her own: printed once, kept only as a hash
        gateway = None
        try:  # the gateway is stopped however the loop ends
            for number in range(1, steps + 1):
                if number == WEEKS + 1:
                    gateway = Gateway(output, logs)
                    console.print(
                        f"  week {number} on: served by keel serve models:/loans@champion "
                        f"({gateway.url}), each request logged with its own time"
                    )
                if number <= len(weeks) and gateway is not None:
                    gateway.send(weeks[number - 1])
                elif number <= len(weeks):
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
                step = retrain_step(monitor, store, now=closed)  # the loop: decide, train, judge
                said = _tell_step(number, step)
                if said:
                    console.print(said, markup=False, highlight=False)
                if step.action == "retrain" and step.status == "done" and gateway is not None:
                    gateway.restart()  # it shadows the challenger from its next request on
                if step.status == "pending":  # the gate said promote: a person decides
                    done = approve(store, step.run, token, reason="the gate's report holds")
                    console.print(
                        f"  week {number:>2} ⇢ {APPROVER} approves run {step.run} with her token: "
                        f"loans@{done.challenger_version} is champion (loans@previous = "
                        f"loans@{done.champion_version}; rollback is one command)",
                        markup=False,
                    )
                    if gateway is not None:
                        gateway.restart()  # it answers with the new champion
                    (output / "stream" / "loans.json").unlink(missing_ok=True)  # a new baseline
                    with warnings.catch_warnings(record=True) as said:
                        warnings.simplefilter("always")
                        monitor = load_config(output / "keel.yaml")[0]  # the new champion's own
                    for warning in said:  # e.g. too few of its windows to calibrate on
                        console.print(f"           ({warning.message})", markup=False)
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
        finally:
            if gateway is not None:
                gateway.stop()
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


#: The loop's policy: retrain on concept drift once 10,000 labels have matured, on the
#: last 5 weeks without the weeks diagnosed as a pipeline fault or skew; shadow the
#: candidate and promote it only when, on the same requests, its ROC AUC is better (the
#: one-sided 95% DeLong bound above 0) and its accuracy at most a point worse (the bound
#: above -0.01), at a horizon of 10,000 matured paired labels; a person approves.
RETRAIN_POLICY = (
    "    retrain:\n"
    "      entrypoint: keel.demo:fit_champion\n"
    "      triggers: [{verdict: concept drift}]\n"
    "      min_matured_labels: 10000\n"
    "      min_interval: 28d\n"
    "      training_window: {last: 5w, exclude: [pipeline fault, training–serving skew]}\n"
    "      primary_metric: roc_auc\n"
    "      min_effect: 0.02\n"
    "      margins: {roc_auc: 0.01, accuracy: 0.01}\n"
    "      timeout: 10m\n"
)


def _tell_step(week: int, step: Any) -> str | None:
    """One line for what the loop's step did this week, or None when there is nothing to
    tell (no trigger, the job not due)."""
    if step.action == "retrain" and step.status in ("none", "nothing"):
        return None
    if step.action == "retrain" and step.status == "done":
        said = f"retrained: {step.challenger} is the challenger, shadowed from now on"
        said += f" ({step.reason})"
    elif step.action == "retrain":
        said = f"{step.status}: {step.reason}"
    elif step.action == "compare":
        said = f"challenger loans@{step.challenger} compared: {step.status}: {step.reason}"
    else:
        said = f"{step.action}: {step.reason}"
    return f"  week {week:>2} ⇢ retrain loop: {said}"


class Gateway:
    """``keel serve models:/loans@champion`` in a subprocess on a free loopback port, as a
    user starts it, with ``accept_event_time`` so that a replayed week's requests are logged
    at their own times; ``send`` posts a week (1,000 records a request) and waits until the
    log holds it, ``restart`` picks up a moved alias, ``stop`` drains the shadows."""

    def __init__(self, output: Path, logs: Path) -> None:
        import yaml

        self.output, self.logs = output, logs
        self.config = output / "serve.yaml"
        model = {
            "model": "models:/loans@champion",  # and the challenger alias as a shadow
            "entity_keys": ["user_id"],
            "shadow_queue": 20_000,
            "shadow_timeout": 60,
        }
        settings = {
            "log_root": str(logs),
            "accept_event_time": True,
            "reload_seconds": 0,
            "compact_seconds": 0.2,
            "min_free_mb": 0,
            "models": {"loans": model},
        }
        self.config.write_text(yaml.safe_dump({"serve": settings}, allow_unicode=True))
        self.url = ""
        self.start()

    def start(self) -> None:
        import re
        import subprocess
        import sys

        self.stderr = open(self.output / "serve.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keel.cli",
                "serve",
                "--config",
                str(self.config),
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=self.output,
        )
        for line in self.process.stdout:  # it says where it listens once it does
            found = re.search(rb"keel serve: (http://127\.0\.0\.1:\d+)", line)
            if found:
                self.url = found.group(1).decode()
                break
        else:
            raise RuntimeError(f"keel serve did not start; see {self.output / 'serve.log'}")

    def send(self, week: pa.Table, batch: int = 1_000) -> None:
        import urllib.request
        from datetime import timedelta

        from keel.store.queries import read_log

        inputs = [*model_inputs(week), "user_id", USER_FEATURE + "__as_of"]
        records = week.select(inputs).to_pylist()
        ids = week["application_id"].to_pylist()
        times = [t.isoformat() for t in week["event_time"].to_pylist()]
        for start in range(0, len(records), batch):
            chunk = [
                {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                for r in records[start : start + batch]
            ]
            body = {
                "records": chunk,
                "request_ids": ids[start : start + batch],
                "event_times": times[start : start + batch],
            }
            request = urllib.request.Request(
                f"{self.url}/v1/models/loans/predict",
                data=json.dumps(body).encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=120) as answer:
                answer.read()
        first, last = week["event_time"][0].as_py(), week["event_time"][-1].as_py()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # compacted into Parquet within moments
            seen = read_log(self.logs, "predictions", "loans", first, last + timedelta(seconds=1))
            if seen.num_rows >= week.num_rows:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the gateway's log holds {seen.num_rows} of {week.num_rows} rows")

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)  # drains the shadows and writes every log
        self.process.stdout.close()
        self.stderr.close()


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
        "holdout's support (the unit change); and it cannot see concept drift (from week 13): "
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
