"""Ingesting prediction records, then one monitor run over them.

Run: python benchmarks/ingest_and_monitor.py [--rows 1000000] [--days 30]

A prediction log of N records × 10 features (8 numeric, 2 categorical) plus a
score, spread over the given number of days, is logged three ways into a fresh
log folder each time:

- per request: ``keel.log_predictions`` with one record per call (a sample of
  20,000 calls; the rate is per record);
- in batches of 1,000 records (a service flushing its own small buffers);
- one Parquet file through ``keel ingest predictions``'s code path.

Then a ``keel.yaml``-style monitor with daily windows runs over the batched
log (DuckDB read, every closed window checked, Results stored in a SQLite
file), and runs again (idempotent: nothing new to check). Prints each time,
rows per second, and the number of files each way left behind.

Last (``--small-windows``, or alone with ``--only-small-windows``): a monitor
over 100 hourly windows of 2,000 rows, with the machine's other cores kept
busy by spinning processes, run twice into fresh stores: with every thread
the numeric libraries want (``KEEL_THREADS`` = the core count: what keel did
before it limited its pools) and with keel's default of one. Prints both
times and their ratio.

``--durability`` (or alone with ``--only-durability``): the per-call cost of
logging in ``durable`` mode (each call returns after the fdatasync covering
it) and in ``fast`` mode (it returns at once; synced every 100 ms), for one
record per call and for batches of 100 (dicts and Arrow tables), from one
thread and from 8 threads sharing a writer (group commit). Prints µs per call,
µs per record and the durable / fast ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import keel
from keel.baseline import Baseline
from keel.monitor import run_monitor
from keel.monitor.config import MonitorConfig
from keel.store import ResultStore
from keel.store.logs import LogWriter


def records(rows: int, days: int, seed: int, start: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, days * 86400, rows))
    frame = pd.DataFrame(
        {
            "request_id": [f"{seed}-{i}" for i in range(rows)],
            "event_time": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(seconds, "s"),
            "model_version": "1",
        }
    )
    for index in range(8):
        frame[f"n{index}"] = rng.normal(index, 1 + index / 4, rows)
    frame["c0"] = rng.choice(list("abcdefgh"), rows)
    frame["c1"] = rng.choice(["x", "y"], rows, p=[0.8, 0.2])
    frame["score"] = 1 / (1 + np.exp(-frame["n0"]))
    return frame


def files(root: Path) -> int:
    return sum(1 for _ in (root / "predictions").rglob("*.parquet"))


def baseline_and_monitor(
    work: Path, name: str, reference: pd.DataFrame, logs: Path, window: str, sample_size: int
) -> MonitorConfig:
    """A baseline of ``reference`` saved in ``work`` and a monitor of model ``name`` on it."""
    path = work / f"{name}.baseline"
    Baseline.from_data(reference, timestamp="event_time", sample_size=sample_size).save(path)
    return MonitorConfig(name=name, model=name, baseline=str(path), logs=str(logs), window=window)


def small_windows(work: Path, windows: int = 100, rows_per_window: int = 2000) -> None:
    """A monitor over many small windows on a loaded machine: all threads vs one."""
    import os
    import subprocess
    import sys

    import keel.history

    hours = windows
    frame = records(windows * rows_per_window, 1, 3, "2026-03-01")
    frame["event_time"] = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(
        np.sort(np.random.default_rng(4).uniform(0, hours * 3600, len(frame))), "s"
    )
    logs = work / "small-logs"
    with LogWriter(logs, "predictions", "small") as writer:
        writer.append(pa.Table.from_pandas(frame, preserve_index=False))
    reference = records(40_000, 1, 5, "2026-02-01").drop(columns=["request_id"])
    monitor = baseline_and_monitor(work, "small", reference, logs, "1h", sample_size=5000)
    now = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=hours + 1)
    cores = os.cpu_count() or 2
    spin = "import time\nend = time.time() + 600\nwhile time.time() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(max(cores - 1, 1))]
    timings = {}
    try:
        for threads in (cores, 1):
            os.environ["KEEL_THREADS"] = str(threads)
            keel.history._FITTED.clear()  # each run fits its models itself
            store = ResultStore(f"sqlite:///{work / f'small-{threads}.db'}")
            started = time.perf_counter()
            outcome = run_monitor(monitor, store, now=now)
            timings[threads] = (time.perf_counter() - started, outcome)
    finally:
        for spinner in spinners:
            spinner.kill()
        os.environ.pop("KEEL_THREADS", None)
    print(
        f"{windows} hourly windows of {rows_per_window:,} rows, {len(spinners)} other core(s) busy"
    )
    for threads, (seconds, outcome) in timings.items():
        print(
            f"  KEEL_THREADS={threads}: {seconds:6.2f} s  {outcome['windows']} windows, "
            f"{outcome['written']:,} results stored"
        )
    print(f"  ratio (all threads / one): {timings[cores][0] / timings[1][0]:.1f}×")


def durability(work: Path, calls: int = 2000) -> None:
    """Per-call cost of durable vs fast logging (see the module docstring)."""
    import threading

    frame = records(calls * 100, 1, 7, "2026-03-01")
    dicts = frame.to_dict("records")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    shapes = {
        "1 record (dict)": lambda i: dicts[i],
        "100 dicts": lambda i: dicts[i * 100 : (i + 1) * 100],
        "100-row table": lambda i: table.slice(i * 100, 100),
    }
    print(f"durable vs fast logging ({calls:,} calls each; wall µs per call / per record)")
    for threads in (1, 8):
        for shape, make in shapes.items():
            cost = {}
            for mode in ("fast", "durable"):
                writer = LogWriter(
                    work / f"wal-{mode}-{threads}-{shape[:3]}",
                    "predictions",
                    "bench",
                    mode=mode,
                    flush_rows=10**9,
                    flush_seconds=10**9,
                )
                per_thread = calls // threads

                def client(
                    number: int, writer: LogWriter = writer, count: int = per_thread, make=make
                ) -> None:
                    for index in range(number * count, (number + 1) * count):
                        writer.append(make(index))

                started = time.perf_counter()
                pool = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
                for thread in pool:
                    thread.start()
                for thread in pool:
                    thread.join()
                elapsed = time.perf_counter() - started
                writer.close()
                cost[mode] = elapsed / (per_thread * threads) * 1e6  # wall time per call
            rows = 1 if shape.startswith("1 ") else 100
            print(
                f"  {threads} thread(s), {shape:15}: fast {cost['fast']:8.0f} µs "
                f"({cost['fast'] / rows:6.1f}/record), durable {cost['durable']:8.0f} µs "
                f"({cost['durable'] / rows:6.1f}/record), durable/fast "
                f"{cost['durable'] / cost['fast']:4.1f}×"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--small-windows", action="store_true")
    parser.add_argument("--only-small-windows", action="store_true")
    parser.add_argument("--durability", action="store_true")
    parser.add_argument("--only-durability", action="store_true")
    args = parser.parse_args()
    if args.only_durability:
        durability(Path(tempfile.mkdtemp(prefix="keel-wal-")))
        return
    if args.only_small_windows:
        small_windows(Path(tempfile.mkdtemp(prefix="keel-small-")))
        return
    work = Path(tempfile.mkdtemp(prefix="keel-ingest-"))
    frame = records(args.rows, args.days, 2, "2026-02-01")
    table = pa.Table.from_pandas(frame, preserve_index=False)

    single = work / "single"
    calls = min(20_000, args.rows)
    dicts = frame.head(calls).to_dict("records")
    started = time.perf_counter()
    for record in dicts:
        keel.log_predictions(record, model="bench", root=single)
    from keel.store.logs import _OPEN

    for writer in _OPEN.values():
        writer.flush()
    per_request = time.perf_counter() - started

    batched = work / "batched"
    started = time.perf_counter()
    with LogWriter(batched, "predictions", "bench") as writer:
        for offset in range(0, args.rows, 1000):
            writer.append(table.slice(offset, 1000))
    in_batches = time.perf_counter() - started

    filed = work / "file"
    pq.write_table(table, work / "served.parquet")
    started = time.perf_counter()
    source = keel.open_source(work / "served.parquet")
    with LogWriter(filed, "predictions", "bench") as writer:
        for batch in source.batches():
            writer.append(pa.Table.from_batches([batch]))
    from_file = time.perf_counter() - started

    reference = records(args.rows // 5, args.days, 1, "2026-01-01").drop(columns=["request_id"])
    monitor = baseline_and_monitor(work, "bench", reference, batched, "1D", sample_size=1000)
    store = ResultStore(f"sqlite:///{work / 'keel.db'}")
    now = datetime(2026, 2, 1, tzinfo=UTC) + timedelta(days=args.days + 1)
    started = time.perf_counter()
    outcome = run_monitor(monitor, store, now=now)
    first_run = time.perf_counter() - started
    started = time.perf_counter()
    again = run_monitor(monitor, store, now=now)
    second_run = time.perf_counter() - started

    print(f"{args.rows:,} prediction records × 10 features over {args.days} days")
    print(
        f"  per request ({calls:,} calls of 1 record): {calls / per_request:,.0f} records/s, "
        f"{per_request / calls * 1e6:.0f} µs per call, {files(single)} files"
    )
    print(
        f"  batches of 1,000:   {in_batches:6.2f} s  {args.rows / in_batches:,.0f} records/s, "
        f"{files(batched)} files"
    )
    print(
        f"  one Parquet file:   {from_file:6.2f} s  {args.rows / from_file:,.0f} records/s, "
        f"{files(filed)} files"
    )
    print(
        f"  monitor run:        {first_run:6.2f} s  {outcome['windows']} daily windows, "
        f"{outcome['written']:,} results stored, {args.rows / first_run:,.0f} rows/s"
    )
    print(
        f"  run again:          {second_run:6.2f} s  {again['windows']} windows, "
        f"{again['written']} results stored"
    )
    if args.small_windows:
        small_windows(work)
    if args.durability:
        durability(work)


if __name__ == "__main__":
    main()
