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

The same four scenarios for a regressor (keel's ``LossEstimator`` against
NannyML's DLE): y = 3x + noise whose spread grows with |x|, the model predicts
3x; the shift that hurts moves x outward, the one that helps inward, and the
concept drift makes y = 2x + noise.

Printed per scenario and metric: the mean realized and estimated values, the
mean absolute error of the estimate, how often the band covers the realized
value (95% bands), and how often the reliability flag fired. Where NannyML is
installed in its side environment (``benchmarks/peers/README.md``; or
``--nannyml PYTHON``), its CBPE estimates the same windows from the same
holdout (``benchmarks/peers/run_nannyml_cbpe.py``) and gets the same columns.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from keel.estimation import ConfidenceEstimator, LossEstimator


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


NANNYML = Path("/opt/keel-peers/nannyml/bin/python")
SCENARIOS = ("quiet", "shift that hurts", "shift that helps", "concept drift")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--nannyml", type=Path, default=NANNYML)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20_000, 2))
    model = LogisticRegression().fit(train, rng.random(20_000) < truth(train))
    holdout = rng.normal(size=(20_000, 2))
    holdout_scores = model.predict_proba(holdout)[:, 1]
    holdout_labels = rng.random(20_000) < truth(holdout)
    started = time.perf_counter()
    estimator = ConfidenceEstimator.fit(holdout_scores, holdout_labels)
    rows, windows = [], []
    for scenario in SCENARIOS:
        for index in range(args.windows):
            x = inputs(rng, args.rows, scenario, (index + 1) / args.windows)
            labels = rng.random(args.rows) < truth(x, concept=scenario == "concept drift")
            scores = model.predict_proba(x)[:, 1]
            estimate = estimator.estimate(scores)
            key = f"{scenario}/{index:03d}"
            windows.append(
                pd.DataFrame(
                    {"window": key, "score": scores, "prediction": (scores >= 0.5).astype(int)}
                )
            )
            realized = {
                "accuracy": accuracy_score(labels, scores >= 0.5),
                "roc_auc": roc_auc_score(labels, scores),
            }
            unreliable = not estimator.reliability(scores)["reliable"]
            for name in realized:
                m = estimate[name]
                rows.append(
                    (scenario, name, key, realized[name], m.value, m.lower, m.upper, unreliable)
                )
    elapsed = time.perf_counter() - started
    found = pd.DataFrame(
        rows,
        columns=[
            "scenario",
            "metric",
            "window",
            "realized",
            "keel",
            "keel_lower",
            "keel_upper",
            "unreliable",
        ],
    )
    peer = _nannyml(args.nannyml, holdout_scores, holdout_labels, windows)
    print(f"calibration chosen by cross-validated Brier: {estimator.calibration}")
    _table(found, peer)
    print(
        f"({args.windows} windows of {args.rows:,} rows per scenario; keel {elapsed:.1f} s"
        + ("" if peer is not None else f"; NannyML not found at {args.nannyml}")
        + ")"
    )
    regression(args, rng)


def _table(found: pd.DataFrame, peer: dict | None) -> None:
    header = (
        f"{'scenario':<18} {'metric':<9} {'realized':>8} {'keel':>6} {'MAE':>6} "
        f"{'covered':>8} {'unreliable':>10}"
    )
    if peer is not None:
        header += f" {'NannyML':>8} {'MAE':>6} {'covered':>8}"
    print(header)
    for (scenario, name), part in found.groupby(["scenario", "metric"], sort=False):
        covered = (part["keel_lower"] <= part["realized"]) & (
            part["realized"] <= part["keel_upper"]
        )
        line = (
            f"{scenario:<18} {name:<9} {part['realized'].mean():8.3f} {part['keel'].mean():6.3f} "
            f"{(part['realized'] - part['keel']).abs().mean():6.3f} {covered.mean():8.0%} "
            f"{part['unreliable'].mean():10.0%}"
        )
        if peer is not None:
            theirs = np.array([peer[w][name]["value"] for w in part["window"]])
            low = np.array([peer[w][name]["lower"] for w in part["window"]])
            high = np.array([peer[w][name]["upper"] for w in part["window"]])
            real = part["realized"].to_numpy()
            line += (
                f" {theirs.mean():8.3f} {np.abs(real - theirs).mean():6.3f} "
                f"{((low <= real) & (real <= high)).mean():8.0%}"
            )
        print(line)


def regression_window(rng, rows: int, scenario: str, strength: float) -> pd.DataFrame:
    x = rng.normal(size=rows)
    if scenario == "shift that hurts":
        x = x * (1 + 0.8 * strength)
    if scenario == "shift that helps":
        x = x * (1 - 0.6 * strength)
    slope = 2.0 if scenario == "concept drift" else 3.0
    y = slope * x + rng.normal(0, 0.2 + np.abs(x))
    return pd.DataFrame({"x": x, "prediction": 3 * x, "y": y})


def regression(args, rng) -> None:
    holdout = regression_window(rng, 20_000, "quiet", 0.0)
    started = time.perf_counter()
    estimator = LossEstimator.fit(holdout, ["x"], "prediction", "y")
    rows, windows = [], []
    for scenario in SCENARIOS:
        for index in range(args.windows):
            frame = regression_window(rng, args.rows, scenario, (index + 1) / args.windows)
            key = f"{scenario}/{index:03d}"
            windows.append(frame[["x", "prediction"]].assign(window=key))
            estimate = estimator.estimate(frame, "prediction")
            error = frame["prediction"] - frame["y"]
            realized = {"mae": error.abs().mean(), "rmse": np.sqrt((error**2).mean())}
            unreliable = not estimator.reliability(frame, "prediction")["reliable"]
            for name in realized:
                m = estimate[name]
                rows.append(
                    (scenario, name, key, realized[name], m.value, m.lower, m.upper, unreliable)
                )
    elapsed = time.perf_counter() - started
    found = pd.DataFrame(
        rows,
        columns=[
            "scenario",
            "metric",
            "window",
            "realized",
            "keel",
            "keel_lower",
            "keel_upper",
            "unreliable",
        ],
    )
    peer = None
    if args.nannyml.exists():
        folder = Path(tempfile.mkdtemp(prefix="keel-study-"))
        holdout.to_parquet(folder / "reference.parquet")
        pd.concat(windows).to_parquet(folder / "windows.parquet")
        script = Path(__file__).parent / "peers" / "run_nannyml_dle.py"
        began = time.perf_counter()
        subprocess.run(
            [
                str(args.nannyml),
                str(script),
                str(folder / "reference.parquet"),
                str(folder / "windows.parquet"),
                str(folder / "out.json"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,  # LightGBM talks on stdout
        )
        print(f"NannyML DLE: {time.perf_counter() - began:.1f} s (a separate process)")
        peer = json.loads((folder / "out.json").read_text())["windows"]
    print("regressor (loss models):")
    _table(found, peer)
    print(f"({args.windows} windows of {args.rows:,} rows per scenario; keel {elapsed:.1f} s)")


def _nannyml(python: Path, scores, labels, windows) -> dict | None:
    """NannyML's CBPE on the same holdout and windows, in its own environment."""
    if not python.exists():
        return None
    folder = Path(tempfile.mkdtemp(prefix="keel-study-"))
    pd.DataFrame(
        {"score": scores, "prediction": (scores >= 0.5).astype(int), "label": labels.astype(int)}
    ).to_parquet(folder / "reference.parquet")
    pd.concat(windows).to_parquet(folder / "windows.parquet")
    script = Path(__file__).parent / "peers" / "run_nannyml_cbpe.py"
    started = time.perf_counter()
    subprocess.run(
        [
            str(python),
            str(script),
            str(folder / "reference.parquet"),
            str(folder / "windows.parquet"),
            str(folder / "out.json"),
        ],
        check=True,
    )
    print(f"NannyML CBPE: {time.perf_counter() - started:.1f} s (a separate process)")
    return json.loads((folder / "out.json").read_text())["windows"]


if __name__ == "__main__":
    main()
