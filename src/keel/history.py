"""Checks over time: every window of a table against a baseline, in one call.

``check_history`` cuts the data into windows (``keel.windows``), profiles
each once in the baseline's bins, and runs every check on the window
profiles: feature, prediction and target drift (calibrated when a
Calibration is given or the reference data is at hand, the one-off rule
otherwise) and the data quality checks of ``keel.checks.quality``. It
returns a History: Results in DESIGN's schema, one JSON object per window,
and a "what changed, when" summary.

>>> import numpy as np, pandas as pd
>>> import pyarrow as pa

from keel.baseline import Baseline
>>> rng = np.random.default_rng(0)
>>> times = pd.date_range("2026-01-01", periods=60 * 24 * 12, freq="5min", tz="UTC")
>>> frame = pd.DataFrame({"ts": times, "x": rng.normal(size=len(times))})
>>> reference, later = frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2 :].copy()
>>> baseline = Baseline.from_data(reference, timestamp="ts", sample_size=0)
>>> later.loc[later.index[-2 * 24 * 12 :], "x"] += 1
>>> history = check_history(baseline, later, window="1D", reference=reference)
>>> for line in history.summary():
...     print(line)
x: feature drift (wasserstein) in 2 windows 2026-02-28 to 2026-03-01
x: out of range share in window 2026-03-01
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from keel.baseline import Baseline
from keel.calibration import Calibration
from keel.checks.drift import DriftReport, ProfileSide
from keel.checks.suite import WindowContext, run_window_checks
from keel.diagnosis import MIN_IMPORTANCE, Diagnosis, diagnose, surrogate_importance
from keel.engines.spark import is_spark_frame  # pyspark loads only for a Spark frame
from keel.errors import ConfigError, DataError, KeelError
from keel.result import RESULT_COLUMNS, Result
from keel.seeds import derive_seed
from keel.stats.verdict import DefaultRule
from keel.windows import WindowSpec, cut


@dataclass
class WindowResult:
    start: str
    end: str
    rows: int
    complete: bool
    drift: DriftReport
    quality: list[Result] = field(default_factory=list)
    diagnosis: Diagnosis | None = None
    partial: bool = False  # the data starts or ends inside the window: never judged on volume

    #: Each feature's share of the importance that paged it (user-given or the surrogate's).
    importance: dict[str, float] | None = None
    min_importance: float = 0.02

    @property
    def alert(self) -> bool:
        return self.drift.alert or any(r.status == "alert" for r in self.quality)

    def judge_with(self, found: list[Result]) -> None:
        """Performance Results of this window (realized, estimated, KPIs) join its verdict.

        When realized or estimated performance alerts, the drift held back for low
        importance pages after all (``escalate``); the diagnosis is made again with them.
        """
        falling = [r for r in found if r.status == "alert" and r.check in PAGING_CHECKS]
        if falling:
            escalate(self, f"{falling[0].check.replace('_', ' ')} alerts in the same window")
        self.diagnosis = diagnose(
            [*_without_diagnosis(self), *found], self.importance, self.min_importance
        )

    def results(self) -> list[Result]:
        checks = [*self.drift.to_results(), *self.quality]
        if self.diagnosis is not None:
            checks.append(self.diagnosis.to_result())
        marked = {"partial": True} if self.partial else {}
        return [
            replace(
                r,
                window_start=self.start,
                window_end=self.end,
                details={**(r.details or {}), **marked},
            )
            for r in checks
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "complete": self.complete,
            "partial": self.partial,
            "drift": self.drift.drift,
            "alert": self.alert,
            "drifted_columns": self.drift.dataset["drifted_columns"],
            "prediction_drift": self.drift.dataset["prediction_drift"],
            "target_drift": self.drift.dataset["target_drift"],
            "findings": self.drift.dataset["findings"],
            "columns": [c.to_dict() | {"distribution": None} for c in self.drift.columns],
            "quality": [r.to_dict() for r in self.quality],
        }


@dataclass
class History:
    baseline_id: str
    window: str
    windows: list[WindowResult]
    calibration: Calibration | None = None

    @property
    def alert(self) -> bool:
        return any(w.alert for w in self.windows)

    def results(self) -> list[Result]:
        return [result for window in self.windows for result in window.results()]

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in self.results()], columns=RESULT_COLUMNS)

    def save(self, store: Any, monitor: str, actor: str = "keel") -> tuple[int, int]:
        """Store every window's Results under ``monitor`` as one run of a results store
        (``keel.store.ResultStore``); returns (written, unchanged). Saving the same history
        again writes nothing new.

        >>> import pyarrow as pa, numpy as np
        >>> from keel.store import ResultStore
        >>> rng = np.random.default_rng(0)
        >>> baseline = Baseline.from_data(pa.table({"x": rng.normal(size=2_000)}), sample_size=0)
        >>> history = check_history(baseline, pa.table({"x": rng.normal(size=2_000)}), "1000rows")
        >>> store = ResultStore("sqlite://")
        >>> written, _ = history.save(store, "m")
        >>> written > 0, history.save(store, "m")[0]
        (True, 0)
        """
        run = store.start_run(monitor, {"window": self.window, "baseline": self.baseline_id})
        rows = [replace(r, monitor=monitor) for r in self.results()]
        written, unchanged = store.write(rows, run)
        store.finish_run(run, "alert" if self.alert else "ok")
        store.log_event(
            actor,
            "stored results",
            monitor,
            {"written": written, "unchanged": unchanged, "run": run},
        )
        return written, unchanged

    def to_dict(self) -> dict[str, Any]:
        calibration = self.calibration
        return {
            "baseline": self.baseline_id,
            "window": self.window,
            "alert": self.alert,
            "calibration": None
            if calibration is None
            else {
                "false_alarm_rate": calibration.false_alarm_rate,
                "reference_windows": calibration.reference_windows,
                "fallback": calibration.fallback,
            },
            "windows": [w.to_dict() for w in self.windows],
            "summary": self.summary(),
        }

    def summary(self) -> list[str]:
        """What changed, when: per alerting column and metric, its runs of consecutive windows."""
        hits: dict[tuple[str, str, str], list[int]] = {}
        for index, window in enumerate(self.windows):
            for result in window.results():
                if result.status == "alert" and result.check != "diagnosis":
                    key = (result.column or "(table)", result.check, result.metric)
                    hits.setdefault(key, []).append(index)
        lines = []
        for (column, check, metric), indices in hits.items():
            runs: list[list[int]] = []
            for index in indices:
                if runs and index == runs[-1][-1] + 1:
                    runs[-1].append(index)
                else:
                    runs.append([index])
            spans = ", ".join(self._span(run) for run in runs)
            what = (
                metric.replace("_", " ")
                if check == "quality"
                else (f"{check.replace('_', ' ')} ({metric})")
            )
            lines.append(f"{column}: {what} in {spans}")
        return lines

    def _span(self, run: list[int]) -> str:
        first, last = self.windows[run[0]].start[:10], self.windows[run[-1]].start[:10]
        if len(run) == 1:
            return f"window {first}"
        return f"{len(run)} windows {first} to {last}"


def check_history(
    baseline: Baseline | str,
    data: Any,
    window: str = "1D",
    timestamp: str | None = None,
    calibration: Calibration | None = None,
    reference: Any = None,
    false_alarm_rate: float = 0.01,
    incomplete: str = "keep",
    rule: DefaultRule | None = None,
    multivariate: bool = True,
    importance: dict[str, float] | None = None,
    data_start: Any = None,
    data_end: Any = None,
    window_keys: list[tuple[str, str]] | None = None,
    min_importance: float = MIN_IMPORTANCE,
    expected_rows: float | None = None,
    recent_rows: list[float] | None = None,
    diagnose: bool = True,
) -> History:
    """Run every check on every window of ``data`` (see the module docstring).

    ``reference`` (the baseline's reference data) calibrates thresholds for
    this window size at ``false_alarm_rate`` (the share of windows allowed a
    false alert); without it or a ``calibration``, the one-off rule decides.
    ``multivariate`` adds the domain classifier and the reconstruction error
    (``keel.checks.multivariate``) on each window's sample of 2,000 rows,
    when the baseline kept a reference sample; each uses a tail of a tenth of
    the false alarm rate, so together they add at most a fifth of it.

    Each window ends with a diagnosis (``keel.diagnosis``); data drift is ranked
    by drift × ``importance`` (feature → weight, from the model), or, without it,
    by a surrogate's importance fitted on the baseline's sample.

    A window the data starts or ends inside is partial (``keel.windows``): its Results carry
    ``details.partial``, and its volume is not judged (``insufficient_data``). When ``data`` is a
    part of a longer log, ``data_start`` and ``data_end`` say where the log starts and ends.
    Every random step (each window's row sample, the domain classifier) is seeded from the
    baseline's id, the window's start and its purpose (``keel.seeds``): the same window of the
    same data gets the same answer in every process, whichever windows are checked with it.

    Paging is importance-weighted: a drifted feature whose share of the importance (the
    user's ``importance``, else the surrogate's) is below ``min_importance`` is ``warn``, not
    ``alert``, and so is a multivariate alert whose most involved column is; realized or
    estimated performance alerting in the same window pages them after all
    (``WindowResult.judge_with``). Set ``min_importance=0`` to page on every drift.

    Volume is judged against the production windows before each one (``recent_rows``: the
    rows of windows checked earlier, oldest first; then this call's own windows) or a declared
    ``expected_rows`` per window; never against the training set's rows per window.

    ``diagnose=False`` leaves each window's diagnosis to the caller, who has more of its
    Results to add (a monitor's performance and KPIs: ``WindowResult.judge_with``), so that
    a window is diagnosed once.

    ``data`` may be a Spark DataFrame: its time windows are profiled in one read of it
    (``keel.engines.spark.cut_frame``), and the Results equal those of the same rows read here
    (each window's sample, for the multivariate checks, is a hash sample, the same under any
    partitioning, rather than the local one).

    ``window_keys`` names row windows cut elsewhere (a monitor's, in ingestion order): ``data``
    is their rows, in order, ``window`` rows each, and window i is called
    ``window_keys[i]`` (start, end).
    """
    from keel.compare import align_schema

    if not isinstance(baseline, Baseline):
        baseline = Baseline.load(baseline)
    spec = WindowSpec.parse(window, incomplete=incomplete)
    spark = is_spark_frame(data)  # windows as a group-by on the Spark engine, one read
    if spark:
        from keel.engines.spark import cut_frame

        source, schema = spark_history_source(baseline, data)
    else:
        source = baseline.open_current(data)  # embedding, text and image columns expanded
        schema = align_schema(baseline.schema, source)
    timestamp = timestamp or next((c.name for c in schema.columns if c.role == "timestamp"), None)
    if calibration is None and reference is not None:
        calibration = Calibration.fit(baseline, reference, window, timestamp, false_alarm_rate)
    model = None
    if multivariate and baseline.sample is not None and baseline.sample.num_rows >= 200:
        model = fitted_once(baseline, "multivariate", _multivariate_reference)
    if calibration is not None:
        calibration.check_fits(baseline.id, spec.describe())
    named = {}
    if window_keys is not None:
        if spec.rows is None:
            raise ConfigError("window keys name row windows: give a row count as the window")
        named = {str(i * spec.rows): key for i, key in enumerate(window_keys)}
    windows = (cut_frame if spark else cut)(
        source,
        spec,
        schema,
        timestamp,
        baseline.bin_edges,
        sample_size=2_000 if model is not None else 0,
        sample_seed=derive_seed(baseline.id, "window_sample")  # one hash seed: any partitioning
        if spark
        else lambda start: derive_seed(baseline.id, named.get(start, (start,))[0], "window_sample"),
        data_start=data_start,
        data_end=data_end,
    )
    if window_keys is not None:
        if len(windows) != len(window_keys) or any(w.partial for w in windows):
            raise DataError(
                f"{len(window_keys)} row windows named, but the data holds "
                f"{sum(w.rows for w in windows):,} rows: not {spec.rows} to each"
            )
        for piece, (start, end) in zip(windows, window_keys, strict=True):
            piece.start, piece.end = start, end
    reference_side = ProfileSide(baseline.profile, f"baseline {baseline.id}")
    results = []
    seen_rows = [float(r) for r in recent_rows or []]
    for piece in windows:  # windows × one suite
        report, quality = run_window_checks(
            WindowContext(
                baseline,
                schema,
                piece,
                reference_side,
                timestamp=timestamp,
                period_seconds=spec.period_ns / 1e9 if spec.period is not None else None,
                rule=rule,
                calibration=calibration,
                multivariate=model,
                false_alarm_rate=false_alarm_rate,
                expected_rows=expected_rows,
                seen_rows=seen_rows,
            )
        )
        results.append(
            WindowResult(
                piece.start,
                piece.end,
                piece.rows,
                piece.complete,
                report,
                quality,
                partial=piece.partial,
            )
        )
    _diagnose(results, baseline, importance, min_importance, diagnose)
    return History(baseline.id, spec.describe(), results, calibration)


def _diagnose(
    windows: list[WindowResult],
    baseline: Baseline,
    importance: dict[str, float] | None,
    min_importance: float = MIN_IMPORTANCE,
    verdict: bool = True,
) -> None:
    """Weigh each window's drift by importance (``page_by_importance``), then diagnose it
    (unless ``verdict`` is False: the caller will, once, with more Results)."""
    drifted = any(
        r.status == "alert" and r.check in ("feature_drift", "multivariate")
        for w in windows
        for r in w.results()
    )
    if importance is None and drifted:
        # fitted only when something drifted, once per baseline in a process
        importance = fitted_once(  # and beside the baseline file: once per baseline
            baseline, "importance", lambda b: b.kept_beside("importance", baseline_importance)
        )
    shares = importance_shares(importance, [c.name for c in baseline.schema.features])
    for window in windows:
        window.importance, window.min_importance = shares, min_importance
        if shares:
            page_by_importance(window, shares, min_importance)
        if verdict:
            window.diagnosis = diagnose(window.results(), shares, min_importance)


def importance_shares(
    importance: dict[str, float] | None, features: list[str]
) -> dict[str, float] | None:
    """Each feature's share of the total importance (the weights normalised to sum to 1).

    >>> importance_shares({"income": 3.0, "zip": 0.0, "age": 1.0}, ["income", "zip", "age"])
    {'income': 0.75, 'zip': 0.0, 'age': 0.25}
    """
    if not importance:
        return None
    weights = {
        k: max(float(v), 0.0) for k, v in importance.items() if k in set(features) or not features
    }
    total = sum(weights.values())
    if total <= 0:
        return None
    return {k: v / total for k, v in weights.items()}


def page_by_importance(
    window: WindowResult, shares: dict[str, float], min_importance: float
) -> None:
    """Drift in features the model hardly uses is a ``warn`` that says so, not an alert.

    Every feature's importance share goes in its details; a drifted feature under
    ``min_importance`` loses its alert (``details.unimportant``), and so does a multivariate
    alert whose most involved column is under it. ``escalate`` undoes it.
    """
    report = window.drift
    for column in report.columns:
        if column.check != "feature_drift" or column.column not in shares:
            continue
        weight = shares[column.column]
        column.details["importance"] = weight
        if column.drift and weight < min_importance:
            column.drift, column.status = False, "warn"
            column.details["unimportant"] = True
            column.details["reason"] = (
                f"drifted, but its importance {weight:.2f} is below min_importance "
                f"{min_importance:g}: a warning unless performance alerts in the same window"
            )
    for index, result in enumerate(window.quality):
        involved = (result.details or {}).get("top_columns") or []
        if (
            result.check == "multivariate"
            and result.status == "alert"
            and involved
            and shares.get(involved[0], 1.0) < min_importance  # the column it relied on most
        ):
            window.quality[index] = replace(
                result,
                status="warn",
                details={
                    **result.details,
                    "unimportant": True,
                    "reason": (
                        f"the column most involved ({involved[0]}) has importance "
                        f"{shares.get(involved[0], 0.0):.2f}, below min_importance "
                        f"{min_importance:g}: a warning unless performance alerts in the "
                        "same window"
                    ),
                },
            )
    _recount(report)


def escalate(window: WindowResult, reason: str) -> None:
    """Drift held back for low importance pages after all, saying why (``paged_because``)."""
    for column in window.drift.columns:
        if column.details.pop("unimportant", False):
            column.drift, column.status = True, "alert"
            column.details.pop("reason", None)
            column.details["paged_because"] = reason
    for index, result in enumerate(window.quality):
        details = dict(result.details or {})
        if details.pop("unimportant", False):
            details.pop("reason", None)
            window.quality[index] = replace(
                result, status="alert", details={**details, "paged_because": reason}
            )
    _recount(window.drift)


PAGING_CHECKS = ("performance", "estimated_performance")


def judge_stored(
    stored: list[Result], found: list[Result], min_importance: float = MIN_IMPORTANCE
) -> tuple[list[Result], Diagnosis]:
    """A window checked before, judged again with its performance Results (labels came).

    Drift held back for low importance (``details.unimportant``) pages when realized or
    estimated performance alerts; the verdict is made again from every Result.

    >>> held = Result("feature_drift", "zip", "psi", 0.4, 0.1, "warn",
    ...               details={"unimportant": True, "importance": 0.0})
    >>> fell = Result("performance", None, "roc_auc", 0.52, 0.7, "alert")
    >>> results, diagnosis = judge_stored([held], [fell])
    >>> results[0].status, results[0].details["paged_because"], diagnosis.verdict
    ('alert', 'performance alerts in the same window', 'concept drift')
    """
    falling = [r for r in found if r.status == "alert" and r.check in PAGING_CHECKS]
    if falling:
        reason = f"{falling[0].check.replace('_', ' ')} alerts in the same window"
        stored = [_paged(r, reason) if (r.details or {}).get("unimportant") else r for r in stored]
    return stored, diagnose([*stored, *found], None, min_importance)


def _paged(result: Result, reason: str) -> Result:
    details = {k: v for k, v in result.details.items() if k not in ("unimportant", "reason")}
    return replace(result, status="alert", details={**details, "paged_because": reason})


def _recount(report: DriftReport) -> None:
    dataset = report.dataset
    drifted = [c.column for c in report.columns if c.drift and c.check == "feature_drift"]
    held = [c.column for c in report.columns if c.details.get("unimportant") and c.status == "warn"]
    dataset["drifted_columns"], dataset["drift"] = drifted, bool(drifted)
    dataset["unimportant_drift"] = held
    dataset["alert"] = bool(
        drifted or dataset["prediction_drift"] or dataset["target_drift"]
    ) or any(f["level"] == "alert" for f in dataset["findings"])
    checked = dataset.get("columns_checked") or 0
    dataset["share_drifted"] = len(drifted) / checked if checked else 0.0


_FITTED: dict[tuple[str, str], Any] = {}


def fitted_once(baseline: Baseline, what: str, fit: Any) -> Any:
    """What is fitted on a baseline's sample, once per baseline and process: a monitor that
    runs every few minutes (``keel monitor serve``) does not refit it every run."""
    key = (baseline.fingerprint, what)
    if key not in _FITTED:
        if len(_FITTED) >= 16:  # a few baselines at a time; drop the oldest
            _FITTED.pop(next(iter(_FITTED)))
        _FITTED[key] = fit(baseline)
    return _FITTED[key]


def _multivariate_reference(baseline: Baseline) -> Any:
    from keel.checks.multivariate import MultivariateReference

    return MultivariateReference.fit(
        baseline.sample, baseline.schema, seed=derive_seed(baseline.id, "reference", "multivariate")
    )


def _without_diagnosis(window: WindowResult) -> list[Result]:
    return [r for r in window.results() if r.check != "diagnosis"]


def baseline_importance(baseline: Baseline) -> dict[str, float] | None:
    """A surrogate's feature importance for the model's output (score, else prediction,
    else the target) on the baseline's sample; None when the sample cannot tell."""
    sample = baseline.sample
    if sample is None or sample.num_rows < 200:
        return None
    output = next(
        (
            spec.name
            for role in ("score", "prediction", "target")
            for spec in baseline.schema.by_role(role)
            if spec.name in sample.column_names
        ),
        None,
    )
    features = [c.name for c in baseline.schema.features if c.name in sample.column_names]
    if output is None or not features:
        return None
    seed = derive_seed(baseline.id, "reference", "surrogate_importance")
    return surrogate_importance(sample, features, output, seed=seed) or None


def spark_history_source(baseline: Any, frame: Any) -> tuple[Any, Any]:
    """A Spark DataFrame as ``keel.check_history`` reads current data: the columns keel
    profiles (others named in a warning), and their schema aligned with the baseline's
    (``keel.compare.align_schema``), as for local data."""
    from keel.compare import align_schema
    from keel.engines.spark import frame_head, known_frame

    if baseline.unstructured is not None:
        raise KeelError(
            f"baseline {baseline.id} expands embedding, text or image columns, which the "
            "Spark engine does not: check that data locally"
        )
    frame = known_frame(frame)
    return frame, align_schema(baseline.schema, frame_head(frame))
