"""The results store: Results with revisions, runs, an append-only event log, and the
models, baselines, calibrations and monitors they belong to.

One code path (SQLAlchemy Core) for a SQLite file, the default
(``.keel/keel.db`` in the working folder, created on first use), and
PostgreSQL for teams (a URL from ``KEEL_DATABASE_URL`` or the caller).

A Result is identified by its key: monitor, model, model version, segment,
window start and end, check, column and metric. Writing the same Result
again stores nothing (a monitor run twice is idempotent; values within 0.1%
count as the same, since sketch-based statistics vary that much between two
computations; a window's identity, ``check: window``, compares exactly); writing
it with another status or a value or threshold that moved further stores a new
revision, and ``latest``
serves the newest while ``history`` keeps every one (labels arriving late
revise performance results). A write is one transaction: a failure leaves
nothing half-written. The schema is versioned: an older database is migrated
step by step (``MIGRATIONS``) when opened, and one from a newer keel is
refused instead of being misread.

>>> import tempfile, pathlib
>>> from keel.result import Result
>>> store = ResultStore(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'keel.db'}")
>>> row = Result(check="feature_drift", column="age", metric="wasserstein", value=0.3,
...              threshold=0.1, status="alert", monitor="loans", window_start="2026-01-01")
>>> store.write([row]), store.write([row])
((1, 0), (0, 1))
>>> store.latest(monitor="loans")[["column", "value", "revision"]].values.tolist()
[['age', 0.3, 0]]
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from keel.errors import MonitorBusy, StoreError  # noqa: F401 - also importable from here
from keel.result import RESULT_COLUMNS, RESULT_KEY, Result

SCHEMA_VERSION = 5
DEFAULT_PATH = Path(".keel") / "keel.db"
KEY = RESULT_KEY

metadata = sa.MetaData()
schema_version = sa.Table(
    "keel_schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)
runs = sa.Table(
    "keel_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("monitor", sa.String(200)),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("details", sa.Text),
)
results = sa.Table(
    "keel_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("keel_runs.id")),
    *(sa.Column(name, sa.String(400)) for name in KEY),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("details", sa.Text),
    sa.Column("created_at", sa.String(40), nullable=False),
    # SHA-256 of the key (NULL-safe, unlike a unique index over nullable columns): with the
    # revision it is unique, so two writers racing on one Result store it once.
    sa.Column("key_hash", sa.String(64)),
    sa.Index("keel_results_window", "monitor", "window_start"),
    sa.Index("keel_results_once", "key_hash", "revision", unique=True),
)
events = sa.Table(
    "keel_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(400)),
    sa.Column("details", sa.Text),
)
baselines = sa.Table(
    "keel_baselines",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("rows", sa.Integer),
    sa.Column("created_at", sa.String(40)),
)
models = sa.Table(
    "keel_models",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("baseline", sa.String(64)),
    sa.Column("first_seen", sa.String(40), nullable=False),
    sa.Column("last_seen", sa.String(40), nullable=False),
)
calibrations = sa.Table(
    "keel_calibrations",
    metadata,
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("baseline", sa.String(64), nullable=False),
    sa.Column("window", sa.String(40), nullable=False),
    sa.Column("false_alarm_rate", sa.Float, nullable=False),
    sa.Column("reference_windows", sa.Integer),
    sa.Column("registered_at", sa.String(40), nullable=False),
)
monitors = sa.Table(
    "keel_monitors",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

alerts = sa.Table(
    "keel_alerts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("monitor", sa.String(200), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("segment", sa.String(400), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("first_window", sa.String(40), nullable=False),
    sa.Column("last_window", sa.String(40), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("resolved_at", sa.String(40)),
    sa.Column("summary", sa.Text),
    sa.Column("details", sa.Text),
    sa.Index("keel_alerts_key", "monitor", "rule", "model_version", "segment"),
)
silences = sa.Table(
    "keel_silences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("monitor", sa.String(200), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text),
)
notifications = sa.Table(
    "keel_notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.String(40), nullable=False),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.String(40), nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("sent_at", sa.String(40)),
    sa.UniqueConstraint("idempotency_key", "channel", name="keel_notifications_once"),
)


locks = sa.Table(
    "keel_locks",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.String(40), nullable=False),
)

# Version 5: who (admin tokens, by hash), keel's embedded model registry, training runs
# with their lineage records, and the append-only, hash-chained alias audit.
tokens = sa.Table(
    "keel_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("revoked_at", sa.String(40)),
    sa.Index("keel_tokens_name", "name"),
)
model_versions = sa.Table(
    "keel_model_versions",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("flavour", sa.String(200), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
)
model_aliases = sa.Table(
    "keel_model_aliases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("alias", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)
training_runs = sa.Table(
    "keel_training_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("record", sa.Text, nullable=False),
)
alias_audit = sa.Table(
    "keel_alias_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("registry", sa.String(400), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(200), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("version", sa.Integer),
    sa.Column("previous_version", sa.Integer),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    # The chain: each row's hash covers its fields and the previous row's hash; unique, so
    # two writers racing for the same place cannot fork it (the loser retries).
    sa.Column("previous_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Index("keel_alias_audit_model", "registry", "model", "alias"),
)
AUDIT_FIELDS = ("at", "registry", "model", "alias", "event", "version", "previous_version")
AUDIT_FIELDS += ("actor", "reason", "operation", "details")


def _add_registry_tables(connection: sa.Connection) -> None:
    for table in (models, calibrations, monitors):
        table.create(connection, checkfirst=True)


def _add_alert_tables(connection: sa.Connection) -> None:
    for table in (alerts, silences, notifications):
        table.create(connection, checkfirst=True)


def _add_result_keys_and_locks(connection: sa.Connection) -> None:
    """Version 4: every Result row gets its key's hash, made unique with its revision; the
    lock table. Rows that an earlier race stored twice (same key and revision) keep the
    first copy; how many were dropped is logged."""
    existing = {c["name"] for c in sa.inspect(connection).get_columns("keel_results")}
    if "key_hash" not in existing:
        connection.execute(sa.text("ALTER TABLE keel_results ADD COLUMN key_hash VARCHAR(64)"))
    seen, doubles = set(), []
    query = sa.select(results.c.id, results.c.revision, *(results.c[n] for n in KEY))
    for row in connection.execute(query.order_by(results.c.id)).mappings():
        digest = key_hash(tuple(row[name] for name in KEY))
        if (digest, row["revision"]) in seen:
            doubles.append(row["id"])
            continue
        seen.add((digest, row["revision"]))
        connection.execute(
            results.update().where(results.c.id == row["id"]).values(key_hash=digest)
        )
    if doubles:
        connection.execute(results.delete().where(results.c.id.in_(doubles)))
        connection.execute(
            events.insert().values(
                at=_now(),
                actor="keel",
                action="dropped duplicated results",
                subject=str(len(doubles)),
                details=json.dumps({"ids": doubles[:1000]}),
            )
        )
    next(i for i in results.indexes if i.name == "keel_results_once").create(connection)
    locks.create(connection, checkfirst=True)


def _add_tokens_registry_and_audit(connection: sa.Connection) -> None:
    """Version 5: admin token hashes, the embedded registry, training runs, the alias audit."""
    for table in (tokens, model_versions, model_aliases, training_runs, alias_audit):
        table.create(connection, checkfirst=True)


# Version N's step brings a version N-1 database to N; steps only add (version 4 also drops
# rows an old race stored twice), never drop a table or column.
MIGRATIONS = {
    2: _add_registry_tables,
    3: _add_alert_tables,
    4: _add_result_keys_and_locks,
    5: _add_tokens_registry_and_audit,
}


def key_hash(key: tuple) -> str:
    """The SHA-256 of a Result key (NULL and "" differ), as the store's ``key_hash``.

    >>> key_hash(("loans", None, "1")) == key_hash(("loans", "", "1"))
    False
    """
    import hashlib

    return hashlib.sha256(json.dumps(list(key), default=str).encode()).hexdigest()


class ResultStore:
    """Results, runs, baselines and events in one database (see the module docstring)."""

    def __init__(self, url: str | None = None) -> None:
        url = url or os.environ.get("KEEL_DATABASE_URL")
        if url is None:
            DEFAULT_PATH.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{DEFAULT_PATH}"
        try:
            self.engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as error:
            raise StoreError(f"not a usable database URL ({error})") from error
        self.name = self.engine.url.render_as_string(hide_password=True)
        self._migrate()

    def _migrate(self) -> None:
        try:
            with self.engine.begin() as connection:
                found = sa.inspect(connection).has_table(schema_version.name)
                version = (
                    connection.execute(sa.select(schema_version.c.version)).scalar()
                    if found
                    else None
                )
                if version is None:
                    metadata.create_all(connection)
                    connection.execute(schema_version.delete())
                    connection.execute(schema_version.insert().values(version=SCHEMA_VERSION))
                elif version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.name}: the results store has schema version {version}, newer "
                        f"than this keel reads ({SCHEMA_VERSION}); upgrade keel"
                    )
                elif version < SCHEMA_VERSION:
                    for step in range(version + 1, SCHEMA_VERSION + 1):
                        MIGRATIONS[step](connection)
                    connection.execute(schema_version.update().values(version=SCHEMA_VERSION))
                    connection.execute(
                        events.insert().values(
                            at=_now(),
                            actor="keel",
                            action="migrated the store",
                            subject=f"{version} -> {SCHEMA_VERSION}",
                            details="{}",
                        )
                    )
        except sa.exc.SQLAlchemyError as error:
            raise StoreError(
                f"cannot use the results store at {self.name}: {_first_line(error)}"
            ) from error

    @property
    def version(self) -> int:
        with self._connection() as connection:
            return int(connection.execute(sa.select(schema_version.c.version)).scalar())

    def start_run(self, monitor: str | None = None, details: dict | None = None) -> int:
        with self._transaction() as connection:
            return int(
                connection.execute(
                    runs.insert().values(
                        monitor=monitor,
                        started_at=_now(),
                        status="running",
                        details=json.dumps(details or {}),
                    )
                ).inserted_primary_key[0]
            )

    def finish_run(self, run_id: int, status: str = "ok") -> None:
        with self._transaction() as connection:
            connection.execute(
                runs.update().where(runs.c.id == run_id).values(finished_at=_now(), status=status)
            )

    def write(
        self, rows: Iterable[Result], run_id: int | None = None, attempts: int = 3
    ) -> tuple[int, int]:
        """Store new Results and new revisions; returns (written, unchanged).

        A database that is locked or drops the connection is retried (``attempts``
        times, waiting 0.5 s, then 1 s, …); each attempt is one whole transaction.
        """
        rows = list(rows)
        if not rows:
            return 0, 0
        for attempt in range(attempts):
            try:
                return self._write_once(rows, run_id)
            except StoreError as error:
                transient = isinstance(error.__cause__, sa.exc.OperationalError)
                if not transient or attempt == attempts - 1:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def _write_once(self, rows: list[Result], run_id: int | None) -> tuple[int, int]:
        with self._transaction() as connection:
            latest = self._latest_by_key(
                connection, {r.monitor for r in rows}, {r.window_start for r in rows}
            )
            written, unchanged, inserts = 0, 0, []
            for row in rows:
                row = _without_nan_keys(row)
                key = tuple(getattr(row, name) for name in KEY)
                previous = latest.get(key)
                if previous is not None and _same(previous, row):
                    unchanged += 1
                    continue
                revision = 0 if previous is None else previous["revision"] + 1
                inserts.append(_record(replace(row, revision=revision), run_id))
                latest[key] = inserts[-1]
                written += 1
            if inserts:
                # Idempotent: a revision another writer stored first is kept, not doubled.
                stored = connection.execute(_insert_new(connection), inserts).rowcount
                if stored >= 0 and stored < len(inserts):
                    written, unchanged = stored, unchanged + len(inserts) - stored
        return written, unchanged

    def latest(self, **filters: Any):
        """The newest revision of every Result matching ``filters`` (column=value), a DataFrame."""
        frame = self.history(**filters)
        if frame.empty:
            return frame
        newest = frame.groupby(list(KEY), dropna=False)["revision"].transform("max")
        return frame[frame["revision"] == newest].reset_index(drop=True)

    def history(self, **filters: Any):
        """Every revision of every Result matching ``filters``, oldest first."""
        import pandas as pd

        query = sa.select(results)
        for name, value in filters.items():
            if name not in results.c:
                raise StoreError(f"cannot filter results by {name!r}")
            query = query.where(results.c[name] == value)
        with self._connection() as connection:
            fetched = connection.execute(query.order_by(results.c.id)).mappings().all()
        frame = pd.DataFrame(
            [dict(r) for r in fetched], columns=[*RESULT_COLUMNS, "run_id", "created_at"]
        )
        frame["details"] = frame["details"].map(lambda text: json.loads(text) if text else {})
        return frame[[*RESULT_COLUMNS, "run_id", "created_at"]]

    def log_event(
        self, actor: str, action: str, subject: str | None = None, details: dict | None = None
    ) -> None:
        """Append to the event log: who or what did what, when. Nothing is ever updated."""
        with self._transaction() as connection:
            connection.execute(
                events.insert().values(
                    at=_now(),
                    actor=actor,
                    action=action,
                    subject=subject,
                    details=json.dumps(details or {}, default=str),
                )
            )

    def events(self):
        import pandas as pd

        with self._connection() as connection:
            fetched = connection.execute(sa.select(events).order_by(events.c.id)).mappings().all()
        return pd.DataFrame(
            [dict(r) for r in fetched],
            columns=["id", "at", "actor", "action", "subject", "details"],
        )

    def register_baseline(self, baseline: Any, path: str | Path) -> None:
        """Index a baseline file by its fingerprint (the file stays the source of truth)."""
        with self._transaction() as connection:
            exists = connection.execute(
                sa.select(baselines.c.fingerprint).where(
                    baselines.c.fingerprint == baseline.fingerprint
                )
            ).first()
            if exists is None:
                connection.execute(
                    baselines.insert().values(
                        fingerprint=baseline.fingerprint,
                        path=str(path),
                        rows=baseline.rows,
                        created_at=baseline.created_at,
                    )
                )

    def register_model(self, name: str, version: str | None, baseline: str | None = None) -> None:
        """Record that a model version was seen (first and last time, and its baseline)."""
        version, now = version or "", _now()
        with self._transaction() as connection:
            key = (models.c.name == name) & (models.c.version == version)
            if connection.execute(sa.select(models.c.name).where(key)).first() is None:
                connection.execute(
                    models.insert().values(
                        name=name, version=version, baseline=baseline, first_seen=now, last_seen=now
                    )
                )
            else:
                connection.execute(models.update().where(key).values(last_seen=now))

    def register_calibration(self, calibration: Any, path: str | Path) -> None:
        """Index a calibration file: its baseline, window and false alarm rate."""
        values = dict(
            baseline=calibration.baseline_id,
            window=calibration.window,
            false_alarm_rate=calibration.false_alarm_rate,
            reference_windows=calibration.reference_windows,
            registered_at=_now(),
        )
        with self._transaction() as connection:
            key = calibrations.c.path == str(path)
            if connection.execute(sa.select(calibrations.c.path).where(key)).first() is None:
                connection.execute(calibrations.insert().values(path=str(path), **values))
            else:
                connection.execute(calibrations.update().where(key).values(**values))

    def save_monitor(self, name: str, model: str, config: dict) -> bool:
        """Store a monitor's configuration; True (and an event) when it is new or changed."""
        text = json.dumps(config, sort_keys=True, default=str)
        with self._transaction() as connection:
            key = monitors.c.name == name
            stored = connection.execute(sa.select(monitors.c.config).where(key)).scalar()
            if stored == text:
                return False
            values = dict(model=model, config=text, updated_at=_now())
            if stored is None:
                connection.execute(monitors.insert().values(name=name, **values))
            else:
                connection.execute(monitors.update().where(key).values(**values))
            connection.execute(
                events.insert().values(
                    at=_now(),
                    actor="keel",
                    action="monitor declared" if stored is None else "monitor changed",
                    subject=name,
                    details=text,
                )
            )
        return True

    @contextlib.contextmanager
    def monitor_lock(self, name: str):
        """Hold the monitor's lock for the block, or raise ``MonitorBusy`` at once.

        PostgreSQL: a session advisory lock on a connection kept open for the block (the
        server frees it if this process dies). SQLite: a row in ``keel_locks``, inserted
        only if absent; a row left by a process of this host that is no longer alive is
        taken over.
        """
        owner = f"{socket.gethostname()}:{os.getpid()}"
        if self.engine.dialect.name == "postgresql":
            number = int(key_hash(("lock", name))[:15], 16)  # fits a signed 64-bit key
            with self._connection() as connection:
                got = connection.execute(sa.select(sa.func.pg_try_advisory_lock(number))).scalar()
                if not got:
                    raise MonitorBusy(f"monitor {name!r} is being run by another process")
                try:
                    yield
                finally:
                    connection.execute(sa.select(sa.func.pg_advisory_unlock(number)))
                    connection.commit()
            return
        self._take_lock_row(name, owner)
        try:
            yield
        finally:
            with self._transaction() as connection:
                connection.execute(
                    locks.delete().where(locks.c.name == name, locks.c.owner == owner)
                )

    def _take_lock_row(self, name: str, owner: str) -> None:
        for _ in range(2):
            try:
                with self._transaction() as connection:
                    connection.execute(
                        locks.insert().values(name=name, owner=owner, acquired_at=_now())
                    )
                return
            except StoreError as error:
                if not isinstance(error.__cause__, sa.exc.IntegrityError):
                    raise
            with self._transaction() as connection:
                holder = connection.execute(
                    sa.select(locks.c.owner).where(locks.c.name == name)
                ).scalar()
                if holder is not None and _alive(holder):
                    raise MonitorBusy(
                        f"monitor {name!r} is being run by another process ({holder})"
                    )
                # The holder died without releasing it: take it over.
                connection.execute(
                    locks.delete().where(locks.c.name == name, locks.c.owner == holder)
                )
        raise MonitorBusy(f"monitor {name!r} is being run by another process")

    def unfinished_runs(self, monitor: str) -> list[int]:
        """Runs of ``monitor`` that stored Results but never finished their alert evaluation
        (their process died): the next run evaluates for them."""
        with self._connection() as connection:
            return [
                int(r)
                for r in connection.execute(
                    sa.select(runs.c.id).where(
                        runs.c.monitor == monitor,
                        runs.c.status.in_(("running", "written", "error_unevaluated")),
                    )
                ).scalars()
            ]

    def run_log(self, monitor: str | None = None):
        """Every run (of ``monitor``), oldest first, with its ledger status, as a DataFrame."""
        import pandas as pd

        query = sa.select(runs).order_by(runs.c.id)
        if monitor is not None:
            query = query.where(runs.c.monitor == monitor)
        with self._connection() as connection:
            fetched = connection.execute(query).mappings().all()
        return pd.DataFrame([dict(r) for r in fetched], columns=list(runs.c.keys()))

    def mark_runs(self, run_ids: list[int], status: str) -> None:
        """Set the status of several runs (the ledger: running → written → ok/alert)."""
        if not run_ids:
            return
        with self._transaction() as connection:
            connection.execute(
                runs.update()
                .where(runs.c.id.in_(run_ids))
                .values(status=status, finished_at=_now())
            )

    def table(self, name: str):
        """One registry table as a DataFrame: models, baselines, calibrations or monitors."""
        import pandas as pd

        tables = {
            "models": models,
            "baselines": baselines,
            "calibrations": calibrations,
            "monitors": monitors,
        }
        if name not in tables:
            raise StoreError(f"no table {name!r}; one of {sorted(tables)}")
        with self._connection() as connection:
            fetched = connection.execute(sa.select(tables[name])).mappings().all()
        return pd.DataFrame([dict(r) for r in fetched], columns=list(tables[name].c.keys()))

    # -- tokens (version 5): only hashes are stored; keel.tokens makes and checks them --

    def add_token_hash(self, name: str, token_hash: str) -> None:
        """Store a token's hash for ``name``; refused while ``name`` has an active token."""
        with self._transaction() as connection:
            active = connection.execute(
                sa.select(tokens.c.id).where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
            ).first()
            if active is not None:
                raise StoreError(f"{name!r} already has a token; revoke it first")
            connection.execute(
                tokens.insert().values(name=name, token_hash=token_hash, created_at=_now())
            )

    def token_rows(self, active_only: bool = False) -> list[dict]:
        """Every token row (name, token_hash, created_at, revoked_at), oldest first."""
        query = sa.select(tokens).order_by(tokens.c.id)
        if active_only:
            query = query.where(tokens.c.revoked_at.is_(None))
        with self._connection() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    def revoke_token_hash(self, name: str) -> int:
        """Mark ``name``'s active token revoked; returns how many were (0 or 1)."""
        with self._transaction() as connection:
            return connection.execute(
                tokens.update()
                .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            ).rowcount

    # -- the embedded registry and training runs (version 5) --

    def add_model_version(
        self, name: str, source: str, flavour: str, run_id: str | None, tags: dict
    ) -> int:
        """Register the next version of ``name`` (1, 2, …); returns its number."""
        for attempt in range(3):
            try:
                with self._transaction() as connection:
                    newest = connection.execute(
                        sa.select(sa.func.max(model_versions.c.version)).where(
                            model_versions.c.name == name
                        )
                    ).scalar()
                    version = int(newest or 0) + 1
                    connection.execute(
                        model_versions.insert().values(
                            name=name,
                            version=version,
                            source=source.replace("{version}", str(version)),
                            flavour=flavour,
                            run_id=run_id,
                            created_at=_now(),
                            tags=json.dumps(tags, default=str),
                        )
                    )
                return version
            except StoreError as error:  # another writer took that number: take the next
                if not isinstance(error.__cause__, sa.exc.IntegrityError) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def model_version_rows(self, name: str, version: int | None = None) -> list[dict]:
        """The embedded registry's versions of ``name`` (or one of them), oldest first."""
        query = sa.select(model_versions).where(model_versions.c.name == name)
        if version is not None:
            query = query.where(model_versions.c.version == int(version))
        with self._connection() as connection:
            fetched = connection.execute(query.order_by(model_versions.c.version)).mappings()
            return [{**dict(r), "tags": json.loads(r["tags"])} for r in fetched]

    def set_model_tags(self, name: str, version: int, tags: dict) -> None:
        """Merge ``tags`` into a version's tags in the embedded registry."""
        with self._transaction() as connection:
            key = (model_versions.c.name == name) & (model_versions.c.version == int(version))
            stored = connection.execute(sa.select(model_versions.c.tags).where(key)).scalar()
            if stored is None:
                raise StoreError(f"model {name!r} has no version {version}")
            merged = {**json.loads(stored), **tags}
            connection.execute(
                model_versions.update().where(key).values(tags=json.dumps(merged, default=str))
            )

    def model_alias_rows(self, name: str) -> dict[str, int]:
        """The embedded registry's aliases of ``name``: alias → version."""
        query = sa.select(model_aliases).where(model_aliases.c.name == name)
        with self._connection() as connection:
            return {r["alias"]: int(r["version"]) for r in connection.execute(query).mappings()}

    def set_model_alias(self, name: str, alias: str, version: int | None) -> None:
        """Point ``alias`` of ``name`` at ``version`` in the embedded registry (None: delete)."""
        with self._transaction() as connection:
            key = (model_aliases.c.name == name) & (model_aliases.c.alias == alias)
            connection.execute(model_aliases.delete().where(key))
            if version is not None:
                connection.execute(
                    model_aliases.insert().values(
                        name=name, alias=alias, version=int(version), updated_at=_now()
                    )
                )

    def save_training_run(self, run_id: str, name: str, record: dict) -> None:
        """Store a training run's lineage record (once: a run is never edited)."""
        with self._transaction() as connection:
            connection.execute(
                training_runs.insert().values(
                    id=run_id,
                    name=name,
                    created_at=_now(),
                    record=json.dumps(record, default=str, sort_keys=True),
                )
            )

    def training_run(self, run_id: str) -> dict | None:
        """A training run's lineage record, or None."""
        query = sa.select(training_runs.c.record).where(training_runs.c.id == run_id)
        with self._connection() as connection:
            text = connection.execute(query).scalar()
        return None if text is None else json.loads(text)

    # -- the alias audit (version 5): append-only, each row hashing the one before --

    def append_audit(self, **fields: Any) -> dict:
        """Append one audit row (``AUDIT_FIELDS``; ``at`` defaults to now); returns it with
        its ``id``, ``previous_hash`` and ``row_hash``. Rows are never updated or deleted."""
        fields.setdefault("at", _now())
        fields["details"] = json.dumps(fields.get("details") or {}, default=str, sort_keys=True)
        row = {name: fields.get(name) for name in AUDIT_FIELDS}
        for attempt in range(5):
            try:
                with self._transaction() as connection:
                    last = connection.execute(
                        sa.select(alias_audit.c.row_hash).order_by(alias_audit.c.id.desc()).limit(1)
                    ).scalar()
                    row["previous_hash"] = last or ""
                    row["row_hash"] = audit_hash(row, row["previous_hash"])
                    inserted = connection.execute(alias_audit.insert().values(**row))
                    row["id"] = int(inserted.inserted_primary_key[0])
                return row
            except StoreError as error:  # another writer took this place in the chain
                transient = isinstance(
                    error.__cause__, sa.exc.IntegrityError | sa.exc.OperationalError
                )
                if not transient or attempt == 4:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def audit_rows(self, registry: str | None = None, model: str | None = None) -> list[dict]:
        """The audit rows (of one registry and model), oldest first."""
        query = sa.select(alias_audit).order_by(alias_audit.c.id)
        if registry is not None:
            query = query.where(alias_audit.c.registry == registry)
        if model is not None:
            query = query.where(alias_audit.c.model == model)
        with self._connection() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    def _latest_by_key(self, connection, monitors, starts) -> dict[tuple, dict]:
        query = sa.select(results).where(
            results.c.monitor.in_(monitors) if None not in monitors else sa.true()
        )
        if None not in starts:
            query = query.where(results.c.window_start.in_(starts))
        latest: dict[tuple, dict] = {}
        for row in connection.execute(query).mappings():
            key = tuple(row[name] for name in KEY)
            if key not in latest or row["revision"] > latest[key]["revision"]:
                latest[key] = dict(row)
        return latest

    def _transaction(self):
        return _Guard(self, self.engine.begin)

    def _connection(self):
        return _Guard(self, self.engine.connect)

    @property
    def alerts(self):
        """This store's alert states, notifications and silences (``keel.store.alerts``)."""
        from keel.store.alerts import AlertStore

        return AlertStore(self)


