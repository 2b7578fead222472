"""Prediction and label logs: batching, atomic files, rejected rows, compaction, retention."""

import signal
import subprocess
import sys
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from keel.errors import ConfigError, DataError
from keel.store.logs import LogWriter, compact, retain
from keel.store.queries import read_log


def _records(n, start=0, day="2026-03-01"):
    base = pd.Timestamp(day, tz="UTC")
    return [
        {
            "request_id": f"r{start + i}",
            "event_time": base + pd.Timedelta(minutes=i),
            "model_version": "1",
            "x": float(i),
            "score": 0.5,
        }
        for i in range(n)
    ]


def test_many_small_calls_become_one_file_per_day(tmp_path):
    with LogWriter(tmp_path, "predictions", "loans", flush_rows=1000, flush_seconds=60) as log:
        for index in range(200):
            log.append(_records(3, start=index * 3))
    files = list((tmp_path / "predictions" / "model=loans").rglob("*.parquet"))
    assert len(files) == 1 and "date=2026-03-01" in str(files[0])
    table = read_log(tmp_path, "predictions", "loans")
    assert table.num_rows == 600 and "_ingested_at" in table.column_names


def test_rows_are_flushed_by_size_and_split_by_utc_day(tmp_path):
    log = LogWriter(tmp_path, "predictions", "loans", flush_rows=100, flush_seconds=60)
    log.append(_records(150, day="2026-03-01") + _records(50, start=500, day="2026-03-02"))
    days = sorted(p.name for p in (tmp_path / "predictions" / "model=loans").iterdir())
    assert days == ["date=2026-03-01", "date=2026-03-02"]
    assert (
        read_log(tmp_path, "predictions", "loans", start=datetime(2026, 3, 2, tzinfo=UTC)).num_rows
        == 50
    )


def test_a_shuffled_long_history_is_written_one_file_per_day_in_arrival_order(tmp_path):
    days = [f"2026-03-{d:02d}" for d in range(1, 31)]
    rows = [r for d, day in enumerate(days) for r in _records(20, start=100 * d, day=day)]
    shuffled = pd.DataFrame(rows).sample(frac=1, random_state=3).reset_index(drop=True)
    with LogWriter(tmp_path, "predictions", "loans", flush_rows=10_000) as log:
        log.append(shuffled)
    folders = sorted((tmp_path / "predictions" / "model=loans").iterdir())
    assert [f.name for f in folders] == [f"date={day}" for day in days]
    assert all(len(list(f.glob("*.parquet"))) == 1 for f in folders)
    for folder in folders:  # within a day, the order the rows arrived in
        written = pq.read_table(next(folder.glob("*.parquet"))).column("request_id").to_pylist()
        day = pd.Timestamp(folder.name.removeprefix("date="), tz="UTC")
        arrived = shuffled[shuffled.event_time.dt.floor("D") == day].request_id.tolist()
        assert written == arrived and len(written) == 20


def test_rows_without_an_id_or_a_time_are_kept_apart_with_their_reason(tmp_path):
    rows = _records(5)
    rows[1]["request_id"] = None
    rows[3]["event_time"] = None
    with LogWriter(tmp_path, "predictions", "loans") as log:
        assert log.append(rows) == 3
    assert log.rejected == 2
    reasons = [
        reason
        for file in (tmp_path / "rejected").rglob("*.parquet")
        for reason in pq.read_table(file).column("_rejected_because").to_pylist()
    ]
    assert sorted(reasons) == ["no event_time", "no request_id"]
    assert read_log(tmp_path, "predictions", "loans").num_rows == 3


def test_what_append_acknowledged_survives_a_kill_and_is_recovered_at_the_next_open(tmp_path):
    script = f"""
import os, signal, pandas as pd
from keel.store.logs import LogWriter
log = LogWriter({str(tmp_path)!r}, "predictions", "loans", flush_rows=10**9, flush_seconds=10**9)
base = pd.Timestamp("2026-03-01", tz="UTC")
log.append([{{"request_id": f"a{{i}}", "event_time": base}} for i in range(100)])
log.flush()
log.append([{{"request_id": f"b{{i}}", "event_time": base}} for i in range(100)])
print("ready", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL and "ready" in result.stdout
    assert read_log(tmp_path, "predictions", "loans").num_rows == 100  # compacted before the kill
    assert len(list((tmp_path / "wal").rglob("segment-*.wal"))) == 1  # the rest, in the WAL
    LogWriter(tmp_path, "predictions", "loans").close()  # opening recovers
    table = read_log(tmp_path, "predictions", "loans")
    assert table.num_rows == 200 and sorted(table["request_id"].to_pylist())[-1] == "b99"
    assert not list((tmp_path / "wal").rglob("*.wal"))
    assert not list(tmp_path.rglob(".*.tmp"))  # no half-written file left for readers


def test_an_exiting_interpreter_flushes_what_is_buffered(tmp_path):
    script = f"""
