"""Bad input on the Spark engine: empty partitions change nothing (profiles, windows, drift);
a frame with no rows reads as local data with no rows does; a Spark type keel does not
know is named and left out of windowed checks too; frames put together by ``unionByName``
(columns missing from a part, types widened) profile as the same rows do locally; a Parquet
folder whose files disagree on a column's type is refused with an error naming the column.
One real ``local[2]`` session."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import keel
from keel.baseline import Baseline
from keel.engines import ENGINES
from keel.engines.spark import SparkEngine, cut_frame
from keel.errors import SchemaError
from keel.history import spark_history_source as history_source
from keel.schema import Schema
from keel.windows import WindowSpec, cut

from .common.spark import SPARK_ONLY, write_sides

pytestmark = SPARK_ONLY
ROWS = 6_000
START = 1_772_323_200_000_000  # 2026-03-01T00:00:00Z in µs


def _table(seed: int, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "ts": pa.array(START + rng.integers(0, 3 * 86_400_000_000, ROWS), pa.timestamp("us")),
            "x": pa.array(rng.normal(shift, 1.0, ROWS), mask=rng.random(ROWS) < 0.05),
            "n": rng.poisson(3.0, ROWS).astype(np.int64),
            "plan": rng.choice(np.array(["basic", "pro"], dtype=object), ROWS),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_sides(tmp_path_factory.mktemp("spark-bad"), _table, 0.7)


def _summary(profile) -> dict:
    """Counts, extremes, bins and categories exactly, quantiles (exact sketches) exactly."""
    out = {"rows": profile.rows}
    ranks = np.linspace(0.0, 1.0, 9)
    for name, column in profile.columns.items():
        out[name] = (column.rows, column.missing, column.count)
        if hasattr(column, "minimum"):
            out[name] += (column.minimum, column.maximum, column.nan)
            if column.count:
                out[name] += (tuple(column.quantiles(ranks).tolist()),)
            if column.bin_counts is not None:
                out[name] += (tuple(column.bin_counts.tolist()),)
        if hasattr(column, "category_counts"):
            out[name] += (tuple(sorted(column.category_counts().items())),)
    return out


def _with_empty_partitions(spark, path):
    """The rows in 8 partitions by ``plan`` (2 values): at least 6 partitions are empty."""
    frame = spark.read.parquet(str(path)).repartition(8, "plan")
    sizes = frame.rdd.mapPartitions(lambda rows: [sum(1 for _ in rows)]).collect()
    assert len(sizes) == 8 and sizes.count(0) >= 6 and sum(sizes) == ROWS
    return frame


@pytest.mark.parametrize("column_batch", [None, 1])
def test_empty_partitions_give_the_same_profiles(spark, files, column_batch):
    engine = SparkEngine("spark", column_batch=column_batch)
    reference = _with_empty_partitions(spark, files[0])
    current = _with_empty_partitions(spark, files[1])
    spread = engine.profile_sides(reference, current)
    whole = engine.profile_sides(reference.coalesce(1), current.coalesce(1))
    local = ENGINES["local"].profile_sides(*files)
    for mine, one, theirs in zip(spread, whole, local, strict=True):
        assert _summary(mine) == _summary(one) == _summary(theirs)
        assert mine.columns["x"].mean == pytest.approx(theirs.columns["x"].mean, rel=1e-12)


def test_empty_partitions_give_the_same_windows(spark, files):
    schema = Schema.infer(files[1])
    spec = WindowSpec.parse("1D")
    got = cut_frame(_with_empty_partitions(spark, files[1]), spec, schema, "ts", sample_size=30)
    want = cut(files[1], spec, schema, "ts")
    assert [(w.start, w.rows, w.partial) for w in got] == [
        (w.start, w.rows, w.partial) for w in want
    ]
    assert [_summary(w.profile) for w in got] == [_summary(w.profile) for w in want]
    assert all(w.sample.num_rows == 30 for w in got)


def test_empty_partitions_give_the_same_drift_report(spark, files):
    want = keel.drift(files[0], files[1])
    got = keel.drift(files[0], _with_empty_partitions(spark, files[1]))
    assert want.drift and got.column("x").drift
    assert [(c.column, c.drift, c.status, c.statistic) for c in got.columns] == [
        (c.column, c.drift, c.status, c.statistic) for c in want.columns
    ]


def test_a_frame_with_no_rows_reads_as_an_empty_table(spark, files, tmp_path):
    empty_path = tmp_path / "empty.parquet"
    pq.write_table(_table(3).slice(0, 0), empty_path)
    empty = spark.read.parquet(str(files[1])).limit(0).repartition(3)
    got = keel.drift(files[0], empty)
    want = keel.drift(files[0], empty_path)
    assert got.dataset["findings"] == want.dataset["findings"]
    assert {"column": None, "level": "alert", "finding": "the current data has no rows"} in (
        got.dataset["findings"]
    )
    assert [(c.column, c.status) for c in got.columns] == [
        (c.column, c.status) for c in want.columns
    ]


def test_a_spark_type_keel_does_not_know_is_left_out_of_windowed_checks(spark, files):
    from pyspark.sql import functions as F

    baseline = Baseline.from_data(files[0], timestamp="ts", sample_size=0)
    frame = spark.read.parquet(str(files[1]))
    odd = frame.withColumn("doc", F.expr("""parse_json('{"a": 1}')"""))
    with pytest.warns(UserWarning, match=r"'doc' \(variant\)"):
        source, schema = history_source(baseline, odd)
    assert "doc" not in source.columns and "doc" not in schema
    with pytest.warns(UserWarning, match="doc"):
        history = keel.check_history(baseline, odd, window="1D")
    local = keel.check_history(baseline, files[1], window="1D")
    assert [(r.window_start, r.check, r.column, r.status) for r in history.results()] == [
        (r.window_start, r.check, r.column, r.status) for r in local.results()
    ]


def test_a_union_with_missing_columns_and_widened_types_is_profiled_as_its_rows(spark, files):
    first, second = _table(4), _table(5)
    # the second part has no "plan" column and its counts "n" as doubles
    second = second.drop_columns(["plan"]).set_column(2, "n", second.column("n").cast(pa.float64()))
    frame = spark.createDataFrame(first.to_pandas()).unionByName(
        spark.createDataFrame(second.to_pandas()), allowMissingColumns=True
    )
    assert dict(frame.dtypes)["n"] == "double"
    rows = pa.concat_tables(
        [first.set_column(2, "n", first.column("n").cast(pa.float64())), second],
        promote_options="default",
    )
    schema = Schema.infer(rows)
    _, mine = SparkEngine("spark").profile_sides(None, frame.repartition(3), current_schema=schema)
    _, theirs = ENGINES["local"].profile_sides(None, rows, current_schema=schema)
    assert _summary(mine) == _summary(theirs)
    assert mine.columns["plan"].missing == ROWS  # the part without the column: nulls


def test_parquet_files_that_disagree_on_a_columns_type_are_named(spark, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [1, 2]}), folder / "a.parquet")
    pq.write_table(pa.table({"x": ["one", "two"], "y": [3, 4]}), folder / "b.parquet")
    frame = spark.read.parquet(str(folder))
    schema = Schema.infer(pa.table({"x": [1.0], "y": [1]}))
    with pytest.raises(SchemaError, match=r"column 'x'.*b\.parquet|b\.parquet.*column 'x'"):
        SparkEngine("spark").profile_sides(None, frame, current_schema=schema)
