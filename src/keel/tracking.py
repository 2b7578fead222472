"""Recording a training run: what trained this model, so it can be answered and re-done.

``with keel.track("loans", train=..., holdout=..., params=...) as run:
run.log_model(fit(run.train, run.params))`` (or ``keel train ENTRYPOINT --data …``)
reads and fingerprints the data (every row: ``keel.fingerprint``), splits the holdout by
time when asked (``holdout_last="20%"``), scores the holdout itself and keeps those
predictions, measures the holdout metrics (``keel.performance``, with intervals), builds
the Baseline (drift reference = the training rows; holdout metrics from the holdout) and
registers the model as a new version, with one lineage record (``keel.lineage/v1``, see
docs/formats.md): params; data (source, rows, time range, fingerprint, schema); code (git
commit, dirty flag, the diff when dirty, the entrypoint); environment (Python and the
versions of the packages loaded); the holdout metrics; the baseline.

>>> import numpy as np, pandas as pd, tempfile, pathlib, warnings
>>> warnings.simplefilter("ignore")  # the working folder's git tree may be dirty: warned
>>> from sklearn.linear_model import LogisticRegression
>>> from keel.store import ResultStore
>>> from keel.registry.embedded import EmbeddedRegistry
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> registry = EmbeddedRegistry(ResultStore(f"sqlite:///{folder / 'keel.db'}"), folder)
>>> rng = np.random.default_rng(0)
>>> rows = pd.DataFrame({"x": rng.normal(size=400), "t": pd.date_range("2026-01-01",
...                      periods=400, freq="h", tz="UTC")})
>>> rows["y"] = (rows["x"] + rng.normal(0, 0.5, 400) > 0).astype(int)
>>> with track("loans", train=rows, holdout_last="25%", target="y", timestamp="t",
...            params={"C": 1.0}, registry=registry) as run:
...     version = run.log_model(LogisticRegression(C=run.params["C"]).fit(
...         run.train.select(["x"]).to_pandas(), run.train["y"].to_numpy()))
>>> version.ref, run.record["data"]["holdout"]["rows"], run.record["data"]["train"]["source"]
('loans@1', 100, None)
>>> round(run.record["holdout"]["metrics"]["accuracy"], 2)
0.82
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import platform
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from keel.errors import ConfigError, DataError, KeelError, SchemaError
from keel.registry.base import BASELINE_ARTIFACT, PREDICTIONS_ARTIFACT

LINEAGE_FORMAT = "keel.lineage/v1"
MAX_DIFF_BYTES = 5_000_000


class TrainingError(KeelError):
    """A training run that cannot be recorded: no holdout, an entrypoint that is not there,
    a model keel cannot score."""


@dataclass
class TrainingRun:
    """One training run being recorded: its data, its params, and (after ``log_model``) the
    registered version and the lineage record."""

    name: str
    train: pa.Table
    holdout: pa.Table
    params: dict[str, Any]
    target: str
    timestamp: str | None
    id: str | None
    record: dict[str, Any]
    registry: Any
    store: Any
    version: Any = None
    baseline: Any = field(default=None, repr=False)

    def log_model(self, model: Any, metrics: dict[str, float] | None = None) -> Any:
        """Score the holdout with ``model``, measure it, build the baseline, and register the
        model as a new version (returned). Once per run. ``metrics``: holdout metrics of the
        owner's own (a business value, say ``value_per_1000``), recorded beside keel's; a
        name keel measures itself keeps keel's value."""
        if self.version is not None:
            raise TrainingError(f"this run already registered {self.version.ref}")
        from keel.baseline import Baseline

        scored, task = score_holdout(model, self.holdout, self.target, self._excluded())
        metrics = {**(metrics or {}), **holdout_metrics_of(scored, task, self.target)}
        self.record["model"] = {
            "type": f"{type(model).__module__}.{type(model).__qualname__}",
            "params": model_params(model),
        }
        self.record["holdout"] = {
            "task": task,
            "target": self.target,
            "rows": self.holdout.num_rows,
            "metrics": metrics,
            "predictions": PREDICTIONS_ARTIFACT,
        }
        self.record["environment"] = environment()
        # The model's outputs are part of the reference (prediction drift, the streams) and
        # of the holdout (the performance estimator): keel scores both itself.
        trained, _ = score_holdout(model, self.train, self.target, self._excluded())
        reference = with_outputs(self.train, trained, self.target)
        baseline = Baseline.from_data(
            reference,
            target=self.target,
            timestamp=self.timestamp,
            id=self.id,
            **output_roles(scored, task, self.target),
            holdout=with_outputs(self.holdout, scored, self.target),
            task=task,
            metrics=metrics,
            lineage={
                "format": LINEAGE_FORMAT,
                "model": self.name,
                "registry": self.registry.uri,
                "data_fingerprint": self.record["data"]["train"]["fingerprint"],
                "code_commit": (self.record.get("code") or {}).get("commit"),
                "params": self.params,
            },
        )
        baseline.notes += leakage_notes(self.record.get("leakage"))
        self.record["baseline"] = {
            "fingerprint": baseline.fingerprint,
            "id": baseline.id,
            "rows": baseline.rows,
            "artifact": BASELINE_ARTIFACT,
            # The training rows with keel's scores of them: what the baseline profiles.
            "data_digest": baseline.config["data_digest"],
            "outputs": [c for c in trained.column_names if c != self.target],
        }
        self.record["finished_at"] = _now()
        artifacts = {
            PREDICTIONS_ARTIFACT: table_bytes(scored),
            BASELINE_ARTIFACT: baseline.to_bytes(),
        }
        run_id = self.registry.log_run(self.name, self.record, artifacts)
        self.record["run_id"] = run_id
        tags = {
            "keel.run": run_id,
            "keel.baseline": baseline.fingerprint,
            "keel.data.fingerprint": self.record["data"]["train"]["fingerprint"],
            "keel.code.commit": (self.record.get("code") or {}).get("commit") or "",
        }
        self.version = self.registry.register(self.name, model, run_id, tags=tags)
        self.baseline = baseline
        if self.store is not None:
            self.store.log_event(
                self.record.get("user") or "keel",
                "model trained",
                subject=self.version.ref,
                details={"run": run_id, "registry": self.registry.uri},
            )
        return self.version

    def _excluded(self) -> set[str]:
        return {c for c in (self.target, self.timestamp, self.id) if c}


