"""How good is performance estimation? Windows where the truth is known, four kinds.

Run: python benchmarks/estimation_study.py [--windows 40] [--rows 2000]

A logistic-regression model is trained on a reference where P(y=1 | x) is a
known function of two features; keel's ``ConfidenceEstimator`` is fitted on a
labelled holdout of it. Then, for each scenario, windows are drawn and the
estimate (from the scores alone) is compared with the realized metric (from
the labels):

- quiet: the reference's distribution;
- shift that hurts: the inputs move toward the decision boundary, where the
  model is least sure;
- shift that helps: the inputs move away from it;
- concept drift: the same inputs, a new relationship to the label.

Printed per scenario and metric: the mean realized and estimated values, the
mean absolute error of the estimate, how often the band covers the realized
value (95% bands), and how often the reliability flag fired.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from keel.estimation import ConfidenceEstimator


def truth(x: np.ndarray, concept: bool = False) -> np.ndarray:
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.8 * x[:, 0] * x[:, 1]
    if concept:
        logit = 1.5 * x[:, 0] + 1.0 * x[:, 1] - 0.8 * x[:, 0] * x[:, 1]
    return 1 / (1 + np.exp(-logit))


def inputs(rng: np.random.Generator, rows: int, scenario: str, strength: float) -> np.ndarray:
    x = rng.normal(size=(rows, 2))
    if scenario == "shift that hurts":  # shrink toward the boundary: the model is less sure
        x = x * (1 - 0.6 * strength)
    if scenario == "shift that helps":  # spread away from it: the model is surer
        x = x * (1 + 0.8 * strength)
    return x


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20_000, 2))
    model = LogisticRegression().fit(train, rng.random(20_000) < truth(train))
    holdout = rng.normal(size=(20_000, 2))
    started = time.perf_counter()
    estimator = ConfidenceEstimator.fit(
        model.predict_proba(holdout)[:, 1], rng.random(20_000) < truth(holdout)
    )
    print(f"calibration chosen by cross-validated Brier: {estimator.calibration}")
    print(
        f"{'scenario':<18} {'metric':<9} {'realized':>8} {'estimated':>9} {'MAE':>6} "
        f"{'covered':>8} {'unreliable':>10}"
    )
    for scenario in ("quiet", "shift that hurts", "shift that helps", "concept drift"):
        found = {"accuracy": [], "roc_auc": []}
        flagged = 0
        for index in range(args.windows):
            strength = (index + 1) / args.windows
            x = inputs(rng, args.rows, scenario, strength)
            labels = rng.random(args.rows) < truth(x, concept=scenario == "concept drift")
            scores = model.predict_proba(x)[:, 1]
            estimate = estimator.estimate(scores)
            flagged += not estimator.reliability(scores)["reliable"]
            realized = {
                "accuracy": accuracy_score(labels, scores >= 0.5),
                "roc_auc": roc_auc_score(labels, scores),
            }
            for name in found:
                metric = estimate[name]
                found[name].append(
                    (realized[name], metric.value, metric.lower <= realized[name] <= metric.upper)
                )
        for name, rows in found.items():
            real, guess, covered = np.array(rows, dtype=float).T
            print(
                f"{scenario:<18} {name:<9} {real.mean():8.3f} {guess.mean():9.3f} "
                f"{np.abs(real - guess).mean():6.3f} {covered.mean():8.0%} "
                f"{flagged / args.windows:10.0%}"
            )
    print(
        f"({args.windows} windows of {args.rows:,} rows per scenario; "
        f"{time.perf_counter() - started:.1f} s)"
    )


if __name__ == "__main__":
    main()
