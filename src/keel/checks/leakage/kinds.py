"""One builder per kind of finding: the check's numbers → ``Finding`` (column, rows, evidence).

>>> train = pa.table({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
>>> holdout = pa.table({"x": [2.0, 7.0], "y": [1, 1]})
>>> (found,) = duplicates(train, holdout, ["x"], notes=[])
>>> found.kind, found.rows["holdout"], found.evidence["pairs"]
('duplicates', {'count': 1, 'first': [0]}, [{'holdout': 0, 'train': 1}])
>>> time_overlap(train.append_column("t", pa.array([1, 2, 3]).cast(pa.timestamp("s"))),
...              holdout.append_column("t", pa.array([5, 6]).cast(pa.timestamp("s"))), "t")
[]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.checks.leakage import probes as _probes
from keel.checks.leakage.report import FIRST_ROWS, Finding
from keel.checks.leakage.report import rows_of as _rows
from keel.checks.leakage.serving import Availability, availability_violations, served_gap
from keel.checks.leakage.splits import duplicate_rows, shared_values


def availability(
    table: pa.Table, prediction_time: str, declared: dict[str, Availability]
) -> list[Finding]:
    findings = []
    for feature, spec in declared.items():
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


def as_of(
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


def serving(
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


def duplicates(
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


def shared_entities(train: pa.Table, holdout: pa.Table, entity: str) -> list[Finding]:
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


def time_overlap(train: pa.Table, holdout: pa.Table, column: str) -> list[Finding]:
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


def probe_all(
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
