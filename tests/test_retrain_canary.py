"""The canary, unpaired (keel.retrain.canary): Newcombe's interval against an independent
implementation, the gate's error rates by simulation, and ``compare`` on a gateway-format
log whose labels depend on the decision (a declined application has no outcome), against
a SQLite store and the embedded registry (tests/test_retrain_promotion.py's world)."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm
from tests.test_retrain_promotion import START, world  # noqa: F401

from keel.monitor.config import parse_config
from keel.retrain.canary import Arm, Guards, canary_horizon, evaluate_canary, read_canary_arms
from keel.retrain.gate import GateConfig
from keel.retrain.paired import newcombe_lower
from keel.retrain.promotion import compare
from keel.retrain.watch import challenger_results, store_challenger_results
from keel.store.logs import LogWriter

SPAN = timedelta(days=3)


def _wilson_lower_by_inversion(x, n, z):
    """The Wilson lower bound as the root of the score test (p̂ − p)² = z² p(1 − p)/n."""
    p_hat = x / n
    if x == 0:
        return 0.0
    return brentq(lambda p: (p_hat - p) - z * np.sqrt(p * (1 - p) / n), 1e-12, p_hat * (1 - 1e-13))


def _newcombe_by_hand(xb, nb, xa, na, alpha):
    """Newcombe (1998) method 10, from score-inverted Wilson limits."""
    z = norm.ppf(1 - alpha)
    pb, pa = xb / nb, xa / na
    lb = _wilson_lower_by_inversion(xb, nb, z)
    ua = 1 - _wilson_lower_by_inversion(na - xa, na, z)  # the upper limit, by symmetry
    return pb - pa - np.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)


@pytest.mark.parametrize(
    "xb, nb, xa, na",
    [
        (56, 70, 48, 80),
        (9, 10, 3, 10),
        (6, 7, 2, 7),
        (5, 56, 0, 29),
        (0, 10, 0, 20),
        (700, 1000, 690, 1000),
    ],
)
def test_newcombe_agrees_with_an_independent_implementation(xb, nb, xa, na):
    for alpha in (0.025, 0.05):
        assert newcombe_lower(xb, nb, xa, na, alpha) == pytest.approx(
            _newcombe_by_hand(xb, nb, xa, na, alpha), abs=1e-9
        )
    # Newcombe's Table II, examples (a) and (d): 95% two-sided lower limits.
    assert round(newcombe_lower(56, 70, 48, 80, 0.025), 4) == 0.0524
    assert round(newcombe_lower(5, 56, 0, 29, 0.025), 4) == -0.0381


def _arm(rng, n, accuracy):
    y = rng.random(n) < 0.5
    return Arm(
        predictions=np.where(rng.random(n) < accuracy, y, ~y).astype(int), labels=y.astype(int)
    )


def test_the_unpaired_gate_holds_its_level_and_has_power():
    config = GateConfig(primary="accuracy", margins={"accuracy": 0.01}, horizon=4000)
    rng = np.random.default_rng(20)
    reps = 400
    equal = np.mean(
        [
            evaluate_canary(_arm(rng, 4000, 0.8), _arm(rng, 4000, 0.8), config).status == "promote"
            for _ in range(reps)
        ]
    )
    better = np.mean(
        [
            evaluate_canary(_arm(rng, 4000, 0.8), _arm(rng, 4000, 0.83), config).status == "promote"
            for _ in range(reps)
        ]
    )
    # 400 replications: the standard error at 5% is 1.1 points.
    assert equal <= 0.05 + 0.025, equal
    assert better >= 0.80, better  # about 0.87 at a 3-point lift, n = 4,000 per arm


def test_the_horizon_is_fixed_from_the_policy_alone():
    from keel.retrain.policy import RetrainPolicy

    policy = RetrainPolicy.model_validate(
        {"min_effect": 0.03, "margins": {"accuracy": 0.01, "recall": 0.02}}
    )
    n, said = canary_horizon(policy)
    z = norm.ppf(0.95) + norm.ppf(0.8)
    assert n == max(
        int(np.ceil((z * 0.5**0.5 / 0.03) ** 2)), int(np.ceil((z * 0.5**0.5 / 0.02) ** 2))
    )
    assert "recall" in said
    log_loss = RetrainPolicy.model_validate(
        {"primary_metric": "log_loss", "margins": {"log_loss": 0.01}, "min_matured_labels": 700}
    )
    assert canary_horizon(log_loss)[0] == 700


def test_other_metrics_are_unpaired_too():
    rng = np.random.default_rng(5)
    n = 3000
    y = (rng.random(2 * n) < 0.4).astype(int)
    scores = np.clip(y * 0.3 + rng.normal(0.35, 0.2, 2 * n), 0.01, 0.99)
    sharper = np.clip(y * 0.5 + rng.normal(0.25, 0.2, 2 * n), 0.01, 0.99)
    a = Arm(predictions=(scores[:n] > 0.5).astype(int), scores=scores[:n], labels=y[:n])
    b = Arm(predictions=(sharper[n:] > 0.5).astype(int), scores=sharper[n:], labels=y[n:])
    margins = {"roc_auc": 0.01, "log_loss": 0.01, "precision": 0.05, "f1": 0.05}
    config = GateConfig(primary="roc_auc", margins=margins, horizon=n, resamples=300)
    report = evaluate_canary(a, b, config)
    methods = {c.metric: c.method for c in report.conditions}
    assert methods["roc_auc"] == "bootstrap (unpaired)" and methods["log_loss"] == "welch"
    assert report.status == "promote", report.reason
    assert all(c.lower < c.estimate for c in report.conditions)


def test_latency_and_error_guards():
    rng = np.random.default_rng(2)
    config = GateConfig(primary="accuracy", margins={"accuracy": 0.01}, horizon=3000)
    a, b = _arm(rng, 3000, 0.80), _arm(rng, 3000, 0.88)
    fast = np.full(3000, 4.0)

    def with_(arm, latency, errors):
        return Arm(arm.predictions, labels=arm.labels, latency_ms=latency, errors=errors)

    none = np.zeros(3000, bool)
    ok = evaluate_canary(with_(a, fast, none), with_(b, fast * 1.1, none), config)
    assert ok.status == "promote", ok.reason
    slow = evaluate_canary(with_(a, fast, none), with_(b, fast * 3, none), config)
    assert slow.status == "keep_champion" and "latency_p99_ms" in slow.reason
    capped = evaluate_canary(
        with_(a, fast, none), with_(b, fast * 1.1, none), config, Guards(max_latency_p99_ms=4.2)
    )
    assert capped.status == "keep_champion" and "limit 4.2 ms" in capped.reason
    failing = none.copy()
    failing[:150] = True  # 5% of the canary's rows logged without a prediction
    erring = evaluate_canary(with_(a, fast, none), with_(b, fast, failing), config)
    assert erring.status == "keep_champion" and "error_rate" in erring.reason


def _write_canary_logs(root, *, n=6000, lift=0.08, canary_share=0.5, canary_version="2", slow=1.0):
    """A champion (v1) and a canary arm (v2) of one gateway log; a label only where the
    arm's decision approved (prediction 0: no default predicted), as with declined loans."""
    rng = np.random.default_rng(11)
    y = (rng.random(n) < 0.3).astype(int)
    canary = rng.random(n) < canary_share
    accuracy = np.where(canary, 0.78 + lift, 0.78)
    prediction = np.where(rng.random(n) < accuracy, y, 1 - y)
    times = [START + SPAN * (i / n) for i in range(n)]
    with LogWriter(root, "predictions", model="loans") as writer:
        writer.append(
            [
                {
                    "request_id": f"r{i:05d}",
                    "event_time": times[i],
                    "model_name": "loans",
                    "model_version": canary_version if canary[i] else "1",
                    "role": "canary" if canary[i] else "champion",
                    "route": "new" if canary[i] else "champion",
                    "region": "north" if i % 2 else "south",
                    "prediction": int(prediction[i]),
                    "score": 0.2 + 0.6 * float(prediction[i]),
                    "latency_ms": float(4.0 * (slow if canary[i] else 1.0) + rng.random()),
                    "record_format": "keel.serve/1",
                }
                for i in range(n)
            ]
        )
    approved = prediction == 0
    with LogWriter(root, "labels", model="loans") as writer:
        writer.append(
            [
                {
                    "request_id": f"r{i:05d}",
                    "event_time": times[i] + timedelta(days=1),
                    "label": int(y[i]),
                }
                for i in np.flatnonzero(approved)
            ]
        )
    return y, prediction, canary, approved


