"""keel's deterministic quantile sketch against DataSketches' KLL, on the same values.

Run: python benchmarks/quantile_sketch.py [--values 2000000]

Feeds the same values, in batches of 1,000, 65,536 and 1,000,000, to
``keel.profile.quantiles.QuantileSketch`` and to ``datasketches.kll_doubles_sketch``
(k = 1024 both), and prints nanoseconds per value, items retained, each one's stated
rank error and the largest rank error actually seen over 99 quantiles; then whether
two keel sketches of the same values have the same bytes (DataSketches' do not: its
compaction bits come from an unseeded generator).
"""

from __future__ import annotations

import argparse
import time

import datasketches
import numpy as np

from keel.profile.quantiles import QuantileSketch


def worst_error(values: np.ndarray, rank) -> float:
    ordered = np.sort(values)
    queries = np.quantile(values, np.linspace(0.01, 0.99, 99))
    true = np.searchsorted(ordered, queries, side="right") / len(values)
    return float(np.max(np.abs(np.array([rank(q) for q in queries]) - true)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=2_000_000)
    args = parser.parse_args()
    values = np.random.default_rng(1).lognormal(size=args.values)
    print(f"{args.values:,} lognormal values, k = 1024")
    for batch in (1_000, 65_536, 1_000_000):
        keel_sketch, kll = QuantileSketch(), datasketches.kll_doubles_sketch(1024)
        started = time.perf_counter()
        for start in range(0, len(values), batch):
            keel_sketch.update(values[start : start + batch])
        keel_ns = (time.perf_counter() - started) / len(values) * 1e9
        started = time.perf_counter()
        for start in range(0, len(values), batch):
            kll.update(values[start : start + batch])
        kll_ns = (time.perf_counter() - started) / len(values) * 1e9
        print(
            f"  batches of {batch:>9,}: keel {keel_ns:5.1f} ns/value, {keel_sketch.retained:,} "
            f"kept, error stated {keel_sketch.rank_error:.4f} seen "
            f"{worst_error(values, keel_sketch.rank):.4f} | DataSketches {kll_ns:5.1f} ns/value, "
            f"{kll.num_retained:,} kept, stated {kll.normalized_rank_error(False):.4f} seen "
            f"{worst_error(values, kll.get_rank):.4f} | ratio {kll_ns / keel_ns:.1f}×"
        )
    twins = [QuantileSketch() for _ in range(2)]
    for sketch in twins:
        sketch.update(values)
    same = twins[0].to_bytes() == twins[1].to_bytes()
    print(f"  two keel sketches of the same values, same bytes: {same}")


if __name__ == "__main__":
    main()
