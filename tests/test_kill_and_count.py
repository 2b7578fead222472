"""Kill a logging process at random points and count: every acknowledged record is on disk.

Each round starts a process that logs records through ``keel.log_predictions``
(durable, the default) and prints each request id once the call returned;
the test kills it (SIGKILL, or SIGTERM every fourth round) at a random
moment, then opens the log (recovery) and looks for every printed id.
"""

import random
import signal
import subprocess
import sys
import time

from keel.store.logs import LogWriter
from keel.store.queries import read_log

CHILD = """
import sys, datetime as dt
import keel
root, prefix = sys.argv[1], sys.argv[2]
when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
# the first call imports the log's modules and opens (recovers) the log: done before "ready"
assert keel.log_predictions({"request_id": f"{prefix}-first", "event_time": when},
                            model="loans", root=root) == 1
print("ready", flush=True)
print(f"{prefix}-first", flush=True)
for index in range(10**9):
    if index % 7 == 0:  # a small batch now and then
        rows = [{"request_id": f"{prefix}-{index}-{k}", "event_time": when} for k in range(5)]
        assert keel.log_predictions(rows, model="loans", root=root) == 5
        print(*(row["request_id"] for row in rows), sep="\\n", flush=True)
    else:
        record = {"request_id": f"{prefix}-{index}", "event_time": when, "x": 1.0}
        assert keel.log_predictions(record, model="loans", root=root) == 1
        print(record["request_id"], flush=True)
"""


def test_twenty_kills_at_random_points_lose_no_acknowledged_record(tmp_path):
    rng = random.Random(16)
    acknowledged = set()
    started = time.monotonic()
    for round_ in range(20):
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), f"k{round_}"],
            stdout=subprocess.PIPE,
            text=True,
            env={"KEEL_LOG_MODE": "durable", "PATH": "/usr/bin:/bin"},
        )
        assert process.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.05, 0.6))
        process.send_signal(signal.SIGTERM if round_ % 4 == 3 else signal.SIGKILL)
        output, _ = process.communicate(timeout=10)
        assert process.returncode in (-signal.SIGKILL, -signal.SIGTERM)
        lines = output.split("\n")[:-1]  # a last line cut by the kill is not an acknowledgement
        acknowledged.update(lines)
    assert time.monotonic() - started < 120
    assert len(acknowledged) > 200  # the processes did log, plenty
    LogWriter(tmp_path, "predictions", "loans").close()  # opening recovers what is left
    on_disk = read_log(tmp_path, "predictions", "loans").column("request_id").to_pylist()
    lost = acknowledged - set(on_disk)
    print(f"acknowledged {len(acknowledged):,}, on disk {len(set(on_disk)):,}, lost {len(lost)}")
    assert not lost
    assert len(on_disk) == len(set(on_disk))  # and nothing twice


def test_a_short_script_that_exits_normally_leaves_every_record_on_disk(tmp_path):
    script = f"""
import datetime as dt, keel
for i in range(100):
    keel.log_predictions({{"request_id": f"r{{i}}", "event_time": dt.datetime(2026, 3, 1)}},
                         model="loans", root={str(tmp_path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""
    # compacted at exit, visible without any recovery
    assert read_log(tmp_path, "predictions", "loans").num_rows == 100
    assert not list((tmp_path / "wal").rglob("segment-*.wal"))


def test_a_failed_compaction_at_exit_is_said_and_the_records_kept(tmp_path):
    (tmp_path / "predictions").write_text("a file where the folder should be")
    script = f"""
import datetime as dt, keel
keel.log_predictions({{"request_id": "r1", "event_time": dt.datetime(2026, 3, 1)}},
                     model="loans", root={str(tmp_path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0
    assert "was not compacted" in result.stderr and "kept in the WAL" in result.stderr
    (tmp_path / "predictions").unlink()
    LogWriter(tmp_path, "predictions", "loans").close()
    assert read_log(tmp_path, "predictions", "loans").column("request_id").to_pylist() == ["r1"]
