"""Feature drift: compare every feature column of a reference with the same column now.

``compare_sides`` takes two *sides*, each able to hand out one column's sample:
a profile (profile mode: O(bins) per column, sketch error folded into the
test) or an in-memory table (exact mode: raw values, agreeing with scipy).
It returns a ``DriftReport``: one ``ColumnDrift`` per feature, the dataset
verdict, and findings for columns that could not be compared (missing,
type changed, all null).

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> reference = pd.DataFrame({"x": rng.normal(size=5000), "y": rng.normal(size=5000)})
>>> current = pd.DataFrame({"x": rng.normal(size=5000) + 1.0, "y": rng.normal(size=5000)})
>>> report = compare_sides(TableSide.from_data(reference), TableSide.from_data(current))
>>> report.dataset["drift"], report.dataset["drifted_columns"]
(True, ['x'])
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from keel.errors import ConfigError
from keel.profile import CategoricalProfile, NumericProfile, Profile
from keel.result import RESULT_COLUMNS, Result
from keel.schema import ColumnSpec, Schema, kind_of_type
from keel.stats.histogram import categorical_histogram, numeric_histogram, quantile
from keel.stats.method import MethodResult
from keel.stats.methods import get_method
from keel.stats.multiple_testing import benjamini_hochberg
from keel.stats.samples import CategoricalSample, NumericSample
from keel.stats.verdict import DefaultRule

#: Kinds the drift check compares; booleans are compared as categories.
_COMPARED = {
    "numeric": "numeric",
    "categorical": "categorical",
    "boolean": "categorical",
    "embedding": "embedding",  # embedding, text and image columns: one MMD test each
}
#: Which check each role's drift belongs to; other roles (ids, timestamps) are not compared.
_CHECK_OF_ROLE = {
    "feature": "feature_drift",
    "prediction": "prediction_drift",
    "score": "prediction_drift",
    "target": "target_drift",
}


def compared_columns(schema: Schema) -> dict[str, str]:
    """The columns ``compare`` judges, each with the kind it compares them as."""
    return {
        spec.name: _COMPARED[spec.kind]
        for spec in schema.columns
        if spec.role in _CHECK_OF_ROLE and spec.kind in _COMPARED
    }


@dataclass
class ColumnDrift:
    """The verdict on one column and every number that decided it."""

    column: str
    kind: str
    method: str | None
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drift: bool
    status: str = "ok"  # ok, warn, alert, error, insufficient_data
    rule: str = "default"  # "default" (test + effect floor) or "method" (one chosen method)
    p_value_adjusted: float | None = None
    effect_method: str | None = None
    effect_size: float | None = None
    effect_floor: float | None = None
    reference_count: int = 0
    current_count: int = 0
    sketch_error: float | None = None
    statistic_adjusted: float | None = None
    finding: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: Shares per side over shared bins or categories, for charts (keel.stats.histogram).
    distribution: dict[str, Any] | None = None
    #: feature_drift, prediction_drift (prediction and score columns) or target_drift.
    check: str = "feature_drift"

    def to_dict(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in asdict(self).items()}


@dataclass
class DriftReport:
    dataset: dict[str, Any]
    columns: list[ColumnDrift]
    #: The data quality Results of a one-off comparison (``keel.compare.with_quality``).
    quality: list[Result] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return bool(self.dataset["drift"])

    @property
    def alert(self) -> bool:
        """Drift, or a finding at alert level (a column missing or of another type)."""
        return bool(self.dataset["alert"])

    def column(self, name: str) -> ColumnDrift:
        for column in self.columns:
            if column.column == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "dataset": {key: _plain(value) for key, value in self.dataset.items()},
            "columns": [column.to_dict() for column in self.columns],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_results(self) -> list[Result]:
        """One Result per column (DESIGN's schema): check feature, prediction or target drift.

        The metric is what a person reads: the effect size against its floor
        under the default rule (the test's numbers are in ``details``), or the
        chosen method's value against its threshold.
        """
        results = []
        for column in self.columns:
            details = {
                key: _plain(value)
                for key, value in column.to_dict().items()
                if key not in ("column", "distribution", "status")
            }
            status = "alert" if column.drift else column.status
            if column.rule == "calibrated":
                metric, value, threshold = (
                    column.effect_method,
                    column.effect_size,
                    column.threshold,
                )
            elif column.rule == "default":
                metric, value, threshold = (
                    column.effect_method or column.method,
                    column.effect_size,
                    column.effect_floor,
                )
            else:
                use_p = column.p_value is not None
                metric = f"{column.method}_p_value" if use_p else column.method
                value = column.p_value_adjusted if use_p else column.statistic
                threshold = column.threshold
            results.append(
                Result(
                    check=column.check,
                    column=column.column,
                    metric=metric,
                    value=_plain(value),
                    threshold=threshold,
                    status=status,
                    details=details,
                )
            )
        return results

    def most_changed_first(self) -> list[ColumnDrift]:
        """The columns, most changed first: drifted, then errors, then warnings, then by
        effect size over its floor (a p-value rule: smaller is more change); the order the
        CLI's table and the HTML report both show."""
        rank = {"alert": 0, "error": 1, "warn": 2, "ok": 3, "insufficient_data": 4}
        return sorted(self.columns, key=lambda c: (rank[c.status], -_change(c), c.column))

    def to_pandas(self):
        """The results as a DataFrame, one row per column, columns in the Result schema."""
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in self.to_results()], columns=RESULT_COLUMNS)

    def _repr_html_(self) -> str:
        from keel.report.html import drift_report_html

        return drift_report_html(self)


