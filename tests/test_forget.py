"""Deletion by entity key: a tombstone, then every Parquet file and WAL segment rewritten.

Predictions (and their shadows, and labels that carry no entity column) are logged for six
customers over four days, part compacted into Parquet, part left in the WAL by a process
that died, part in a writer still open. Forgetting two customers removes their rows from
every file on disk, reads return exactly the others, a crash between the tombstone and the
rewrite still hides them and the next writer finishes the job, and a record logged after
the tombstone is kept. The CLI and the gateway's admin endpoint do the same.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from keel.store import ResultStore
from keel.store.logs import LogWriter, compact, forget
from keel.store.queries import read_labelled, read_log, unmatched_labels, window_summaries
from keel.store.wal import read_tombstones
from keel.tokens import add_token

CUSTOMERS = ["ann-7f31", "bob-92c4", "cy-13d9", "dee-4a70", "eve-88b2", "fay-05e6"]
FORGOTTEN = CUSTOMERS[:2]
DAYS = [dt.datetime(2026, 1, d, 9, tzinfo=dt.UTC) for d in (5, 6, 7, 8)]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def rows(days, tag):
    """Two predictions per customer per day; request ids say whose they are."""
    return [
        {
            "request_id": f"{tag}-{c}-{d.day}-{n}",
            "event_time": d + dt.timedelta(minutes=n),
            "model_version": "1",
            "customer_id": c,
            "x": float(n + d.day),
            "score": 0.5,
        }
        for d in days
        for c in CUSTOMERS
        for n in range(2)
    ]


def log_in_dead_process(root: Path, records: list[dict]) -> None:
    """Append records durably, then die without compacting: a WAL segment stays on disk."""
    script = textwrap.dedent(
        f"""
        import json, os, sys
        sys.path.insert(0, {SRC!r})
        from keel.store.logs import LogWriter
        records = json.loads(sys.stdin.read())
        for kind, model, batch in records:
            LogWriter({str(root)!r}, kind, model, flush_seconds=1e9).append(batch)
        os._exit(0)
        """
    )
    subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(records, default=str),
        text=True,
        check=True,
        timeout=60,
    )


@pytest.fixture
def logged(tmp_path):
    """Days 5-6 in Parquet, day 7 in a dead process's WAL, day 8 in a writer still open."""
    root = tmp_path / "logs"
    parts = [rows(DAYS[:2], "p"), rows(DAYS[2:3], "p"), rows(DAYS[3:], "p")]
    shadows = [[{**r, "role": "shadow", "model_version": "2"} for r in part] for part in parts]
    labels = [[{"request_id": r["request_id"], "label": 1} for r in part] for part in parts]
    for kind, model, batches in (
        ("predictions", "loans", parts),
        ("predictions", "loans.shadow", shadows),
        ("labels", "loans", labels),
    ):
        with LogWriter(root, kind, model) as writer:
            writer.append(batches[0])
    log_in_dead_process(
        root,
        [
            ["predictions", "loans", parts[1]],
            ["predictions", "loans.shadow", shadows[1]],
            ["labels", "loans", labels[1]],
        ],
    )
    writer = LogWriter(root, "predictions", "loans", flush_seconds=1e9)
    writer.append(parts[2])
    everything = [r for part in parts for r in part]
    yield root, everything, writer
    writer.close()


def wal_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (root / "wal").rglob("*.wal"))


def parquet_values(root: Path, column: str = "customer_id") -> set:
    found = set()
    for path in root.rglob("*.parquet"):
        table = pq.read_table(path)
        if column in table.column_names:
            found.update(table.column(column).to_pylist())
    return found


def ids_of(table) -> set:
    return set(table.column("request_id").to_pylist()) if table.num_rows else set()


def theirs(records, who=FORGOTTEN) -> set:
    return {r["request_id"] for r in records if r["customer_id"] in who}