@contextlib.contextmanager
def track(
    name: str,
    *,
    train: Any,
    holdout: Any = None,
    holdout_last: str | None = None,
    params: dict[str, Any] | None = None,
    target: str = "target",
    timestamp: str | None = None,
    id: str | None = None,  # noqa: A002 - the role's name
    entrypoint: str | Callable | None = None,
    registry: Any = None,
    store: Any = None,
    prediction_time: str | None = None,
    available: dict[str, Any] | None = None,
    entity: str | None = None,
    leakage_probes: bool = False,
    fail_on_leakage: bool = False,
) -> Iterator[TrainingRun]:
    """Record a training run (see the module docstring): yields a ``TrainingRun`` whose
    ``log_model(model)`` registers the model. ``holdout`` is data the model does not learn
    from; ``holdout_last`` ("20%") takes the latest rows by ``timestamp`` instead.
    ``entrypoint`` (``"train.py:fit"`` or the function) is what ``keel reproduce`` calls.

    Leakage (``keel.checks.leakage``) is checked before training: duplicate rows across
    train and holdout, id and time columns that predict the label, features available
    after ``prediction_time`` (with ``available``: feature → availability column), and
    entities in both splits (with ``entity``); ``leakage_probes=True`` also probes every
    feature alone. Findings are warned and recorded (``record["leakage"]``, and the
    baseline's notes); ``fail_on_leakage=True`` refuses a run with an alert-level finding.

    >>> with track("m", train={"x": [1]}) as run:
    ...     pass
    Traceback (most recent call last):
    ...
    keel.tracking.TrainingError: a training run needs a holdout: give holdout=... or ...
    """
    from keel.registry import open_registry

    if store is None:
        from keel.store import ResultStore

        store = getattr(registry, "store", None) or ResultStore()
    registry = registry if registry is not None else open_registry(store=store)
    params = dict(params or {})
    train_table, holdout_table, data = prepare_data(train, holdout, holdout_last, timestamp)
    if target not in train_table.column_names:
        raise SchemaError(
            f"the training data has no target column {target!r} "
            f"(it has: {', '.join(train_table.column_names)}); name it with target="
        )
    timestamp = data.get("split", {}).get("timestamp") or timestamp
    leakage = leakage_of(
        train_table,
        holdout_table,
        target=target,
        id=id,
        prediction_time=prediction_time,
        available=available,
        entity=entity,
        probes=leakage_probes,
        fail=fail_on_leakage,
    )
    record: dict[str, Any] = {
        "format": LINEAGE_FORMAT,
        "name": name,
        "registry": {"kind": registry.kind, "uri": registry.uri},
        "started_at": _now(),
        "user": _user(),
        "params": params,
        "roles": {"target": target, "timestamp": timestamp, "id": id},
        "data": data,
        "code": code_record(entrypoint),
        "leakage": leakage,
    }
    if record["code"].get("dirty"):
        stored = "its diff is stored" if record["code"].get("diff") else "no diff stored"
        warnings.warn(
            f"training from a dirty git tree ({record['code']['commit'][:12]}, {stored})",
            stacklevel=3,
        )
    yield TrainingRun(
        name=name,
        train=train_table,
        holdout=holdout_table,
        params=params,
        target=target,
        timestamp=timestamp,
        id=id,
        record=record,
        registry=registry,
        store=store,
    )