class _Guard:
    """Turns database errors into StoreError naming the store (password hidden)."""

    def __init__(self, store: ResultStore, opener) -> None:
        self.store, self.opener, self.context = store, opener, None

    def __enter__(self):
        try:
            self.context = self.opener()
            return self.context.__enter__()
        except sa.exc.SQLAlchemyError as error:
            raise StoreError(
                f"cannot reach the results store at {self.store.name}: {_first_line(error)}"
            ) from error

    def __exit__(self, kind, error, traceback):
        try:
            suppressed = self.context.__exit__(kind, error, traceback)
        except sa.exc.SQLAlchemyError as failure:
            raise StoreError(
                f"the results store at {self.store.name} failed: {_first_line(failure)}"
            ) from failure
        if isinstance(error, sa.exc.SQLAlchemyError):  # rolled back by the context above
            raise StoreError(
                f"the results store at {self.store.name} failed, nothing was "
                f"written: {_first_line(error)}"
            ) from error
        return suppressed


def _insert_new(connection: sa.Connection) -> Any:
    """INSERT … ON CONFLICT (key_hash, revision) DO NOTHING, on SQLite and PostgreSQL."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif connection.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # another database: a plain insert, the unique index still refuses doubles
        return results.insert()
    return insert(results).on_conflict_do_nothing(index_elements=["key_hash", "revision"])


def _record(row: Result, run_id: int | None, created_at: str | None = None) -> dict[str, Any]:
    """A Result as a row of keel_results: its key, the key's hash, its value and details."""
    record = {name: getattr(row, name) for name in KEY}
    record["key_hash"] = key_hash(tuple(record[name] for name in KEY))
    record.update(
        value=row.value,
        threshold=row.threshold,
        status=row.status,
        revision=row.revision,
        details=json.dumps(row.details, default=str),
        run_id=run_id,
        created_at=created_at or _now(),
    )
    return record


