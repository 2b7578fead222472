"""The write-ahead log: no acknowledgement before its sync, power cuts, crashes in compaction.

A ``kill -9`` only tests the user-space path (the page cache survives it), so
these tests run the WAL over an instrumented file layer: one that records the
order of every write and sync, and one that can cut the power, keeping only
what a sync covered.
"""

import random
import threading
from pathlib import Path

import pandas as pd
import pytest

from keel.store.logs import _WRITERS, LogWriter
from keel.store.queries import read_log
from keel.store.wal import MAGIC, FileIO, frame, read_frames, recover, wal_folder

DAY = pd.Timestamp("2026-03-01", tz="UTC")


def _record(request_id, minutes=0):
    return {
        "request_id": request_id,
        "event_time": DAY + pd.Timedelta(minutes=minutes),
        "model_version": "1",
        "x": 1.5,
    }


class RecordingIO(FileIO):
    """The real file layer, with every write and sync written down in order."""

    def __init__(self):
        self.events = []
        self.paths = {}  # fd -> path
        self.sizes = {}  # path -> bytes written so far
        self.lock = threading.RLock()

    def create(self, path):
        with self.lock:
            fd = super().create(path)
            self.paths[fd], self.sizes[Path(path)] = Path(path), 0
            return fd

    def open_new(self, path):
        with self.lock:
            fd = super().open_new(path)
            self.paths[fd], self.sizes[Path(path)] = Path(path), 0
            return fd

    def open_locked(self, path):
        with self.lock:
            fd = super().open_locked(path)
            if fd is not None:
                self.paths[fd] = Path(path)
                self.sizes.setdefault(Path(path), Path(path).stat().st_size)
            return fd

    def write(self, fd, data):
        with self.lock:
            super().write(fd, data)
            path = self.paths[fd]
            self.sizes[path] += len(data)
            self.events.append(("write", path, self.sizes[path], bytes(data)))

    def fdatasync(self, fd):
        with self.lock:
            path = self.paths[fd]
            covered = self.sizes[path]
        super().fdatasync(fd)
        self.events.append(("sync", path, covered))

    fsync = fdatasync

    def replace(self, source, target):
        with self.lock:
            super().replace(source, target)
            source, target = Path(source), Path(target)
            self.sizes[target] = self.sizes.pop(source, 0)
            for fd, path in list(self.paths.items()):
                if path == source:
                    self.paths[fd] = target
            self.events.append(("replace", source, target))

    def fsync_dir(self, folder):
        super().fsync_dir(folder)
        self.events.append(("fsync_dir", Path(folder)))

    def unlink(self, path):
        super().unlink(path)
        self.events.append(("unlink", Path(path)))

    def ack(self, request_id):
        self.events.append(("ack", request_id))


class Crash(Exception):
    """A crash injected into the file layer (or any operation after the power went)."""


class PowerCutIO(RecordingIO):
    """Also knows what a power cut would keep: bytes a sync covered, and directory entries
    (files created, renamed or deleted) only once their folder was fsynced. After the cut,
    every operation fails."""

    def __init__(self):
        super().__init__()
        self.synced = {}  # path -> bytes a sync covered
        self.unsynced_entries = {}  # path -> ("new",) | ("gone", content)
        self.dead = False

    def _step(self):
        if self.dead:
            raise Crash("the power is off")

    def create(self, path):
        with self.lock:
            self._step()
            fd = super().create(path)
            self.unsynced_entries[Path(path)] = ("new",)
            return fd

    def open_locked(self, path):
        self._step()
        return super().open_locked(path)

    def read(self, fd):
        self._step()
        return super().read(fd)

    def write(self, fd, data):
        self._step()
        with self.lock:
            self._step()
            super().write(fd, data)

    def mkdir(self, folder):
        self._step()
        super().mkdir(folder)

    def open_new(self, path):
        with self.lock:
            self._step()
            fd = super().open_new(path)
            self.unsynced_entries[Path(path)] = ("new",)
            self.synced[Path(path)] = 0
            return fd

    def fdatasync(self, fd):
        self._step()
        with self.lock:
            path = self.paths[fd]
            covered = self.sizes[path]
        FileIO.fdatasync(self, fd)
        with self.lock:
            self._step()  # a sync still running when the power went did not complete
            self.synced[path] = max(self.synced.get(path, 0), covered)
            self.events.append(("sync", path, covered))

    fsync = fdatasync

    def replace(self, source, target):
        with self.lock:
            self._step()
            super().replace(source, target)
            source, target = Path(source), Path(target)
            self.synced[target] = self.synced.pop(source, 0)
            self.unsynced_entries[target] = ("new",)  # the rename is undone by a power cut
            self.unsynced_entries.pop(source, None)

    def fsync_dir(self, folder):
        with self.lock:
            self._step()
            super().fsync_dir(folder)
            for path in [p for p in self.unsynced_entries if p.parent == Path(folder)]:
                del self.unsynced_entries[path]

    def unlink(self, path):
        with self.lock:
            self._step()
            path = Path(path)
            kept = path.read_bytes()[: self.synced.get(path, 0)] if path.exists() else None
            super().unlink(path)
            if kept is not None and path not in self.unsynced_entries:
                self.unsynced_entries[path] = ("gone", kept)

    def power_cut(self):
        """Everything not covered by a sync disappears; nothing more gets through."""
        self.dead = True
        for path, entry in self.unsynced_entries.items():
            if entry[0] == "new":
                path.unlink(missing_ok=True)
            else:  # a deletion its folder never recorded: the file comes back
                path.write_bytes(entry[1])
                self.synced[path] = len(entry[1])
        for path, size in self.synced.items():
            if path.exists() and path.stat().st_size > size:
                with open(path, "r+b") as stream:
                    stream.truncate(size)
        self.unsynced_entries.clear()