# -- leakage ------------------------------------------------------------------------------


class LeakageError(TrainingError):
    """A training run refused (``fail_on_leakage=True``) for leakage at alert level."""


def leakage_of(
    train: pa.Table,
    holdout: pa.Table,
    *,
    target: str,
    id: str | None = None,  # noqa: A002 - the role's name
    prediction_time: str | None = None,
    available: dict[str, Any] | None = None,
    entity: str | None = None,
    probes: bool = False,
    fail: bool = False,
) -> dict[str, Any]:
    """The leakage findings of a training run (``keel.leakage/v1``), each warned; with
    ``fail``, a LeakageError when any is at alert level. Never fails otherwise.

    >>> import warnings
    >>> train = pa.table({"x": [float(i) for i in range(40)], "y": [0, 1] * 20})
    >>> holdout = pa.table({"x": [3.0, 100.0], "y": [1, 0]})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     found = leakage_of(train, holdout, target="y")
    >>> [f["kind"] for f in found["findings"]], str(caught[0].message)[:28]
    (['duplicates'], 'leakage: alert duplicates: 1')
    """
    from keel.checks.leakage import check_leakage

    report = check_leakage(
        train,
        target=target,
        holdout=holdout,
        prediction_time=prediction_time,
        available=available,
        entity=entity,
        ids=[id] if id else None,
        probes=probes,
    )
    for line in report.lines():
        warnings.warn(f"leakage: {line}", stacklevel=4)
    if fail and report.alert:
        raise LeakageError(
            "leakage found (fail_on_leakage=True): "
            + "; ".join(line for line in report.lines() if line.startswith("alert"))
        )
    return report.to_dict()


def leakage_notes(leakage: dict[str, Any] | None) -> list[str]:
    """One note per leakage finding, for the baseline (``leakage <level> <kind> ...``).

    >>> leakage_notes({"findings": [{"level": "alert", "kind": "duplicates", "column": None,
    ...                              "message": "3 holdout rows ..."}]})
    ['leakage alert duplicates: 3 holdout rows ...']
    """
    return [
        f"leakage {f['level']} {f['kind']}{' ' + f['column'] if f['column'] else ''}: "
        f"{f['message']}"
        for f in (leakage or {}).get("findings", [])
    ]


# -- data ---------------------------------------------------------------------------------


def prepare_data(
    train: Any,
    holdout: Any,
    holdout_last: str | None,
    timestamp: str | None,
    digest: str | None = None,
) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """(training rows, holdout rows, the data record): reads the sources, splits by time when
    ``holdout_last`` asks, and fingerprints each part (``keel.fingerprint.data_digest``, the
    digest baselines use, so the baseline's ``data_digest`` is the training part's
    fingerprint). ``keel reproduce`` calls it again on the recorded sources, with the
    ``digest`` the record names (``recorded_digest``).

    >>> table = pa.table({"t": [3, 1, 2, 4], "y": [0, 1, 0, 1]})
    >>> train, holdout, data = prepare_data(table, None, "50%", "t")
    >>> train["t"].to_pylist(), holdout["t"].to_pylist(), data["split"]["holdout_last"]
    ([1, 2], [3, 4], '50%')
    """
    from keel.data import open_source

    if (holdout is None) == (holdout_last is None):
        raise TrainingError(
            'a training run needs a holdout: give holdout=... or holdout_last="20%"'
            if holdout is None
            else "give holdout or holdout_last, not both"
        )
    train_source = open_source(train)
    train_table = train_source.read_all()
    data: dict[str, Any] = {}
    if holdout_last is not None:
        share = _share(holdout_last)
        timestamp = timestamp or _timestamp_column(train_table)
        whole = _describe(train, train_table, timestamp, digest)
        train_table, holdout_table = split_by_time(train_table, timestamp, share)
        data["split"] = {"holdout_last": holdout_last, "timestamp": timestamp, "whole": whole}
        data["train"] = _describe(train, train_table, timestamp, digest)
        data["holdout"] = _describe(train, holdout_table, timestamp, digest)
    else:
        holdout_table = open_source(holdout).read_all()
        data["train"] = _describe(train, train_table, timestamp, digest)
        data["holdout"] = _describe(holdout, holdout_table, timestamp, digest)
    for role, table in (("training", train_table), ("holdout", holdout_table)):
        if table.num_rows == 0:
            raise DataError(f"the {role} data has no rows")
    return train_table, holdout_table, data


