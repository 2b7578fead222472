"""``keel features ingest`` then ``keel features compute``: the event log in, the features
out, point-in-time, through the real command line; bad definitions exit 2 naming the key."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import yaml


def keel(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "keel.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ingest_then_compute_through_the_command_line(tmp_path):
    (tmp_path / "keel.yaml").write_text(
        yaml.safe_dump(
            {
                "features": [
                    {
                        "name": "spend_1d",
                        "entity": "user",
                        "column": "amount",
                        "aggregation": "sum",
                        "window": "1D",
                    }
                ]
            }
        )
    )
    pq.write_table(
        pa.table(
            {
                "user": ["a", "a", "b"],
                "amount": [2, 3, 4],
                "event_time": ["2020-01-01T10:00:00Z"] * 3,
            }
        ),
        tmp_path / "events.parquet",
    )
    done = keel("features", "ingest", "keel.yaml", "events.parquet", "--root", "logs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ingested 3 events" in done.stdout
    # the events were stamped available now, so a training row in 2020 sees none of them
    # (bitemporal), and one asked for now sees none either: their event time is past the day
    pq.write_table(
        pa.table({"user": ["a", "b", "c"], "event_time": ["2020-01-01T12:00:00Z"] * 3}),
        tmp_path / "queries.parquet",
    )
    done = keel(
        "features",
        "compute",
        "keel.yaml",
        "queries.parquet",
        "-o",
        "out.parquet",
        "--root",
        "logs",
        "--as-of",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "out.parquet")
    assert table["spend_1d"].to_pylist() == [None, None, None]
    # by event time alone (the events file, no availability column) they count
    done = keel(
        "features",
        "compute",
        "keel.yaml",
        "queries.parquet",
        "-o",
        "naive.parquet",
        "--events",
        "events.parquet",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert pq.read_table(tmp_path / "naive.parquet")["spend_1d"].to_pylist() == [5, 4, None]


def test_a_bad_definition_exits_2_naming_the_entry_and_key(tmp_path):
    (tmp_path / "keel.yaml").write_text(
        yaml.safe_dump(
            {
                "features": [
                    {
                        "name": "x",
                        "entity": "user",
                        "aggregation": "count",
                        "window": "1D",
                        "hop": "7h",
                    }
                ]
            }
        )
    )
    done = keel("features", "compute", "keel.yaml", "q.parquet", "-o", "o.parquet", cwd=tmp_path)
    assert done.returncode == 2
    assert "features[0].hop" in done.stderr and "does not divide" in done.stderr