class CrashingIO(PowerCutIO):
    """Crashes at the n-th file operation once armed."""

    countdown = None

    def _step(self):
        super()._step()
        if self.countdown is not None:
            if self.countdown == 0:
                self.countdown = None
                raise Crash
            self.countdown -= 1


def _die(writer):
    """The process dies: its files are closed (locks released), nothing more is written."""
    writer._stop.set()
    _WRITERS.discard(writer)
    for segment in [writer._segment, *writer._sealed]:
        if segment is not None:
            segment.close()


def _logged(root, kind="predictions", model="loans"):
    table = read_log(root, kind, model)
    return table.column("request_id").to_pylist() if table.num_rows else []


def _unsynced_acks(io):
    """Acknowledgements that came before any sync covering their record's write."""
    written, synced, bad = {}, {}, []
    for event in io.events:
        if event[0] == "write":
            for request_id in _ids_in(event[3]):
                written[request_id] = (event[1], event[2])
        elif event[0] == "sync":
            synced[event[1]] = max(synced.get(event[1], 0), event[2])
        elif event[0] == "ack":
            path, end = written[event[1]]
            if synced.get(path, 0) < end:
                bad.append(event[1])
    return bad


def _ids_in(data):
    import re

    return [m.decode() for m in re.findall(rb"q\d+-\d+", data)]


def test_no_acknowledgement_comes_before_the_sync_that_covers_its_record(tmp_path):
    io = RecordingIO()
    writer = LogWriter(tmp_path, "predictions", "loans", io=io, flush_rows=10**9)

    def client(number):
        for index in range(25):
            request_id = f"q{number}-{index}"
            assert writer.append(_record(request_id)) == 1
            io.ack(request_id)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    acks = [e for e in io.events if e[0] == "ack"]
    assert len(acks) == 200 and _unsynced_acks(io) == []
    syncs = [e for e in io.events if e[0] == "sync" and e[1].suffix == ".wal"]
    assert len(syncs) < 200  # group commit: concurrent appends shared syncs
    writer.close()
    assert sorted(_logged(tmp_path)) == sorted(e[1] for e in acks)


def test_fast_mode_acknowledges_first_and_the_instrument_sees_it(tmp_path):
    io = RecordingIO()
    writer = LogWriter(tmp_path, "predictions", "loans", io=io, mode="fast", flush_ms=10_000)
    assert writer.loss_window == 10.0
    for index in range(5):
        writer.append(_record(f"q0-{index}"))
        io.ack(f"q0-{index}")
    assert _unsynced_acks(io) == [f"q0-{i}" for i in range(5)]  # what durable mode forbids
    writer.close()
    assert len(_logged(tmp_path)) == 5


def test_a_new_segment_is_in_its_folder_durably_before_a_record_is_written_to_it(tmp_path):
    io = RecordingIO()
    with LogWriter(tmp_path, "predictions", "loans", io=io) as writer:
        writer.append(_record("q1-1"))
    kinds = [(e[0], getattr(e[-1], "name", "")) for e in io.events]
    rename = next(i for i, e in enumerate(io.events) if e[0] == "replace")
    folder = wal_folder(tmp_path, "predictions", "loans")
    folder_sync = next(
        i for i, e in enumerate(io.events) if i > rename and e == ("fsync_dir", folder)
    )
    first_record = next(i for i, e in enumerate(io.events) if e[0] == "write" and b"q1-1" in e[3])
    assert rename < folder_sync < first_record, kinds


@pytest.mark.parametrize("seed", range(6))
def test_after_a_power_cut_every_acknowledged_record_is_found_once(tmp_path, seed):
    rng = random.Random(seed)
    io = PowerCutIO()
    writer = LogWriter(tmp_path, "predictions", "loans", io=io, flush_rows=rng.randint(5, 40))
    acknowledged = []
    lock = threading.Lock()
    cut = threading.Event()

    def client(number):
        for index in range(40):
            if cut.is_set():
                return
            request_id = f"q{number}-{index}"
            batch = [_record(request_id, minutes=rng.randint(0, 3000))]
            try:
                accepted = writer.append(batch)
            except Exception:
                if cut.is_set():  # the process is dead: what it does now does not count
                    return
                raise
            with lock:
                if accepted == 1 and not cut.is_set():
                    acknowledged.append(request_id)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < rng.randint(20, 120) and any(t.is_alive() for t in threads):
        threading.Event().wait(0.001)
    with io.lock, lock:  # the power goes: no write or sync gets through after this instant
        cut.set()
        io.power_cut()
        frozen = list(acknowledged)
    for thread in threads:
        thread.join()
    _die(writer)
    LogWriter(tmp_path, "predictions", "loans").close()  # recovery at open
    found = _logged(tmp_path)
    assert set(frozen) <= set(found)
    assert len(found) == len(set(found))  # nothing twice


