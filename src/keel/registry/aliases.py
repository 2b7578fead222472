"""Aliases with a history: who moved ``champion`` to which version, when and why.

MLflow keeps only where an alias points now (mlflow#2169). keel writes every move to its
append-only audit table (``keel_alias_audit``, docs/formats.md) in three steps: an
``intent`` row, the move in the registry, a ``done`` row. A crash between them leaves an
intent with no ``done``: the next read repairs it (``done`` when the registry shows the move
happened, ``aborted`` when it did not). Each row carries the hash of the row before, so an
edited or deleted row breaks the chain (``verify_chain``). Every read also compares the
registry's aliases with the last audited state: a move keel did not make is recorded as
``observed``, and the history marks the time since the previous audited row as uncertain.

>>> import tempfile, pathlib
>>> from sklearn.dummy import DummyClassifier
>>> from keel.store import ResultStore
>>> from keel.registry.embedded import EmbeddedRegistry
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> store = ResultStore(f"sqlite:///{folder / 'keel.db'}")
>>> registry = EmbeddedRegistry(store, folder)
>>> for _ in range(2):
...     run = registry.log_run("loans", {}, {})
...     _ = registry.register("loans", DummyClassifier().fit([[0], [1]], [0, 1]), run)
>>> _ = promote(registry, store, "loans", 1, "champion", "first model", "ada",
...             require_baseline=False)
>>> _ = promote(registry, store, "loans", 2, "champion", "better AUC", "bob",
...             require_baseline=False)
>>> [(i["version"], i["actor"], i["end"] is None) for i in history(registry, store, "loans")]
[(1, 'ada', False), (2, 'bob', True)]
>>> verify_chain(store)
[]
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from keel.registry.base import RegistryError, check_alias

#: An intent younger than this may be a move still in flight in another process.
IN_FLIGHT = timedelta(seconds=30)
OUTSIDE = "outside keel"
STATE_EVENTS = ("done", "observed")


def promote(
    registry: Any,
    store: Any,
    name: str,
    version: int,
    alias: str,
    reason: str,
    actor: str,
    *,
    action: str = "promote",
    require_baseline: bool = True,
    gate_report: dict | None = None,
    at: str | None = None,
) -> dict:
    """Move ``alias`` of ``name`` to ``version``, audited (intent → move → done); returns the
    ``done`` row. Refuses an unknown version, a version with no baseline (unless
    ``require_baseline=False``), an empty reason or actor. ``at`` (ISO time) dates the rows
    when a move made elsewhere is recorded after the fact; by default, now."""
    check_alias(alias)
    if not (reason or "").strip():
        raise RegistryError(f"moving {alias!r} needs a reason (--reason)")
    if not (actor or "").strip():
        raise RegistryError(f"moving {alias!r} needs a named actor (--actor or a token)")
    found = registry.get_version(name, int(version))
    if require_baseline and not found.tags.get("keel.baseline"):
        raise RegistryError(
            f"{found.ref} has no baseline attached, so no monitor could judge it; train it "
            "with keel train / keel.track, or promote with --without-baseline"
        )
    reconcile(registry, store, name, now=_time(at) if at else None)
    previous = registry.aliases(name).get(alias)
    operation = uuid.uuid4().hex
    common = dict(
        registry=registry.uri,
        model=name,
        alias=alias,
        version=int(version),
        previous_version=previous,
        actor=actor,
        reason=reason,
        operation=operation,
    )
    if at is not None:
        common["at"] = at
    store.append_audit(event="intent", details={"action": action, "gate": gate_report}, **common)
    try:
        registry.set_alias(name, alias, int(version))
    except Exception as error:
        store.append_audit(
            event="aborted", details={"action": action, "error": str(error)}, **common
        )
        raise
    done = store.append_audit(event="done", details={"action": action}, **common)
    store.log_event(
        actor,
        f"model {action}d" if action.endswith("e") else f"model {action}ed",
        subject=f"{name}@{alias}",
        details={"version": int(version), "previous_version": previous, "reason": reason},
    )
    return done


def rollback(registry: Any, store: Any, name: str, alias: str, reason: str, actor: str) -> dict:
    """Move ``alias`` back to the version it pointed at before its current one."""
    intervals = [i for i in history(registry, store, name) if i["alias"] == alias]
    if not intervals or intervals[-1]["version"] is None:
        raise RegistryError(f"model {name!r} has no alias {alias!r} to roll back")
    earlier = [i["version"] for i in intervals[:-1] if i["version"] is not None]
    earlier = [v for v in earlier if v != intervals[-1]["version"]]
    if not earlier:
        raise RegistryError(
            f"{name}@{alias} has pointed only at version {intervals[-1]['version']}: "
            "nothing to roll back to"
        )
    return promote(
        registry,
        store,
        name,
        earlier[-1],
        alias,
        reason,
        actor,
        action="rollback",
        require_baseline=False,
    )


def reconcile(registry: Any, store: Any, name: str, now: datetime | None = None) -> list[dict]:
    """Repair dangling intents and record moves made outside keel; returns the rows added."""
    now = now or datetime.now(UTC)
    rows = store.audit_rows(registry.uri, name)
    current = registry.aliases(name)
    added: list[dict] = []
    closed = {r["operation"] for r in rows if r["event"] != "intent"}
    in_flight = set()
    for intent in (r for r in rows if r["event"] == "intent" and r["operation"] not in closed):
        if now - _time(intent["at"]) < IN_FLIGHT:
            in_flight.add(intent["alias"])
            continue
        happened = current.get(intent["alias"]) == intent["version"]
        added.append(
            store.append_audit(
                registry=registry.uri,
                model=name,
                alias=intent["alias"],
                event="done" if happened else "aborted",
                version=intent["version"],
                previous_version=intent["previous_version"],
                actor=intent["actor"],
                reason=intent["reason"],
                operation=intent["operation"],
                details={"repaired": True, "found": current.get(intent["alias"])},
            )
        )
    rows += added
    audited, last_seen = _audited_state(rows)
    for alias in sorted(set(current) | set(audited)):
        if alias in in_flight or current.get(alias) == audited.get(alias):
            continue
        since = last_seen.get(alias)
        if since is None and current.get(alias) is not None:
            since = registry.get_version(name, current[alias]).created_at
        added.append(
            store.append_audit(
                registry=registry.uri,
                model=name,
                alias=alias,
                event="observed",
                version=current.get(alias),
                previous_version=audited.get(alias),
                actor=OUTSIDE,
                reason="the registry shows a move keel did not make",
                operation=uuid.uuid4().hex,
                details={"uncertain_since": since},
            )
        )
    return added


def history(registry: Any, store: Any, name: str, alias: str | None = None) -> list[dict]:
    """Every interval an alias pointed at a version, oldest first (after ``reconcile``):
    ``alias, version, start, end, actor, reason, action, certain, earliest_start`` — an
    interval begun by an observed move is uncertain from ``earliest_start`` to ``start``."""
    reconcile(registry, store, name)
    rows = [r for r in store.audit_rows(registry.uri, name) if r["event"] in STATE_EVENTS]
    intervals: list[dict] = []
    for row in rows:
        if alias is not None and row["alias"] != alias:
            continue
        details = _details(row)
        observed = row["event"] == "observed"
        for earlier in reversed(intervals):
            if earlier["alias"] == row["alias"]:
                earlier["end"] = row["at"]
                break
        intervals.append(
            {
                "alias": row["alias"],
                "version": row["version"],
                "start": row["at"],
                "end": None,
                "earliest_start": details.get("uncertain_since") if observed else row["at"],
                "certain": not observed,
                "actor": row["actor"],
                "reason": row["reason"],
                "action": details.get("action", "observed" if observed else "promote"),
                "repaired": bool(details.get("repaired")),
                "audit_id": row["id"],
            }
        )
    return intervals


def at(intervals: list[dict], alias: str, start: datetime, end: datetime | None = None) -> list:
    """Which versions ``alias`` pointed at during [start, end) (one moment when ``end`` is
    None), as ``(version, certain)`` pairs, oldest first: a version that might have been
    pointed at (during an uncertain interval) comes with ``certain=False``.

    >>> rows = [{"alias": "c", "version": 1, "start": "2026-03-01T00:00:00+00:00",
    ...          "earliest_start": "2026-03-01T00:00:00+00:00", "end": None, "certain": True}]
    >>> at(rows, "c", datetime(2026, 3, 4, tzinfo=UTC)), at(rows, "c", datetime(2026, 2, 1))
    ([(1, True)], [])
    """
    start = _aware(start)
    end = _aware(end) if end is not None else start + timedelta(microseconds=1)
    found: list[tuple[int, bool]] = []
    for interval in (i for i in intervals if i["alias"] == alias):
        if interval["version"] is None:
            continue
        following = _next(intervals, interval)
        # Certainly pointed at it from its start until the next interval's earliest start;
        # possibly from its own earliest start until the next one's start.
        surely = (
            _time(interval["start"]),
            _time(following["earliest_start"]) if following else None,
        )
        maybe = (
            _time(interval["earliest_start"]),
            _time(following["start"]) if following else None,
        )
        if _overlaps(surely, start, end):
            found.append((interval["version"], True))
        elif _overlaps(maybe, start, end):
            found.append((interval["version"], False))
    return found


def _overlaps(period: tuple, start: datetime, end: datetime) -> bool:
    begin, finish = period
    return begin < end and (finish is None or start < finish) and (finish is None or begin < finish)


def verify_chain(store: Any) -> list[str]:
    """Problems with the audit chain (an edited, inserted or deleted row), none when intact."""
    from keel.store.results import audit_hash

    problems, previous = [], ""
    for row in store.audit_rows():
        if row["previous_hash"] != previous:
            problems.append(f"audit row {row['id']}: the row before it was changed or removed")
        if audit_hash(row, row["previous_hash"]) != row["row_hash"]:
            problems.append(f"audit row {row['id']}: its content does not match its hash")
        previous = row["row_hash"]
    return problems


def _audited_state(rows: list[dict]) -> tuple[dict[str, int | None], dict[str, str]]:
    state: dict[str, int | None] = {}
    last_seen: dict[str, str] = {}
    for row in rows:
        last_seen[row["alias"]] = row["at"]
        if row["event"] in STATE_EVENTS:
            state[row["alias"]] = row["version"]
    return {a: v for a, v in state.items() if v is not None}, last_seen


def _next(intervals: list[dict], interval: dict) -> dict | None:
    later = [i for i in intervals if i["alias"] == interval["alias"]]
    index = later.index(interval)
    return later[index + 1] if index + 1 < len(later) else None


def _details(row: dict) -> dict:
    import json

    try:
        return json.loads(row["details"] or "{}")
    except ValueError:
        return {}


def _time(text: str) -> datetime:
    return _aware(datetime.fromisoformat(str(text)))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
