"""``keel.drift`` with a Spark DataFrame on either side equals ``keel.drift`` of the same rows
read locally: the same drifted columns, statuses and counts, statistics and p-values to
1e-9 (the rows are under the quantile sketch's exact size, so its stated error is 0), the
same quality findings; whatever the reference is (a Baseline, a Profile, local data or a
Spark frame) and however the rows are partitioned. One real ``local[2]`` session."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import keel
from keel.baseline import Baseline
from keel.engines.spark import is_spark_frame
from keel.errors import ConfigError, KeelError
from keel.profile import Profile

from .common.spark import SPARK_ONLY

pytestmark = SPARK_ONLY
ROWS = 40_000


def _table(seed: int, shift: float, share: float) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "steady": rng.normal(0.0, 1.0, ROWS),  # the same on both sides: no drift
            "x": pa.array(rng.normal(shift, 1.0, ROWS), mask=rng.random(ROWS) < 0.03),
            "visits": rng.poisson(4.0, ROWS).astype(np.int64),
            "far": 1e9 + rng.normal(0.0, 1.0 + shift, ROWS),  # |mean| / sd = 1e9
            "plan": pa.array(
                np.where(rng.random(ROWS) < share, "pro", "basic").astype(object),
                mask=rng.random(ROWS) < 0.02,
            ),
            "active": rng.random(ROWS) < 0.3,
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark-drift")
    paths = {}
    for name, seed, shift, share in (("reference", 1, 0.0, 0.3), ("current", 2, 0.3, 0.55)):
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(_table(seed, shift, share), paths[name], row_group_size=10_000)
    return paths


def _spread(spark, path, partitions: int, seed: int):
    """The file's rows, each sent to a random one of ``partitions`` partitions."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(str(path))
    keyed = frame.withColumn("_part", (F.rand(seed) * partitions).cast("int"))
    return keyed.repartition(partitions, "_part").drop("_part")


def _close(mine, theirs) -> bool:
    if mine is None or theirs is None:
        return mine is theirs
    return mine == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def _plain(value):
    """Numbers of a nested dict or list, flattened in order (for approximate comparison)."""
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in [key, *_plain(value[key])]]
    if isinstance(value, list | tuple):
        return [x for item in value for x in _plain(item)]
    return [value]


def _approx_shares(got, want) -> bool:
    mine, theirs = _plain(got.distribution), _plain(want.distribution)
    numbers = [isinstance(x, float) for x in theirs]
    assert len(mine) == len(theirs) and numbers == [isinstance(x, float) for x in mine]
    assert [x for x, n in zip(mine, numbers, strict=True) if not n] == [
        x for x, n in zip(theirs, numbers, strict=True) if not n
    ]
    floats = [x for x, n in zip(mine, numbers, strict=True) if n]
    assert floats == pytest.approx([x for x, n in zip(theirs, numbers, strict=True) if n])
    return True


def _assert_same_report(mine, theirs) -> None:
    assert (mine.drift, mine.alert) == (theirs.drift, theirs.alert)
    assert [c.column for c in mine.columns] == [c.column for c in theirs.columns]
    for got, want in zip(mine.columns, theirs.columns, strict=True):
        exact = ("kind", "method", "drift", "status", "check", "finding", "effect_method")
        exact += ("reference_count", "current_count", "rule")
        for name in exact:
            assert getattr(got, name) == getattr(want, name), (got.column, name)
        for name in ("statistic", "p_value", "p_value_adjusted", "threshold", "effect_size"):
            assert _close(getattr(got, name), getattr(want, name)), (got.column, name)
        assert _plain(got.details) == pytest.approx(_plain(want.details), rel=1e-9, abs=1e-12)
        assert _plain(got.distribution) == _plain(want.distribution) or _approx_shares(got, want)
    assert [f for f in mine.dataset["findings"]] == [f for f in theirs.dataset["findings"]]
    quality = [(r.check, r.column, r.metric, r.status) for r in mine.quality]
    assert quality == [(r.check, r.column, r.metric, r.status) for r in theirs.quality]
    for got, want in zip(mine.quality, theirs.quality, strict=True):
        assert _close(got.value, want.value), (got.check, got.column, got.metric)


@pytest.fixture(scope="module")
def local(files):
    return keel.drift(files["reference"], files["current"])


def test_the_data_drifts_in_some_columns_and_not_others(local):
    drifted = {c.column for c in local.columns if c.drift}
    assert {"x", "far", "plan"} <= drifted and "steady" not in drifted


