"""``keel demo``: the main job on generated data, start to finish, with nothing to set up.

It writes a scenario (``keel.scenario``) as Parquet files, records a baseline
of the training weeks, compares each production week with it, and says in
plain words what changed and when.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console

from keel.baseline import Baseline
from keel.checks.drift import DriftReport
from keel.compare import drift
from keel.scenario import generate


def run_demo(output: Path, seed: int = 7, console: Console | None = None) -> bool:
    """Run the demo into ``output``; True when it found the planted changes."""
    console = console or Console()
    started = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    (output / "production").mkdir(exist_ok=True)
    scenario = generate(seed=seed)
    pq.write_table(scenario.training, output / "training.parquet")
    week_paths = []
    for number, week in enumerate(scenario.weeks, start=1):
        path = output / "production" / f"week_{number}.parquet"
        pq.write_table(week, path)
        week_paths.append(path)
    console.print(
        f"[bold]keel demo[/]: a loan-default model, {scenario.training.num_rows:,} "
        f"training rows, {len(week_paths)} production weeks → {output}/"
    )

    baseline = Baseline.from_data(output / "training.parquet", target="defaulted")
    baseline.save(output / "baseline.keel")
    ignored = [c.name + f" ({c.role})" for c in baseline.schema.columns if c.role != "feature"]
    console.print(
        f"baseline {baseline.id}: {baseline.rows:,} rows, features "
        f"{', '.join(c.name for c in baseline.schema.features)}; not compared: "
        f"{', '.join(ignored)}"
    )

    found_all = True
    for number, path in enumerate(week_paths, start=1):
        report = drift(baseline, path)
        (output / "production" / f"week_{number}.drift.json").write_text(report.to_json())
        console.print(f"  week {number}: {describe_week(report)}")
        planted = set(scenario.changes.get(number, {}).get("columns", []))
        found_all &= set(report.dataset["drifted_columns"]) == planted
    elapsed = time.perf_counter() - started
    console.print(
        f"done in {elapsed:.1f} s. Try: [bold]keel drift {output}/baseline.keel "
        f"{output}/production/week_7.parquet[/]"
    )
    return found_all


def describe_week(report: DriftReport) -> str:
    """One line: quiet, a covariate shift in named columns, or a likely unit change."""
    drifted = [report.column(name) for name in report.dataset["drifted_columns"]]
    problems = [f"{f['column']}: {f['finding']}" for f in report.dataset["findings"]]
    if not drifted:
        return "quiet" + (f" ({'; '.join(problems)})" if problems else "")
    unit_changes, shifted = [], []
    for column in drifted:
        ratio = _median_ratio(column.details)
        if ratio is not None and abs(np.log10(ratio)) >= 1.5:
            unit_changes.append(
                f"{column.column} — values {ratio:,.0f}× the reference"
                if ratio > 1
                else f"{column.column} — values 1/{1 / ratio:,.0f} of the reference"
            )
        else:
            shifted.append(column.column)
    parts = []
    if shifted:
        parts.append(f"covariate shift in {', '.join(shifted)}")
    if unit_changes:
        parts.append(f"upstream unit change in {'; '.join(unit_changes)}")
    return "; ".join(parts + problems)


def _median_ratio(details: dict) -> float | None:
    reference, current = details.get("reference_median"), details.get("current_median")
    if not reference or not current or (reference > 0) != (current > 0):
        return None
    return current / reference
