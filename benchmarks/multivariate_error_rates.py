"""Multivariate checks: false alarms, detection rates and cost per window.

Run: python benchmarks/multivariate_error_rates.py [--windows 100]

Reference sample: 10,000 rows of x, y (correlated, r = 0.8), z and a
3-category column. Windows of 2,000 rows: undrifted; the correlation of x
and y weakened (to 0.5) or broken (to 0) with the same marginals; and a new
sub-population (10% or 20% of rows with large x and category "c", each
familiar alone). Both checks use a tail of 1% here. Prints the alert rate per
scenario and the time and peak memory of one window's checks.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import pandas as pd

from keel.checks.multivariate import MultivariateReference
from keel.scenario import correlated_features


def subpopulation(rows: int, rng: np.random.Generator, share: float) -> pd.DataFrame:
    window = correlated_features(rows, rng)
    chosen = rng.choice(rows, int(rows * share), replace=False)
    window.loc[chosen, "x"] = rng.normal(1.5, 0.3, len(chosen))
    window.loc[chosen, "c"] = "c"
    return window


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = MultivariateReference.fit(correlated_features(10_000, rng))
    scenarios = {
        "undrifted": lambda: correlated_features(2000, rng),
        "correlation 0.8 → 0.5": lambda: correlated_features(2000, rng, linked=0.5),
        "correlation 0.8 → 0 (broken)": lambda: correlated_features(2000, rng, linked=0.0),
        "sub-population, 10% of rows": lambda: subpopulation(2000, rng, 0.10),
        "sub-population, 20% of rows": lambda: subpopulation(2000, rng, 0.20),
    }
    print(
        f"{args.windows} windows of 2,000 rows per scenario; reference sample 10,000 rows; "
        "tail 1% per check\n"
    )
    print("| scenario | domain classifier alerts | reconstruction error alerts |")
    print("|---|---|---|")
    for name, make in scenarios.items():
        classifier = reconstruction = 0
        for _ in range(args.windows):
            window = make()
            classifier += model.domain_classifier(window, tail=0.01).status == "alert"
            reconstruction += model.reconstruction(window, tail=0.01).status == "alert"
        print(f"| {name} | {classifier / args.windows:.0%} | {reconstruction / args.windows:.0%} |")
    window = correlated_features(2000, rng)
    for check in ("domain_classifier", "reconstruction"):
        getattr(model, check)(window)  # warm: imports and first-call set-up are not per window
        tracemalloc.start()
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            getattr(model, check)(window)
            timings.append(time.perf_counter() - started)
        elapsed = float(np.median(timings))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"\n{check}: {elapsed * 1000:.0f} ms per window, peak Python memory "
            f"{peak / 2**20:.1f} MB",
            end="",
        )
    print()


if __name__ == "__main__":
    main()
