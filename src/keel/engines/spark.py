"""The Spark engine (``keel[spark]``): keel's own profiles, one per partition, merged.

Each partition of a Spark DataFrame is profiled by ``DataFrame.mapInArrow`` (Arrow record
batches in, no pandas) into a ``keel.profile.Profile``; the partition's profile leaves it
as bytes (``Profile.to_bytes``), one row per column (``PROFILE_ROWS``), each column's parts
are merged (``Profile.merge``) in partition order by tasks that hold one column at a time
(``_merged_by_column``), and the driver puts the columns side by side. Wide tables are
profiled ``COLUMN_BATCH`` columns per pass (``profile_frame``). As ``keel.parallel`` does,
the reference is profiled first, its numeric columns' bin edges fixed at its quantiles,
and the current side then profiled in those bins.

``keel.drift`` takes a Spark DataFrame on either side (``drift_profiles``), and
``keel.check_history`` cuts a Spark DataFrame's time windows in one read (``cut_frame``:
one row per window and column a partition saw, merged per window and column).

What this gives, whatever the partitioning: row, null, NaN and value counts, minimum,
maximum, category counts and the counts in given bin edges are exactly those of one
process; means and variances agree to 1e-12 relative (Chan et al.'s merge about a pilot
value, even at |mean|/sd = 1e9); quantiles agree
within the sketches' stated error. Bin edges read off the reference's quantile sketch are
exact while the sketch is (up to 200,000 values per column), and within its error after.

``keel.baseline.Baseline.from_spark`` records a baseline the same way (``baseline_parts``):
each partition's profile, bottom-k sample and content fingerprint, merged; the baseline
equals ``Baseline.from_data`` of the same rows, its id and sample included.

pyspark is imported only when the engine is used: ``import keel.engines`` never loads it.
The Python workers run the driver's interpreter (``PYSPARK_PYTHON`` is set to
``sys.executable`` unless it is set already), so they import the same keel.

>>> engine = SparkEngine("spark")
>>> engine.name, engine.master
('spark', 'local[*]')
>>> engine.profile_sides(None, "data.parquet")  # doctest: +SKIP
(None, Profile(...))
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import KeelError
from keel.stats.binning import DEFAULT_BINS

#: Arrow batch size for sessions this engine starts (Spark's default is 10,000 rows).
ARROW_BATCH_ROWS = 100_000
_INSTALL = "pip install 'keel[spark]'"


def missing_requirement() -> str | None:
    """What the Spark engine lacks here (pyspark or Java), or None when it can run.

    >>> missing_requirement() is None or "install" in missing_requirement()
    True
    """
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return f"pyspark is not installed: {_INSTALL} (pyspark >= 4.1)"
    if not _java():
        return (
            "Java is not installed: Spark needs a Java 17 or later runtime "
            "(e.g. apt-get install openjdk-17-jre-headless), on PATH or in JAVA_HOME"
        )
    return None


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def spark_session(master: str = "local[*]", app_name: str = "keel") -> Any:
    """The running SparkSession, or a new one on ``master``; a clear KeelError when pyspark
    or Java is missing. The workers run this interpreter (``PYSPARK_PYTHON``).

    >>> spark_session("local[2]").sparkContext.master  # doctest: +SKIP
    'local[2]'
    """
    missing = missing_requirement()
    if missing:
        raise KeelError(f"the Spark engine cannot start: {missing}")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )


@dataclass(frozen=True)
class SparkEngine:
    """Profile Spark DataFrames (or paths, read by Spark) partition by partition.

    ``master`` is used only when no SparkSession is running; a running one is used as it is.
    ``column_batch``: the most columns profiled per pass (default ``COLUMN_BATCH``).
    """

    name: str
    master: str = "local[*]"
    column_batch: int | None = None

    def profile_sides(
        self,
        reference: Any,
        current: Any,
        reference_schema: Any = None,
        current_schema: Any = None,
        edges: Mapping[str, np.ndarray] | None = None,
        bins: int = DEFAULT_BINS,
    ) -> tuple[Any, Any]:
        """Profile the reference (unless None) and the current data in shared bins: the
        reference's quantiles (``bins`` bins), or else the given ``edges``."""
        from keel.parallel import edges_from
        from keel.profile.profile import profile_kind

        spark = spark_session(self.master)
        current_frame, current_schema = _frame(spark, current, current_schema)
        edges = {k: np.asarray(v, dtype=np.float64) for k, v in (edges or {}).items()}
        reference_profile = None
        if reference is not None:
            reference_frame, reference_schema = _frame(spark, reference, reference_schema)
            reference_profile = profile_frame(
                reference_frame, reference_schema, column_batch=self.column_batch
            )
            edges = edges_from(reference_profile, bins)
            for name, inner in edges.items():  # the reference keeps its edges: methods use them
                reference_profile.columns[name].fix_bins_from_sketch(inner)
        usable = {
            name: value
            for name, value in edges.items()
            if name in current_schema and profile_kind(current_schema[name]) == "numeric"
        }
        current_profile = profile_frame(current_frame, current_schema, usable, self.column_batch)
        return reference_profile, current_profile


