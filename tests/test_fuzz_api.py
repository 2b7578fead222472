"""Fuzzing the public API: whatever comes in, a failure is a KeelError that names what was
wrong, and nothing the log acknowledged is lost."""

import datetime as dt
import tempfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keel
from keel.errors import KeelError
from keel.store.logs import LogWriter
from keel.store.queries import read_log

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=8),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dates(),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(object),
)
times = st.one_of(
    st.none(),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.text(max_size=25),
    st.sampled_from(["2026-03-01", "2026-03-01T05:00:00Z", "2026-03-01 05:00", "soon", ""]),
    st.integers(),
    st.floats(),
)
records = st.fixed_dictionaries(
    {"request_id": st.one_of(st.none(), st.text(max_size=6), st.integers(), scalars)},
    optional={
        "event_time": times,
        "model_version": scalars,
        "x": scalars,
        "label": scalars,
        "model": st.sampled_from(["loans", "other"]),
    },
)


def _named(error: KeelError) -> None:
    message = str(error)
    assert message and len(message) > 10, message


@FUZZ
@given(st.lists(st.one_of(records, st.lists(records, max_size=4)), min_size=1, max_size=12))
def test_log_predictions_and_labels_acknowledge_only_what_they_keep(calls):
    root = tempfile.mkdtemp()
    for index, call in enumerate(calls):  # the module functions: a KeelError or a count
        log = keel.log_labels if index % 2 else keel.log_predictions
        try:
            accepted = log(call, model="loans", root=root)
        except KeelError as error:
            _named(error)
            continue
        assert 0 <= accepted <= (len(call) if isinstance(call, list) else 1)
    # the same calls through one writer, counted exactly
    acknowledged = 0
    root = tempfile.mkdtemp()
    writer = LogWriter(root, "predictions", "loans", flush_rows=7)
    ids = []
    for call in calls:
        rows = call if isinstance(call, list) else [call]
        # unique ids, so that deduplication cannot hide a loss
        rows = [
            {**r, "request_id": f"{len(ids)}-{k}"} if r.get("request_id") is not None else r
            for k, r in enumerate(rows)
        ]
        try:
            accepted = writer.append(rows)
        except KeelError as error:
            _named(error)
            continue
        assert 0 <= accepted <= len(rows)
        acknowledged += accepted
        ids += [r["request_id"] for r in rows if r.get("request_id") is not None]
    writer.close()
    # counted in the files themselves (DuckDB's readers refuse a column whose type changes
    # between files, e.g. a boolean model_version then a date one)
    from pathlib import Path

    from keel.store.wal import unify

    files = sorted((Path(root) / "predictions").rglob("part-*.parquet"))
    table = unify([pq.read_table(f) for f in files])
    assert table.num_rows == acknowledged
    found = set(table.column("request_id").to_pylist()) if table.num_rows else set()
    assert found <= set(ids)


@FUZZ
@given(
    st.lists(
        st.tuples(st.text(max_size=4), st.datetimes(), st.floats(allow_nan=True)),
        min_size=0,
        max_size=30,
    )
)
def test_a_dataframe_logged_whole_is_kept_or_refused_with_a_keel_error(rows):
    frame = pd.DataFrame(rows, columns=["request_id", "event_time", "score"])
    root = tempfile.mkdtemp()
    try:
        accepted = keel.log_predictions(frame, model="m", root=root, mode="fast")
    except KeelError as error:
        _named(error)
        return
    assert accepted == sum(1 for r, _, _ in rows if r is not None)


columns = st.lists(
    st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40),
        st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=40),
        st.lists(st.text(max_size=5) | st.none(), min_size=1, max_size=40),
        st.lists(st.booleans(), min_size=1, max_size=40),
    ),
    min_size=1,
    max_size=4,
)


def _frame(values):
    length = min(len(v) for v in values)
    return pd.DataFrame({f"c{i}": v[:length] for i, v in enumerate(values)})


@FUZZ
@given(columns, columns)
def test_drift_and_baselines_fail_only_with_keel_errors(reference, current):
    reference, current = _frame(reference), _frame(current)
    try:
        baseline = keel.Baseline.from_data(reference, sample_size=50)
    except KeelError as error:
        _named(error)
        return
    try:
        report = keel.drift(baseline, current)
    except KeelError as error:
        _named(error)
        return
    assert isinstance(report.dataset["drifted_columns"], list | int)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
monitor_keys = st.sampled_from(
    [
        "name",
        "model",
        "baseline",
        "window",
        "alerts",
        "kpis",
        "segments",
        "performance",
        "false_alarm_rate",
        "allowed_lateness",
        "schedule",
        "source",
        "unknown",
    ]
)


@FUZZ
@given(st.lists(st.dictionaries(monitor_keys, yaml_values, max_size=6), max_size=3))
def test_config_loading_fails_only_with_keel_errors_naming_the_file(monitors):
    import yaml

    from keel.monitor.config import parse_config

    text = yaml.safe_dump({"monitors": monitors})
    try:
        parse_config(text, "fuzz.yaml")
    except KeelError as error:
        assert "fuzz.yaml" in str(error), str(error)


@FUZZ
@given(st.text(max_size=200))
def test_any_text_as_keel_yaml_fails_only_with_a_keel_error(text):
    from keel.monitor.config import parse_config

    try:
        parse_config(text, "fuzz.yaml")
    except KeelError as error:
        assert "fuzz.yaml" in str(error), str(error)


@pytest.mark.parametrize("bad", [np.datetime64("NaT"), float("nan"), pd.NaT, object()])
def test_a_strange_event_time_is_refused_alone(bad, tmp_path):
    writer = LogWriter(tmp_path, "predictions", "m")
    good = {"request_id": "g", "event_time": "2026-03-01"}
    assert writer.append([{"request_id": "b", "event_time": bad}, good]) == 1
    assert writer.append(good | {"request_id": "h"}) == 1  # nothing poisoned
    writer.close()
    assert sorted(read_log(tmp_path, "predictions", "m")["request_id"].to_pylist()) == ["g", "h"]
    rejected = pa.concat_tables(
        [pq.read_table(f) for f in (tmp_path / "rejected").rglob("*.parquet")]
    )
    assert rejected["request_id"].to_pylist() == ["b"]
    assert rejected["_rejected_because"].to_pylist()[0]


def test_a_value_parquet_cannot_store_never_blocks_compaction(tmp_path):
    # found by the fuzzer: an empty mapping is a struct with no fields, which Parquet refuses
    writer = LogWriter(tmp_path, "labels", "m")
    assert writer.append({"request_id": "a", "event_time": "2026-03-01", "label": {}}) == 0
    empty = pa.array([{}], pa.struct([]))
    assert (
        writer.append(
            pa.table({"request_id": ["b"], "event_time": ["2026-03-01"]}).append_column(
                "label", empty
            )
        )
        == 1
    )
    writer.close()
    assert read_log(tmp_path, "labels", "m")["label"].to_pylist() == ["{}"]  # kept, as text
