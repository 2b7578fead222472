"""The retrain job: from a monitor's stored diagnoses to a registered ``challenger``.

``run_retrain(monitor, store, now)`` reads the monitor's window diagnoses and matured
label counts back from the store (``store.latest``), asks ``decide`` what to do, and
writes the decision as an event (``retrain decision``: retrain, wait, page or none, and
why). When the decision is to retrain it

1. selects the training rows: the policy's ``training_window.last`` of the monitor's
   prediction log with matured labels joined (``keel.store.queries.read_labelled``),
   without the windows diagnosed as excluded verdicts (pipeline faults by default);
2. runs the user's entrypoint (``module:function``, called as ``keel train`` calls it:
   ``function(train: pyarrow.Table, params: dict) -> model``) in a **subprocess** with the
   policy's ``timeout``: a hang is killed with its process group;
3. the subprocess registers the candidate through ``keel.track`` (its lineage record
   holds the trigger, the window and the excluded windows under ``retrain``; its own
   baseline is built from its training rows);
4. the candidate gets the ``challenger`` alias through ``keel.registry.aliases.promote``
   (audited, actor ``keel-retrain``).

A job that fails (the entrypoint raises, hangs, returns something with no ``predict``,
or there are no rows to train on) is a ``retrain failed`` event and an alerting Result
(check ``retrain``, metric ``retrain_failed``), never an exception out of
``run_retrain``. One job at a time per monitor: the store's named lock
``retrain:<monitor>``; a second call while one runs returns ``busy`` and starts nothing.

>>> RetrainOutcome("none", "no trigger (latest window: healthy)").exit_code
0
>>> RetrainOutcome("failed", "the entrypoint raised ValueError: boom").exit_code
1
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import KeelError, MonitorBusy
from keel.result import Result
from keel.retrain.policy import RetrainPolicy, TriggerDecision, WindowDiagnosis, decide, duration

if TYPE_CHECKING:  # the monitor imports the policy; the job never imports the monitor
    from keel.monitor.config import MonitorConfig

ACTOR = "keel-retrain"
CHALLENGER, CHAMPION = "challenger", "champion"
#: The share of the selected rows (the latest, by time) the candidate is scored on.
HOLDOUT_LAST = "20%"
#: Log columns that are the serving system's, never the model's inputs.
LOG_COLUMNS = ("request_id", "model_version", "label_time", "score", "prediction")
#: Where a job's training rows are kept (relative to the working folder, as the registry's
#: cache is): the candidate's lineage names the file.
RETRAIN_DATA = Path(".keel") / "retrain-data"


class RetrainFailed(KeelError):
    """A retrain job that did not produce a registered challenger (the reason is said)."""


class SchemaMismatch(RetrainFailed):
    """The candidate's baseline schema is not the champion's: ``changes`` names the
    columns (``added``, ``removed``, ``retyped``)."""

    def __init__(self, message: str, changes: dict[str, Any]) -> None:
        super().__init__(message)
        self.changes = changes


@dataclass
class RetrainOutcome:
    """What one ``run_retrain`` call did: ``status`` is ``nothing`` (the decision was not
    to retrain), ``done`` (a challenger was registered), ``failed`` or ``busy`` (another
    job of this monitor is running; this call started nothing)."""

    status: str
    reason: str
    decision: TriggerDecision | None = None
    challenger: str | None = None
    training_rows: int = 0
    results: list[Result] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 nothing to do, done or busy; 1 a job failed."""
        return 1 if self.status == "failed" else 0


def run_retrain(
    monitor: MonitorConfig,
    store: Any,
    now: datetime | None = None,
    *,
    registry: Any = None,
    python: str | None = None,
) -> RetrainOutcome:
    """Decide, and when the decision is to retrain, run one job (see the module docstring).

    ``registry``: where the candidate goes (default: ``open_registry(store=store)``).
    ``python``: the interpreter of the job's subprocess (default: this one).
    """
    now = _aware(now or datetime.now(UTC))
    policy: RetrainPolicy | None = getattr(monitor, "retrain", None)
    if policy is None:
        return RetrainOutcome("nothing", f"monitor {monitor.name!r} has no retrain: policy")
    try:
        with store.monitor_lock(f"retrain:{monitor.name}"):
            return _run_locked(monitor, store, now, policy, registry, python)
    except MonitorBusy:
        reason = f"another retrain job of monitor {monitor.name!r} is running: this one waits"
        store.log_event(ACTOR, "retrain skipped", subject=monitor.name, details={"reason": reason})
        return RetrainOutcome("busy", reason)


