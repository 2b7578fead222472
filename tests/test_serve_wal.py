"""Group commit: concurrent requests share one write and one fdatasync per batch, each is
released only after the sync that covers it, and a failed write is every waiter's error."""

from __future__ import annotations

import asyncio

import pytest

from keel.errors import DataError
from keel.serve.metrics import ServeMetrics
from keel.serve.wal import GroupCommitLog
from keel.store.queries import read_log


def _count(metrics: ServeMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(f"{name}_count", {"log": "loans"}) or 0.0


def test_concurrent_commits_share_syncs_and_all_land_in_the_log(tmp_path):
    metrics = ServeMetrics()
    log = GroupCommitLog(tmp_path, "loans", metrics=metrics)

    async def many() -> list[int]:
        async def one(i: int) -> int:
            return await log.commit([{"request_id": f"r{i}", "event_time": "2026-01-05"}])

        return await asyncio.gather(*(one(i) for i in range(400)))

    assert asyncio.run(many()) == [1] * 400
    commits = _count(metrics, "keel_wal_commit_records")
    syncs = _count(metrics, "keel_wal_fsync_seconds")
    assert commits < 100, f"400 requests in {commits:g} group commits"
    assert syncs <= commits + 2  # one per commit, plus the new segment's header
    log.close()
    ids = read_log(tmp_path, "predictions", "loans").column("request_id").to_pylist()
    assert sorted(ids) == sorted(f"r{i}" for i in range(400))


def test_a_commit_that_cannot_be_written_fails_every_waiter_and_is_said(tmp_path):
    blocker = tmp_path / "wal"
    blocker.write_text("a file where the WAL folder should be")
    log = GroupCommitLog(tmp_path, "loans")

    async def two() -> list:
        record = {"request_id": "r", "event_time": "2026-01-05"}
        return await asyncio.gather(
            log.commit([record]), log.commit([record]), return_exceptions=True
        )

    results = asyncio.run(two())
    assert all(isinstance(r, DataError) for r in results), results
    assert log.error is not None and not log.usable()
    assert "not writable" in log.problem()
    blocker.unlink()
    log._checked_at = 0.0  # the next check probes at once
    assert log.usable(), "writable again: usable again"
    with pytest.raises(DataError):
        log.close()
        log.write_behind([{"request_id": "late", "event_time": "2026-01-05"}])


def test_a_write_not_confirmed_in_time_is_not_acknowledged_and_lands_once_later(tmp_path):
    log = GroupCommitLog(tmp_path, "loans")
    record = {"request_id": "slow", "event_time": "2026-01-05"}
    with log._writer._lock:  # the writer is busy (as behind a hung disk) until released

        async def late() -> None:
            await log.commit([record], timeout=0.2)

        with pytest.raises(DataError, match="did not confirm the write within 0.2 s"):
            asyncio.run(late())
    assert log.submit([record]).result(timeout=10) == 1  # the client's retry, same id
    log.close()
    assert read_log(tmp_path, "predictions", "loans").column("request_id").to_pylist() == ["slow"]


def test_a_refused_record_fails_its_own_request_and_not_the_others_in_its_batch(tmp_path):
    log = GroupCommitLog(tmp_path, "loans")

    async def both():
        good = log.commit([{"request_id": "ok", "event_time": "2026-01-05"}])
        bad = log.commit([{"request_id": "no-time"}])  # refused: no event_time
        return await asyncio.gather(good, bad, return_exceptions=True)

    good, bad = asyncio.run(both())
    assert good == 1
    assert isinstance(bad, DataError) and "refused" in str(bad)
    assert log.usable()  # a refusal is the record's fault, not the log's
    log.close()
    assert read_log(tmp_path, "predictions", "loans").column("request_id").to_pylist() == ["ok"]
