"""Train and holdout that share rows, entities or time: the holdout then measures memory.

Rows are compared on the feature columns (not the target, ids, times). A row is an exact
duplicate when every value is equal, a near duplicate when the values are equal after
rounding numbers to 6 significant digits and normalizing text (lower case, runs of
white space as one space, trimmed). Each row is hashed once (pandas' vectorized 64-bit
row hash over the normalized columns) and the hashes are matched with numpy: no Python
loop over rows.

>>> import pyarrow as pa
>>> train = pa.table({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "c"]})
>>> holdout = pa.table({"x": [1.0000001, 2.0, 9.0], "c": ["A ", "b", "c"]})
>>> found = duplicate_rows(train, holdout, ["x", "c"])
>>> found["exact"].tolist(), found["near"].tolist(), found["train_match"].tolist()
([False, True, False], [True, True, False], [0, 1, -1])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIGNIFICANT_DIGITS = 6


def rounded(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mantissa, exponent) of each number rounded to 6 significant digits: equal pairs
    are equal numbers after rounding (zero is (0, 0), NaN and infinities have their own).

    >>> m, e = rounded(np.array([1.0, 1.0000001, 9.9999999, 10.0, 0.0, np.nan]))
    >>> m.tolist(), e.tolist()
    ([100000, 100000, 100000, 100000, 0, 0], [0, 0, 1, 1, 0, -9999])
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values) & (values != 0)
    safe = np.where(finite, np.abs(values), 1.0)
    exponent = np.floor(np.log10(safe)).astype(np.int64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        scaled = np.where(finite, values / np.power(10.0, exponent - (SIGNIFICANT_DIGITS - 1)), 0)
        mantissa = np.rint(scaled)
    carry = np.abs(mantissa) >= 10**SIGNIFICANT_DIGITS  # 9.9999999 rounds up to 10.0000
    mantissa = np.where(carry, np.rint(mantissa / 10), mantissa).astype(np.int64)
    exponent = np.where(carry, exponent + 1, exponent)
    exponent = np.where(finite, exponent, 0)
    exponent = np.where(np.isnan(values), -9999, exponent)
    exponent = np.where(np.isinf(values), 9999, exponent)
    mantissa = np.where(np.isinf(values), np.sign(np.where(np.isinf(values), values, 0)), mantissa)
    return mantissa.astype(np.int64), exponent.astype(np.int64)


def _as_numbers(column: pa.ChunkedArray) -> np.ndarray | None:
    kind = column.type
    if pa.types.is_dictionary(kind):
        return None
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        from keel.windows import utc_times

        column, kind = pc.cast(utc_times(column, "time"), pa.int64()), pa.int64()
    if (
        pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
    ):
        values = pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        missing = column.is_null().to_numpy(zero_copy_only=False)
        return np.where(missing, np.nan, values)
    return None


def _as_text(column: pa.ChunkedArray, normalize: bool) -> np.ndarray:
    text = pc.cast(column, pa.string())
    if normalize:
        text = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(text), r"\s+", " "))
    return text.to_numpy(zero_copy_only=False)


def row_hashes(tables: list[pa.Table], columns: list[str], normalize: bool) -> list[np.ndarray]:
    """One 64-bit hash per row of each table over ``columns``, the tables typed alike (a
    column numeric in every table is compared as numbers, otherwise as text)."""
    import pandas as pd

    frames: list[dict[str, Any]] = [{} for _ in tables]
    for name in columns:
        numbers = [_as_numbers(t.column(name)) for t in tables]
        if all(n is not None for n in numbers):
            for frame, values in zip(frames, numbers, strict=True):
                if normalize:
                    mantissa, exponent = rounded(values)
                    frame[f"{name}\x1fm"], frame[f"{name}\x1fe"] = mantissa, exponent
                else:
                    frame[name] = np.where(np.isnan(values), np.nan, values + 0.0)
        else:
            for frame, table in zip(frames, tables, strict=True):
                frame[name] = _as_text(table.column(name), normalize)
    return [
        pd.util.hash_pandas_object(pd.DataFrame(frame), index=False).to_numpy()
        if frame
        else np.zeros(table.num_rows, dtype=np.uint64)
        for frame, table in zip(frames, tables, strict=True)
    ]


def duplicate_rows(train: pa.Table, holdout: pa.Table, columns: list[str]) -> dict[str, Any]:
    """Per holdout row: ``exact`` (equal to a training row), ``near`` (equal after
    normalizing; exact rows are near too), ``train_match`` (the first such training row, or
    -1); and the training rows' own duplicate shares (``train_exact_share``,
    ``train_near_share``: rows equal to an earlier training row)."""
    exact_train, exact_holdout = row_hashes([train, holdout], columns, normalize=False)
    near_train, near_holdout = row_hashes([train, holdout], columns, normalize=True)
    exact = np.isin(exact_holdout, exact_train)
    near = np.isin(near_holdout, near_train)
    order = np.argsort(near_train, kind="stable")
    position = np.searchsorted(near_train[order], near_holdout)
    position = np.clip(position, 0, max(len(order) - 1, 0))
    match = np.where(near, order[position] if len(order) else -1, -1)
    rows = max(train.num_rows, 1)
    return {
        "exact": exact,
        "near": near,
        "train_match": match.astype(np.int64),
        "train_in_holdout": np.isin(near_train, near_holdout),
        "train_exact_share": float(pd_duplicated(exact_train).sum() / rows),
        "train_near_share": float(pd_duplicated(near_train).sum() / rows),
    }


def pd_duplicated(hashes: np.ndarray) -> np.ndarray:
    """True for each value equal to an earlier one."""
    _, first = np.unique(hashes, return_index=True)
    duplicated = np.ones(len(hashes), dtype=bool)
    duplicated[first] = False
    return duplicated


def shared_values(train: pa.ChunkedArray, holdout: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(per holdout row: its value is also in training, the distinct shared values, sorted)."""
    if train.type != holdout.type:
        train, holdout = pc.cast(train, pa.string()), pc.cast(holdout, pa.string())
    train_values = pc.unique(pc.drop_null(train))
    inside = pc.fill_null(pc.is_in(holdout, value_set=train_values), False)
    shared = pc.unique(pc.drop_null(holdout.filter(inside)))
    return inside.to_numpy(zero_copy_only=False), shared.take(pc.array_sort_indices(shared))
