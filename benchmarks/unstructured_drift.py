"""Image and text columns through a baseline and the monitor's windows: quiet and drifted.

Run: nice -n 10 python benchmarks/unstructured_drift.py [--seeds 7] [--windows 40]

Everything goes through the real path a user takes: ``Baseline.from_data(...,
images=[...])`` / ``texts=[...]``, then ``check_history`` (what ``keel monitor run`` and
``keel drift --window`` call) with row windows, the one-off rule and the MMD verdict both at
level 0.01 (a monitor's default false alarm rate). Generated data only:

- **images**: 16 × 16 textures (beta noise under a random gamma and exposure) with a bright
  disk drawn on each, the generator of ``tests/test_unstructured.py``; a reference of 1,000
  images, windows of 100. Quiet: new images of the same kind. Darkened: the same kind × 0.6.
  A window "alerts" when any check alerts (drift, quality, MMD); "brightness first" when
  the diagnosis names ``photo.brightness`` as its first cause.
- **text**: texts of 8 words of one of two seeded topics and 12 common words; a reference of
  1,200 texts (600 fit the vectorizer, 600 are the reference), windows of 150; mixtures of
  300 texts with 10% and 20% from a third topic, judged by ``keel.drift`` (level 0.05).

Prints one line per seed and a summary.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import keel
from keel.baseline import Baseline
from keel.history import check_history
from keel.media_scenario import documents, scenes
from keel.stats.verdict import DefaultRule

LEVEL = 0.01


def images(seed: int, windows: int) -> dict[str, float]:
    baseline = Baseline.from_data(
        pd.DataFrame({"photo": scenes(seed, 1_000)}), images=["photo"], sample_size=0
    )
    new = scenes(seed + 100, windows * 100)
    options = {"window": "100rows", "multivariate": False, "rule": DefaultRule(alpha=LEVEL)}
    quiet = check_history(baseline, pd.DataFrame({"photo": new}), **options).windows
    dark = check_history(
        baseline, pd.DataFrame({"photo": [i * 0.6 for i in new[: 10 * 100]]}), **options
    ).windows
    return {
        "quiet alerting": sum(w.alert for w in quiet),
        "quiet MMD": sum(w.drift.column("photo").drift for w in quiet),
        "dark alerting": sum(w.alert for w in dark),
        "dark brightness first": sum(
            w.diagnosis.causes[0]["column"] == "photo.brightness" for w in dark
        ),
    }


def texts(seed: int, windows: int) -> dict[str, float]:
    baseline = Baseline.from_data(
        pd.DataFrame({"comment": documents(seed, 1_200, "ab")}), texts=["comment"], sample_size=0
    )
    quiet = check_history(
        baseline,
        pd.DataFrame({"comment": documents(seed + 100, windows * 150, "ab")}),
        window="150rows",
        multivariate=False,
        rule=DefaultRule(alpha=LEVEL),
    ).windows
    result = {
        "quiet alerting": sum(w.alert for w in quiet),
        "quiet MMD": sum(w.drift.column("comment").drift for w in quiet),
    }
    for share in (0.1, 0.2):
        new = int(300 * share)
        mixed = documents(seed + 200, 300 - new, "ab") + documents(seed + 300, new, "c")
        report = keel.drift(baseline, pd.DataFrame({"comment": mixed}))
        result[f"p at {share:.0%}"] = report.column("comment").p_value
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=7)
    parser.add_argument("--windows", type=int, default=40)
    options = parser.parse_args()
    started = time.perf_counter()
    totals: dict[str, list[float]] = {}
    for seed in range(20, 20 + options.seeds):
        for name, measured in (
            ("images", images(seed, options.windows)),
            ("text", texts(seed, options.windows)),
        ):
            shown = ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in measured.items()
            )
            print(f"seed {seed} {name}: {shown}", flush=True)
            for key, value in measured.items():
                totals.setdefault(f"{name}: {key}", []).append(float(value))
    print(f"\n{options.seeds} seeds, {options.windows} quiet windows each, level {LEVEL}:")
    for key, values in totals.items():
        if key.endswith(("alerting", "MMD", "first")):
            per = options.windows if "quiet" in key else 10
            print(f"  {key}: {sum(values):.0f} of {per * len(values)} windows")
        else:
            below = sum(v < 0.05 for v in values)
            print(f"  {key}: {below} of {len(values)} below 0.05 (median {np.median(values):.3g})")
    print(f"  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