@pytest.mark.parametrize("partitions", [1, 4])
def test_spark_frames_on_both_sides_give_the_local_report(spark, files, local, partitions):
    reference = _spread(spark, files["reference"], partitions, seed=partitions)
    current = _spread(spark, files["current"], partitions, seed=10 + partitions)
    assert is_spark_frame(current) and current.rdd.getNumPartitions() == partitions
    _assert_same_report(keel.drift(reference, current), local)
    # PSI reads the counts in the reference's bins: the current side was binned in them.
    psi = keel.drift(files["reference"], files["current"], method="psi")
    _assert_same_report(keel.drift(reference, current, method="psi"), psi)


@pytest.mark.parametrize("method", [None, "psi"])
def test_a_baseline_against_a_spark_frame_gives_the_local_report(spark, files, method):
    baseline = Baseline.from_data(files["reference"], sample_size=0)
    want = keel.drift(baseline, files["current"], method=method)
    got = keel.drift(baseline, _spread(spark, files["current"], 3, seed=5), method=method)
    _assert_same_report(got, want)
    assert got.column("x").statistic > 10 * got.column("steady").statistic


def test_the_current_frame_is_counted_in_the_baselines_bins(spark, files):
    # The report reads sketches too; the bins themselves must be those of one process.
    from keel.compare import align_schema
    from keel.compare import spark_drift_profiles as drift_profiles
    from keel.data import open_source
    from keel.parallel import profile_sides

    baseline = Baseline.from_data(files["reference"], sample_size=0)
    source = open_source(files["current"])
    _, want = profile_sides(
        None, source, current_schema=align_schema(baseline.schema, source), edges=baseline.bin_edges
    )
    _, _, got, name = drift_profiles(baseline, _spread(spark, files["current"], 3, seed=8))
    assert name == "Spark DataFrame" and got.rows == want.rows == ROWS
    binned = [n for n, c in want.columns.items() if getattr(c, "bin_counts", None) is not None]
    assert set(binned) == {"steady", "x", "visits", "far"}
    for column in binned:
        mine, theirs = got.columns[column], want.columns[column]
        assert mine.bin_edges.tolist() == theirs.bin_edges.tolist()
        assert mine.bin_counts.tolist() == theirs.bin_counts.tolist(), column


def test_a_profile_or_local_data_against_a_spark_frame_gives_the_local_report(spark, files):
    current = _spread(spark, files["current"], 3, seed=6)
    profile = Profile.build(files["reference"])
    _assert_same_report(keel.drift(profile, current), keel.drift(profile, files["current"]))
    local = keel.drift(files["reference"], files["current"], roles={"visits": "id"})
    got = keel.drift(files["reference"], current, roles={"visits": "id"})
    _assert_same_report(got, local)
    assert "visits" not in [c.column for c in got.columns]  # the role given is kept


def test_a_spark_reference_against_local_data_or_a_profile(spark, files, local):
    reference = _spread(spark, files["reference"], 3, seed=7)
    _assert_same_report(keel.drift(reference, files["current"]), local)
    current = Profile.build(files["current"])
    _assert_same_report(keel.drift(reference, current), keel.drift(files["reference"], current))


def test_a_spark_column_type_keel_does_not_know_is_named_and_left_out(spark, files, local):
    from pyspark.sql import functions as F

    current = spark.read.parquet(str(files["current"]))
    odd = current.withColumn("doc", F.expr("""parse_json('{"a": 1}')"""))
    with pytest.warns(UserWarning, match=r"'doc' \(variant\)"):
        got = keel.drift(files["reference"], odd)
    _assert_same_report(got, local)


def test_exact_mode_and_an_unstructured_baseline_are_refused_by_name(spark, files):
    current = spark.read.parquet(str(files["current"]))
    with pytest.raises(ConfigError, match="exact mode.*Spark"):
        keel.drift(files["reference"], current, exact=True)
    baseline = Baseline.from_data(files["reference"], sample_size=0)
    baseline.unstructured = object()  # as a baseline with embedding or text columns has
    with pytest.raises(KeelError, match="embedding, text or image"):
        keel.drift(baseline, current)


def test_telling_a_spark_frame_apart_imports_no_pyspark():
    code = (
        "import sys, keel, keel.compare, pandas as pd\n"
        "from keel.engines.spark import is_spark_frame\n"
        "assert not is_spark_frame(pd.DataFrame({'x': [1.0]}))\n"
        "keel.drift(pd.DataFrame({'x': [1.0, 2.0, 3.0]}), pd.DataFrame({'x': [2.0, 3.0]}))\n"
        "print('pyspark' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
