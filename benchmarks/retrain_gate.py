"""The promotion gate's error rates and power, measured (docs/retraining.md, "Measured").

    nice -n 10 python benchmarks/retrain_gate.py            # the whole table (a few minutes)
    nice -n 10 python benchmarks/retrain_gate.py --quick    # 10x fewer replications

Scenarios, each at α = 0.05 and margins of 1 point, n = 5,000 paired labels:

(a) equal models;
(b) the boundary null: the challenger 2 points better on the primary, but exactly
    ``margin`` worse on one guarded metric (recall, on the positives) or in one segment;
(c) a challenger 2 points better, 20% discordant share (ROC AUC: 0.80 vs 0.82), no
    segments.

Goals: (a) and (b) promote at most α + 1 point; (c) promotes in at least 80%.

Accuracy, fixed horizon: 2,000 replications, vectorised across replications (Tango and
McNemar need only each replication's discordant counts, drawn from the multinomial);
200 of them are replayed through ``evaluate_gate`` on per-request arrays and must agree.
ROC AUC: 500 replications through ``evaluate_gate`` with the paired bootstrap, and
2,000 with DeLong on the same scenarios (to tell the bootstrap's error from the design's).
Sequential: 2,000 replications of per-request differences in arrival order, a look at
every window of 250 requests, stop at the first look where every condition holds;
50 replications are replayed through ``evaluate_gate`` at every look and must agree.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np
from scipy.special import ndtri

from keel.retrain import paired
from keel.retrain.gate import GateConfig, Outcomes, evaluate_gate
from keel.seeds import derive_seed

ALPHA, MARGIN, N, WINDOW = 0.05, 0.01, 5000, 250
#: The boundary null: Δ = −margin in half the requests, +5 points in the other half, so
#: +2 points overall. (p10, p01) for each half, discordant share 0.2.
BAD_HALF, GOOD_HALF = (0.095, 0.105), (0.125, 0.075)
EQUAL, BETTER = (0.10, 0.10), (0.11, 0.09)


def _counts(rng, reps: int, n: int, cells: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    draws = rng.multinomial(n, [cells[0], cells[1], 1 - sum(cells)], size=reps)
    return draws[:, 0], draws[:, 1]


# --- accuracy, fixed horizon ----------------------------------------------------------------


def _fixed_promotes(parts: list[tuple[np.ndarray, np.ndarray, int]], overall) -> np.ndarray:
    """The gate's rule on counts: McNemar superiority overall, every part above −margin."""
    n10, n01, n = overall
    promote = paired.mcnemar_mid_p(n10, n01) < ALPHA
    promote &= paired.tango_lower(n10, n01, n, ALPHA) > -MARGIN
    for a, b, size in parts:
        promote &= paired.tango_lower(a, b, size, ALPHA) > -MARGIN
    return promote