import pandas as pd
from keel.store.logs import LogWriter
log = LogWriter({str(tmp_path)!r}, "labels", "loans", flush_rows=10**9, flush_seconds=10**9)
log.append([{{"request_id": "r1", "event_time": pd.Timestamp("2026-03-01", tz="UTC"),
             "label": 1}}])
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    assert read_log(tmp_path, "labels", "loans").column("label").to_pylist() == [1]


def test_compaction_and_retention(tmp_path):
    for day in ("2026-01-01", "2026-03-01"):
        for start in range(0, 30, 10):
            with LogWriter(tmp_path, "predictions", "loans") as log:
                log.append(_records(10, start=start, day=day))
    assert compact(tmp_path, "predictions", "loans") == 4
    assert len(list(tmp_path.rglob("*.parquet"))) == 2
    assert read_log(tmp_path, "predictions", "loans").num_rows == 60
    removed = retain(tmp_path, "loans", days=30, now=datetime(2026, 3, 10, tzinfo=UTC))
    assert removed == ["predictions/2026-01-01"]
    assert read_log(tmp_path, "predictions", "loans").num_rows == 30


def test_an_unwritable_log_folder_is_a_clear_error_and_the_rows_stay_in_the_wal(tmp_path):
    blocked = tmp_path / "predictions"
    blocked.write_text("a file where the folder should be")
    log = LogWriter(tmp_path, "predictions", "loans", flush_rows=10**9)
    assert log.append(_records(5)) == 5  # acknowledged: synced in the WAL
    with pytest.raises(DataError, match="cannot write the log .*the records stay in .*segment-"):
        log.flush()
    blocked.unlink()
    assert log.flush() == 5
    assert read_log(tmp_path, "predictions", "loans").num_rows == 5


def test_a_log_that_cannot_be_written_acknowledges_nothing(tmp_path):
    (tmp_path / "wal").write_text("a file where the WAL folder should be")
    log = LogWriter(tmp_path, "predictions", "loans")
    with pytest.raises(DataError, match="cannot write the log .*nothing of this call"):
        log.append(_records(5))
    assert log.accepted == 0


def test_bad_names_are_refused():
    with pytest.raises(ConfigError):
        LogWriter("/tmp", "traces", "loans")
    with pytest.raises(ConfigError):
        LogWriter("/tmp", "labels", "../escape")


def test_the_api_and_the_cli_take_logs_in(tmp_path, run_keel):
    import keel

    assert keel.log_predictions(_records(10), model="api", root=tmp_path) == 10
    from keel.store.logs import _OPEN

    for writer in _OPEN.values():
        writer.flush()
    assert read_log(tmp_path, "predictions", "api").num_rows == 10
    frame = pd.DataFrame(_records(20))
    frame.loc[0, "request_id"] = None
    frame.to_parquet(tmp_path / "labels.parquet")
    result = run_keel(
        "ingest", "labels", tmp_path / "labels.parquet", "--model", "cli", "--root", tmp_path
    )
    assert result.returncode == 1  # a rejected row is a finding
    assert "logged 19 labels for cli" in result.stdout and "1 rejected" in result.stdout
    assert "19 labels have no prediction yet" in result.stdout
    assert read_log(tmp_path, "labels", "cli").num_rows == 19


def test_a_record_of_another_model_is_rejected_and_an_unwatched_model_warned_of(tmp_path, run_keel):
    rows = _records(3)
    rows[2]["model"] = "fraud"
    for row in rows[:2]:
        row["model"] = "loans"
    with LogWriter(tmp_path, "predictions", "loans") as log:
        assert log.append(rows) == 2
    rejected = pq.read_table(next((tmp_path / "rejected").rglob("*.parquet")))
    assert rejected["_rejected_because"].to_pylist() == [
        "another model's record (this log is 'loans')"
    ]
    (tmp_path / "keel.yaml").write_text(
        "monitors:\n  - {name: m, model: loans, baseline: b.keel, window: 1D}\n"
    )
    pd.DataFrame(_records(2)).to_parquet(tmp_path / "p.parquet")
    result = run_keel("ingest", "predictions", "p.parquet", "--model", "churn", "--root", "logs")
    assert result.returncode == 0
    assert "no monitor in keel.yaml reads model 'churn'" in result.stderr
    assert "monitors read: loans" in result.stderr


