"""A generated production scenario with known changes, for the demo, the tests and benchmarks.

A lending-style table: customers apply with an age, income, requested
amount, tenure, country and device; the label says whether they defaulted.
Training data covers eight weeks; production follows week by week:

* weeks 1–4: quiet, the same distribution as training;
* weeks 5–6: covariate shift: applicants are older (+8 years) and richer
  (income ×1.5);
* weeks 7–8: an upstream unit change: ``amount`` arrives in cents, 100× the
  reference.

>>> scenario = generate(seed=0, training_rows=1000, week_rows=500)
>>> scenario.training.num_rows, len(scenario.weeks), scenario.changes[7]
(1000, 8, {'kind': 'unit change', 'columns': ['amount'], 'factor': 100})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
COUNTRIES = np.array(["DE", "FR", "ES", "IT", "NL", "PL"])
COUNTRY_SHARES = np.array([0.3, 0.25, 0.15, 0.15, 0.1, 0.05])
DEVICES = np.array(["mobile", "desktop", "tablet"])
DEVICE_SHARES = np.array([0.6, 0.3, 0.1])
FEATURES = ["age", "income", "amount", "tenure_months", "country", "device"]


@dataclass
class Scenario:
    training: pa.Table
    weeks: list[pa.Table]
    changes: dict[int, dict] = field(default_factory=dict)  # week number -> what changed


def generate(seed: int = 7, training_rows: int = 40_000, week_rows: int = 10_000) -> Scenario:
    """The scenario's tables: eight training weeks, then eight production weeks."""
    rng = np.random.default_rng(seed)
    training = _applications(rng, training_rows, START, weeks=8, first_id=0)
    changes = {
        5: {"kind": "covariate shift", "columns": ["age", "income"]},
        6: {"kind": "covariate shift", "columns": ["age", "income"]},
        7: {"kind": "unit change", "columns": ["amount"], "factor": 100},
        8: {"kind": "unit change", "columns": ["amount"], "factor": 100},
    }
    weeks = []
    for week in range(1, 9):
        start = START + timedelta(weeks=7 + week)
        change = changes.get(week, {}).get("kind")
        table = _applications(
            rng,
            week_rows,
            start,
            weeks=1,
            first_id=training_rows + (week - 1) * week_rows,
            older=8.0 if change == "covariate shift" else 0.0,
            richer=1.5 if change == "covariate shift" else 1.0,
            amount_factor=100.0 if change == "unit change" else 1.0,
        )
        weeks.append(table)
    return Scenario(training, weeks, changes)


def _applications(
    rng: np.random.Generator,
    rows: int,
    start: datetime,
    weeks: int,
    first_id: int,
    older: float = 0.0,
    richer: float = 1.0,
    amount_factor: float = 1.0,
) -> pa.Table:
    age = np.clip(rng.normal(40 + older, 11, rows), 18, 90).round()
    income = rng.lognormal(np.log(42_000 * richer), 0.45, rows).round(-2)
    amount = rng.lognormal(np.log(8_000), 0.8, rows).round(2)
    tenure = rng.poisson(30, rows)
    country = rng.choice(COUNTRIES, rows, p=COUNTRY_SHARES)
    device = rng.choice(DEVICES, rows, p=DEVICE_SHARES)
    # Default risk rises with the amount relative to income and falls with age and tenure.
    logit = -2.2 + 2.0 * (amount / income) - 0.02 * (age - 40) - 0.01 * (tenure - 30)
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    offsets = np.sort(rng.random(rows)) * weeks * 7 * 86_400
    event_time = np.datetime64(start.replace(tzinfo=None), "s") + offsets.astype("timedelta64[s]")
    ids = np.char.add("app-", np.arange(first_id, first_id + rows).astype(str))
    return pa.table(
        {
            "application_id": ids,
            "event_time": pa.array(event_time, type=pa.timestamp("s", tz="UTC")),
            "age": age,
            "income": income,
            "amount": amount * amount_factor,
            "tenure_months": tenure,
            "country": country,
            "device": device,
            "defaulted": label,
        }
    )
