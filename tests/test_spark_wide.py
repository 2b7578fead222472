"""Column batching for wide tables: the Spark engine profiles at most ``column_batch`` columns
per pass and puts the passes' profiles side by side. A batched profile (and a batched cut
into windows, samples included) is the unbatched one, every column's state bit for bit,
whatever the partitioning; one Spark job per pass. One real ``local[2]`` session."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.engines import ENGINES
from keel.engines.spark import (
    COLUMN_BATCH,
    SparkEngine,
    column_groups,
    cut_frame,
    profile_frame,
)
from keel.errors import KeelError
from keel.schema import Schema
from keel.windows import WindowSpec

from .common.spark import SPARK_ONLY, write_sides

pytestmark = SPARK_ONLY
ROWS = 30_000
START = 1_772_323_200_000_000  # 2026-03-01T00:00:00Z in µs


def _table(seed: int, shift: float) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "ts": pa.array(START + rng.integers(0, 4 * 86_400_000_000, ROWS), pa.timestamp("us")),
            "x": pa.array(rng.normal(shift, 1.0, ROWS), mask=rng.random(ROWS) < 0.03),
            "counts": rng.poisson(3.0 + shift, ROWS).astype(np.int64),
            "far": 1e9 + rng.normal(shift, 1.0, ROWS),
            "color": rng.choice(np.array(["red", "green", "blue"], dtype=object), ROWS),
            "flag": rng.random(ROWS) < 0.2,
            "y": rng.exponential(2.0 + shift, ROWS),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_sides(tmp_path_factory.mktemp("spark-wide"), _table, 0.5, row_group_size=10_000)


def _spread(spark, path, partitions: int, seed: int):
    from pyspark.sql import functions as F

    frame = spark.read.parquet(str(path))
    keyed = frame.withColumn("_part", (F.rand(seed) * partitions).cast("int"))
    return keyed.repartition(partitions, "_part").drop("_part")


def _states(profile) -> dict:
    """Every column's whole state (sketch bytes included), and the row count."""
    out = {"rows": profile.rows, "names": list(profile.columns)}
    for name, column in profile.columns.items():
        state, blob = column.to_state()
        out[name] = (state, blob)
    return out


