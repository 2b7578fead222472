"""How good is performance estimation? Windows where the truth is known, four kinds.

Run: python benchmarks/estimation_study.py [--windows 200] [--rows 2000]
[--only classifier|regressor|multiclass] [--scenarios "shift that hurts" ...] [--dump FILE.csv]
[--seed N] [--score-only]

A logistic-regression model is trained on a reference where P(y=1 | x) is a
known function of two features, and decides at a threshold of 0.65 (not 0.5);
keel's estimator is fitted on a labelled holdout of 20,000 rows
(``keel.estimation.fit_holdout``, as a baseline made with ``--holdout`` does) and
estimates each window with the model's logged decisions. Then, for each
scenario, windows are drawn and the estimate (from the scores alone) is compared
with the realized metric (from the labels):

- quiet: the reference's distribution;
- shift that hurts: the inputs move toward the decision boundary, where the
  model is least sure;
- shift that helps: the inputs move away from it;
- concept drift: the same inputs, a new relationship to the label.

The same four scenarios for a three-class classifier that decides by a weighted
argmax (``--only multiclass``; keel only), and for a regressor (keel's
``LossEstimator`` against NannyML's DLE): y = 3x + noise whose spread grows with |x|,
the model predicts 3x; the shift that hurts moves x outward, the one that helps
inward, and the concept drift makes y = 2x + noise.

Printed per scenario and metric: the mean realized and estimated values, the
mean absolute error of the estimate, how often the band covers the realized
value (95% bands; among all windows, and among the windows keel reports
reliable), and how often the reliability flag fired. With NannyML, the paired
difference of the absolute errors (keel − NannyML, per window) with its
standard error. Where NannyML is
installed in its side environment (``benchmarks/peers/README.md``; or
``--nannyml PYTHON``), its CBPE estimates the same windows from the same
holdout (``benchmarks/peers/run_nannyml_estimation.py``), and its DLE the
regressor's, and each gets the same columns. NannyML runs as a separate process over
Parquet files, so its environment needs NannyML, statsmodels, pyarrow and pandas<3, not
keel. ``--seed`` draws another holdout, model and windows; ``--score-only`` estimates
the classifier's windows without the local correction; ``--dump`` writes every window's
realized value and both tools' estimates.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from keel.estimation import fit_holdout

THRESHOLD = 0.65


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


@dataclass
class Case:
    """One kind of model in the study: what NannyML fits on, how a window is drawn (the
    rows both tools see, and the realized metrics), and keel's estimate of a window."""

    title: str
    peer: str  # NannyML's estimator: cbpe or dle
    reference: pd.DataFrame
    draw: Callable[[np.random.Generator, int, str, float], tuple[pd.DataFrame, dict]]
    estimate: Callable[[pd.DataFrame], tuple[dict, bool]]  # metrics, unreliable


def classifier(rng: np.random.Generator, local: bool = True) -> Case:
    train = rng.normal(size=(20_000, 2))
    model = LogisticRegression().fit(train, rng.random(20_000) < truth(train))
    x = rng.normal(size=(20_000, 2))
    scores = model.predict_proba(x)[:, 1]
    labels = rng.random(20_000) < truth(x)
    reference = pd.DataFrame(
        {
            "x1": x[:, 0],
            "x2": x[:, 1],
            "score": scores,
            "prediction": (scores >= THRESHOLD).astype(int),
            "label": labels.astype(int),
        }
    )
    fit = fit_holdout(
        reference, "binary", "label", score="score", prediction="prediction",
        features=["x1", "x2"],
    )  # fmt: skip

    def draw(rng, rows, scenario, strength):
        x = inputs(rng, rows, scenario, strength)
        labels = rng.random(rows) < truth(x, concept=scenario == "concept drift")
        scores = model.predict_proba(x)[:, 1]
        decided = scores >= THRESHOLD
        frame = pd.DataFrame(
            {"x1": x[:, 0], "x2": x[:, 1], "score": scores, "prediction": decided.astype(int)}
        )
        return frame, {
            "accuracy": accuracy_score(labels, decided),
            "roc_auc": roc_auc_score(labels, scores),
        }

    def estimate(frame):
        found = fit.estimator.estimate(
            frame["score"].to_numpy(),
            decisions=frame["prediction"],
            # as a monitor's estimated_results does (--score-only: calibration alone)
            local=fit.local_correction(frame) if local else None,
        )
        return found, not fit.support.reliability(frame[fit.support.columns])["reliable"]

    title = (
        f"classifier (confidence-based; threshold {THRESHOLD}, learned {fit.rule['threshold']:.3f}"
        f" reproducing {fit.rule['share']:.1%}; calibration: {fit.estimator.calibration}"
        + ("" if local else "; score only, no local correction")
        + ")"
    )
    return Case(title, "cbpe", reference.drop(columns=["x1", "x2"]), draw, estimate)


