"""The canary's unpaired gate: error rates and power, measured (docs/retraining.md, "The
canary, unpaired").

    nice -n 10 python benchmarks/retrain_canary.py

Two independent arms of n labelled requests each (balanced labels), α = 0.05, margins of
1 point, 2,000 replications each, vectorised across replications (Newcombe's bound needs
only each arm's counts, drawn from binomials); 200 replications of (a) and (c) are replayed
through ``evaluate_canary`` on per-request arrays and must agree.

(a) equal models (accuracy 0.80 in both arms), at the policy's horizon;
(b) the boundary null: the canary 2.5 points more accurate, but its recall exactly the
    margin (1 point) worse than the champion's (recall guarded);
(c) a canary 2 points more accurate, at the horizon ``canary_horizon`` plans (worst-case
    variance), and at the horizon a known p = 0.8 would give.

Goals: (a) and (b) promote at most α + 1 point; (c) at least 80% at the planned horizon.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from scipy.special import ndtri

from keel.retrain.canary import Arm, canary_horizon, evaluate_canary
from keel.retrain.gate import GateConfig
from keel.retrain.paired import newcombe_lower
from keel.retrain.policy import RetrainPolicy

ALPHA, MARGIN, REPS = 0.05, 0.01, 2000


def _promoted_accuracy(rng, n, p_champion, p_canary, reps=REPS):
    xa, xb = rng.binomial(n, p_champion, reps), rng.binomial(n, p_canary, reps)
    lower = newcombe_lower(xb, n, xa, n, ALPHA)
    return (lower > 0) & (lower > -MARGIN), (xa, xb)


def _promoted_boundary(rng, n, reps=REPS):
    """Accuracy +2.5 points overall, recall exactly a margin worse (balanced labels)."""
    pos_a, pos_b = rng.binomial(n, 0.5, reps), rng.binomial(n, 0.5, reps)
    neg_a, neg_b = n - pos_a, n - pos_b
    rec_a, rec_b = 0.80, 0.79  # recall: Δ = −margin, the boundary
    spec_a, spec_b = 0.80, 0.86  # accuracy: (0.79 + 0.86)/2 − 0.80 = +2.5 points
    tp_a, tp_b = rng.binomial(pos_a, rec_a), rng.binomial(pos_b, rec_b)
    tn_a, tn_b = rng.binomial(neg_a, spec_a), rng.binomial(neg_b, spec_b)
    accuracy = newcombe_lower(tp_b + tn_b, n, tp_a + tn_a, n, ALPHA)
    recall = newcombe_lower(tp_b, pos_b, tp_a, pos_a, ALPHA)
    return (accuracy > 0) & (recall > -MARGIN)


def _replay(rng, n, p_champion, p_canary, reps=200):
    """Per-request arrays through evaluate_canary, against the vectorised rule."""
    config = GateConfig(primary="accuracy", margins={"accuracy": MARGIN}, horizon=n)
    agree = 0
    for _ in range(reps):
        arms = []
        for p in (p_champion, p_canary):
            y = rng.random(n) < 0.5
            right = rng.random(n) < p
            arms.append(Arm(predictions=np.where(right, y, ~y).astype(int), labels=y.astype(int)))
        report = evaluate_canary(arms[0], arms[1], config)
        xa = int((arms[0].predictions == arms[0].labels).sum())
        xb = int((arms[1].predictions == arms[1].labels).sum())
        lower = newcombe_lower(xb, n, xa, n, ALPHA)
        agree += (report.status == "promote") == bool(lower > 0)
    return agree, reps


def main() -> int:
    began = time.perf_counter()
    rng = np.random.default_rng(2026)
    policy = RetrainPolicy.model_validate(
        {"min_effect": 0.02, "margins": {"accuracy": MARGIN}, "alpha": ALPHA}
    )
    planned, said = canary_horizon(policy)
    z = ndtri(1 - ALPHA) + ndtri(0.8)
    known = math.ceil((z * math.sqrt(2 * 0.8 * 0.2) / 0.02) ** 2)
    rows = []
    a, _ = _promoted_accuracy(rng, planned, 0.80, 0.80)
    rows.append((f"(a) equal, n = {planned} per arm", a.mean(), "<= 6%", a.mean() <= 0.06))
    b = _promoted_boundary(rng, planned)
    rows.append((f"(b) boundary null (recall), n = {planned}", b.mean(), "<= 6%", b.mean() <= 0.06))
    c, _ = _promoted_accuracy(rng, planned, 0.80, 0.82)
    rows.append((f"(c) +2 points, planned n = {planned}", c.mean(), ">= 80%", c.mean() >= 0.80))
    c2, _ = _promoted_accuracy(rng, known, 0.80, 0.82)
    rows.append((f"(c) +2 points, n = {known} (p = 0.8 known)", c2.mean(), "", True))
    agree_a = _replay(rng, 2000, 0.80, 0.80)
    agree_c = _replay(rng, 2000, 0.80, 0.83)
    print(f"horizon: {said}")
    print("| scenario | promoted | goal | |")
    print("|---|---|---|---|")
    for name, rate, goal, ok in rows:
        print(f"| {name} | {rate:.1%} | {goal} | {'ok' if ok else 'MISSED'} |")
    print(
        f"evaluate_canary agrees with the vectorised rule in {agree_a[0]} of {agree_a[1]} "
        f"(equal) and {agree_c[0]} of {agree_c[1]} (+3 points) replications"
    )
    print(f"{time.perf_counter() - began:.2f} s")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