def test_forgetting_two_customers_removes_their_rows_from_every_file_and_every_read(logged):
    root, everything, _ = logged
    assert all(c.encode() in wal_bytes(root) for c in FORGOTTEN), "the WAL holds them first"
    assert set(FORGOTTEN) <= parquet_values(root)
    before = read_log(root, "predictions", "loans")  # days 5-7: the open writer's not yet
    counts = forget(root, "loans", "customer_id", FORGOTTEN, actor="ada")
    n = len(theirs(everything))
    assert counts["predictions"] == n  # all four days: the open writer was flushed first
    early = theirs([r for r in everything if r["event_time"] < DAYS[3]])  # shadows, labels
    assert counts["shadow"] == len(early)
    assert counts["labels"] == len(early), "labels carry no customer id: matched by request id"
    assert counts["pending_segments"] == 0
    for value in FORGOTTEN:
        assert value.encode() not in wal_bytes(root)
    assert not set(FORGOTTEN) & parquet_values(root)
    label_ids = set()
    for path in (root / "labels").rglob("*.parquet"):
        label_ids.update(pq.read_table(path).column("request_id").to_pylist())
    assert not label_ids & theirs(everything)
    after = read_log(root, "predictions", "loans")
    every_id = {r["request_id"] for r in everything}
    assert ids_of(after) == every_id - theirs(everything), "others untouched, day 8 included"
    assert ids_of(before) - ids_of(after) == theirs(everything) & ids_of(before)
    assert set(after.column("customer_id").to_pylist()) == set(CUSTOMERS[2:])
    early_ids = {r["request_id"] for r in everything if r["event_time"] < DAYS[3]}
    shadow = read_log(root, "predictions", "loans.shadow")
    assert ids_of(shadow) == early_ids - early
    joined = read_labelled(root, "loans")
    assert joined.num_rows == len(every_id) - n
    labelled = joined.filter(joined.column("label").is_valid())
    assert ids_of(labelled) == early_ids - early, "every other label still joins"
    assert unmatched_labels(root, "loans") == 0
    tombstone = read_tombstones(root, "loans")[0]
    assert tombstone["done"] and tombstone["actor"] == "ada"
    assert tombstone["column"] == "customer_id" and tombstone["values"] == FORGOTTEN


