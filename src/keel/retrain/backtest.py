"""The backtest, point-in-time: what a retrain policy would have done over a logged history.

``backtest(monitor, store, start=, end=)`` replays the monitor's windows from ``start`` to
``end``. At each window's end T it asks ``decide`` (``keel.retrain.policy``) what the
policy would have done, with only what was known at T:

- **diagnoses**: the monitor's stored whole-window diagnoses (latest revision), each
  visible from its window's end, or, for a verdict that needs labels (``concept drift``,
  ``label shift``), from its window's end plus ``diagnosis_delay`` (default: the monitor's
  ``performance.label_maturity``): labels must arrive before a concept drift can be seen;
- **matured labels**: rows of the training window whose label was **ingested** by T
  (``_ingested_at`` of the label log; the label's event time when not logged) and had
  **matured** (its event time at least ``label_maturity`` before T);
- **the last retrain**: the backtest's own previous hypothetical retrain.

A retrain at T trains the policy's entrypoint (``module:function``, called as ``keel
train`` and the job call it: ``function(train: pyarrow.Table, params) -> model``, here in
this process) on those point-in-time rows of its training window (the windows diagnosed
as an excluded verdict left out), with ``params = {"seed": ...}`` derived from the monitor,
T and the row count: the same history gives the same answer. The candidate is assumed in
force from T (the shadow and the gate's wait are not modelled) until the next retrain,
and it is **scored only on rows after its training window**: the rows from T on that it
governs, with the labels the log holds at the end (hindsight: the realized outcome).

The report says when the policy would have retrained (and why not, at every other
window), how many labels each decision had, what each candidate scored against the
champion on the same rows, and the value per 1,000 decisions (the monitor's
``performance.value_matrix``) of three histories on the same labelled rows: the policy,
**never retraining** (the champion throughout), and a **fixed calendar** (a retrain every
``calendar``, default the policy's ``schedule`` or 28 days, with the same point-in-time
rows).

>>> BacktestReport("m", "2026-01-01", "2026-02-01").value_per_1000
{}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from keel.errors import ConfigError, DataError
from keel.retrain.policy import RetrainPolicy, WindowDiagnosis, decide, duration
from keel.seeds import derive_seed

if TYPE_CHECKING:  # the monitor imports the policy; retrain never imports the monitor
    from keel.monitor.config import MonitorConfig

#: Verdicts that need labels: seen only once the window's labels have arrived.
LABEL_VERDICTS = ("concept drift", "label shift")
#: The fixed calendar when the policy has no ``schedule``.
DEFAULT_CALENDAR = "28d"


@dataclass
class Candidate:
    """One hypothetical retrain: when, on what, and how it scored where it was in force."""

    strategy: str
    trained_at: str
    training_window: tuple[str, str]
    training_rows: int
    scored_from: str
    scored_to: str
    scored_rows: int = 0
    metrics: dict[str, float | None] = field(default_factory=dict)
    champion_metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Decision:
    """The policy's answer at one window's end, with the labels it had."""

    at: str
    action: str
    reason: str
    matured_labels: int
    trigger: str | None = None
    candidate: int | None = None  # index into ``BacktestReport.candidates``


@dataclass
class BacktestReport:
    """What the policy would have done (see the module docstring); ``to_dict`` is JSON-ready."""

    monitor: str
    start: str
    end: str
    decisions: list[Decision] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    #: Value per 1,000 labelled decisions: ``policy``, ``never``, ``calendar``.
    value_per_1000: dict[str, float | None] = field(default_factory=dict)
    accuracy: dict[str, float | None] = field(default_factory=dict)
    scored_rows: int = 0
    calendar: str = DEFAULT_CALENDAR

    @property
    def retrained_at(self) -> list[str]:
        """When the policy would have retrained."""
        return [c.trained_at for c in self.candidates if c.strategy == "policy"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The report as people read it."""
        from keel.result import readable

        said = []
        for decision in self.decisions:
            if decision.action != "none":
                said.append(
                    f"{decision.at}: {decision.action} ({decision.matured_labels} matured labels)"
                    f": {decision.reason}"
                )
        for found in self.candidates:
            mine, theirs = found.metrics, found.champion_metrics
            said.append(
                f"  {found.strategy} candidate of {found.trained_at} ({found.training_rows} rows)"
                f" on {found.scored_rows} later rows: value/1000 "
                f"{readable(mine.get('value_per_1000'))} vs champion "
                f"{readable(theirs.get('value_per_1000'))}, accuracy "
                f"{readable(mine.get('accuracy'))} vs {readable(theirs.get('accuracy'))}"
            )
        values = self.value_per_1000
        said.append(
            f"value per 1,000 decisions over {self.scored_rows} labelled rows: policy "
            f"{readable(values.get('policy'))}, never retrain {readable(values.get('never'))}, "
            f"every {self.calendar} {readable(values.get('calendar'))}"
        )
        return said