def profile_frame(
    frame: Any,
    schema: Any,
    bin_edges: Mapping[str, np.ndarray] | None = None,
    column_batch: int | None = None,
    sketch_k: int | None = None,
):
    """One keel Profile of a Spark DataFrame: a profile per partition (``mapInArrow``), sent
    a column at a time, each column's parts merged in partition order in the executors
    (``_merged_by_column``) and the columns put side by side on the driver.

    Wide tables are profiled ``column_batch`` columns per pass (default ``COLUMN_BATCH``),
    one read each, the passes' profiles put side by side: a column's profile does not
    depend on the columns profiled with it, so it is the same, bit for bit, as in one pass.
    Each pass reads only its columns (Parquet reads no others); a frame computed by an
    expensive query is computed once per pass unless it is cached (``frame.cache()``).
    ``sketch_k``: the quantile sketches' size (default: ``Profile.empty``'s).

    >>> profile_frame(spark.range(10), Schema.infer(pa.table({"id": [0, 1]})))  # doctest: +SKIP
    Profile(...)
    """
    names = list(schema.names)
    missing = [name for name in names if name not in frame.columns]
    if missing:
        from keel.errors import SchemaError

        raise SchemaError(f"Spark DataFrame: columns {missing} are missing")
    edges = {k: np.asarray(v, dtype=np.float64) for k, v in (bin_edges or {}).items()}
    parts = []
    for group in column_groups(names, column_batch):  # a loop over passes, not rows
        part_schema, part_edges = _part(schema, group), _edges_of(edges, group)
        selected = frame.select(*[_col(name) for name in group])
        run = _partition_profiler(part_schema.to_dict(), _as_lists(part_edges), sketch_k)
        rows = _merged_by_column(selected.mapInArrow(run, PROFILE_ROWS), len(group))
        parts.append(merge_columns(rows, part_schema, part_edges, sketch_k))
    return side_by_side(parts, schema)


#: Columns profiled per pass over a Spark DataFrame (``profile_frame``, ``cut_frame``,
#: ``baseline_parts``). A numeric column's state in a Python worker is at worst its quantile
#: sketch's exact buffer (200,000 float64 values, 1.6 MB) plus its share of the Arrow batch
#: (``ARROW_BATCH_ROWS`` = 100,000 values, 0.8 MB): about 2.5 MB, measured, over a worker's
#: own ~110 MB. 100 columns keep a worker near 360 MB (measured: 359 MB at 1,000 columns x
#: 200,000 rows per task, ``benchmarks/spark_wide.py``), where one pass over 1,000 columns
#: would need about 2.6 GB per worker, times the cores of an executor; 250 columns a pass
#: already ran a local session's 1 GB JVM out of heap. Fewer columns a pass cost more
#: passes (about 3 s each on a local session).
COLUMN_BATCH = 100


def column_groups(names: list[str], column_batch: int | None = None) -> list[list[str]]:
    """``names`` in passes of at most ``column_batch`` (default ``COLUMN_BATCH``) columns.

    >>> column_groups(["a", "b", "c"], 2), column_groups([], 2)
    ([['a', 'b'], ['c']], [[]])
    """
    size = COLUMN_BATCH if column_batch is None else int(column_batch)
    if size < 1:
        raise KeelError(f"column_batch must be at least 1, not {column_batch}")
    return [names[i : i + size] for i in range(0, len(names), size)] or [[]]


def side_by_side(parts: list[Any], schema: Any) -> Any:
    """One Profile of ``schema`` from profiles of its column groups, over the same rows."""
    from keel.profile import Profile

    columns: dict[str, Any] = {}
    for part in parts:
        columns.update(part.columns)
    return Profile(schema, parts[0].rows, {name: columns[name] for name in schema.names})


def _part(schema: Any, names: list[str]) -> Any:
    return type(schema)([schema[name] for name in names])


