"""keel: keeps machine-learning models healthy in production.

The public API, in one place. Names load on first use, so ``import keel``
(and the ``keel`` command) start fast.

>>> import keel
>>> sorted(name for name in keel.__all__ if name[0].islower())[:6]
['check_history', 'check_leakage', 'check_skew', 'classification_metrics', 'compute_offline',
 'diagnose']
>>> keel.Baseline.__name__
'Baseline'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Baseline": "keel.baseline",
    "ColumnDrift": "keel.checks.drift",
    "DriftReport": "keel.checks.drift",
    "drift": "keel.compare",
    "open_source": "keel.data",
    "ConfigError": "keel.errors",
    "DataError": "keel.errors",
    "FormatError": "keel.errors",
    "KeelError": "keel.errors",
    "SchemaError": "keel.errors",
    "StoreError": "keel.errors",
    "MonitorBusy": "keel.errors",
    "DeliveryError": "keel.errors",
    "Profile": "keel.profile",
    "ColumnSpec": "keel.schema",
    "Schema": "keel.schema",
    "DefaultRule": "keel.stats.verdict",
    "Calibration": "keel.calibration",
    "History": "keel.history",
    "check_history": "keel.history",
    "WindowSpec": "keel.windows",
    "log_predictions": "keel.store.logs",
    "log_labels": "keel.store.logs",
    "ResultStore": "keel.store",
    "MonitorConfig": "keel.monitor.config",
    "load_config": "keel.monitor.config",
    "run_monitor": "keel.monitor.run",
    "diagnose": "keel.diagnosis",
    "classification_metrics": "keel.performance",
    "regression_metrics": "keel.performance",
    "ConfidenceEstimator": "keel.estimation",
    "MulticlassEstimator": "keel.estimation",
    "LossEstimator": "keel.estimation",
    "read_labelled": "keel.store.queries",
    "track": "keel.tracking",
    "WindowedFeature": "keel.features",
    "compute_offline": "keel.features",
    "OnlineFeatures": "keel.features",
    "check_skew": "keel.checks.skew",
    "check_leakage": "keel.checks.leakage",
}

__all__ = [
    "Baseline",
    "Calibration",
    "History",
    "WindowSpec",
    "ColumnDrift",
    "ColumnSpec",
    "ConfigError",
    "DataError",
    "DefaultRule",
    "DriftReport",
    "FormatError",
    "KeelError",
    "Profile",
    "ResultStore",
    "Schema",
    "SchemaError",
    "StoreError",
    "MonitorBusy",
    "DeliveryError",
    "ConfidenceEstimator",
    "LossEstimator",
    "MonitorConfig",
    "MulticlassEstimator",
    "check_history",
    "classification_metrics",
    "diagnose",
    "drift",
    "log_labels",
    "log_predictions",
    "load_config",
    "open_source",
    "read_labelled",
    "regression_metrics",
    "run_monitor",
    "track",
    "WindowedFeature",
    "compute_offline",
    "OnlineFeatures",
    "check_skew",
    "check_leakage",
]

if TYPE_CHECKING:
    from keel.baseline import Baseline
    from keel.calibration import Calibration
    from keel.checks.drift import ColumnDrift, DriftReport
    from keel.checks.leakage import check_leakage
    from keel.checks.skew import check_skew
    from keel.compare import drift
    from keel.data import open_source
    from keel.diagnosis import diagnose
    from keel.errors import (
        ConfigError,
        DataError,
        DeliveryError,
        FormatError,
        KeelError,
        MonitorBusy,
        SchemaError,
        StoreError,
    )
    from keel.estimation import ConfidenceEstimator, LossEstimator, MulticlassEstimator
    from keel.features import OnlineFeatures, WindowedFeature, compute_offline
    from keel.history import History, check_history
    from keel.monitor.config import MonitorConfig, load_config
    from keel.monitor.run import run_monitor
    from keel.performance import classification_metrics, regression_metrics
    from keel.profile import Profile
    from keel.schema import ColumnSpec, Schema
    from keel.stats.verdict import DefaultRule
    from keel.store import ResultStore
    from keel.store.logs import log_labels, log_predictions
    from keel.store.queries import read_labelled
    from keel.tracking import track
    from keel.windows import WindowSpec


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'keel' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
