"""From a shadowed challenger to a promotion a person approves (keel.retrain.promotion),
against real parts: a SQLite store, the embedded registry with two registered versions,
and the champion's, the shadow's and the label logs written by the log writer, in the
gateway's format (``keel.serve/1``: ``role``, ``model_version``, ``shadow_dropped``).

The logs are drawn with numpy: binary labels, a champion right on 80% of requests and a
challenger whose correctness agrees with the champion's except on about 15% of requests
(the discordant share), 3 points more accurate, or exactly as accurate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from keel.monitor.config import parse_config
from keel.registry.aliases import history, promote, verify_chain
from keel.registry.embedded import EmbeddedRegistry
from keel.retrain.promotion import (
    AUTO_ACTOR,
    PromotionRefused,
    approve,
    compare,
    get_run,
    reject,
    runs,
)
from keel.retrain.shadow_pairs import read_shadow_pairs
from keel.store import ResultStore
from keel.store.logs import LogWriter
from keel.tokens import add_token

N = 4000
START = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=3)


def _correctness(rng, n, champion_accuracy, challenger_accuracy, discordant=0.15):
    """Champion and challenger correctness with the given accuracies and discordant share:
    P(c2 | c1) = a, P(c2 | not c1) = b solve p1·a + (1 − p1)·b = p2 and
    p1·(1 − a) + (1 − p1)·b = ψ."""
    p1, p2 = champion_accuracy, challenger_accuracy
    a = (p2 + p1 - discordant) / (2 * p1)
    b = (p2 - p1 * a) / (1 - p1)
    first = rng.random(n) < p1
    second = np.where(first, rng.random(n) < a, rng.random(n) < b)
    return first, second


def _write_logs(root, *, seed=0, lift=0.03, labelled=N, dropped=0, versions=("1", "2")):
    rng = np.random.default_rng(seed)
    y = (rng.random(N) < 0.5).astype(int)
    right1, right2 = _correctness(rng, N, 0.80, 0.80 + lift)
    champion = np.where(right1, y, 1 - y)
    challenger = np.where(right2, y, 1 - y)
    ids = [f"r{i:05d}" for i in range(N)]
    times = [START + SPAN * (i / N) for i in range(N)]
    region = np.where(rng.random(N) < 0.5, "north", "south")
    drop = np.zeros(N, bool)
    drop[rng.choice(N, dropped, replace=False)] = True
    with LogWriter(root, "predictions", model="loans") as writer:
        writer.append(
            [
                {
                    "request_id": ids[i],
                    "event_time": times[i],
                    "model_name": "loans",
                    "model_version": versions[0],
                    "role": "champion",
                    "route": "champion",
                    "region": str(region[i]),
                    "customer_id": f"c{i % 800}",
                    "prediction": int(champion[i]),
                    "score": 0.2 + 0.6 * float(champion[i]),
                    "record_format": "keel.serve/1",
                }
                for i in range(N)
            ]
        )
    with LogWriter(root, "predictions", model="loans.shadow") as writer:
        writer.append(
            [
                {
                    "request_id": ids[i],
                    "event_time": times[i] + timedelta(milliseconds=5),
                    "model_name": "loans",
                    "model_version": versions[1],
                    "role": "shadow",
                    "challenger": "challenger",
                    "answered_by_version": versions[0],
                    "prediction": None if drop[i] else int(challenger[i]),
                    "score": None if drop[i] else 0.2 + 0.6 * float(challenger[i]),
                    "shadow_dropped": "queue_full" if drop[i] else None,
                    "record_format": "keel.serve/1",
                }
                for i in range(N)
            ]
        )
    with LogWriter(root, "labels", model="loans") as writer:
        writer.append(
            [
                {
                    "request_id": ids[i],
                    "event_time": times[i] + timedelta(days=1),
                    "label": int(y[i]),
                }
                for i in range(labelled)
            ]
        )
    return y, champion, challenger, drop


def _monitor(root, extra=""):
    text = f"""
    monitors:
      - name: loans-monitor
        model: loans
        baseline: {root / "b.keel"}
        logs: {root / "logs"}
        window: 1D
        segments: [{{name: region, column: region}}]
        retrain:
          min_effect: 0.03
          margins: {{accuracy: 0.02}}
          min_segment_labels: 500{extra}
    """
    return parse_config(textwrap.dedent(text), "keel.yaml")[0]


@pytest.fixture
def world(tmp_path):
    """A store, the embedded registry with loans v1 (champion) and v2 (challenger)."""
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    registry = EmbeddedRegistry(store, tmp_path / "registry")
    for _ in range(2):
        run = registry.log_run("loans", {}, {})
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        registry.register("loans", model, run, tags={"keel.baseline": "b.keel"})
    promote(registry, store, "loans", 1, "champion", "first model", "ada")
    promote(registry, store, "loans", 2, "challenger", "retrained", "keel-retrain")
    return tmp_path, store, registry


def _aliases(registry):
    return registry.aliases("loans")


def test_pairs_are_the_same_requests_and_only_the_challenger_version(tmp_path):
    y, champion, challenger, drop = _write_logs(tmp_path, dropped=40)
    with LogWriter(tmp_path, "predictions", model="loans.shadow") as writer:  # another one
        writer.append(
            [
                {
                    "request_id": "r00000",
                    "event_time": START,
                    "model_version": "7",
                    "role": "shadow",
                    "prediction": 1 - int(challenger[0]),
                }
            ]
        )
        # a request the challenger never loaded for: its drop has no version, and counts
        writer.append(
            [
                {
                    "request_id": "never",
                    "event_time": START,
                    "model_version": None,
                    "role": "shadow",
                    "prediction": None,
                    "shadow_dropped": "not_running",
                }
            ]
        )
    pairs = read_shadow_pairs(
        tmp_path, "loans", 2, as_of=START + timedelta(days=30), segment="region"
    )
    keep = ~drop
    assert pairs.n == keep.sum() == N - 40 and pairs.shadowed == N + 1 and pairs.dropped == 41
    assert pairs.reasons == {"queue_full": 40, "not_running": 1}
    assert np.array_equal(pairs.labels, y[keep])
    assert np.array_equal(pairs.champion.predictions, champion[keep])
    assert np.array_equal(pairs.challenger.predictions, challenger[keep])
    assert set(pairs.segments) == {"north", "south"} and pairs.champion_versions == ("1",)
    # labels matured as of: a label one day after its request; at START + 2 days, about
    # the first third of the requests are labelled (and none of the dropped rows pair).
    early = read_shadow_pairs(tmp_path, "loans", "2", as_of=START + timedelta(days=2))
    assert 0 < early.n < N // 2 and early.shadowed < N
    assert early.unlabelled > 0
    # a maturity of two days: fewer still
    later = read_shadow_pairs(
        tmp_path, "loans", "2", as_of=START + timedelta(days=2), maturity=timedelta(days=1, hours=1)
    )
    assert later.n == 0 and later.unlabelled > 0


def test_a_better_challenger_waits_for_approval_and_an_approval_moves_the_champion(world):
    folder, store, registry = world
    _write_logs(folder / "logs")
    monitor = _monitor(folder)
    run = compare(monitor, store, registry=registry)
    assert run.status == "pending" and run.gate_status == "promote", run.reason
    assert run.exit_code == 1 and run.counts["paired"] == N
    assert 1000 < run.horizon <= N  # planned from the first day's discordant share
    assert 0.10 < run.counts["first_day_discordant"] < 0.20
    assert _aliases(registry)["champion"] == 1  # nothing moves before a person approves
    gated = {(c["metric"], c["segment"], c["kind"]) for c in run.gate["conditions"]}
    assert ("accuracy", "north", "non-inferiority") in gated

    token = add_token(store, "bob")
    done = approve(store, run.run, token, registry=registry, reason="looked at the report")
    assert done.status == "promoted" and done.decided_by == "bob"
    assert _aliases(registry)["champion"] == 2 and _aliases(registry)["previous"] == 1

    # The audit answers who promoted what, when, and on what evidence.
    rows = store.audit_rows(model="loans")
    moved = [r for r in rows if r["alias"] == "champion" and r["event"] == "done"][-1]
    intent = next(
        r for r in rows if r["operation"] == moved["operation"] and r["event"] == "intent"
    )
    evidence = json.loads(intent["details"])["gate"]
    assert (moved["actor"], moved["version"], moved["previous_version"]) == ("bob", 2, 1)
    assert moved["at"] and run.run in moved["reason"] and "bob" in moved["reason"]
    assert evidence["status"] == "promote" and evidence["run"] == run.run
    assert evidence["n"] == N and evidence["conditions"][0]["kind"] == "superiority"
    assert verify_chain(store) == []
    last = history(registry, store, "loans", "champion")[-1]
    assert (last["version"], last["actor"], last["end"]) == (2, "bob", None)

    # Rollback is one call (keel models rollback loans --reason ...) away.
    from keel.registry.aliases import rollback

    rollback(registry, store, "loans", "champion", "back", "bob")
    assert _aliases(registry)["champion"] == 1

    # Approving again is refused: the run is decided.
    with pytest.raises(PromotionRefused, match="promoted, not pending"):
        approve(store, run.run, token, registry=registry)


def test_an_equal_challenger_keeps_the_champion(world):
    folder, store, registry = world
    _write_logs(folder / "logs", lift=0.0, seed=1)
    run = compare(_monitor(folder), store, registry=registry)
    assert run.status == "keep_champion", run.reason
    assert run.exit_code == 0 and "accuracy" in run.reason
    with pytest.raises(PromotionRefused, match="keep_champion, not pending"):
        approve(store, run.run, add_token(store, "bob"), registry=registry)
    assert _aliases(registry)["champion"] == 1


def test_repeated_entities_cluster_the_bounds(world):
    folder, store, registry = world
    _write_logs(folder / "logs")
    run = compare(_monitor(folder), store, registry=registry, entity="customer_id")
    assert run.status == "pending", run.reason
    assert all("(entities)" in c["method"] for c in run.gate["conditions"])


def test_a_sequential_gate_may_promote_before_the_horizon(world):
    folder, store, registry = world
    _write_logs(folder / "logs", lift=0.06)
    monitor = _monitor(folder, "\n          sequential: true")
    run = compare(monitor, store, registry=registry, horizon=20_000)
    assert run.status == "pending" and run.gate["sequential"], run.reason
    assert run.counts["paired"] == N < run.horizon


def test_labels_that_depend_on_the_decision_are_refused_with_the_reason(world):
    folder, store, registry = world
    _write_logs(folder / "logs")
    extra = "\n          labels_depend_on_decision: true"
    run = compare(_monitor(folder, extra), store, registry=registry)
    assert run.status == "refused" and "canary" in run.reason


def test_too_few_matured_labels_is_insufficient_data(world):
    folder, store, registry = world
    _write_logs(folder / "logs", labelled=600)
    run = compare(_monitor(folder), store, registry=registry)
    assert run.status == "insufficient_data", run.reason
    assert f"600 of {run.horizon}" in run.reason and run.exit_code == 0
    # The horizon was fixed once, from the first day: a later comparison keeps it.
    again = compare(_monitor(folder), store, registry=registry, as_of=datetime.now(UTC))
    assert again.horizon == run.horizon
    fixed = store.events()
    assert (fixed["action"] == "promotion horizon").sum() == 1


def test_before_a_first_day_of_shadow_answers_there_is_no_horizon(world):
    folder, store, registry = world
    _write_logs(folder / "logs")
    run = compare(_monitor(folder), store, registry=registry, as_of=START + timedelta(hours=12))
    assert run.status == "insufficient_data" and "first day" in run.reason
    assert run.horizon is None


def test_shadow_drops_over_the_cap_refuse_with_the_reason(world):
    folder, store, registry = world
    _write_logs(folder / "logs", dropped=200)  # 5% against max_shadow_drop_share 1%
    run = compare(_monitor(folder), store, registry=registry)
    assert run.status == "refused" and "dropped 5.00%" in run.reason
    assert run.counts["dropped"] == 200 and run.counts["paired"] == N - 200
    assert run.exit_code == 1
    assert _aliases(registry)["champion"] == 1


def test_a_wrong_or_missing_token_is_refused_and_audited(world, monkeypatch):
    folder, store, registry = world
    _write_logs(folder / "logs")
    run = compare(_monitor(folder), store, registry=registry)
    add_token(store, "bob")
    for presented in ("keel_not-the-token", None):
        with pytest.raises(PromotionRefused, match="no valid token"):
            approve(store, run.run, presented, registry=registry)
    with pytest.raises(PromotionRefused, match="no valid token"):
        reject(store, run.run, "keel_wrong", "no", registry=registry)
    monkeypatch.setenv("KEEL_ADMIN_TOKEN", "a-shared-admin-token-for-everyone")
    with pytest.raises(PromotionRefused, match="per-person token"):
        approve(store, run.run, "a-shared-admin-token-for-everyone", registry=registry)
    assert _aliases(registry)["champion"] == 1 and get_run(store, run.run).status == "pending"
    refused = [r for r in store.audit_rows(model="loans") if r["event"] == "refused"]
    assert [r["actor"] for r in refused] == ["unknown (no valid token)"] * 3 + ["shared-token"]
    assert all(run.run in r["details"] for r in refused) and verify_chain(store) == []
    assert all(r["version"] == 2 and r["previous_version"] == 1 for r in refused)
    events = store.events()
    assert (events["action"] == "promotion refused").sum() == 4


def test_a_rejection_keeps_the_champion_and_says_who_and_why(world):
    folder, store, registry = world
    _write_logs(folder / "logs")
    run = compare(_monitor(folder), store, registry=registry)
    token = add_token(store, "carol")
    with pytest.raises(PromotionRefused, match="needs a reason"):
        reject(store, run.run, token, " ", registry=registry)
    done = reject(store, run.run, token, "waiting for the quarter's close", registry=registry)
    assert (done.status, done.decided_by) == ("rejected", "carol")
    assert done.decision_reason == "waiting for the quarter's close"
    assert _aliases(registry)["champion"] == 1
    assert [r.status for r in runs(store, "loans-monitor")] == ["rejected"]


def test_approval_auto_promotes_at_once_and_is_audited_as_automatic(world):
    folder, store, registry = world
    _write_logs(folder / "logs")
    run = compare(_monitor(folder, "\n          approval: auto"), store, registry=registry)
    assert run.status == "promoted" and run.decided_by == AUTO_ACTOR
    assert _aliases(registry)["champion"] == 2
    moved = [r for r in store.audit_rows(model="loans") if r["event"] == "done"][-2]
    assert moved["alias"] == "champion" and moved["actor"] == AUTO_ACTOR
    assert "automatic" in moved["reason"]


def test_a_promotion_while_another_is_in_progress_is_refused(world):
    folder, store, registry = world
    _write_logs(folder / "logs")
    run = compare(_monitor(folder), store, registry=registry)
    token = add_token(store, "bob")
    busy = pytest.raises(PromotionRefused, match="in progress")
    with store.monitor_lock("promotion:loans"), busy:  # another promotion of loans holds it
        approve(store, run.run, token, registry=registry)
    assert _aliases(registry)["champion"] == 1

    # Two approvals at once, on threads: one promotes, the other is refused.
    outcomes, barrier = [], threading.Barrier(2)

    def attempt():
        barrier.wait()
        try:
            outcomes.append(approve(store, run.run, token, registry=registry).status)
        except PromotionRefused as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(o == "promoted" for o in outcomes) == [False, True], outcomes
    moves = [r for r in store.audit_rows(model="loans") if r["alias"] == "champion"]
    assert sum(r["event"] == "done" and r["version"] == 2 for r in moves) == 1


def test_a_newer_pending_run_supersedes_the_older(world):
    folder, store, registry = world
    _write_logs(folder / "logs")
    first = compare(_monitor(folder), store, registry=registry)
    second = compare(_monitor(folder), store, registry=registry)
    assert [r.status for r in runs(store, "loans-monitor")] == ["superseded", "pending"]
    with pytest.raises(PromotionRefused, match="superseded"):
        approve(store, first.run, add_token(store, "bob"), registry=registry)
    assert get_run(store, second.run).status == "pending"


def test_the_commands(world):
    """The CLI in a subprocess, as a person runs it: compare, status, approve."""
    folder, store, registry = world
    _write_logs(folder / "logs")
    monitor_text = f"""
    monitors:
      - name: loans-monitor
        model: loans
        baseline: {folder / "b.keel"}
        logs: {folder / "logs"}
        window: 1D
        retrain: {{min_effect: 0.03, margins: {{accuracy: 0.02}}}}
    """
    (folder / "keel.yaml").write_text(textwrap.dedent(monitor_text))
    env = {k: v for k, v in os.environ.items() if k != "KEEL_TOKEN"}
    env.update(KEEL_DATABASE_URL=f"sqlite:///{folder / 'keel.db'}", KEEL_REGISTRY="embedded")

    def keel(*arguments, **extra):
        return subprocess.run(
            [sys.executable, "-m", "keel.cli", *arguments],
            cwd=folder,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )

    compared = keel("retrain", "compare", "loans-monitor", "--json")
    assert compared.returncode == 1, compared.stderr
    run = json.loads(compared.stdout)["run"]
    status = keel("retrain", "status", "loans-monitor")
    assert status.returncode == 1 and f"{run} loans-monitor: pending" in status.stdout
    refused = keel("retrain", "approve", run, "--token", "keel_nope")
    assert refused.returncode == 2 and "no valid token" in refused.stderr
    token = add_token(store, "dana")
    done = keel("retrain", "approve", run, KEEL_TOKEN=token)
    assert done.returncode == 0, done.stderr
    assert "version 2" in done.stdout and "dana" in done.stdout
    assert _aliases(registry)["champion"] == 2
    status = keel("retrain", "status", "loans-monitor")
    assert status.returncode == 0 and "promoted by dana" in status.stdout
