"""The HTML drift report: one self-contained file, offline, a few hundred kilobytes at most.

It embeds summaries (shares in bins or categories, the deciding numbers),
never raw rows, and charts as inline SVG rendered from Vega-Lite. Columns
are sorted by how much they changed: drifted first, then by effect size
relative to its floor. Past ``max_charts`` columns only the table row is
kept, and past ``table_limit`` rows the table folds into a collapsed
section, so a 2,000-column report stays small and quick to open. Every
name from the data is HTML-escaped (Jinja2 autoescape).

>>> import numpy as np, pandas as pd, keel
>>> rng = np.random.default_rng(0)
>>> report = keel.drift(pd.DataFrame({"x": rng.normal(size=500)}),
...                     pd.DataFrame({"x": rng.normal(size=500) + 2}))
>>> html = drift_report_html(report)
>>> html.startswith("<!doctype html>"), "<svg" in html, "Drift in 1 of 1 columns" in html
(True, True, True)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from keel import __version__
from keel.report.charts import distribution_spec, render_svg

if TYPE_CHECKING:  # a view of checks' reports; checks show themselves through it (Jupyter)
    from keel.checks.drift import ColumnDrift, DriftReport

MAX_CHARTS = 30
TABLE_LIMIT = 100
_VERDICTS = {
    "alert": "drift",
    "ok": "no drift",
    "warn": "moved, below what pages",
    "error": "error",
    "insufficient_data": "insufficient data",
}


@cache
def _template_named(name: str):
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("keel.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(name)


def _template():
    return _template_named("drift.html")


def headline(report: DriftReport) -> str:
    """The verdict in one sentence."""
    dataset = report.dataset
    checked = dataset["columns_checked"]
    if dataset["drift"]:
        drifted = dataset["drifted_columns"]
        named = ", ".join(drifted[:8]) + (
            f" and {len(drifted) - 8} more" if len(drifted) > 8 else ""
        )
        return f"Drift in {len(drifted)} of {checked} columns: {named}."
    problems = sum(f["level"] == "alert" for f in dataset["findings"])
    tail = (
        f", but {problems} column problem{'s' * (problems != 1)} (see findings)" if problems else ""
    )
    return f"No drift in {checked} columns{tail}."


def drift_report_html(
    report: DriftReport, max_charts: int = MAX_CHARTS, table_limit: int = TABLE_LIMIT
) -> str:
    """Render a DriftReport as one self-contained HTML page."""
    ordered = report.most_changed_first()
    rows = []
    for index, column in enumerate(ordered):
        draw = index < max_charts and column.distribution is not None
        rows.append(
            _row(column, render_svg(distribution_spec(column.distribution)) if draw else None)
        )
    return _template().render(
        dataset=report.dataset,
        headline=headline(report),
        reference_name=report.dataset["reference"]["name"],
        current_name=report.dataset["current"]["name"],
        rows=rows,
        charted=min(max_charts, len(rows)),
        table_limit=table_limit,
        more_rows=[_row_cells(row) for row in rows[table_limit:]],
        row_html=_row_html,
        version=__version__,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_drift_report(report: DriftReport, path: str | Path) -> Path:
    """Render first, then write atomically: a failure never leaves half a file."""
    from keel._files import write_atomically

    html = drift_report_html(report)
    write_atomically(Path(path), html)
    return Path(path)


def _row(column: ColumnDrift, svg: str | None) -> dict[str, Any]:
    numbers = [
        ("test", column.method),
        ("statistic", _fmt(column.statistic)),
        ("p-value", _fmt(column.p_value)),
        ("p-value (BH)", _fmt(column.p_value_adjusted)),
    ]
    if column.effect_method:
        numbers += [
            (column.effect_method, _fmt(column.effect_size)),
            ("floor", _fmt(column.effect_floor)),
        ]
    elif column.threshold is not None:
        numbers.append(("threshold", _fmt(column.threshold)))
    if column.sketch_error:
        numbers.append(("sketch error ε₁+ε₂", _fmt(column.sketch_error)))
    numbers += [
        ("reference values", f"{column.reference_count:,}"),
        ("current values", f"{column.current_count:,}"),
    ]
    for key in ("reference_median", "current_median"):
        if key in column.details:
            numbers.append((key.replace("_", " "), _fmt(column.details[key])))
    return {
        "column": column.column,
        "kind": column.kind,
        "status": column.status,
        "drift": column.drift,
        "verdict": _VERDICTS[column.status],
        "finding": column.finding,
        "svg": Markup(svg) if svg else None,
        "numbers": [(name, value) for name, value in numbers if value not in (None, "")],
        "method": column.method or "",
        "statistic": _fmt(column.statistic),
        "p_adjusted": _fmt(
            column.p_value_adjusted if column.p_value_adjusted is not None else column.p_value
        ),
        "effect": (
            f"{column.effect_method} {_fmt(column.effect_size)}" if column.effect_method else ""
        ),
        "floor": _fmt(column.effect_floor if column.effect_floor is not None else column.threshold),
    }


def _row_cells(row: dict[str, Any]) -> list[str]:
    verdict = row["verdict"] + (f" — {row['finding']}" if row["finding"] else "")
    return [
        row["column"],
        row["kind"],
        verdict,
        row["method"],
        row["statistic"],
        row["p_adjusted"],
        row["effect"],
        row["floor"],
    ]


def _row_html(row: dict[str, Any]) -> Markup:
    cells: list[Any] = _row_cells(row)
    cells[2] = Markup('<span class="status-{}">{}</span>').format(row["status"], cells[2])
    body = Markup("").join(Markup("<td>{}</td>").format(cell) for cell in cells)
    return Markup('<tr data-column="{}">{}</tr>\n').format(row["column"], body)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    return str(value)
