"""The gateway: validate, route, answer with the champion (or a canary), mirror to shadows,
log durably, answer. The HTTP app (``keel.serve.app``) is a thin shell over this.

Every logged record (format ``keel.serve/1``, docs/formats.md) carries the request id and
event time, the model's name and version, the route that answered (``champion`` or a
canary arm) and the ``role`` of the model that wrote it (``champion``, ``canary`` or
``shadow``), the entity keys, every input as served, the outputs and the latency; for a
model served with online features (``features:``), each feature's served value and its
``<name>__as_of`` (the moment up to which the online state is known complete, so the value
is current: the state's newest ingest, heartbeats included, or the request's time when
that is earlier), looked up by the request's entity keys at the request's time, which is
then its ``event_time``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keel.errors import ConfigError, DataError, KeelError
from keel.serve.config import ModelConfig, ServeConfig
from keel.serve.models import Deployment, LoadedModel, ModelSource, model_source
from keel.serve.routing import CHAMPION, pick_arm, route_key, shadow_sampled
from keel.serve.validation import AS_OF, InvalidInput

#: The version of the logged record's layout (docs/formats.md, "Served predictions").
RECORD_FORMAT = "keel.serve/1"
MAX_REQUEST_ID = 128
log = logging.getLogger("keel.serve")


class Refusal(KeelError):
    """A request the gateway answers with an error status and a reason."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.details = status, details

    def body(self) -> dict[str, Any]:
        """The JSON error body: ``detail`` says what was wrong and what to do."""
        return {"detail": str(self), **self.details}


@dataclass
class Served:
    """One model name's moving parts."""

    config: ModelConfig
    champion_source: ModelSource
    canary_sources: dict[str, ModelSource]
    deployment: Deployment
    log: Any
    shadow_log: Any
    shadows: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Where the champion before the last switch came from.
    previous_source: ModelSource | None = None
    #: A version rolled back from: not loaded again until the source names another.
    held_back: str | None = None
    #: The online features looked up for each request (None: the records carry them).
    features: FeatureLookup | None = None


#: The time column of the feature queries the gateway builds (never a request's column).
_REQUESTED_AT = "_keel_requested_at"


@dataclass
class FeatureLookup:
    """A model's online features: looked up by the request's entity keys at its time.

    A lookup that fails never takes serving down: with ``on_failure: refuse`` the request
    is answered 503 naming the feature (retry after 1 s); with ``null`` the feature is
    served as null and the log's ``features_error`` says why.
    """

    definitions: list[Any]
    state: Any  # keel.features.OnlineFeatures
    on_failure: str = "refuse"

    def look_up(self, records: list[Any], at: datetime) -> list[dict[str, Any]]:
        """Per record: each feature's value and ``<name>__as_of`` (plus ``features_error``)."""
        import pyarrow as pa

        names = {name for f in self.definitions for name in (f.name, f.as_of)}
        for index, record in enumerate(records):
            sent = sorted(names & set(record)) if isinstance(record, Mapping) else []
            if sent:
                raise InvalidInput(
                    f"record {index}, column {sent[0]!r}: an online feature the gateway looks "
                    "up by entity key; do not send it",
                    sent[0],
                    index,
                )
        columns = dict.fromkeys(c for f in self.definitions for c in f.entities)
        table = pa.table(
            {
                **{c: _key_column(records, c) for c in columns},
                _REQUESTED_AT: pa.array([at] * len(records), pa.timestamp("us", tz="UTC")),
            }
        )
        out: list[dict[str, Any]] = [{} for _ in records]
        for feature in self.definitions:
            try:
                got = self.state.get(table, at=_REQUESTED_AT, features=[feature.name])
                values = [_plain(v) for v in got[feature.name].to_pylist()]
                as_of = got[feature.as_of].to_pylist()
            except Exception as error:  # the store's failure must not take serving down
                reason = f"feature {feature.name!r}: {type(error).__name__}: {error}"
                log.error("online feature lookup failed: %s", reason)
                if self.on_failure == "refuse":
                    raise Refusal(
                        503,
                        f"not answering: the online feature {feature.name!r} could not be "
                        f"looked up ({type(error).__name__}: {error})",
                        feature=feature.name,
                        retry_after=1,
                    ) from None
                values, as_of = [None] * len(records), [None] * len(records)
                for served in out:
                    served["features_error"] = "; ".join(
                        filter(None, [served.get("features_error"), reason])
                    )
            for served, value, newest in zip(out, values, as_of, strict=True):
                served[feature.name], served[feature.as_of] = value, newest
        return out