def _change(column: ColumnDrift) -> float:
    """How much a column changed, in multiples of its effect floor (or threshold)."""
    value = column.effect_size if column.effect_size is not None else column.statistic
    floor = column.effect_floor or column.threshold or 1.0
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return -1.0
    if column.rule == "method" and column.p_value is not None:
        return 1.0 - value  # a p-value: smaller is more change
    return value / floor if floor else value


class ProfileSide:
    """One side of a comparison, read from a profile."""

    def __init__(self, profile: Profile, name: str = "profile") -> None:
        self.profile, self.name, self.schema, self.rows = (
            profile,
            name,
            profile.schema,
            profile.rows,
        )

    def sample(self, column: str) -> NumericSample | CategoricalSample:
        from keel.profile.vectors import VectorProfile, VectorSample

        profile = self.profile.columns[column]
        if isinstance(profile, VectorProfile):
            return VectorSample.from_profile(profile)
        if isinstance(profile, NumericProfile) and profile.kind == "numeric":
            return NumericSample.from_profile(profile)
        if isinstance(profile, CategoricalProfile):
            return CategoricalSample.from_profile(profile)
        raise ConfigError(f"column {column!r}: a {profile.kind} profile has no drift sample")


class TableSide:
    """One side of a comparison, read from an in-memory table (exact mode)."""

    def __init__(self, table: pa.Table, schema: Schema, name: str = "table") -> None:
        self.table, self.schema, self.name, self.rows = table, schema, name, table.num_rows

    @classmethod
    def from_data(cls, data: Any, schema: Schema | None = None) -> TableSide:
        from keel.data import open_source

        source = open_source(data)
        table = source.read_all()
        return cls(table, schema or Schema.infer(table), source.name)

    def sample(self, column: str) -> NumericSample | CategoricalSample:
        values = self.table.column(column)
        if self.schema[column].kind == "embedding":
            from keel.profile.vectors import VectorSample

            return VectorSample.from_array(values)
        if _COMPARED.get(self.schema[column].kind) == "numeric":
            from keel.profile.profile import _to_float64

            present = values.drop_null()
            return NumericSample.from_values(_to_float64(present, column, "numeric"))
        return CategoricalSample.from_values(values)


