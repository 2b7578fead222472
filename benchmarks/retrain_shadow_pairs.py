"""How long reading the gateway's logs into the gate's pairs takes (docs/retraining.md).

    nice -n 10 python benchmarks/retrain_shadow_pairs.py              # 1,000,000 requests
    nice -n 10 python benchmarks/retrain_shadow_pairs.py --rows 200000

Writes a champion log, a shadow log (0.5% of shadows dropped) and a label log of
``--rows`` requests over 10 days, one Parquet file a day per log, in the layout the log
writer uses, then times ``read_shadow_pairs`` (cold and warm) and the gate on its arrays.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from keel.retrain.gate import GateConfig, evaluate_gate
from keel.retrain.shadow_pairs import read_shadow_pairs

START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 10


def write(root: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.5).astype(np.int64)
    champion = np.where(rng.random(rows) < 0.80, y, 1 - y)
    challenger = np.where(rng.random(rows) < 0.82, y, 1 - y)
    dropped = rng.random(rows) < 0.005
    ids = pa.array(np.char.add("r", np.arange(rows).astype(str)))
    offsets = np.sort(rng.integers(0, DAYS * 86_400_000_000, rows))
    times = pa.array(
        np.datetime64(START.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]"),
        pa.timestamp("us", tz="UTC"),
    )
    ingested = pa.array(
        np.full(rows, np.datetime64("2026-12-01T00:00:00", "us")), pa.timestamp("us", tz="UTC")
    )
    day = offsets // 86_400_000_000
    logs = {
        ("predictions", "loans"): {
            "request_id": ids,
            "event_time": times,
            "role": pa.array(np.full(rows, "champion")),
            "model_version": pa.array(np.full(rows, "1")),
            "prediction": champion,
            "score": 0.2 + 0.6 * champion,
            "_ingested_at": ingested,
        },
        ("predictions", "loans.shadow"): {
            "request_id": ids,
            "event_time": times,
            "role": pa.array(np.full(rows, "shadow")),
            "model_version": pa.array(np.full(rows, "2")),
            "prediction": pa.array(challenger, mask=dropped),
            "score": pa.array(0.2 + 0.6 * challenger, mask=dropped),
            "shadow_dropped": pa.array(np.where(dropped, "queue_full", None)),
            "_ingested_at": ingested,
        },
        ("labels", "loans"): {
            "request_id": ids,
            "event_time": pa.array(
                times.to_numpy() + np.timedelta64(1, "D"), pa.timestamp("us", tz="UTC")
            ),
            "label": y,
            "_ingested_at": ingested,
        },
    }
    for (kind, model), columns in logs.items():
        table = pa.table(columns)
        for number in range(DAYS):
            folder = root / kind / f"model={model}" / f"date={(START + timedelta(number)):%Y-%m-%d}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.filter(pa.array(day == number)), folder / "part-0.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        began = time.perf_counter()
        write(root, rows)
        print(f"wrote 3 logs of {rows:,} requests in {time.perf_counter() - began:.1f} s")
        as_of = START + timedelta(days=DAYS + 2)
        for label in ("cold", "warm"):
            began = time.perf_counter()
            pairs = read_shadow_pairs(root, "loans", "2", as_of=as_of)
            took = time.perf_counter() - began
            print(
                f"read_shadow_pairs ({label}): {took:.2f} s for {pairs.shadowed:,} shadowed, "
                f"{pairs.dropped:,} dropped, {pairs.n:,} pairs "
                f"({pairs.shadowed / took / 1e6:.2f} M requests/s)"
            )
        config = GateConfig(primary="accuracy", margins={"accuracy": 0.01}, horizon=5000)
        began = time.perf_counter()
        report = evaluate_gate(
            pairs.champion,
            pairs.challenger,
            pairs.labels,
            config,
            shadow_drop_share=pairs.drop_share,
        )
        print(f"evaluate_gate: {time.perf_counter() - began:.2f} s: {report.reason}")


if __name__ == "__main__":
    main()