def _key_column(records: list[Any], column: str) -> Any:
    """One entity key column of the records: text or integers as sent (other values, which
    validation refuses anyway, as null)."""
    import pyarrow as pa

    values = [r.get(column) if isinstance(r, Mapping) else None for r in records]
    values = [v if isinstance(v, str | int) and not isinstance(v, bool) else None for v in values]
    if all(isinstance(v, int) for v in values if v is not None):
        return pa.array(values, pa.int64())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def _plain(value: Any) -> Any:
    """A feature value as a model input: decimals as floats."""
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value


def _source(config: ModelConfig, location: str) -> ModelSource:
    version = config.version if location == config.model else None  # names the champion only
    return model_source(
        config.name, location, config.baseline, config.entity_keys, config.trusted, version
    )


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a number JSON allows (send a finite number or null)")


def parse_body(body: bytes) -> Any:
    """The request's JSON, refusing NaN and Infinity (400 for JSON that does not parse).

    >>> parse_body(b'{"record": {"a": 1}}')
    {'record': {'a': 1}}
    >>> try:
    ...     parse_body(b'{"record": {"a": NaN}}')
    ... except InvalidInput as error:
    ...     print(error)
    NaN is not a number JSON allows (send a finite number or null)
    """
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except InvalidInput:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise Refusal(400, f"the body is not valid JSON ({error})") from None


def _request_ids(payload: dict, count: int, single: bool) -> list[str]:
    given = payload.get("request_id") if single else payload.get("request_ids")
    if given is None:
        return [uuid.uuid4().hex for _ in range(count)]
    ids = [given] if single else given
    if not isinstance(ids, list) or len(ids) != count:
        raise InvalidInput(f"request_ids: a list of {count} ids, one per record")
    for index, value in enumerate(ids):
        if not isinstance(value, str) or not value or len(value) > MAX_REQUEST_ID:
            raise InvalidInput(
                f"request id {index}: text of 1 to {MAX_REQUEST_ID} characters, not {value!r}"
            )
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidInput(f"request id {index}: not valid Unicode") from None
    if len(set(ids)) != len(ids):
        raise InvalidInput("request_ids: each record needs its own id (two are the same)")
    return list(ids)


def _event_times(payload: dict, count: int, single: bool) -> list[datetime] | None:
    """The records' own event times (``accept_event_time: true``), aware, UTC; else None."""
    given = payload.get("event_time") if single else payload.get("event_times")
    if given is None:
        return None
    field_name = "event_time" if single else "event_times"
    times = [given] if single else given
    if not isinstance(times, list) or len(times) != count:
        raise InvalidInput(f"{field_name}: a list of {count} ISO 8601 times, one per record")
    parsed = []
    for index, value in enumerate(times):
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None:
            raise InvalidInput(f"{field_name} {index}: an ISO 8601 time, not {value!r}")
        parsed.append(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment)
    return parsed


