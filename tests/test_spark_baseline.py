"""Baseline.from_spark equals Baseline.from_data of the same rows whatever the partitioning,
and the processes engine agrees with both: one property test (hypothesis) over random data
and random partitionings, in one real ``local[2]`` session. Counts, nulls, minimum, maximum,
category counts and bin counts equal bit for bit; means and variances to 1e-12 relative
(columns with |mean|/sd = 1e9 included); quantiles exact (under the sketch's exact size, so
its stated error is 0); the fingerprint (hence the baseline id) and the sample identical.
Then bad input: a Spark type keel does not know, empty partitions, no Java."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keel.baseline import Baseline
from keel.engines.spark import missing_requirement
from keel.errors import KeelError
from keel.fingerprint import row_hashes

_MISSING = missing_requirement()
spark_only = [
    pytest.mark.spark,
    pytest.mark.skipif(_MISSING is not None, reason=f"Spark: {_MISSING}"),
]


def _table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    noisy = rng.normal(3.0, 2.0, rows)
    noisy[rng.random(rows) < 0.02] = np.nan
    return pa.table(
        {
            "x": pa.array(rng.normal(0.0, 1.0, rows), mask=rng.random(rows) < 0.05),
            "far": 1e9 + rng.normal(0.0, 1.0, rows),  # |mean| / sd = 1e9
            "noisy": noisy,
            "visits": rng.poisson(4.0, rows).astype(np.int64),
            "plan": pa.array(
                rng.choice(np.array(["basic", "pro", "team"], dtype=object), rows),
                mask=rng.random(rows) < 0.05,
                type=pa.string(),  # typed even when every value is masked
            ),
            "signup": pa.array(
                1_700_000_000_000_000 + rng.integers(0, 10**13, rows), pa.timestamp("us", "UTC")
            ),
            "active": rng.random(rows) < 0.3,
            "label": rng.integers(0, 2, rows),
        }
    )


def _partitioned(spark, path, partitions: int, seed: int):
    from pyspark.sql import functions as F

    frame = spark.read.parquet(str(path))
    keyed = frame.withColumn("_part", (F.rand(seed) * partitions).cast("int"))
    return keyed.repartition(partitions, "_part").drop("_part")


def _exact(profile) -> dict:
    out = {"rows": profile.rows}
    for name, column in profile.columns.items():
        out[name] = (column.rows, column.missing, column.count)
        if hasattr(column, "minimum"):
            out[name] += (column.minimum, column.maximum, column.nan, column.rank_error)
            edges = None if column.bin_edges is None else tuple(column.bin_edges.tolist())
            counts = None if column.bin_counts is None else tuple(column.bin_counts.tolist())
            out[name] += (edges, counts)
        if hasattr(column, "category_counts"):
            out[name] += (tuple(sorted(column.category_counts().items())),)
    return out


def _rows(table: pa.Table) -> list[dict]:
    """The rows as Python values, NaN as a string (NaN is not equal to itself)."""
    return [
        {k: "nan" if isinstance(v, float) and v != v else v for k, v in row.items()}
        for row in table.to_pylist()
    ]


def _moments_agree(mine, theirs) -> None:
    for name, column in theirs.columns.items():
        if hasattr(column, "variance") and column.count:
            assert mine.columns[name].mean == pytest.approx(column.mean, rel=1e-12), name
            if column.count > 1:
                got, want = mine.columns[name].variance, column.variance
                assert got == pytest.approx(want, rel=1e-12), name


@pytest.mark.spark
@pytest.mark.skipif(_MISSING is not None, reason=f"Spark: {_MISSING}")
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.integers(1, 4_000),
    partitions=st.integers(1, 7),
    seed=st.integers(0, 2**16),
)
@example(rows=3, partitions=7, seed=1)  # more partitions than rows: most are empty
@example(rows=4_000, partitions=5, seed=2)
def test_one_process_processes_and_spark_make_the_same_baseline(
    spark, tmp_path_factory, monkeypatch, rows, partitions, seed
):
    import keel.parallel

    path = tmp_path_factory.mktemp("parity") / "reference.parquet"
    pq.write_table(_table(rows, seed), path, row_group_size=max(rows // 3, 1))
    options = {"target": "label", "sample_size": 300, "seed": seed % 7}
    local = Baseline.from_data(path, **options)
    frame = _partitioned(spark, path, partitions, seed)
    assert frame.rdd.getNumPartitions() == partitions
    spread = Baseline.from_spark(frame, **options)

    assert _exact(spread.profile) == _exact(local.profile)
    _moments_agree(spread.profile, local.profile)
    assert spread.config["data_digest"] == local.config["data_digest"]
    assert spread.id == local.id
    assert _rows(spread.sample) == _rows(local.sample)
    for mine, theirs in zip(row_hashes(spread.sample), row_hashes(local.sample), strict=True):
        assert np.array_equal(mine, theirs)  # the same rows, in the same (key) order
    assert spread.sample.num_rows == min(rows, 300)
    assert [(c.name, c.kind, c.role) for c in spread.schema.columns] == [
        (c.name, c.kind, c.role) for c in local.schema.columns
    ]
    assert {k: v.tolist() for k, v in spread.bin_edges.items()} == {
        k: v.tolist() for k, v in local.bin_edges.items()
    }

    # The processes engine (worker processes, column groups) profiles the same counts.
    monkeypatch.setattr(keel.parallel, "MIN_PARALLEL_VALUES", 0)
    _, processes = keel.parallel.profile_sides(None, path, edges=local.bin_edges, workers=2)
    in_bins = {name: column for name, column in _exact(local.profile).items()}
    assert _exact(processes) == in_bins
    _moments_agree(processes, local.profile)


@pytest.mark.spark
@pytest.mark.skipif(_MISSING is not None, reason=f"Spark: {_MISSING}")
def test_a_spark_type_keel_does_not_know_is_named_and_left_out(spark, tmp_path):
    from pyspark.sql import functions as F

    path = tmp_path / "reference.parquet"
    pq.write_table(_table(500, 3), path)
    frame = spark.read.parquet(str(path))
    odd = frame.withColumn("doc", F.expr("""parse_json('{"a": 1}')"""))
    with pytest.warns(UserWarning, match=r"'doc' \(variant\)"):
        baseline = Baseline.from_spark(odd, target="label", sample_size=50)
    assert "doc" not in baseline.schema
    assert baseline.id == Baseline.from_data(path, target="label", sample_size=50).id


@pytest.mark.spark
@pytest.mark.skipif(_MISSING is not None, reason=f"Spark: {_MISSING}")
def test_a_frame_with_no_rows_is_refused_by_name(spark, tmp_path):
    path = tmp_path / "reference.parquet"
    pq.write_table(_table(50, 4), path)
    empty = spark.read.parquet(str(path)).limit(0).repartition(3)
    with pytest.raises(KeelError, match="no rows"):
        Baseline.from_spark(empty, name="events")


def test_from_spark_without_pyspark_or_java_says_how_to_install(monkeypatch):
    import keel.engines.spark as engine

    monkeypatch.setattr(engine, "missing_requirement", lambda: "Java is not installed: ...")
    with pytest.raises(KeelError, match="Baseline.from_spark cannot run: Java"):
        Baseline.from_spark(object())
    monkeypatch.undo()
    if _MISSING is None:
        with pytest.raises(KeelError, match="Spark DataFrame, not list"):
            Baseline.from_spark([1, 2])