CLASSES = [0, 1, 2]
WEIGHTS = np.array([1.0, 1.0, 1.6])  # the model decides class 2 more readily than argmax


def class_truth(x: np.ndarray, concept: bool = False) -> np.ndarray:
    """P(class | x), three classes: class 1's logit has an interaction the model lacks;
    the concept drift turns class 1's dependence on x₂ and the interaction around."""
    a, b = x[:, 0], x[:, 1]
    sign = -1.0 if concept else 1.0
    one = 1.2 * a - sign * 0.5 * b + sign * 0.6 * a * b
    logits = np.column_stack([np.zeros(len(x)), one, 1.0 * b - 0.8 * a])
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def multiclass(rng: np.random.Generator) -> Case:
    """Three classes decided by a weighted argmax (not argmax), keel only: the NannyML
    script runs binary CBPE and DLE."""

    def labels_of(p):
        return (rng.random((len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1)

    train = rng.normal(size=(20_000, 2))
    model = LogisticRegression().fit(train, labels_of(class_truth(train)))

    def rows_of(x):
        scores = model.predict_proba(x)
        frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1]})
        for c in CLASSES:
            frame[f"score_{c}"] = scores[:, c]
        frame["prediction"] = (scores * WEIGHTS).argmax(axis=1)
        return frame, scores

    x = rng.normal(size=(20_000, 2))
    reference, _ = rows_of(x)
    reference["label"] = labels_of(class_truth(x))
    fit = fit_holdout(
        reference, "multiclass", "label", score="score", prediction="prediction",
        classes=CLASSES, features=["x1", "x2"],
    )  # fmt: skip
    columns = [f"score_{c}" for c in CLASSES]

    def draw(rng, rows, scenario, strength):
        x = inputs(rng, rows, scenario, strength)
        frame, scores = rows_of(x)
        p = class_truth(x, concept=scenario == "concept drift")
        labels = (rng.random((rows, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
        return frame, {
            "accuracy": accuracy_score(labels, frame["prediction"]),
            "roc_auc": roc_auc_score(labels, scores, multi_class="ovr", average="macro"),
        }

    def estimate(frame):
        found = fit.estimator.estimate(
            frame[columns].to_numpy(),
            decisions=frame["prediction"].to_numpy(),
            local=fit.local_correction(frame),
        )
        return found, not fit.support.reliability(frame[fit.support.columns])["reliable"]

    share = fit.estimator.rule["share"]
    title = (
        f"multiclass (3 classes, weighted argmax; argmax reproduces {share:.1%} of the"
        f" holdout's decisions; calibration: {fit.estimator.calibration}; 20,000 holdout rows)"
    )
    return Case(title, "", reference, draw, estimate)


def regression_window(rng, rows: int, scenario: str, strength: float) -> pd.DataFrame:
    x = rng.normal(size=rows)
    if scenario == "shift that hurts":
        x = x * (1 + 0.8 * strength)
    if scenario == "shift that helps":
        x = x * (1 - 0.6 * strength)
    slope = 2.0 if scenario == "concept drift" else 3.0
    y = slope * x + rng.normal(0, 0.2 + np.abs(x))
    return pd.DataFrame({"x": x, "prediction": 3 * x, "y": y})


def regressor(rng: np.random.Generator) -> Case:
    holdout = regression_window(rng, 20_000, "quiet", 0.0)
    fit = fit_holdout(holdout, "regression", "y", prediction="prediction", features=["x"])

    def draw(rng, rows, scenario, strength):
        frame = regression_window(rng, rows, scenario, strength)
        error = frame["prediction"] - frame["y"]
        realized = {"mae": error.abs().mean(), "rmse": np.sqrt((error**2).mean())}
        return frame[["x", "prediction"]], realized

    def estimate(frame):
        unreliable = not fit.support.reliability(frame)["reliable"]
        return fit.estimator.estimate(frame, "prediction"), unreliable

    return Case("regressor (loss models, 20,000 holdout rows)", "dle", holdout, draw, estimate)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--nannyml", type=Path, default=NANNYML)
    parser.add_argument("--only", choices=("classifier", "regressor", "multiclass"), default=None)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--dump", type=Path, default=None, help="every window's row, as CSV")
    parser.add_argument(
        "--seed", type=int, default=0, help="another holdout, model and windows (0: the tables')"
    )
    parser.add_argument("--score-only", action="store_true", help="classifier: no local correction")
    args = parser.parse_args()
    for stream, make in enumerate((classifier, regressor, multiclass)):
        # Each model draws from its own seeded stream, so each runs alone the same.
        own = np.random.default_rng([args.seed, stream])
        if args.only is None or make.__name__ == args.only:
            case = classifier(own, not args.score_only) if make is classifier else make(own)
            study(case, args, own)


def study(case: Case, args: argparse.Namespace, rng: np.random.Generator) -> None:
    """Every scenario's windows through keel (and NannyML, where installed); one table."""
    rows, windows = [], []
    started = time.perf_counter()
    for scenario in args.scenarios:
        for index in range(args.windows):
            frame, realized = case.draw(rng, args.rows, scenario, (index + 1) / args.windows)
            key = f"{scenario}/{index:03d}"
            windows.append(frame.assign(window=key))
            estimate, unreliable = case.estimate(frame)
            for name, value in realized.items():
                m = estimate[name]
                rows.append((scenario, name, key, value, m.value, m.lower, m.upper, unreliable))
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
    peer = _nannyml(args.nannyml, case.peer, case.reference, windows) if case.peer else None
    if args.dump is not None:
        dumped = found
        if peer is not None:  # NannyML's estimate of each row's window and metric beside keel's
            pairs = list(zip(found["window"], found["metric"], strict=True))
            dumped = found.assign(
                **{
                    f"nannyml{suffix}": [peer[w][n][field] for w, n in pairs]
                    for suffix, field in (("", "value"), ("_lower", "lower"), ("_upper", "upper"))
                }
            )
        dumped.to_csv(args.dump.with_suffix(f".{case.peer or 'multiclass'}.csv"), index=False)
    print(case.title)
    _table(found, peer)
    print(
        f"({args.windows} windows of {args.rows:,} rows per scenario; keel {elapsed:.1f} s"
        + (
            ""
            if peer is not None
            else "; no NannyML run for this model"
            if not case.peer
            else f"; NannyML not found at {args.nannyml}"
        )
        + ")"
    )


def _table(found: pd.DataFrame, peer: dict | None) -> None:
    header = (
        f"{'scenario':<18} {'metric':<9} {'realized':>8} {'keel':>6} {'MAE':>6} "
        f"{'covered':>8} {'reliable':>9} {'unreliable':>10}"
    )
    if peer is not None:
        header += f" {'NannyML':>8} {'MAE':>6} {'covered':>8} {'keel-NannyML':>14}"
    print(header)
    for (scenario, name), part in found.groupby(["scenario", "metric"], sort=False):
        real = part["realized"].to_numpy()
        covered = ((part["keel_lower"] <= real) & (real <= part["keel_upper"])).to_numpy()
        reliable = ~part["unreliable"].to_numpy(bool)
        error = np.abs(real - part["keel"].to_numpy())
        line = (
            f"{scenario:<18} {name:<9} {real.mean():8.3f} {part['keel'].mean():6.3f} "
            f"{error.mean():6.3f} {covered.mean():8.0%} "
            f"{covered[reliable].mean() if reliable.any() else float('nan'):9.0%} "
            f"{part['unreliable'].mean():10.0%}"
        )
        if peer is not None:
            theirs, low, high = (
                np.array([peer[w][name][field] for w in part["window"]])
                for field in ("value", "lower", "upper")
            )
            paired = error - np.abs(real - theirs)
            line += (
                f" {theirs.mean():8.3f} {np.abs(real - theirs).mean():6.3f} "
                f"{((low <= real) & (real <= high)).mean():8.0%} "
                f"{paired.mean():+7.4f}±{paired.std(ddof=1) / np.sqrt(len(paired)):.4f}"
            )
        print(line)


def _nannyml(python: Path, kind: str, reference: pd.DataFrame, windows) -> dict | None:
    """NannyML's estimate of the same windows from the same reference, in its own
    environment (``benchmarks/peers/run_nannyml_estimation.py``)."""
    if not python.exists():
        return None
    folder = Path(tempfile.mkdtemp(prefix="keel-study-"))
    reference.to_parquet(folder / "reference.parquet")
    pd.concat(windows).to_parquet(folder / "windows.parquet")
    script = Path(__file__).parent / "peers" / "run_nannyml_estimation.py"
    started = time.perf_counter()
    subprocess.run(
        [
            str(python),
            str(script),
            kind,
            str(folder / "reference.parquet"),
            str(folder / "windows.parquet"),
            str(folder / "out.json"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,  # LightGBM (inside DLE) talks on stdout
    )
    print(f"NannyML {kind.upper()}: {time.perf_counter() - started:.1f} s (a separate process)")
    return json.loads((folder / "out.json").read_text())["windows"]


if __name__ == "__main__":
    main()
