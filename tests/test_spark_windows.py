"""Windowed checks over a Spark table: ``keel.check_history`` of a Spark DataFrame cuts its
time windows as a group-by in one Spark job (``keel.engines.spark.cut_frame``) and gives the
Results of the same rows read locally: the same windows (keys, rows, partial and incomplete
ones, empty ones between), each window's profile in the baseline's bins exactly, the same
statuses, values to 1e-9. Whatever the partitioning or the session's time zone. One real
``local[2]`` session."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import keel
from keel.baseline import Baseline
from keel.errors import ConfigError
from keel.windows import WindowSpec, cut

from .common.spark import SPARK_ONLY

pytestmark = SPARK_ONLY
ROWS = 24_000
START = 1_772_334_000_000_000  # 2026-03-01T03:00:00Z in µs: the first day is partial
DAY = 86_400_000_000


def _table(seed: int, days: float, drift_after: float | None) -> pa.Table:
    rng = np.random.default_rng(seed)
    times = START + rng.integers(0, int(days * DAY), ROWS)
    midnight = START - 3 * 3_600_000_000
    times[(times >= midnight + 3 * DAY) & (times < midnight + 4 * DAY)] += DAY  # day 4: empty
    late = (times >= START + drift_after * DAY) if drift_after is not None else np.zeros(ROWS, bool)
    return pa.table(
        {
            "ts": pa.array(times, pa.timestamp("us", "UTC"), mask=rng.random(ROWS) < 0.01),
            "x": rng.normal(0.0, 1.0, ROWS) + 1.5 * late,
            "visits": rng.poisson(4.0, ROWS).astype(np.int64),
            "plan": np.where(rng.random(ROWS) < 0.3 + 0.4 * late, "pro", "basic").astype(object),
            "score": rng.random(ROWS),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark-windows")
    reference, current = folder / "reference.parquet", folder / "current.parquet"
    pq.write_table(_table(1, 10.0, None), reference, row_group_size=5_000)
    # ends at 09:00 on the tenth day: the last window is incomplete (and partial)
    pq.write_table(_table(2, 9.25, 7.0), current, row_group_size=5_000)
    return reference, current


@pytest.fixture(scope="module")
def baseline(files):
    return Baseline.from_data(files[0], timestamp="ts", sample_size=0)


def _spread(spark, path, partitions: int, seed: int):
    from pyspark.sql import functions as F

    frame = spark.read.parquet(str(path))
    keyed = frame.withColumn("_part", (F.rand(seed) * partitions).cast("int"))
    return keyed.repartition(partitions, "_part").drop("_part")


def _flat(value):
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in [key, *_flat(value[key])]]
    if isinstance(value, list | tuple):
        return [x for item in value for x in _flat(item)]
    return [value]


def _same(mine, theirs) -> None:
    """Equal, floats to 1e-9 relative, anything else exactly."""
    mine, theirs = _flat(mine), _flat(theirs)
    assert len(mine) == len(theirs)
    for got, want in zip(mine, theirs, strict=True):
        if isinstance(want, float) and isinstance(got, float):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12, nan_ok=True)
        else:
            assert got == want


def _exact(profile) -> dict:
    out = {"rows": profile.rows}
    for name, column in profile.columns.items():
        out[name] = (column.rows, column.missing, column.count)
        if hasattr(column, "minimum"):
            out[name] += (column.minimum, column.maximum, column.nan)
            if column.bin_counts is not None:
                out[name] += (tuple(column.bin_edges.tolist()), tuple(column.bin_counts.tolist()))
        if hasattr(column, "category_counts"):
            out[name] += (tuple(sorted(column.category_counts().items())),)
    return out


@pytest.fixture(scope="module")
def local(baseline, files):
    return keel.check_history(baseline, files[1], window="1D")


def test_the_local_history_has_partial_empty_and_drifting_windows(local):
    rows = [w.rows for w in local.windows]
    assert len(local.windows) == 10 and rows[3] == 0 and local.windows[0].partial
    assert not local.windows[-1].complete
    drifted = {w.start[:10] for w in local.windows if w.drift.column("x").drift}
    assert drifted and all(day >= "2026-03-08" for day in drifted)


@pytest.mark.parametrize("partitions", [1, 5])
def test_a_spark_frame_gives_the_local_history(spark, baseline, files, local, partitions):
    frame = _spread(spark, files[1], partitions, seed=partitions)
    assert frame.rdd.getNumPartitions() == partitions
    history = keel.check_history(baseline, frame, window="1D")
    shape = [(w.start, w.end, w.rows, w.complete, w.partial) for w in history.windows]
    assert shape == [(w.start, w.end, w.rows, w.complete, w.partial) for w in local.windows]
    mine, theirs = history.results(), local.results()
    keys = ("window_start", "window_end", "check", "column", "metric", "status")
    assert [tuple(getattr(r, k) for k in keys) for r in mine] == [
        tuple(getattr(r, k) for k in keys) for r in theirs
    ]
    for got, want in zip(mine, theirs, strict=True):
        _same([got.value, got.threshold, got.details], [want.value, want.threshold, want.details])
    assert history.summary() == local.summary()


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_each_window_profile_is_the_local_one_in_the_baselines_bins(spark, baseline, files, zone):
    from keel.compare import align_schema
    from keel.data import open_source
    from keel.engines.spark import cut_frame
    from keel.history import spark_history_source as history_source

    spec = WindowSpec.parse("1D", incomplete="merge")
    source = open_source(files[1])
    schema = align_schema(baseline.schema, source)
    want = cut(source, spec, schema, "ts", baseline.bin_edges)
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", zone)  # windows stay UTC-aligned
    try:
        frame, frame_schema = history_source(baseline, _spread(spark, files[1], 3, seed=9))
        got = cut_frame(frame, spec, frame_schema, "ts", baseline.bin_edges)
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    assert len(got) == len(want) == 9  # the incomplete last day merged into the one before
    for mine, theirs in zip(got, want, strict=True):
        assert (mine.start, mine.end, mine.complete, mine.partial) == (
            theirs.start,
            theirs.end,
            theirs.complete,
            theirs.partial,
        )
        assert _exact(mine.profile) == _exact(theirs.profile)
        assert mine.profile.columns["x"].bin_counts is not None
        _same(mine.profile.columns["x"].mean, theirs.profile.columns["x"].mean)


def test_every_window_is_profiled_in_one_read(spark, baseline, files):
    from keel.engines.spark import cut_frame
    from keel.history import spark_history_source as history_source

    # A read with no shuffle of its own; small file splits give it several partitions.
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "64k")
    try:
        read = spark.read.parquet(str(files[1]))
        assert read.rdd.getNumPartitions() > 1
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)
    frame, schema = history_source(baseline, read)
    context = spark.sparkContext
    jobs = {}
    for window in ("1D", "16D"):  # ten windows, then one
        context.setJobGroup(f"keel-windows-{window}", "cut_frame")
        try:
            windows = cut_frame(frame, WindowSpec.parse(window), schema, "ts", baseline.bin_edges)
        finally:
            context.setJobGroup("other", "after")
        jobs[window] = (
            len(windows),
            len(context.statusTracker().getJobIdsForGroup(f"keel-windows-{window}")),
        )
    # windows are a group-by: ten windows take the jobs one does (one read, then the merge
    # by window and column: a shuffle, run as a job of its own under adaptive execution)
    assert jobs["1D"][0] == 10 and jobs["16D"][0] == 1
    assert jobs["1D"][1] == jobs["16D"][1] <= 2


def test_data_start_and_end_mark_partial_windows_as_locally(spark, baseline, files):
    from keel.engines.spark import cut_frame
    from keel.history import spark_history_source as history_source

    spec, options = WindowSpec.parse("1D"), {"data_start": "2026-03-01", "data_end": "2026-03-11"}
    frame, schema = history_source(baseline, spark.read.parquet(str(files[1])))
    got = cut_frame(frame, spec, schema, "ts", baseline.bin_edges, **options)
    want = cut(files[1], spec, schema, "ts", baseline.bin_edges, **options)
    assert [(w.partial, w.complete) for w in got] == [(w.partial, w.complete) for w in want]
    assert not got[0].partial and got[-1].complete  # the log says it goes on


def test_row_windows_are_refused_by_name(spark, baseline, files):
    frame = spark.read.parquet(str(files[1]))
    with pytest.raises(ConfigError, match="no row order.*1000 rows"):
        keel.check_history(baseline, frame, window="1000rows")


def test_window_samples_for_the_multivariate_checks_ignore_the_partitioning(spark, files):
    baseline = Baseline.from_data(files[0], timestamp="ts", sample_size=1_000)
    histories = [
        keel.check_history(baseline, _spread(spark, files[1], n, seed=n), window="2D")
        for n in (2, 5)
    ]
    multivariate = [
        [(r.window_start, r.metric, r.value, r.status) for r in h.results() if "multi" in r.check]
        for h in histories
    ]
    assert multivariate[0] and multivariate[0] == multivariate[1]
    rows = [(w.start, w.rows) for w in histories[0].windows]
    assert rows == [(w.start, w.rows) for w in histories[1].windows]
