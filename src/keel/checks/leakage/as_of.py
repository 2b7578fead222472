"""Training values that differ from their as-of-availability values.

A windowed feature (``keel.features.WindowedFeature``) in a training table should hold,
for each row, what the online state would have served at the row's prediction time:
the events in ``[t − W, t)`` that were available before t. ``compute_offline``
recomputes exactly that from the event log; a training value that differs was computed
with events that arrived late (or from the future): the model learned values it will
never be served. Values are equal when both are missing, or both are numbers within
1e-9 relative (integers and floats compared as numbers).

>>> import pandas as pd
>>> from keel.features import WindowedFeature
>>> events = pd.DataFrame({"user": ["a", "a"], "amount": [10, 20],
...     "event_time": pd.to_datetime(["2026-03-01", "2026-03-05"], utc=True),
...     "available_time": pd.to_datetime(["2026-03-01", "2026-03-09"], utc=True)})
>>> spend = WindowedFeature("spend_7d", entity="user", column="amount",
...                         aggregation="sum", window="7D")
>>> train = pa.table({"user": ["a", "a"], "spend_7d": [30, 10],
...     "t": pd.to_datetime(["2026-03-06", "2026-03-06"], utc=True)})
>>> as_of_differences(train, [spend], events, "t")["spend_7d"]["rows"].tolist()
[0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

RELATIVE_TOLERANCE = 1e-9


def as_of_differences(
    train: pa.Table, features: list[Any], events: Any, at: str
) -> dict[str, dict[str, Any]]:
    """Per feature present in ``train``: ``rows`` (positions whose value differs from the
    as-of value), ``training`` and ``as_of`` (their values) and ``checked`` (rows)."""
    from keel.features import compute_offline

    present = [f for f in features if f.name in train.column_names]
    if not present:
        return {}
    keys = sorted({key for f in present for key in f.entities} | {at})
    recomputed = compute_offline(present, events, train.select(keys), at=at)
    found = {}
    for feature in present:
        trained = train.column(feature.name)
        truth = recomputed.column(feature.name)
        differ = _differ(trained, truth)
        rows = np.flatnonzero(differ)
        found[feature.name] = {
            "rows": rows,
            "training": trained.take(pa.array(rows[:20])).to_pylist(),
            "as_of": truth.take(pa.array(rows[:20])).to_pylist(),
            "checked": train.num_rows,
        }
    return found


def _differ(trained: pa.ChunkedArray, truth: pa.ChunkedArray) -> np.ndarray:
    left_missing = trained.is_null().to_numpy(zero_copy_only=False)
    right_missing = truth.is_null().to_numpy(zero_copy_only=False)
    try:
        left = pc.cast(trained, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        right = pc.cast(truth, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        equal = pc.fill_null(
            pc.equal(pc.cast(trained, pa.string()), pc.cast(truth, pa.string())), False
        )
        return ~(equal.to_numpy(zero_copy_only=False) | (left_missing & right_missing))
    left_missing |= np.isnan(np.where(left_missing, 0.0, left))
    right_missing |= np.isnan(np.where(right_missing, 0.0, right))
    left, right = np.where(left_missing, 0.0, left), np.where(right_missing, 0.0, right)
    close = np.abs(left - right) <= RELATIVE_TOLERANCE * np.maximum(np.abs(left), np.abs(right))
    return np.where(left_missing | right_missing, left_missing != right_missing, ~close)
