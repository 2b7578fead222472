"""The monitor's streaming step: detectors over the prediction and label logs, between windows.

For a monitor with a ``stream:`` block (``keel.monitor.config.StreamConfig``), each step
reads the log records that arrived since the saved position and feeds each stream's
detector (``keel.online``): scores and features in prediction-time order (event time,
then request id), the per-request errors in label-arrival order (label ingestion time,
then request id) with each error's prediction time recorded. Records are read once they
are ``stream.lateness`` old (the log compacts within seconds); a prediction that comes
with an event time before the position is *late*: counted, never fed.

Each detector is calibrated once, on the baseline's in-control reference (the
``stream.reference`` file; else the holdout rows the baseline keeps; else its sample of
reference rows: never the training rows where a holdout exists), to ARL0 = m × the
monitor's target, the target being "one false alarm per ``false_alarm_every``" converted
to values with the request rate (``requests_per_second``, else the rate observed in the
prediction log when the stream is first calibrated). The seed is derived from the
baseline id and the stream.

Each alarm is a Result (check ``stream``, metric ``alarm``, column: the stream, window
[alarm time, alarm time]) carrying the alarm index, the estimated change point (index
and time) and the stream; a stream quiet for ``resolve_after`` after an alarm writes one
``ok`` Result so the alert resolves. The Results are stored, diagnosed and run through
the alert rules as every check's are (``keel.alerts.engine.evaluate``).

The detectors' states, the calibrations and the positions are kept in one state file
(``keel.stream-state``, version 1; docs/formats.md), written atomically after the
Results; a state saved for another baseline is refused.

>>> import tempfile, datetime as dt, numpy as np, pyarrow as pa
>>> from pathlib import Path
>>> from keel.baseline import Baseline
>>> from keel.monitor.config import parse_config
>>> from keel.store import ResultStore
>>> from keel.store.logs import LogWriter
>>> folder = Path(tempfile.mkdtemp())
>>> rng = np.random.default_rng(1)
>>> Baseline.from_data(pa.table({"score": rng.normal(size=5000)})).save(folder / "b.keel")
>>> start = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
>>> values = np.concatenate([rng.normal(size=400), rng.normal(1.0, 1.0, size=200)])
>>> with LogWriter(folder / "logs", "predictions", model="m") as log:
...     log.append([{"request_id": f"r{i:04d}", "event_time": start + dt.timedelta(minutes=i),
...                  "score": float(v)} for i, v in enumerate(values)])
600
>>> text = (f"monitors:\\n  - {{name: m, model: m, baseline: {folder / 'b.keel'}, window: 1D,"
...         f" logs: {folder / 'logs'}, stream: {{streams: [score], false_alarm_every: 7D,"
...         " requests_per_second: 0.01667}}\\n")
>>> monitor = parse_config(text, "keel.yaml")[0]
>>> step = run_stream(monitor, ResultStore(f"sqlite:///{folder / 'keel.db'}"),
...                   now=start + dt.timedelta(days=2))
>>> first = step.alarms[0]  # the shift starts at index 400; the detector restarts after each
>>> step.fed, first.window_start, first.details["alarm_index"], first.details["change_point_index"]
({'score': 600}, '2026-07-01T07:00:00.000000Z', 420, 401)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import ConfigError, DataError
from keel.monitor.config import MonitorConfig, StreamConfig, StreamEntry
from keel.online import DETECTORS, DetectorStateError, restore
from keel.online.calibrate import arl0_for_period, calibrate, per_stream_arl0
from keel.result import Result
from keel.seeds import derive_seed
from keel.store import ResultStore
from keel.store.logs import log_root
from keel.store.queries import read_log
from keel.windows import duration_seconds, window_key

STATE_FORMAT = "keel.stream-state"
STATE_VERSION = 1
#: Labels waiting for their prediction, kept in the state at most (the oldest go first).
MAX_PENDING_LABELS = 100_000
_CALIBRATION_VALUES = 200_000_000  # values simulated at most per calibration, across streams


@dataclass(frozen=True)
class StreamStep:
    """What one streaming step did: values fed per stream, every alarm as a Result (stored:
    an episode's first, or each with ``stream.alarms: every``), the late records skipped,
    the alert changes, and what it noticed."""

    monitor: str
    fed: dict[str, int] = field(default_factory=dict)
    alarms: list[Result] = field(default_factory=list)
    written: int = 0
    late: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def state_path(monitor: MonitorConfig) -> Path:
    """Where a monitor's stream state is kept: ``stream.state``, else ``stream/<name>.json``
    beside the log root (``.keel/stream/`` by default).

    >>> from keel.monitor.config import parse_config
    >>> text = "monitors:\\n  - {name: m, model: m, baseline: b.keel, window: 1D, " \\
    ...        "stream: {streams: [score]}}\\n"
    >>> state_path(parse_config(text, "keel.yaml")[0]).as_posix()
    '.keel/stream/m.json'
    """
    assert monitor.stream is not None
    if monitor.stream.state:
        return Path(monitor.stream.state)
    return log_root(monitor.logs).parent / "stream" / f"{monitor.name}.json"


def load_state(path: Path, baseline_id: str, monitor: str) -> dict[str, Any]:
    """The saved stream state, or a fresh one; a state of another baseline is refused.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "m.json"
    >>> load_state(path, "b-1", "m")["streams"]
    {}
    >>> _ = path.write_text(json.dumps({"format": STATE_FORMAT, "version": 1,
    ...                                 "baseline_id": "b-0", "monitor": "m"}))
    >>> load_state(path, "b-1", "m")
    Traceback (most recent call last):
    ...
    keel.online.base.DetectorStateError: ...m.json was saved for baseline 'b-0', not 'b-1': ...
    """
    fresh = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "monitor": monitor,
        "baseline_id": baseline_id,
        "rate_per_second": None,
        "predictions": {"event_us": None, "request_id": None, "ingested_us": None},
        "labels": {"ingested_us": None, "request_id": None, "pending": []},
        "streams": {},
    }
    if not path.is_file():
        return fresh
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DetectorStateError(
            f"the stream state {path} cannot be read ({error}): delete it to start afresh"
        ) from error
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise DetectorStateError(
            f"{path} is not a {STATE_FORMAT} version {STATE_VERSION} file: delete it to start "
            "the stream detectors afresh"
        )
    if state.get("baseline_id") != baseline_id:
        raise DetectorStateError(
            f"the stream state {path} was saved for baseline {state.get('baseline_id')!r}, "
            f"not {baseline_id!r}: its detectors were calibrated on another reference; delete "
            "the file to calibrate them afresh on this baseline"
        )
    return {**fresh, **state}


def run_stream(
    monitor: MonitorConfig,
    store: ResultStore,
    now: datetime | None = None,
    alerting: bool = True,
) -> StreamStep:
    """One streaming step for a monitor with ``stream:``; see the module docstring.

    ``now`` (default: the clock) bounds the predictions read (event time up to ``now −
    lateness``); labels are read up to the clock's ``now − lateness`` (their ingestion
    time is the clock's). One step of a monitor at a time (the monitor's lock).
    The example is the module docstring's.
    """
    if monitor.stream is None:
        return StreamStep(monitor.name)
    with store.monitor_lock(monitor.name):
        return _step(monitor, monitor.stream, store, now or datetime.now(UTC), alerting)


def _step(
    monitor: MonitorConfig, config: StreamConfig, store: ResultStore, now: datetime, alerting: bool
) -> StreamStep:
    baseline = _baseline(monitor)
    path = state_path(monitor)
    state = load_state(path, baseline.id, monitor.name)
    root = log_root(monitor.logs)
    entries = config.entries
    warnings: list[str] = []
    lateness = timedelta(seconds=_seconds(config.lateness))
    rate = state.get("rate_per_second") or config.requests_per_second
    if rate is None:
        rate = _observed_rate(root, monitor.model)
        if rate is None:
            return StreamStep(
                monitor.name,
                warnings=["stream: waiting for predictions to measure the request rate"],
            )
    state["rate_per_second"] = rate
    detectors = _detectors(monitor, config, baseline, state, rate, entries)
    rows: list[Result] = []
    fed: dict[str, int] = {}
    columns = [e for e in entries if not e.errors]
    late = 0
    if columns:
        table, late = _new_predictions(root, monitor.model, state, now - lateness)
        times = _micros(table.column("event_time")) if table.num_rows else np.zeros(0, np.int64)
        ids = table.column("request_id").to_pylist() if table.num_rows else []
        for entry in columns:
            if table.num_rows and entry.column not in table.column_names:
                warnings.append(f"stream {entry.name}: no column {entry.column!r} in the log")
            values = _numbers(table, entry.column)
            rows += _feed(monitor, entry, detectors[entry.name], state, values, times, ids)
            fed[entry.name] = int(values.size)
        if table.num_rows:
            state["predictions"].update(
                event_us=int(times[-1]),
                request_id=ids[-1],
                ingested_us=int(_micros(table.column("_ingested_at")).max()),
            )
    for entry in [e for e in entries if e.errors]:
        errors, times, ids, predicted = _new_errors(
            monitor, root, state, datetime.now(UTC) - lateness
        )
        rows += _feed(monitor, entry, detectors[entry.name], state, errors, times, ids, predicted)
        fed[entry.name] = int(errors.size)
    for entry in entries:
        rows += _quiet(monitor, entry, state["streams"][entry.name], config)
    alarms = [r for r in rows if r.status == "alert"]
    # A sustained change re-alarms every few records (each alarm restarts the detector):
    # by default only an episode's first alarm is stored; the quiet Result counts them all.
    rows = [
        r
        for r in rows
        if r.status != "alert" or config.alarms == "every" or r.details["episode_alarm"] == 1
    ]
    rows += _diagnoses([r for r in rows if r.status == "alert"])
    written, _ = store.write(rows)  # the Results first: a crash before the state re-feeds
    for entry in entries:
        state["streams"][entry.name]["detector"] = detectors[entry.name].state()
    _save(path, state)
    transitions = []
    if rows and monitor.alerts:
        from keel.alerts.engine import evaluate

        transitions = evaluate(monitor, store, now=now, notify=alerting)
    if late:
        warnings.append(
            f"stream: {late} prediction(s) arrived with an event time before the stream's "
            "position (late by more than stream.lateness): counted, not fed"
        )
    if alarms or late:
        store.log_event(
            "monitor", "stream", monitor.name, {"fed": fed, "alarms": len(alarms), "late": late}
        )
    return StreamStep(
        monitor.name,
        fed=fed,
        alarms=alarms,
        written=written,
        late=late,
        alerts=[
            {"rule": t.rule, "state": t.state, "summary": t.summary, "notices": t.notices}
            for t in transitions
        ],
        warnings=warnings,
    )


_BASELINES: dict[tuple[str, int, int], Any] = {}


def _baseline(monitor: MonitorConfig) -> Any:
    """The monitor's baseline, loaded once per file version (a step runs every minute)."""
    from keel.monitor.run import _baseline as load

    path = Path(monitor.baseline)
    try:
        found = path.stat()
    except OSError:
        return load(monitor)  # says which file is missing
    key = (str(path.resolve()), found.st_mtime_ns, found.st_size)
    if key not in _BASELINES:
        if len(_BASELINES) >= 8:  # a few monitors' baselines; never a growing cache
            _BASELINES.pop(next(iter(_BASELINES)))
        _BASELINES[key] = load(monitor)
    return _BASELINES[key]