def test_a_crash_between_tombstone_and_rewrite_still_hides_them_and_the_next_writer_finishes(
    logged,
):
    root, everything, writer = logged
    writer.flush()
    files_before = {p: p.read_bytes() for p in root.rglob("*.parquet")}
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {SRC!r})
        from keel.store.logs import forget
        from keel.store.wal import FileIO

        class DiesAtTheSecondRewrite(FileIO):
            seen = 0
            def replace(self, source, target):
                stones = Path({str(root)!r}, "tombstones")
                if target.suffix == ".parquet" and any(stones.rglob("*.json")):
                    DiesAtTheSecondRewrite.seen += 1
                    if DiesAtTheSecondRewrite.seen == 2:
                        os._exit(9)  # the power goes, mid-rewrite
                super().replace(source, target)

        forget({str(root)!r}, "loans", "customer_id", {FORGOTTEN!r}, "ada",
               io=DiesAtTheSecondRewrite())
        """
    )
    died = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert died.returncode == 9
    [tombstone] = read_tombstones(root, "loans")
    assert not tombstone["done"]
    changed = [p for p, data in files_before.items() if p.exists() and p.read_bytes() != data]
    assert len(changed) == 1, "one file was rewritten before the crash, the others are old"
    for path in root.rglob("*.parquet"):
        pq.read_table(path)  # each old or new, never half written
    assert set(FORGOTTEN) & parquet_values(root), "their rows are still on disk"
    every_id = {r["request_id"] for r in everything}
    early_ids = {r["request_id"] for r in everything if r["event_time"] < DAYS[3]}
    assert ids_of(read_log(root, "predictions", "loans")) == every_id - theirs(everything)
    assert ids_of(read_log(root, "predictions", "loans.shadow")) == early_ids - theirs(everything)
    assert read_labelled(root, "loans").num_rows == len(every_id) - len(theirs(everything))
    windows = window_summaries(root, "loans", 86400)
    assert sum(w["rows"] for w in windows.values()) == len(every_id) - len(theirs(everything))
    compact(root, "predictions", "loans")  # the next compaction finishes the job
    assert not set(FORGOTTEN) & parquet_values(root)
    assert read_tombstones(root, "loans")[0]["done"]
    label_ids = set()
    for path in (root / "labels").rglob("*.parquet"):
        label_ids.update(pq.read_table(path).column("request_id").to_pylist())
    assert label_ids == early_ids - theirs(everything)


def test_records_logged_after_the_tombstone_are_kept(logged):
    root, _, writer = logged
    forget(root, "loans", "customer_id", FORGOTTEN, actor="ada")
    later = {
        "request_id": "after",
        "event_time": DAYS[0],  # an old day: what counts is when it was logged
        "customer_id": FORGOTTEN[0],
        "x": 1.0,
        "score": 0.1,
    }
    writer.append([later])
    writer.flush()  # compacted with the tombstone in force
    compact(root, "predictions", "loans")
    forget(root, "loans", "customer_id", ["nobody"], actor="ada")  # another rewrite pass
    table = read_log(root, "predictions", "loans")
    assert table.filter(
        table.column("customer_id").to_numpy(zero_copy_only=False) == FORGOTTEN[0]
    ).column("request_id").to_pylist() == ["after"]
    assert FORGOTTEN[0] in parquet_values(root)


def test_the_cli_forgets_and_the_event_log_names_the_actor(logged, tmp_path):
    root, everything, writer = logged
    writer.close()
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    environment = {**os.environ, "KEEL_DATABASE_URL": url}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli",
            "logs",
            "forget",
            "loans",
            "--entity",
            "customer_id",
            *FORGOTTEN,
            "--logs",
            str(root),
            "--actor",
            "grace",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["predictions"] == len(theirs(everything))
    events = ResultStore(url).events()
    [event] = events[events.action == "logs forget"].to_dict("records")
    assert event["actor"] == "grace" and event["subject"] == "loans"
    assert json.loads(event["details"])["predictions"] == len(theirs(everything))
    assert not set(FORGOTTEN) & parquet_values(root)
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli",
            "logs",
            "forget",
            "loans.shadow",
            "--entity",
            "customer_id",
            "x",
            "--logs",
            str(root),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert refused.returncode == 2 and "shadow log goes with it" in refused.stderr


def test_the_gateway_forgets_with_an_admin_token_and_refuses_without(tmp_path):
    from .common.serving import Server, make_models, write_config

    models = make_models(tmp_path / "models")
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    token = add_token(ResultStore(url), "ada")
    config = write_config(
        tmp_path / "serve.yaml",
        models,
        challengers={"challenger": {"model": str(models["challenger"]), "timeout": 30}},
        store_url=url,
        compact_seconds=0.2,
    )
    server = Server(config, tmp_path / "logs")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            records = [
                {"x": 0.1 * i, "y": 1.0, "color": "red", "customer_id": c}
                for i in range(3)
                for c in CUSTOMERS
            ]
            sent = client.post("/v1/models/loans/predict", json={"records": records})
            assert sent.status_code == 200, sent.text
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the shadow answers in its own time
                shadow = read_log(tmp_path / "logs", "predictions", "loans.shadow")
                if shadow.num_rows == len(records):
                    break
                time.sleep(0.1)
            assert shadow.num_rows == len(records)
            body = {"column": "customer_id", "values": FORGOTTEN}
            path = "/v1/admin/models/loans/forget"
            assert client.post(path, json=body).status_code == 401
            wrong = {"Authorization": "Bearer not-a-token"}
            assert client.post(path, json=body, headers=wrong).status_code == 403
            bad = client.post(
                path, json={"values": "ann"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert bad.status_code == 422
            done = client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            assert done.status_code == 200, done.text
            removed = done.json()["removed"]
            assert removed["predictions"] == 6 and removed["shadow"] == 6
            logged = read_log(tmp_path / "logs", "predictions", "loans")
            assert logged.num_rows == len(records) - 6
            assert not set(FORGOTTEN) & set(logged.column("customer_id").to_pylist())
            assert not set(FORGOTTEN) & parquet_values(tmp_path / "logs")
    finally:
        assert server.stop() == 0
    assert not set(FORGOTTEN) & parquet_values(tmp_path / "logs")
    assert set(CUSTOMERS[2:]) <= parquet_values(tmp_path / "logs")
    events = ResultStore(url).events()
    assert (events[events.action == "serve forget"].actor == "ada").all()
    assert (events.action == "serve forget").sum() == 1


def test_a_segment_another_live_writer_holds_is_cleaned_when_that_writer_compacts(tmp_path):
    root = tmp_path / "logs"
    script = textwrap.dedent(
        f"""
        import datetime as dt, sys
        sys.path.insert(0, {SRC!r})
        from keel.store.logs import LogWriter
        writer = LogWriter({str(root)!r}, "predictions", "loans", flush_seconds=1e9)
        day = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
        writer.append([{{"request_id": f"w-{{c}}", "event_time": day, "customer_id": c}}
                       for c in {CUSTOMERS!r}])
        print("written", flush=True)
        sys.stdin.readline()  # the tombstone is written meanwhile
        writer.append([{{"request_id": "w-later", "event_time": day,
                         "customer_id": {FORGOTTEN[0]!r}}}])
        writer.close()
        """
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline().strip() == "written"
        counts = forget(root, "loans", "customer_id", FORGOTTEN, actor="ada")
        assert counts["pending_segments"] == 1 and counts["predictions"] == 0
        assert FORGOTTEN[0].encode() in wal_bytes(root), "a live writer's segment waits"
        other.communicate("go\n", timeout=60)
    finally:
        other.kill()
    assert other.returncode == 0
    assert wal_bytes(root) == b""
    table = read_log(root, "predictions", "loans")
    expected = {f"w-{c}" for c in CUSTOMERS[2:]} | {"w-later"}
    assert ids_of(table) == expected, "compacted without them; the later record kept"
    assert parquet_values(root) == set(CUSTOMERS[2:]) | {FORGOTTEN[0]}
