"""A wide table on Spark ``local[2]``: 1,000 numeric columns profiled with column batching
(``keel.engines.spark.COLUMN_BATCH`` columns per pass) against fewer, larger passes, with the
wall time and the peak resident memory of the driver, its JVM and the Python workers.

Command: ``nice -n 10 python benchmarks/spark_wide.py --rows 400000 --columns 1000``

Each configuration runs in a fresh process (its own driver, JVM and Python workers, so no
worker reused from another run holds memory); this process samples ``/proc`` every 50 ms
for that process and all its descendants (VmRSS) and keeps the peaks of their sum, of the
JVM, of the Python workers together and of the largest worker. The table is one Parquet
file of normal doubles (50,000-row groups), read as 2 partitions (``maxPartitionBytes`` at
half the file): with 400,000 rows each task sees 200,000 rows, which fills every column's
exact quantile buffer (1.6 MB), the worst case per task; a pass reads only its columns.
The wall time is ``profile_frame`` alone, after the session and its Python workers started.

Measured 2026-12-01 (2 cores shared with another engineer's jobs; pyspark 4.3.0, Java 17,
the local session's default 1 GB JVM heap), 400,000 rows x 1,000 numeric columns (3.8 GB
of Parquet), 2 partitions of 200,000 rows:

| column_batch | passes | wall s | peak RSS, all | driver | JVM | Python workers | largest worker |
|---|---|---|---|---|---|---|---|
| 25 | 40 | 73.3 | 2,258 MB | 167 MB | 1,671 MB | 459 MB | 207 MB |
| 50 | 20 | 62.3 | 2,561 MB | 167 MB | 1,903 MB | 575 MB | 264 MB |
| 100 (default) | 10 | 57.4 | 2,991 MB | 168 MB | 2,110 MB | 736 MB | 359 MB |
| 250 | 4 | failed (an earlier run): the 1 GB JVM ran out of heap reading Parquet pages | | | | | |

Every configuration gave the same profile. A Python worker holds about 110 MB of its own
plus about 2.5 MB per column of the pass (the column's exact quantile buffer and its share
of the Arrow batch; each column's bytes leave the worker one at a time), so the default
keeps a worker near 360 MB whatever the width; one pass over 1,000 columns would need
about 2.6 GB per worker. A pass costs about 3 s of fixed time here (a read, a shuffle to
merge by column, two jobs), so fewer, wider passes are faster while they fit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _tree_rss(root: int) -> dict[str, float]:
    """Resident MB of ``root`` and its descendants: all, the JVM, the Python workers."""
    parents, names, rss = {}, {}, {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        pid = int(status.parent.name)
        parents[pid] = int(fields.get("PPid", "0"))
        names[pid] = fields.get("Name", "").strip()
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        frontier = [pid for pid in children if pid not in tree]
        tree.update(frontier)
    workers = [rss.get(pid, 0.0) for pid in tree if pid != root and names[pid].startswith("py")]
    return {
        "all": sum(rss.get(pid, 0.0) for pid in tree),
        "driver": rss.get(root, 0.0),
        "jvm": sum(rss.get(pid, 0.0) for pid in tree if names.get(pid) == "java"),
        "workers": sum(workers),
        "largest worker": max(workers, default=0.0),
    }


def _measure(args: argparse.Namespace, column_batch: int) -> dict:
    command = [sys.executable, __file__, "--path", str(args.path)]
    with tempfile.TemporaryFile("w+") as log:  # Spark's log and progress bars: on a failure
        child = subprocess.Popen(
            [*command, "--one", str(column_batch)], stdout=subprocess.PIPE, stderr=log, text=True
        )
        peaks: dict[str, float] = {}

        def sample() -> None:
            while child.poll() is None:
                for name, value in _tree_rss(child.pid).items():
                    peaks[name] = max(peaks.get(name, 0.0), value)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = child.communicate()
        sampler.join()
        if child.returncode:
            log.seek(0)
            print(log.read()[-3_000:], file=sys.stderr)
            return {"column_batch": column_batch, "failed": child.returncode, **peaks}
    return {**json.loads(out.strip().splitlines()[-1]), **peaks}


def _write(path: Path, rows: int, columns: int) -> None:
    """``rows`` x ``columns`` normal doubles (column i: mean i, sd 1 + i), 50,000-row groups."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    writer = None
    for start in range(0, rows, 50_000):
        n = min(50_000, rows - start)
        table = pa.table({f"x{i}": rng.normal(i, 1.0 + i, n) for i in range(columns)})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def _one(path: Path, column_batch: int) -> None:
    """One configuration, in this process: print its figures as one JSON line."""
    import pyarrow.parquet as pq

    from keel.engines.spark import column_groups, profile_frame, spark_session
    from keel.schema import Schema

    spark = spark_session("local[2]", "keel-bench-wide")
    spark.sparkContext.setLogLevel("ERROR")
    # two splits of the file: each task profiles half the rows, all of them in its sketches
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(path.stat().st_size // 2 + 1))
    frame = spark.read.parquet(str(path))
    partitions = frame.rdd.getNumPartitions()
    # from the file's Arrow schema alone (every column a double, numeric): Schema.infer(path)
    # of this file holds 3 GB, and a Spark limit(1000) of 1,000 columns crashed the 1 GB JVM
    schema = Schema.infer(pq.read_schema(path).empty_table())
    profile_frame(frame.limit(10).select("x0"), Schema([schema["x0"]]))  # workers start
    started = time.perf_counter()
    profile = profile_frame(frame, schema, column_batch=column_batch)
    wall = time.perf_counter() - started
    spark.stop()
    check = sum(column.mean for column in profile.columns.values())
    passes = len(column_groups(list(schema.names), column_batch))
    figures = {"column_batch": column_batch, "passes": passes, "wall": wall, "rows": profile.rows}
    print(json.dumps({**figures, "partitions": partitions, "sum of means": check}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--columns", type=int, default=1_000)
    parser.add_argument("--batches", default="25,100,250", help="column_batch values to run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        _one(Path(args.path), args.one)
        return
    folder = Path(tempfile.mkdtemp(prefix="keel-spark-wide-"))
    args.path = folder / "wide.parquet"
    written = time.perf_counter()
    _write(args.path, args.rows, args.columns)
    written = time.perf_counter() - written
    size = args.path.stat().st_size / 2**20
    print(
        f"{args.rows:,} rows x {args.columns:,} numeric columns ({size:,.0f} MB of Parquet, "
        f"written in {written:.0f} s), Spark local[2]"
    )
    print(
        "| column_batch | passes | partitions | wall s | peak RSS, all | driver | JVM "
        "| Python workers | largest worker |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    sums = set()
    for column_batch in (int(b) for b in args.batches.split(",")):
        row = _measure(args, column_batch)
        if "failed" in row:
            peak = row.get("all", 0.0)
            print(f"| {column_batch} | failed (exit {row['failed']}) | | | {peak:,.0f} MB |")
            continue
        sums.add(round(row["sum of means"], 6))
        print(
            f"| {column_batch} | {row['passes']} | {row['partitions']} | {row['wall']:.1f} "
            f"| {row['all']:,.0f} MB | {row['driver']:,.0f} MB | {row['jvm']:,.0f} MB "
            f"| {row['workers']:,.0f} MB | {row['largest worker']:,.0f} MB |"
        )
    print(f"same profile in every configuration (sum of the means): {len(sums) == 1}")
    args.path.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
