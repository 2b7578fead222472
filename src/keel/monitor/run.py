"""Unattended monitor runs: every window that closed since the last run, exactly once.

A window [start, end) closes once ``end + allowed_lateness`` has passed.
``run_monitor`` checks every closed window of the monitor's source that the
results store has no run for yet, and any window whose rows changed since it
was checked (late data): its Results get new revisions and the event log
says so. Running twice stores nothing twice. ``backfill`` does the same from
a date, replaying the alert rules window by window and notifying only the
state at the end. A model version is a dimension of every Result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from keel.baseline import Baseline
from keel.calibration import Calibration
from keel.errors import ConfigError
from keel.history import check_history
from keel.monitor.config import MonitorConfig
from keel.result import Result
from keel.seeds import derive_seed
from keel.segments import segment_rate
from keel.stats.verdict import DefaultRule
from keel.store import ResultStore
from keel.store.logs import log_root
from keel.store.queries import (
    duplicate_labels,
    duplicates_dropped,
    read_labelled,
    read_log,
    unmatched_labels,
)
from keel.windows import WindowSpec, utc_times, window_key


@dataclass(frozen=True)
class MonitorRun:
    """What one run of a monitor did: the windows it checked, the Results it stored, the
    windows that alert, the alert changes it made, and what it noticed on the way.

    ``run["windows"]`` reads a field too, for scripts written against the dict it was.
    """

    monitor: str
    windows: int
    written: int
    unchanged: int = 0
    alerting: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duplicate_request_ids: int = 0
    duplicate_labels: int = 0
    labels_without_prediction: int = 0

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_monitor(
    monitor: MonitorConfig,
    store: ResultStore,
    now: datetime | None = None,
    since: datetime | None = None,
    alerting: bool = True,
    notify_history: bool = False,
) -> MonitorRun:
    """Check the monitor's closed, unchecked (or changed) windows; store their Results.

    ``alerting=False`` (a backfill) replays the alert rules window by window over the
    windows checked (``keel.alerts.engine.replay``) and notifies only the state at the end,
    or every change with ``notify_history``.

    One run of a monitor at a time: a concurrent run raises ``MonitorBusy`` at once and
    does nothing. A run's Results and its alert evaluation form a ledger (running →
    written → ok/alert): a run that died between the two is evaluated by the next one."""
    with store.monitor_lock(monitor.name):
        return _run_locked(monitor, store, now, since, alerting, notify_history)


def _run_locked(
    monitor: MonitorConfig,
    store: ResultStore,
    now: datetime | None,
    since: datetime | None,
    alerting: bool,
    notify_history: bool,
) -> MonitorRun:
    now = now or datetime.now(UTC)
    interrupted = store.unfinished_runs(monitor.name)
    ledger = _Ledger(store.latest(monitor=monitor.name))  # what the store holds: read once
    baseline = _baseline(monitor)
    calibration = Calibration.load(monitor.calibration) if monitor.calibration else None
    _register(store, monitor, baseline, calibration)
    if WindowSpec.parse(monitor.window).rows is not None:
        data, cutter = _row_source(monitor, since)
        newest = cutter.newest_closed()
    else:
        size = WindowSpec.parse(monitor.window).period_ns / 1e9
        closed_before = now.timestamp() - monitor.lateness_seconds
        cutoff = datetime.fromtimestamp(closed_before // size * size, UTC)  # newest closed end
        data = _changed_source(monitor, ledger, since, cutoff, size)
        cutter = _TimeCut(monitor, size, _log_start(monitor), cutoff)
        newest = (window_key(cutoff.timestamp() - size), window_key(cutoff.timestamp()))
    # Counted, not fatal: the latest record per request id is the one checked, and labels
    # without a prediction stay in the label log until their prediction arrives.
    seen = {
        "duplicate_request_ids": duplicates_dropped(data),
        "duplicate_labels": duplicate_labels(data),
        "labels_without_prediction": (
            unmatched_labels(log_root(monitor.logs), monitor.model) if _logged(monitor) else 0
        ),
    }
    if data.num_rows == 0:  # nothing new closed, nothing changed: only the label clock
        freshness = _label_freshness(monitor, now, newest)
        warnings = _watch_warnings(monitor, newest)
        if freshness is not None or warnings:
            store.write([r for r in [freshness, *warnings] if r is not None])
        transitions = []
        if freshness is not None or interrupted:  # or a run died before its evaluation
            from keel.alerts.engine import evaluate

            transitions = evaluate(monitor, store, now=now, notify=alerting)
            _recovered(store, monitor, interrupted)
        return MonitorRun(
            monitor.name,
            windows=0,
            written=0,
            alerts=_alerts(transitions),
            warnings=[w.details["reason"] for w in warnings],
            **seen,
        )
    versions = (
        [v for v in pc.unique(data.column("model_version")).to_pylist()]
        if "model_version" in data.column_names
        else [None]
    )
    run = store.start_run(monitor.name, {"window": monitor.window, "alerting": alerting})
    written = unchanged = 0
    alerting_windows: list[str] = []
    checked: set[str] = set()
    try:
        for version in versions:  # a deploy starts a new series, not "prediction drift"
            label = None if version is None else str(version)
            store.register_model(monitor.model, label, baseline.fingerprint)
            if "model_version" not in data.column_names:
                part = data
            elif version is None:  # the rows that name no version: their own series
                part = data.filter(pc.is_null(data.column("model_version")))
            else:
                part = data.filter(pc.equal(data.column("model_version"), version))
            series = _series(part, monitor, baseline, calibration)
            rate = segment_rate(monitor.false_alarm_rate, len(series) - 1)
            for segment, rows_of_series, reference, thresholds in series:
                rows_of_series, counts = _unchecked(
                    rows_of_series, monitor, ledger, label, cutter, segment
                )
                if rows_of_series.num_rows == 0:
                    continue
                windows = _checked_windows(
                    rows_of_series,
                    counts,
                    monitor,
                    reference,
                    thresholds,
                    ledger,
                    label,
                    cutter,
                    segment,
                    rate,
                )
                judged = _performance(
                    rows_of_series, windows, monitor, reference, now, cutter, rate, baseline
                )
                rows = [
                    replace(
                        r,
                        monitor=monitor.name,
                        model=monitor.model,
                        model_version=label,
                        segment=segment,
                    )
                    for window in windows
                    for r in [
                        *window.results(),
                        *judged.get(window.start, []),
                        *_window_results(window, counts[window.start]),
                    ]
                ]
                new, same = store.write(rows, run)
                written, unchanged = written + new, unchanged + same
                alerting_windows += [
                    w.start
                    for w in windows
                    if w.alert
                    or any(
                        r.check == "skew" and r.status == "alert" for r in judged.get(w.start, [])
                    )
                ]
                checked.update(w.start for w in windows)
        freshness = _label_freshness(monitor, now, newest)
        if freshness is not None:  # every run: labels can stop while no window changes
            label = None if versions[-1] is None else str(versions[-1])
            store.write([replace(freshness, model_version=label)], run)
        warnings = _watch_warnings(monitor, newest)
        if warnings:
            store.write(warnings, run)
        revised = store.history(monitor=monitor.name, run_id=run)
        revised = revised[revised["revision"] > 0] if not revised.empty else revised
        for window in sorted(set(revised["window_start"])):  # late data changed these
            store.log_event("monitor", "revised window", monitor.name, {"window_start": window})
        store.finish_run(run, "written")  # the Results are in; the alerts are next
    except Exception:
        store.finish_run(run, "error_unevaluated")  # what was written is evaluated next time
        raise
    from keel.alerts.engine import evaluate, replay

    if alerting:
        transitions = evaluate(monitor, store, now=now, notify=True)
    else:
        transitions = replay(monitor, store, sorted(checked), now, notify_history)
    store.finish_run(run, "alert" if alerting and alerting_windows else "ok")
    _recovered(store, monitor, interrupted)
    store.log_event(
        "monitor",
        "backfill" if not alerting else "run",
        monitor.name,
        {"written": written, "unchanged": unchanged, "run": run, **seen},
    )
    return MonitorRun(
        monitor.name,
        windows=len(checked),
        written=written,
        unchanged=unchanged,
        alerting=sorted(set(alerting_windows)) if alerting else [],
        alerts=_alerts(transitions),
        warnings=[w.details["reason"] for w in warnings],
        **seen,
    )


def _alerts(transitions: list) -> list[dict[str, Any]]:
    return [
        {"rule": t.rule, "state": t.state, "summary": t.summary, "notices": t.notices}
        for t in transitions
    ]


def _recovered(store: ResultStore, monitor: MonitorConfig, runs: list[int]) -> None:
    """Mark runs that died before their alert evaluation as evaluated by this one."""
    if runs:
        store.mark_runs(runs, "recovered")
        store.log_event("monitor", "evaluated for interrupted runs", monitor.name, {"runs": runs})


def _unchecked(
    data: pa.Table,
    monitor: MonitorConfig,
    ledger: _Ledger,
    version: str | None,
    cutter: Any,
    segment: str | None = None,
) -> tuple[pa.Table, dict[str, dict[str, float]]]:
    """The rows of windows never checked, or changed since (late or corrected records).

    A window is known by its row count and its newest ingestion time: late rows change
    the first, a corrected record (same request id, ingested again) the second; with
    labels joined, by its labelled rows and newest label ingestion too.
    """
    import numpy as np

    keys = cutter.starts(data)
    if "_ingested_at" in data.column_names:
        ingested = (
            pc.cast(
                pc.cast(data.column("_ingested_at"), pa.timestamp("us", tz="UTC")), pa.int64()
            ).to_numpy(zero_copy_only=False)
            / 1e6
        )
    else:
        ingested = np.zeros(len(keys))
    starts, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    newest = np.full(len(starts), -np.inf)
    np.maximum.at(newest, inverse, ingested)
    identity = {"rows": counts.astype(float), "newest_ingestion": newest}
    if "_label_ingested_at" in data.column_names:  # labels arriving late revise a window too
        labelled = pc.cast(
            pc.cast(data.column("_label_ingested_at"), pa.timestamp("us", tz="UTC")), pa.int64()
        )
        came = pc.fill_null(labelled, 0).to_numpy(zero_copy_only=False) / 1e6
        identity["labels"] = np.bincount(
            inverse,
            weights=pc.is_valid(labelled).to_numpy(zero_copy_only=False).astype(float),
            minlength=len(starts),
        )
        newest_label = np.zeros(len(starts))
        np.maximum.at(newest_label, inverse, came)
        identity["newest_label_ingestion"] = newest_label
    known = ledger.identities(version, segment)
    wanted: dict[str, dict[str, float]] = {}
    for index, start in enumerate(starts.tolist()):  # a loop over windows, not rows
        seen = {metric: float(values[index]) for metric, values in identity.items()}
        if any(known.get((start, metric)) != value for metric, value in seen.items()):
            wanted[start] = seen
    return data.filter(pa.array(np.isin(keys, list(wanted)))), wanted


def _window_results(window: Any, seen: dict[str, float]) -> list[Result]:
    """What identifies a checked window: rows, newest ingestion (epoch seconds), labels."""
    return [
        Result(
            check="window",
            column=None,
            metric=metric,
            value=float(value),
            threshold=None,
            status="ok",
            window_start=window.start,
            window_end=window.end,
        )
        for metric, value in seen.items()
    ]


def backfill(
    monitor: MonitorConfig,
    store: ResultStore,
    since: datetime,
    now: datetime | None = None,
    notify_history: bool = False,
) -> MonitorRun:
    """History from ``since``: every window's Results and alert states stored in order; only
    the state at the end is notified (``notify_history``: every change)."""
    return run_monitor(
        monitor, store, now=now, since=since, alerting=False, notify_history=notify_history
    )


def status(store: ResultStore, monitor: str | None = None, windows: int = 5) -> list[dict]:
    """Each monitor's latest windows: start, worst status, and what alerted. A streaming
    detector's alarms (check ``stream``, windows of one instant) and a retrain job's outcome
    (check ``retrain``) are not windows here: the alerts, ``store.latest(check=...)`` and
    ``keel retrain status`` tell them."""
    frame = store.latest(**({"monitor": monitor} if monitor else {}))
    if frame.empty:
        return []
    frame = frame[frame["check"] != "retrain"]  # a retrain job's outcome is not a window
    if frame.empty:
        return []
    instants = frame["window_start"] == frame["window_end"]
    streamed = set(frame.loc[(frame["check"] == "stream") & instants, "window_start"])
    if streamed:
        frame = frame[~(frame["window_start"].isin(streamed) & instants)]
        if frame.empty:
            return []
    # A missing label (target drift: insufficient data) must not hide an ok window.
    rank = {"insufficient_data": -1, "ok": 0, "warn": 2, "error": 3, "alert": 4}
    rows = []
    for (name, start), group in frame.groupby(["monitor", "window_start"]):
        verdicts = group[group["check"] == "diagnosis"]
        group = group[group["check"] != "diagnosis"]
        worst = max(group["status"], key=lambda s: rank.get(s, 0))
        alerts = group[group["status"] == "alert"]
        rows.append(
            {
                "monitor": name,
                "window_start": start,
                "status": worst,
                "diagnosis": next(
                    (d.get("verdict") for d in verdicts["details"] if isinstance(d, dict)), None
                ),
                "alerts": sorted(
                    {
                        f"{c if isinstance(c, str) else 'table'}: {m}"
                        for c, m in zip(alerts["column"], alerts["metric"], strict=True)
                    }
                ),
            }
        )
    rows.sort(key=lambda r: (r["monitor"], r["window_start"]))
    latest: dict[str, list[dict]] = {}
    for row in rows:
        latest.setdefault(row["monitor"], []).append(row)
    return [row for items in latest.values() for row in items[-windows:]]


def _baseline(monitor: MonitorConfig) -> Baseline:
    if not Path(monitor.baseline).is_file():
        raise ConfigError(f"monitor {monitor.name!r}: baseline file {monitor.baseline} is missing")
    return Baseline.load(monitor.baseline)


LABEL_COLUMNS = ("label_time", "_label_ingested_at")
ROW_WINDOW_COLUMNS = ("_window", "_window_end", "_first_ingested_at")
PREDICTION_IDENTITY = ("rows", "newest_ingestion")
JUDGED_LATER = frozenset(
    {"performance", "estimated_performance", "labels", "kpi", "skew", "diagnosis", "window"}
)


def _judged_later(monitor: MonitorConfig) -> bool:
    """Whether a window's verdict waits for the Results made beside the suite's."""
    return monitor.performance is not None or bool(monitor.kpis) or monitor.skew is not None


def _skew_results(rows: pa.Table, monitor: MonitorConfig, skew: Any) -> list[Result]:
    """The skew check on a window's served rows (keel.checks.skew); a served log without
    what the check joins on is the monitor's configuration error, naming what is missing."""
    from keel.checks.skew import check_skew
    from keel.errors import SchemaError

    try:
        return check_skew(rows, skew.truths, skew.spec)
    except SchemaError as error:
        raise ConfigError(f"monitor {monitor.name!r}: skew: {error}") from error