def _without_nan_keys(row: Result) -> Result:
    """A key field read back through pandas may be NaN where the store has NULL: the same."""
    blanks = {
        name: None
        for name in KEY
        if isinstance(getattr(row, name), float) and getattr(row, name) != getattr(row, name)
    }
    return replace(row, **blanks) if blanks else row


def _same(previous: dict, row: Result) -> bool:
    if row.check == "window":  # a window's identity (rows, ingestion times) is exact
        return previous["value"] == row.value and previous["status"] == row.status
    return (
        previous["status"] == row.status
        and _close(previous["value"], row.value)
        and _close(previous["threshold"], row.threshold)
    )


def _close(a: float | None, b: float | None) -> bool:
    """Equal within 0.1%: a window's sketch-based statistics vary that much between two
    computations (KLL compaction is randomized), and that is not a new result."""
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-3 * max(abs(a), abs(b)) + 1e-12


def _alive(owner: str) -> bool:
    """Whether a lock's owner ("host:pid") still runs; another host's is assumed alive."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def audit_hash(row: dict, previous_hash: str) -> str:
    """The SHA-256 of an audit row's fields (``AUDIT_FIELDS``) and the previous row's hash.

    >>> row = dict.fromkeys(AUDIT_FIELDS, "x")
    >>> audit_hash(row, "") == audit_hash({**row, "reason": "y"}, "")
    False
    """
    import hashlib

    fields = {name: row.get(name) for name in AUDIT_FIELDS}
    text = json.dumps([previous_hash, fields], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def stamp(moment: datetime | None = None) -> str:
    """A moment as the store writes it: ISO 8601 in UTC to the microsecond (now by default).

    >>> stamp(datetime(2026, 3, 4, 5, 6, tzinfo=UTC))
    '2026-03-04T05:06:00.000000+00:00'
    """
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


def _now() -> str:
    return stamp()
