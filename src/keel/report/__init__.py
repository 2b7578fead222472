"""Reports people look at: a self-contained HTML drift report."""

from keel.report.html import drift_report_html, write_drift_report

__all__ = ["drift_report_html", "write_drift_report"]
