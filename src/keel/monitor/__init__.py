"""Monitors: configuration (keel.yaml) and unattended runs over closed windows."""

from keel.monitor.config import MonitorConfig, load_config
from keel.monitor.run import backfill, run_monitor, status

__all__ = ["MonitorConfig", "backfill", "load_config", "run_monitor", "status"]