def split_by_time(table: pa.Table, timestamp: str, share: float) -> tuple[pa.Table, pa.Table]:
    """(earlier rows, the latest ``share`` of rows by ``timestamp``); rows keep their order,
    and rows at the cut's time all go to the holdout (no instant is split in two).

    >>> split_by_time(pa.table({"t": [1, 2, 2, 3]}), "t", 0.25)[1]["t"].to_pylist()
    [3]
    """
    import pyarrow.compute as pc

    if timestamp not in table.column_names:
        raise SchemaError(f"no timestamp column {timestamp!r} to split the holdout by")
    times = table.column(timestamp)
    if times.null_count:
        raise DataError(f"{times.null_count} rows have no {timestamp}: cannot split by time")
    keep = table.num_rows - max(1, math.ceil(table.num_rows * share))
    if keep <= 0:
        raise DataError(f"{table.num_rows} rows: too few to keep a holdout of {share:.0%}")
    cut = times.take(pc.sort_indices(times))[keep]
    later = pc.greater_equal(times, cut)
    return table.filter(pc.invert(later)), table.filter(later)


def recorded_digest(data: dict[str, Any]) -> str:
    """The digest a lineage record's data was fingerprinted with (records made before the
    ``digest`` field: every row in order).

    >>> recorded_digest({"train": {"digest": "keel-rows-sum/1"}}), recorded_digest({})
    ('keel-rows-sum/1', 'keel-rows-sha/1')
    """
    from keel.fingerprint import ORDERED_DIGEST

    return (data.get("train") or {}).get("digest") or ORDERED_DIGEST


def _describe(
    source: Any, table: pa.Table, timestamp: str | None, digest: str | None = None
) -> dict[str, Any]:
    from keel.fingerprint import CONTENT_DIGEST, data_digest

    digest = digest or CONTENT_DIGEST
    path = source if isinstance(source, str | Path) else None
    time_range = None
    if timestamp and timestamp in table.column_names and table.num_rows:
        import pyarrow.compute as pc

        low, high = pc.min_max(table.column(timestamp)).values()
        time_range = [_iso(low.as_py()), _iso(high.as_py())]
    return {
        "source": str(Path(path).resolve()) if path is not None else None,
        "reproducible": path is not None,
        "rows": table.num_rows,
        "time_range": time_range,
        "fingerprint": data_digest(table, digest),
        "digest": digest,
        "schema": {f.name: str(f.type) for f in table.schema},
    }


def _timestamp_column(table: pa.Table) -> str:
    found = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if len(found) != 1:
        raise SchemaError(
            "holdout_last needs the timestamp column to split by: name it with timestamp= "
            f"(timestamp columns found: {', '.join(found) or 'none'})"
        )
    return found[0]


def _share(text: str) -> float:
    try:
        share = float(text.strip().removesuffix("%")) / 100
    except ValueError:
        share = -1.0
    if not text.strip().endswith("%") or not 0 < share < 1:
        raise ConfigError(f"holdout_last {text!r}: a share of the rows, like 20%")
    return share


# -- scoring ------------------------------------------------------------------------------