def _run_locked(monitor, store, now, policy, registry, python) -> RetrainOutcome:
    diagnoses = stored_diagnoses(
        store, monitor.name, now, champion_version(monitor, store, registry)
    )
    diagnoses = judged_by_labels(diagnoses, store, monitor)
    since = now - duration(policy.training_window.last)
    matured = matured_labels(store, monitor.name, since, now)
    last = last_retrain(store, monitor.name)
    decision = decide(policy, diagnoses, now, last_retrain=last, matured_labels=matured)
    store.log_event(
        ACTOR,
        "retrain decision",
        subject=monitor.name,
        details={
            "action": decision.action,
            "reason": decision.reason,
            "trigger": decision.trigger,
            "matured_labels": matured,
            "now": now.isoformat(),
        },
    )
    if not decision.retrain:
        return RetrainOutcome("nothing", decision.reason, decision)
    try:
        if policy.entrypoint is None:
            raise RetrainFailed("the retrain: policy names no entrypoint (module:function)")
        registry = registry if registry is not None else _open_registry(store)
        rows, target = training_rows(monitor, decision, now)
        store.log_event(
            ACTOR,
            "retrain started",
            subject=monitor.name,
            details={"entrypoint": policy.entrypoint, "rows": rows.num_rows},
        )
        produced = _train_in_subprocess(
            monitor, policy, decision, store, registry, rows, target, python
        )
        check_schema(monitor, registry, produced)
        from keel.registry.aliases import promote

        promote(
            registry,
            store,
            monitor.model,
            produced["version"],
            CHALLENGER,
            decision.reason,
            ACTOR,
            action="challenge",
        )
    except Exception as error:  # noqa: BLE001 - a failed job is an event and an alert
        changes = getattr(error, "changes", None)
        return _failed(monitor, store, now, decision, str(error) or type(error).__name__, changes)
    result = Result(
        "retrain",
        None,
        "training_rows",
        float(rows.num_rows),
        None,
        "ok",
        **_where(monitor, decision, now),
        details={"challenger": produced["ref"], "run": produced["run_id"]},
    )
    store.write([result])
    store.log_event(
        ACTOR,
        "challenger registered",
        subject=monitor.name,
        details={
            "challenger": produced["ref"],
            "run": produced["run_id"],
            "rows": rows.num_rows,
            "reason": decision.reason,
            "now": now.isoformat(),  # the decision's own time: a replay's, not the clock's
        },
    )
    return RetrainOutcome(
        "done", decision.reason, decision, produced["ref"], rows.num_rows, [result]
    )


def _failed(monitor, store, now, decision, reason: str, changes=None) -> RetrainOutcome:
    said = {"reason": reason, **({"schema": changes} if changes else {})}
    result = Result(
        "retrain",
        None,
        "retrain_failed",
        1.0,
        0.0,
        "alert",
        **_where(monitor, decision, now),
        details={**said, "trigger": decision.trigger},
    )
    store.write([result])
    store.log_event(ACTOR, "retrain failed", subject=monitor.name, details=said)
    return RetrainOutcome("failed", reason, decision, results=[result])


def _where(monitor, decision: TriggerDecision, now: datetime) -> dict[str, Any]:
    start = decision.training_window[0] if decision.training_window else now
    return {
        "monitor": monitor.name,
        "model": monitor.model,
        "window_start": start.isoformat(),
        "window_end": now.isoformat(),
    }


# -- the candidate's schema ---------------------------------------------------------------


def check_schema(monitor: MonitorConfig, registry: Any, produced: dict) -> None:
    """Raise ``SchemaMismatch`` when the candidate's baseline schema differs from the
    champion's (the ``champion`` version's baseline; without one, the monitor's): a model
    that reads other columns, or reads a column as another kind, is not a challenger the
    monitor or the gateway can judge against the champion."""
    from keel.baseline import Baseline
    from keel.registry.base import BASELINE_ARTIFACT

    candidate = registry.get_version(monitor.model, produced["version"])
    mine = Baseline.from_bytes(registry.run_artifact(candidate.run_id, BASELINE_ARTIFACT))
    champion = registry.aliases(monitor.model).get(CHAMPION)
    theirs, named = None, f"the monitor's baseline {monitor.baseline}"
    if champion is not None and champion != produced["version"]:
        version = registry.get_version(monitor.model, champion)
        if version.run_id is not None and version.tags.get("keel.baseline"):
            data = registry.run_artifact(version.run_id, BASELINE_ARTIFACT)
            theirs, named = Baseline.from_bytes(data), f"the champion {version.ref}"
    if theirs is None:
        theirs = Baseline.load(monitor.baseline)
    changes = schema_changes(theirs.schema, mine.schema)
    if changes:
        raise SchemaMismatch(
            f"the candidate {candidate.ref}'s schema differs from {named}'s: "
            f"{describe_changes(changes)}; it gets no challenger alias",
            changes,
        )


