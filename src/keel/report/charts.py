"""Vega-Lite specifications for keel's charts, rendered to inline SVG by vl-convert.

Charts are declared in Vega-Lite (a well-kept grammar of graphics) and
rendered offline in Python, so a report embeds plain SVG: no JavaScript
library, no network, a few kilobytes per chart.

>>> spec = distribution_spec({"kind": "categorical", "categories": ["a", "b"],
...                           "reference": [0.5, 0.5], "current": [0.9, 0.1]})
>>> spec["mark"]["type"], len(spec["data"]["values"])
('bar', 4)
"""

from __future__ import annotations

import re
from typing import Any

SIDE_COLORS = {"reference": "#8a94a6", "current": "#d9480f"}
_CONFIG = {
    "aria": False,  # per-mark ARIA labels triple an SVG's size; the page's table has the numbers
    "axis": {"grid": False, "labelFontSize": 10, "titleFontSize": 10, "labelLimit": 90},
    "legend": {"orient": "top", "labelFontSize": 10, "title": None},
    "view": {"stroke": None},
    "font": "sans-serif",
}
# The report draws one legend for all charts, so each chart leaves its own out.
_COLOR = {
    "field": "side",
    "type": "nominal",
    "scale": {"domain": list(SIDE_COLORS), "range": list(SIDE_COLORS.values())},
    "legend": None,
}


def distribution_spec(distribution: dict[str, Any]) -> dict[str, Any]:
    """Reference and current shares overlaid: bins for numbers, bars for categories."""
    if distribution["kind"] == "numeric":
        return _numeric_spec(distribution)
    return _categorical_spec(distribution)


def _numeric_spec(distribution: dict[str, Any]) -> dict[str, Any]:
    # One stepped area per side (two SVG paths) instead of a bar per bin: a tenth of the bytes.
    edges = distribution["edges"]
    values = [
        {"x": edges[i], "share": shares[min(i, len(shares) - 1)], "side": side}
        for side in ("reference", "current")
        for shares in [distribution[side]]
        for i in range(len(edges))
    ]
    scale = {"type": "log"} if distribution["scale"] == "log" else {"zero": False}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": 360,
        "height": 130,
        "config": _CONFIG,
        "data": {"values": values},
        "mark": {"type": "area", "interpolate": "step-after", "opacity": 0.5},
        "encoding": {
            "x": {
                "field": "x",
                "type": "quantitative",
                "scale": scale,
                "title": None,
                "axis": {"format": "~s", "tickCount": 6},
            },
            "y": {
                "field": "share",
                "type": "quantitative",
                "stack": None,
                "title": "share",
                "axis": {"format": "%", "tickCount": 3},
            },
            "color": _COLOR,
        },
    }


def _categorical_spec(distribution: dict[str, Any]) -> dict[str, Any]:
    categories = distribution["categories"]
    values = [
        {"category": category, "share": share, "side": side}
        for side in ("reference", "current")
        for category, share in zip(categories, distribution[side], strict=True)
    ]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": {"step": 12},
        "height": 130,
        "config": _CONFIG,
        "data": {"values": values},
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "category", "type": "nominal", "sort": categories, "title": None},
            "xOffset": {"field": "side", "sort": list(SIDE_COLORS)},
            "y": {
                "field": "share",
                "type": "quantitative",
                "title": "share",
                "axis": {"format": "%", "tickCount": 3},
            },
            "color": _COLOR,
        },
    }


_LONG_DECIMAL = re.compile(r"(\d+\.\d)\d+")
# Attributes that repeat a default or serve only interaction; the page's CSS sets the font.
_REDUNDANT = re.compile(
    r' (?:opacity="1"|pointer-events="none"|aria-hidden="true"|font-family="sans-serif"'
    r'|role="[^"]*"|aria-roledescription="[^"]*")'
)


def render_svg(spec: dict[str, Any]) -> str:
    """Render a Vega-Lite spec to a compact SVG string (vl-convert, offline; 0.1 px precision)."""
    import vl_convert

    svg = vl_convert.vegalite_to_svg(spec)
    return _REDUNDANT.sub("", _LONG_DECIMAL.sub(r"\1", svg))


def _threshold_layer(x: dict[str, Any]) -> dict[str, Any]:
    """The threshold (or the holdout's value) across windows, dashed."""
    return {
        "mark": {"type": "line", "color": SIDE_COLORS["reference"], "strokeDash": [4, 3]},
        "encoding": {"x": x, "y": {"field": "threshold", "type": "quantitative"}},
    }


def _alert_layer(x: dict[str, Any], y: dict[str, Any]) -> dict[str, Any]:
    """Alerting windows as filled red points."""
    return {
        "mark": {"type": "point", "filled": True, "size": 40, "color": SIDE_COLORS["current"]},
        "transform": [{"filter": "datum.alert"}],
        "encoding": {"x": x, "y": y},
    }


def timeline_spec(points: list[dict[str, Any]], temporal: bool) -> dict[str, Any]:
    """A metric across windows: its value, its threshold (dashed), alerting windows in red.

    ``points``: ``{"window": start, "value": v, "threshold": t, "alert": bool}`` each.
    """
    x = {"field": "window", "type": "temporal" if temporal else "ordinal", "title": None}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": 520,
        "height": 110,
        "config": _CONFIG,
        "data": {"values": points},
        "layer": [
            _threshold_layer(x),
            {
                "mark": {"type": "line", "color": "#1f2430", "strokeWidth": 1.5},
                "encoding": {
                    "x": x,
                    "y": {"field": "value", "type": "quantitative", "title": None},
                },
            },
            _alert_layer(x, {"field": "value", "type": "quantitative"}),
        ],
    }


SERIES_COLORS = {"realized": "#1f2430", "estimated": "#2563eb"}


def band_spec(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics across windows, each series (realized, estimated) with its interval as a
    band; the holdout's value dashed; alerting windows red, provisional ones hollow.

    ``points``: ``{"window", "series", "value", "lower", "upper", "threshold", "alert",
    "provisional"}`` each.

    >>> spec = band_spec([{"window": "2026-01-01", "series": "estimated", "value": 0.8,
    ...                    "lower": 0.7, "upper": 0.9, "threshold": 0.85, "alert": False,
    ...                    "provisional": False}])
    >>> spec["layer"][0]["mark"]["type"], spec["layer"][0]["encoding"]["color"]["field"]
    ('area', 'series')
    """
    x = {"field": "window", "type": "temporal", "title": None}
    y = {"field": "value", "type": "quantitative", "title": None, "scale": {"zero": False}}
    color = {
        "field": "series",
        "type": "nominal",
        "scale": {"domain": list(SERIES_COLORS), "range": list(SERIES_COLORS.values())},
        "legend": {"orient": "top", "title": None},
    }
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": 520,
        "height": 120,
        "config": _CONFIG,
        "data": {"values": points},
        "layer": [
            {
                "mark": {"type": "area", "opacity": 0.18},
                "encoding": {
                    "x": x,
                    "y": {"field": "lower", "type": "quantitative", "scale": {"zero": False}},
                    "y2": {"field": "upper"},
                    "color": color,
                },
            },
            _threshold_layer(x),
            {
                "mark": {"type": "line", "strokeWidth": 1.5},
                "encoding": {"x": x, "y": y, "color": color},
            },
            {
                "mark": {"type": "point", "size": 40},
                "transform": [{"filter": "datum.provisional"}],
                "encoding": {"x": x, "y": y, "color": color},
            },
            _alert_layer(x, y),
        ],
    }
