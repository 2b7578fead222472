"""Leakage at training time: features the model will not have when it predicts.

``check_leakage(train, target="y", ...)`` runs every check its inputs allow and returns a
``LeakageReport``: one ``Finding`` per problem, each naming its column, its rows (first
positions and a count, per split) and its evidence.

=========================  =======  ==================================================
kind                       level    found when
=========================  =======  ==================================================
``availability``           alert    a feature available at or after the prediction time
                                    (``prediction_time`` and ``available``)
``absent_at_serving``      alert    served values mostly missing (``served``)
``defaulted_at_serving``   alert    served values one constant default (``served``)
``suspiciously_predictive`` warning a feature alone: CV AUC ≥ 0.95 / R² ≥ 0.9, or within
                                    0.02 of a strong full model (``probes``)
``identifier``             warning  an id-like column predicting the label
``time_column``            warning  a time column predicting the label
``duplicates``             alert    holdout rows equal to training rows
``near_duplicates``        alert    ... equal after rounding and normalizing text
``shared_entities``        alert    entities in both splits (``entity``)
``time_overlap``           alert    the splits' time ranges overlap (``time_column``)
``not_as_of_availability`` alert    a windowed feature's training values differ from
                                    its values as of availability (``features``,
                                    ``events``: ``keel.features``)
=========================  =======  ==================================================

Ids and time columns are the ones ``keel.schema`` recognises, plus integer columns that
are unique and dense (``0..n``) and those named in ``ids``. The probes' seed is derived
from the training data's fingerprint (``keel.fingerprint``): same data, same findings.

>>> import numpy as np, pyarrow as pa
>>> rng = np.random.default_rng(1)
>>> y = rng.integers(0, 2, 1000)
>>> train = pa.table({"x": rng.normal(size=1000), "leak": y + rng.normal(0, 0.01, 1000), "y": y})
>>> report = check_leakage(train, target="y")
>>> [(f.kind, f.column, f.level) for f in report.findings]
[('suspiciously_predictive', 'leak', 'warning')]
>>> report.alert, report.to_dict()["format"]
(False, 'keel.leakage/v1')
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.checks.leakage import probes as _probes
from keel.checks.leakage.serving import (
    Availability,
    as_availability,
    availability_violations,
    parse_availability,
    served_gap,
)
from keel.checks.leakage.splits import duplicate_rows, shared_values
from keel.errors import SchemaError

__all__ = [
    "FORMAT",
    "Availability",
    "Finding",
    "LeakageReport",
    "check_leakage",
    "parse_availability",
]

FORMAT = "keel.leakage/v1"
#: Row positions a finding lists per split (the count is always whole).
FIRST_ROWS = 20
_ID_LIKE_NAME = re.compile(r"^(id|uuid|guid|key|index|.*[_-]id|.*[a-z]Id|.*_uuid|.*_key)$")


@dataclass(frozen=True)
class Finding:
    """One leakage finding: what (``kind``), how bad (``level``: alert or warning), which
    column (None for whole rows), a one-line ``message``, the rows (per split: a count and
    the first positions) and the ``evidence`` (numbers behind it)."""

    kind: str
    level: str
    column: str | None
    message: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "level": self.level,
            "column": self.column,
            "message": self.message,
            "rows": self.rows,
            "evidence": self.evidence,
        }


@dataclass
class LeakageReport:
    """The findings, which checks ran (``checked``), what could not be checked and why
    (``notes``), and the data's shape."""

    findings: list[Finding]
    checked: list[str]
    notes: list[str]
    target: str
    task: str
    rows: dict[str, int]
    fingerprint: str
    seconds: float = 0.0

    @property
    def alert(self) -> bool:
        """True when any finding is at alert level."""
        return any(f.level == "alert" for f in self.findings)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``keel.leakage/v1``, docs/formats.md)."""
        return {
            "format": FORMAT,
            "target": self.target,
            "task": self.task,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
            "alert": self.alert,
            "checked": self.checked,
            "notes": self.notes,
            "findings": [f.to_dict() for f in self.findings],
        }

    def lines(self) -> list[str]:
        """One line per finding: ``level kind column: message``."""
        return [
            f"{f.level} {f.kind}{' ' + f.column if f.column else ''}: {f.message}"
            for f in self.findings
        ]


def _rows(positions: np.ndarray) -> dict[str, Any]:
    return {"count": int(len(positions)), "first": [int(p) for p in positions[:FIRST_ROWS]]}


def _table(data: Any, what: str) -> pa.Table:
    from keel.data import open_source

    if isinstance(data, pa.Table):
        return data
    return open_source(data).read_all()


def _require(table: pa.Table, column: str, option: str, what: str) -> None:
    if column not in table.column_names:
        raise SchemaError(
            f"{option} {column!r}: the {what} has no such column "
            f"(it has: {', '.join(table.column_names)})"
        )


def _fingerprint(table: pa.Table) -> str:
    from keel.fingerprint import TableFingerprint

    fingerprint = TableFingerprint()
    for batch in table.to_batches(max_chunksize=262_144):
        fingerprint.update(batch)
    return fingerprint.hexdigest()


def check_leakage(
    train: Any,
    *,
    target: str,
    holdout: Any = None,
    served: Any = None,
    prediction_time: str | None = None,
    available: Mapping[str, str | Availability] | None = None,
    entity: str | None = None,
    time_column: str | None = None,
    ids: list[str] | None = None,
    ignore: list[str] | None = None,
    probes: bool = True,
    task: str | None = None,
    folds: int = _probes.DEFAULT_FOLDS,
    max_rows: int = _probes.DEFAULT_MAX_ROWS,
    features: list[Any] | None = None,
    events: Any = None,
) -> LeakageReport:
    """Every leakage check the inputs allow (see the module docstring).

    ``train`` and ``holdout`` (rows the model is judged on) and ``served`` (rows as
    served: feature columns by name) are anything ``keel.data.open_source`` reads.
    ``prediction_time`` is the column of when each row's prediction is made; ``available``
    maps a feature to the column of when its value became available (``"col"`` or
    ``"col+2h"``). ``probes=False`` probes only the id and time columns (cheap); ``True``
    probes every feature and compares with the full model. ``task`` is binary,
    multiclass or regression (inferred from the target otherwise). ``features``
    (``keel.features.WindowedFeature`` definitions) and ``events`` (their event log)
    recompute each windowed feature as of availability at ``prediction_time``: training
    values that differ are findings (``as_of.py``).

    >>> check_leakage(pa.table({"x": [1, 2]}), target="y")
    Traceback (most recent call last):
    ...
    keel.errors.SchemaError: --target 'y': the training data has no such column (it has: x)
    """
    started = time.perf_counter()
    definitions = list(features) if features is not None else None
    train = _table(train, "training data")
    _require(train, target, "--target", "training data")
    holdout_table = _table(holdout, "holdout") if holdout is not None else None
    served_table = _table(served, "served rows") if served is not None else None
    availability = {f: as_availability(s) for f, s in (available or {}).items()}
    for feature, spec in availability.items():
        _require(train, feature, "--available", "training data")
        _require(train, spec.column, "--available", "training data")
    for option, column in (
        ("--prediction-time", prediction_time),
        ("--entity", entity),
        ("--time-column", time_column),
    ):
        if column is not None:
            _require(train, column, option, "training data")
            if holdout_table is not None and option != "--prediction-time":
                _require(holdout_table, column, option, "holdout")
    for column in [*(ids or []), *(ignore or [])]:
        _require(train, column, "--id/--ignore", "training data")
    if (features is None) != (events is None):
        raise SchemaError("feature definitions and their events go together (--features, --events)")
    if features is not None and prediction_time is None:
        raise SchemaError("--features needs --prediction-time: the time each row is computed at")
    if availability and prediction_time is None:
        raise SchemaError(
            "--available needs --prediction-time: the column of when rows are predicted"
        )
    if task is not None and task not in ("binary", "multiclass", "regression"):
        from keel.errors import ConfigError

        raise ConfigError(f"--task {task!r}: one of binary, multiclass, regression")

    fingerprint = _fingerprint(train)
    identifiers, times = _roles(train, target, ids or [], [time_column, prediction_time])
    # Ids and times (the entity, the prediction and availability times among them) are
    # probed as such; features are the rest.
    identifiers = [c for c in identifiers if c not in (ignore or [])]
    times = [c for c in times if c not in (ignore or [])]
    excluded = {target, entity, prediction_time, *(ignore or []), *identifiers, *times} | {
        spec.column for spec in availability.values()
    }
    features = [c for c in train.column_names if c not in excluded]
    labels_column = train.column(target)
    task = task or _probes.infer_task(labels_column)
    findings: list[Finding] = []
    checked: list[str] = []
    notes: list[str] = []

    if availability:
        checked.append("availability")
        findings += _availability(train, prediction_time, availability)
    if definitions is not None:
        checked.append("as_of")
        findings += _as_of(train, definitions, events, prediction_time, notes)
    if served_table is not None:
        checked.append("serving")
        findings += _serving(train, served_table, features, notes)
    if holdout_table is not None:
        checked.append("duplicates")
        findings += _duplicates(train, holdout_table, features, notes)
        if entity is not None:
            checked.append("shared_entities")
            findings += _shared_entities(train, holdout_table, entity)
        if time_column is not None:
            checked.append("time_overlap")
            findings += _time_overlap(train, holdout_table, time_column)
    elif entity is not None or time_column is not None:
        notes.append("no holdout: shared entities and time overlap need one")
    checked.append("identifiers")
    if probes:
        checked.append("probes")
    findings += _probe_all(
        train,
        target,
        task,
        features if probes else [],
        identifiers,
        times,
        fingerprint,
        folds,
        max_rows,
        notes,
    )
    rows = {"train": train.num_rows}
    if holdout_table is not None:
        rows["holdout"] = holdout_table.num_rows
    if served_table is not None:
        rows["served"] = served_table.num_rows
    return LeakageReport(
        findings=findings,
        checked=checked,
        notes=notes,
        target=target,
        task=task,
        rows=rows,
        fingerprint=fingerprint,
        seconds=time.perf_counter() - started,
    )


def _roles(
    table: pa.Table, target: str, ids: list[str], time_columns: list[str | None]
) -> tuple[list[str], list[str]]:
    """(id-like columns, time columns) of the training table, the target left out."""
    from keel.schema import Schema

    schema = Schema.infer(table, roles={target: "target", **{c: "id" for c in ids}})
    identifiers = [c.name for c in schema.columns if c.role == "id"]
    times = [c.name for c in schema.columns if c.role == "timestamp"]
    times += [c for c in time_columns if c and c not in times]
    for name in table.column_names:
        if name in (target, *identifiers, *times):
            continue
        column = table.column(name)
        integer = pa.types.is_integer(column.type)
        dense = integer and _dense_unique(column)
        named = (integer or pa.types.is_string(column.type)) and bool(_ID_LIKE_NAME.match(name))
        if dense or (named and _near_unique(column)):
            identifiers.append(name)
    return identifiers, times


def _near_unique(column: pa.ChunkedArray) -> bool:
    present = pc.drop_null(column)
    return len(present) >= 20 and len(pc.unique(present)) >= 0.95 * len(present)


def _dense_unique(column: pa.ChunkedArray) -> bool:
    """Unique integers that fill their range (0..n, 1000..1000+n): row numbers, ids."""
    present = pc.drop_null(column)
    if len(present) < 20 or len(pc.unique(present)) < len(present):
        return False
    low, high = pc.min_max(present).values()
    return high.as_py() - low.as_py() + 1 <= 1.05 * len(present)


# -- the checks ---------------------------------------------------------------------------


def _availability(
    table: pa.Table, prediction_time: str, availability: dict[str, Availability]
) -> list[Finding]:
    findings = []
    for feature, spec in availability.items():
        late = availability_violations(table, prediction_time, spec)
        count = len(late["rows"])
        if not count:
            continue
        latest = float(late["late_us"].max()) / 1e6
        findings.append(
            Finding(
                kind="availability",
                level="alert",
                column=feature,
                message=(
                    f"available at or after the prediction time ({prediction_time}) in "
                    f"{count:,} of {late['checked']:,} rows, by up to {_duration(latest)} "
                    f"(availability: {spec.describe()})"
                ),
                rows={"train": _rows(late["rows"])},
                evidence={
                    "prediction_time": prediction_time,
                    "available": spec.column,
                    "lag_seconds": spec.lag_seconds,
                    "violations": count,
                    "checked": late["checked"],
                    "unknown": late["unknown"],
                    "max_late_seconds": latest,
                },
            )
        )
    return findings


def _as_of(
    train: pa.Table, features: list[Any], events: Any, at: str, notes: list[str]
) -> list[Finding]:
    from keel.checks.leakage.as_of import as_of_differences

    found = as_of_differences(train, features, events, at)
    missing = [f.name for f in features if f.name not in found]
    if missing:
        notes.append(f"defined but not in the training data: {', '.join(missing)}")
    findings = []
    for name, differences in found.items():
        rows = differences["rows"]
        if not len(rows):
            continue
        findings.append(
            Finding(
                kind="not_as_of_availability",
                level="alert",
                column=name,
                message=(
                    f"differs from its value as of availability at {at} in {len(rows):,} of "
                    f"{differences['checked']:,} rows: the model learned values it will never "
                    "be served"
                ),
                rows={"train": _rows(rows)},
                evidence={
                    "differences": int(len(rows)),
                    "checked": differences["checked"],
                    "at": at,
                    "examples": [
                        {"row": int(r), "training": t, "as_of": a}
                        for r, t, a in zip(
                            rows[:FIRST_ROWS],
                            differences["training"],
                            differences["as_of"],
                            strict=False,
                        )
                    ],
                },
            )
        )
    return findings


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} seconds"


def _serving(
    train: pa.Table, served: pa.Table, features: list[str], notes: list[str]
) -> list[Finding]:
    findings = []
    if served.num_rows < 20:
        notes.append(f"only {served.num_rows} served rows: serving not compared (needs 20)")
        return findings
    for feature in features:
        if feature not in served.column_names:
            findings.append(
                Finding(
                    kind="absent_at_serving",
                    level="alert",
                    column=feature,
                    message="in the training data but not in the served rows at all",
                    rows={"served": {"count": served.num_rows, "first": []}},
                    evidence={"served_missing_share": 1.0, "served_column": False},
                )
            )
            continue
        gap = served_gap(train.column(feature), served.column(feature))
        if gap is None:
            continue
        if gap["kind"] == "missing":
            missing = served.column(feature).is_null()
            if pa.types.is_floating(served.column(feature).type):
                missing = pc.or_(missing, pc.fill_null(pc.is_nan(served.column(feature)), False))
            rows = np.flatnonzero(missing.to_numpy(zero_copy_only=False))
            findings.append(
                Finding(
                    kind="absent_at_serving",
                    level="alert",
                    column=feature,
                    message=(
                        f"missing in {gap['served_missing_share']:.0%} of served rows "
                        f"(training: {gap['training_missing_share']:.0%})"
                    ),
                    rows={"served": _rows(rows)},
                    evidence=gap | {"served_column": True},
                )
            )
        else:
            column = served.column(feature)
            equal = pc.equal(
                pc.cast(column, pa.string()), pa.scalar(str(gap["value"]), pa.string())
            )
            rows = np.flatnonzero(pc.fill_null(equal, False).to_numpy(zero_copy_only=False))
            findings.append(
                Finding(
                    kind="defaulted_at_serving",
                    level="alert",
                    column=feature,
                    message=(
                        f"served as {gap['value']!r} in {gap['served_share']:.0%} of served "
                        f"values (training: {gap['training_share']:.0%} of its values)"
                    ),
                    rows={"served": _rows(rows)},
                    evidence=gap,
                )
            )
    return findings


def _duplicates(
    train: pa.Table, holdout: pa.Table, features: list[str], notes: list[str]
) -> list[Finding]:
    columns = [c for c in features if c in holdout.column_names]
    if not columns:
        notes.append("no feature columns shared by training and holdout: duplicates not checked")
        return []
    found = duplicate_rows(train, holdout, columns)
    findings = []
    exact, near = found["exact"], found["near"] & ~found["exact"]
    for kind, chosen, own_share, how in (
        ("duplicates", exact, found["train_exact_share"], "equal to a training row"),
        (
            "near_duplicates",
            near,
            found["train_near_share"],
            "equal to a training row after rounding numbers to 6 significant digits and "
            "normalizing text",
        ),
    ):
        count = int(chosen.sum())
        share = count / max(holdout.num_rows, 1)
        if not count:
            continue
        if share <= 2 * own_share:
            # Training repeats its own rows as often: a small space of values, not a leak.
            notes.append(
                f"{count:,} holdout rows {how}, but training repeats its own rows as often "
                f"({own_share:.1%}): not a finding"
            )
            continue
        positions = np.flatnonzero(chosen)
        matches = found["train_match"][positions]
        train_rows = np.flatnonzero(found["train_in_holdout"])
        findings.append(
            Finding(
                kind=kind,
                level="alert",
                column=None,
                message=f"{count:,} holdout rows ({share:.1%}) are {how}",
                rows={"holdout": _rows(positions), "train": _rows(train_rows)},
                evidence={
                    "columns": columns,
                    "holdout_share": share,
                    "training_own_duplicate_share": own_share,
                    "pairs": [
                        {"holdout": int(h), "train": int(t)}
                        for h, t in zip(positions[:FIRST_ROWS], matches[:FIRST_ROWS], strict=True)
                    ],
                },
            )
        )
    return findings


def _shared_entities(train: pa.Table, holdout: pa.Table, entity: str) -> list[Finding]:
    inside, shared = shared_values(train.column(entity), holdout.column(entity))
    if not len(shared):
        return []
    holdout_entities = len(pc.unique(pc.drop_null(holdout.column(entity))))
    rows = np.flatnonzero(inside)
    train_inside, _ = shared_values(holdout.column(entity), train.column(entity))
    return [
        Finding(
            kind="shared_entities",
            level="alert",
            column=entity,
            message=(
                f"{len(shared):,} {entity} values ({len(shared) / holdout_entities:.0%} of the "
                f"holdout's) are in both splits ({len(rows):,} holdout rows)"
            ),
            rows={"holdout": _rows(rows), "train": _rows(np.flatnonzero(train_inside))},
            evidence={
                "shared": len(shared),
                "holdout_entities": holdout_entities,
                "examples": shared.slice(0, FIRST_ROWS).to_pylist(),
            },
        )
    ]


def _time_overlap(train: pa.Table, holdout: pa.Table, column: str) -> list[Finding]:
    from keel.windows import utc_times

    train_times = utc_times(train.column(column).combine_chunks(), column)
    holdout_times = utc_times(holdout.column(column).combine_chunks(), column)
    if not (len(pc.drop_null(train_times)) and len(pc.drop_null(holdout_times))):
        return []
    train_low, train_high = pc.min_max(train_times).values()
    holdout_low, holdout_high = pc.min_max(holdout_times).values()
    low = max(train_low.as_py(), holdout_low.as_py())
    high = min(train_high.as_py(), holdout_high.as_py())
    if low > high:
        return []

    def within(times: pa.Array) -> np.ndarray:
        inside = pc.and_(
            pc.greater_equal(times, pa.scalar(low, times.type)),
            pc.less_equal(times, pa.scalar(high, times.type)),
        )
        return np.flatnonzero(pc.fill_null(inside, False).to_numpy(zero_copy_only=False))

    holdout_rows, train_rows = within(holdout_times), within(train_times)
    return [
        Finding(
            kind="time_overlap",
            level="alert",
            column=column,
            message=(
                f"the splits overlap in time from {low.isoformat()} to {high.isoformat()}: "
                f"{len(holdout_rows):,} holdout and {len(train_rows):,} training rows"
            ),
            rows={"holdout": _rows(holdout_rows), "train": _rows(train_rows)},
            evidence={
                "train_range": [train_low.as_py().isoformat(), train_high.as_py().isoformat()],
                "holdout_range": [
                    holdout_low.as_py().isoformat(),
                    holdout_high.as_py().isoformat(),
                ],
                "overlap": [low.isoformat(), high.isoformat()],
            },
        )
    ]


def _probe_all(
    train: pa.Table,
    target: str,
    task: str,
    features: list[str],
    identifiers: list[str],
    times: list[str],
    fingerprint: str,
    folds: int,
    max_rows: int,
    notes: list[str],
) -> list[Finding]:
    from keel.seeds import derive_seed

    labels_column = train.column(target)
    if not (features or identifiers or times):
        return []
    labelled = pc.invert(labels_column.is_null())
    if pa.types.is_floating(labels_column.type):
        labelled = pc.and_(labelled, pc.invert(pc.fill_null(pc.is_nan(labels_column), True)))
    table = train.filter(labelled)
    seed = derive_seed(fingerprint[:16], "leakage", "probe")
    table = table.take(pa.array(_probes.sample_rows(table.num_rows, max_rows, seed)))
    labels = _labels(table.column(target))
    if table.num_rows < 2 * folds or (task != "regression" and len(np.unique(labels)) < 2):
        notes.append(f"{table.num_rows} labelled rows, too few to probe")
        return []
    family = _probes.task_family(task)
    findings: list[Finding] = []
    full = None
    usable = [c for c in features if _varies(table.column(c))]
    if usable:
        full = _probes.full_model_score(table, usable, labels, task, seed, folds)
    for column in usable:
        probe = _probes.probe_column(table, column, labels, task, seed, folds=folds)
        why = _probes.suspicious(probe, full if len(usable) > 1 else None, task)
        if why is None:
            continue
        findings.append(
            Finding(
                kind="suspiciously_predictive",
                level="warning",
                column=column,
                message=f"{why}: a post-outcome or target-derived feature? ({probe['rows']:,} "
                f"rows, {len(probe['folds'])} folds)",
                rows={"train": {"count": probe["rows"], "first": []}},
                evidence=probe | {"full_model": full, "threshold": _probes.ALONE[family]},
            )
        )
    bar = _probes.IDENTIFIER[family]
    for kind, columns in (("identifier", identifiers), ("time_column", times)):
        for column in columns:
            if column not in table.column_names or not _varies(table.column(column)):
                continue
            probe = _probes.probe_column(table, column, labels, task, seed, rank=True, folds=folds)
            if probe["score"] < bar:
                continue
            what = "an id-like column" if kind == "identifier" else "a time column"
            findings.append(
                Finding(
                    kind=kind,
                    level="warning",
                    column=column,
                    message=(
                        f"{what} predicts the label: {probe['metric']} {probe['score']:.3f} "
                        f"(≥ {bar:g}; {probe['rows']:,} rows, {len(probe['folds'])} folds): "
                        "rows ordered or split by outcome?"
                    ),
                    rows={"train": {"count": probe["rows"], "first": []}},
                    evidence=probe | {"threshold": bar},
                )
            )
    return findings


def _labels(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    return column.to_numpy()


def _varies(column: pa.ChunkedArray) -> bool:
    present = pc.drop_null(column)
    return len(present) > 0 and len(pc.unique(present)) > 1
