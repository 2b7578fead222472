"""Retraining: when to retrain (``policy``) and whether a challenger replaces the champion.

``gate.evaluate_gate`` judges paired per-request outputs with the intervals of ``paired``
at the horizon from ``horizon``; ``policy.decide`` turns window diagnoses into a decision;
``job.run_retrain`` trains a ``challenger``; ``shadow_pairs`` reads the gateway's shadow log
into the gate's arrays, and ``promotion`` compares, records and, once a person approves
(``approve``, ``reject``), moves the ``champion`` alias. ``watch.challenger_results`` gives a
monitor window's running comparison as Results, ``canary`` judges a canary's randomized
arm unpaired (labels that depend on the decision), and ``backtest`` replays a policy over
the logged history, point-in-time (import them from their modules: the gateway imports
this package, and must not reach the checks through it).
docs/retraining.md has the statistics and their measured error rates.
"""

from keel.retrain.gate import Condition, GateConfig, GateReport, Outcomes, evaluate_gate
from keel.retrain.horizon import accuracy_horizon, discordant_share, paired_horizon
from keel.retrain.policy import RetrainPolicy, TriggerDecision, WindowDiagnosis, decide
from keel.retrain.promotion import PromotionRefused, PromotionRun, approve, compare, reject, runs

__all__ = [
    "Condition",
    "GateConfig",
    "GateReport",
    "Outcomes",
    "PromotionRefused",
    "PromotionRun",
    "RetrainPolicy",
    "TriggerDecision",
    "WindowDiagnosis",
    "accuracy_horizon",
    "approve",
    "compare",
    "decide",
    "discordant_share",
    "evaluate_gate",
    "paired_horizon",
    "reject",
    "runs",
]
