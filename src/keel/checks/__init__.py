"""Checks: (baseline, window) -> results."""