def test_a_request_sent_twice_counts_once_the_latest_kept(tmp_path):
    from keel.store.queries import duplicates_dropped

    with LogWriter(tmp_path, "predictions", "loans") as log:
        log.append(_records(5))
    corrected = _records(2)
    corrected[0]["score"] = 0.9
    with LogWriter(tmp_path, "predictions", "loans") as log:
        log.append(corrected)
    everything = read_log(tmp_path, "predictions", "loans")
    latest = read_log(tmp_path, "predictions", "loans", latest_per_request=True)
    assert (everything.num_rows, latest.num_rows, duplicates_dropped(latest)) == (7, 5, 2)
    scores = dict(
        zip(
            latest.column("request_id").to_pylist(), latest.column("score").to_pylist(), strict=True
        )
    )
    assert scores["r0"] == 0.9


def test_labels_join_predictions_by_request_id_the_latest_label_winning(tmp_path):
    from keel.store.queries import read_labelled

    with LogWriter(tmp_path, "predictions", "loans") as log:
        log.append(_records(4))
    with LogWriter(tmp_path, "labels", "loans") as log:
        log.append([{"request_id": "r1", "event_time": "2026-03-09", "label": 0}])
    with LogWriter(tmp_path, "labels", "loans") as log:  # a correction, ingested later
        log.append([{"request_id": "r1", "event_time": "2026-03-10", "label": 1}])
    joined = read_labelled(tmp_path, "loans")
    labels = dict(zip(joined["request_id"].to_pylist(), joined["label"].to_pylist(), strict=True))
    assert labels == {"r0": None, "r1": 1, "r2": None, "r3": None}
    from keel.store.queries import duplicate_labels

    assert duplicate_labels(joined) == 1  # the first label of r1, set aside and counted
    assert {"label_time", "_label_ingested_at", "score"} <= set(joined.column_names)


def test_labels_for_unknown_requests_are_kept_counted_and_matched_when_the_prediction_comes(
    tmp_path,
):
    from keel.store.queries import read_labelled, unmatched_labels

    with LogWriter(tmp_path, "labels", "loans") as log:
        log.append([{"request_id": "r7", "event_time": "2026-03-09", "label": 1}])
    with LogWriter(tmp_path, "predictions", "loans") as log:
        log.append(_records(3))
    assert unmatched_labels(tmp_path, "loans") == 1
    with LogWriter(tmp_path, "predictions", "loans") as log:  # the prediction arrives late
        log.append(_records(1, start=7))
    assert unmatched_labels(tmp_path, "loans") == 0
    joined = read_labelled(tmp_path, "loans")
    assert joined.filter(pc.equal(joined["request_id"], "r7"))["label"].to_pylist() == [1]


def test_a_time_range_reads_only_the_days_it_needs(tmp_path):
    from keel.store.queries import log_files

    with LogWriter(tmp_path, "predictions", "loans") as log:
        for day in ("2026-03-01", "2026-03-02", "2026-03-03"):
            log.append(_records(2, day=day, start=int(day[-1]) * 10))
    files = log_files(
        tmp_path,
        "predictions",
        "loans",
        datetime(2026, 3, 2, tzinfo=UTC),
        datetime(2026, 3, 3, tzinfo=UTC),
    )
    assert len(files) == 1 and "date=2026-03-02" in files[0]
    window = read_log(
        tmp_path,
        "predictions",
        "loans",
        datetime(2026, 3, 2, tzinfo=UTC),
        datetime(2026, 3, 2, 0, 1, tzinfo=UTC),
    )
    assert window["request_id"].to_pylist() == ["r20"]


def test_one_record_per_call_is_checked_at_once_and_an_unreadable_one_set_apart(tmp_path):
    rows = _records(4)
    rows[1]["event_time"] = "not a time"  # told at once too: accepted means written
    rows[2]["request_id"] = None
    with LogWriter(tmp_path, "predictions", "loans", flush_seconds=60) as log:
        assert [log.append(row) for row in rows] == [1, 0, 0, 1]
    assert log.rejected == 2
    assert read_log(tmp_path, "predictions", "loans")["request_id"].to_pylist() == ["r0", "r3"]
    rejected = pa.concat_tables(
        [pq.read_table(f) for f in (tmp_path / "rejected").rglob("*.parquet")],
        promote_options="permissive",
    )
    reasons = sorted(rejected["_rejected_because"].to_pylist())
    assert reasons == ["event_time: 'not a time' is not a time", "no request_id"]
    assert '"x": 1.0' in " ".join(rejected["_record"].to_pylist())