def _series(part: pa.Table, monitor: MonitorConfig, baseline: Baseline, calibration: Any):
    """The whole, then each segment: (label, rows, reference baseline, calibration). A
    segment is judged against the baseline's sample rows of that segment, uncalibrated
    (its windows are smaller than the calibrated ones)."""
    from keel.segments import segment_baseline, split

    series = [(None, part, baseline, calibration)]
    for spec in monitor.segments:
        for label, rows in split(
            part,
            spec.name,
            spec.column,
            spec.expression,
            monitor.max_segments,
            monitor.min_segment_rows,
        ):
            value = label.split("=", 1)[1]
            reference = _fitted_segment(baseline, spec, value, segment_baseline)
            if reference is not None:
                series.append((label, rows, reference, None))
    return series


_SEGMENT_BASELINES: dict[tuple, Any] = {}


def _fitted_segment(baseline, spec, value, build) -> Any:
    key = (baseline.fingerprint, spec.name, spec.column, spec.expression, value)
    if key not in _SEGMENT_BASELINES:
        if len(_SEGMENT_BASELINES) > 256:
            _SEGMENT_BASELINES.pop(next(iter(_SEGMENT_BASELINES)))
        _SEGMENT_BASELINES[key] = build(baseline, spec.column, spec.expression, value)
    return _SEGMENT_BASELINES[key]


