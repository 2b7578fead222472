"""Measure the default drift verdict's false alarm rate and the smallest shifts it detects.

Run: python benchmarks/drift_error_rates.py [--quick]

Tables have six feature columns of different shapes (normal, lognormal,
exponential, Poisson counts, 5 and 20 categories). For false alarms, the
reference and the current table are two fresh samples of one distribution;
a repetition is a false alarm when *any* column drifts. For power, one
baseline per size is compared with fresh current tables in which only the
normal column moved (its mean by d standard deviations, or its scale by a
factor s); the smallest d or s detected in at least 95% of repetitions is
reported. Everything runs in profile mode (keel's default) and, at 10k
rows, also in exact mode. Prints Markdown tables for docs/statistics.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import keel
from keel.checks.drift import ProfileSide, compare_sides
from keel.compare import align_schema
from keel.data import open_source
from keel.parallel import edges_from, profile_sides
from keel.profile import Profile
from keel.schema import Schema

CATEGORIES_5 = np.array(list("abcde"))
CATEGORIES_20 = np.array([f"k{i}" for i in range(20)])
P20 = np.linspace(1, 3, 20) / np.linspace(1, 3, 20).sum()


def table(rng: np.random.Generator, rows: int, shift: float = 0.0, scale: float = 1.0):
    return pd.DataFrame(
        {
            "normal": rng.normal(shift, scale, rows),
            "lognormal": rng.lognormal(0, 1, rows),
            "exponential": rng.exponential(3, rows),
            "counts": rng.poisson(4, rows),
            "five": rng.choice(CATEGORIES_5, rows, p=[0.4, 0.25, 0.15, 0.12, 0.08]),
            "twenty": rng.choice(CATEGORIES_20, rows, p=P20),
        }
    )


def false_alarms(rows: int, repetitions: int, seed: int, exact: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    any_alarm = test_only_alarm = scipy_alarm = column_alarms = 0
    for _ in range(repetitions):
        report = keel.drift(table(rng, rows), table(rng, rows), exact=exact)
        drifted = report.dataset["drifted_columns"]
        any_alarm += bool(drifted)
        column_alarms += len(drifted)
        test_only_alarm += any(c.p_value_adjusted < 0.05 for c in report.columns)
        scipy_alarm += any(c.p_value < 0.05 for c in report.columns)
    return {
        "rows": rows,
        "repetitions": repetitions,
        "mode": "exact" if exact else "profile",
        "dataset_false_alarm_rate": any_alarm / repetitions,
        "column_false_alarm_rate": column_alarms / (repetitions * 6),
        "bh_test_only_rate": test_only_alarm / repetitions,
        "uncorrected_p_rate": scipy_alarm / repetitions,
    }


def detection_rate(rows: int, repetitions: int, seed: int, shift=0.0, scale=1.0, baseline=None):
    rng = np.random.default_rng(seed)
    reference_profile, edges = baseline
    detected = 0
    for _ in range(repetitions):
        current_table = open_source(table(rng, rows, shift, scale))
        schema = align_schema(reference_profile.schema, current_table)
        _, current = profile_sides(None, current_table, current_schema=schema, edges=edges)
        report = compare_sides(ProfileSide(reference_profile), ProfileSide(current))
        detected += report.column("normal").drift
    return detected / repetitions


def smallest_detected(rows, repetitions, seed, grid, build, baseline):
    for value in grid:
        rate = detection_rate(rows, repetitions, seed, baseline=baseline, **build(value))
        if rate >= 0.95:
            return value, rate
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    scale_down = 4 if args.quick else 1
    plan = {10_000: (400, 100), 100_000: (200, 60), 1_000_000: (40, 20)}
    started = time.perf_counter()
    print(
        "| rows | mode | repetitions | dataset false alarms (default rule) | per column "
        "| BH test alone | uncorrected p < 0.05 |"
    )
    print("|---|---|---|---|---|---|---|")
    rows_out = []
    for rows, (repetitions, _) in plan.items():
        rows_out.append(false_alarms(rows, max(repetitions // scale_down, 5), seed=rows))
        if rows == 10_000:
            rows_out.append(
                false_alarms(rows, max(repetitions // scale_down, 5), seed=rows + 1, exact=True)
            )
    for r in rows_out:
        print(
            f"| {r['rows']:,} | {r['mode']} | {r['repetitions']} | "
            f"{r['dataset_false_alarm_rate']:.3f} | {r['column_false_alarm_rate']:.4f} | "
            f"{r['bh_test_only_rate']:.3f} | {r['uncorrected_p_rate']:.3f} |"
        )
    print()
    print("| rows | smallest mean shift detected ≥95% (σ) | smallest scale factor detected ≥95% |")
    print("|---|---|---|")
    mean_grid = [0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.11, 0.12, 0.13, 0.15, 0.2, 0.3]
    scale_grid = [1.02, 1.04, 1.06, 1.08, 1.1, 1.12, 1.14, 1.16, 1.18, 1.2, 1.25, 1.3, 1.5]
    for rows, (_, repetitions) in plan.items():
        repetitions = max(repetitions // scale_down, 5)
        rng = np.random.default_rng(rows + 7)
        reference = table(rng, rows)
        reference_profile = Profile.build(reference, Schema.infer(reference))
        baseline = (reference_profile, edges_from(reference_profile, 10))
        shift, shift_rate = smallest_detected(
            rows, repetitions, rows + 8, mean_grid, lambda d: {"shift": d}, baseline
        )
        factor, factor_rate = smallest_detected(
            rows, repetitions, rows + 9, scale_grid, lambda s: {"scale": s}, baseline
        )
        print(
            f"| {rows:,} | {shift} ({shift_rate:.0%} of {repetitions}) | "
            f"{factor} ({factor_rate:.0%} of {repetitions}) |"
        )
    print(f"\n(measured in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
