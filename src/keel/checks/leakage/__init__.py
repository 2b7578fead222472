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
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from keel.checks.leakage import kinds as _kinds
from keel.checks.leakage import probes as _probes
from keel.checks.leakage.report import FORMAT, Finding, LeakageReport
from keel.checks.leakage.serving import Availability, as_availability, parse_availability
from keel.errors import SchemaError

__all__ = [
    "FORMAT",
    "Availability",
    "Finding",
    "LeakageReport",
    "check_leakage",
    "parse_availability",
]

#: Names of id-like columns (with ``keel.schema``'s own rule, and near-unique values).
_ID_LIKE_NAME = re.compile(r"^(id|uuid|guid|key|index|.*[_-]id|.*[a-z]Id|.*_uuid|.*_key)$")


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
    from keel.fingerprint import data_digest

    return data_digest(table)


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
        findings += _kinds.availability(train, prediction_time, availability)
    if definitions is not None:
        checked.append("as_of")
        findings += _kinds.as_of(train, definitions, events, prediction_time, notes)
    if served_table is not None:
        checked.append("serving")
        findings += _kinds.serving(train, served_table, features, notes)
    if holdout_table is not None:
        checked.append("duplicates")
        findings += _kinds.duplicates(train, holdout_table, features, notes)
        if entity is not None:
            checked.append("shared_entities")
            findings += _kinds.shared_entities(train, holdout_table, entity)
        if time_column is not None:
            checked.append("time_overlap")
            findings += _kinds.time_overlap(train, holdout_table, time_column)
    elif entity is not None or time_column is not None:
        notes.append("no holdout: shared entities and time overlap need one")
    checked.append("identifiers")
    if probes:
        checked.append("probes")
    findings += _kinds.probe_all(
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
