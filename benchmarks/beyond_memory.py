"""`keel drift` on Parquet folders ten times the size, in the same memory.

Writes two folders per size, reference and current, of PARTS files of 1M rows × 50 columns
each (``drift_data.generate``, one seed per file, so no file repeats another), then runs
``keel drift REFERENCE_FOLDER CURRENT_FOLDER`` on the 1-file and the 10-file folders and
prints wall time, peak resident memory of keel and its worker processes (sampled every
20 ms), rows per second and the ratio of the peaks (goal: within 10%). Run:

    python benchmarks/beyond_memory.py [--parts 10] [--data /work/keel-big]

The 10-file folders take about 3.5 GB of disk; they are kept under ``--data`` for a rerun.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from drift_data import generate  # noqa: E402
from drift_vs_peers import keel_drift, run  # noqa: E402

ROWS = 1_000_000
COLUMNS = 50


def folders(data: Path, parts: int) -> tuple[Path, Path, list[str]]:
    """The reference and current folders of ``parts`` files (written once, then reused)."""
    root = data / f"{parts}x{ROWS}x{COLUMNS}"
    reference, current = root / "reference", root / "current"
    truth = root / "truth.json"
    if not truth.exists():
        reference.mkdir(parents=True, exist_ok=True)
        current.mkdir(parents=True, exist_ok=True)
        drifted: list[str] = []
        for part in range(parts):
            tables, drifted = generate(ROWS, COLUMNS, seed=part)
            name = f"part-{part:03d}.parquet"
            pq.write_table(tables["reference"], reference / name, row_group_size=262_144)
            pq.write_table(tables["current"], current / name, row_group_size=262_144)
        truth.write_text(json.dumps({"drifted": drifted}))
    return reference, current, json.loads(truth.read_text())["drifted"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", type=int, default=10)
    parser.add_argument("--data", type=Path, default=Path("/tmp/keel-big"))
    args = parser.parse_args()
    results = {}
    for parts in (1, args.parts):
        reference, current, truth = folders(args.data, parts)
        out = reference.parent / "keel.json"
        seconds, peak_mb, code = run(keel_drift(reference, current, out))
        found = sorted(json.loads(out.read_text())["dataset"]["drifted_columns"])
        results[parts] = (seconds, peak_mb, code, found == sorted(truth))
        rows = 2 * parts * ROWS
        print(
            f"{parts * ROWS:>11,} + {parts * ROWS:,} rows x {COLUMNS}: {seconds:6.1f} s, "
            f"peak {peak_mb:,} MB, {rows / seconds / 1e6:.2f} M rows/s, exit {code}, "
            f"drifted columns exactly the true ones: {found == sorted(truth)}",
            flush=True,
        )
    small, large = results[1], results[args.parts]
    print(
        f"\n{args.parts}x the rows: {large[0] / small[0]:.1f}x the time, peak memory "
        f"{large[1] / small[1]:.2f}x the 1-file run's (goal: within 1.10x)"
    )


if __name__ == "__main__":
    main()
