"""``keel demo``: the main job on generated data, start to finish, with nothing to set up.

The story: a loan-default model is trained on eight weeks of applications;
keel records a baseline of its training data (with the model's holdout
metrics), then checks each production week the model scores, and says in
plain words what changed and when: a quiet month, a covariate shift, an
upstream unit change. Each week gets a JSON result and an HTML report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from keel.baseline import Baseline
from keel.checks.drift import DriftReport
from keel.compare import drift
from keel.report import write_drift_report
from keel.scenario import FEATURES, generate

NUMERIC_FEATURES = ["age", "income", "amount", "tenure_months"]
CATEGORICAL_FEATURES = ["country", "device"]


def train_model(training: pa.Table, seed: int = 0) -> tuple[Any, dict[str, float]]:
    """A gradient-boosting classifier on the first 80% of training rows, scored on the rest."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    frame = training.select([*FEATURES, "defaulted"]).to_pandas()
    cut = int(len(frame) * 0.8)  # time-ordered: the holdout is the last weeks
    model = make_pipeline(
        ColumnTransformer(
            [("categories", OrdinalEncoder(), CATEGORICAL_FEATURES)], remainder="passthrough"
        ),
        HistGradientBoostingClassifier(max_iter=100, random_state=seed),
    )
    model.fit(frame[FEATURES].iloc[:cut], frame["defaulted"].iloc[:cut])
    holdout = frame.iloc[cut:]
    scores = model.predict_proba(holdout[FEATURES])[:, 1]
    metrics = {
        "roc_auc": float(roc_auc_score(holdout["defaulted"], scores)),
        "accuracy": float(accuracy_score(holdout["defaulted"], scores >= 0.5)),
        "holdout_rows": float(len(holdout)),
    }
    return model, metrics


def score(model: Any, table: pa.Table) -> pa.Table:
    """The table with the model's ``score`` (probability of default) and ``prediction``."""
    probabilities = model.predict_proba(table.select(FEATURES).to_pandas())[:, 1]
    table = table.append_column("score", pa.array(probabilities))
    return table.append_column("prediction", pa.array((probabilities >= 0.5).astype(np.int8)))


def run_demo(output: Path, seed: int = 7, console: Console | None = None) -> bool:
    """Run the demo into ``output``; True when it found exactly the planted changes."""
    console = console or Console()
    started = time.perf_counter()
    for folder in (output, output / "production", output / "reports"):
        folder.mkdir(parents=True, exist_ok=True)
    scenario = generate(seed=seed)
    model, metrics = train_model(scenario.training, seed=seed)
    training = score(model, scenario.training)
    pq.write_table(training, output / "training.parquet")
    console.print(
        f"[bold]keel demo[/]: a loan-default model (gradient boosting, holdout ROC AUC "
        f"{metrics['roc_auc']:.3f}) trained on {training.num_rows:,} applications; "
        f"{len(scenario.weeks)} production weeks follow → {output}/"
    )
    baseline = Baseline.from_data(
        output / "training.parquet",
        target="defaulted",
        score="score",
        prediction="prediction",
        metrics=metrics,
        lineage={"model": "HistGradientBoostingClassifier", "seed": seed},
    )
    baseline.save(output / "baseline.keel")
    not_compared = [f"{c.name} ({c.role})" for c in baseline.schema.columns if c.role != "feature"]
    console.print(
        f"baseline {baseline.id}: features {', '.join(c.name for c in baseline.schema.features)};"
        f" not compared as features: {', '.join(not_compared)}"
    )

    found_all = True
    for number, week in enumerate(scenario.weeks, start=1):
        path = output / "production" / f"week_{number}.parquet"
        pq.write_table(score(model, week), path)
        report = drift(baseline, path)
        (output / "production" / f"week_{number}.drift.json").write_text(report.to_json())
        write_drift_report(report, output / "reports" / f"week_{number}.html")
        console.print(f"  week {number}: {describe_week(report)}")
        planted = set(scenario.changes.get(number, {}).get("columns", []))
        found_all &= set(report.dataset["drifted_columns"]) == planted
    elapsed = time.perf_counter() - started
    console.print(
        f"reports: {output}/reports/week_1.html … week_{len(scenario.weeks)}.html "
        f"(open week_7.html for the unit change). Done in {elapsed:.1f} s."
    )
    console.print(
        f"Try: [bold]keel drift {output}/baseline.keel {output}/production/week_5.parquet "
        f"--html week5.html[/]"
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