def schema_changes(champion: Any, candidate: Any) -> dict[str, Any]:
    """The feature columns (and the target) the candidate's schema adds, removes or reads
    as another kind, against the champion's; empty when they agree.

    >>> import pyarrow as pa
    >>> from keel.schema import Schema
    >>> old = Schema.infer(pa.table({"age": [31, 45, 27], "city": ["x", "y", "x"]}))
    >>> new = Schema.infer(pa.table({"age": ["31", "45", "27"], "zip": [1.5, 2.5, 3.5]}))
    >>> changes = schema_changes(old, new)
    >>> changes["added"], changes["removed"], changes["retyped"]
    (['zip'], ['city'], {'age': 'numeric (int64) -> categorical (string)'})
    >>> schema_changes(old, old)
    {}
    """

    def judged(schema: Any) -> dict[str, Any]:
        return {c.name: c for c in schema.columns if c.role in ("feature", "target")}

    theirs, mine = judged(champion), judged(candidate)
    changes: dict[str, Any] = {}
    added = sorted(set(mine) - set(theirs))
    removed = sorted(set(theirs) - set(mine))
    retyped = {
        name: f"{_typed(theirs[name])} -> {_typed(mine[name])}"
        for name in sorted(set(mine) & set(theirs))
        if theirs[name].kind != mine[name].kind
    }
    if added:
        changes["added"] = added
    if removed:
        changes["removed"] = removed
    if retyped:
        changes["retyped"] = retyped
    return changes


def _typed(column: Any) -> str:
    return f"{column.kind} ({column.dtype})"


def describe_changes(changes: dict[str, Any]) -> str:
    """One line: 'added zip; removed city; retyped age (numeric (int64) -> ...)'."""
    parts = [f"added {', '.join(changes['added'])}"] if changes.get("added") else []
    if changes.get("removed"):
        parts.append(f"removed {', '.join(changes['removed'])}")
    for name, how in (changes.get("retyped") or {}).items():
        parts.append(f"retyped {name} ({how})")
    return "; ".join(parts)


# -- what the store holds -----------------------------------------------------------------


def champion_version(monitor: MonitorConfig, store: Any, registry: Any = None) -> str | None:
    """The champion's version as the logs name it ("3"), or None when the registry has no
    champion (or cannot be read: the decision then reads every series)."""
    try:
        registry = registry if registry is not None else _open_registry(store)
        found = registry.aliases(monitor.model).get(CHAMPION)
    except Exception:  # noqa: BLE001 - no registry is no champion, not a failed decision
        return None
    return None if found is None else str(found)


def stored_diagnoses(
    store: Any, monitor: str, now: datetime, version: str | None = None
) -> list[WindowDiagnosis]:
    """The monitor's whole-window diagnoses (no segment) that ended by ``now``, oldest first.
    A stream alarm's diagnosis is an instant (its window starts where it ends), not a
    window: it is left out, so it never breaks a trigger's run of windows.

    ``version``: the champion's version; another version's series is left out (after a
    promotion the old champion's windows are not the new one's to answer for), while a
    log that names no version is every version's."""
    frame = store.latest(monitor=monitor, check="diagnosis", metric="verdict")
    found = []
    for row in frame.to_dict("records"):
        if isinstance(row.get("segment"), str) or not row.get("window_end"):
            continue
        served = row.get("model_version")
        if version is not None and isinstance(served, str) and served and served != version:
            continue
        if row["window_start"] == row["window_end"]:
            continue
        diagnosis = WindowDiagnosis.from_mapping(
            {
                **row,
                "window_start": _parse(row["window_start"]),
                "window_end": _parse(row["window_end"]),
            }
        )
        if diagnosis.window_end <= now:
            found.append(diagnosis)
    return sorted(found, key=lambda w: w.window_end)