def accuracy_fixed(reps: int, rng) -> dict[str, float]:
    out = {}
    for name, cells in (("a", EQUAL), ("c", BETTER)):
        n10, n01 = _counts(rng, reps, N, cells)
        out[name] = _fixed_promotes([], (n10, n01, N)).mean()
    # (b) guarded recall: positives (half) exactly margin worse, negatives 5 points better;
    # specificity is guarded too. (b) segment: the same numbers, the halves are segments.
    bad = _counts(rng, reps, N // 2, BAD_HALF)
    good = _counts(rng, reps, N // 2, GOOD_HALF)
    overall = (bad[0] + good[0], bad[1] + good[1], N)
    out["b"] = _fixed_promotes([(*bad, N // 2), (*good, N // 2)], overall).mean()
    return out


def _requests(rng, n: int, cells, positive: np.ndarray) -> tuple[np.ndarray, ...]:
    """Labels and two classifiers' predictions with the given discordant cells."""
    u = rng.random(n)
    both_right = rng.random(n) < 0.7
    champion_right = ((u >= cells[0]) & (u < sum(cells))) | ((u >= sum(cells)) & both_right)
    challenger_right = (u < cells[0]) | ((u >= sum(cells)) & both_right)
    y = positive.astype(int)
    return y, np.where(champion_right, y, 1 - y), np.where(challenger_right, y, 1 - y)


def accuracy_gate_agrees(reps: int, rng) -> int:
    """Replay scenario (b) through evaluate_gate (guarded metric and segment) and count
    the replications whose decision equals the counts-based rule."""
    agree = 0
    half = np.r_[np.ones(N // 2, bool), np.zeros(N // 2, bool)]
    for _ in range(reps):
        y1, a1, b1 = _requests(rng, N // 2, BAD_HALF, np.ones(N // 2, bool))
        y2, a2, b2 = _requests(rng, N // 2, GOOD_HALF, np.zeros(N // 2, bool))
        y, a, b = np.r_[y1, y2], np.r_[a1, a2], np.r_[b1, b2]
        config = GateConfig(
            margins={"accuracy": MARGIN, "recall": MARGIN, "specificity": MARGIN},
            horizon=N,
            min_segment_labels=1000,
        )
        report = evaluate_gate(Outcomes(predictions=a), Outcomes(predictions=b), y, config)
        part = [
            ((b[r] == y[r]) & (a[r] != y[r]), (a[r] == y[r]) & (b[r] != y[r]))
            for r in (half, ~half)
        ]
        counts = [(p.sum(), q.sum(), N // 2) for p, q in part]
        overall = (counts[0][0] + counts[1][0], counts[0][1] + counts[1][1], N)
        agree += bool(np.asarray(_fixed_promotes(counts, overall))) == (report.status == "promote")
    return agree


# --- ROC AUC, paired bootstrap ------------------------------------------------------------------


def _auc_scores(rng, n: int, auc_a: float, auc_b: float, correlation: float = 0.7):
    """Binormal scores: positives shifted by √2·Φ⁻¹(AUC), errors correlated between models."""
    y = rng.random(n) < 0.5
    shared = rng.normal(size=n)
    scores = []
    for auc in (auc_a, auc_b):
        noise = np.sqrt(correlation) * shared + np.sqrt(1 - correlation) * rng.normal(size=n)
        scores.append(np.sqrt(2) * ndtri(auc) * y + noise)
    return y, scores[0], scores[1]


def auc_gate(reps: int, resamples: int, rng, method: str = "bootstrap") -> dict[str, float]:
    config = GateConfig(
        primary="roc_auc",
        margins={"roc_auc": MARGIN},
        horizon=N,
        methods={"roc_auc": method},
        resamples=resamples,
        min_segment_labels=1000,
    )
    out = {"a": 0, "b": 0, "c": 0}
    for rep in range(reps):
        for name, (auc_a, auc_b) in (("a", (0.80, 0.80)), ("c", (0.80, 0.82))):
            y, a, b = _auc_scores(rng, N, auc_a, auc_b)
            seeded = replace(config, seed_parts=("bench", name, str(rep)))
            report = evaluate_gate(Outcomes(scores=a), Outcomes(scores=b), y, seeded)
            out[name] += report.status == "promote"
        # (b): segment "bad" exactly a margin worse (0.80 vs 0.79), "good" 0.80 vs 0.85.
        y1, a1, b1 = _auc_scores(rng, N // 2, 0.80, 0.79)
        y2, a2, b2 = _auc_scores(rng, N // 2, 0.80, 0.85)
        segments = np.r_[["bad"] * (N // 2), ["good"] * (N // 2)]
        seeded = replace(config, seed_parts=("bench", "b", str(rep)))
        report = evaluate_gate(
            Outcomes(scores=np.r_[a1, a2]),
            Outcomes(scores=np.r_[b1, b2]),
            np.r_[y1, y2],
            seeded,
            segments=segments,
        )
        out["b"] += report.status == "promote"
    return {k: v / reps for k, v in out.items()}


# --- sequential ----------------------------------------------------------------------------


def _stream(rng, reps: int, n: int, cells) -> np.ndarray:
    u = rng.random((reps, n))
    return (u < cells[0]).astype(float) - ((u >= cells[0]) & (u < sum(cells)))


def _first_promotion(conditions: list[tuple[np.ndarray, float, np.ndarray]], looks: int):
    """conditions: (lower bounds at each look, threshold). Returns the look index of the
    first look where all hold, or -1."""
    ok = np.ones_like(conditions[0][0], dtype=bool)
    for bounds, threshold in conditions:
        ok &= bounds > threshold
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), -1)
    return first


def _at_looks(d: np.ndarray, v_min: float, per_look: int) -> np.ndarray:
    bounds = paired.confidence_sequence_lower(d, ALPHA, -1.0, 1.0, v_min)
    return bounds[:, per_look - 1 :: per_look]


def sequential(reps: int, rng, n: int = N, v_min: float = N * 0.2) -> dict[str, float]:
    looks = n // WINDOW
    out = {}
    for name, cells in (("a", EQUAL), ("c", BETTER)):
        d = _stream(rng, reps, n, cells)
        lower = _at_looks(d, v_min, WINDOW)
        first = _first_promotion([(lower, 0.0), (lower, -MARGIN)], looks)
        out[name] = np.mean(first >= 0)
        if name == "c":
            out["c_median_n"] = (
                float(np.median((first[first >= 0] + 1) * WINDOW))
                if (first >= 0).any()
                else float("nan")
            )
    # (b): requests alternate between the bad half (positives, or segment "bad") and the
    # good half; every look sees WINDOW/2 of each.
    bad, good = _stream(rng, reps, n // 2, BAD_HALF), _stream(rng, reps, n // 2, GOOD_HALF)
    d = np.empty((reps, n))
    d[:, 0::2], d[:, 1::2] = bad, good
    overall = _at_looks(d, v_min, WINDOW)
    first = _first_promotion(
        [
            (overall, 0.0),
            (overall, -MARGIN),
            (_at_looks(bad, v_min, WINDOW // 2), -MARGIN),
            (_at_looks(good, v_min, WINDOW // 2), -MARGIN),
        ],
        looks,
    )
    out["b"] = np.mean(first >= 0)
    return out


def sequential_gate_agrees(reps: int, rng) -> int:
    """Replay scenario (c) through evaluate_gate at every look; count agreeing replications."""
    agree = 0
    config = GateConfig(
        margins={"accuracy": MARGIN}, horizon=N, sequential=True, sequence_v_min=N * 0.2
    )
    for _ in range(reps):
        d = _stream(rng, 1, N, BETTER)[0]
        a = (d == -1).astype(int)  # champion right exactly where it alone is right...
        b = (d == 1).astype(int)  # ...the challenger where it alone is; y = 1, both wrong else
        y = np.ones(N, int)
        lower = _at_looks(d[None], N * 0.2, WINDOW)
        expected = _first_promotion([(lower, 0.0), (lower, -MARGIN)], N // WINDOW)[0]
        seen = -1
        for look in range(N // WINDOW):
            rows = slice(0, (look + 1) * WINDOW)
            report = evaluate_gate(
                Outcomes(predictions=a[rows]), Outcomes(predictions=b[rows]), y[rows], config
            )
            if report.status == "promote":
                seen = look
                break
        agree += seen == expected
    return agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer replications")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    reps, auc_reps, resamples = 2000 // scale, 500 // scale, 1000
    rng = np.random.default_rng(derive_seed("benchmark", "retrain_gate"))
    started = time.perf_counter()

    fixed = accuracy_fixed(reps, rng)
    agree_fixed = accuracy_gate_agrees(200 // scale, rng)
    seq = sequential(reps, rng)
    seq_longer = {n: sequential(reps, rng, n=n, v_min=n * 0.2)["c"] for n in (10_000, 15_000)}
    agree_seq = sequential_gate_agrees(50 // scale, rng)
    auc = auc_gate(auc_reps, resamples, rng)
    # DeLong on the same scenarios, 2,000 replications (its own stream, so the rows above
    # do not move when this one is added).
    delong_rng = np.random.default_rng(derive_seed("benchmark", "delong"))
    delong = auc_gate(reps, 0, delong_rng, "delong")

    goal = {"a": f"<= {ALPHA + 0.01:.0%}", "b": f"<= {ALPHA + 0.01:.0%}", "c": ">= 80%"}
    met = {
        "a": lambda x: x <= ALPHA + 0.01,
        "b": lambda x: x <= ALPHA + 0.01,
        "c": lambda x: x >= 0.8,
    }
    rows = [
        ("accuracy, fixed horizon (Tango, McNemar mid-p)", reps, fixed),
        (f"ROC AUC, paired bootstrap ({resamples} resamples)", auc_reps, auc),
        ("ROC AUC, DeLong", reps, delong),
        (f"accuracy, sequential (looks every {WINDOW})", reps, seq),
    ]
    print("| gate | replications | (a) equal | (b) boundary null | (c) power |")
    print("|---|---|---|---|---|")
    for name, count, values in rows:
        cells = [
            f"{values[k]:.1%} {'ok' if met[k](values[k]) else 'MISSED'}" for k in ("a", "b", "c")
        ]
        print(f"| {name} | {count} | " + " | ".join(cells) + " |")
    print(f"| goal | | {goal['a']} | {goal['b']} | {goal['c']} |")
    print()
    print(
        f"sequential (c): median n at promotion {seq['c_median_n']:.0f}; power with the "
        f"looks continued to n = 10,000: {seq_longer[10_000]:.1%}, "
        f"15,000: {seq_longer[15_000]:.1%}"
    )
    print(
        f"evaluate_gate agrees with the vectorised rule: fixed {agree_fixed}/{200 // scale}, "
        f"sequential {agree_seq}/{50 // scale}"
    )
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0 if agree_fixed == 200 // scale and agree_seq == 50 // scale else 1


if __name__ == "__main__":
    sys.exit(main())