def compare_sides(
    reference: ProfileSide | TableSide,
    current: ProfileSide | TableSide,
    rule: DefaultRule | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    method: str | None = None,
    calibration: Any = None,
    level: float | None = None,
) -> DriftReport:
    """Compare every feature, prediction, score and target column of ``reference`` with ``current``.

    ``method`` makes one method decide for every column of a kind it fits;
    ``methods`` does so per column (``{"age": "psi"}``) and ``thresholds``
    sets that method's threshold per column. A ``Calibration`` decides the
    columns it has a threshold for (its effect statistic at or above the
    calibrated threshold). Other columns use ``rule``. Model outputs and the
    target are reported apart (``check`` prediction_drift and target_drift),
    each family adjusted by Benjamini–Hochberg on its own.

    Embedding columns (embeddings, texts and images: ``keel.profile.unstructured``) are
    decided by one MMD permutation test each, its p-value against ``level`` (default: the
    rule's α; a monitor gives its false alarm rate), outside the Benjamini–Hochberg family.
    """
    rule = rule or DefaultRule()
    level = rule.alpha if level is None else level
    methods, thresholds = dict(methods or {}), dict(thresholds or {})
    if method is not None:
        get_method(method)  # fail early on an unknown name
    for name, chosen in methods.items():
        if name not in reference.schema:
            raise ConfigError(f"method given for column {name!r}, which the reference lacks")
        get_method(chosen, _COMPARED.get(reference.schema[name].kind))
    results: list[ColumnDrift] = []
    skipped: list[dict[str, str]] = []
    for spec in reference.schema.columns:
        check = _CHECK_OF_ROLE.get(spec.role)
        if check is None:
            continue
        kind = _COMPARED.get(spec.kind)
        if kind is None:
            skipped.append({"column": spec.name, "reason": f"{spec.kind} columns are not compared"})
            continue
        chosen = methods.get(spec.name) or (
            method if method is not None and kind in get_method(method).kinds else None
        )
        if kind == "embedding":
            column = _compare_vectors(spec, reference, current, level)
            column.check = check
            results.append(column)
            continue
        column = _compare_column(spec, kind, reference, current, rule, chosen, thresholds)
        column.check = check
        calibrated = calibration.threshold(spec.name) if calibration is not None else None
        # A threshold fits the statistic it was calibrated on and windows of about its size.
        usable = (
            calibrated is not None
            and calibration.applies_to(current.rows)
            and calibration.statistic(spec.name) == column.effect_method
        )
        spread = calibration.spread_threshold(spec.name) if usable else None
        if spread is not None and column.details.get("log_spread_ratio") is not None:
            column.details["spread_threshold"] = max(spread, rule.spread_floor)
        if usable and column.status == "ok" and chosen is None:
            # Practical significance in every regime: the calibrated threshold measures
            # sampling noise between reference windows, never below the effect floor
            # (which the user may lower: DefaultRule(numeric_floor=…, categorical_floor=…)).
            column.rule = "calibrated"
            column.details["calibrated_threshold"] = calibrated
            column.threshold = max(calibrated, rule.floor_for(kind))
        results.append(column)
    for family in _CHECK_OF_ROLE.values():
        _adjust_and_decide([c for c in results if c.check == family], rule)
    findings = [
        {"column": c.column, "level": "alert", "finding": c.finding}
        for c in results
        if c.status == "error"
    ]
    for spec in current.schema.columns:
        if spec.name not in reference.schema and spec.role == "feature":
            findings.append(
                {
                    "column": spec.name,
                    "level": "warn",
                    "finding": "new column: not in the reference",
                }
            )
    drifted = [c.column for c in results if c.drift and c.check == "feature_drift"]
    outputs = [c.column for c in results if c.drift and c.check == "prediction_drift"]
    targets = [c.column for c in results if c.drift and c.check == "target_drift"]
    checked = [
        c for c in results if c.status in ("ok", "warn", "alert") and c.check == "feature_drift"
    ]
    dataset = {
        "drift": bool(drifted),
        "alert": bool(drifted or outputs or targets)
        or any(f["level"] == "alert" for f in findings),
        "drifted_columns": drifted,
        "prediction_drift": outputs,
        "target_drift": targets,
        "calibrated": calibration is not None and calibration.fallback is None,
        "columns_checked": len(checked),
        "share_drifted": len(drifted) / len(checked) if checked else 0.0,
        "rule": rule.describe(),
        "alpha": rule.alpha,
        "reference": {"name": reference.name, "rows": reference.rows},
        "current": {"name": current.name, "rows": current.rows},
        "mode": "exact" if isinstance(reference, TableSide) else "profile",
        "findings": findings,
        "skipped": skipped,
    }
    return DriftReport(dataset, results)