# -- calibration ----------------------------------------------------------------------------


def _spec(entry: StreamEntry, config: StreamConfig) -> dict[str, Any]:
    kind, options = config.detector_of(entry)
    return {
        "detector": kind,
        "options": options,
        "false_alarm_every": config.false_alarm_every,
        "streams": len(config.entries),
        "reference": config.reference,
    }


def _detectors(monitor, config, baseline, state, rate, entries) -> dict[str, Any]:
    """Each stream's detector: restored from the state, or calibrated now (once)."""
    detectors = {}
    for entry in entries:
        spec = _spec(entry, config)
        saved = state["streams"].get(entry.name)
        if saved is not None and saved.get("spec") == spec:
            detectors[entry.name] = restore(saved["detector"], baseline_id=baseline.id)
            continue
        reference, source = stream_reference(monitor, baseline, entry)
        period = timedelta(seconds=duration_seconds(config.false_alarm_every))
        target = per_stream_arl0(arl0_for_period(period, rate), len(entries))
        kind, options = spec["detector"], spec["options"]
        threshold_name = DETECTORS[kind].threshold_name

        def factory(threshold, kind=kind, options=options, name=threshold_name, ref=reference):
            return DETECTORS[kind].from_reference(
                ref, baseline_id=baseline.id, **options, **{name: threshold}
            )

        try:
            made = calibrate(
                factory,
                target,
                reference,
                seed=derive_seed(baseline.id, monitor.name, entry.name, "stream"),
                streams=int(min(2_000, max(200, _CALIBRATION_VALUES // (30 * target)))),
            )
        except ConfigError as error:
            raise ConfigError(
                f"monitor {monitor.name!r}: stream.false_alarm_every: stream {entry.name!r}: "
                f"{error}"
            ) from error
        state["streams"][entry.name] = {
            "spec": spec,
            "calibration": {
                "threshold": made.threshold,
                "target_arl0": made.target_arl0,
                "simulated_arl0": made.arl0,
                "block": made.block,
                "seed": made.seed,
                "pseudo_streams": made.streams,
                "reference": source,
                "reference_values": int(np.isfinite(reference).sum()),
                "rate_per_second": rate,
            },
            "alarms": 0,
            "last_alarm_us": None,
            "quiet_written": True,
            "newest_us": None,
            "zero_times": {},
        }
        detectors[entry.name] = made.detector
    return detectors


def stream_reference(monitor: MonitorConfig, baseline: Any, entry: StreamEntry):
    """The in-control values of one stream, and where they came from.

    In order: the ``stream.reference`` file; the holdout rows the baseline keeps
    (``baseline.holdout``: up to 20,000 rows for a binary model, 2,000 otherwise, their
    numeric columns decoded from the estimator's scaling); the baseline's sample of its
    reference rows (training rows, said so). The error stream needs the label and the
    score (or prediction) in the same rows.

    >>> import numpy as np, pyarrow as pa
    >>> from keel.baseline import Baseline
    >>> from keel.monitor.config import parse_config
    >>> text = "monitors:\\n  - {name: m, model: m, baseline: b.keel, window: 1D, " \\
    ...        "stream: {streams: [score]}}\\n"
    >>> monitor = parse_config(text, "keel.yaml")[0]
    >>> baseline = Baseline.from_data(pa.table({"score": np.arange(100.0)}))
    >>> values, source = stream_reference(monitor, baseline, monitor.stream.entries[0])
    >>> values.size, source
    (100, 'the baseline sample (reference rows)')
    """
    sources = []
    config = monitor.stream
    assert config is not None
    if config.reference:
        from keel.data import open_source

        sources.append((open_source(config.reference).read_all(), f"file {config.reference}"))
    else:
        held = _holdout_table(baseline)
        if held is not None:
            sources.append((held, "the baseline's holdout"))
        if baseline.sample is not None:
            sources.append((baseline.sample, "the baseline sample (reference rows)"))
    for table, source in sources:
        if entry.errors:
            values = _errors_of(monitor, table)
        elif entry.column in table.column_names:
            values = _numbers(table, entry.column)
        else:
            continue
        if values is not None and np.isfinite(values).sum() >= 2:
            return values, source
    what = "the label and score" if entry.errors else f"column {entry.column!r}"
    raise ConfigError(
        f"monitor {monitor.name!r}: stream {entry.name!r}: no in-control reference has "
        f"{what} as numbers (give stream.reference: a holdout file)"
    )


def _holdout_table(baseline: Any) -> pa.Table | None:
    """The holdout rows a baseline keeps, numeric columns decoded (labels for binary)."""
    fit = getattr(baseline, "holdout", None)
    support = getattr(fit, "support", None)
    if support is None:
        return None
    encoded = fit.local_inputs if fit.local_inputs is not None else support.reference
    columns = {}
    for j, name in enumerate(support.columns):
        if name not in support.categories:
            columns[name] = encoded[:, j] * support.scale[j] + support.center[j]
    if fit.local_inputs is not None and fit.local_residuals is not None and fit.target:
        # label − calibrated probability: positive exactly when the residual is
        columns[fit.target] = (np.asarray(fit.local_residuals) > 0).astype(float)
    return pa.table(columns) if columns else None


def _errors_of(monitor: MonitorConfig, table: pa.Table) -> np.ndarray | None:
    """Per-row errors: binary (score − label)², multiclass prediction ≠ label, regression
    |prediction − label|; None when the rows lack what is needed."""
    performance = monitor.performance
    assert performance is not None
    if performance.label not in table.column_names:
        return None
    if performance.task == "binary":
        if not performance.score or performance.score not in table.column_names:
            return None
        return (_numbers(table, performance.score) - _numbers(table, performance.label)) ** 2
    if not performance.prediction or performance.prediction not in table.column_names:
        return None
    if performance.task == "multiclass":
        predicted = table.column(performance.prediction).to_pylist()
        truth = table.column(performance.label).to_pylist()
        return np.array(
            [np.nan if t is None or p is None else float(str(p) != str(t)) for p, t in
             zip(predicted, truth, strict=True)]
        )  # fmt: skip
    return np.abs(_numbers(table, performance.prediction) - _numbers(table, performance.label))


def _observed_rate(root: Path, model: str) -> float | None:
    """Predictions per second over the log's span of event times; None under two."""
    table = read_log(root, "predictions", model)
    if table.num_rows < 2:
        return None
    times = _micros(table.column("event_time"))
    span = (times.max() - times.min()) / 1e6
    return (table.num_rows - 1) / span if span > 0 else None


# -- reading the logs -----------------------------------------------------------------------


def _new_predictions(root: Path, model: str, state: dict, until: datetime):
    """Predictions after the position (event time, request id) with event time < ``until``,
    latest per request id, in that order; and how many late ones were skipped."""
    position = state["predictions"]
    start = None
    if position["event_us"] is not None:
        moment = datetime.fromtimestamp(position["event_us"] // 1_000_000, UTC)
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    table = read_log(root, "predictions", model, start=start, end=until, latest_per_request=True)
    if table.num_rows == 0:
        return table, 0
    if position["event_us"] is None:
        return table, 0
    times = _micros(table.column("event_time"))
    ids = np.array(table.column("request_id").to_pylist(), dtype=object)
    after = (times > position["event_us"]) | (
        (times == position["event_us"]) & (ids > str(position["request_id"]))
    )
    ingested = _micros(table.column("_ingested_at"))
    late = int(np.sum(~after & (ingested > (position["ingested_us"] or 0))))
    return table.filter(pa.array(after)), late


def _new_errors(monitor: MonitorConfig, root: Path, state: dict, until: datetime):
    """Errors of the labels ingested after the position (and up to ``until``), in arrival
    order, each with its prediction's time; labels whose prediction is not logged yet wait
    in the state."""
    performance = monitor.performance
    assert performance is not None
    position = state["labels"]
    labels = read_log(root, "labels", monitor.model)
    empty = np.zeros(0)
    pending = list(position.get("pending") or [])
    if labels.num_rows:
        ingested = _micros(labels.column("_ingested_at"))
        ids = np.array(labels.column("request_id").to_pylist(), dtype=object)
        cut = int(until.timestamp() * 1e6)
        keep = ingested <= cut
        if position["ingested_us"] is not None:
            keep &= (ingested > position["ingested_us"]) | (
                (ingested == position["ingested_us"]) & (ids > str(position["request_id"]))
            )
        order = np.lexsort((ids[keep].astype(str), ingested[keep]))
        new = labels.filter(pa.array(keep)).take(pa.array(order))
    else:
        new = labels
    arrivals = [(r["request_id"], r["_ingested_at"]) for r in pending]
    if new.num_rows:
        new_ids = new.column("request_id").to_pylist()
        new_times = _micros(new.column("_ingested_at"))
        arrivals += [(i, int(t)) for i, t in zip(new_ids, new_times, strict=True)]
        position.update(ingested_us=int(new_times[-1]), request_id=new_ids[-1])
    if not arrivals:
        return empty, empty.astype(np.int64), [], []
    predictions = read_log(root, "predictions", monitor.model, latest_per_request=True)
    wanted = [c for c in {performance.score, performance.prediction, "event_time"} if c]
    by_id = {}
    if predictions.num_rows:
        found = predictions.select(
            ["request_id", *[c for c in wanted if c in predictions.column_names]]
        )
        by_id = {row["request_id"]: row for row in found.to_pylist()}
    label_rows = {}
    for table in (labels,):
        if table.num_rows and performance.label in table.column_names:
            for row in table.select(["request_id", performance.label, "_ingested_at"]).to_pylist():
                label_rows[(row["request_id"], _iso_micros(row["_ingested_at"]))] = row[
                    performance.label
                ]
    matched, waiting = [], []
    for request_id, arrived in arrivals:
        if request_id in by_id:
            matched.append((request_id, arrived))
        else:
            waiting.append({"request_id": request_id, "_ingested_at": arrived})
    position["pending"] = waiting[-MAX_PENDING_LABELS:]
    if not matched:
        return empty, empty.astype(np.int64), [], []
    rows = []
    for request_id, arrived in matched:
        prediction = by_id[request_id]
        rows.append(
            {
                **{k: v for k, v in prediction.items() if k != "event_time"},
                performance.label: label_rows.get((request_id, arrived)),
            }
        )
    table = pa.Table.from_pylist(rows)
    errors = _errors_of(monitor, table)
    if errors is None:
        errors = np.full(len(rows), np.nan)
    times = np.array([arrived for _, arrived in matched], dtype=np.int64)
    predicted = [window_key(micros=_to_micros(by_id[i]["event_time"])) for i, _ in matched]
    return errors, times, [i for i, _ in matched], predicted


# -- feeding and Results ----------------------------------------------------------------------


def _feed(monitor, entry, detector, state, values, times, ids, predicted=None) -> list[Result]:
    """Feed one stream's new values; one Result per alarm."""
    saved = state["streams"][entry.name]
    if values.size == 0:
        return []
    first = detector.n_seen
    alarms = detector.update_many(values)
    zero_times = {int(k): v for k, v in (saved.get("zero_times") or {}).items()}

    def time_of(index: int | None) -> int | None:
        if index is None:
            return None
        if first <= index < first + values.size:
            return int(times[index - first])
        return zero_times.get(index)

    calibration = saved["calibration"]
    rows = []
    for alarm in alarms:
        at = int(times[alarm.index - first])
        change = time_of(alarm.change_point)
        details = {
            "stream": entry.name,
            "detector": detector.name,
            "alarm_index": alarm.index,
            "change_point_index": alarm.change_point,
            "change_point_time": window_key(micros=change) if change is not None else None,
            "request_id": ids[alarm.index - first],
            "target_arl0": calibration["target_arl0"],
            "reference": calibration["reference"],
            # 1 for an episode's first alarm (after a quiet resolve_after, or ever)
            "episode_alarm": (
                1 if saved.get("quiet_written", True) else int(saved.get("episode_alarms") or 0) + 1
            ),
        }
        if predicted is not None:
            details["prediction_time"] = predicted[alarm.index - first]
        rows.append(
            Result(
                "stream",
                entry.name,
                "alarm",
                round(float(alarm.statistic), 6),
                round(float(calibration["threshold"]), 6),
                "alert",
                monitor=monitor.name,
                model=monitor.model,
                window_start=window_key(micros=at),
                window_end=window_key(micros=at),
                details=details,
            )
        )
        saved["alarms"] = int(saved.get("alarms") or 0) + 1
        saved["episode_alarms"] = details["episode_alarm"]
        saved["last_alarm_us"] = at
        saved["quiet_written"] = False
    saved["newest_us"] = int(times[-1])
    candidates = {
        int(getattr(detector, name)) + 1
        for name in type(detector)._carry_fields
        if name.endswith("_zero")
    }
    saved["zero_times"] = {
        str(index): time_of(index) for index in candidates if time_of(index) is not None
    }
    return rows


def _quiet(monitor, entry, saved, config) -> list[Result]:
    """One ``ok`` Result when a stream has been quiet for ``resolve_after`` since its alarm."""
    last, newest = saved.get("last_alarm_us"), saved.get("newest_us")
    if last is None or saved.get("quiet_written") or newest is None:
        return []
    at = last + int(duration_seconds(config.resolve_after) * 1e6)
    if newest < at:
        return []
    saved["quiet_written"] = True
    return [
        Result(
            "stream",
            entry.name,
            "alarm",
            None,
            round(float(saved["calibration"]["threshold"]), 6),
            "ok",
            monitor=monitor.name,
            model=monitor.model,
            window_start=window_key(micros=at),
            window_end=window_key(micros=at),
            details={
                "stream": entry.name,
                "quiet_since": window_key(micros=last),
                "alarms_in_episode": int(saved.get("episode_alarms") or 0),
            },
        )
    ]


def _diagnoses(alarms: list[Result]) -> list[Result]:
    """Each alarm's window diagnosed as every window is (``keel.diagnosis``); a window of
    stream alarms alone says which streams moved and since when (no rule names a cause
    from one stream: the window's checks do when it closes)."""
    from keel.diagnosis import Diagnosis, diagnose

    by_window: dict[str, list[Result]] = {}
    for alarm in alarms:
        by_window.setdefault(alarm.window_start, []).append(alarm)
    made = []
    for rows in by_window.values():
        diagnosis = diagnose(rows)
        moved = "; ".join(
            f"{r.details['stream']} moved"
            + (
                f" from {r.details['change_point_time'][:16]}"
                if r.details.get("change_point_time")
                else ""
            )
            + f" ({r.details['detector']}, value {r.details['alarm_index']:,} of the stream)"
            for r in rows
        )
        summary = f"stream alarm: {moved}; the window's checks name the cause when it closes"
        made.append(
            Diagnosis(diagnosis.verdict, summary, diagnosis.causes).to_result(template=rows[0])
        )
    return made


def _save(path: Path, state: dict[str, Any]) -> None:
    from keel._files import write_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(state, sort_keys=True, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _seconds(text: str) -> float:
    """A duration in seconds; "0s" (no wait) too."""
    return 0.0 if text.lstrip("0").isalpha() or not text.lstrip("0") else duration_seconds(text)


def _numbers(table: pa.Table, column: str | None) -> np.ndarray:
    if column is None or column not in table.column_names:
        return np.full(table.num_rows, np.nan)
    values = table.column(column)
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
            or pa.types.is_boolean(values.type)):  # fmt: skip
        raise DataError(f"stream column {column!r} is {values.type}, not numbers")
    return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)


def _micros(column: Any) -> np.ndarray:
    return (
        pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )


def _to_micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _iso_micros(moment: Any) -> int:
    return _to_micros(moment) if isinstance(moment, datetime) else int(moment)


__all__ = ["STATE_FORMAT", "STATE_VERSION", "StreamStep", "load_state", "run_stream"]
