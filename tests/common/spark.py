"""What the Spark tests share: their marks, and a reference and current Parquet file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.engines.spark import missing_requirement

MISSING = missing_requirement()
#: A Spark test module's ``pytestmark``: run in the Spark stack, skipped without pyspark/Java.
SPARK_ONLY = [
    pytest.mark.spark,
    pytest.mark.skipif(MISSING is not None, reason=f"Spark: {MISSING}"),
]


def write_sides(
    folder: Path,
    table: Callable[[int, float], pa.Table],
    current_shift: float,
    row_group_size: int | None = None,
) -> list[Path]:
    """``[reference, current]`` Parquet files: ``table(1, 0.0)`` and ``table(2, shift)``."""
    paths = []
    for name, seed, shift in (("reference", 1, 0.0), ("current", 2, current_shift)):
        path = folder / f"{name}.parquet"
        pq.write_table(table(seed, shift), path, row_group_size=row_group_size)
        paths.append(path)
    return paths
