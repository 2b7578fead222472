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
CHALLENGER = "challenger"
#: The share of the selected rows (the latest, by time) the candidate is scored on.
HOLDOUT_LAST = "20%"
#: Log columns that are the serving system's, never the model's inputs.
LOG_COLUMNS = ("request_id", "model_version", "label_time", "score", "prediction")


class RetrainFailed(KeelError):
    """A retrain job that did not produce a registered challenger (the reason is said)."""


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
    diagnoses = stored_diagnoses(store, monitor.name, now)
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
        return _failed(monitor, store, now, decision, str(error) or type(error).__name__)
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
        },
    )
    return RetrainOutcome(
        "done", decision.reason, decision, produced["ref"], rows.num_rows, [result]
    )


def _failed(monitor, store, now, decision, reason: str) -> RetrainOutcome:
    result = Result(
        "retrain",
        None,
        "retrain_failed",
        1.0,
        0.0,
        "alert",
        **_where(monitor, decision, now),
        details={"reason": reason, "trigger": decision.trigger},
    )
    store.write([result])
    store.log_event(ACTOR, "retrain failed", subject=monitor.name, details={"reason": reason})
    return RetrainOutcome("failed", reason, decision, results=[result])


def _where(monitor, decision: TriggerDecision, now: datetime) -> dict[str, Any]:
    start = decision.training_window[0] if decision.training_window else now
    return {
        "monitor": monitor.name,
        "model": monitor.model,
        "window_start": start.isoformat(),
        "window_end": now.isoformat(),
    }


# -- what the store holds -----------------------------------------------------------------


def stored_diagnoses(store: Any, monitor: str, now: datetime) -> list[WindowDiagnosis]:
    """The monitor's whole-window diagnoses (no segment) that ended by ``now``, oldest first.
    A stream alarm's diagnosis is an instant (its window starts where it ends), not a
    window: it is left out, so it never breaks a trigger's run of windows."""
    frame = store.latest(monitor=monitor, check="diagnosis", metric="verdict")
    found = []
    for row in frame.to_dict("records"):
        if isinstance(row.get("segment"), str) or not row.get("window_end"):
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
    """When this monitor last registered a challenger (its ``challenger registered`` event)."""
    events = store.events()
    done = events[(events["action"] == "challenger registered") & (events["subject"] == monitor)]
    return _parse(done["at"].iloc[-1]) if len(done) else None


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
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="keel-retrain-") as folder:
        data, answer = Path(folder) / "train.parquet", Path(folder) / "answer.json"
        pq.write_table(rows, data)
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