def judged_by_labels(
    diagnoses: list[WindowDiagnosis], store: Any, monitor: MonitorConfig
) -> list[WindowDiagnosis]:
    """The diagnoses, each marked ``judged`` when its window's labelled share reached the
    monitor's ``performance.min_labelled_share``: a window whose labels have not come yet
    cannot show concept drift, so a trigger on it reads the latest judged windows."""
    from dataclasses import replace

    performance = getattr(monitor, "performance", None)
    if performance is None:
        return diagnoses
    frame = store.latest(monitor=monitor.name, check="labels", metric="labelled_share")
    shares = {
        _parse(row["window_end"]): row.get("value")
        for row in frame.to_dict("records")
        if not isinstance(row.get("segment"), str) and row.get("window_end")
    }
    least = performance.min_labelled_share
    if least <= 0:
        return diagnoses
    return [replace(w, judged=(shares.get(w.window_end) or 0.0) >= least) for w in diagnoses]


def matured_labels(store: Any, monitor: str, since: datetime, now: datetime) -> int:
    """Matured labels in the monitor's windows inside (``since``, ``now``]: the sum of the
    ``labels``/``labelled_share`` Results' ``labelled`` counts (labels past their maturity
    when the window was checked)."""
    frame = store.latest(monitor=monitor, check="labels", metric="labelled_share")
    total = 0
    for row in frame.to_dict("records"):
        if isinstance(row.get("segment"), str) or not row.get("window_end"):
            continue
        if since <= _parse(row["window_start"]) and _parse(row["window_end"]) <= now:
            total += int((row.get("details") or {}).get("labelled", 0))
    return total


def last_retrain(store: Any, monitor: str) -> datetime | None:
    """When this monitor last registered a challenger (its ``challenger registered`` event):
    the decision's own time (``--now`` in a replay), else when the event was written."""
    events = store.events()
    done = events[(events["action"] == "challenger registered") & (events["subject"] == monitor)]
    if not len(done):
        return None
    details = json.loads(done["details"].iloc[-1] or "{}")
    return _parse(details.get("now") or done["at"].iloc[-1])


# -- the data -----------------------------------------------------------------------------


def training_rows(monitor: MonitorConfig, decision: TriggerDecision, now: datetime):
    """(rows, target): the labelled, matured rows of the decision's training window, the
    excluded windows left out, with the baseline's columns (features, target, timestamp)."""
    import pyarrow.compute as pc

    from keel.baseline import Baseline
    from keel.store.logs import log_root
    from keel.store.queries import read_labelled

    assert decision.training_window is not None
    start, end = decision.training_window
    baseline = Baseline.load(monitor.baseline)
    targets = [c.name for c in baseline.schema.by_role("target")]
    table = read_labelled(log_root(monitor.logs), monitor.model, start, end)
    performance = getattr(monitor, "performance", None)
    label = performance.label if performance is not None else None
    target = label if label and label in table.column_names else (targets or [label])[0]
    if not table.num_rows or target not in table.column_names:
        raise RetrainFailed(
            f"no labelled rows to train on in {start.isoformat()} .. {end.isoformat()} "
            f"(label column {target!r})"
        )
    keep = pc.is_valid(table.column(target))
    if "label_time" in table.column_names:  # matured: the label's outcome is in by now
        maturity = timedelta(0)
        if performance is not None and performance.label_maturity:
            from keel.windows import duration_seconds

            maturity = timedelta(seconds=duration_seconds(performance.label_maturity))
        matured = pc.less_equal(table.column("label_time"), _arrow_time(now - maturity))
        keep = pc.and_kleene(keep, pc.fill_null(matured, False))
    times = table.column(monitor.timestamp)
    for low, high in decision.excluded_windows:
        inside = pc.and_(
            pc.greater_equal(times, _arrow_time(low)), pc.less(times, _arrow_time(high))
        )
        keep = pc.and_kleene(keep, pc.invert(pc.fill_null(inside, False)))
    rows = table.filter(pc.fill_null(keep, False))
    wanted = [c.name for c in baseline.schema.columns if c.role == "feature"]
    columns = [c for c in wanted if c in rows.column_names and c not in LOG_COLUMNS]
    columns += [c for c in (target, monitor.timestamp) if c not in columns]
    rows = rows.select(columns)
    if rows.num_rows < 10:
        raise RetrainFailed(f"only {rows.num_rows} labelled, matured rows to train on")
    return rows, target


def _arrow_time(moment: datetime) -> Any:
    import pyarrow as pa

    return pa.scalar(_aware(moment), pa.timestamp("us", tz="UTC"))


# -- the subprocess -----------------------------------------------------------------------


