"""Generate the benchmark tables: reference and current, N rows × F columns, known drift.

80% numeric columns (normal, lognormal, exponential, uniform, Poisson shapes in
turn), 20% categorical with about 20 categories. About a quarter of the columns
drift in the current table, each by a change a person would care about: a mean
shift of 0.5 standard deviations, a scale change of 1.5×, or the categories'
shares reversed (the rarest becomes the most common). Run:

    python benchmarks/drift_data.py --rows 1000000 --columns 50 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CATEGORIES = np.array([f"cat_{i:02d}" for i in range(20)])
SHARES = np.linspace(1, 4, 20) / np.linspace(1, 4, 20).sum()


def _numeric(rng, kind: int, rows: int, change: str | None) -> np.ndarray:
    shift = 0.5 if change == "mean" else 0.0
    scale = 1.5 if change == "scale" else 1.0
    if kind == 0:
        return rng.normal(shift, scale, rows)
    if kind == 1:
        return np.exp(rng.normal(shift, scale * 0.5, rows))
    if kind == 2:
        return rng.exponential(1.0, rows) * scale + shift
    if kind == 3:
        return rng.uniform(0, 1, rows) * scale + shift * 0.29
    return rng.poisson(10, rows) * scale + shift * 3.2


def generate(rows: int, columns: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    numeric = int(round(columns * 0.8))
    names = [f"num_{i:03d}" for i in range(numeric)] + [
        f"cat_{i:03d}" for i in range(columns - numeric)
    ]
    drifted = set(names[::4])
    changes = {}
    for index, name in enumerate(sorted(drifted)):
        changes[name] = "category" if name.startswith("cat") else ("mean", "scale")[index % 2]
    tables = {}
    for side in ("reference", "current"):
        data = {}
        for index, name in enumerate(names):
            change = changes.get(name) if side == "current" else None
            if name.startswith("num"):
                data[name] = _numeric(rng, index % 5, rows, change)
            else:
                shares = SHARES[::-1] if change == "category" else SHARES
                data[name] = pa.array(rng.choice(CATEGORIES, rows, p=shares)).dictionary_encode()
        tables[side] = pa.table(data)
    return tables, sorted(drifted)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("/tmp/keel-bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tables, drifted = generate(args.rows, args.columns)
    for side, table in tables.items():
        pq.write_table(table, args.out / f"{side}.parquet", row_group_size=262_144)
    (args.out / "truth.json").write_text(json.dumps({"drifted": drifted}))
    print(
        f"wrote {args.out}: {args.rows:,} rows × {args.columns} columns, "
        f"{len(drifted)} drifted: {drifted}"
    )


if __name__ == "__main__":
    main()