def test_a_column_in_both_logs_is_the_label_logs(tmp_path):
    from keel.store.queries import read_labelled

    rows = _records(2)
    for row in rows:
        row["label"] = 0  # a stale copy, logged with the prediction
    with LogWriter(tmp_path, "predictions", "loans") as log:
        log.append(rows)
    with LogWriter(tmp_path, "labels", "loans") as log:
        log.append([{"request_id": "r0", "event_time": "2026-03-09", "label": 1}])
    joined = read_labelled(tmp_path, "loans")
    assert joined.column_names.count("label") == 1
    labels = dict(zip(joined["request_id"].to_pylist(), joined["label"].to_pylist(), strict=True))
    assert labels == {"r0": 1, "r1": None}


def test_a_request_repeated_in_one_ingest_resolves_to_its_last_copy_every_read(tmp_path):
    rows = _records(50)
    repeated = [dict(r, x=1000.0 + i) for i, r in enumerate(_records(5) * 3)]  # r0..r4 ×3
    with LogWriter(tmp_path, "predictions", "loans") as log:
        log.append(pd.DataFrame(rows + repeated))  # one flush: one ingestion instant
    reads = [read_log(tmp_path, "predictions", "loans", latest_per_request=True) for _ in range(5)]
    assert all(r.equals(reads[0]) for r in reads)
    by_id = dict(zip(reads[0]["request_id"].to_pylist(), reads[0]["x"].to_pylist(), strict=True))
    assert [by_id[f"r{i}"] for i in range(5)] == [1010.0, 1011.0, 1012.0, 1013.0, 1014.0]
    assert reads[0].num_rows == 50


def test_ingesting_a_file_is_all_or_nothing(tmp_path):
    import importlib.util
    from pathlib import Path

    from keel.store.logs import ingest_file

    spec = importlib.util.spec_from_file_location("t", Path(__file__).with_name("test_data.py"))
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    late = tmp_path / "late.csv"
    helpers.big_csv_failing_late(late)  # 240,000 rows; row 239,990 does not parse
    with pytest.raises(DataError, match=r"late.csv: CSV parse error in column 'amount'"):
        ingest_file(late, tmp_path / "logs", "predictions", "loans", flush_rows=50_000)
    assert read_log(tmp_path / "logs", "predictions", "loans").num_rows == 0
    assert not list((tmp_path / "logs").rglob("*.parquet"))  # nothing staged is left either
    good = tmp_path / "good.parquet"
    pd.DataFrame(_records(300)).to_parquet(good)
    counts = ingest_file(good, tmp_path / "logs", "predictions", "loans", flush_rows=100)
    assert counts == {"accepted": 300, "rejected": 0}
    assert read_log(tmp_path / "logs", "predictions", "loans").num_rows == 300


def test_a_commit_a_crash_interrupted_is_finished_at_the_next_open(tmp_path):
    from keel.store.logs import ingest_file
    from keel.store.wal import FileIO

    class CrashOnSecondMove(FileIO):
        moves = 0

        def replace(self, source, target):
            if "/.staging/" in str(source) and "/.staging/" not in str(target):
                self.moves += 1
                if self.moves == 2:
                    raise KeyboardInterrupt  # the process dies mid-commit
            super().replace(source, target)

    frame = pd.DataFrame(_records(30, day="2026-03-01") + _records(30, start=30, day="2026-03-02"))
    with pytest.raises(KeyboardInterrupt):
        ingest_file(frame, tmp_path, "predictions", "loans", io=CrashOnSecondMove())
    assert read_log(tmp_path, "predictions", "loans").num_rows == 30  # one day moved
    LogWriter(tmp_path, "predictions", "loans").close()  # opening finishes the commit
    assert read_log(tmp_path, "predictions", "loans").num_rows == 60
    assert not list((tmp_path / ".staging").iterdir())


def test_labels_need_only_a_request_id_and_the_label(tmp_path, run_keel):
    import keel

    keel.log_predictions(_records(3), model="loans", root=tmp_path)
    before = datetime.now(UTC)
    keel.log_labels([{"request_id": "r0", "defaulted": 1}], model="loans", root=tmp_path)
    pd.DataFrame({"request_id": ["r1", "r2"], "defaulted": [0, 1]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    ingested = run_keel(
        "ingest", "labels", tmp_path / "labels.csv", "--model", "loans", "--root", tmp_path
    )
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    from keel.store.logs import _flush_all
    from keel.store.queries import read_labelled

    _flush_all()
    joined = read_labelled(tmp_path, "loans")
    assert joined.column("defaulted").to_pylist() == [1, 0, 1]
    assert all(t >= before for t in joined.column("label_time").to_pylist())  # logged now