def _checked_windows(
    part, counts, monitor, baseline, calibration, ledger, version, cutter, segment=None, rate=None
) -> list:
    """Every check on the windows whose predictions changed; the windows where only labels
    arrived keep their stored drift and quality Results (recomputing them would give the
    same answer, at the cost of the multivariate models) and get new performance ones."""
    known = ledger.series(version, segment, check="window")
    stored = ledger.identities(version, segment)
    relabelled = {
        start
        for start, seen in counts.items()
        if all(stored.get((start, m)) == seen.get(m) for m in PREDICTION_IDENTITY)
    }
    windows: list = []
    fresh = [start for start in counts if start not in relabelled]
    if fresh:
        history = check_history(
            baseline,
            _inputs(cutter.rows_of(part, fresh), monitor, baseline),
            monitor.window,
            timestamp=monitor.timestamp,
            calibration=calibration,
            false_alarm_rate=rate or monitor.false_alarm_rate,
            importance=monitor.importance,
            min_importance=monitor.min_importance,
            expected_rows=monitor.expected_rows_per_window,
            recent_rows=_recent_rows(known, fresh),
            # with performance, KPIs or skew, the window is diagnosed once they are in
            # (_performance)
            diagnose=not _judged_later(monitor),
            # a segment's share of the budget also lowers the one-off rule's test level
            rule=DefaultRule(alpha=rate) if segment is not None and rate else None,
            # the rows read are a part of the log: it starts where it starts, and every
            # closed window ends before its newest data
            **cutter.history_options(fresh),
        )
        windows += [w for w in history.windows if w.start in fresh]  # not the gaps between
    if relabelled:
        windows += _revisits(ledger, version, segment, sorted(relabelled))
    return sorted(windows, key=lambda w: w.start)


