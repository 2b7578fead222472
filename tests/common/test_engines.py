"""The engine battery: every engine in ``keel.engines.ENGINES`` profiles the same files into
the same profiles — counts, nulls and bins exactly, quantiles within the sketch's error.

Bins are exact in the same edges. Edges read off the reference's quantile sketch are the
same as well for the engines that feed the sketch in the same order (local, processes);
Spark merges one sketch per partition, so past the sketch's exact size (200,000 values)
its edges agree within the sketches' stated error, which is what is asserted for it. The
Spark engine runs in one real ``local[2]`` session, and is skipped, saying what is
missing, without pyspark or Java.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.engines import ENGINES
from keel.engines.spark import missing_requirement
from keel.parallel import MIN_PARALLEL_VALUES, edges_from

COLUMNS, ROWS = 12, 400_000  # above MIN_PARALLEL_VALUES: the process engine does fork
_SPARK_MISSING = missing_requirement()
#: Engines that feed each column's sketch the values in the file's order: the same sketch.
SAME_SKETCH = {"local", "processes"}
NAMES = [
    pytest.param(
        name,
        marks=[
            pytest.mark.spark,
            pytest.mark.skipif(_SPARK_MISSING is not None, reason=f"Spark: {_SPARK_MISSING}"),
        ],
    )
    if name == "spark"
    else name
    for name in sorted(ENGINES)
]


@pytest.fixture
def engine_ready(request):
    """Start what an engine needs (Spark: the module's session) before it is used."""

    def ready(name: str):
        if name == "spark":
            request.getfixturevalue("spark")
        return ENGINES[name]

    return ready


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engines")
    rng = np.random.default_rng(3)
    for name, shift in (("reference", 0.0), ("current", 0.3)):
        data = {f"x{i}": rng.normal(shift * i, 1.0 + i, ROWS) for i in range(COLUMNS)}
        data["color"] = rng.choice(np.array(["red", "green", "blue"], dtype=object), ROWS)
        table = pa.table(data)
        nulls = rng.random(ROWS) < 0.02
        table = table.set_column(0, "x0", pa.array(data["x0"], mask=nulls))
        pq.write_table(table, folder / f"{name}.parquet", row_group_size=100_000)
    assert COLUMNS * ROWS > MIN_PARALLEL_VALUES
    return folder / "reference.parquet", folder / "current.parquet"


@pytest.fixture(scope="module")
def local(files):
    return ENGINES["local"].profile_sides(*files)


def _exact(profile, bins: bool = True) -> dict:
    out = {}
    for name, column in profile.columns.items():
        out[name] = (column.rows, column.missing, column.count)
        if hasattr(column, "minimum"):
            out[name] += (column.minimum, column.maximum)
        if bins and getattr(column, "bin_counts", None) is not None:
            out[name] += (tuple(column.bin_counts.tolist()),)
        if hasattr(column, "category_counts"):
            out[name] += (tuple(sorted(column.category_counts().items())),)
    return out


@pytest.mark.parametrize("engine", NAMES)
def test_every_engine_gives_the_same_counts_and_bins(files, local, engine_ready, engine):
    reference, current = engine_ready(engine).profile_sides(*files)
    same_sketch = engine in SAME_SKETCH
    assert _exact(reference, bins=same_sketch) == _exact(local[0], bins=same_sketch)
    assert _exact(current, bins=same_sketch) == _exact(local[1], bins=same_sketch)
    assert current.columns["x3"].bin_counts.sum() == ROWS
    for name in (f"x{i}" for i in range(COLUMNS)):
        mine, theirs = reference.columns[name], local[0].columns[name]
        assert mine.mean == pytest.approx(theirs.mean, rel=1e-12, abs=1e-12), name
        assert mine.variance == pytest.approx(theirs.variance, rel=1e-12), name
        # Each edge at rank i/bins of its own sketch sits at that rank of the local sketch,
        # within the two sketches' stated errors (and exactly so for the same sketch).
        heaviest = sum(c.weighted_values()[1].max() / c.count for c in (mine, theirs))
        error = mine.rank_error + theirs.rank_error + heaviest
        ranks = np.array([theirs.sketch.rank(edge) for edge in mine.bin_edges])
        wanted = np.arange(1, len(mine.bin_edges) + 1) / (len(mine.bin_edges) + 1)
        assert len(mine.bin_edges) == len(theirs.bin_edges), name
        assert np.all(np.abs(ranks - wanted) <= error + 1e-9), (name, ranks - wanted, error)


@pytest.mark.parametrize("engine", NAMES)
def test_in_the_same_edges_every_engine_counts_the_same_bins(files, local, engine_ready, engine):
    edges = edges_from(local[0])
    reference, current = engine_ready(engine).profile_sides(None, files[1], edges=edges)
    assert reference is None
    assert _exact(current) == _exact(local[1])  # bins included: local's are in these edges
    for name in edges:
        assert np.array_equal(current.columns[name].bin_edges, local[1].columns[name].bin_edges)


@pytest.mark.parametrize("engine", NAMES)
def test_every_engines_quantiles_agree_within_the_sketch_error(files, local, engine_ready, engine):
    _, current = engine_ready(engine).profile_sides(*files)
    ranks = np.linspace(0.01, 0.99, 25)
    for name in (f"x{i}" for i in range(COLUMNS)):
        mine, theirs = current.columns[name], local[1].columns[name]
        error = mine.rank_error + theirs.rank_error
        # Each engine's quantile at rank r must sit within the local one's ranks r ± error.
        low = theirs.quantiles(np.clip(ranks - error, 0, 1))
        high = theirs.quantiles(np.clip(ranks + error, 0, 1))
        got = mine.quantiles(ranks)
        assert np.all((got >= low - 1e-12) & (got <= high + 1e-12)), name


@pytest.mark.parametrize("engine", NAMES)
def test_with_a_baselines_edges_the_reference_is_not_read(files, local, engine_ready, engine):
    edges = {"x1": np.array([-1.0, 0.0, 1.0])}
    reference, current = engine_ready(engine).profile_sides(None, files[1], edges=edges)
    assert reference is None
    x1 = current.columns["x1"]
    assert len(x1.bin_counts) == 4 and x1.bin_counts.sum() == ROWS


@pytest.mark.spark
@pytest.mark.parametrize("partitions", [1, 5])
def test_spark_gives_the_same_counts_whatever_the_partitioning(files, local, spark, partitions):
    """Rows shuffled into other partitions: every count, minimum, maximum and category
    count is still exactly one process's, and so are the bins in the same edges."""
    edges = edges_from(local[0])
    frame = spark.read.parquet(str(files[1])).repartition(partitions)
    assert frame.rdd.getNumPartitions() == partitions
    _, current = ENGINES["spark"].profile_sides(None, frame, edges=edges)
    assert _exact(current) == _exact(local[1])
