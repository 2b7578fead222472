"""Aliases with history (an append-only, hash-chained audit that survives crashes and sees
moves made outside keel) and ``keel lineage``, over both registries: a real SQLite store and
a real MLflow SQLite registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from keel.registry import RegistryError
from keel.registry.aliases import OUTSIDE, at, history, promote, reconcile, rollback, verify_chain
from keel.tokens import add_token

from .common import registry_battery as battery
from .common.registry_battery import _register, make_training_repo

registry, mlflow_template = battery.registry, battery.mlflow_template  # the fixtures


def _versions(registry, count):
    for index in range(count):
        _register(registry, c=1.0 / (index + 1))


def _promote(registry, version, when, reason="why", actor="ada", alias="champion"):
    return promote(
        registry,
        registry.store,
        "loans",
        version,
        alias,
        reason,
        actor,
        require_baseline=False,
        at=when,
    )


def _day(text):
    start = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return start, start + timedelta(days=1)


def test_the_history_answers_which_version_was_champion_on_a_day(registry):
    _versions(registry, 3)
    _promote(registry, 1, "2026-03-01T09:00:00+00:00", "first model")
    _promote(registry, 2, "2026-03-05T12:00:00+00:00", "better AUC", actor="bob")
    _promote(registry, 3, "2026-03-10T08:00:00+00:00", "retrained")
    intervals = history(registry, registry.store, "loans")
    assert [(i["version"], i["actor"], i["reason"]) for i in intervals] == [
        (1, "ada", "first model"),
        (2, "bob", "better AUC"),
        (3, "ada", "retrained"),
    ]
    assert intervals[0]["end"] == "2026-03-05T12:00:00+00:00" and intervals[2]["end"] is None
    assert at(intervals, "champion", *_day("2026-03-04")) == [(1, True)]
    assert at(intervals, "champion", *_day("2026-03-05")) == [(1, True), (2, True)]
    assert at(intervals, "champion", datetime(2026, 3, 9, tzinfo=UTC)) == [(2, True)]
    assert at(intervals, "champion", *_day("2026-02-28")) == []
    assert registry.aliases("loans") == {"champion": 3}


def test_each_move_is_intent_then_done_and_rows_chain_by_hash(registry):
    _versions(registry, 2)
    _promote(registry, 1, None)
    _promote(registry, 2, None, reason="better")
    rows = registry.store.audit_rows(registry.uri, "loans")
    assert [(r["event"], r["version"], r["previous_version"]) for r in rows] == [
        ("intent", 1, None),
        ("done", 1, None),
        ("intent", 2, 1),
        ("done", 2, 1),
    ]
    assert rows[0]["operation"] == rows[1]["operation"] != rows[2]["operation"]
    assert [r["previous_hash"] for r in rows[1:]] == [r["row_hash"] for r in rows[:-1]]
    assert verify_chain(registry.store) == []
    with registry.store.engine.begin() as connection:  # someone edits the record
        connection.execute(sa.text("UPDATE keel_alias_audit SET reason = 'x' WHERE id = 4"))
    assert verify_chain(registry.store) == ["audit row 4: its content does not match its hash"]
    with registry.store.engine.begin() as connection:  # … or deletes a row
        connection.execute(sa.text("DELETE FROM keel_alias_audit WHERE id = 2"))
    assert "audit row 3: the row before it was changed or removed" in verify_chain(registry.store)


def test_a_crash_between_intent_and_done_is_repaired_on_the_next_read(registry):
    _versions(registry, 3)
    _promote(registry, 1, "2026-03-01T00:00:00+00:00")
    store = registry.store
    crashed = dict(registry=registry.uri, model="loans", alias="champion", actor="ada")
    # Crashed after the move: the intent, the registry moved, no done.
    store.append_audit(
        event="intent",
        version=2,
        previous_version=1,
        reason="moved",
        operation="op-moved",
        at="2026-03-02T00:00:00+00:00",
        **crashed,
    )
    registry.set_alias("loans", "champion", 2)
    added = reconcile(registry, store, "loans")
    assert [(r["event"], r["version"], r["operation"]) for r in added] == [("done", 2, "op-moved")]
    assert json.loads(added[0]["details"])["repaired"] is True
    # Crashed before the move: the intent only.
    store.append_audit(
        event="intent",
        version=3,
        previous_version=2,
        reason="never moved",
        operation="op-lost",
        at="2026-03-03T00:00:00+00:00",
        **crashed,
    )
    assert [r["event"] for r in reconcile(registry, store, "loans")] == ["aborted"]
    assert reconcile(registry, store, "loans") == []  # repaired once
    intervals = history(registry, store, "loans")
    assert [(i["version"], i["repaired"]) for i in intervals] == [(1, False), (2, True)]
    assert verify_chain(store) == []


def test_a_move_made_outside_keel_is_recorded_and_its_interval_is_uncertain(registry):
    _versions(registry, 3)
    _promote(registry, 1, "2026-03-01T00:00:00+00:00")
    _promote(registry, 2, "2026-03-05T00:00:00+00:00")
    registry.set_alias("loans", "champion", 3)  # straight in the registry, no audit
    intervals = history(registry, registry.store, "loans")
    observed = intervals[-1]
    assert (observed["version"], observed["actor"], observed["certain"]) == (3, OUTSIDE, False)
    assert observed["earliest_start"] == "2026-03-05T00:00:00+00:00"
    assert at(intervals, "champion", *_day("2026-03-03")) == [(1, True)]
    # After keel last saw 2 and before it saw 3: either, neither certain.
    assert at(intervals, "champion", *_day("2026-03-06")) == [(2, False), (3, False)]
    assert history(registry, registry.store, "loans") == intervals  # recorded once
    registry.delete_alias("loans", "champion")
    gone = history(registry, registry.store, "loans")[-1]
    assert (gone["version"], gone["actor"]) == (None, OUTSIDE)


def test_rollback_returns_to_the_version_before(registry):
    _versions(registry, 2)
    with pytest.raises(RegistryError, match="no alias 'champion' to roll back"):
        rollback(registry, registry.store, "loans", "champion", "bad", "ada")
    _promote(registry, 1, None)
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback(registry, registry.store, "loans", "champion", "bad", "ada")
    _promote(registry, 2, None)
    done = rollback(registry, registry.store, "loans", "champion", "AUC fell", "bob")
    assert (done["version"], done["previous_version"], done["actor"]) == (1, 2, "bob")
    assert registry.aliases("loans") == {"champion": 1}
    assert history(registry, registry.store, "loans")[-1]["action"] == "rollback"


def test_a_promotion_is_refused_without_a_version_baseline_reason_or_actor(registry):
    _versions(registry, 1)
    store = registry.store
    with pytest.raises(RegistryError, match="'loans' has no version 4"):
        promote(registry, store, "loans", 4, "champion", "why", "ada")
    with pytest.raises(RegistryError, match="loans@1 has no baseline attached"):
        promote(registry, store, "loans", 1, "champion", "why", "ada")
    with pytest.raises(RegistryError, match="needs a reason"):
        promote(registry, store, "loans", 1, "champion", " ", "ada", require_baseline=False)
    with pytest.raises(RegistryError, match="needs a named actor"):
        promote(registry, store, "loans", 1, "champion", "why", "", require_baseline=False)
    assert store.audit_rows() == [] and registry.aliases("loans") == {}


def test_lineage_walks_version_run_data_baseline_promotions_and_monitors(tmp_path, registry):
    from keel.lineage import describe, lineage
    from keel.result import Result
    from keel.tracking import load_entrypoint, track

    data = make_training_repo(tmp_path / "project")
    fit = load_entrypoint(f"{tmp_path / 'project' / 'train.py'}:fit")
    with track(
        "loans",
        train=str(data),
        holdout_last="20%",
        target="y",
        timestamp="t",
        params={"C": 0.5},
        entrypoint=fit,
        registry=registry,
    ) as run:
        run.log_model(fit(run.train, run.params))
    promote(registry, registry.store, "loans", 1, "champion", "first model", "ada")
    store = registry.store
    config = {"baseline": ".keel/registry-cache/loans/1/baseline.keel", "window": "1D"}
    store.save_monitor("loans-daily", "loans", config)

    def result(version, day, status):
        return Result(
            check="feature_drift",
            column="x",
            metric="wasserstein",
            value=0.3 if status == "alert" else 0.01,
            threshold=0.1,
            status=status,
            monitor="loans-daily",
            model="loans",
            model_version=version,
            window_start=f"2026-02-0{day}",
            window_end=f"2026-02-0{day + 1}",
        )

    # Version 2's window is not this version's; a log naming no version is, once bound.
    store.write(
        [result("1", 1, "alert"), result("1", 2, "ok"), result("2", 3, "ok"), result(None, 4, "ok")]
    )
    found = lineage(registry, store, "models:/loans@champion")
    assert found["version"]["ref"] == "loans@1" and found["version"]["aliases"] == ["champion"]
    assert found["run"]["params"] == {"C": 0.5} and found["run"]["id"] == run.record["run_id"]
    assert found["data"]["train"]["fingerprint"] == run.record["data"]["train"]["fingerprint"]
    assert found["code"]["entrypoint"] == "train.py:fit" and found["code"]["dirty"] is False
    assert found["baseline"]["fingerprint"] == run.baseline.fingerprint
    assert found["holdout"]["metrics"]["roc_auc"] > 0.7
    assert [(p["actor"], p["reason"]) for p in found["promotions"]] == [("ada", "first model")]
    (monitor,) = found["monitors"]
    assert monitor["bound_to_this_version"] and monitor["windows"] == 3
    assert monitor["alerting_windows"] == ["2026-02-01"]
    assert found["reproducible"] is True
    text = "\n".join(describe(found))
    for expected in (
        "loans@1",
        "train.py:fit",
        "by ada: first model",
        "roc_auc",
        "C=0.5",
        "monitor loans-daily",
        "1 alerting",
        run.baseline.id,
    ):
        assert expected in text


def test_the_commands_record_the_token_owner_and_exit_0_1_or_2(tmp_path, run_keel, monkeypatch):
    monkeypatch.setenv("KEEL_REGISTRY", "embedded")
    (tmp_path / ".keel").mkdir()
    from keel.registry.embedded import EmbeddedRegistry
    from keel.store import ResultStore

    store = ResultStore(f"sqlite:///{tmp_path / '.keel' / 'keel.db'}")
    local = EmbeddedRegistry(store, tmp_path / ".keel" / "registry")
    _versions(local, 2)
    monkeypatch.setenv("KEEL_TOKEN", add_token(store, "carol"))
    promoted = run_keel(
        "models", "promote", "loans", "1", "--reason", "first", "--without-baseline"
    )
    assert promoted.returncode == 0, promoted.stderr
    assert "by carol" in promoted.stdout
    assert store.audit_rows()[-1]["actor"] == "carol"
    assert run_keel("models", "promote", "loans", "2", "--reason", "x").returncode == 2
    day = datetime.now(UTC).date().isoformat()
    answered = run_keel("models", "history", "loans", "--at", day, "--json")
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["answer"] == {"champion": [{"version": 1, "certain": True}]}
    lineage = run_keel("lineage", "loans@champion", "--json")
    assert lineage.returncode == 0 and json.loads(lineage.stdout)["version"]["version"] == 1
    assert run_keel("lineage", "loans@challenger").returncode == 2
    monkeypatch.setenv("KEEL_TOKEN", "keel_not-a-token")
    refused = run_keel("models", "rollback", "loans", "--reason", "x")
    assert refused.returncode == 2 and "KEEL_TOKEN is not a valid token" in refused.stderr
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE keel_alias_audit SET actor = 'mallory'"))
    broken = run_keel("models", "history", "loans")
    assert broken.returncode == 1 and "audit chain broken" in broken.stderr
