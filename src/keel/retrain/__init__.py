"""Retraining: when to retrain (``policy``) and whether a challenger replaces the champion.

``gate.evaluate_gate`` judges paired per-request outputs with the intervals of ``paired``
at the horizon from ``horizon``; ``policy.decide`` turns window diagnoses into a decision.
docs/retraining.md has the statistics and their measured error rates.
"""

from keel.retrain.gate import Condition, GateConfig, GateReport, Outcomes, evaluate_gate
from keel.retrain.horizon import accuracy_horizon, discordant_share, paired_horizon
from keel.retrain.policy import RetrainPolicy, TriggerDecision, WindowDiagnosis, decide

__all__ = [
    "Condition",
    "GateConfig",
    "GateReport",
    "Outcomes",
    "RetrainPolicy",
    "TriggerDecision",
    "WindowDiagnosis",
    "accuracy_horizon",
    "decide",
    "discordant_share",
    "evaluate_gate",
    "paired_horizon",
]