def test_a_power_cut_in_fast_mode_loses_what_was_not_synced_yet(tmp_path):
    io = PowerCutIO()
    writer = LogWriter(tmp_path, "predictions", "loans", io=io, mode="fast", flush_ms=60_000)
    for index in range(10):
        writer.append(_record(f"q0-{index}"))
    io.power_cut()
    _die(writer)
    LogWriter(tmp_path, "predictions", "loans").close()
    assert _logged(tmp_path) == []  # the simulated cut does discard unsynced bytes


def _compaction_steps(tmp_path):
    io = CrashingIO()
    writer = LogWriter(tmp_path / "count", "predictions", "loans", io=io, flush_rows=10**9)
    _fill(writer)
    before = len(io.events)
    io.countdown = 10**9
    writer.flush()
    steps = 10**9 - io.countdown
    io.countdown = None
    assert len(io.events) > before
    return steps


def _fill(writer):
    for index in range(30):  # two days, a duplicate, a rejected record
        writer.append(_record(f"q1-{index}", minutes=index * 100))
    writer.append(_record("q1-3", minutes=300))
    writer.append({"request_id": None, "event_time": DAY})


def test_a_crash_between_any_two_compaction_steps_loses_and_duplicates_nothing(tmp_path):
    steps = _compaction_steps(tmp_path)
    assert steps >= 12  # folders, two days' files (write, sync, rename, folder), the delete
    for step in range(steps):
        root = tmp_path / f"crash-{step}"
        io = CrashingIO()
        writer = LogWriter(root, "predictions", "loans", io=io, flush_rows=10**9)
        _fill(writer)
        io.countdown = step
        with pytest.raises(Crash):
            writer.flush()
        io.power_cut()
        _die(writer)
        LogWriter(root, "predictions", "loans").close()
        found = _logged(root)
        assert sorted(found) == sorted(f"q1-{i}" for i in range(30)), step
        rejected = list((root / "rejected").rglob("part-*.parquet"))
        assert len(rejected) == 1, step
        assert not list(wal_folder(root, "predictions", "loans").glob("segment-*")), step


def test_a_torn_tail_is_cut_at_the_last_whole_record(tmp_path):
    writer = LogWriter(tmp_path, "labels", "loans")
    writer.append({"request_id": "kept", "event_time": DAY, "label": 1})
    segment = writer._segment
    whole = segment.path.read_bytes()
    _die(writer)
    torn = frame(1, b'{"rows": [{"request_id": "torn"')[:-7]
    segment.path.write_bytes(whole + torn)
    frames, valid = read_frames(segment.path.read_bytes())
    assert len(frames) == 1 and valid == len(whole)
    counts = recover(tmp_path, "labels", "loans")
    assert counts["accepted"] == 1 and counts["torn"] == len(torn)
    assert _logged(tmp_path, "labels") == ["kept"]


def test_a_corrupted_frame_fails_its_checksum(tmp_path):
    good = frame(1, b'{"rows": [], "us": []}')
    data = bytearray(MAGIC + good + good)
    data[-3] ^= 0xFF
    frames, valid = read_frames(bytes(data))
    assert len(frames) == 1 and valid == len(MAGIC) + len(good)


def test_a_live_writers_segment_is_left_alone_by_another_writers_recovery(tmp_path):
    first = LogWriter(tmp_path, "predictions", "loans", flush_rows=10**9)
    first.append(_record("q1-1"))
    second = LogWriter(tmp_path, "predictions", "loans")
    assert second.recovered["segments"] == 0
    assert len(list(wal_folder(tmp_path, "predictions", "loans").glob("segment-*"))) == 1
    second.close()
    first.close()
    assert _logged(tmp_path) == ["q1-1"]


def test_compacting_a_segment_again_overwrites_its_files(tmp_path):
    with LogWriter(tmp_path, "predictions", "loans", flush_rows=10**9) as writer:
        writer.append([_record(f"q1-{i}") for i in range(3)])
        path = writer._segment.path
        kept = path.read_bytes()
    path.write_bytes(kept)  # as if the delete never happened
    assert recover(tmp_path, "predictions", "loans")["accepted"] == 3
    assert len(_logged(tmp_path)) == 3
    assert [p.name for p in (tmp_path / "predictions").rglob("*.parquet")] == [
        f"part-wal-{path.stem.removeprefix('segment-')}.parquet"
    ]
