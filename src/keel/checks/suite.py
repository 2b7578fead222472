"""One check suite per window: every family of checks that reads a window's profile.

``run_window_checks(context)`` runs, on one window (``keel.windows.Window``) against its
baseline: feature, prediction and target drift (``keel.checks.drift``), the column quality
checks (``keel.checks.quality``; an output's findings are warnings), volume (against the
production windows before it, or a declared rate; a partial window's is never judged),
freshness (whole time windows), and the multivariate checks (domain classifier,
reconstruction error) on the window's row sample. ``check_history`` is windows × this
suite; the monitor adds the families that read rows and labels (performance, labels,
KPIs) and diagnoses each window once, after all of them.

Every random step is seeded from the baseline's id, the window's start and its purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from keel.checks.drift import DriftReport, ProfileSide, compare_sides
from keel.checks.quality import (
    as_output_findings,
    column_checks,
    freshness_check,
    partial_volume,
    volume_check,
)
from keel.result import Result
from keel.seeds import derive_seed

#: Column roles no check reads: they name and order rows.
UNCHECKED_ROLES = ("id", "timestamp", "ignored")


@dataclass
class WindowContext:
    """What the suite needs to know about one window, resolved once per run.

    ``seen_rows`` are the rows of the whole windows checked before this one, oldest first
    (what volume is judged against); the suite appends this window's when it is whole.
    """

    baseline: Any  # keel.baseline.Baseline
    schema: Any  # keel.schema.Schema, aligned with the data
    window: Any  # keel.windows.Window
    reference: ProfileSide
    timestamp: str | None = None
    period_seconds: float | None = None  # time windows; None for row windows
    rule: Any = None  # keel.stats.verdict.DefaultRule
    calibration: Any = None  # keel.calibration.Calibration
    multivariate: Any = None  # keel.checks.multivariate.MultivariateReference
    false_alarm_rate: float = 0.01
    expected_rows: float | None = None
    seen_rows: list[float] = field(default_factory=list)


def run_window_checks(context: WindowContext) -> tuple[DriftReport, list[Result]]:
    """The window's drift report and its other Results (quality, volume, freshness,
    multivariate), in that order.

    >>> import numpy as np, pyarrow as pa
    >>> from keel.baseline import Baseline
    >>> from keel.windows import WindowSpec, cut
    >>> rng = np.random.default_rng(0)
    >>> baseline = Baseline.from_data(pa.table({"x": rng.normal(size=5_000)}), sample_size=0)
    >>> (window,) = cut(pa.table({"x": rng.normal(3, 1, 1_000)}), WindowSpec.parse("1000rows"),
    ...                 baseline.schema, None, baseline.bin_edges)
    >>> context = WindowContext(baseline, baseline.schema, window,
    ...                         ProfileSide(baseline.profile, "baseline"))
    >>> report, others = run_window_checks(context)
    >>> report.dataset["drifted_columns"], "volume" in {r.metric for r in others}
    (['x'], True)
    """
    window, baseline = context.window, context.baseline
    report = compare_sides(
        context.reference,
        ProfileSide(window.profile, window.start),
        rule=context.rule,
        calibration=context.calibration,
        level=context.false_alarm_rate,  # each embedding, text or image column's MMD test
    )
    found = []
    for spec in context.schema.columns:
        mine = baseline.profile.columns.get(spec.name)
        theirs = window.profile.columns.get(spec.name)
        if mine is None or theirs is None or type(mine) is not type(theirs):
            continue
        if spec.role in UNCHECKED_ROLES:
            continue
        checked = column_checks(spec.name, spec.kind, mine, theirs)
        if spec.role in ("prediction", "score"):  # an output's findings are warnings
            checked = as_output_findings(checked)
        found.extend(checked)
    # A partial window (the data ends or starts inside it) is short of rows by construction:
    # volume judges whole windows only; freshness, those the data does not end inside.
    if window.partial:
        found.append(partial_volume(window.rows, context.expected_rows))
    else:
        found.append(volume_check(window.rows, context.seen_rows, context.expected_rows))
        context.seen_rows.append(float(window.rows))
    timestamp = context.timestamp
    timed = context.period_seconds is not None and timestamp in window.profile.columns
    if timed and window.complete:
        times = window.profile.columns[timestamp]
        newest = times.maximum if times.count else None
        end = datetime.fromisoformat(window.end.replace("Z", "+00:00")).timestamp()
        found.append(freshness_check(timestamp, newest, end, context.period_seconds))
    model = context.multivariate
    if model is not None:
        sample = window.sample if window.sample is not None else pa.table({})
        found.append(
            model.domain_classifier(
                sample,
                tail=context.false_alarm_rate / 10,
                seed=derive_seed(baseline.id, window.start, "domain_classifier"),
            )
        )
        found.append(model.reconstruction(sample, tail=context.false_alarm_rate / 10))
    return report, found
