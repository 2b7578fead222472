"""Was each feature there when the prediction was made, and is it there when serving?

**Availability.** A feature is legitimate only if it is observable at prediction time
(Kaufman, Rosset & Perlich, TKDD 2012). Each feature may name the column holding when its
value became available (``"income_7d": "income_7d_at"``), or a column plus a lag
(``"income_7d": "event_time+2h"``: available two hours after its event time). One
convention with ``keel.features``: a value is seen by a prediction at t only if it was
available *before* t, so availability at or after the prediction time is a violation.

**Serving.** A feature that training had but serving does not: its served values are
mostly missing (at least half the served rows, and 25 points more than in training), or
one constant default (at least 90% of the served values, a value that is under half of
training's, in a column with several values in training).

>>> import pyarrow as pa, datetime as dt
>>> t = [dt.datetime(2026, 1, d) for d in (1, 2, 3, 4)]
>>> table = pa.table({"p": t[1:], "x_at": [t[0], t[3], t[1]]})
>>> late = availability_violations(table, "p", Availability("x_at"))
>>> late["rows"].tolist(), late["checked"]
([1], 3)
>>> parse_availability("x=x_time+2h")
('x', Availability(column='x_time', lag_seconds=7200.0))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import ConfigError

MOSTLY_MISSING = 0.5
MISSING_MARGIN = 0.25
DEFAULTED = 0.9
TRAINING_SHARE_OF_DEFAULT = 0.5
MIN_SERVED_ROWS = 20


@dataclass(frozen=True)
class Availability:
    """When a feature's value became available: ``column`` (a time), plus ``lag_seconds``."""

    column: str
    lag_seconds: float = 0.0

    def describe(self) -> str:
        return self.column + (f" + {self.lag_seconds:g}s" if self.lag_seconds else "")


def parse_availability(text: str) -> tuple[str, Availability]:
    """``FEATURE=COLUMN`` or ``FEATURE=COLUMN+LAG`` (a duration: 90s, 6h, 1D) from the
    command line, as (feature, Availability).

    >>> parse_availability("spend_7d=spend_at")
    ('spend_7d', Availability(column='spend_at', lag_seconds=0.0))
    """
    from keel.windows import duration_seconds

    feature, equals, spec = text.partition("=")
    column, plus, lag = spec.partition("+")
    if not equals or not feature.strip() or not column.strip():
        raise ConfigError(
            f"--available {text!r}: write FEATURE=COLUMN or FEATURE=COLUMN+LAG (e.g. 2h)"
        )
    try:
        seconds = duration_seconds(lag.strip()) if plus else 0.0
    except (ConfigError, ValueError) as error:
        raise ConfigError(f"--available {text!r}: the lag {lag!r} is not a duration") from error
    return feature.strip(), Availability(column.strip(), seconds)


def as_availability(spec: str | Availability) -> Availability:
    """A column name, ``"COLUMN+LAG"``, or an Availability."""
    if isinstance(spec, Availability):
        return spec
    return parse_availability(f"feature={spec}")[1]


def _micros(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    from keel.windows import utc_times

    times = utc_times(table.column(column).combine_chunks(), column)
    missing = times.is_null().to_numpy(zero_copy_only=False)
    values = pc.fill_null(pc.cast(times, pa.int64()), 0).to_numpy(zero_copy_only=False)
    return values.astype(np.int64), missing


def availability_violations(
    table: pa.Table, prediction_time: str, availability: Availability
) -> dict[str, Any]:
    """The rows whose feature was available at or after the prediction time: ``rows``
    (positions), ``late_us`` (by how much, in microseconds), ``checked`` (rows with both
    times) and ``unknown`` (rows missing either time)."""
    predicted, missing_prediction = _micros(table, prediction_time)
    available, missing_available = _micros(table, availability.column)
    available = available + int(round(availability.lag_seconds * 1e6))
    known = ~(missing_prediction | missing_available)
    late = known & (available >= predicted)
    rows = np.flatnonzero(late)
    return {
        "rows": rows,
        "late_us": (available - predicted)[rows],
        "checked": int(known.sum()),
        "unknown": int((~known).sum()),
    }


def served_gap(training: pa.ChunkedArray, served: pa.ChunkedArray) -> dict[str, Any] | None:
    """What serving lacks of one feature: ``{"kind": "missing", ...}`` or ``{"kind":
    "default", ...}`` with the shares behind it, or None when serving has real values."""
    rows = len(served)
    if rows < MIN_SERVED_ROWS or len(training) == 0:
        return None
    train_missing = _missing_share(training)
    served_missing = _missing_share(served)
    if served_missing >= MOSTLY_MISSING and served_missing >= train_missing + MISSING_MARGIN:
        return {
            "kind": "missing",
            "served_missing_share": served_missing,
            "training_missing_share": train_missing,
            "served_rows": rows,
        }
    present = pc.drop_null(_plain(served))
    trained = pc.drop_null(_plain(training))
    if len(present) == 0 or len(pc.unique(trained)) < 2:
        return None
    counts = pc.value_counts(present)
    top = int(np.argmax(counts.field("counts").to_numpy(zero_copy_only=False)))
    value = counts.field("values")[top]
    share = counts.field("counts")[top].as_py() / len(present)
    if share < DEFAULTED:
        return None
    try:
        same = pc.equal(trained, pc.cast(pa.array([value.as_py()]), trained.type)[0])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        same = pc.equal(pc.cast(trained, pa.string()), str(value.as_py()))
    train_share = int(pc.sum(pc.cast(same, pa.int64())).as_py() or 0) / len(trained)
    if train_share >= TRAINING_SHARE_OF_DEFAULT:
        return None
    return {
        "kind": "default",
        "value": value.as_py(),
        "served_share": share,
        "training_share": train_share,
        "served_rows": rows,
    }


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return pc.cast(column, column.type.value_type)
    return column


def _missing_share(column: pa.ChunkedArray) -> float:
    missing = column.is_null()
    if pa.types.is_floating(column.type):
        missing = pc.or_(missing, pc.fill_null(pc.is_nan(column), False))
    return int(pc.sum(pc.cast(missing, pa.int64())).as_py() or 0) / max(len(column), 1)
