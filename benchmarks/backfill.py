"""A backfill: one call checks every window of a long log against a baseline.

Run: python benchmarks/backfill.py [--rows 1000000] [--windows 500]

A time-ordered log of N rows × 10 columns (8 numeric, 2 categorical) spread
over the given number of hourly windows, a baseline of a reference of the
same shape, and a calibration on it; then ``keel.check_history`` over the
whole log, without and then with the multivariate checks. Prints the time of
each step and the windows per second.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from keel.baseline import Baseline
from keel.calibration import Calibration
from keel.history import check_history


def log(rows: int, hours: int, seed: int, start: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, hours * 3600, rows))
    frame = pd.DataFrame({"ts": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(seconds, "s")})
    for index in range(8):
        frame[f"n{index}"] = rng.normal(index, 1 + index / 4, rows)
    frame["c0"] = rng.choice(list("abcdefgh"), rows)
    frame["c1"] = rng.choice(["x", "y"], rows, p=[0.8, 0.2])
    return frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--windows", type=int, default=500)
    args = parser.parse_args()
    reference = log(args.rows // 5, args.windows // 5, 1, "2026-01-01")
    current = log(args.rows, args.windows, 2, "2026-02-01")
    started = time.perf_counter()
    baseline = Baseline.from_data(reference, timestamp="ts", sample_size=1000)
    made = time.perf_counter()
    calibration = Calibration.fit(baseline, reference, "1h")
    calibrated = time.perf_counter()
    history = check_history(baseline, current, "1h", calibration=calibration, multivariate=False)
    done = time.perf_counter()
    full = check_history(baseline, current, "1h", calibration=calibration)
    with_multivariate = time.perf_counter() - done
    print(
        f"baseline of {len(reference):,} rows: {made - started:.1f} s; calibration on "
        f"{calibration.reference_windows} windows: {calibrated - made:.1f} s"
    )
    print(
        f"backfill of {len(current):,} rows × 10 columns in {len(history.windows)} hourly "
        f"windows: {done - calibrated:.1f} s ({len(history.windows) / (done - calibrated):.0f} "
        f"windows/s); windows alerting: {sum(w.alert for w in history.windows)}"
    )
    print(
        f"with the multivariate checks on each window's 2,000-row sample: "
        f"{with_multivariate:.1f} s; windows alerting: {sum(w.alert for w in full.windows)}"
    )


if __name__ == "__main__":
    main()
