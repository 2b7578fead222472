"""The HTML timeline report: every check and column across windows, alerts marked.

One self-contained file, like the drift report: the verdict per window in a
table, "what changed, when" in a list, and per column (drift) or metric
(quality, only where something alerted) a chart of its value against its
threshold across windows, alerting windows in red.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from keel import __version__
from keel.report.charts import render_svg, timeline_spec
from keel.report.html import _template_named

MAX_CHARTS = 40


def timeline_report_html(history: Any) -> str:
    series: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    alerted: set[tuple[str, str, str]] = set()
    for window in history.windows:
        for result in window.results():
            key = (result.check, result.column or "(table)", result.metric)
            value = result.value if _finite(result.value) else None
            threshold = result.threshold if _finite(result.threshold) else None
            series.setdefault(key, []).append(
                {
                    "window": window.start,
                    "value": value,
                    "threshold": threshold,
                    "alert": result.status == "alert",
                }
            )
            if result.status == "alert":
                alerted.add(key)
    keys = [k for k in series if k[0] != "quality" or k in alerted]
    keys.sort(key=lambda k: (k not in alerted, k[0] != "feature_drift", k[1], k[2]))
    temporal = bool(history.windows) and not history.windows[0].start.isdigit()
    charts = [
        {
            "title": f"{column} — {check.replace('_', ' ')}: {metric}",
            "alert": key in alerted,
            "svg": Markup(render_svg(timeline_spec(series[key], temporal))),
        }
        for key in keys[:MAX_CHARTS]
        for check, column, metric in [key]
    ]
    windows = [
        {
            "start": w.start,
            "rows": f"{w.rows:,}",
            "alert": w.alert,
            "drift": ", ".join(w.drift.dataset["drifted_columns"]),
            "quality": "; ".join(
                f"{r.column or 'table'}: {r.metric}" for r in w.quality if r.status == "alert"
            ),
        }
        for w in history.windows
    ]
    calibration = history.calibration
    return _template_named("timeline.html").render(
        history=history,
        windows=windows,
        charts=charts,
        summary=history.summary(),
        calibrated=calibration is not None and calibration.fallback is None,
        calibration=calibration,
        hidden=max(len(keys) - MAX_CHARTS, 0),
        version=__version__,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_timeline_report(history: Any, path: str | Path) -> Path:
    """Render first, then write atomically."""
    from keel._files import write_atomically

    write_atomically(Path(path), timeline_report_html(history))
    return Path(path)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
