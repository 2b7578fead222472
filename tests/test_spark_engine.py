"""The Spark engine against one process: the same data in 1, 3 and 7 random partitions gives
the same profile (counts, minimum, maximum, category counts and bins exactly; means and
variances within 1e-12 relative), in one real ``local[2]`` session. Skipped, saying what is
missing, without pyspark or Java."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from keel.engines import ENGINES, available_engines
from keel.engines.spark import missing_requirement, spark_session
from keel.errors import KeelError, SchemaError

from .common.spark import SPARK_ONLY, write_sides

pytestmark = SPARK_ONLY
ROWS = 60_000  # under the sketch's exact size: edges from the reference are exact too
PARTITIONINGS = (1, 3, 7)


def _table(seed: int, shift: float) -> pa.Table:
    rng = np.random.default_rng(seed)
    noisy = rng.normal(shift, 2.0, ROWS)
    noisy[rng.random(ROWS) < 0.01] = np.nan
    return pa.table(
        {
            "x": pa.array(rng.normal(shift, 1.0, ROWS), mask=rng.random(ROWS) < 0.03),
            "counts": rng.poisson(3.0 + shift, ROWS).astype(np.int64),
            "noisy": noisy,
            # |mean| / sd = 1e9: the moments must merge without losing the spread.
            "far": 1e9 + rng.normal(shift, 1.0, ROWS),
            "color": pa.array(
                rng.choice(np.array(["red", "green", "blue"], dtype=object), ROWS),
                mask=rng.random(ROWS) < 0.05,
            ),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_sides(tmp_path_factory.mktemp("spark"), _table, 0.4, row_group_size=20_000)


@pytest.fixture(scope="module")
def local(files):
    return ENGINES["local"].profile_sides(*files)


def _frame(spark, path, partitions: int, seed: int):
    """The file's rows, each sent to a random one of ``partitions`` partitions."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(str(path))
    keyed = frame.withColumn("_part", (F.rand(seed) * partitions).cast("int"))
    return keyed.repartition(partitions, "_part").drop("_part")


@pytest.fixture(scope="module")
def by_partitioning(spark, files):
    out = {}
    for partitions in PARTITIONINGS:
        reference = _frame(spark, files[0], partitions, seed=partitions)
        current = _frame(spark, files[1], partitions, seed=10 + partitions)
        assert current.rdd.getNumPartitions() == partitions
        out[partitions] = ENGINES["spark"].profile_sides(reference, current)
    return out


def _exact(profile) -> dict:
    out = {}
    for name, column in profile.columns.items():
        out[name] = (column.rows, column.missing, column.count)
        if hasattr(column, "minimum"):
            out[name] += (column.minimum, column.maximum, column.nan, column.rank_error)
            out[name] += (tuple(column.bin_edges.tolist()), tuple(column.bin_counts.tolist()))
        if hasattr(column, "category_counts"):
            out[name] += (tuple(sorted(column.category_counts().items())),)
    return out


def test_the_engine_is_registered_and_available(spark):
    assert "spark" in ENGINES and "spark" in available_engines()


@pytest.mark.parametrize("partitions", PARTITIONINGS)
def test_any_partitioning_gives_one_processs_counts_and_bins(local, by_partitioning, partitions):
    reference, current = by_partitioning[partitions]
    assert _exact(reference) == _exact(local[0])
    assert _exact(current) == _exact(local[1])
    assert current.rows == ROWS and current.columns["x"].missing > 0
    assert sum(current.columns["color"].category_counts().values()) < ROWS  # nulls left out


@pytest.mark.parametrize("partitions", PARTITIONINGS)
@pytest.mark.parametrize("column", ["x", "counts", "noisy", "far"])
def test_means_agree_to_1e_12_relative(local, by_partitioning, partitions, column):
    for mine, theirs in zip(by_partitioning[partitions], local, strict=True):
        assert mine.columns[column].mean == pytest.approx(theirs.columns[column].mean, rel=1e-12)


@pytest.mark.parametrize("partitions", PARTITIONINGS)
@pytest.mark.parametrize("column", ["x", "counts", "noisy"])
def test_variances_agree_to_1e_12_relative(local, by_partitioning, partitions, column):
    for mine, theirs in zip(by_partitioning[partitions], local, strict=True):
        got, want = mine.columns[column].variance, theirs.columns[column].variance
        assert got == pytest.approx(want, rel=1e-12)


def test_variances_agree_to_1e_12_relative_at_mean_over_sd_1e9(local, by_partitioning):
    # The moments are kept about a pilot value (NumericProfile.shift), re-shifted on merge.
    for partitions in (3, 7):
        for mine, theirs in zip(by_partitioning[partitions], local, strict=True):
            got, want = mine.columns["far"].variance, theirs.columns["far"].variance
            assert got == pytest.approx(want, rel=1e-12)


def test_empty_partitions_change_nothing(spark):
    frame = spark.createDataFrame([(1.0, "a"), (None, "b"), (4.0, None)], "v double, c string")
    spread = frame.repartition(8)  # more partitions than rows: most are empty
    _, whole = ENGINES["spark"].profile_sides(None, frame.coalesce(1))
    _, spread_profile = ENGINES["spark"].profile_sides(None, spread)
    for profile in (whole, spread_profile):
        v = profile.columns["v"]
        assert (profile.rows, v.count, v.nulls, v.minimum, v.maximum) == (3, 2, 1, 1.0, 4.0)
        assert profile.columns["c"].category_counts() == {"a": 1, "b": 1}


def test_a_missing_column_and_an_unknown_input_are_named(spark, files, local):
    frame = spark.read.parquet(str(files[1])).drop("far")
    with pytest.raises(SchemaError, match="far"):
        ENGINES["spark"].profile_sides(None, frame, current_schema=local[1].schema)
    with pytest.raises(KeelError, match="list"):
        ENGINES["spark"].profile_sides(None, [1, 2, 3])


def test_without_java_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "Java" in missing_requirement() and "install" in missing_requirement()
    with pytest.raises(KeelError, match="Java 17"):
        spark_session("local[1]")