def _compare_column(
    spec: ColumnSpec,
    kind: str,
    reference: ProfileSide | TableSide,
    current: ProfileSide | TableSide,
    rule: DefaultRule,
    chosen: str | None,
    thresholds: Mapping[str, float],
) -> ColumnDrift:
    name = spec.name
    blank = ColumnDrift(name, kind, chosen or rule.test_for(kind), None, None, None, False)
    if name not in current.schema:
        if spec.role == "target":  # labels arrive later than predictions: not a fault
            blank.status, blank.finding = "insufficient_data", "no labels in the current data"
        else:
            blank.status, blank.finding = "error", "missing: the column is not in the current data"
        return blank
    current_spec = current.schema[name]
    reference_type_kind = _type_kind(spec.dtype)
    current_type_kind = _type_kind(current_spec.dtype)
    if reference_type_kind != current_type_kind or _COMPARED.get(current_spec.kind) != kind:
        blank.status = "error"
        blank.finding = (
            f"type changed: {spec.dtype} ({reference_type_kind}) in the reference, "
            f"{current_spec.dtype} ({current_type_kind}) now"
        )
        return blank
    try:
        reference_sample, current_sample = reference.sample(name), current.sample(name)
    except ConfigError as error:
        blank.status, blank.finding = "error", f"cannot compare: {error}"
        return blank
    blank.reference_count, blank.current_count = reference_sample.count, current_sample.count
    if reference_sample.count == 0 or current_sample.count == 0:
        empty_side = "reference" if reference_sample.count == 0 else "current data"
        blank.status = "insufficient_data"
        blank.finding = f"no values: the column is entirely null in the {empty_side}"
        return blank
    if chosen is not None:
        result = get_method(chosen, kind).compute(reference_sample, current_sample)
        threshold = thresholds.get(name, get_method(chosen).default_threshold)
        blank.rule, blank.threshold = "method", threshold
        return _fill(blank, chosen, result)
    if kind == "numeric":
        blank.details["reference_median"] = quantile(reference_sample, 0.5)
        blank.details["current_median"] = quantile(current_sample, 0.5)
        blank.details["log_spread_ratio"] = log_spread_ratio(reference_sample, current_sample)
        blank.distribution = numeric_histogram(reference_sample, current_sample)
    else:
        blank.distribution = categorical_histogram(reference_sample, current_sample)
    test = get_method(rule.test_for(kind)).compute(reference_sample, current_sample)
    effect = get_method(rule.effect_for(kind)).compute(reference_sample, current_sample)
    column = _fill(blank, rule.test_for(kind), test)
    column.threshold = rule.alpha
    column.effect_method, column.effect_size = rule.effect_for(kind), effect.statistic
    column.effect_floor = rule.floor_for(kind)
    column.details.update({f"{column.effect_method}_{k}": v for k, v in effect.details.items()})
    return column


def _compare_vectors(
    spec: ColumnSpec,
    reference: ProfileSide | TableSide,
    current: ProfileSide | TableSide,
    level: float,
) -> ColumnDrift:
    """One embedding, text or image column: the MMD test on the two sides' vector samples.
    Rows without a vector (the wrong dimension, a missing value, an empty text, an image
    that cannot be decoded) are counted by reason and named in ``details.faults``."""
    name = spec.name
    column = ColumnDrift(name, "embedding", "mmd", None, None, level, False, rule="method")
    if name not in current.schema:
        column.status, column.finding = "error", "missing: the column is not in the current data"
        return column
    if current.schema[name].kind != "embedding":
        column.status = "error"
        column.finding = (
            f"type changed: vectors ({spec.dtype}) in the reference, "
            f"{current.schema[name].dtype} now"
        )
        return column
    reference_sample, current_sample = reference.sample(name), current.sample(name)
    column.reference_count, column.current_count = reference_sample.count, current_sample.count
    faults = {
        "reference": _faults(reference_sample),
        "current": _faults(current_sample),
    }
    column.details["faults"] = faults
    column.details["missing"] = {
        "reference": reference_sample.missing,
        "current": current_sample.missing,
    }
    if len(reference_sample.vectors):
        column.details["dimension"] = int(reference_sample.vectors.shape[1])
    if len(reference_sample.vectors) < 2 or len(current_sample.vectors) < 2:
        empty_side = "reference" if len(reference_sample.vectors) < 2 else "current data"
        said = "; ".join(
            f"{reason}: {count} rows"
            for reason, count in (
                reference_sample if empty_side == "reference" else current_sample
            ).faults.items()
        )
        wrong = any("dimensions, not" in r for r in current_sample.faults)
        column.status = "error" if said and wrong else "insufficient_data"
        column.finding = (
            f"fewer than 2 usable vectors in the {empty_side}"
            + (f" ({said})" if said else "")
            + (": refused, the vectors come from another embedding space" if wrong else "")
        )
        return column
    mine, theirs = reference_sample.vectors.shape[1], current_sample.vectors.shape[1]
    if mine != theirs:  # data compared with data: each side kept its own first dimension
        column.status = "error"
        column.finding = (
            f"the current vectors have {theirs} dimensions and the reference's {mine}: "
            "refused, the vectors come from another embedding space"
        )
        return column
    return _fill(column, "mmd", get_method("mmd").compute(reference_sample, current_sample))