def score_holdout(model: Any, holdout: pa.Table, target: str, excluded: set[str]) -> tuple:
    """(the holdout's predictions as a table, task): keel scores the holdout itself, with
    ``predict_proba`` (binary: ``score``; multiclass: ``score_<class>``) or ``predict``
    (regression: ``prediction``). Features are the model's ``feature_names_in_`` when it
    has them, else every column but the target, timestamp and id."""
    import numpy as np

    names = getattr(model, "feature_names_in_", None)
    features = (
        [str(n) for n in names]
        if names is not None
        else [c for c in holdout.column_names if c not in excluded]
    )
    missing = [c for c in features if c not in holdout.column_names]
    if missing:
        raise SchemaError(f"the holdout has no column(s) {', '.join(missing)} the model uses")
    rows = holdout.select(features).to_pandas()
    columns: dict[str, Any] = {target: holdout.column(target)}
    try:
        if hasattr(model, "predict_proba"):
            scores = np.asarray(model.predict_proba(rows), dtype=float)
            classes = list(model.classes_)
            if len(classes) <= 2:
                task = "binary"
                columns["score"] = scores[:, -1]
            else:
                task = "multiclass"
                for index, label in enumerate(classes):
                    columns[f"score_{label}"] = scores[:, index]
            columns["prediction"] = np.asarray(classes)[scores.argmax(axis=1)]
        elif hasattr(model, "predict"):
            task = "regression"
            columns["prediction"] = np.asarray(model.predict(rows), dtype=float)
        else:
            raise TrainingError(f"a {type(model).__name__} has no predict or predict_proba")
    except KeelError:
        raise
    except Exception as error:  # noqa: BLE001 - the model's own failure, named
        raise TrainingError(
            f"the {type(model).__name__} failed to score the holdout: {error}"
        ) from error
    return pa.table(columns), task


def with_outputs(rows: pa.Table, scored: pa.Table, target: str) -> pa.Table:
    """``rows`` with the model's output columns of ``scored`` (``score_holdout``'s) added;
    a column of that name already in ``rows`` is refused by name.

    >>> rows = pa.table({"x": [1.0, 2.0], "y": [0, 1]})
    >>> with_outputs(rows, pa.table({"y": [0, 1], "score": [0.2, 0.9]}), "y").column_names
    ['x', 'y', 'score']
    """
    outputs = [c for c in scored.column_names if c != target]
    clash = [c for c in outputs if c in rows.column_names]
    if clash:
        raise TrainingError(
            f"the data already has column(s) {', '.join(clash)}, where keel puts the model's "
            "outputs: rename them"
        )
    for name in outputs:
        rows = rows.append_column(name, scored.column(name))
    return rows


def output_roles(scored: pa.Table, task: str, target: str) -> dict[str, Any]:
    """The ``Baseline.from_data`` roles of ``score_holdout``'s output columns.

    >>> output_roles(pa.table({"y": [0], "score": [0.2], "prediction": [0]}), "binary", "y")
    {'score': 'score', 'prediction': 'prediction'}
    """
    if task == "binary":
        return {"score": "score", "prediction": "prediction"}
    if task == "multiclass":
        labels = scored.column(target).to_pylist()
        named = [c.removeprefix("score_") for c in scored.column_names if c.startswith("score_")]
        classes = [type(labels[0])(c) for c in named] if labels else named
        return {"score": "score", "prediction": "prediction", "classes": classes}
    return {"prediction": "prediction"}


def holdout_metrics_of(scored: pa.Table, task: str, target: str) -> dict[str, float]:
    """The holdout metrics (``keel.performance``, with intervals) of scored predictions."""
    from keel.performance import holdout_metrics

    if task == "binary":
        return holdout_metrics(scored, "binary", target, score="score")
    if task == "multiclass":
        classes = [c.removeprefix("score_") for c in scored.column_names if c.startswith("score_")]
        labels = scored.column(target).to_pylist()
        typed = [type(labels[0])(c) for c in classes] if labels else classes
        renamed = scored.rename_columns(
            [
                f"score_{typed[classes.index(c.removeprefix('score_'))]}"
                if c.startswith("score_")
                else c
                for c in scored.column_names
            ]
        )
        return holdout_metrics(renamed, "multiclass", target, score="score", classes=typed)
    return holdout_metrics(scored, "regression", target, prediction="prediction")


def model_params(model: Any) -> dict[str, Any]:
    """The model's ``get_params()``, JSON-ready (a nested estimator as its class name).

    >>> from sklearn.linear_model import LogisticRegression
    >>> model_params(LogisticRegression(C=0.5))["C"]
    0.5
    """
    if not hasattr(model, "get_params"):
        return {}
    found = {}
    for key, value in sorted(model.get_params(deep=True).items()):
        if value is None or isinstance(value, bool | int | float | str):
            found[key] = value
        elif isinstance(value, list | tuple) and all(
            isinstance(v, bool | int | float | str) for v in value
        ):
            found[key] = list(value)
        else:
            found[key] = f"<{type(value).__module__}.{type(value).__qualname__}>"
    return found