def _edges_of(edges: Mapping[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    return {name: edges[name] for name in names if name in edges}


def _as_lists(edges: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
    return {name: [float(e) for e in value] for name, value in edges.items()}


def _col(name: str) -> Any:
    """``pyspark.sql.functions.col`` of a column name, quoted (dots and backticks kept)."""
    from pyspark.sql import functions as F

    return F.col(_quoted(name))


def is_spark_frame(data: Any) -> bool:
    """Whether ``data`` is a Spark DataFrame (classic or Spark Connect), told by its type's
    module, so that asking never imports pyspark.

    >>> is_spark_frame([1, 2]), is_spark_frame("events.parquet")
    (False, False)
    """
    kind = type(data)
    return (kind.__module__ or "").startswith("pyspark.sql") and kind.__name__ == "DataFrame"


def cut_frame(
    frame: Any,
    spec: Any,
    schema: Any,
    timestamp: str | None = None,
    bin_edges: Mapping[str, np.ndarray] | None = None,
    sample_size: int = 0,
    sample_seed: int = 0,
    data_start: Any = None,
    data_end: Any = None,
    column_batch: int | None = None,
) -> list[Any]:
    """``keel.windows.cut`` of a Spark DataFrame: every time window profiled in one read of
    the frame, windows as a group-by. Each partition profiles every window it sees (its rows
    cut by ``keel.windows``' own epoch-aligned keys) and emits one row per window and column:
    (window key, column, profile bytes, sample, the partition's oldest and newest time);
    each (window, column) is merged in partition order by the executors
    (``_merged_by_window``: a shuffle, so one job, or two under adaptive execution, which
    runs a shuffle's map side as a job of its own), and the driver puts each window's
    columns side by side and finishes the windows as ``cut`` does (empty windows between
    kept, partial and incomplete ones marked, ``spec.incomplete`` applied). So each window's
    profile equals ``cut``'s of the same rows, whatever the partitioning.

    Only time windows: a Spark DataFrame has no row order to cut row windows by. The window
    sample (``sample_size`` rows of each window, for the multivariate checks) is a bottom-k
    by hash(``sample_seed``, row) (``keel.sample.HashSample``): the same rows under any
    partitioning, but not the rows ``cut``'s order-dependent sample keeps.

    A table wider than ``column_batch`` columns (default ``COLUMN_BATCH``) is cut in one
    job per group of columns, as ``profile_frame`` does, its window profiles put side by
    side; the window samples (whole rows) are then kept in a job of their own.

    >>> from keel.windows import WindowSpec
    >>> log = spark.read.parquet("log/")  # doctest: +SKIP
    >>> windows = cut_frame(log, WindowSpec.parse("1D"), schema, "ts")  # doctest: +SKIP
    >>> [(w.start[:10], w.rows) for w in windows]  # doctest: +SKIP
    [('2026-01-01', 24), ('2026-01-02', 24), ('2026-01-03', 24)]
    """
    from keel.errors import ConfigError, SchemaError
    from keel.windows import _finish, _nanos, _sample_of, _timestamp_column

    if spec.period is None:
        raise ConfigError(
            f"a Spark DataFrame has no row order to cut {spec.describe()} windows by: "
            'cut time windows (a period such as "1D") on its timestamp column'
        )
    timestamp = timestamp or _timestamp_column(schema)
    if timestamp not in frame.columns:
        raise SchemaError(f"Spark DataFrame: no column {timestamp!r} to cut time windows on")
    profiled = [name for name in schema.names if name in frame.columns]
    schema = _part(schema, profiled)
    edges = _edges_of(
        {k: np.asarray(v, dtype=np.float64) for k, v in (bin_edges or {}).items()}, profiled
    )
    groups = column_groups(profiled, column_batch)
    # Each pass profiles a group of columns; the sample (whole rows) is kept in the one pass
    # when there is one, else in a pass of its own that profiles nothing.
    passes = [(group, sample_size if len(groups) == 1 else 0) for group in groups]
    if sample_size and len(groups) > 1:
        passes.append(([], sample_size))
    parts, samples = [], {}
    oldest = newest = None
    for group, size in passes:  # a loop over passes (one for a table of <= column_batch columns)
        windows, kept, low, high = _window_pass(
            frame,
            _part(schema, group),
            _edges_of(edges, group),
            timestamp,
            spec.period_ns,
            profiled if size else [],
            size,
            sample_seed,
        )
        if group or len(groups) == 1:  # not the sample's own pass
            parts.append(windows)
        samples = samples or kept
        oldest = low if oldest is None else oldest
        newest = high if newest is None else newest
    windows = {key: side_by_side([part[key] for part in parts], schema) for key in parts[0]}
    oldest = _nanos(data_start, "data_start") if data_start is not None else oldest
    newest = _nanos(data_end, "data_end") if data_end is not None else newest
    ordered = _finish(windows, spec, schema, edges, None, oldest, newest)
    if sample_size:
        for window in ordered:
            window.sample = _in_utc(_sample_of(window, samples, spec, None))
    return ordered


def _window_pass(
    frame: Any,
    schema: Any,
    edges: dict[str, np.ndarray],
    timestamp: str,
    period_ns: int,
    sampled: list[str],
    sample_size: int,
    sample_seed: int,
) -> tuple[dict[int, Any], dict[int, Any], int | None, int | None]:
    """One Spark job over the frame: each window's profile of ``schema``'s columns, and its
    sample of the ``sampled`` columns; with the oldest and newest time (ns)."""
    from keel.sample import HashSample

    names = list(dict.fromkeys([*schema.names, *sampled, timestamp]))
    run = _partition_windower(
        schema.to_dict(), _as_lists(edges), timestamp, period_ns, sampled, sample_size, sample_seed
    )
    out = f"key long, {PROFILE_ROWS}, sample_state string, sample binary, oldest long, newest long"
    parts: dict[int, list[tuple[Any, Any]]] = {}
    samples: dict[int, Any] = {}
    oldest = newest = None
    selected = frame.select(*[_col(name) for name in names])
    for row in _merged_by_window(selected.mapInArrow(run, out), out):  # one per window, column
        key = int(row[0])
        parts.setdefault(key, []).append((row[1], row[2]))
        if sample_size and row[3]:
            samples[key] = HashSample.from_state(json.loads(row[3]), _from_ipc(bytes(row[4])))
        oldest = row[5] if oldest is None else min(oldest, row[5])
        newest = row[6] if newest is None else max(newest, row[6])
    windows = {key: merge_columns(rows, schema, edges) for key, rows in parts.items()}
    return windows, samples, oldest, newest


def _merged_by_window(parts: Any, out: str) -> list[Any]:
    """The partitions' (window, column) profiles and window samples, each (window, column)
    merged in the executors in partition order and collected: one row per window and
    column, as ``_merged_by_column`` does for a whole table (a partition's part of a window
    holds up to 1.6 MB per numeric column: the driver must not gather them all)."""
    from pyspark.sql import functions as F

    keyed = parts.withColumn("part", F.spark_partition_id())
    spread = keyed.repartition(MERGE_TASKS, "key", "column")
    ordered = spread.sortWithinPartitions("key", "column", "part").drop("part")
    return _collect(ordered.mapInArrow(_window_merger, out))


def _window_merger(batches: Iterator[Any]) -> Iterator[Any]:
    """Spark runs this on each merging task: (window, column) parts sorted by (window,
    column, partition) in; each one's merged profile, sample and time span out (a loop over
    parts, not over rows of data)."""
    import pyarrow as pa

    from keel.profile import Profile
    from keel.sample import HashSample

    def out(group: tuple, profile: Any, sample: Any, low: Any, high: Any) -> Any:
        state, rows = _sample_state(sample) if sample is not None else ("", b"")
        return pa.RecordBatch.from_arrays(
            [
                pa.array([group[0]], pa.int64()),
                pa.array([group[1]], pa.string()),
                pa.array([profile.to_bytes()], pa.binary()),
                pa.array([state], pa.string()),
                pa.array([rows], pa.binary()),
                pa.array([low], pa.int64()),
                pa.array([high], pa.int64()),
            ],
            names=["key", "column", "profile", "sample_state", "sample", "oldest", "newest"],
        )

    group = merged = sample = low = high = None
    for batch in batches:
        keys, names = batch.column("key").to_pylist(), batch.column("column").to_pylist()
        blobs, kept = batch.column("profile"), batch.column("sample")
        states = batch.column("sample_state").to_pylist()
        olds, news = batch.column("oldest").to_pylist(), batch.column("newest").to_pylist()
        for i, current in enumerate(zip(keys, names, strict=True)):
            if merged is not None and current != group:
                yield out(group, merged, sample, low, high)
                merged = sample = low = high = None
            group = current
            part = Profile.from_bytes(blobs[i].as_py(), source="Spark partition")
            merged = part if merged is None else merged.merge(part)
            if states[i]:
                rows = HashSample.from_state(json.loads(states[i]), _from_ipc(kept[i].as_py()))
                sample = rows if sample is None else sample.merge(rows)
            low = olds[i] if low is None else min(low, olds[i])
            high = news[i] if high is None else max(high, news[i])
    if merged is not None:
        yield out(group, merged, sample, low, high)


def _partition_windower(
    schema: dict[str, Any],
    edges: dict[str, list[float]],
    timestamp: str,
    period_ns: int,
    sampled: list[str],
    sample_size: int,
    seed: int,
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """Spark runs this on each partition: Arrow batches in, one row out per window seen."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from keel.profile import Profile
        from keel.sample import HashSample
        from keel.schema import Schema
        from keel.windows import _NO_TIME, _time_keys

        keel_schema = Schema.from_dict(schema)
        inner = {k: np.asarray(v, dtype=np.float64) for k, v in edges.items()}
        profiled = list(keel_schema.names)
        profiles: dict[int, Any] = {}
        samples: dict[int, Any] = {}
        oldest = newest = None
        for batch in batches:
            if not batch.num_rows:
                continue
            keys, low, high = _time_keys(batch.column(timestamp), period_ns, timestamp)
            if high is not None:
                oldest = low if oldest is None else min(oldest, low)
                newest = high if newest is None else max(newest, high)
            for key in np.unique(keys[keys != _NO_TIME]).tolist():  # a loop over windows
                rows = batch.filter(pa.array(keys == key))
                if key not in profiles:
                    profiles[key] = Profile.empty(keel_schema, bin_edges=inner)
                    samples[key] = HashSample(sample_size, seed)
                profiles[key].update(rows.select(profiled))
                if sample_size:
                    samples[key].update(rows.select(sampled))
        if not profiles:
            return
        keys, columns, parts, states, kept = [], [], [], [], []
        for key in sorted(profiles):  # a loop over windows: one row per window and column
            names = list(profiles[key].columns) or [None]
            blobs = [_one_column(profiles[key], name) for name in names]
            state, rows = _sample_state(samples[key]) if sample_size else ("", b"")
            keys += [key] * len(names)
            columns += names
            parts += blobs
            states += [state] + [""] * (len(names) - 1)  # the sample rides on the first row
            kept += [rows] + [b""] * (len(names) - 1)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(keys, pa.int64()),
                pa.array(columns, pa.string()),
                pa.array(parts, pa.binary()),
                pa.array(states, pa.string()),
                pa.array(kept, pa.binary()),
                pa.array([oldest] * len(keys), pa.int64()),
                pa.array([newest] * len(keys), pa.int64()),
            ],
            names=["key", "column", "profile", "sample_state", "sample", "oldest", "newest"],
        )

    return run


def _sample_state(sample: Any) -> tuple[str, bytes]:
    """A HashSample as it crosses from a worker: its state as JSON, its rows as Arrow IPC."""
    state, rows = sample.to_state()
    return json.dumps(state), _to_ipc(rows)


def known_frame(frame: Any) -> Any:
    """The frame's columns keel profiles (the others named in a warning)."""
    from pyspark.sql import functions as F

    return frame.select(*[F.col(_quoted(name)) for name in known_columns(frame)])


def frame_head(frame: Any) -> Any:
    """The frame's first rows (an Arrow table), as keel infers a schema from a file's.

    Read ``COLUMN_BATCH`` columns at a time: the first row group of a Parquet file of 1,000
    dictionary-encoded columns, read at once, ran a local session's 1 GB JVM out of heap.
    Schema inference looks at each column alone, so the groups need not hold the same rows.
    """
    import pyarrow as pa

    from keel.schema import INFERENCE_SAMPLE_ROWS

    groups = column_groups(list(frame.columns))
    if len(groups) == 1:
        return frame.limit(INFERENCE_SAMPLE_ROWS).toArrow()
    tables = [
        frame.select(*[_col(name) for name in group]).limit(INFERENCE_SAMPLE_ROWS).toArrow()
        for group in groups  # a loop over column groups
    ]
    rows = min(table.num_rows for table in tables)
    return pa.Table.from_arrays(
        [column.slice(0, rows) for table in tables for column in table.columns],
        names=[name for table in tables for name in table.column_names],
    )


#: What a partition's profile crosses to the driver as: one row per column, each that
#: column's profile (a one-column ``Profile``'s bytes), so that no row holds more than one
#: column's sketch (at most 1.6 MB) however wide the pass is.
PROFILE_ROWS = "column string, profile binary"


def _partition_profiler(
    schema: dict[str, Any], edges: dict[str, list[float]], sketch_k: int | None = None
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function Spark runs on each partition: Arrow batches in, one row per column out
    (``PROFILE_ROWS``; no column: one row, the row count's)."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from keel.profile import Profile
        from keel.schema import Schema

        inner = {k: np.asarray(v, dtype=np.float64) for k, v in edges.items()}
        profile = Profile.empty(Schema.from_dict(schema), inner, **_sketch(sketch_k))
        for batch in batches:
            if batch.num_rows:
                profile.update(batch)
        for name in list(profile.columns) or [None]:  # a column at a time: one in bytes
            yield pa.RecordBatch.from_arrays(
                [pa.array([name], pa.string()), pa.array([_one_column(profile, name)])],
                names=["column", "profile"],
            )
            if name is not None:
                del profile.columns[name]  # its state goes as soon as it is sent

    return run


def _one_column(profile: Any, name: str | None) -> bytes:
    """A one-column profile's bytes (``None``: the whole, for a profile of no columns)."""
    from keel.profile import Profile

    if name is None:
        return profile.to_bytes()
    return Profile(
        _part(profile.schema, [name]), profile.rows, {name: profile.columns[name]}
    ).to_bytes()


#: The most tasks that merge a pass's partition profiles (``_merged_by_column``).
MERGE_TASKS = 16


def _merged_by_column(parts: Any, columns: int) -> list[Any]:
    """The partitions' one-column profiles (``PROFILE_ROWS``), each column's merged in the
    executors, in partition order, and collected: one row per column.

    The driver never holds every partition's profile at once: a partition of 200,000 rows
    sends 1.6 MB per numeric column (its exact quantile buffer), so 100 columns over 50
    partitions would be 8 GB at the driver (past ``spark.driver.maxResultSize``, and the
    1 GB heap of a local session lost such results). The parts are shuffled by column
    (written to disk, not held), sorted by (column, partition) and merged one column at a
    time, in the order the driver would merge them; a merged column holding more than
    200,000 values is a compacted sketch of a few kB.
    """
    from pyspark.sql import functions as F

    keyed = parts.withColumn("part", F.spark_partition_id())
    spread = keyed.repartition(max(1, min(columns, MERGE_TASKS)), "column")
    ordered = spread.sortWithinPartitions("column", "part").drop("part")
    return _collect(ordered.mapInArrow(_column_merger, PROFILE_ROWS))


def _collect(frame: Any) -> list[Any]:
    """``frame.collect()``, with the one way a frame's parts can disagree on a column named.

    Every partition of a DataFrame hands ``mapInArrow`` batches of the frame's one schema
    (``unionByName(allowMissingColumns=True)`` fills a missing column with nulls and widens
    types), so the profiles cannot disagree. What can is a Parquet folder whose files hold a
    column in different types: Spark reads it as the type of the file it inferred from and
    fails inside the job on another; that failure becomes a SchemaError naming the column,
    the file and both types.
    """
    try:
        return frame.collect()
    except Exception as error:  # pyspark raises its own classes (captured JVM errors)
        found = _type_mismatch(str(error))
        if found is None:
            raise
        from keel.errors import SchemaError

        column, path, expected, actual = found
        raise SchemaError(
            f"Spark DataFrame: the Parquet files disagree on column {column!r}: {path} holds "
            f"it as {actual}, not {expected} as the frame reads it; rewrite that file in one "
            "type, or cast the column when reading each file and union them"
        ) from None


_MISMATCHES = (  # Spark 4's error class, then the older message
    r"reading file (?P<path>\S+?)\.?\s.*?Parquet column \[?`?(?P<column>[^\]`]+?)`?\]?\. "
    r'Expected Spark type "?(?P<expected>[^",]+)"?, actual Parquet type "?(?P<actual>[^".]+)"?',
    r"Parquet column cannot be converted in file (?P<path>\S+)\. Column: \[(?P<column>[^\]]+)\], "
    r"Expected: (?P<expected>\S+), Found: (?P<actual>\w+)",
)


def _type_mismatch(message: str) -> tuple[str, str, str, str] | None:
    """(column, file, expected type, found type) of a Parquet type mismatch, else None.

    >>> _type_mismatch("Parquet column cannot be converted in file file:/d/b.parquet. "
    ...                "Column: [x], Expected: double, Found: BINARY")
    ('x', 'file:/d/b.parquet', 'double', 'BINARY')
    >>> _type_mismatch("Java heap space") is None
    True
    """
    import re

    for pattern in _MISMATCHES:
        found = re.search(pattern, message, re.DOTALL)
        if found:
            return found["column"], found["path"], found["expected"], found["actual"]
    return None


def _column_merger(batches: Iterator[Any]) -> Iterator[Any]:
    """Spark runs this on each merging task: one-column profiles sorted by (column,
    partition) in, each column's merge out (a loop over parts, not over rows of data)."""
    import pyarrow as pa

    from keel.profile import Profile

    def out(name: str | None, profile: Any) -> Any:
        return pa.RecordBatch.from_arrays(
            [pa.array([name], pa.string()), pa.array([profile.to_bytes()], pa.binary())],
            names=["column", "profile"],
        )

    name, merged = None, None
    for batch in batches:
        names, blobs = batch.column("column").to_pylist(), batch.column("profile")
        for i, current in enumerate(names):
            part = Profile.from_bytes(blobs[i].as_py(), source="Spark partition")
            if merged is not None and current == name:
                merged.merge(part)
                continue
            if merged is not None:
                yield out(name, merged)
            name, merged = current, part
    if merged is not None:
        yield out(name, merged)


def _sketch(sketch_k: int | None) -> dict[str, int]:
    """``Profile.empty``'s sketch size argument: the default unless one is given."""
    return {} if sketch_k is None else {"sketch_k": sketch_k}


def merge_columns(
    rows: Iterable[Any],
    schema: Any,
    edges: Mapping[str, np.ndarray],
    sketch_k: int | None = None,
) -> Any:
    """One Profile of ``schema`` from ``PROFILE_ROWS`` rows (every partition's columns),
    each column's parts merged in the order they come (partition order)."""
    from keel.profile import Profile

    merged = {
        name: Profile.empty(_part(schema, [name]), _edges_of(edges, [name]), **_sketch(sketch_k))
        for name in schema.names
    }
    if not merged:
        merged[None] = Profile.empty(schema, **_sketch(sketch_k))
    for name, data in rows:
        merged[name].merge(Profile.from_bytes(bytes(data), source="Spark partition"))
    return side_by_side(list(merged.values()), schema)


def _frame(spark: Any, data: Any, schema: Any) -> tuple[Any, Any]:
    """A Spark DataFrame and its keel Schema (inferred as keel infers it, if not given)."""
    from pyspark.sql import DataFrame

    from keel.schema import Schema

    if isinstance(data, DataFrame):
        if schema is None:
            schema = Schema.infer(frame_head(data))
        return data, schema
    if isinstance(data, str | os.PathLike):
        from keel.data import open_source

        source = open_source(data)  # DataError naming the path: missing, empty, unknown type
        path = Path(data)
        if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
            frame = spark.read.parquet(str(path))
        else:
            frame = spark.read.options(header=True, inferSchema=True).csv(str(path))
        return frame, schema if schema is not None else Schema.infer(source)
    raise KeelError(
        f"the Spark engine reads Spark DataFrames and paths, not {type(data).__name__}: "
        "use the local engine for in-memory tables"
    )


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


#: Spark types keel reads (Arrow carries them; nested types of these count rows and nulls).
_KNOWN_TYPES = (
    "NullType",
    "BooleanType",
    "ByteType",
    "ShortType",
    "IntegerType",
    "LongType",
    "FloatType",
    "DoubleType",
    "DecimalType",
    "StringType",
    "CharType",
    "VarcharType",
    "BinaryType",
    "DateType",
    "TimestampType",
    "TimestampNTZType",
    "DayTimeIntervalType",
    "ArrayType",
    "MapType",
    "StructType",
)


def known_columns(frame: Any) -> list[str]:
    """The frame's columns keel can profile; the others (a ``VariantType``, a calendar
    interval, a user-defined type) are named in a warning and left out."""
    import warnings

    known, unknown = [], []
    for field in frame.schema.fields:
        (known if _is_known(field.dataType) else unknown).append(field)
    if unknown:
        listed = ", ".join(f"{f.name!r} ({f.dataType.simpleString()})" for f in unknown)
        warnings.warn(
            f"Spark DataFrame: keel does not profile columns of these types, left out: {listed}",
            UserWarning,
            stacklevel=3,
        )
    if not known:
        raise KeelError("Spark DataFrame: no column of a type keel profiles")
    return [f.name for f in known]


def _is_known(data_type: Any) -> bool:
    name = type(data_type).__name__
    if name not in _KNOWN_TYPES:
        return False
    if name == "ArrayType":
        return _is_known(data_type.elementType)
    if name == "MapType":
        return _is_known(data_type.keyType) and _is_known(data_type.valueType)
    if name == "StructType":
        return all(_is_known(f.dataType) for f in data_type.fields)
    return True


def baseline_parts(
    frame: Any,
    roles: Mapping[str, str],
    kinds: Mapping[str, str] | None,
    sketch_k: int,
    sample_size: int,
    seed: int,
    column_batch: int | None = None,
) -> tuple[Any, Any, Any, Any, Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]]:
    """A baseline's reference summaries of a Spark DataFrame: its keel Schema, and the
    profile, sample and fingerprint made per partition (``keel.engines.reference.summarize_batch``,
    as one process makes them) and merged; with a function that counts every partition in
    given bin edges (the baseline's second pass).

    The sample and fingerprint (whole rows) are made in one read, merged on the driver; the
    profile by ``profile_frame``, ``column_batch`` columns per read (default
    ``COLUMN_BATCH``), merged by column in the executors, so a wide table's sketches never
    sit in one task or at the driver all at once.
    """
    missing = missing_requirement()
    if missing:
        raise KeelError(f"Baseline.from_spark cannot run: {missing}")
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from keel.fingerprint import ContentFingerprint
    from keel.sample import HashSample
    from keel.schema import Schema

    if not isinstance(frame, DataFrame):
        raise KeelError(
            f"Baseline.from_spark takes a Spark DataFrame, not {type(frame).__name__}: "
            "use Baseline.from_data for files and in-memory tables"
        )
    names = known_columns(frame)
    selected = frame.select(*[F.col(_quoted(name)) for name in names])
    schema = Schema.infer(frame_head(selected), roles, kinds)
    run = _partition_summarizer(Schema([]).to_dict(), sketch_k, sample_size, seed)  # no columns
    out = "profile binary, fingerprint string, sample_state string, sample binary"
    sample, fingerprint = HashSample(sample_size, seed), ContentFingerprint()
    for row in _collect(selected.mapInArrow(run, out)):
        fingerprint.merge(ContentFingerprint.from_state(json.loads(row[1])))
        sample.merge(HashSample.from_state(json.loads(row[2]), _from_ipc(bytes(row[3]))))
    if fingerprint.columns is None:  # no partition saw a row
        fingerprint.columns = names
    sample._rows = _in_utc(sample.table())
    profile = profile_frame(selected, schema, column_batch=column_batch, sketch_k=sketch_k)

    def count_in_bins(edges: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not edges:
            return {}
        inner = {name: [float(e) for e in value] for name, value in edges.items()}
        columns = frame.select(*[F.col(_quoted(name)) for name in inner])
        parts = _collect(columns.mapInArrow(_partition_bin_counter(inner), "counts string"))
        counts = {name: np.zeros(len(value) + 1, dtype=np.int64) for name, value in inner.items()}
        for row in parts:
            for name, part in json.loads(row[0]).items():
                counts[name] += np.asarray(part, dtype=np.int64)
        return counts

    return schema, profile, sample, fingerprint, count_in_bins


def _partition_summarizer(
    schema: dict[str, Any], sketch_k: int, sample_size: int, seed: int
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """Spark runs this on each partition: Arrow batches in; one row out with the partition's
    profile, fingerprint and sample (its rows and keys as Arrow IPC)."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from keel.engines.reference import summarize_batch
        from keel.fingerprint import ContentFingerprint
        from keel.profile import Profile
        from keel.sample import HashSample
        from keel.schema import Schema

        profile = Profile.empty(Schema.from_dict(schema), sketch_k=sketch_k)
        sample, fingerprint = HashSample(sample_size, seed), ContentFingerprint()
        for batch in batches:
            if batch.num_rows:
                summarize_batch(batch, profile, sample, fingerprint)
        state, rows = sample.to_state()
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([profile.to_bytes()], type=pa.binary()),
                pa.array([json.dumps(fingerprint.to_state())]),
                pa.array([json.dumps(state)]),
                pa.array([_to_ipc(rows)], type=pa.binary()),
            ],
            names=["profile", "fingerprint", "sample_state", "sample"],
        )

    return run


def _partition_bin_counter(edges: dict[str, list[float]]) -> Callable[[Iterator[Any]], Iterator]:
    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from keel.profile.numeric import counts_in_bins
        from keel.profile.profile import _to_float64

        inner = {name: np.asarray(value, dtype=np.float64) for name, value in edges.items()}
        counts = {name: np.zeros(len(value) + 1, dtype=np.int64) for name, value in inner.items()}
        for batch in batches:
            for name, value in inner.items():
                values = _to_float64(batch.column(name).drop_null(), name, "numeric")
                counts[name] += counts_in_bins(values[np.isfinite(values)], value)
        payload = json.dumps({name: part.tolist() for name, part in counts.items()})
        yield pa.RecordBatch.from_arrays([pa.array([payload])], names=["counts"])

    return run


def _to_ipc(table: Any) -> bytes:
    if table is None:
        return b""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> Any:
    if not data:
        return None
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _in_utc(table: Any) -> Any:
    """Spark hands times over in its session's zone (``Etc/UTC``, ``Europe/Paris``): the
    sample's times in UTC, as keel reads them from files (the instants are unchanged)."""
    if table is None:
        return None
    import pyarrow as pa

    fields = [
        pa.field(f.name, pa.timestamp(f.type.unit, "UTC"), f.nullable)
        if pa.types.is_timestamp(f.type) and f.type.tz is not None
        else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))
