"""``keel.yaml``: monitors declared in a file, validated, with errors that name the key and line.

    monitors:
      - name: loans
        model: loans                      # whose prediction log to read
        baseline: keel-demo/baseline.keel
        source: logs                      # the prediction log (default), or a data path
        window: 7D
        allowed_lateness: 1D              # a window closes this long after its end
        false_alarm_rate: 0.01
        calibration: keel-demo/baseline.calibration-7D.json   # optional
        schedule: "*/15 * * * *"          # cron, for keel monitor serve
        importance: {income: 0.4, ...}    # optional: the model's, ranks the diagnosis
        alerts: [...]                     # rules; see keel.alerts.config
        skew:                             # optional: served features against their truth
          features: [clicks_7d]           #   (keel.checks.skew; docs/skew-and-leakage.md)
          events: events/                 #   the event log keel.features reads
        stream:                           # optional: detectors between windows
          streams: [score, {column: income, detector: ewma}, {errors: true}]
          false_alarm_every: 30D          #   the monitor's, shared by its streams
          stream_interval: 60s            #   (keel.monitor.stream; docs/streaming.md)
    features: [...]                       # top level: windowed features (keel.features)

>>> text = "monitors:\\n  - name: m\\n    model: m\\n    baseline: b.keel\\n    window: 1D\\n"
>>> [m.name for m in parse_config(text, "keel.yaml")]
['m']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from keel.alerts.config import AlertRule, ChannelConfig, rule_errors
from keel.errors import ConfigError
from keel.retrain.policy import RetrainPolicy
from keel.windows import WindowSpec, duration_seconds


class PerformanceConfig(BaseModel):
    """Realized performance from the label log (see keel.checks.performance)."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["binary", "multiclass", "regression"]
    label: str = "label"
    score: str | None = "score"
    prediction: str | None = "prediction"
    classes: list[Any] | None = None
    metrics: list[str] | None = None
    min_labelled_share: float = Field(default=0.5, ge=0, le=1)
    label_maturity: str | None = None
    unlabelled_as: Any = 0
    labels_expected_within: str | None = None
    value_matrix: dict[Literal["tp", "fp", "fn", "tn"], float] | None = None
    estimate: bool = True
    decision_threshold: float | None = Field(default=None, ge=0, le=1)
    unreliable_share: float = Field(default=0.10, gt=0, le=1)
    reliability: Literal["nearest", "domain_classifier"] = "nearest"

    @field_validator("label_maturity", "labels_expected_within")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            duration_seconds(value)
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str] | None) -> list[str] | None:
        from keel.checks.base import stable_names

        unknown = set(value or []) - stable_names()["performance"]
        if unknown:
            raise ValueError(
                f"unknown metric(s) {sorted(unknown)}; valid: "
                f"{', '.join(sorted(stable_names()['performance']))}"
            )
        return value

    def spec(self) -> Any:
        from keel.checks.performance import PerformanceSpec

        return PerformanceSpec(
            task=self.task,
            label=self.label,
            score=self.score,
            prediction=self.prediction,
            classes=self.classes,
            metrics=tuple(self.metrics) if self.metrics else None,
            min_labelled_share=self.min_labelled_share,
            label_maturity_seconds=(
                duration_seconds(self.label_maturity) if self.label_maturity else None
            ),
            unlabelled_as=self.unlabelled_as,
            value_matrix=self.value_matrix,
            estimate=self.estimate,
            decision_threshold=self.decision_threshold,
            unreliable_share=self.unreliable_share,
            reliability=self.reliability,
        )


class KpiConfig(BaseModel):
    """A business KPI: a DuckDB aggregate over a window's rows (see keel.checks.kpis)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    expression: str = Field(min_length=1)
    alert_below: float | None = None
    alert_above: float | None = None


class SegmentConfig(BaseModel):
    """Checks per slice: a column's values or an expression's (see keel.segments)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    column: str | None = None
    expression: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SegmentConfig:
        if (self.column is None) == (self.expression is None):
            raise ValueError("a segment has a column or an expression (one of them)")
        return self


class TableTruthConfig(BaseModel):
    """A table or Parquet source as the truth: as of the served time (keel.checks.skew)."""

    model_config = ConfigDict(extra="forbid")

    table: str = Field(min_length=1)
    timestamp: str = "event_time"
    available: str | None = None


class FeastRepoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(min_length=1)
    refs: list[str] = Field(min_length=1)

    @field_validator("refs")
    @classmethod
    def _refs(cls, value: list[str]) -> list[str]:
        bad = [ref for ref in value if ":" not in ref]
        if bad:
            raise ValueError(f"a Feast feature reference is view:feature, not {bad[0]!r}")
        return value


class FeastTruthConfig(BaseModel):
    """Feast's offline store as the truth (keel[feast])."""

    model_config = ConfigDict(extra="forbid")

    feast: FeastRepoConfig


Truth = Literal["features"] | TableTruthConfig | FeastTruthConfig


def _truth(value: Any) -> Truth:
    """A truth as written: 'features', {table: PATH, ...} or {feast: {repo, refs}}."""
    if value == "features" or isinstance(value, TableTruthConfig | FeastTruthConfig):
        return value
    kind = None
    if isinstance(value, dict):
        kind = FeastTruthConfig if "feast" in value else TableTruthConfig
    if kind is None:
        raise ValueError(
            f"truth is 'features', {{table: PATH, timestamp, available}} or "
            f"{{feast: {{repo, refs}}}}, not {value!r}"
        )
    try:
        return kind.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{key}: {message}" if key else message) from None


def _duration(value: str) -> str:
    try:
        duration_seconds(value)
    except ConfigError as error:
        raise ValueError(str(error)) from None
    return value