def table_bytes(table: pa.Table) -> bytes:
    """A table as Parquet bytes (an artifact)."""
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def table_from_bytes(data: bytes) -> pa.Table:
    """The table in Parquet bytes."""
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data))


# -- code and environment -----------------------------------------------------------------


def code_record(entrypoint: str | Callable | None, folder: Path | None = None) -> dict[str, Any]:
    """The code: git commit, dirty flag, the diff when dirty (untracked files included, up to
    5 MB), and the entrypoint as ``path/in/repo.py:function``.

    >>> code_record(None, Path("/"))["commit"] is None
    True
    """
    path, function = _entrypoint_parts(entrypoint)
    where = (path.parent if path else folder) or Path.cwd()
    root = _git(where, "rev-parse", "--show-toplevel")
    record: dict[str, Any] = {"commit": None, "dirty": None, "diff": None, "repo": None}
    if root is not None:
        root_path = Path(root.strip())
        commit = (_git(root_path, "rev-parse", "HEAD") or "").strip() or None
        status = _git(root_path, "status", "--porcelain") or ""
        dirty = bool(status.strip())
        diff = None
        if dirty:
            diff = _git(root_path, "diff", "--binary", "HEAD") or ""
            for line in status.splitlines():
                if line.startswith("?? "):
                    diff += _untracked_diff(root_path, line[3:].strip().strip('"'))
            if len(diff.encode()) > MAX_DIFF_BYTES:
                diff = None
        record.update(commit=commit, dirty=dirty, diff=diff, repo=str(root_path))
    if path is not None:
        relative = path
        if record["repo"]:
            with contextlib.suppress(ValueError):
                relative = path.resolve().relative_to(record["repo"])
        record["entrypoint"] = f"{relative}:{function}"
    else:
        record["entrypoint"] = f"{function}" if function else None
    return record


def _entrypoint_parts(entrypoint: str | Callable | None) -> tuple[Path | None, str | None]:
    if entrypoint is None:
        return None, None
    if callable(entrypoint):
        source = inspect.getsourcefile(entrypoint)
        return (Path(source).resolve() if source else None), entrypoint.__name__
    module, _, function = str(entrypoint).rpartition(":")
    if not module or not function:
        raise ConfigError(f"entrypoint {entrypoint!r}: write path/to/train.py:function")
    if module.endswith(".py"):
        return Path(module).resolve(), function
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ConfigError(f"entrypoint {entrypoint!r}: no module {module!r}")
    return Path(spec.origin).resolve(), function


def load_entrypoint(entrypoint: str, root: Path | None = None) -> Callable:
    """The function ``path/to/train.py:function`` (relative to ``root``) names."""
    module, _, function = entrypoint.rpartition(":")
    if not module or not function:
        raise ConfigError(f"entrypoint {entrypoint!r}: write path/to/train.py:function")
    if module.endswith(".py"):
        path = (root / module) if root is not None else Path(module)
        if not path.is_file():
            raise ConfigError(f"entrypoint {entrypoint!r}: no file {path}")
        sys.path.insert(0, str(path.parent.resolve()))
        unique = f"_keel_entrypoint_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(unique, path)
        assert spec is not None and spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[unique] = loaded
        spec.loader.exec_module(loaded)
    else:
        loaded = importlib.import_module(module)
    found = getattr(loaded, function, None)
    if not callable(found):
        raise ConfigError(f"entrypoint {entrypoint!r}: {module} has no function {function!r}")
    return found


def environment() -> dict[str, Any]:
    """Python and the versions of the installed packages that are loaded now."""
    import importlib.metadata as metadata

    by_module = metadata.packages_distributions()
    loaded = {name.split(".")[0] for name in list(sys.modules)}
    packages = {}
    for module in sorted(loaded):
        for distribution in by_module.get(module, []):
            with contextlib.suppress(metadata.PackageNotFoundError):
                packages[distribution.lower()] = metadata.version(distribution)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "packages": dict(sorted(packages.items())),
    }


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _untracked_diff(root: Path, relative: str) -> str:
    if relative.endswith("/"):
        listed = _git(root, "ls-files", "--others", "--exclude-standard", "--", relative) or ""
        return "".join(_untracked_diff(root, item) for item in listed.splitlines())
    done = subprocess.run(
        ["git", "diff", "--binary", "--no-index", "--", "/dev/null", relative],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return done.stdout


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    """A fresh run id (32 hex digits)."""
    return uuid.uuid4().hex


def canonical(value: Any) -> str:
    """JSON with sorted keys: how records are compared."""
    return json.dumps(value, sort_keys=True, default=str)