def _canary_monitor(folder, extra=""):
    text = f"""
    monitors:
      - name: loans-monitor
        model: loans
        baseline: {folder / "b.keel"}
        logs: {folder / "logs"}
        window: 1D
        retrain:
          labels_depend_on_decision: true
          min_effect: 0.06
          margins: {{accuracy: 0.02}}{extra}
    """
    return parse_config(textwrap.dedent(text), "keel.yaml")[0]


def test_arms_from_the_log_are_the_canary_version_and_the_champion(world):  # noqa: F811
    folder, store, registry = world
    y, prediction, canary, approved = _write_canary_logs(folder / "logs")
    arms = read_canary_arms(folder / "logs", "loans", 2, as_of=START + timedelta(days=30))
    assert arms.routes == ("new",)
    assert arms.canary.n == int((canary & approved).sum())
    assert arms.champion.n == int((~canary & approved).sum())
    assert arms.logged["canary_rows"] == int(canary.sum())
    assert np.array_equal(np.sort(arms.canary.labels), np.sort(y[canary & approved]))
    assert read_canary_arms(folder / "logs", "loans", 7, as_of=START + timedelta(days=30)) is None


def test_compare_uses_the_canary_arm_when_labels_depend_on_the_decision(world):  # noqa: F811
    folder, store, registry = world
    _write_canary_logs(folder / "logs")
    monitor = _canary_monitor(folder)
    run = compare(monitor, store, registry=registry, as_of=START + timedelta(days=30))
    assert run.counts["comparison"] == "canary"
    assert run.status == "pending", run.reason
    superiority = run.gate["conditions"][0]
    assert superiority["method"] == "newcombe" and superiority["lower"] > 0
    assert {c["metric"] for c in run.gate["conditions"]} >= {"latency_p99_ms", "error_rate"}
    # Too early: the labels have not matured.
    early = compare(monitor, store, registry=registry, as_of=START + timedelta(days=1))
    assert early.status == "insufficient_data" and "per arm" in early.reason
    # The per-window Results carry the guards too.
    rows = challenger_results(
        monitor,
        store,
        START,
        START + timedelta(days=3),
        START + timedelta(days=30),
        registry=registry,
    )
    metrics = {r.metric for r in rows}
    assert {"accuracy", "latency_p99_ms", "error_rate", "paired_labels"} <= metrics
    assert all(r.details["comparison"] == "canary" for r in rows)
    # And for every closed window from the canary's first answer (labels matured by then).
    written = store_challenger_results(monitor, store, START + timedelta(days=4), registry=registry)
    assert len({r.window_start for r in written}) == 4
    counts = sorted(
        (r.window_start, r.value, r.status) for r in written if r.metric == "paired_labels"
    )
    assert [n for _, n, _ in counts] == sorted(n for _, n, _ in counts)  # running: never falls
    assert counts[-1][2] == "ok" and counts[-1][1] >= run.horizon
    assert len(store.latest(check="challenger", metric="latency_p99_ms")) == 4


def test_a_slow_canary_keeps_the_champion(world):  # noqa: F811
    folder, store, registry = world
    _write_canary_logs(folder / "logs", slow=3.0)
    run = compare(
        _canary_monitor(folder), store, registry=registry, as_of=START + timedelta(days=30)
    )
    assert run.status == "keep_champion" and "latency_p99_ms" in run.reason


def test_no_canary_arm_logged_is_refused_with_the_reason(world):  # noqa: F811
    folder, store, registry = world
    _write_canary_logs(folder / "logs", canary_version="9")  # another version's canary
    run = compare(
        _canary_monitor(folder), store, registry=registry, as_of=START + timedelta(days=30)
    )
    assert run.status == "refused" and "no canary answer of version 2" in run.reason