class SkewFeature(BaseModel):
    """A feature checked against a truth of its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    truth: Truth = "features"

    _parse_truth = field_validator("truth", mode="before")(classmethod(lambda cls, v: _truth(v)))


class SkewConfig(BaseModel):
    """``skew:``: each served feature against its offline truth, per window.

    ``truth``: ``features`` (the top-level ``features:`` definitions, recomputed by
    keel.features from ``events``; the default), ``{table: PATH, timestamp, available}``
    or ``{feast: {repo, refs}}``; a feature may name its own (``{name, truth}``).
    """

    model_config = ConfigDict(extra="forbid")

    features: list[str | SkewFeature] | None = None
    truth: Truth = "features"
    events: str | None = None
    entity_keys: list[str] | None = None
    request_id: str = "request_id"
    served_time: str | None = None  # the monitor's timestamp by default
    tolerance: float = Field(default=0.001, gt=0, lt=1)
    ttl: str | dict[str, str] | None = None
    clock_tolerance: str = "1s"

    _parse_truth = field_validator("truth", mode="before")(classmethod(lambda cls, v: _truth(v)))

    @field_validator("features", mode="before")
    @classmethod
    def _features(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        parsed = []
        for index, entry in enumerate(value):
            if isinstance(entry, dict):
                try:
                    entry = SkewFeature.model_validate(entry)
                except ValidationError as error:
                    first = error.errors()[0]
                    key = ".".join(str(part) for part in first["loc"])
                    message = first["msg"].removeprefix("Value error, ")
                    raise ValueError(f"[{index}].{key}: {message}") from None
            elif not isinstance(entry, str):
                raise ValueError(f"[{index}]: a feature name, or {{name, truth}}")
            parsed.append(entry)
        return parsed

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        for text in [value] if isinstance(value, str) else (value or {}).values():
            _duration(text)
        return value

    @field_validator("clock_tolerance")
    @classmethod
    def _clock(cls, value: str) -> str:
        return _duration(value)

    def truth_of(self) -> dict[str, Any]:
        """Feature name → the truth it is checked against (config objects)."""
        named: dict[str, Any] = {}
        for entry in self.features or []:
            if isinstance(entry, SkewFeature):
                named[entry.name] = entry.truth
            else:
                named[entry] = self.truth
        return named


DETECTOR_NAMES = ("cusum", "page_hinkley", "ewma")
#: Each detector's defaults in a monitor: tuned for small shifts (docs/streaming.md).
DETECTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "cusum": {"k": 0.25},
    "page_hinkley": {"delta": 0.25},
    "ewma": {"smoothing": 0.1},
    "adwin": {},  # calibrated: its threshold (-ln delta) is set for the target ARL0
    "kswin": {},  # likewise (-ln alpha); slow to calibrate for large targets
}


class StreamEntry(BaseModel):
    """One stream: a column of the prediction log (a score, a feature), or the errors."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = None
    #: The per-request error once its label arrives (needs the monitor's performance: block).
    errors: bool = False
    detector: Literal["cusum", "page_hinkley", "ewma", "adwin", "kswin"] | None = None
    options: dict[str, float | str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> StreamEntry:
        if (self.column is None) == (not self.errors):
            raise ValueError("a stream is a column ({column: NAME}) or the errors ({errors: true})")
        return self

    @property
    def name(self) -> str:
        return "errors" if self.errors else str(self.column)


class StreamConfig(BaseModel):
    """``stream:``: streaming detectors over the logs, between windows (keel.monitor.stream).

    ``streams``: column names, or ``{column | errors: true, detector, options}``;
    ``false_alarm_every``: the monitor's target, one false alarm per that period across all
    its streams (each of m streams gets m × it), converted to values with the observed
    request rate (or ``requests_per_second``); ``stream_interval``: how often ``keel monitor
    serve`` reads the logs; ``lateness``: records are read once this old (the log compacts
    within seconds); ``reference``: the in-control holdout file (default: the baseline's
    holdout as it keeps it, else its sample); ``state``: the state file;
    ``resolve_after``: a stream this long without an alarm writes a quiet Result, ending
    the episode; ``alarms``: ``first`` (an episode's first alarm is stored) or ``every``.
    """

    model_config = ConfigDict(extra="forbid")

    streams: list[str | StreamEntry] = Field(min_length=1)
    detector: Literal["cusum", "page_hinkley", "ewma", "adwin", "kswin"] = "cusum"
    options: dict[str, float | str] = Field(default_factory=dict)
    false_alarm_every: str = "30D"
    requests_per_second: float | None = Field(default=None, gt=0)
    stream_interval: str = "60s"
    lateness: str = "30s"
    resolve_after: str = "1D"
    #: Which alarms become stored Results: an episode's first (default), or every one.
    alarms: Literal["first", "every"] = "first"
    reference: str | None = None
    state: str | None = None

    @field_validator("false_alarm_every", "stream_interval", "resolve_after")
    @classmethod
    def _durations(cls, value: str) -> str:
        return _duration(value)

    @field_validator("lateness")
    @classmethod
    def _lateness(cls, value: str) -> str:
        import re

        return value if re.fullmatch(r"0+[A-Za-z]*", value) else _duration(value)

    @field_validator("streams", mode="before")
    @classmethod
    def _streams(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        parsed, seen = [], set()
        for index, entry in enumerate(value):
            if isinstance(entry, str):
                entry = StreamEntry(column=entry)
            elif isinstance(entry, dict):
                try:
                    entry = StreamEntry.model_validate(entry)
                except ValidationError as error:
                    first = error.errors()[0]
                    key = ".".join(str(part) for part in first["loc"])
                    message = first["msg"].removeprefix("Value error, ")
                    raise ValueError(f"[{index}]{'.' + key if key else ''}: {message}") from None
            else:
                raise ValueError(f"[{index}]: a column name, or {{column | errors: true, ...}}")
            if entry.name in seen:
                raise ValueError(f"[{index}]: stream {entry.name!r} is listed twice")
            seen.add(entry.name)
            parsed.append(entry)
        return parsed

    @model_validator(mode="after")
    def _detectors(self) -> StreamConfig:
        from keel.online import DETECTORS

        for index, entry in enumerate(self.entries):
            kind, options = self.detector_of(entry)
            try:
                if kind in ("cusum", "ewma"):
                    DETECTORS[kind](0.0, 1.0, **options)
                else:
                    DETECTORS[kind](**options)
            except (TypeError, ConfigError) as error:
                where = (
                    "options"
                    if entry.detector is None and not entry.options
                    else (f"streams[{index}].options")
                )
                text = str(error).split("__init__() ")[-1]
                raise ValueError(f"{where}: {kind}: {text}") from None
        return self

    @property
    def entries(self) -> list[StreamEntry]:
        return [e if isinstance(e, StreamEntry) else StreamEntry(column=e) for e in self.streams]

    def detector_of(self, entry: StreamEntry) -> tuple[str, dict[str, Any]]:
        """The detector a stream runs and its options: the stream's, else the block's."""
        kind = entry.detector or self.detector
        options = dict(DETECTOR_DEFAULTS[kind])
        if entry.detector is None or entry.detector == self.detector:
            options |= self.options
        return kind, options | entry.options


class MonitorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    baseline: str
    source: str = "logs"
    window: str
    allowed_lateness: str = "0h"
    false_alarm_rate: float = Field(default=0.01, gt=0, lt=1)
    calibration: str | None = None
    timestamp: str = "event_time"
    logs: str | None = None
    schedule: str = "*/15 * * * *"
    importance: dict[str, float] | None = None
    #: A drifted feature under this share of the importance warns instead of alerting.
    min_importance: float = Field(default=0.02, ge=0, le=1)
    #: Rows a whole window is expected to bring; else production's own recent windows decide.
    expected_rows_per_window: float | None = Field(default=None, gt=0)
    performance: PerformanceConfig | None = None
    kpis: list[KpiConfig] = Field(default_factory=list)
    segments: list[SegmentConfig] = Field(default_factory=list)
    max_segments: int = Field(default=20, ge=1, le=500)
    min_segment_rows: int = Field(default=100, ge=1)
    alerts: list[AlertRule] = Field(default_factory=list)
    #: When to retrain and on what (keel.retrain.policy); none: the monitor never retrains.
    retrain: RetrainPolicy | None = None
    #: Served features against their offline truth (keel.checks.skew).
    skew: SkewConfig | None = None
    #: Streaming detectors over the logs between windows (keel.monitor.stream).
    stream: StreamConfig | None = None
    _channels: dict[str, ChannelConfig] = PrivateAttr(default_factory=dict)
    _features: list[Any] = PrivateAttr(default_factory=list)

    @property
    def features(self) -> list[Any]:
        """The top-level ``features:`` definitions of the file (keel.features)."""
        return self._features

    @property
    def channels(self) -> dict[str, ChannelConfig]:
        """The channels this monitor's alert rules name (declared at the top of keel.yaml)."""
        return self._channels

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        spec = WindowSpec.parse(value)
        if spec.count is not None:
            raise ValueError(
                "a monitor's window is a period (1h, 1D, 7D) or a row count (10000rows); "
                "a number of windows needs the data's end"
            )
        return value

    @model_validator(mode="after")
    def _row_windows(self) -> MonitorConfig:
        if WindowSpec.parse(self.window).rows is not None:
            if self.source != "logs":
                raise ValueError(
                    "row windows are cut in ingestion order: they read the prediction log "
                    "(source: logs)"
                )
            if self.segments:
                raise ValueError("segments need a time window (1h, 1D, 7D), not row windows")
        return self

    @model_validator(mode="after")
    def _stream_sources(self) -> MonitorConfig:
        if self.stream is None:
            return self
        if self.source != "logs":
            raise ValueError("stream: the streaming detectors tail the logs (source: logs)")
        for index, entry in enumerate(self.stream.entries):
            if entry.errors and self.performance is None:
                raise ValueError(
                    f"stream.streams[{index}]: the error stream needs the monitor's "
                    "performance: block (its task, label and score or prediction)"
                )
        return self

    @field_validator("allowed_lateness")
    @classmethod
    def _lateness(cls, value: str) -> str:
        duration_seconds(value)
        return value

    @property
    def lateness_seconds(self) -> float:
        return duration_seconds(self.allowed_lateness)


def load_config(path: str | Path = "keel.yaml") -> list[MonitorConfig]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    return parse_config(path.read_text(), str(path))


def parse_config(text: str, source: str) -> list[MonitorConfig]:
    try:
        document = yaml.compose(text)
        payload = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML ({error})") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("monitors"), list):
        raise ConfigError(f"{source}: expected a top-level 'monitors:' list")
    _refuse_repeated_keys(document, source)
    unknown = sorted(set(payload) - TOP_LEVEL_KEYS)
    if unknown:
        line = next(k.start_mark.line + 1 for k, _ in document.value if k.value == unknown[0])
        where = f" (line {line})"
        raise ConfigError(
            f"{source}{where}: unknown top-level key {unknown[0]!r}; "
            f"keel.yaml has {', '.join(sorted(TOP_LEVEL_KEYS))}"
        )
    features = _features(payload.get("features"), source, document)
    channels: dict[str, ChannelConfig] = {}
    for index, entry in enumerate(payload.get("channels") or []):
        try:
            channel = ChannelConfig.model_validate(entry)
        except ValidationError as error:
            raise ConfigError(_explain(error, source, document, "channels", index)) from error
        if channel.name in channels:
            raise ConfigError(f"{source}: channel {channel.name!r} is declared twice")
        channels[channel.name] = channel
    monitors, names = [], set()
    for index, entry in enumerate(payload["monitors"]):
        try:
            monitor = MonitorConfig.model_validate(entry)
        except (ValidationError, ConfigError) as error:
            raise ConfigError(_explain(error, source, document, "monitors", index)) from error
        if monitor.baseline.startswith("models:/"):  # a registered version's baseline
            from keel.binding import bind_baseline, bind_calibration
            from keel.errors import KeelError

            try:
                monitor.baseline = str(bind_baseline(monitor.baseline))
                if monitor.calibration is None:  # made when the version is first bound
                    rate = monitor.false_alarm_rate
                    made = bind_calibration(monitor.baseline, monitor.window, rate)
                    monitor.calibration = str(made) if made else None
            except KeelError as error:
                raise ConfigError(f"{source}: monitors[{index}].baseline: {error}") from error
        if monitor.name in names:
            raise ConfigError(f"{source}: monitor {monitor.name!r} is declared twice")
        problems = rule_errors(monitor.alerts, channels) + _kpi_rule_errors(monitor)
        if problems:
            rule, problem = problems[0]
            line = _line_of(document, "monitors", index, "alerts", rule)
            where = f" (line {line})" if line else ""
            raise ConfigError(f"{source}{where}: monitors[{index}].alerts.{rule}: {problem}")
        try:
            _validate_kpis(monitor)
        except ConfigError as error:
            section = "segments" if str(error).startswith("segment") else "kpis"
            line = _line_of(document, "monitors", index, section)
            where = f" (line {line})" if line else ""
            raise ConfigError(f"{source}{where}: monitors[{index}].{section}: {error}") from error
        monitor._channels = {
            name: channels[name] for rule in monitor.alerts for name in rule.channels
        }
        monitor._features = features
        if monitor.skew is not None:
            try:
                resolve_skew(monitor)
            except ConfigError as error:
                key = getattr(error, "key", None)
                line = _line_of(document, "monitors", index, "skew", *([key] if key else []))
                where = f" (line {line})" if line else ""
                named = f".{key}" if key else ""
                raise ConfigError(
                    f"{source}{where}: monitors[{index}].skew{named}: {error}"
                ) from error
        names.add(monitor.name)
        monitors.append(monitor)
    return monitors


TOP_LEVEL_KEYS = {"monitors", "channels", "features"}


def _features(entries: Any, source: str, document: Any) -> list[Any]:
    """The top-level ``features:`` list, parsed by keel.features (errors name the entry)."""
    if entries is None:
        return []
    from keel.features import parse_features

    try:
        return parse_features(entries, source)
    except ConfigError as error:
        import re

        found = re.search(r"features\[(\d+)\]", str(error))
        line = None
        if found:
            try:
                items = next(v for k, v in document.value if k.value == "features")
                line = items.value[int(found.group(1))].start_mark.line + 1
            except (AttributeError, StopIteration, IndexError):
                line = None
        if line is None:
            raise
        message = str(error).removeprefix(f"{source}: ")
        raise ConfigError(f"{source} (line {line}): {message}") from error


def _events_loader(events: str | None, logs: str | None) -> Any:
    """The event log truth 'features' reads, once per run: ``events``, else the one
    ``keel.features.ingest`` writes under the monitor's log root."""

    def read() -> Any:
        from keel.features._inputs import as_table
        from keel.features.events import event_log

        path = events if events is not None else event_log(logs)
        if not Path(path).exists():
            raise ConfigError(
                f"skew: the event log {path} does not exist (truth 'features' recomputes "
                "the features from it; give skew.events: PATH, or ingest with keel.features)"
            )
        return as_table(str(path), "the skew truth's events")

    return read


@dataclass(frozen=True)
class ResolvedSkew:
    """A monitor's skew block made concrete: the check's spec and each feature's truth."""

    spec: Any  # keel.checks.skew.SkewSpec
    truths: dict[str, Any]  # feature -> keel.checks.skew truth


def _skew_error(key: str | None, message: str) -> ConfigError:
    error = ConfigError(message)
    error.key = key  # type: ignore[attr-defined]
    return error


def resolve_skew(monitor: MonitorConfig) -> ResolvedSkew:
    """The skew check's spec and truths for a monitor, or a ConfigError naming the key.

    Features default to every top-level ``features:`` definition (truth ``features``) or
    the Feast references' names; entity keys to the definitions' entities. Nothing is
    read here: a table truth reads its file when first asked.

    >>> text = ("monitors:\\n  - {name: m, model: m, baseline: b.keel, window: 1D, skew: "
    ...         "{features: [price], truth: {table: prices.parquet}, entity_keys: [item]}}\\n")
    >>> resolved = resolve_skew(parse_config(text, "keel.yaml")[0])
    >>> resolved.spec.features, resolved.truths["price"].name
    (('price',), 'table prices.parquet (as of event_time)')
    """
    from keel.checks.skew import FeastTruth, FeaturesTruth, SkewSpec, TableTruth

    skew = monitor.skew
    assert skew is not None
    defined = {f.name: f for f in monitor.features}
    named = skew.truth_of()
    if not named:
        if skew.truth == "features":
            named = dict.fromkeys(defined, "features")
        elif isinstance(skew.truth, FeastTruthConfig):
            named = {ref.split(":", 1)[1]: skew.truth for ref in skew.truth.feast.refs}
        if not named:
            raise _skew_error(
                "features",
                "name the features to check (or declare them in the top-level 'features:' "
                "list for truth: features)",
            )
    keys = list(skew.entity_keys or [])
    by_features = [name for name, truth in named.items() if truth == "features"]
    if by_features:
        unknown = [name for name in by_features if name not in defined]
        if unknown:
            raise _skew_error(
                "features",
                f"{', '.join(map(repr, unknown))} checked against truth 'features' but not "
                "declared in the top-level 'features:' list"
                + (f" (declared: {', '.join(defined)})" if defined else " (none declared)"),
            )
        if skew.entity_keys is None:
            keys = list(dict.fromkeys(k for name in by_features for k in defined[name].entities))
    if not keys:
        raise _skew_error(
            "entity_keys",
            "give entity_keys: the served log's columns that identify the entity "
            "(a table or Feast truth is joined on them)",
        )
    if isinstance(skew.ttl, dict):
        stray = sorted(set(skew.ttl) - set(named))
        if stray:
            raise _skew_error("ttl", f"ttl names {stray[0]!r}, which is not a checked feature")
    ttl = (
        {name: duration_seconds(text) for name, text in skew.ttl.items()}
        if isinstance(skew.ttl, dict)
        else (duration_seconds(skew.ttl) if skew.ttl is not None else None)
    )
    spec = SkewSpec(
        features=tuple(named),
        entity_keys=tuple(keys),
        request_id=skew.request_id,
        served_time=skew.served_time or monitor.timestamp,
        tolerance=skew.tolerance,
        ttl=ttl,
        clock_tolerance=duration_seconds(skew.clock_tolerance),
    )
    truths: dict[str, Any] = {}
    made: dict[int, Any] = {}  # one truth object per declared truth: asked once per window
    for name, truth in named.items():
        if truth == "features":
            key = -1
            if key not in made:
                from keel.features import compute_offline

                made[key] = FeaturesTruth(
                    [defined[n] for n in by_features],
                    _events_loader(skew.events, monitor.logs),
                    compute_offline,
                    request_id=skew.request_id,
                )
        elif isinstance(truth, TableTruthConfig):
            key = id(truth)
            if key not in made:
                wanted = tuple(n for n, t in named.items() if t is truth)
                made[key] = TableTruth(
                    truth.table,
                    tuple(keys),
                    truth.timestamp,
                    truth.available,
                    features=wanted,
                    request_id=skew.request_id,
                )
        else:
            key = id(truth)
            if key not in made:
                made[key] = FeastTruth(
                    truth.feast.repo,
                    tuple(truth.feast.refs),
                    tuple(keys),
                    request_id=skew.request_id,
                )
        truths[name] = made[key]
    return ResolvedSkew(spec, truths)


def _refuse_repeated_keys(node: Any, source: str) -> None:
    r"""YAML keeps the last of two equal keys without a word; keel.yaml refuses them.

    >>> import yaml
    >>> _refuse_repeated_keys(yaml.compose("a: 1\nb: {c: 1, c: 2}\n"), "keel.yaml")
    Traceback (most recent call last):
    ...
    keel.errors.ConfigError: keel.yaml (line 2): key 'c' is given twice (first on line 2)
    """
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in first:
                raise ConfigError(
                    f"{source} (line {key.start_mark.line + 1}): key {name!r} is given twice "
                    f"(first on line {first[name]})"
                )
            first[name] = key.start_mark.line + 1
            _refuse_repeated_keys(value, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_repeated_keys(item, source)


def _kpi_rule_errors(monitor: MonitorConfig) -> list[tuple[int, str]]:
    """Alert rules on KPIs name a KPI this monitor declares (or the value matrix's)."""
    declared = {k.name for k in monitor.kpis}
    if monitor.performance and monitor.performance.value_matrix:
        declared |= {"value", "value_per_1000"}
    return [
        (
            index,
            f"alert rule {rule.name!r} names KPI {rule.metric!r}; declared KPIs: "
            f"{', '.join(sorted(declared)) or 'none'}",
        )
        for index, rule in enumerate(monitor.alerts)
        if rule.check == "kpi" and rule.metric != "*" and rule.metric not in declared
    ]


def _validate_kpis(monitor: MonitorConfig) -> None:
    """Each KPI expression parses, names known columns and gives one value per window, and
    each segment expression parses and names known columns. The columns are the baseline's
    (when its file is there) and the joined label's."""
    expressions = [s for s in monitor.segments if s.expression]
    if not monitor.kpis and not expressions:
        return
    from keel.checks.kpis import validate_expression
    from keel.segments import validate_segment

    columns = _window_columns(monitor)
    for kpi in monitor.kpis:
        validate_expression(kpi.name, kpi.expression, columns)
    for segment in expressions:
        validate_segment(segment.name, segment.expression, columns)


def _window_columns(monitor: MonitorConfig) -> Any:
    import pyarrow as pa

    if not Path(monitor.baseline).is_file():
        return None
    from keel.baseline import Baseline

    baseline = Baseline.load(monitor.baseline)
    if baseline.sample is not None and baseline.sample.num_columns:
        fields = list(baseline.sample.schema)
    else:
        kinds = {"numeric": pa.float64(), "datetime": pa.timestamp("us", tz="UTC")}
        fields = [pa.field(c.name, kinds.get(c.kind, pa.string())) for c in baseline.schema.columns]
    names = {f.name for f in fields}
    label = monitor.performance.label if monitor.performance else None
    if label and label not in names:
        target = next((c.name for c in baseline.schema.by_role("target")), None)
        typed = next((f.type for f in fields if f.name == target), pa.int64())
        fields.append(pa.field(label, typed))
    fields += [
        pa.field(name, kind)
        for name, kind in (
            ("request_id", pa.string()),
            ("event_time", pa.timestamp("us", tz="UTC")),
            ("model_version", pa.string()),
            ("label_time", pa.timestamp("us", tz="UTC")),
        )
        if name not in names
    ]
    return pa.schema(fields)


def _explain(error: Exception, source: str, document: Any, section: str, index: int) -> str:
    if not isinstance(error, ValidationError):
        return f"{source}: {section}[{index}]: {error}"
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    line = _line_of(document, section, index, *first["loc"])
    where = f" (line {line})" if line else ""
    message = first["msg"].removeprefix("Value error, ")
    return f"{source}{where}: {section}[{index}]{'.' + key if key else ''}: {message}"


def _line_of(document: Any, section: str, index: int, *path: Any) -> int | None:
    """The 1-based line of a key under ``section[index]`` in the YAML, from the composed
    node's marks; the deepest part of ``path`` found."""
    try:
        items = next(v for k, v in document.value if k.value == section)
        node = items.value[index]
    except (AttributeError, StopIteration, IndexError):
        return None
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(part, int) and hasattr(node, "value") and isinstance(node.value, list):
            if part >= len(node.value) or isinstance(node.value[part], tuple):
                break
            node = node.value[part]
        else:
            match = next(
                (
                    (name, value)
                    for name, value in getattr(node, "value", [])
                    if isinstance(name, yaml.Node) and name.value == part
                ),
                None,
            )
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
            continue
        line = node.start_mark.line + 1
    return line