def _train_in_subprocess(monitor, policy, decision, store, registry, rows, target, python):
    with tempfile.TemporaryDirectory(prefix="keel-retrain-") as folder:
        data, answer = kept_training_rows(monitor, rows), Path(folder) / "answer.json"
        spec = {
            "name": monitor.model,
            "entrypoint": policy.entrypoint,
            "data": str(data),
            "target": target,
            "timestamp": monitor.timestamp,
            "store": store.engine.url.render_as_string(hide_password=False),
            "registry": {"kind": registry.kind, "root": str(getattr(registry, "root", "") or "")},
            "answer": str(answer),
            "lineage": {
                "monitor": monitor.name,
                "trigger": decision.trigger,
                "reason": decision.reason,
                "window": [t.isoformat() for t in decision.training_window or ()],
                "excluded_windows": [
                    [a.isoformat(), b.isoformat()] for a, b in decision.excluded_windows
                ],
                "rows": rows.num_rows,
            },
        }
        (Path(folder) / "spec.json").write_text(json.dumps(spec))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *filter(None, [env.get("PYTHONPATH")])])
        timeout = duration(policy.timeout).total_seconds()
        child = subprocess.Popen(
            [python or sys.executable, "-m", "keel.retrain.job", str(Path(folder) / "spec.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
        try:
            _, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise RetrainFailed(
                f"the entrypoint {policy.entrypoint} ran past the timeout {policy.timeout}: killed"
            ) from None
        said = json.loads(answer.read_text()) if answer.is_file() else {}
        if child.returncode != 0 or "error" in said or "version" not in said:
            tail = (stderr or "").strip().splitlines()[-1:] or [f"exit code {child.returncode}"]
            raise RetrainFailed(said.get("error") or f"the training subprocess failed: {tail[0]}")
        return said


def kept_training_rows(monitor: MonitorConfig, rows: Any) -> Path:
    """Write the job's training rows where they stay: ``.keel/retrain-data/<monitor>/
    <fingerprint>.parquet``. The candidate's lineage names this file, so a monitor that
    binds the version can calibrate its baseline on the rows it was trained on, and
    ``keel reproduce`` can train it again; a temporary file would be gone by then."""
    import io

    import pyarrow.parquet as pq

    from keel._files import write_atomically
    from keel.fingerprint import data_digest

    folder = RETRAIN_DATA / monitor.name
    folder.mkdir(parents=True, exist_ok=True)
    digest = data_digest(rows).split(":")[-1][:16]
    path = (folder / f"{digest}.parquet").resolve()
    if not path.is_file():
        buffer = io.BytesIO()
        pq.write_table(rows, buffer)
        write_atomically(path, buffer.getvalue())
    return path


def _child(spec_path: str) -> int:
    """The subprocess: train through the entrypoint and register the model via keel.track."""
    import warnings

    spec = json.loads(Path(spec_path).read_text())
    answer = Path(spec["answer"])
    try:
        from keel.store import ResultStore
        from keel.tracking import TrainingError, load_entrypoint, track

        store = ResultStore(spec["store"])
        if spec["registry"]["kind"] == "embedded":
            from keel.registry.embedded import EmbeddedRegistry

            registry = EmbeddedRegistry(store, spec["registry"]["root"] or None)
        else:
            from keel.registry import open_registry

            registry = open_registry(spec["registry"]["kind"], store=store)
        function = load_entrypoint(spec["entrypoint"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a dirty tree is recorded in the lineage
            with track(
                spec["name"],
                train=spec["data"],
                holdout_last=HOLDOUT_LAST,
                target=spec["target"],
                timestamp=spec["timestamp"],
                entrypoint=spec["entrypoint"],
                registry=registry,
                store=store,
            ) as run:
                run.record["retrain"] = spec["lineage"]
                model = function(run.train, dict(run.params))
                if not (hasattr(model, "predict") or hasattr(model, "predict_proba")):
                    raise TrainingError(
                        f"the entrypoint returned a {type(model).__name__}, not a model "
                        "(it has no predict or predict_proba)"
                    )
                version = run.log_model(model)
        said = {"ref": version.ref, "version": version.version, "run_id": run.record["run_id"]}
    except Exception as error:  # noqa: BLE001 - reported to the parent, which alerts
        said = {"error": f"the entrypoint failed: {type(error).__name__}: {error}"}
    answer.write_text(json.dumps(said))
    return 0 if "error" not in said else 1


# -- small things -------------------------------------------------------------------------


def _open_registry(store: Any) -> Any:
    from keel.registry import open_registry

    return open_registry(store=store)


def _parse(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return _aware(moment)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
