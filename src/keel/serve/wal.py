"""Group commit for the gateway: one write and one ``fdatasync`` per batch of requests.

Requests hand their records to a ``GroupCommitLog``; one committer thread takes everything
handed in since its last commit, appends it to the model's prediction log
(``keel.store.logs.LogWriter``: one frame, one write) and syncs once; then it releases
every request of that batch together (one wake-up per event loop, not one per request).
While it syncs, the next batch gathers, so under load each sync covers many requests and
durability costs microseconds per request, not a sync each.

``durable`` (the default): ``await log.commit(records)`` returns only after the sync that
covers the records, so an answer the caller saw is in the log after a crash or a power
cut. ``fast``: ``log.write_behind(records)`` returns at once; the committer writes the
records within moments (a killed process loses what it had not yet written: the
``backlog``, typically well under a millisecond of traffic) and the writer syncs every
100 ms (a power cut loses at most that). Compaction into Parquet runs on its own thread
every ``compact_seconds``, never in a request's way.

>>> import asyncio, tempfile
>>> root = tempfile.mkdtemp()
>>> log = GroupCommitLog(root, "loans")
>>> asyncio.run(log.commit([{"request_id": "r1", "event_time": "2026-01-05", "score": 0.5}]))
1
>>> log.close()
>>> from keel.store.queries import read_log
>>> read_log(root, "predictions", "loans").column("request_id").to_pylist()
['r1']
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keel.errors import DataError
from keel.store.wal import FileIO

_NEVER = float("inf")
#: Bytes the readiness probe writes and syncs under the log's root.
PROBE_BYTES = 4096


class TimedIO(FileIO):
    """The WAL's file operations, reporting each ``fdatasync``'s time to ``observe``."""

    def __init__(self, observe: Callable[[float], None] | None = None) -> None:
        self.observe = observe

    def fdatasync(self, fd: int) -> None:
        start = time.perf_counter()
        os.fdatasync(fd)
        if self.observe is not None:
            self.observe(time.perf_counter() - start)


class GroupCommitLog:
    """A model's prediction log written by one committer thread (see the module docstring).

    ``name`` is the log's model name (the gateway writes a model's shadows to
    ``NAME.shadow``). ``metrics`` (a ``ServeMetrics``) receives sync times, batch sizes,
    the backlog and failures. ``min_free_bytes``: below that much free space under
    ``root`` the log says it is not ready.
    """

    def __init__(
        self,
        root: str | Path,
        name: str,
        mode: str = "durable",
        compact_seconds: float = 5.0,
        metrics: Any = None,
        min_free_bytes: int = 0,
    ) -> None:
        self.root, self.name, self.mode = Path(root), name, mode
        self.compact_seconds, self.min_free_bytes = compact_seconds, min_free_bytes
        self.metrics = metrics
        self.error: str | None = None
        self.committed = 0
        self._checked_at = 0.0
        self._pending: list[tuple[list[dict], Any]] = []
        self._backlog = 0
        self._condition = threading.Condition(threading.Lock())
        self._closed = False
        self._writer: Any = None
        self._open_writer()
        self._committer = threading.Thread(
            target=self._commit_loop, name=f"keel-commit-{name}", daemon=True
        )
        self._committer.start()
        self._stop = threading.Event()
        self._compactor = threading.Thread(
            target=self._compact_loop, name=f"keel-compact-{name}", daemon=True
        )
        self._compactor.start()

    # ------------------------------------------------------------ the writer

    def _observe_sync(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.fsync.labels(self.name).observe(seconds)

    def _open_writer(self) -> Any:
        from keel.store.logs import LogWriter

        if self._writer is not None:
            return self._writer
        try:
            self._writer = LogWriter(
                self.root,
                "predictions",
                self.name,
                flush_rows=2**62,  # compaction is the compactor thread's, never a request's
                flush_seconds=_NEVER,
                mode=self.mode,
                io=TimedIO(self._observe_sync),
            )
        except (DataError, OSError) as error:
            self.error = f"cannot open the prediction log under {self.root}: {error}"
            return None
        return self._writer

    # ------------------------------------------------------------ handing records in

    def _enqueue(self, records: list[dict], waiter: Any) -> None:
        with self._condition:
            if self._closed:
                raise DataError(f"the {self.name!r} log is closed (the gateway is stopping)")
            self._pending.append((records, waiter))
            self._backlog += len(records)
            self._condition.notify()

    async def commit(self, records: list[dict], timeout: float | None = None) -> int:
        """Log records; return (the count) once they are written and, when durable, synced.

        Raises ``DataError`` (with the reason) when the log could not take them, or did not
        confirm within ``timeout`` seconds (a hung disk): then they were not acknowledged,
        though they may still be written (a retry with the same request id is logged once)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(records, (loop, future))
        if timeout is None:
            return await future
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise DataError(
                f"the {self.name!r} log did not confirm the write within {timeout:g} s"
            ) from None

    def submit(self, records: list[dict]) -> concurrent.futures.Future:
        """Log records from any thread; the future completes as ``commit`` returns.

        >>> import tempfile
        >>> log = GroupCommitLog(tempfile.mkdtemp(), "m")
        >>> log.submit([{"request_id": "a", "event_time": "2026-01-01"}]).result()
        1
        >>> log.close()
        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._enqueue(records, future)
        return future

    def write_behind(self, records: list[dict]) -> None:
        """Log records without waiting (``fast`` mode, shadows, drops)."""
        self._enqueue(records, None)

    @property
    def backlog(self) -> int:
        """Records handed in and not yet written."""
        return self._backlog

    # ------------------------------------------------------------ the committer

    def _commit_loop(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closed:
                    self._condition.wait()
                if not self._pending:
                    return
                handed, self._pending = self._pending, []
            count = sum(len(part) for part, _ in handed)
            error: BaseException | None = None
            accepted = 0
            batch: list[tuple[tuple, Any]] = [((b"", 0, 0, None), w) for _, w in handed]
            try:
                writer = self._open_writer()
                if writer is None:
                    raise DataError(self.error or "the prediction log is not open")
                # Each request's records encoded apart, so a refusal is its own request's.
                batch = [(_encoded(writer, part), waiter) for part, waiter in handed]
                frames = b"".join(encoded[0] for encoded, _ in batch)
                accepted = sum(encoded[1] for encoded, _ in batch)
                rejected = sum(encoded[2] for encoded, _ in batch)
                writer.append_encoded(frames, accepted, rejected)
            except Exception as raised:  # the committer must outlive anything one batch does
                error = (
                    raised
                    if isinstance(raised, DataError)
                    else DataError(f"{type(raised).__name__}: {raised}")
                )
            with self._condition:
                self._backlog -= count
            if error is None:
                self.committed += accepted
                self.error = None
            else:
                self.error = str(error)
                self._checked_at = time.monotonic()
            if self.metrics is not None:
                self.metrics.batch.labels(self.name).observe(count)
                self.metrics.backlog.labels(self.name).set(self._backlog)
                if error is not None:
                    self.metrics.log_failures.labels(self.name).inc()
            self._release(batch, error)

    def _release(self, batch: list[tuple[tuple, Any]], error: BaseException | None) -> None:
        """Wake every waiter of a batch: a write or sync failure fails them all; a waiter
        some of whose records the log refused (kept under ``rejected``) fails alone."""
        by_loop: dict[Any, list] = {}
        for (_frames, accepted, rejected, unreadable), waiter in batch:
            if waiter is None:
                continue
            outcome = error or unreadable
            if outcome is None and rejected:
                outcome = DataError(
                    f"{rejected} record(s) refused by the log (kept under "
                    f"{self.root / 'rejected'} with the reason)"
                )
            if isinstance(waiter, concurrent.futures.Future):
                if outcome is None:
                    waiter.set_result(accepted + rejected)
                else:
                    waiter.set_exception(outcome)
                continue
            loop, future = waiter
            by_loop.setdefault(loop, []).append((future, accepted + rejected, outcome))
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, futures)

    # ------------------------------------------------------------ compaction, health, close

    def _compact_loop(self) -> None:
        while not self._stop.wait(self.compact_seconds):
            self.compact()

    def compact(self) -> None:
        """Compact what is written into Parquet (a failure is kept as ``error``)."""
        writer = self._writer
        if writer is None:
            return
        try:
            writer.flush()
        except (DataError, OSError) as error:
            self.error = f"cannot compact the log: {error}"

    def problem(self) -> str | None:
        """Why the log cannot take records now, or None: a probe file written and synced
        under the root, and the free space there.

        >>> import tempfile
        >>> log = GroupCommitLog(tempfile.mkdtemp(), "m"); log.problem(); log.close()
        """
        folder = self.root / "wal"
        probe = folder / f".probe-{os.getpid()}-{threading.get_ident()}"
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b"\0" * PROBE_BYTES)
                os.fdatasync(fd)
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError as error:
            return f"the log folder {folder} is not writable ({error.strerror or error})"
        if self.min_free_bytes:
            stat = os.statvfs(folder)
            free = stat.f_bavail * stat.f_frsize
            if free < self.min_free_bytes:
                return (
                    f"the log folder {folder} has {free // 2**20} MiB free, under the "
                    f"{self.min_free_bytes // 2**20} MiB asked for (--min-free-mb)"
                )
        if self._writer is None and self._open_writer() is None:
            return self.error
        return None

    def usable(self) -> bool:
        """Whether the last commit succeeded; after a failure, re-probed at most once a second."""
        if self.error is None:
            return True
        if time.monotonic() - self._checked_at >= 1.0:
            self._checked_at = time.monotonic()
            if self.problem() is None:
                self.error = None
        return self.error is None

    def close(self) -> None:
        """Write what is pending, stop the threads, compact and close the writer."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._committer.join()
        self._stop.set()
        self._compactor.join()
        if self._writer is not None:
            try:
                self._writer.close()
            except (DataError, OSError) as error:
                self.error = f"cannot compact the log at close: {error}"


def _settle(futures: list[tuple[asyncio.Future, int, BaseException | None]]) -> None:
    for future, count, error in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(count)
        else:
            future.set_exception(error)


def _encoded(writer: Any, records: list[dict]) -> tuple[bytes, int, int, DataError | None]:
    """One request's records as frames and counts, or the reason they could not be read."""
    try:
        return (*writer.encode(records), None)
    except Exception as error:  # the committer outlives a record the encoder cannot read
        reason = (
            error
            if isinstance(error, DataError)
            else DataError(f"cannot log these records: {type(error).__name__}: {error}")
        )
        return b"", 0, 0, reason
