"""The monitor report: one self-contained HTML page of a monitor's windows, from the store.

``keel monitor report NAME -o FILE``. For each model version and segment it
shows what the store holds, newest revisions: every window's status,
diagnosis, labelled share and warnings (provisional metrics, a labelled
subset whose scores differ from the window's), the realized metrics and KPIs
with their intervals against the holdout (charts), the drift and quality
series that alerted, and the alerts that are pending or firing.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from keel import __version__
from keel.report.charts import band_spec, render_svg, timeline_spec
from keel.report.html import _template_named
from keel.result import readable

MAX_CHARTS = 30
JUDGED = ("performance", "kpi")


def monitor_report_html(store: Any, monitor: str) -> str:
    from keel.alerts.engine import active

    frame = store.latest(monitor=monitor)
    if frame.empty:
        from keel.store.results import StoreError

        raise StoreError(f"the store holds no Results of monitor {monitor!r}")
    frame = frame[frame["check"] != "window"].copy()
    frame["series"] = [
        " · ".join(part for part in (f"version {v}" if _text(v) else "", _text(s)) if part)
        or "all rows"
        for v, s in zip(frame["model_version"], frame["segment"], strict=True)
    ]
    sections = [
        _section(name, rows)
        for name, rows in sorted(frame.groupby("series"), key=lambda p: (p[0] != "all rows", p[0]))
    ]
    alerts = active(store, monitor)
    return _template_named("monitor.html").render(
        monitor=monitor,
        model=next((m for m in frame["model"] if m), monitor),
        sections=sections,
        alerts=alerts.to_dict("records"),
        version=__version__,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _text(value: Any) -> str:
    """A stored text field, or "" for a missing one (None, or NaN as pandas reads it)."""
    return value if isinstance(value, str) else ""


def _section(name: str, frame: Any) -> dict[str, Any]:
    windows = []
    for start, rows in frame.groupby("window_start", sort=True):
        by = {
            (c, m): r
            for c, m, r in zip(rows["check"], rows["metric"], rows.to_dict("records"), strict=True)
        }
        diagnosis = by.get(("diagnosis", "verdict"), {}).get("details") or {}
        share = by.get(("labels", "labelled_share"))
        subset = by.get(("labels", "labelled_subset_shift"))
        provisional = any(
            isinstance(r["details"], dict) and r["details"].get("provisional")
            for r in rows.to_dict("records")
            if r["check"] in JUDGED
        )
        warnings = []
        if provisional:
            warnings.append("metrics provisional: too few labels yet")
        if subset is not None and subset["status"] == "warn":
            warnings.append(
                "labelled rows likely biased: their scores differ from the unlabelled rows' "
                f"(KS {subset['value']:.2f}, p {subset['details'].get('p_value', 0):.1g})"
            )
        checks = rows[rows["check"] != "diagnosis"]
        windows.append(
            {
                "start": start[:16].replace("T", " "),
                "status": _worst(checks["status"]),
                "diagnosis": diagnosis.get("summary", ""),
                "verdict": diagnosis.get("verdict", ""),
                "labelled": "" if share is None else f"{share['value']:.0%}",
                "warnings": warnings,
            }
        )
    charts = _judged_charts(frame) + _alerting_charts(frame)
    return {"name": name, "windows": windows, "charts": charts[:MAX_CHARTS]}


def _judged_charts(frame: Any) -> list[dict[str, Any]]:
    """Realized metrics with their estimated twins on one chart; KPIs on their own."""
    charts = []
    judged = frame[frame["check"].isin((*JUDGED, "estimated_performance"))]
    kinds = {"performance": "performance", "estimated_performance": "performance", "kpi": "kpi"}
    keyed = judged.assign(kind=judged["check"].map(kinds))
    for (kind, metric), rows in sorted(keyed.groupby(["kind", "metric"])):
        points = []
        for r in rows.sort_values("window_start").to_dict("records"):
            details = r["details"] if isinstance(r["details"], dict) else {}
            points.append(
                {
                    "window": r["window_start"],
                    "series": "estimated" if r["check"] == "estimated_performance" else "realized",
                    "value": _finite(r["value"]),
                    "lower": _finite(details.get("lower")),
                    "upper": _finite(details.get("upper")),
                    "threshold": _finite(r["threshold"]),
                    "alert": r["status"] == "alert",
                    "provisional": bool(details.get("provisional")),
                }
            )
        if not any(p["value"] is not None for p in points):
            continue
        known = [p for p in points if p["value"] is not None]
        latest = max(known, key=lambda p: (p["window"], p["series"] == "realized"))
        label = "performance" if kind == "performance" else "KPI"
        charts.append(
            {
                "title": f"{label} {metric}: {latest['series']} {readable(latest['value'])}"
                + (
                    f" (holdout {readable(latest['threshold'])})"
                    if latest["threshold"] is not None
                    else ""
                ),
                "alert": any(p["alert"] for p in points),
                "svg": Markup(render_svg(band_spec(points))),
            }
        )
    return charts


def _alerting_charts(frame: Any) -> list[dict[str, Any]]:
    charts = []
    others = frame[~frame["check"].isin((*JUDGED, "estimated_performance", "diagnosis", "labels"))]
    for (check, column, metric), rows in others.groupby(
        ["check", others["column"].fillna("(table)"), "metric"]
    ):
        if not (rows["status"] == "alert").any():
            continue
        points = [
            {
                "window": r["window_start"],
                "value": _finite(r["value"]),
                "threshold": _finite(r["threshold"]),
                "alert": r["status"] == "alert",
            }
            for r in rows.sort_values("window_start").to_dict("records")
        ]
        charts.append(
            {
                "title": f"{column} — {check.replace('_', ' ')}: {metric}",
                "alert": True,
                "svg": Markup(render_svg(timeline_spec(points, temporal=True))),
            }
        )
    return charts


def _worst(statuses: Any) -> str:
    rank = {"insufficient_data": -1, "ok": 0, "warn": 2, "error": 3, "alert": 4}
    return max(statuses, key=lambda s: rank.get(s, 0), default="ok")


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def write_monitor_report(store: Any, monitor: str, path: str | Path) -> Path:
    """Render first, then write atomically."""
    from keel._files import write_atomically

    write_atomically(Path(path), monitor_report_html(store, monitor))
    return Path(path)