def backtest(
    monitor: MonitorConfig,
    store: Any,
    *,
    start: datetime,
    end: datetime,
    policy: RetrainPolicy | None = None,
    champion: Any = None,
    diagnoses: list[WindowDiagnosis] | None = None,
    diagnosis_delay: str | None = None,
    calendar: str | None = None,
) -> BacktestReport:
    """Replay the monitor's history from ``start`` to ``end`` with ``policy`` (default the
    monitor's ``retrain:``); see the module docstring.

    ``champion``: the model in force at ``start`` (anything with ``predict``); default the
    log's own ``prediction`` column. ``diagnoses``: instead of the store's. ``calendar``:
    the fixed calendar's interval.

    >>> import tempfile, pathlib, textwrap, datetime as dt
    >>> from keel.monitor.config import parse_config
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> monitor = parse_config(textwrap.dedent(f'''
    ...     monitors:
    ...       - {{name: m, model: loans, baseline: b.keel, window: 7D, logs: {folder},
    ...          retrain: {{entrypoint: "trainer:fit"}}}}'''), "keel.yaml")[0]
    >>> t = dt.datetime(2026, 3, 5, tzinfo=dt.UTC)
    >>> backtest(monitor, None, start=t, end=t + dt.timedelta(weeks=4), diagnoses=[])
    Traceback (most recent call last):
    ...
    keel.errors.DataError: no logged predictions of model 'loans' in 2025-12-11T00:00:00+00:00 ...
    """
    from keel.retrain.job import stored_diagnoses
    from keel.tracking import load_entrypoint
    from keel.windows import WindowSpec

    policy = policy or getattr(monitor, "retrain", None)
    if policy is None:
        raise ConfigError(f"monitor {monitor.name!r} has no retrain: policy (pass --policy)")
    if policy.entrypoint is None:
        raise ConfigError("the retrain: policy names no entrypoint (module:function)")
    start, end = _aware(start), _aware(end)
    if end <= start:
        raise ConfigError(f"--to ({end.isoformat()}) must come after --from ({start.isoformat()})")
    spec = WindowSpec.parse(monitor.window)
    if spec.rows is not None:
        raise ConfigError("the backtest needs a time window (1h, 1D, 7D), not row windows")
    period = timedelta(microseconds=spec.period_ns // 1000)
    last = duration(policy.training_window.last)
    maturity = _maturity(monitor)
    history = _History.read(monitor, start - last, end)
    if diagnoses is None:
        diagnoses = stored_diagnoses(store, monitor.name, end)
    delay = duration(diagnosis_delay) if diagnosis_delay is not None else maturity
    calendar = calendar or policy.schedule or DEFAULT_CALENDAR
    every = duration(calendar)
    fit = load_entrypoint(policy.entrypoint)
    matrix = _value_matrix(monitor)
    threshold = getattr(getattr(monitor, "performance", None), "decision_threshold", None)

    report = BacktestReport(monitor.name, start.isoformat(), end.isoformat(), calendar=calendar)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    moment = epoch + period * ((start - epoch) // period + 1)
    in_force: dict[str, list[tuple[datetime, Any]]] = {"policy": [], "calendar": []}
    last_policy: datetime | None = None
    last_calendar = start
    while moment < end:
        seen = [d for d in diagnoses if _visible_at(d, delay) <= moment]
        known = history.known(moment, maturity)
        window = history.within(moment - last, moment)
        matured = int((known & window).sum())
        decision = decide(policy, seen, moment, last_retrain=last_policy, matured_labels=matured)
        entry = Decision(
            moment.isoformat(), decision.action, decision.reason, matured, decision.trigger
        )
        if decision.retrain:
            rows = known & window & ~history.inside(decision.excluded_windows)
            model, said = _train(fit, history, rows, monitor, moment, "policy")
            if model is None:
                entry.action, entry.reason = "failed", f"{decision.reason}; {said}"
            else:
                entry.candidate = len(report.candidates)
                report.candidates.append(_candidate("policy", moment, last, int(rows.sum())))
                in_force["policy"].append((moment, model))
                last_policy = moment
        report.decisions.append(entry)
        if moment - last_calendar >= every:
            rows = known & window
            model, _ = _train(fit, history, rows, monitor, moment, "calendar")
            if model is not None:
                report.candidates.append(_candidate("calendar", moment, last, int(rows.sum())))
                in_force["calendar"].append((moment, model))
            last_calendar = moment
        moment += period

    scored = history.labelled & history.within(start, end)
    report.scored_rows = int(scored.sum())
    champion_guess = history.champion_predictions(champion, scored, threshold)
    truth = history.positive[scored]
    guesses = {"never": champion_guess}
    for strategy, models in in_force.items():
        guess = champion_guess.copy()
        times = history.times[scored]
        for number, (at, model) in enumerate(models):
            until = models[number + 1][0] if number + 1 < len(models) else end
            governed = (times >= _micros(at)) & (times < _micros(until))
            if governed.any():
                rows = np.flatnonzero(scored)[governed]
                guess[governed] = history.predict(model, rows, threshold)
            found = next(
                c
                for c in report.candidates
                if c.strategy == strategy and c.trained_at == at.isoformat()
            )
            found.scored_to = until.isoformat()
            found.scored_rows = int(governed.sum())
            found.metrics = _metrics(truth[governed], guess[governed], matrix)
            found.champion_metrics = _metrics(truth[governed], champion_guess[governed], matrix)
        guesses[strategy] = guess
    for strategy, guess in guesses.items():
        measured = _metrics(truth, guess, matrix)
        report.value_per_1000[strategy] = measured.get("value_per_1000")
        report.accuracy[strategy] = measured.get("accuracy")
    return report


def load_champion(reference: str, store: Any = None) -> Any:
    """The champion to replay: ``models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``) from the
    registry, or a skops file keel wrote (never a pickle).

    >>> load_champion("no-such-file.skops")
    Traceback (most recent call last):
    ...
    keel.errors.ConfigError: --champion no-such-file.skops: no such file (or write models:/...)
    """
    from pathlib import Path

    from keel.registry.skops_flavour import load_model_bytes

    if reference.startswith("models:/"):
        from keel.registry import open_registry
        from keel.registry.base import load_model

        return load_model(open_registry(store=store), reference)
    path = Path(reference)
    if not path.is_file():
        raise ConfigError(f"--champion {reference}: no such file (or write models:/NAME@ALIAS)")
    return load_model_bytes(path.read_bytes(), reference)


def read_policy(path: Any) -> RetrainPolicy:
    """A ``retrain:`` block from a YAML file (the block itself, or under ``retrain:``).

    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "p.yaml"
    >>> _ = file.write_text("retrain:\\n  entrypoint: trainer:fit\\n  min_interval: 14d\\n")
    >>> read_policy(file).min_interval
    '14d'
    """
    from pathlib import Path

    import yaml

    text = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if isinstance(text, dict) and set(text) == {"retrain"}:
        text = text["retrain"]
    try:
        return RetrainPolicy.model_validate(text)
    except ValueError as error:
        raise ConfigError(f"{path}: not a retrain: policy ({error})") from None


# -- the history ------------------------------------------------------------------------


@dataclass
class _History:
    """The monitor's logged rows in the replayed span, with their labels' times."""

    table: Any
    times: np.ndarray  # event time, µs since the epoch
    labelled: np.ndarray  # a label is in the log (by the end)
    positive: np.ndarray  # the label is the positive class
    label_times: np.ndarray  # µs; huge when unlabelled
    ingested: np.ndarray  # µs; when the label was ingested
    target: str
    features: list[str]
    timestamp: str

    @classmethod
    def read(cls, monitor, start: datetime, end: datetime) -> _History:
        import pyarrow as pa
        import pyarrow.compute as pc

        from keel.baseline import Baseline
        from keel.store.logs import log_root
        from keel.store.queries import read_labelled

        table = read_labelled(log_root(monitor.logs), monitor.model, start, end)
        if not table.num_rows:
            raise DataError(
                f"no logged predictions of model {monitor.model!r} in "
                f"{start.isoformat()} .. {end.isoformat()}"
            )
        baseline = Baseline.load(monitor.baseline)
        performance = getattr(monitor, "performance", None)
        targets = [c.name for c in baseline.schema.by_role("target")]
        label = performance.label if performance is not None else None
        target = label if label and label in table.column_names else (targets or [label])[0]
        if target not in table.column_names:
            raise DataError(f"the label column {target!r} is not in the label log")
        table = table.sort_by(monitor.timestamp)

        def micros(name: str, fallback: Any = None) -> np.ndarray:
            if name not in table.column_names:
                return fallback
            column = pc.cast(table[name], pa.timestamp("us", tz="UTC"))
            values = pc.cast(column, pa.int64())
            return pc.fill_null(values, np.iinfo(np.int64).max).to_numpy()

        labels = table[target]
        labelled = pc.is_valid(labels).to_numpy(zero_copy_only=False)
        positive = pc.fill_null(pc.equal(pc.cast(labels, pa.float64()), 1.0), False)
        label_times = micros("label_time")
        if label_times is None:
            label_times = np.where(labelled, micros(monitor.timestamp), np.iinfo(np.int64).max)
        return cls(
            table,
            micros(monitor.timestamp),
            labelled,
            positive.to_numpy(zero_copy_only=False),
            label_times,
            micros("_label_ingested_at", label_times),
            target,
            [c.name for c in baseline.schema.columns if c.role == "feature"],
            monitor.timestamp,
        )

    def within(self, start: datetime, end: datetime) -> np.ndarray:
        return (self.times >= _micros(start)) & (self.times < _micros(end))

    def inside(self, windows) -> np.ndarray:
        found = np.zeros(len(self.times), bool)
        for low, high in windows:
            found |= self.within(low, high)
        return found

    def known(self, moment: datetime, maturity: timedelta) -> np.ndarray:
        """Labels ingested by ``moment`` and matured by then."""
        return (
            self.labelled
            & (self.ingested <= _micros(moment))
            & (self.label_times <= _micros(moment - maturity))
        )

    def training_table(self, rows: np.ndarray) -> Any:
        from keel.retrain.job import LOG_COLUMNS

        names = [c for c in self.features if c in self.table.column_names and c not in LOG_COLUMNS]
        names += [c for c in (self.target, self.timestamp) if c not in names]
        return self.table.take(np.flatnonzero(rows)).select(names)

    def frame(self, model: Any, rows: np.ndarray) -> Any:
        names = [str(n) for n in getattr(model, "feature_names_in_", [])]
        if not names:
            names = [c for c in self.features if c in self.table.column_names]
        return self.table.take(rows).select(names).to_pandas()

    def predict(self, model: Any, rows: np.ndarray, threshold: float | None) -> np.ndarray:
        """Whether the model decides positive on each of ``rows`` (indices)."""
        frame = self.frame(model, rows)
        if threshold is not None and hasattr(model, "predict_proba"):
            return np.asarray(model.predict_proba(frame))[:, 1] >= threshold
        return np.asarray(model.predict(frame)).astype(float) == 1.0

    def champion_predictions(self, champion, rows: np.ndarray, threshold) -> np.ndarray:
        if champion is not None:
            return self.predict(champion, np.flatnonzero(rows), threshold)
        if "prediction" not in self.table.column_names:
            raise DataError(
                "the log has no prediction column and no champion model was given "
                "(--champion models:/NAME@champion)"
            )
        import pyarrow as pa
        import pyarrow.compute as pc

        logged = pc.cast(self.table["prediction"], pa.float64())
        return pc.fill_null(pc.equal(logged, 1.0), False).to_numpy(zero_copy_only=False)[rows]


def _train(fit, history: _History, rows: np.ndarray, monitor, moment: datetime, strategy: str):
    """(model, None) or (None, why not): the entrypoint on the point-in-time rows."""
    count = int(rows.sum())
    if count < 10:
        return None, f"only {count} labelled, matured rows to train on"
    seed = derive_seed("retrain-backtest", monitor.name, strategy, moment.isoformat(), str(count))
    try:
        model = fit(history.training_table(rows), {"seed": seed})
    except Exception as error:  # noqa: BLE001 - a failed hypothetical retrain is reported
        return None, f"the entrypoint failed: {type(error).__name__}: {error}"
    if not (hasattr(model, "predict") or hasattr(model, "predict_proba")):
        return None, f"the entrypoint returned a {type(model).__name__}, not a model"
    return model, None


def _candidate(strategy: str, moment: datetime, last: timedelta, rows: int) -> Candidate:
    return Candidate(
        strategy,
        moment.isoformat(),
        ((moment - last).isoformat(), moment.isoformat()),
        rows,
        moment.isoformat(),
        moment.isoformat(),
    )


def _metrics(truth: np.ndarray, guess: np.ndarray, matrix) -> dict[str, float | None]:
    if not len(truth):
        return {"accuracy": None, "value_per_1000": None}
    found: dict[str, float | None] = {"accuracy": float(np.mean(truth == guess))}
    if matrix:
        from keel.checks.kpis import outcome_values

        found["value_per_1000"] = float(outcome_values(truth, guess, matrix).mean() * 1000)
    else:
        found["value_per_1000"] = None
    return found


def _value_matrix(monitor) -> dict[str, float] | None:
    performance = getattr(monitor, "performance", None)
    return dict(performance.value_matrix) if performance and performance.value_matrix else None


def _visible_at(diagnosis: WindowDiagnosis, delay: timedelta) -> datetime:
    end = _aware(diagnosis.window_end)
    return end + delay if diagnosis.verdict in LABEL_VERDICTS else end


def _maturity(monitor) -> timedelta:
    from keel.retrain.promotion import _maturity as maturity

    return maturity(monitor)


def _micros(moment: datetime) -> int:
    return int((_aware(moment) - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
