"""Segments: the same checks on slices of a window (a column's values, or an expression's).

A segment is declared by a column (``country``) or a DuckDB expression over the
logged columns (``CASE WHEN tenure_months < 6 THEN 'new' ELSE 'returning'
END``). ``split`` cuts a table into its segments' rows: the ``cap`` most
frequent values, each with at least ``min_rows`` rows; the rest are checked
only as part of the whole. A segment's Results carry ``segment: name=value``.

The false alarm budget is shared (``segment_rate``): with ``k`` segments
checked, the whole and every segment are each checked at the monitor's rate
divided by ``k + 1`` (Bonferroni), so the monitor as a whole keeps its rate.
Segments are smaller than the calibrated windows, so their drift is decided
by the default rule with its test level lowered to that share.

>>> import pyarrow as pa
>>> rows = pa.table({"country": ["DE", "DE", "FR", "IT"], "x": [1, 2, 3, 4]})
>>> [(label, part.num_rows) for label, part in split(rows, "country", column="country",
...                                                   min_rows=1)]
[('country=DE', 2), ('country=FR', 1), ('country=IT', 1)]
>>> segment_rate(0.01, 3)
0.0025
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import ConfigError


def segment_values(
    table: pa.Table, column: str | None = None, expression: str | None = None
) -> pa.Array:
    """Each row's segment value, as text (null where the column or expression is null)."""
    if column is not None:
        if column not in table.column_names:
            raise ConfigError(
                f"segment column {column!r} is not in the data (columns: {table.column_names})"
            )
        return pc.cast(table.column(column), pa.string()).combine_chunks()
    if expression is None:
        raise ConfigError("a segment needs a column or an expression")
    import duckdb

    from keel.checks.kpis import window_connection

    numbered = table.append_column("_keel_row", pa.array(np.arange(table.num_rows)))
    connection = window_connection(numbered)
    try:
        found = connection.sql(
            f"SELECT CAST(({expression}) AS VARCHAR) AS segment FROM window_rows ORDER BY _keel_row"
        ).to_arrow_table()
    except duckdb.Error as error:
        raise ConfigError(f"segment expression {expression!r}: {error}") from error
    finally:
        connection.close()
    return found.column("segment").combine_chunks()


def split(
    table: pa.Table,
    name: str,
    column: str | None = None,
    expression: str | None = None,
    cap: int = 20,
    min_rows: int = 100,
) -> list[tuple[str, pa.Table]]:
    """The table's rows per segment value: the ``cap`` most frequent values with at least
    ``min_rows`` rows, most frequent first (ties by value)."""
    values = segment_values(table, column, expression)
    counts = pc.value_counts(values.drop_null())
    found = sorted(
        (
            (int(n), str(v))
            for v, n in zip(
                counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
            )
        ),
        key=lambda pair: (-pair[0], pair[1]),
    )
    chosen = [value for count, value in found if count >= min_rows][:cap]
    return [(f"{name}={value}", table.filter(pc.equal(values, value))) for value in chosen]


def segment_rate(false_alarm_rate: float, segments: int) -> float:
    """Each series' share of the monitor's false alarm budget (the whole plus k segments)."""
    return false_alarm_rate / (segments + 1)


def validate_segment(name: str, expression: str, columns: pa.Schema | None) -> None:
    """A segment expression parses and names known columns (checked when keel.yaml loads)."""
    from keel.checks.kpis import check_syntax

    check_syntax(f"segment {name!r}", expression)
    if columns is not None:
        try:
            segment_values(columns.empty_table(), expression=expression)
        except ConfigError as error:
            raise ConfigError(
                f"segment {name!r}: {str(error).splitlines()[0]} (columns: "
                f"{', '.join(columns.names)})"
            ) from error


def segment_baseline(
    baseline: Any, column: str | None, expression: str | None, value: str, min_rows: int = 200
) -> Any:
    """A baseline of one segment, built from the baseline's sample rows in it (None when the
    sample holds fewer than ``min_rows`` of them: the segment cannot be judged). A segment
    compared with the whole reference would drift by construction (country=DE is all DE).

    Its metrics are the realized ones on those rows (the sample's target against its score
    or prediction, when it holds them): a segment is judged against itself, not the whole."""
    from keel.baseline import Baseline

    sample = baseline.sample
    if sample is None or sample.num_rows == 0:
        return None
    rows = sample.filter(pc.equal(segment_values(sample, column, expression), value))
    if rows.num_rows < min_rows:
        return None
    roles = {c.role: c.name for c in baseline.schema.columns if c.role != "feature"}
    named = {
        role: roles[role]
        for role in ("target", "prediction", "score", "timestamp", "id")
        if role in roles and roles[role] in rows.column_names
    }
    ignored = {c.name: "ignored" for c in baseline.schema.columns if c.role == "ignored"}
    kinds = {c.name: c.kind for c in baseline.schema.columns if c.name in rows.column_names}
    return Baseline.from_data(
        rows,
        **named,
        roles=ignored,
        kinds=kinds,
        sample_size=0,
        metrics=_sample_metrics(rows, named),
        lineage={"segment_of": baseline.id, "segment": value},
    )


def _sample_metrics(rows: pa.Table, named: dict[str, str]) -> dict[str, float]:
    from keel.performance import classification_metrics

    if "target" not in named or not ({"score", "prediction"} & set(named)):
        return {}
    truth = rows.column(named["target"]).to_numpy(zero_copy_only=False)
    scores = (
        rows.column(named["score"]).to_numpy(zero_copy_only=False) if "score" in named else None
    )
    guess = (
        rows.column(named["prediction"]).to_numpy(zero_copy_only=False)
        if "prediction" in named
        else None
    )
    if len(np.unique(truth)) > 2:
        return {}
    found = classification_metrics(truth, scores, guess, only=())
    return {name: m.value for name, m in found.items() if m.value is not None}