def test_columns_are_cut_into_passes_of_at_most_column_batch():
    assert column_groups(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert column_groups(list("abc")) == [["a", "b", "c"]]  # under COLUMN_BATCH: one pass
    assert len(column_groups([f"c{i}" for i in range(1_000)])) == math.ceil(1_000 / COLUMN_BATCH)
    with pytest.raises(KeelError, match="column_batch must be at least 1"):
        column_groups(["a"], 0)


@pytest.mark.parametrize("column_batch", [1, 3])
def test_a_batched_profile_is_the_unbatched_one(spark, files, column_batch):
    reference, current = (_spread(spark, path, 3, seed=i) for i, path in enumerate(files))
    whole = SparkEngine("spark", column_batch=1_000).profile_sides(reference, current)
    batched = SparkEngine("spark", column_batch=column_batch).profile_sides(reference, current)
    for mine, theirs in zip(batched, whole, strict=True):
        assert _states(mine) == _states(theirs)
        assert mine.schema == theirs.schema
    assert batched[1].columns["x"].bin_counts is not None  # binned in the reference's edges
    # and both are one process's profile of the same rows (counts and bins exactly)
    local = ENGINES["local"].profile_sides(*files)
    for mine, theirs in zip(batched, local, strict=True):
        for name in ("x", "counts", "y"):
            got, want = mine.columns[name], theirs.columns[name]
            assert (got.count, got.missing, got.minimum, got.maximum) == (
                want.count,
                want.missing,
                want.minimum,
                want.maximum,
            )
            assert got.bin_counts.tolist() == want.bin_counts.tolist()


def test_a_batched_cut_into_windows_is_the_unbatched_one(spark, files):
    frame = _spread(spark, files[1], 4, seed=7)
    schema = Schema.infer(pq.read_table(files[1]))
    spec = WindowSpec.parse("1D")
    options = {"timestamp": "ts", "sample_size": 40, "sample_seed": 5}
    whole = cut_frame(frame, spec, schema, column_batch=1_000, **options)
    batched = cut_frame(frame, spec, schema, column_batch=2, **options)
    assert len(whole) == len(batched) == 4
    for mine, theirs in zip(batched, whole, strict=True):
        assert (mine.start, mine.end, mine.partial, mine.complete) == (
            theirs.start,
            theirs.end,
            theirs.partial,
            theirs.complete,
        )
        assert _states(mine.profile) == _states(theirs.profile)
        assert mine.sample.num_rows == 40 and mine.sample.equals(theirs.sample)
        assert mine.sample.column_names == schema.names  # whole rows, not one pass's columns


def test_each_pass_reads_the_data_once(spark, files):
    # A pass is one read (its partition profiles then merged by column in the executors:
    # a shuffle, which adaptive execution runs as a job of its own): passes x one pass's jobs.
    read = spark.read.parquet(str(files[1]))
    schema = Schema.infer(pq.read_table(files[1]))
    context = spark.sparkContext
    jobs = {}
    for column_batch in (1_000, 3):
        context.setJobGroup(f"keel-wide-{column_batch}", "profile_frame")
        try:
            profile_frame(read, schema, column_batch=column_batch)
        finally:
            context.setJobGroup("other", "after")
        group = context.statusTracker().getJobIdsForGroup(f"keel-wide-{column_batch}")
        jobs[column_batch] = len(group)
    assert jobs[1_000] in (1, 2)
    assert jobs[3] == math.ceil(len(schema.names) / 3) * jobs[1_000]


def test_a_table_wider_than_the_default_batch_is_profiled_whole(spark):
    from pyspark.sql import functions as F

    width = COLUMN_BATCH * 2 + 17
    frame = spark.range(0, 2_000, numPartitions=3).select(
        *[(F.col("id") * (i + 1) % 97).cast("double").alias(f"c{i}") for i in range(width)]
    )
    local = pa.table(
        {f"c{i}": (np.arange(2_000) * (i + 1) % 97).astype(np.float64) for i in range(width)}
    )
    schema = Schema.infer(local)
    _, mine = SparkEngine("spark").profile_sides(None, frame, current_schema=schema)
    _, theirs = ENGINES["local"].profile_sides(None, local, current_schema=schema)
    assert list(mine.columns) == [f"c{i}" for i in range(width)] and mine.rows == 2_000
    ranks = np.linspace(0.0, 1.0, 11)
    for name, want in theirs.columns.items():
        got = mine.columns[name]
        assert (got.count, got.minimum, got.maximum) == (want.count, want.minimum, want.maximum)
        assert got.mean == pytest.approx(want.mean, rel=1e-12)
        # the sketch holds every value (exact): the same quantiles, whatever the order
        assert got.quantiles(ranks).tolist() == want.quantiles(ranks).tolist()
        assert got.sketch.is_exact


def test_a_baseline_of_a_table_wider_than_the_batch_is_the_local_baseline(
    spark, files, monkeypatch
):
    import keel.engines.spark as engine
    from keel.baseline import Baseline

    local = Baseline.from_data(files[0], target="flag", sample_size=200, seed=3)
    whole = Baseline.from_spark(
        _spread(spark, files[0], 3, seed=4), target="flag", sample_size=200, seed=3
    )
    monkeypatch.setattr(engine, "COLUMN_BATCH", 2)  # 7 columns: 4 reads of the profile
    batched = Baseline.from_spark(
        _spread(spark, files[0], 3, seed=4), target="flag", sample_size=200, seed=3
    )
    assert batched.id == whole.id == local.id  # the fingerprint of the same rows
    assert batched.sample.equals(whole.sample)
    assert _states(batched.profile) == _states(whole.profile)
    assert batched.profile.columns["x"].sketch_k == local.profile.columns["x"].sketch_k
    for name, column in local.profile.columns.items():
        mine = batched.profile.columns[name]
        assert (mine.rows, mine.missing, mine.count) == (column.rows, column.missing, column.count)
    assert {k: v.tolist() for k, v in batched.bin_edges.items()} == {
        k: v.tolist() for k, v in local.bin_edges.items()
    }


def test_a_wide_frames_head_is_read_a_batch_of_columns_at_a_time(spark, monkeypatch):
    from pyspark.sql import functions as F

    import keel.engines.spark as engine
    from keel.schema import INFERENCE_SAMPLE_ROWS

    frame = spark.range(0, INFERENCE_SAMPLE_ROWS * 2, numPartitions=2).select(
        *[(F.col("id") * (i + 1) % 13).alias(f"c{i}") for i in range(7)],
        F.concat(F.lit("k"), (F.col("id") % 5).cast("string")).alias("tag"),
    )
    want = frame.limit(INFERENCE_SAMPLE_ROWS).toArrow()
    monkeypatch.setattr(engine, "COLUMN_BATCH", 3)  # 8 columns: 3 reads of the head
    got = engine.frame_head(frame)
    assert got.column_names == want.column_names and got.num_rows == INFERENCE_SAMPLE_ROWS
    assert got.equals(want)  # a range reads the same first rows in every group
    assert Schema.infer(got) == Schema.infer(want)