@dataclass
class _TimeCut:
    """Epoch-aligned time windows of ``size`` seconds: which window each row is in."""

    monitor: MonitorConfig
    size: float
    log_start: datetime | None
    cutoff: datetime

    def starts(self, part: pa.Table):
        """Each row's window start (ISO)."""
        import numpy as np

        times = utc_times(part.column(self.monitor.timestamp), self.monitor.timestamp)
        micros = pc.fill_null(pc.cast(times, pa.int64()), 0).to_numpy(zero_copy_only=False)
        keys, inverse = np.unique(micros // int(self.size * 1e6), return_inverse=True)
        names = np.array([window_key(k * self.size) for k in keys.tolist()], dtype=object)
        return names[inverse.reshape(-1)] if len(keys) else np.array([], dtype=object)

    def rows_of(self, part: pa.Table, starts: list[str]) -> pa.Table:
        """The rows of the windows starting at ``starts``."""
        import numpy as np

        return part.filter(pa.array(np.isin(self.starts(part), list(starts))))

    def history_options(self, starts: list[str]) -> dict[str, Any]:
        return {"data_start": self.log_start, "data_end": self.cutoff}


@dataclass
class _RowCut:
    """Row windows cut in ingestion order (then request id), per model version: the log's
    rows carry their window's start and end (``_window``, ``_window_end``)."""

    monitor: MonitorConfig
    closed: list[tuple[str, str]]  # every closed window of every version, (start, end)

    def starts(self, part: pa.Table):
        return part.column("_window").to_numpy(zero_copy_only=False).astype(object)

    def rows_of(self, part: pa.Table, starts: list[str]) -> pa.Table:
        import numpy as np

        return part.filter(pa.array(np.isin(self.starts(part), list(starts))))

    def history_options(self, starts: list[str]) -> dict[str, Any]:
        ends = dict(self.closed)
        return {"window_keys": [(start, ends[start]) for start in sorted(starts)]}

    def newest_closed(self) -> tuple[str, str] | None:
        return max(self.closed) if self.closed else None


@dataclass
class _Revisit:
    """A window checked before, whose labels changed: its stored Results, to be judged again,
    and those that do not depend on labels (``carried``: the estimates from the inputs, the
    skew check), kept as stored rather than computed again from the same predictions."""

    start: str
    end: str
    stored: list[Result]
    diagnosis: Any
    carried: list[Result] = field(default_factory=list)

    @property
    def alert(self) -> bool:
        return any(r.status == "alert" for r in self.stored)

    def results(self) -> list[Result]:
        extra = [self.diagnosis.to_result()] if self.diagnosis is not None else []
        return [
            replace(r, window_start=self.start, window_end=self.end) for r in [*self.stored, *extra]
        ]


def _of_series(frame, version: str | None, segment: str | None):
    """The rows of one series: a model version (None: logs without versions) and segment."""
    if frame.empty:
        return frame
    if version is not None:
        frame = frame[frame["model_version"] == version]
    return frame[frame["segment"].fillna("") == (segment or "")]


def _revisits(ledger: _Ledger, version, segment, starts: list[str]) -> list[_Revisit]:
    from keel.diagnosis import Diagnosis

    frame = ledger.series(version, segment)
    revisits = []
    for start in starts:  # a loop over windows
        rows = frame[frame["window_start"] == start]
        records = rows.to_dict("records")
        stored = [_stored_result(r) for r in records if r["check"] not in JUDGED_LATER]
        carried = [_stored_result(r) for r in records if _label_free(r)]
        verdicts = [r["details"] for r in rows.to_dict("records") if r["check"] == "diagnosis"]
        diagnosis = (
            Diagnosis(verdicts[0]["verdict"], verdicts[0]["summary"], verdicts[0]["causes"])
            if verdicts and verdicts[0].get("verdict")
            else None
        )
        if diagnosis is not None and diagnosis.verdict == "concept drift":
            diagnosis = Diagnosis("healthy", "healthy: no check alerted", [])  # judged anew
        end = rows["window_end"].dropna().iloc[0] if rows["window_end"].notna().any() else start
        revisits.append(_Revisit(start, end, stored, diagnosis, carried))
    return revisits


#: Results judged with the labels' but computed from the predictions alone: a revisit for
#: new labels keeps them as stored (the same rows give the same values).
LABEL_FREE = ("estimated_performance", "skew")


def _label_free(row: dict) -> bool:
    return row["check"] in LABEL_FREE or (
        row["check"] == "labels" and str(row["metric"]).startswith("estimated_")
    )


def _stored_result(row: dict) -> Result:
    return Result(
        row["check"],
        row["column"] if isinstance(row["column"], str) else None,
        row["metric"],
        _number(row["value"]),
        _number(row["threshold"]),
        row["status"],
        details=row["details"] or {},
    )


def _recent_rows(known, fresh: list[str]) -> list[float]:
    """Rows of the whole windows checked before the first fresh one, oldest first: what a
    window's volume is judged against (production's own rate, not the training set's)."""
    if known.empty or not fresh:
        return []
    rows = known[(known["metric"] == "rows") & (known["window_start"] < min(fresh))]
    rows = rows.sort_values("window_start")
    partial = rows["details"].map(lambda d: isinstance(d, dict) and bool(d.get("partial")))
    return [float(v) for v in rows.loc[~partial, "value"].tail(8)]


def _number(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _inputs(part: pa.Table, monitor: MonitorConfig, baseline: Baseline) -> pa.Table:
    """What the drift and quality checks read: the predictions without the joined labels.
    Labels arrive late and partly (a biased subset first): the performance checks judge
    them; as a drift or missing-value input they would raise false alarms."""
    extra = [c for c in (*LABEL_COLUMNS, *ROW_WINDOW_COLUMNS) if c in part.column_names]
    label = monitor.performance.label if monitor.performance else None
    if label and label in part.column_names:
        extra.append(label)
    return part.drop_columns(extra)


def _performance(
    part: pa.Table,
    windows: list,
    monitor: MonitorConfig,
    baseline: Baseline,
    now: datetime,
    cutter: Any,
    rate: float | None = None,
    whole: Baseline | None = None,
) -> dict[str, list[Result]]:
    """Each window's labels, performance and KPI Results; its diagnosis sees them. A
    segment's estimate uses the whole baseline's holdout fit (``whole``)."""
    if not _judged_later(monitor):
        return {}
    from keel.checks.estimated import estimated_results
    from keel.checks.kpis import kpi_result
    from keel.checks.performance import performance_results
    from keel.history import judge_stored

    spec = monitor.performance.spec() if monitor.performance else None
    skew = None
    if monitor.skew is not None:
        from keel.monitor.config import resolve_skew

        skew = resolve_skew(monitor)  # one set of truths for every window of the series
    estimator = None
    if spec is not None and spec.estimate:
        from keel.checks.estimated import fit_estimator

        estimator = fit_estimator(whole or baseline, spec)  # fitted with the baseline
    starts = cutter.starts(part)
    judged = {}
    for window in windows:  # a loop over windows; each is one vectorized filter
        rows = part.filter(pa.array(starts == window.start))
        found = (
            performance_results(
                rows,
                spec,
                baseline.metrics or {},
                rate or monitor.false_alarm_rate,
                now,
                seed=derive_seed(baseline.id, window.start, "performance"),
                label_reference=baseline.holdout.labels if baseline.holdout else None,
            )
            if spec is not None
            else []
        )
        found += [
            kpi_result(k.name, k.expression, rows, k.alert_below, k.alert_above)
            for k in monitor.kpis
        ]
        carried = getattr(window, "carried", [])  # a revisit for labels: as they were
        kept = {r.check for r in carried}
        found += carried
        if skew is not None and "skew" not in kept:  # served features against their truth
            found += _skew_results(rows, monitor, skew)
        if spec is not None and not set(baseline.metrics or {}) - {"holdout_rows"}:
            found.append(_holdout_missing(monitor))
        if spec is not None and spec.estimate and "estimated_performance" not in kept:
            found += estimated_results(
                rows,
                estimator,
                spec,
                baseline.metrics or {},
                rate or monitor.false_alarm_rate,
                spec.value_matrix,
                seed=derive_seed(baseline.id, window.start, "estimated_performance"),
            )
        judged[window.start] = [
            replace(r, window_start=window.start, window_end=window.end) for r in found
        ]
        if hasattr(window, "judge_with"):  # held-back drift pages when performance alerts
            window.judge_with(found)
        elif window.diagnosis is not None:  # a revisit: its stored Results, judged again
            window.stored, window.diagnosis = judge_stored(
                window.stored, found, monitor.min_importance
            )
    return judged


def _label_freshness(
    monitor: MonitorConfig, now: datetime, window: tuple[str, str] | None
) -> Result | None:
    """Hours since the newest label arrived, on the newest closed window: labels that stop
    coming are an alert of their own (a broken feedback pipeline), not a quiet metric."""
    expected = monitor.performance.labels_expected_within if monitor.performance else None
    if expected is None or not _logged(monitor) or window is None:
        return None
    from keel.store.queries import newest_ingestion
    from keel.windows import duration_seconds

    newest = newest_ingestion(log_root(monitor.logs), "labels", monitor.model)
    limit = duration_seconds(expected) / 3600
    hours = (now - newest).total_seconds() / 3600 if newest else None
    late = hours is None or hours > limit
    return Result(
        "labels",
        None,
        "hours_since_last_label",
        None if hours is None else round(hours, 1),
        limit,
        "alert" if late else "ok",
        details={"newest_label_ingested_at": str(newest) if newest else None},
        monitor=monitor.name,
        model=monitor.model,
        window_start=window[0],
        window_end=window[1],
    )


def _holdout_missing(monitor: MonitorConfig) -> Result:
    """Performance checks with nothing to judge against say so, in every window."""
    return Result(
        "performance",
        None,
        "holdout_missing",
        None,
        None,
        "warn",
        details={
            "reason": f"the baseline {monitor.baseline} records no holdout metrics: realized and "
            "estimated performance cannot alert (keel baseline create --holdout FILE)"
        },
    )


def _watch_warnings(monitor: MonitorConfig, window: tuple[str, str] | None) -> list[Result]:
    """What makes a monitor watch nothing, said in every run on its newest closed window:
    a model with no records in its log (a typo in ``model:``), a label column the label
    log does not have."""
    if not _logged(monitor) or window is None:
        return []
    import pyarrow.parquet as pq

    from keel.store.queries import log_files

    root = log_root(monitor.logs)
    found = []
    stamp = dict(
        monitor=monitor.name, model=monitor.model, window_start=window[0], window_end=window[1]
    )
    if not log_files(root, "predictions", monitor.model):
        others = sorted(
            p.name.removeprefix("model=") for p in (root / "predictions").glob("model=*")
        )
        found.append(
            Result(
                "monitor",
                None,
                "records_in_log",
                0.0,
                None,
                "warn",
                details={
                    "reason": f"no prediction records for model {monitor.model!r} in {root}"
                    + (f" (models logged there: {', '.join(others)})" if others else ""),
                },
                **stamp,
            )
        )
    label = monitor.performance.label if monitor.performance else None
    labels = log_files(root, "labels", monitor.model) if label else []
    if labels:
        columns = {name for file in labels[-20:] for name in pq.read_schema(file).names}
        if label not in columns:
            found.append(
                Result(
                    "labels",
                    label,
                    "label_column_missing",
                    1.0,
                    None,
                    "warn",
                    details={
                        "reason": f"the label log of {monitor.model!r} has no column {label!r} "
                        f"(it has: {', '.join(sorted(columns - {'_ingested_at'}))})",
                    },
                    **stamp,
                )
            )
    return found


def _moment(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _register(
    store: ResultStore, monitor: MonitorConfig, baseline: Baseline, calibration: Any
) -> None:
    """What the run uses goes into the store's registry: monitor, baseline, calibration."""
    store.save_monitor(monitor.name, monitor.model, monitor.model_dump())
    store.register_baseline(baseline, monitor.baseline)
    if calibration is not None:
        store.register_calibration(calibration, monitor.calibration)


def _changed_source(
    monitor: MonitorConfig,
    ledger: _Ledger,
    since: datetime | None,
    cutoff: datetime,
    size: float,
) -> pa.Table:
    """The rows of the windows that may need checking. For a prediction log, a first query
    reads only ids and times to find the windows whose rows, ingestion or labels changed
    since the store last saw them; only their rows are then read. A table or folder
    source is read whole."""
    if not _logged(monitor):
        return _source(monitor, since, cutoff)
    from keel.store.queries import window_summaries

    summaries = window_summaries(
        log_root(monitor.logs),
        monitor.model,
        size,
        since,
        cutoff,
        with_labels=monitor.performance is not None or bool(monitor.kpis),
    )
    known = ledger.summaries()
    changed = sorted(
        start
        for start, seen in summaries.items()
        if any(known.get((start, metric)) != value for metric, value in seen.items())
    )
    if not changed:
        return pa.table({})
    first = _moment(changed[0])
    last = datetime.fromtimestamp(_moment(changed[-1]).timestamp() + size, UTC)
    return _source(monitor, first, last)


def _log_start(monitor: MonitorConfig) -> datetime | None:
    """Where the monitor's data starts: the oldest event of its prediction log, or of its
    table. The window holding it is partial (unless the data starts with the window)."""
    if _logged(monitor):
        from keel.store.queries import oldest_event

        return oldest_event(log_root(monitor.logs), monitor.model)
    from keel.data import open_source

    source = open_source(monitor.source)
    if monitor.timestamp not in source.schema.names:
        return None
    oldest = None
    for batch in source.batches(columns=[monitor.timestamp]):
        low = pc.min(utc_times(batch.column(0), monitor.timestamp)).as_py()
        if low is not None:
            oldest = low if oldest is None else min(oldest, low)
    return oldest


def _row_source(monitor: MonitorConfig, since: datetime | None) -> tuple[pa.Table, _RowCut]:
    """The prediction log cut into row windows: per model version, requests in the order they
    were first ingested (then by request id), ``rows`` to a window. Only closed (full)
    windows are kept; the open one waits for its rows. A late row is ingested now, so it
    joins the open window; a corrected record keeps its request's place, so closed windows
    never shift (a correction revises its window). A window's start is the first ingestion
    of its first row, its end that of its last row plus a microsecond (each start at least
    the previous end: rows ingested together keep their windows apart); ``since`` keeps the
    windows starting from it."""
    import numpy as np

    if not _logged(monitor):
        raise ConfigError(
            f"monitor {monitor.name!r}: row windows ({monitor.window}) are cut in ingestion "
            "order and need the prediction log (source: logs)"
        )
    rows = WindowSpec.parse(monitor.window).rows
    root = log_root(monitor.logs)
    if monitor.performance is not None or monitor.kpis:
        data = read_labelled(root, monitor.model, first_ingestion=True)
    else:
        data = read_log(
            root, "predictions", monitor.model, latest_per_request=True, first_ingestion=True
        )
    if data.num_rows == 0:
        return data, _RowCut(monitor, [])
    metadata = data.schema.metadata
    versions = (
        pc.unique(data.column("model_version")).to_pylist()
        if "model_version" in data.column_names
        else [None]
    )
    parts, closed = [], []
    for version in versions:  # a loop over model versions, then over windows
        part = data
        if "model_version" in data.column_names:
            same = (
                pc.is_null(data.column("model_version"))
                if version is None
                else pc.equal(data.column("model_version"), version)
            )
            part = data.filter(pc.fill_null(same, False))
        part = part.sort_by([("_first_ingested_at", "ascending"), ("request_id", "ascending")])
        full = part.num_rows // rows
        if full == 0:
            continue
        part = part.slice(0, full * rows)
        first = pc.cast(
            pc.cast(part.column("_first_ingested_at"), pa.timestamp("us", tz="UTC")), pa.int64()
        ).to_numpy(zero_copy_only=False)
        starts, ends, end = [], [], None
        for index in range(full):
            begin = int(first[index * rows]) if end is None else max(int(first[index * rows]), end)
            end = max(int(first[index * rows + rows - 1]) + 1, begin + 1)
            starts.append(window_key(micros=begin))
            ends.append(window_key(micros=end))
        keep = [i for i, start in enumerate(starts) if since is None or _moment(start) >= since]
        if not keep:
            continue
        part = part.slice(keep[0] * rows)
        starts, ends = starts[keep[0] :], ends[keep[0] :]
        part = part.append_column("_window", pa.array(np.repeat(starts, rows), pa.string()))
        part = part.append_column("_window_end", pa.array(np.repeat(ends, rows), pa.string()))
        parts.append(part)
        closed += list(zip(starts, ends, strict=True))
    if not parts:
        return pa.table({}), _RowCut(monitor, [])
    table = pa.concat_tables(parts, promote_options="default")
    return table.replace_schema_metadata(metadata), _RowCut(monitor, closed)


@dataclass
class _Ledger:
    """What the store held for this monitor when the run began (the newest revision of each
    Result), read in one query: which windows it has seen, and how (their identities), and
    the stored Results of windows revisited for their labels. Each series writes only its
    own rows during the run, so this one read serves every series."""

    frame: Any  # a DataFrame in the Result schema

    def series(self, version: str | None, segment: str | None, check: str | None = None):
        frame = _of_series(self.frame, version, segment)
        return frame if check is None or frame.empty else frame[frame["check"] == check]

    def identities(self, version: str | None, segment: str | None) -> dict:
        """(window start, metric) -> value of one series' stored window identities."""
        known = self.series(version, segment, check="window")
        if known.empty:
            return {}
        keys = zip(known["window_start"], known["metric"], strict=True)
        return dict(zip(keys, known["value"], strict=True))

    def summaries(self) -> dict[tuple[str, str], float]:
        """The stored window identities, added up over model versions (no segment)."""
        stored = self.frame
        if stored.empty:
            return {}
        stored = stored[(stored["check"] == "window") & stored["segment"].isna()]
        summed = {}
        for (start, metric), values in stored.groupby(["window_start", "metric"])["value"]:
            combine = sum if metric in ("rows", "labels") else max
            summed[(start, metric)] = float(combine(values))
        return summed


def _logged(monitor: MonitorConfig) -> bool:
    return monitor.source == "logs"


def _source(monitor: MonitorConfig, since: datetime | None, cutoff: datetime) -> pa.Table:
    """The rows of closed windows (from ``since``): a DuckDB query over the prediction log,
    or a filtered read of a table or folder."""
    if _logged(monitor) and (monitor.performance is not None or monitor.kpis):
        return read_labelled(log_root(monitor.logs), monitor.model, start=since, end=cutoff)
    if _logged(monitor):
        return read_log(
            log_root(monitor.logs),
            "predictions",
            monitor.model,
            start=since,
            end=cutoff,
            latest_per_request=True,
        )
    from keel.data import open_source

    data = open_source(monitor.source).read_all()
    if data.num_rows == 0:
        return data
    times = pc.cast(data.column(monitor.timestamp), pa.timestamp("us", tz="UTC"), safe=False)
    keep = pc.less(times, pa.scalar(cutoff, pa.timestamp("us", tz="UTC")))
    if since is not None:
        keep = pc.and_(
            keep, pc.greater_equal(times, pa.scalar(since, pa.timestamp("us", tz="UTC")))
        )
    return data.filter(keep)