class Gateway:
    """Serves the models of a ``ServeConfig`` (``start``, ``predict``, admin actions, ``close``)."""

    def __init__(self, config: ServeConfig) -> None:
        from keel.serve.metrics import ServeMetrics

        self.config = config
        self.metrics = ServeMetrics()
        self.served: dict[str, Served] = {}
        self.started_at: float | None = None
        self.notes: list[str] = []  # what an operator should know (a challenger that failed)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._store: Any = None
        #: One online feature state per (store URL, key prefix), shared by its models.
        self.feature_states: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Load every champion and canary (a failure stops the start: nothing to answer with),
        open the logs, start the shadows (one that fails to load is noted, not fatal)."""
        from keel.serve.shadow import ShadowRunner
        from keel.serve.wal import GroupCommitLog

        config = self.config
        for model_config in config.models:
            champion_source = _source(model_config, model_config.model)
            canary_sources = {
                arm: _source(model_config, location)
                for arm, location in model_config.canaries.items()
            }
            champion = champion_source.load()
            canaries = {arm: source.load() for arm, source in canary_sources.items()}
            deployment = Deployment(champion, canaries, dict(model_config.weights))
            logs = [
                GroupCommitLog(
                    config.log_root,
                    name,
                    config.log_mode,
                    config.compact_seconds,
                    self.metrics,
                    config.min_free_mb * 2**20,
                )
                for name in (model_config.name, f"{model_config.name}.shadow")
            ]
            served = Served(model_config, champion_source, canary_sources, deployment, *logs)
            if model_config.features is not None:
                served.features = self._feature_lookup(model_config)
            if not model_config.challengers and hasattr(champion_source, "has_alias"):
                try:  # a registry champion is shadowed by its challenger alias when it has one
                    if champion_source.has_alias("challenger"):
                        base = champion_source.uri.rpartition("@")[0]
                        model_config.challengers = {"challenger": f"{base}@challenger"}
                except KeelError as error:
                    self.notes.append(f"{model_config.name}: no challenger looked up ({error})")
            for challenger, location in model_config.challengers.items():
                spec = _source(model_config, location).spec()
                runner = ShadowRunner(
                    model_config.name,
                    challenger,
                    spec,
                    served.shadow_log.write_behind,
                    self.metrics,
                    *model_config.shadow(challenger),
                    config.drain_seconds,
                )
                runner.start()
                served.shadows[challenger] = runner
            self.served[model_config.name] = served
        self._publish_versions()
        self.started_at = time.time()
        self.retain()
        self._poller = threading.Thread(target=self._poll, name="keel-reload", daemon=True)
        self._poller.start()

    def _feature_lookup(self, model_config: ModelConfig) -> FeatureLookup:
        """The model's features, on the state of its store (opened once per store)."""
        from keel.features import OnlineFeatures
        from keel.features.online import default_url

        settings = model_config.features or {}
        definitions = model_config.feature_definitions()
        url = str(settings.get("store") or default_url(self.config.log_root))
        place = (url, str(settings.get("key_prefix") or ""))
        state = self.feature_states.get(place)
        known = {f.name: f for f in state.features} if state is not None else {}
        for feature in definitions:
            if feature.name in known and known[feature.name] != feature:
                raise ConfigError(
                    f"model {model_config.name!r}: feature {feature.name!r} is defined "
                    f"otherwise by another model on the store {url}"
                )
        merged = [*known.values(), *(f for f in definitions if f.name not in known)]
        if state is not None:
            state.close()
        self.feature_states[place] = OnlineFeatures(
            merged, url, key_prefix=place[1], lateness=settings.get("lateness", "1D")
        )
        for served in self.served.values():  # models opened before share the new state
            if served.features is not None and served.features.state is state:
                served.features.state = self.feature_states[place]
        return FeatureLookup(
            definitions, self.feature_states[place], settings.get("on_failure", "refuse")
        )

    def ingest_features(self, body: bytes) -> dict[str, Any]:
        """``POST /v1/features/ingest``: ``{"records": [EVENT, ...]}`` into the event log and
        every online feature state served here, stamped available now
        (``keel.features.ingest``). ``{"records": []}`` is a heartbeat: nothing is logged,
        and every state's watermark moves to now (its values are current up to then)."""
        import pyarrow as pa

        from keel.features import ingest

        if not self.feature_states:
            raise Refusal(404, "no online features are served here (no model has features:)")
        payload = parse_body(body)
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(payload, dict) or set(payload) != {"records"}:
            raise InvalidInput('the body is {"records": [EVENT, ...]}')
        if not isinstance(records, list):
            raise InvalidInput("records: a list of events (empty: a heartbeat)")
        if not all(isinstance(record, Mapping) for record in records):
            raise InvalidInput("records: each event is an object of column values")
        try:
            table = pa.Table.from_pylist(records)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
            raise InvalidInput(f"the events do not make a table: {error}") from None
        from keel.features.definition import WindowedFeature

        stamp = datetime.now(UTC)
        everything: dict[str, WindowedFeature] = {}
        for state in self.feature_states.values():
            everything.update({f.name: f for f in state.features})
        try:  # the event log first: what the offline engine (and a retry's judge) reads
            taken = ingest(
                table,
                features=list(everything.values()),
                root=self.config.log_root,
                online=False,
                now=stamp,
            )
        except KeelError as error:
            raise InvalidInput(str(error)) from None
        failed: dict[str, str] = {}
        for (url, prefix), state in self.feature_states.items():
            try:
                state.ingest(table, now=stamp)
            except Exception as error:  # a store that is down: said, and serving goes on
                where = f"{url} {prefix}".strip()
                failed[where] = f"{type(error).__name__}: {error}"
                log.error("feature ingest into %s failed: %s", where, failed[where])
        return {"ingested": taken, "available_time": stamp.isoformat(), "failed": failed}

    def wait_for_shadows(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the shadows to load (or fail); note the ones that failed."""
        deadline = time.monotonic() + seconds
        runners = [r for s in self.served.values() for r in s.shadows.values()]
        while time.monotonic() < deadline and any(r.state == "starting" for r in runners):
            time.sleep(0.05)
        for runner in runners:
            if runner.state != "running":
                note = (
                    f"shadow {runner.challenger!r} of {runner.model!r} is {runner.state}: "
                    f"{runner.reason}; the champion is served without it"
                )
                self.notes.append(note)
                log.warning(note)
        self._publish_versions()

    def close(self) -> None:
        """Stop polling, drain the shadows, write and compact every log."""
        self._stop.set()
        for served in self.served.values():
            for runner in served.shadows.values():
                runner.close()
        for served in self.served.values():
            served.log.close()
            served.shadow_log.close()
        for state in self.feature_states.values():
            state.close()
        import gc

        gc.collect()  # the shadows' queues release their semaphores now, not at a signal

    def _poll(self) -> None:
        """Reload every ``reload_seconds`` (when > 0); apply retention every hour."""
        interval = self.config.reload_seconds if self.config.reload_seconds > 0 else 3600.0
        retained = time.monotonic()
        while not self._stop.wait(min(interval, 3600.0)):
            if self.config.reload_seconds > 0:
                for name in list(self.served):
                    try:
                        self.reload(name, actor="reload_seconds")
                    except KeelError as error:
                        log.warning("reload of %r failed: %s", name, error)
            if time.monotonic() - retained >= 3600.0:
                retained = time.monotonic()
                self.retain()

    def retain(self) -> list[str]:
        """Delete the log days older than each model's ``log_retention_days`` (its
        predictions, its shadows', labels and rejected rows); returns what was removed."""
        from keel.store.logs import retain

        removed = []
        for name, served in self.served.items():
            days = served.config.log_retention_days
            if days is None:
                continue
            for logged in (name, f"{name}.shadow"):
                try:
                    removed += [
                        f"{logged}/{day}" for day in retain(self.config.log_root, logged, int(days))
                    ]
                except OSError as error:
                    log.error("retention of %s failed: %s", logged, error)
        if removed:
            log.warning("retention removed %s", ", ".join(removed))
        return removed

    def _publish_versions(self) -> None:
        versions: dict[str, dict[str, Any]] = {}
        for name, served in self.served.items():
            arms = {CHAMPION: served.deployment.champion.version}
            arms.update({arm: m.version for arm, m in served.deployment.canaries.items()})
            arms.update(
                {f"shadow:{c}": r.version or "not running" for c, r in served.shadows.items()}
            )
            versions[name] = arms
        self.metrics.set_models(versions)

    # ------------------------------------------------------------ predicting

    def _served(self, name: str) -> Served:
        served = self.served.get(name)
        if served is None:
            raise Refusal(404, f"no model {name!r} is served here (models: {sorted(self.served)})")
        return served

    async def predict(self, name: str, body: bytes) -> dict[str, Any]:
        """Answer a prediction request's body (one ``record`` or a batch of ``records``).

        Raises ``Refusal`` (with its status) or ``InvalidInput`` (422)."""
        started = time.perf_counter()
        served = self._served(name)
        payload = parse_body(body)
        if not isinstance(payload, dict):
            raise InvalidInput("the body must be an object with 'record' or 'records'")
        single = "record" in payload
        allowed = {"record", "request_id"} if single else {"records", "request_ids"}
        if self.config.accept_event_time:  # a replay or a backfill names its own times
            allowed |= {"event_time"} if single else {"event_times"}
        if single == ("records" in payload):
            raise InvalidInput("the body needs exactly one of 'record' (one) or 'records' (a list)")
        extra = sorted(set(payload) - allowed)
        if extra:
            raise InvalidInput(f"unknown field(s) {extra} in the body (allowed: {sorted(allowed)})")
        records = [payload["record"]] if single else payload["records"]
        if not isinstance(records, list) or not records:
            raise InvalidInput("records: a non-empty list of records")
        if len(records) > self.config.max_batch:
            raise Refusal(
                413, f"{len(records)} records in one request; at most {self.config.max_batch}"
            )
        deployment = served.deployment  # one snapshot for the whole request
        champion: LoadedModel = deployment.champion
        looked_up: list[dict[str, Any]] | None = None
        requested_at = None
        if served.features is not None:
            requested_at = datetime.now(UTC)
            looked_up = await asyncio.to_thread(served.features.look_up, records, requested_at)
            inputs = set(champion.inputs.names)
            records = [
                {**r, **{k: v for k, v in found.items() if k in inputs}}
                if isinstance(r, Mapping)
                else r
                for r, found in zip(records, looked_up, strict=True)
            ]
        rows = champion.inputs.check(records)
        ids = _request_ids(payload, len(rows), single)
        given_times = _event_times(payload, len(rows), single)
        config = served.config
        refuse = self.config.log_mode == "fast" and self.config.on_log_failure == "refuse"
        if refuse and not served.log.usable():
            raise Refusal(
                503,
                f"not answering: the prediction log cannot be written ({served.log.error})",
                retry_after=1,
            )
        keys = [route_key(row, config.entity_keys, rid) for row, rid in zip(rows, ids, strict=True)]
        routed = len(deployment.weights) > 1
        arms = [
            pick_arm(config.routing_salt, key, deployment.weights) if routed else CHAMPION
            for key in keys
        ]
        outputs: list[dict[str, Any] | None] = [None] * len(rows)
        versions: list[str] = [""] * len(rows)
        for arm in sorted(set(arms)):
            model = deployment.arm(arm)
            picked = [i for i, a in enumerate(arms) if a == arm]
            try:
                answers = model.predict([rows[i] for i in picked])
            except Exception as error:  # the model's failure is the server's, said plainly
                log.exception("model %s (%s) failed", name, model.version)
                raise Refusal(
                    500,
                    f"model {name!r} version {model.version} failed on this input: "
                    f"{type(error).__name__}: {error}",
                ) from error
            for i, answer in zip(picked, answers, strict=True):
                outputs[i], versions[i] = answer, model.version
        answered = time.perf_counter()
        latency_ms = round((answered - started) * 1000, 3)
        event_time = requested_at or datetime.now(UTC)  # the moment the features were seen at
        times = given_times or [event_time] * len(rows)
        entity = config.entity_keys
        features = looked_up or [{} for _ in rows]
        bases = [
            {
                "request_id": rid,
                "event_time": at,
                "model_name": name,
                "route": arm,
                **{key: row.get(key) for key in entity},
                **{column: row[column] for column in champion.inputs.names},
                **{key: value for key, value in row.items() if key.endswith(AS_OF)},
                **found,
                "record_format": RECORD_FORMAT,
            }
            for rid, arm, row, found, at in zip(ids, arms, rows, features, times, strict=True)
        ]
        logged = [
            {
                **base,
                "model_version": version,
                "role": CHAMPION if arm == CHAMPION else "canary",
                **(output or {}),
                "latency_ms": latency_ms,
            }
            for base, arm, version, output in zip(bases, arms, versions, outputs, strict=True)
        ]
        self._mirror(served, rows, keys, bases, versions)
        if self.config.log_mode == "durable":
            try:
                await served.log.commit(logged, self.config.commit_timeout)
            except DataError as error:
                if self.config.on_log_failure == "refuse":
                    raise Refusal(
                        503,
                        f"not answering: the prediction could not be logged ({error})",
                        retry_after=1,
                    ) from None
                log.error("answered without logging: %s", error)
        else:
            try:
                served.log.write_behind(logged)
            except DataError as error:
                raise Refusal(503, str(error)) from None
        seconds = time.perf_counter() - started
        for arm in set(arms):
            self.metrics.latency.labels(name, arm).observe(seconds)
            self.metrics.records.labels(name, arm).inc(arms.count(arm))
        answers = [
            {"request_id": rid, "model_version": version, "route": arm, **(output or {})}
            for rid, version, arm, output in zip(ids, versions, arms, outputs, strict=True)
        ]
        if single:
            return {"model": name, **answers[0]}
        return {"model": name, "predictions": answers}

    def _mirror(
        self,
        served: Served,
        rows: list[dict],
        keys: list[str],
        bases: list[dict],
        versions: list[str],
    ) -> None:
        if not served.shadows:
            return
        config = served.config
        salt = f"{config.routing_salt}/shadow"
        picked = [i for i, key in enumerate(keys) if shadow_sampled(salt, key, config.shadow_share)]
        if not picked:
            return
        for challenger, runner in served.shadows.items():
            runner.offer(
                [rows[i] for i in picked],
                [
                    {
                        **bases[i],
                        "role": "shadow",
                        "challenger": challenger,
                        "answered_by_version": versions[i],
                    }
                    for i in picked
                ],
            )

    # ------------------------------------------------------------ status

    def models(self) -> dict[str, Any]:
        """What is served: per model its arms (versions, weights), shadows and log."""
        out = {}
        for name, served in self.served.items():
            deployment = served.deployment
            out[name] = {
                "champion": {
                    "version": deployment.champion.version,
                    "uri": deployment.champion.uri,
                },
                "canaries": {
                    arm: {"version": m.version, "uri": m.uri}
                    for arm, m in deployment.canaries.items()
                },
                "weights": dict(deployment.weights),
                "previous": deployment.previous.version if deployment.previous else None,
                "shadows": {c: r.status() for c, r in served.shadows.items()},
                "inputs": served.deployment.champion.inputs.names,
                "entity_keys": list(served.config.entity_keys),
                **(
                    {
                        "features": {
                            "names": [f.name for f in served.features.definitions],
                            "store": served.features.state.url,
                            "on_failure": served.features.on_failure,
                        }
                    }
                    if served.features is not None
                    else {}
                ),
                "log": {
                    "mode": self.config.log_mode,
                    "committed": served.log.committed,
                    "backlog": served.log.backlog,
                    "error": served.log.error,
                },
            }
        return out

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when every champion is loaded and every log can be written now."""
        reasons = []
        for name, served in self.served.items():
            for log_ in (served.log, served.shadow_log):
                problem = log_.problem()
                if problem is not None:
                    reasons.append(f"{name}: {problem}")
        if not self.served:
            reasons.append("no model loaded")
        shadows = {
            f"{name}/{c}": r.status()["state"]
            for name, served in self.served.items()
            for c, r in served.shadows.items()
        }
        return not reasons, {
            "ready": not reasons,
            "reasons": reasons,
            "models": {n: s.deployment.champion.version for n, s in self.served.items()},
            "shadows": shadows,
            "notes": self.notes,
        }

    # ------------------------------------------------------------ admin actions

    def _audit(self, actor: str, action: str, name: str, detail: dict[str, Any]) -> None:
        log.warning("admin %s by %s on %s: %s", action, actor, name, json.dumps(detail))
        store = self._store
        if store is not None and hasattr(store, "log_event"):
            try:
                store.log_event(actor, f"serve {action}", subject=name, details=detail)
            except Exception as error:  # the action is done; its audit line is said
                log.error("audit of %s by %s not stored: %s", action, actor, error)
        self._publish_versions()

    def set_weights(self, name: str, weights: dict[str, float], actor: str) -> dict[str, Any]:
        """New canary weights for ``name`` (sticky: raising a canary only moves keys onto it)."""
        served = self._served(name)
        with served.lock:
            served.deployment = served.deployment.with_weights(weights)
        self._audit(actor, "weights", name, dict(served.deployment.weights))
        return self.models()[name]

    def promote(self, name: str, arm: str, actor: str) -> dict[str, Any]:
        """A canary arm, or a shadow challenger (loaded here), becomes the champion."""
        served = self._served(name)
        with served.lock:
            deployment = served.deployment
            if arm in deployment.canaries:
                served.deployment = deployment.promoted(arm)
                source = served.canary_sources.pop(arm)
            elif arm in served.config.challengers:
                source = _source(served.config, served.config.challengers[arm])
                served.deployment = deployment.with_champion(source.load())
            else:
                source = None
            if source is not None:
                served.previous_source, served.champion_source = served.champion_source, source
            if source is None:
                choices = sorted([*deployment.canaries, *served.config.challengers])
                raise ConfigError(f"nothing named {arm!r} to promote (choices: {choices})")
        self._audit(
            actor, "promote", name, {"arm": arm, "version": served.deployment.champion.version}
        )
        return self.models()[name]

    def rollback(self, name: str, actor: str) -> dict[str, Any]:
        """The previous champion answers again; the version rolled back from is not reloaded
        (by the poll or an admin reload) until its source names another version."""
        served = self._served(name)
        with served.lock:
            served.held_back = served.deployment.champion.version
            served.deployment = served.deployment.rolled_back()
            if served.previous_source is not None:
                served.previous_source, served.champion_source = (
                    served.champion_source,
                    served.previous_source,
                )
        self._audit(actor, "rollback", name, {"version": served.deployment.champion.version})
        return self.models()[name]

    def reload(self, name: str, actor: str) -> dict[str, Any]:
        """Load any new version of the champion and canaries beside the old, then switch;
        restart shadows whose source has a new version (or that failed to load)."""
        served = self._served(name)
        changed: dict[str, str] = {}
        with served.lock:
            deployment = served.deployment
            version = served.champion_source.current_version()
            if version != deployment.champion.version and version != served.held_back:
                deployment = deployment.with_champion(served.champion_source.load())
                served.previous_source = served.champion_source  # same place, older version
                changed[CHAMPION] = version
            canaries = dict(deployment.canaries)
            for arm, source in served.canary_sources.items():
                version = source.current_version()
                if arm not in canaries or version != canaries[arm].version:
                    canaries[arm] = source.load()
                    changed[arm] = version
            if changed:
                from dataclasses import replace

                served.deployment = replace(deployment, canaries=canaries)
        for challenger, runner in served.shadows.items():
            source = _source(served.config, served.config.challengers[challenger])
            try:
                version = source.current_version()
            except KeelError:
                continue
            if runner.state in ("failed",) or (runner.version and version != runner.version):
                runner.restart(source.spec())
                changed[f"shadow:{challenger}"] = version
        if changed:
            self._audit(actor, "reload", name, changed)
        return {"changed": changed, **self.models()[name]}

    def forget(self, name: str, request: dict[str, Any], actor: str) -> dict[str, Any]:
        """Forget entities of ``name``'s logs (``keel.store.logs.forget``): what was logged
        for them before now goes from every file; returns the rows removed per log."""
        from keel.store.logs import forget

        served = self._served(name)
        column, values = request.get("column"), request.get("values")
        if column is None and len(served.config.entity_keys) == 1:
            column = served.config.entity_keys[0]
        if not isinstance(column, str) or not column:
            raise InvalidInput(
                'the body is {"column": ENTITY_KEY, "values": [VALUE, ...]} '
                f"(entity keys of {name!r}: {list(served.config.entity_keys)})"
            )
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values)
        ):
            raise InvalidInput('"values": a non-empty list of entity key values (text or integers)')
        for log_ in (served.log, served.shadow_log):
            log_.compact()  # what this worker has written is in files forget can rewrite
        counts = forget(self.config.log_root, name, column, values, actor=actor)
        self._audit(actor, "forget", name, {"column": column, "entities": len(values), **counts})
        return {"model": name, "column": column, "removed": counts}

    async def run_admin(self, action: Any, *args: Any) -> Any:
        """Run an admin action off the event loop (loading a model takes a while)."""
        return await asyncio.to_thread(action, *args)

    def admin_store(self) -> Any:
        """The store holding the admin tokens (opened on first use)."""
        if self._store is None:
            from keel.store import ResultStore

            self._store = ResultStore(self.config.store_url)
        return self._store
