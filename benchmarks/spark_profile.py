"""Spark ``local[2]`` against one process: the same Parquet file profiled by both, and where
Spark's fixed costs go.

Command: ``nice -n 10 python benchmarks/spark_profile.py --rows 2000000 --columns 20``

Measured, in one run (each figure is wall seconds):

- ``one process``: ``ENGINES["local"].profile_sides(None, path)``;
- ``session start``: the JVM and SparkSession (``spark_session("local[2]")``);
- ``first JVM job``: ``spark.range(2).count()``, the first job's scheduling;
- ``first Python job``: ``mapInArrow`` over one tiny row: Python workers start and
  import keel;
- ``per partition``: a tiny frame in 16 partitions against 2, per extra partition;
- ``spark profile (first)`` and ``(warm)``: ``ENGINES["spark"].profile_sides(None, path)``:
  the partitions' profiles, then each column's merged in the executors (a shuffle by
  column) and put side by side on the driver;
- its parts: the partitions' work alone (``mapInArrow`` and collect of the unmerged
  per-column profiles), the driver's merge of those, and the same read and hand-over of
  Arrow batches to Python with no profiling.

Measured 2026-12-01, 23:56 UTC (2 cores shared with other jobs, less loaded than the run
before; pyspark 4.3.0, Java 17), 2,000,000 rows x 20 columns (18 numeric, 2 categorical),
one 3-partition file:

| step | s |
|---|---|
| one process | 0.90 |
| session start | 4.85 |
| first JVM job | 2.58 |
| first Python job (workers start, import keel) | 3.24 |
| per extra partition | 0.04 |
| Spark profile, first | 4.91 |
| Spark profile, warm | 3.75 (4.19x one process) |
| of which the partitions' work + collect | 2.79 |
| the rest: the merge by column in the executors (a shuffle, a second job) | 0.96 |
| the driver's merge of the unmerged parts, for comparison (520 kB of profiles) | 0.005 |
| read + Arrow hand-over alone, no profiling | 2.28 |

On one machine Spark's cost is its JVM reading Parquet and handing rows to Python as Arrow
(2.3 of the 2.8 s the partitions take); profiling overlaps it. Merging the columns in the
executors costs about 1 s of fixed time on these small profiles (merging them on the driver
would take 5 ms), the price of never holding every partition's sketches in one place: at
1,000 columns of 200,000-row partitions the driver's merge lost its 160 MB task results
(``benchmarks/spark_wide.py``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _write(path: Path, rows: int, columns: int) -> None:
    rng = np.random.default_rng(0)
    numeric = columns - 2
    writer = None
    for start in range(0, rows, 250_000):
        n = min(250_000, rows - start)
        data = {f"x{i}": rng.normal(i, 1.0 + i, n) for i in range(numeric)}
        for j in range(2):
            data[f"c{j}"] = rng.choice(np.array([f"k{v}" for v in range(20)], dtype=object), n)
        table = pa.table(data)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=250_000)
    writer.close()


def _timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=20)
    args = parser.parse_args()

    from keel.engines import ENGINES
    from keel.engines.spark import (
        PROFILE_ROWS,
        _partition_profiler,
        merge_columns,
        profile_frame,
        spark_session,
    )
    from keel.schema import Schema

    folder = Path(tempfile.mkdtemp(prefix="keel-spark-bench-"))
    path = folder / "data.parquet"
    _write(path, args.rows, args.columns)
    schema = Schema.infer(path)
    figures: dict[str, float] = {}

    figures["one process"], local = _timed(lambda: ENGINES["local"].profile_sides(None, path))

    figures["session start"], spark = _timed(lambda: spark_session("local[2]", "keel-bench"))
    spark.sparkContext.setLogLevel("ERROR")
    figures["first JVM job"], _ = _timed(lambda: spark.range(2).count())
    tiny = spark.createDataFrame([(1.0,)], "v double")
    tiny_schema = Schema.infer(pa.table({"v": [1.0]}))
    figures["first Python job"], _ = _timed(lambda: profile_frame(tiny, tiny_schema))
    spread = spark.range(32).selectExpr("cast(id as double) as v")
    two, sixteen = spread.repartition(2).cache(), spread.repartition(16).cache()
    two.count(), sixteen.count()
    t2, _ = _timed(lambda: profile_frame(two, tiny_schema))
    t16, _ = _timed(lambda: profile_frame(sixteen, tiny_schema))
    figures["per partition"] = (t16 - t2) / 14

    frame = spark.read.parquet(str(path))
    partitions = frame.rdd.getNumPartitions()
    for label in ("first", "warm"):
        wall, (_, profile) = _timed(lambda: ENGINES["spark"].profile_sides(None, str(path)))
        figures[f"spark profile ({label})"] = wall
    run = _partition_profiler(schema.to_dict(), {})
    selected = frame.select(*schema.names)
    figures["  partitions' work + collect"], parts = _timed(
        lambda: selected.mapInArrow(run, PROFILE_ROWS).collect()
    )
    figures["  driver merge"], _ = _timed(lambda: merge_columns(parts, schema, {}))

    def rows_only(batches):  # the same read and Arrow hand-over, no profiling
        yield pa.RecordBatch.from_pydict({"n": [sum(batch.num_rows for batch in batches)]})

    figures["  read + Arrow hand-over only"], _ = _timed(
        lambda: selected.mapInArrow(rows_only, "n long").collect()
    )
    spark.stop()

    same = (
        all(profile.columns[n].count == local[1].columns[n].count for n in schema.names)
        and profile.rows == local[1].rows
    )
    numeric = args.columns - 2
    print(f"{args.rows:,} rows x {args.columns} columns ({numeric} numeric, 2 categorical)")
    print(f"Spark local[2]: {partitions} partitions of the file; counts equal: {same}")
    print(f"bytes collected: {sum(len(row[1]) for row in parts):,}")
    for name, seconds in figures.items():
        print(f"{name:32s} {seconds:8.3f} s")
    ratio = figures["spark profile (warm)"] / figures["one process"]
    print(f"{'spark (warm) / one process':32s} {ratio:8.2f}")


if __name__ == "__main__":
    main()
