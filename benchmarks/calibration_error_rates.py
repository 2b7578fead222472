"""Calibrated thresholds: false alarms per window, detection and delay, against peers' rules.

Run: python benchmarks/calibration_error_rates.py [--seeds 5]
     python benchmarks/calibration_error_rates.py --slow-drift [--seeds 5 --windows 200]

A long, time-ordered, undrifted table (daily windows of 1,000 rows; a weekly
seasonal swing of ±0.15σ in one column and an autocorrelated daily level in
another, so that windows differ more than independent samples would). The
first 120 days are the reference, the next 200 are monitored. Three rules
decide per window and column:

* keel calibrated (leave-one-out windows, scaled χ² or Pearson III, rate 1%);
* NannyML's default rule, mean + 3σ of the statistic over reference windows
  each compared with the whole reference (including itself);
* keel's one-off rule (BH-adjusted test + effect floor), uncalibrated.

It prints the share of monitored windows with any false alert. Then it injects
changes at known windows (days 140–149: mean +0.4σ in ``a``; 160–169: scale
×1.4 in ``b``; 180–189: category shares moved in ``c``) and prints, per rule,
the share of changed windows flagged on the right column and the delay to the
first flag, in windows.

``--slow-drift``: a population that drifts slowly, as every real one does
(``slow_drift_population``). Daily windows of 2,000 rows; a model score that
depends on ``income``, ``age`` and ``region`` only; three features the score
ignores (``u1`` numeric, ``u2`` and ``u3`` categorical) drift from the first
reference day on by PSI 0.01 per 50 windows. The first 100 days are the
reference (calibration at 1%, multivariate checks on, importance from keel's
surrogate). Then ``--windows`` monitored days, in which episodes of 5 days are
injected: a mean shift of 0.2σ in ``income`` or a PSI ≥ 0.2 move of
``region``'s shares (PSI 0.21), 4 of each per run. It prints the share of windows outside
the episodes with any drift alert (feature, prediction or multivariate), and
the share of episodes alerted on the right column in their first window.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from keel.baseline import Baseline
from keel.calibration import Calibration
from keel.history import check_history

ROWS_PER_DAY = 1_000
REFERENCE_DAYS, MONITORED_DAYS = 120, 200
CHANGES = {"a": range(140, 150), "b": range(160, 170), "c": range(180, 190)}
CATEGORIES = np.array(["u", "v", "w", "x", "y"])


def make(seed: int, changed: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = REFERENCE_DAYS + MONITORED_DAYS
    day = np.repeat(np.arange(days), ROWS_PER_DAY)
    level = np.zeros(days)
    for index in range(1, days):  # an AR(1) daily level: yesterday's mood carries over
        level[index] = 0.6 * level[index - 1] + rng.normal(0, 0.03)
    season = 0.15 * np.sin(2 * np.pi * day / 7)
    a = rng.normal(0, 1, len(day)) + season
    b = rng.normal(0, 1, len(day)) + level[day]
    c = rng.choice(CATEGORIES, len(day), p=[0.4, 0.25, 0.15, 0.12, 0.08])
    d = rng.lognormal(0, 0.5, len(day))
    if changed:
        in_a = np.isin(day, list(CHANGES["a"]))
        a[in_a] += 0.4
        in_b = np.isin(day, list(CHANGES["b"]))
        b[in_b] = level[day[in_b]] + (b[in_b] - level[day[in_b]]) * 1.4
        in_c = np.isin(day, list(CHANGES["c"]))
        c[in_c] = rng.choice(CATEGORIES, in_c.sum(), p=[0.25, 0.25, 0.2, 0.18, 0.12])
    start = pd.Timestamp("2026-01-01", tz="UTC")
    offsets = pd.to_timedelta(day * 86_400 + rng.uniform(0, 86_399, len(day)), unit="s")
    frame = pd.DataFrame({"ts": start + offsets, "a": a, "b": b, "c": c, "d": d})
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def nannyml_thresholds(baseline: Baseline, reference: pd.DataFrame) -> Calibration:
    calibration = Calibration.fit(baseline, reference, "1D", leave_one_out=False)
    from keel.calibration import window_statistics
    from keel.windows import WindowSpec, cut

    windows = [
        w
        for w in cut(reference, WindowSpec.parse("1D"), baseline.schema, "ts", baseline.bin_edges)
        if w.rows
    ]
    statistics = window_statistics(baseline, windows, leave_one_out=False)
    for column, (statistic, values) in statistics.items():
        calibration.thresholds[column] = {
            "threshold": float(values.mean() + 3 * values.std()),
            "statistic": statistic,
        }
    return calibration


def evaluate(history, columns=("a", "b", "c", "d")) -> tuple[np.ndarray, dict]:
    """Per monitored window: any drift flag; and per column the windows it was flagged."""
    any_flag, flagged = [], {column: [] for column in columns}
    for index, window in enumerate(history.windows):
        drifted = set(window.drift.dataset["drifted_columns"])
        any_flag.append(bool(drifted))
        for column in drifted:
            flagged[column].append(REFERENCE_DAYS + index)
    return np.array(any_flag), flagged


SLOW_ROWS, SLOW_REFERENCE = 2_000, 100
REGIONS = np.array(["north", "south", "east", "west"])
REGION_SHARES = np.array([0.4, 0.3, 0.2, 0.1])
REGION_MOVED = np.array([0.25, 0.27, 0.23, 0.25])  # PSI against REGION_SHARES ≈ 0.215
IDLE_LEVELS = np.array(["p", "q", "r", "s", "t"])
IDLE_SHARES = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
IDLE_DIRECTION = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
PSI_PER_WINDOW = 0.01 / 50


def slow_drift_population(seed: int, windows: int, episodes: dict[str, list[int]]):
    """Reference then monitored days; slow drift in u1, u2, u3 from day 0; episodes injected
    (``{"income": [first days], "region": [first days]}``, 5 days each, monitored-day index)."""
    rng = np.random.default_rng(seed)
    days = SLOW_REFERENCE + windows
    day = np.repeat(np.arange(days), SLOW_ROWS)
    psi = PSI_PER_WINDOW * day  # the idle features' PSI against day 0
    income = rng.normal(0, 1, len(day))
    age = rng.normal(0, 1, len(day))
    region = rng.choice(REGIONS, len(day), p=REGION_SHARES)
    u1 = rng.normal(0, 1, len(day)) + np.sqrt(psi)  # a normal's PSI for a shift d is ≈ d²
    # categorical shares p + δ·v with Σ (δ v)² / p = PSI
    unit = float(np.sum(IDLE_DIRECTION**2 / IDLE_SHARES))
    u2, u3 = np.empty(len(day), dtype=object), np.empty(len(day), dtype=object)
    for d in range(days):  # a loop over days, each vectorized
        shares = IDLE_SHARES + np.sqrt(PSI_PER_WINDOW * d / unit) * IDLE_DIRECTION
        shares = np.clip(shares, 0.01, None) / np.clip(shares, 0.01, None).sum()
        rows = slice(d * SLOW_ROWS, (d + 1) * SLOW_ROWS)
        u2[rows] = rng.choice(IDLE_LEVELS, SLOW_ROWS, p=shares)
        u3[rows] = rng.choice(IDLE_LEVELS, SLOW_ROWS, p=shares[::-1])
    for first in episodes.get("income", []):
        days_in = np.isin(day, SLOW_REFERENCE + np.arange(first, first + 5))
        income[days_in] += 0.2
    for first in episodes.get("region", []):
        days_in = np.isin(day, SLOW_REFERENCE + np.arange(first, first + 5))
        region[days_in] = rng.choice(REGIONS, days_in.sum(), p=REGION_MOVED)
    effect = pd.Series(region).map({"north": 0.8, "south": -0.8, "east": 0.4, "west": -0.4})
    logit = 1.2 * income + 0.8 * age + effect.to_numpy() - 0.5
    score = 1 / (1 + np.exp(-logit))
    start = pd.Timestamp("2026-01-01", tz="UTC")
    offsets = pd.to_timedelta(day * 86_400 + rng.uniform(0, 86_399, len(day)), unit="s")
    frame = pd.DataFrame(
        {
            "ts": start + offsets,
            "income": income,
            "age": age,
            "region": region,
            "u1": u1,
            "u2": u2.astype(str),
            "u3": u3.astype(str),
            "score": score,
        }
    )
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def slow_drift(seeds: int, windows: int) -> None:
    """False drift alerts under slow drift; first-window detection of important changes."""
    from keel.history import baseline_importance

    started = time.perf_counter()
    spacing = windows // 8
    quiet_alerts, quiet_windows, warned = 0, 0, 0
    first_hit = {"income": [], "region": []}
    by_kind: dict[str, int] = {}
    shares_seen = None
    for seed in range(seeds):
        episodes = {
            "income": [spacing * (2 * i) + 3 for i in range(4)],
            "region": [spacing * (2 * i + 1) + 3 for i in range(4)],
        }
        frame = slow_drift_population(1000 + seed, windows, episodes)
        cut_at = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=SLOW_REFERENCE)
        reference, monitored = frame[frame.ts < cut_at], frame[frame.ts >= cut_at]
        baseline = Baseline.from_data(reference, timestamp="ts", score="score")
        calibration = Calibration.fit(baseline, reference, "1D", false_alarm_rate=0.01)
        history = check_history(baseline, monitored, "1D", calibration=calibration)
        if shares_seen is None:
            weights = baseline_importance(baseline) or {}
            total = sum(weights.values()) or 1.0
            shares_seen = {k: round(v / total, 3) for k, v in weights.items()}
        inside = {
            column: {f + i for f in firsts for i in range(5)} for column, firsts in episodes.items()
        }
        for index, window in enumerate(history.windows):
            results = window.results()
            drift = [
                r
                for r in results
                if r.status == "alert"
                and r.check in ("feature_drift", "prediction_drift", "multivariate")
            ]
            if any(index in days for days in inside.values()):
                continue
            quiet_windows += 1
            quiet_alerts += bool(drift)
            warned += any(r.status == "warn" for r in results if r.check != "quality")
            for r in drift:
                key = f"{r.check}:{r.column or r.metric}"
                by_kind[key] = by_kind.get(key, 0) + 1
        for column, firsts in episodes.items():
            for first in firsts:
                drifted = history.windows[first].drift.dataset["drifted_columns"]
                first_hit[column].append(column in drifted)
    print(
        f"slow drift: {seeds} seeds × {windows} monitored daily windows of {SLOW_ROWS:,} rows; "
        f"reference {SLOW_REFERENCE} days; surrogate importance shares {shares_seen}\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| windows outside the episodes with any drift alert | {quiet_alerts} of {quiet_windows}"
        f" ({quiet_alerts / max(quiet_windows, 1):.1%}) |"
    )
    print(f"| ... with a drift warning (moved, held back) | {warned / max(quiet_windows, 1):.0%} |")
    for column, label in (
        ("income", "mean shift 0.2σ in income"),
        ("region", "PSI 0.21 in region"),
    ):
        hits = first_hit[column]
        print(f"| {label}: alerted in its first window | {sum(hits)} of {len(hits)} |")
    if by_kind:
        print(f"\nfalse alerts by check and column: {by_kind}")
    print(f"\n(measured in {time.perf_counter() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--slow-drift", action="store_true")
    parser.add_argument("--windows", type=int, default=200)
    args = parser.parse_args()
    if args.slow_drift:
        slow_drift(args.seeds, args.windows)
        return
    started = time.perf_counter()
    rules = ["keel calibrated (1%)", "NannyML rule (mean + 3σ)", "keel one-off rule"]
    false_alarms = {rule: [] for rule in rules}
    detection = {rule: {c: [] for c in CHANGES} for rule in rules}
    delays = {rule: {c: [] for c in CHANGES} for rule in rules}
    for seed in range(args.seeds):
        for changed in (False, True):
            frame = make(seed, changed)
            cut_at = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=REFERENCE_DAYS)
            reference, monitored = frame[frame.ts < cut_at], frame[frame.ts >= cut_at]
            baseline = Baseline.from_data(reference, timestamp="ts", sample_size=0)
            calibrations = {
                rules[0]: Calibration.fit(baseline, reference, "1D", false_alarm_rate=0.01),
                rules[1]: nannyml_thresholds(baseline, reference),
                rules[2]: None,
            }
            for rule, calibration in calibrations.items():
                history = check_history(baseline, monitored, "1D", calibration=calibration)
                any_flag, flagged = evaluate(history)
                if not changed:
                    false_alarms[rule].append(any_flag.mean())
                    continue
                for column, days in CHANGES.items():
                    hits = [day for day in flagged[column] if day in days]
                    detection[rule][column].append(len(hits) / len(days))
                    if hits:
                        delays[rule][column].append(min(hits) - days[0])
    print(
        f"{args.seeds} seeds × {MONITORED_DAYS} monitored daily windows of {ROWS_PER_DAY:,} rows,"
        f" 4 columns; reference {REFERENCE_DAYS} days\n"
    )
    print(
        "| rule | windows with a false alert | mean shift 0.4σ (a): detected, delay | "
        "scale ×1.4 (b) | category shares (c) |"
    )
    print("|---|---|---|---|---|")
    for rule in rules:
        cells = [f"{np.mean(false_alarms[rule]):.3f}"]
        for column in CHANGES:
            rate = np.mean(detection[rule][column])
            delay = np.mean(delays[rule][column]) if delays[rule][column] else float("nan")
            cells.append(f"{rate:.0%}, {delay:.1f}")
        print(f"| {rule} | " + " | ".join(cells) + " |")
    print(f"\n(measured in {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