def _faults(sample: Any) -> list[dict[str, Any]]:
    """Each reason a row has no vector: how many, and the first few rows or files."""
    return [
        {"reason": reason, "rows": count, "named": sample.named.get(reason, [])}
        for reason, count in sorted(sample.faults.items())
    ]


def _fill(column: ColumnDrift, method: str, result: MethodResult) -> ColumnDrift:
    column.method, column.statistic, column.p_value = method, result.statistic, result.p_value
    details = dict(result.details)
    column.sketch_error = details.pop("sketch_error", None)
    column.statistic_adjusted = details.pop("statistic_adjusted", None)
    column.details.update(details)
    return column


def _adjust_and_decide(columns: list[ColumnDrift], rule: DefaultRule) -> None:
    """Benjamini–Hochberg across every tested column, then each column's verdict."""
    # Calibrated columns are decided by their thresholds: they do not join the BH family.
    tested = [
        c
        for c in columns
        if c.p_value is not None
        and c.status == "ok"
        and c.rule != "calibrated"
        and c.kind != "embedding"  # judged at its own level
    ]
    for column in columns:
        if column.kind == "embedding" and column.p_value is not None:
            column.p_value_adjusted = column.p_value
    adjusted = benjamini_hochberg([c.p_value for c in tested])
    for column, value in zip(tested, adjusted, strict=True):
        column.p_value_adjusted = float(value)
    for column in columns:
        if column.status != "ok":
            continue
        if column.rule == "default":
            column.drift = rule.decide(column.p_value_adjusted, column.effect_size, column.kind)
        elif column.rule == "calibrated":
            # A column constant in the reference has threshold 0: the same constant (0) is
            # quiet, a changed value (+inf) a finding.
            moved = column.effect_size > 0
            column.drift = bool(moved and column.effect_size >= column.threshold)
            ratio, limit = (
                column.details.get("log_spread_ratio"),
                column.details.get("spread_threshold"),
            )
            # the spread collapsed or swelled, whatever Wasserstein's (seasonal) threshold says
            if not column.drift and ratio is not None and limit is not None and abs(ratio) >= limit:
                column.drift = True
                column.details["spread_changed"] = (
                    f"robust spread ×{np.exp(ratio):.2f} (log ratio {ratio:+.2f}, "
                    f"calibrated threshold ±{limit:.2f})"
                )
            noise = column.details.get("calibrated_threshold", column.threshold)
            if not column.drift and moved and column.effect_size >= noise:
                # beyond the reference's noise, too small to matter: worth a look, not a page
                column.status = "warn"
                column.details["reason"] = (
                    f"{_label(column.effect_method)} {column.effect_size:.2g}, below the floor "
                    f"{column.threshold:g} (above the calibrated threshold {noise:.2g})"
                )
        elif column.p_value is not None:
            column.drift = bool(column.p_value_adjusted < column.threshold)
        else:
            column.drift = bool(column.statistic >= column.threshold)
        if column.drift:
            column.status = "alert"


def log_spread_ratio(reference: NumericSample, current: NumericSample) -> float | None:
    """ln(robust scale now / robust scale in the reference), IQR/1.349 each; None when a
    side has no spread. A collapse in spread reads negative, a swell positive.

    >>> import numpy as np
    >>> a = NumericSample.from_values(np.arange(1000.0))
    >>> round(log_spread_ratio(a, NumericSample.from_values(np.arange(1000.0) / 2)), 2)
    -0.69
    """
    from keel.stats.wasserstein import robust_scale_of

    before = robust_scale_of(reference.values, reference.weights)
    now = robust_scale_of(current.values, current.weights)
    if not (before > 0 and now > 0):
        return None
    return float(np.log(now / before))


def _label(method: str | None) -> str:
    """'PSI', 'Wasserstein': a method's name as a sentence writes it."""
    return {"psi": "PSI", "wasserstein": "Wasserstein"}.get(method or "", method or "statistic")


def _type_kind(dtype: str) -> str:
    """The kind an Arrow type name implies (``"int64"`` -> numeric)."""
    if dtype.startswith(("timestamp", "date", "time", "duration")):
        return "datetime"
    if dtype.startswith("decimal"):
        return "numeric"
    if dtype.startswith("dictionary"):
        return "categorical"
    try:
        return kind_of_type(pa.type_for_alias(dtype))
    except (ValueError, KeyError):
        return "other"


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, non-finite floats to strings JSON can carry."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
