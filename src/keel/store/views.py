"""Reads shaped for people looking at the store: the dashboard's (``keel ui``) views.

Each function takes a ``ResultStore`` and makes a fixed number of queries, whatever the
number of monitors, series or windows (the overview is one statement for every monitor's
latest windows): the work happens in the database, on the newest revision of each Result
(a row is the newest when no row with its key hash has a higher revision). Statuses are
ranked as the monitor report ranks them: alert > error > warn > ok > insufficient data.

Two small writes live here too, beside the reads they pair with: ``end_silence`` (the
dashboard's unsilence) and ``bulk_insert`` (a generated store for benchmarks).

>>> import tempfile, pathlib
>>> from keel.result import Result
>>> from keel.store import ResultStore
>>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
>>> rows = [Result(check="quality", column="age", metric="missing_share", value=v,
...                threshold=0.1, status=s, monitor="loans", window_start=day)
...         for v, s, day in [(0.0, "ok", "2026-01-01"), (0.5, "alert", "2026-01-02")]]
>>> _ = store.write(rows)
>>> [(w["window_start"], w["status"]) for w in latest_windows(store, per_monitor=5)]
[('2026-01-01', 'ok'), ('2026-01-02', 'alert')]

A revision replaces what it revises (late labels, revised data):

>>> from dataclasses import replace
>>> _ = store.write([replace(rows[1], value=0.0, status="ok")])
>>> [(w["window_start"], w["status"]) for w in latest_windows(store, per_monitor=5)]
[('2026-01-01', 'ok'), ('2026-01-02', 'ok')]
>>> [(c["check"], c["status"]) for c in monitor_timeline(store, "loans", 1)]
[('quality', 'ok')]
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from keel.result import Result
from keel.store.results import (
    ResultStore,
    events,
    model_versions,
    models,
    monitors,
    results,
    silences,
    stamp,
)

#: A status's rank (the worst of a window wins) and back.
RANKS = {"insufficient_data": 0, "ok": 1, "warn": 2, "error": 3, "alert": 4}
STATUS_OF_RANK = {rank: status for status, rank in RANKS.items()}
#: Checks that describe a window rather than judge it: not counted in its status.
NOT_JUDGED = ("window", "diagnosis")

_RANK_SQL = "CASE r.status " + " ".join(f"WHEN '{s}' THEN {n}" for s, n in RANKS.items()) + " END"
# The newest ``:per_monitor`` distinct window starts of every monitor (``starts``): a loose
# index scan over (monitor, window_start), so a handful of index seeks per monitor instead
# of reading every row (SQLite and PostgreSQL alike).
_STARTS = """
WITH RECURSIVE names(monitor) AS (
    SELECT MIN(monitor) FROM keel_results
    UNION ALL
    SELECT (SELECT MIN(k.monitor) FROM keel_results k WHERE k.monitor > names.monitor)
    FROM names WHERE names.monitor IS NOT NULL
),
starts(monitor, window_start, n) AS (
    SELECT monitor,
           (SELECT MAX(k.window_start) FROM keel_results k WHERE k.monitor = names.monitor),
           1
    FROM names WHERE monitor IS NOT NULL {only}
    UNION ALL
    SELECT monitor,
           (SELECT MAX(k.window_start) FROM keel_results k
            WHERE k.monitor = starts.monitor AND k.window_start < starts.window_start),
           n + 1
    FROM starts WHERE n < :per_monitor AND window_start IS NOT NULL
)"""
_NOT_JUDGED_SQL = "('window', 'diagnosis')"


_WINDOW_AGGREGATES = f"""
       MAX(r.model) AS model, MAX(r.window_end) AS window_end,
       MAX(CASE WHEN r."check" NOT IN {_NOT_JUDGED_SQL} THEN {_RANK_SQL} END) AS rank,
       SUM(CASE WHEN r."check" NOT IN {_NOT_JUDGED_SQL} AND r.status = 'alert'
           THEN 1 ELSE 0 END) AS alerting,
       MAX(CASE WHEN r."check" = 'diagnosis' THEN r.details END) AS diagnosis,
       MAX(CASE WHEN r."check" = 'window' AND r.metric = 'rows' THEN r.value END) AS rows,
       MAX(CASE WHEN r."check" = 'window' AND r.metric = 'labels' THEN r.value END) AS labels,
       MAX(CASE WHEN r."check" = 'window' AND r.metric = 'newest_ingestion'
           THEN r.value END) AS newest_data,
       MAX(CASE WHEN r."check" = 'window' AND r.metric = 'newest_label_ingestion'
           THEN r.value END) AS newest_labels"""
_CHECK_AGGREGATES = f"""
       MAX(r.model) AS model, MAX(r.window_end) AS window_end, MAX({_RANK_SQL}) AS rank,
       SUM(CASE WHEN r.status = 'alert' THEN 1 ELSE 0 END) AS alerting,
       COUNT(*) AS results,
       MAX(CASE WHEN r."check" = 'diagnosis' THEN r.details END) AS diagnosis,
       MAX(CASE WHEN r."check" = 'challenger' THEN r.details END) AS compared"""


# The kept windows as a relation, ``kept(monitor, window_start)``: the newest starts found
# above, or a list of windows given (``_listed``).
_KEPT = """,
kept(monitor, window_start) AS (
    SELECT monitor, window_start FROM starts WHERE window_start IS NOT NULL
)"""


def _listed(windows: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """``kept(monitor, window_start)`` as a VALUES list of the given windows, and its
    parameters."""
    values = ", ".join(f"(:m{i}, :s{i})" for i in range(len(windows)))
    parameters = {}
    for i, (monitor, start) in enumerate(windows):
        parameters[f"m{i}"], parameters[f"s{i}"] = monitor, start
    return f"WITH kept(monitor, window_start) AS (VALUES {values})", parameters


def _newest_only(groups: str, aggregates: str) -> str:
    """Aggregates over the newest revision of each Result of the kept windows, in one
    statement: the few Results that were revised (labels that came late, data revised)
    give each revised key its newest revision (``tops``, from the rows with a revision);
    every row of the kept windows is then read once, in its index range, and counted when
    its key was never revised or it is that newest revision. (A per-row "no newer
    revision" probe into the whole table's key index cost more than the aggregates.)"""
    return f"""
, tops AS MATERIALIZED (
    SELECT r.key_hash, MAX(r.revision) AS top
    FROM kept k JOIN keel_results r ON r.monitor = k.monitor AND r.window_start = k.window_start
    WHERE r.revision > 0
    GROUP BY r.key_hash
)
SELECT {groups}, {aggregates}
FROM kept k
JOIN keel_results r ON r.monitor = k.monitor AND r.window_start = k.window_start
LEFT JOIN tops t ON t.key_hash = r.key_hash
WHERE t.top IS NULL OR r.revision = t.top
GROUP BY {groups}
ORDER BY {groups}
"""


_WINDOW_GROUPS = "r.monitor, r.model_version, r.segment, r.window_start"
_CHECK_GROUPS = 'r.monitor, r.model_version, r.segment, r.window_start, r."check"'
#: How many windows one statement names at most (``window_summaries``, ``check_summaries``).
_LISTED_AT_ONCE = 500


def latest_windows(store: ResultStore, per_monitor: int = 14) -> list[dict[str, Any]]:
    """Every series' (monitor, model version, segment) newest windows, oldest first within a
    series, in one query: ``status`` (the worst of its checks), ``alerting`` (how many
    Results alert), ``verdict`` and ``summary`` (its diagnosis), ``rows``, ``labels``,
    ``newest_data`` and ``newest_labels`` (the window's newest ingestion times, epoch
    seconds). ``per_monitor``: how many of each monitor's newest window starts."""
    statement = sa.text(
        _STARTS.format(only="") + _KEPT + _newest_only(_WINDOW_GROUPS, _WINDOW_AGGREGATES)
    )
    with store._connection() as connection:
        fetched = connection.execute(statement, {"per_monitor": int(per_monitor)})
        return _window_rows(fetched)


def monitor_timeline(store: ResultStore, monitor: str, windows: int = 60) -> list[dict[str, Any]]:
    """One monitor's newest ``windows`` window starts, one row per series, window and check
    (oldest first), in one query: ``status`` (the worst of that check's Results),
    ``alerting`` (how many alert), ``results`` (how many), for the ``diagnosis`` check its
    ``verdict`` and ``summary``, and ``champion_version``: for the ``challenger`` check the
    champion its Results compared the challenger with (else None)."""
    statement = sa.text(
        _STARTS.format(only="AND monitor = :monitor")
        + _KEPT
        + _newest_only(_CHECK_GROUPS, _CHECK_AGGREGATES)
    )
    with store._connection() as connection:
        fetched = connection.execute(statement, {"per_monitor": int(windows), "monitor": monitor})
        return _window_rows(fetched)


def window_fingerprints(
    store: ResultStore, per_monitor: int = 14, monitor: str | None = None
) -> dict[tuple[str, str], tuple[int, int, int]]:
    """The newest ``per_monitor`` windows of every monitor (or of ``monitor``), each with a
    fingerprint of its rows, in one statement read from the (monitor, window_start) index
    alone (one correlated count per window: grouping the index entries cost more):
    {(monitor, window_start): (rows, highest id, sum of ids)}. A window's fingerprint
    changes when a Result is written to it (a revision too) or removed from it, so its
    aggregates (``window_summaries``, ``check_summaries``) need reading again only then.

    >>> import tempfile, pathlib
    >>> from keel.result import Result
    >>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> _ = store.write([Result(check="quality", column="age", metric="missing_share",
    ...     value=0.0, threshold=0.1, status="ok", monitor="loans", window_start="2026-01-01")])
    >>> window_fingerprints(store)
    {('loans', '2026-01-01'): (1, 1, 1)}
    """
    only = "" if monitor is None else "AND monitor = :monitor"
    statement = sa.text(
        _STARTS.format(only=only)
        + _KEPT
        + f"""
SELECT k.monitor, k.window_start, (
    SELECT {_as_text("COUNT(*)")} || ' ' || {_as_text("MAX(r.id)")}
           || ' ' || {_as_text("SUM(r.id)")}
    FROM keel_results r WHERE r.monitor = k.monitor AND r.window_start = k.window_start
) FROM kept k
"""
    )
    parameters: dict[str, Any] = {"per_monitor": int(per_monitor)}
    if monitor is not None:
        parameters["monitor"] = monitor
    with store._connection() as connection:
        fetched = connection.execute(statement, parameters).all()
    found = {}
    for name, start, text in fetched:
        rows, top, total = (int(part) for part in text.split())
        found[(name, start)] = (rows, top, total)
    return found


def _as_text(expression: str) -> str:
    return f"CAST({expression} AS VARCHAR(40))"


def window_summaries(store: ResultStore, windows: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``latest_windows``' rows for the given (monitor, window_start) windows: one statement
    per 500 windows."""
    return _summaries(store, windows, _WINDOW_GROUPS, _WINDOW_AGGREGATES)


def check_summaries(store: ResultStore, windows: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``monitor_timeline``'s rows (series × window × check) for the given (monitor,
    window_start) windows: one statement per 500 windows.

    >>> import tempfile, pathlib
    >>> from keel.result import Result
    >>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> _ = store.write([Result(check="quality", column="age", metric="missing_share",
    ...     value=0.5, threshold=0.1, status="alert", monitor="loans", window_start="2026-01-01")])
    >>> [(c["check"], c["status"], c["alerting"]) for c in check_summaries(store,
    ...     [("loans", "2026-01-01"), ("loans", "2026-01-02")])]
    [('quality', 'alert', 1)]
    """
    return _summaries(store, windows, _CHECK_GROUPS, _CHECK_AGGREGATES)


def _summaries(store, windows, groups: str, aggregates: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    windows = list(windows)
    with store._connection() as connection:
        for first in range(0, len(windows), _LISTED_AT_ONCE):
            kept, parameters = _listed(windows[first : first + _LISTED_AT_ONCE])
            statement = sa.text(kept + _newest_only(groups, aggregates))
            found += _window_rows(connection.execute(statement, parameters))
    return found


def window_results(store: ResultStore, monitor: str, window_start: str) -> list[dict]:
    """The newest revision of every Result of one monitor's window (every series), with
    ``details`` decoded, ordered by series, check, column and metric."""
    r = results.alias("r")
    newer = results.alias("n")
    query = (
        sa.select(r)
        .where(
            (r.c.monitor == monitor)
            & (r.c.window_start == window_start)
            & ~sa.exists().where(
                (newer.c.key_hash == r.c.key_hash) & (newer.c.revision > r.c.revision)
            )
        )
        .order_by(r.c.model_version, r.c.segment, r.c.check, r.c.column, r.c.metric)
    )
    with store._connection() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    for row in rows:
        row["details"] = json.loads(row["details"]) if row["details"] else {}
    return rows


def declared_monitors(store: ResultStore) -> list[dict]:
    """The monitors declared in the store (name, model, window, updated_at), by name."""
    query = sa.select(monitors.c.name, monitors.c.model, monitors.c.config, monitors.c.updated_at)
    with store._connection() as connection:
        fetched = connection.execute(query.order_by(monitors.c.name)).mappings().all()
    found = []
    for row in fetched:
        config = json.loads(row["config"]) if row["config"] else {}
        found.append(
            {
                "name": row["name"],
                "model": row["model"],
                "window": config.get("window"),
                "updated_at": row["updated_at"],
            }
        )
    return found


def model_names(store: ResultStore) -> list[str]:
    """Every model the store knows: registered (the embedded registry), seen in a monitor's
    data, or named by a declared monitor; sorted."""
    query = sa.union(
        sa.select(model_versions.c.name.label("name")),
        sa.select(models.c.name.label("name")),
        sa.select(monitors.c.model.label("name")),
    )
    with store._connection() as connection:
        return sorted({name for (name,) in connection.execute(query) if name})


def audited_models(store: ResultStore, registry: str) -> set[str]:
    """The models that the alias audit of registry ``registry`` (its URI) names."""
    from keel.store.results import alias_audit

    query = sa.select(alias_audit.c.model).where(alias_audit.c.registry == registry).distinct()
    with store._connection() as connection:
        return {name for (name,) in connection.execute(query)}


def seen_versions(store: ResultStore) -> list[dict]:
    """The model versions monitors have seen in their data (name, version, baseline,
    first_seen, last_seen), by name and version."""
    query = sa.select(models).order_by(models.c.name, models.c.version)
    with store._connection() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def silence_rows(store: ResultStore, now: datetime | None = None, expired: int = 20) -> list:
    """Silences holding at ``now`` (``active`` True), newest first, then the ``expired``
    most recently ended ones."""
    now_text = stamp(now or datetime.now(UTC))
    holding = silences.c.expires_at > now_text
    with store._connection() as connection:
        active = connection.execute(
            sa.select(silences).where(holding).order_by(silences.c.id.desc())
        ).mappings()
        rows = [{**dict(r), "active": True} for r in active]
        ended = connection.execute(
            sa.select(silences)
            .where(~holding)
            .order_by(silences.c.expires_at.desc())
            .limit(expired)
        ).mappings()
        rows += [{**dict(r), "active": False} for r in ended]
    return rows


def end_silence(store: ResultStore, silence_id: int, now: datetime | None = None) -> bool:
    """End a silence now (its expiry becomes ``now``); False when it had already ended or
    there is none. The row stays, so who silenced what remains readable."""
    now_text = stamp(now or datetime.now(UTC))
    with store._transaction() as connection:
        return bool(
            connection.execute(
                silences.update()
                .where((silences.c.id == int(silence_id)) & (silences.c.expires_at > now_text))
                .values(expires_at=now_text)
            ).rowcount
        )


def recent_events(store: ResultStore, limit: int = 100) -> list[dict]:
    """The event log's newest ``limit`` entries, newest first, ``details`` decoded."""
    query = sa.select(events).order_by(events.c.id.desc()).limit(int(limit))
    with store._connection() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    for row in rows:
        try:
            row["details"] = json.loads(row["details"]) if row["details"] else {}
        except ValueError:
            row["details"] = {"text": row["details"]}
    return rows


def event_rows(
    store: ResultStore,
    actions: Iterable[str],
    subject: str | None = None,
    containing: str | None = None,
) -> list[tuple[str, str, str, str | None]]:
    """The event log's entries whose action is one of ``actions`` (and whose subject is
    ``subject``, and whose stored details hold the text ``containing``, when given), oldest
    first, as (at, actor, action, details text) tuples: the filter is the database's, so
    a reader of a few kinds of event does not read the whole log.

    >>> import tempfile, pathlib
    >>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
    >>> store.log_event("ada", "silence", "loans/drift", {"hours": 2})
    >>> store.log_event("keel", "promotion compared", "loans", {"record": {"run": "r1"}})
    >>> store.log_event("keel", "promotion compared", "cards", {"record": {"run": "r2"}})
    >>> [row[2:] for row in event_rows(store, ["promotion compared"], containing='"r2"')]
    [('promotion compared', '{"record": {"run": "r2"}}')]
    >>> len(event_rows(store, ["promotion compared", "silence"], subject="loans"))
    1
    """
    query = sa.select(events.c.at, events.c.actor, events.c.action, events.c.details).where(
        events.c.action.in_(list(actions))
    )
    if subject is not None:
        query = query.where(events.c.subject == subject)
    if containing is not None:
        escaped = containing.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(events.c.details.like(f"%{escaped}%", escape="\\"))
    with store._connection() as connection:
        return [tuple(row) for row in connection.execute(query.order_by(events.c.id))]


def recent_runs(store: ResultStore, monitor: str, limit: int = 10) -> list[dict]:
    """One monitor's newest ``limit`` runs (id, started_at, finished_at, status), newest
    first."""
    from keel.store.results import runs

    query = (
        sa.select(runs.c.id, runs.c.started_at, runs.c.finished_at, runs.c.status)
        .where(runs.c.monitor == monitor)
        .order_by(runs.c.id.desc())
        .limit(int(limit))
    )
    with store._connection() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def change_stamp(store: ResultStore) -> str:
    """A short text that changes whenever Results, alerts, silences or events change (the
    newest ids and update time, in one query): the dashboard's "anything new?"."""
    statement = sa.text(
        "SELECT (SELECT MAX(id) FROM keel_results), (SELECT MAX(updated_at) FROM keel_alerts), "
        "(SELECT COUNT(*) FROM keel_alerts), (SELECT MAX(id) FROM keel_silences), "
        "(SELECT MAX(expires_at) FROM keel_silences), (SELECT MAX(id) FROM keel_events)"
    )
    with store._connection() as connection:
        values = connection.execute(statement).one()
    return "~".join("" if value is None else str(value) for value in values)


def bulk_insert(store: ResultStore, rows: Iterable[Result], chunk: int = 50_000) -> int:
    """Insert Results with the revision each carries, without comparing them with what is
    stored: for generating a fresh store fast (benchmarks). A (key, revision) already stored
    is skipped by the unique index. Returns how many were offered."""
    from keel.store.results import _insert_new, _record

    created, count, batch = stamp(), 0, []
    with store._transaction() as connection:
        statement = _insert_new(connection)
        for row in rows:
            batch.append(_record(row, None, created))
            if len(batch) >= chunk:
                connection.execute(statement, batch)
                count, batch = count + len(batch), []
        if batch:
            connection.execute(statement, batch)
            count += len(batch)
    return count


def _window_rows(fetched: Any) -> list[dict[str, Any]]:
    names = list(fetched.keys())
    return [_window_row(dict(zip(names, values, strict=True))) for values in fetched]


def _window_row(row: dict[str, Any]) -> dict[str, Any]:
    rank = row.pop("rank", None)
    row["status"] = STATUS_OF_RANK.get(rank, "insufficient_data") if rank is not None else "none"
    text = row.pop("diagnosis", None)
    diagnosis = {}
    if text:
        try:
            diagnosis = json.loads(text)
        except ValueError:
            diagnosis = {}
    row["verdict"] = diagnosis.get("verdict", "")
    row["summary"] = diagnosis.get("summary", "")
    row["causes"] = diagnosis.get("causes", [])
    if "compared" in row:  # a challenger's Results name the champion they were compared with
        text = row.pop("compared")
        try:
            compared = json.loads(text) if text else {}
        except ValueError:
            compared = {}
        row["champion_version"] = compared.get("champion_version")
    return row
