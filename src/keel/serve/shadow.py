"""Shadows: challengers that see the champion's traffic in their own process, never in its way.

Each challenger runs in a worker process of its own (``multiprocessing``, spawned, at a
lower CPU priority, optionally under a memory limit) behind a bounded queue. The gateway
decides which requests a shadow sees by hash before the queue
(``keel.serve.routing.shadow_sampled``), offers each sampled request with ``put_nowait``
and never waits for the answer. A collector thread logs each answer beside the champion's
record (the model's shadow log, ``NAME.shadow``, same request id, ``role`` "shadow").

A sampled request the shadow does not answer is logged as a drop with its reason and
counted in ``keel_shadow_dropped_total``:

- ``queue_full``: ``queue_size`` requests were offered and not yet answered;
- ``not_running``: the process is starting, restarting or failed to load;
- ``timeout``: no answer ``timeout`` seconds after the offer (the worker skips requests
  that are already that old; one that stops answering altogether is killed and restarted);
- ``crashed``: the process died with the request queued or in hand (it is restarted,
  waiting longer after each crash in a row);
- ``error``: the challenger raised on the request;
- ``shutdown``: still unanswered when the gateway stopped and the drain time ran out.

At shutdown the runner stops offering, waits up to ``drain_seconds`` for the queue to be
answered and logs whatever is left as drops: every sampled request is accounted for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

REASONS = ("queue_full", "not_running", "timeout", "crashed", "error", "shutdown")
_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def _worker_main(spec: dict, requests: Any, results: Any, memory_mb: int | None) -> None:
    """A shadow process: load the challenger, then answer requests until told to stop."""
    with contextlib.suppress(OSError):
        os.nice(19)  # best effort: the champion comes first whenever the cores are busy
    if memory_mb:
        import resource

        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from keel.threads import limit_process

    limit_process()
    try:
        from keel.serve.models import source_from_spec

        model = source_from_spec(spec).load()
    except BaseException as error:  # any load failure is reported, the process ends
        results.put(("failed", f"{type(error).__name__}: {error}"))
        return
    results.put(("ready", model.version))
    while True:
        batch, stopping = _take(requests)
        results.put(("batch", _answer(model, batch)))
        if stopping:
            return


#: At most this many queued requests are answered by one predict call.
MAX_BATCH = 256


def _take(requests: Any) -> tuple[list[tuple], bool]:
    """The next requests (waiting for them) and whatever else is queued, up to about
    ``MAX_BATCH``; and whether the gateway asked the process to stop. The gateway puts
    lists: the requests offered in one turn of its event loop."""
    items = requests.get()
    if items is None:
        return [], True
    batch = list(items)
    while len(batch) < MAX_BATCH:
        try:
            items = requests.get_nowait()
        except queue.Empty:
            break
        if items is None:
            return batch, True
        batch.extend(items)
    return batch, False


def _answer(model: Any, batch: list[tuple]) -> list[tuple]:
    """Messages for a batch of requests: one predict call for all that are not yet too old
    (a shadow that falls behind catches up in batches: its per-call overhead is paid once),
    each request alone when the batch raises, so an error names its own request."""
    now, fresh, messages = time.time(), [], []
    for item_id, offered_at, timeout, rows in batch:
        if now - offered_at > timeout:
            messages.append(("expired", item_id))
        else:
            fresh.append((item_id, rows))
    if not fresh:
        return messages
    start = time.perf_counter()
    try:
        outputs = model.predict([row for _, rows in fresh for row in rows])
    except Exception:  # MemoryError included: find the request(s) that fail, one by one
        outputs = None
    if outputs is not None:
        seconds, at = time.perf_counter() - start, 0
        for item_id, rows in fresh:
            messages.append(("done", item_id, outputs[at : at + len(rows)], seconds, len(fresh)))
            at += len(rows)
        return messages
    for item_id, rows in fresh:
        start = time.perf_counter()
        try:
            answer = model.predict(rows)
        except MemoryError:
            messages.append(("error", item_id, "MemoryError"))
            continue
        except Exception as error:
            messages.append(("error", item_id, f"{type(error).__name__}: {error}"))
            continue
        messages.append(("done", item_id, answer, time.perf_counter() - start, 1))
    return messages


class ShadowRunner:
    """One challenger's process, queue and collector (see the module docstring).

    ``log(records)`` takes the records to write (answers and drops) without blocking;
    ``metrics`` is a ``ServeMetrics`` or None.
    """

    def __init__(
        self,
        model: str,
        challenger: str,
        spec: dict,
        log: Callable[[list[dict]], None],
        metrics: Any = None,
        queue_size: int = 1000,
        timeout: float = 2.0,
        memory_mb: int | None = None,
        drain_seconds: float = 5.0,
    ) -> None:
        self.model, self.challenger, self.spec = model, challenger, spec
        self.log, self.metrics = log, metrics
        self.queue_size, self.timeout, self.memory_mb = queue_size, timeout, memory_mb
        self.drain_seconds = drain_seconds
        self.state = "stopped"  # starting, running, failed, restarting, stopping, stopped
        self.version: str | None = None
        self.reason: str | None = None  # why it is not running
        self.dropped: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.answered = 0
        self.crashes = 0
        self._outstanding: dict[int, tuple[float, list[dict]]] = {}
        self._offers: list[tuple] = []  # offered in this turn of the event loop, not yet put
        self._lock = threading.Lock()
        self._next_id = 0
        self._last_heard = time.monotonic()
        self._restart_at: float | None = None
        self._process: Any = None
        self._requests: Any = None
        self._results: Any = None
        self._stop = threading.Event()
        self._collector: threading.Thread | None = None

    # ------------------------------------------------------------ the process

    def start(self) -> None:
        """Start the process and the collector (returns at once; loading happens there)."""
        self._spawn()
        self._collector = threading.Thread(
            target=self._collect, name=f"keel-shadow-{self.model}-{self.challenger}", daemon=True
        )
        self._collector.start()

    def _spawn(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._requests = context.Queue()  # bounded by the outstanding count (offer)
        self._results = context.Queue()
        self._process = context.Process(
            target=_worker_main,
            args=(self.spec, self._requests, self._results, self.memory_mb),
            name=f"keel-shadow-{self.challenger}",
            daemon=True,
        )
        self.state, self.reason = "starting", "starting"
        self._last_heard = time.monotonic()
        self._process.start()

    def _discard_process(self) -> None:
        process, self._process = self._process, None
        channels, self._requests, self._results = (self._requests, self._results), None, None
        for channel in channels:
            if channel is not None:
                channel.cancel_join_thread()
                channel.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(timeout=5)

    def restart(self, spec: dict | None = None) -> None:
        """Restart the process (with a new source, on reload); requests in it are dropped."""
        self.state, self.reason = "restarting", "restarting (reload)"
        with self._lock:
            pending = list(self._outstanding.items())
            self._outstanding.clear()
            self._offers = []
        self._drop_items(pending, "not_running")
        self._discard_process()
        if spec is not None:
            self.spec = spec
        self.crashes = 0
        self._spawn()

    # ------------------------------------------------------------ offering

    def offer(self, rows: list[dict], records: list[dict]) -> bool:
        """Offer one request's rows (inputs) and its logged records (without outputs).

        Never blocks; returns whether the shadow took it (else the drop is logged). Called
        from the event loop, the requests offered in one turn of it go to the process as
        one message, after the turn (one hand-over to the queue's thread, not one each)."""
        if self.state != "running":
            self._drop(records, "shutdown" if self.state == "stopping" else "not_running")
            return False
        with self._lock:
            full = len(self._outstanding) >= self.queue_size
            if not full:
                self._next_id += 1
                item_id = self._next_id
                self._outstanding[item_id] = (time.monotonic(), records)
                self._offers.append((item_id, time.time(), self.timeout, rows))
                first = len(self._offers) == 1
        if full:
            self._drop(records, "queue_full")
            return False
        if first:
            try:
                asyncio.get_running_loop().call_soon(self._put_offers)
            except RuntimeError:  # not on an event loop: hand it over now
                self._put_offers()
        if self.metrics is not None:
            self.metrics.shadow_queue.labels(self.model, self.challenger).set(
                len(self._outstanding)
            )
        return True

    def _put_offers(self) -> None:
        with self._lock:
            items, self._offers = self._offers, []
        if not items:
            return
        requests = self._requests
        try:
            if requests is None:
                raise ValueError("restarting")
            requests.put_nowait(items)
        except (queue.Full, ValueError, OSError, AssertionError):  # closed under us
            with self._lock:
                lost = [
                    (item[0], entry)
                    for item in items
                    if (entry := self._outstanding.pop(item[0], None)) is not None
                ]
            self._drop_items(lost, "not_running")

    # ------------------------------------------------------------ collecting

    def _collect(self) -> None:
        while not self._stop.is_set():
            results = self._results
            try:
                message = results.get(timeout=0.05) if results is not None else None
            except (queue.Empty, OSError, ValueError, EOFError, TypeError):
                message = None
            if results is None:
                time.sleep(0.05)
            if message is not None:
                self._last_heard = time.monotonic()
                if message[0] == "batch":
                    answered: list[dict] = []
                    for inner in message[1]:
                        answered += self._handle(inner) or []
                    if answered:  # one hand-over to the log for the whole batch
                        self.log(answered)
                else:
                    self._handle(message)
            self._watch()

    def _handle(self, message: tuple) -> list[dict] | None:
        """Act on one message from the process; an answer's records are returned, for
        the caller to log (drops are logged here)."""
        kind = message[0]
        if kind == "ready":  # the crash count is reset by an answer, not by a load: a
            # challenger that loads and then dies on every request backs off to 30 s
            self.state, self.version, self.reason = "running", message[1], None
            return
        if kind == "failed":
            self.state, self.reason = "failed", f"the challenger did not load: {message[1]}"
            self._restart_at = None  # a model that does not load waits for a reload
            return
        with self._lock:
            entry = self._outstanding.pop(message[1], None)
        if entry is None:
            return  # already dropped (timed out): its late answer is not logged
        offered, records = entry
        if kind == "done":
            self.crashes = 0
            outputs, seconds, together = message[2], message[3], message[4]
            lag = time.monotonic() - offered
            self.answered += 1
            if self.metrics is not None:
                self.metrics.shadow_done.labels(self.model, self.challenger).inc()
                self.metrics.shadow_lag.labels(self.model, self.challenger).observe(lag)
            return [
                {
                    **record,
                    **output,
                    "model_version": self.version,
                    "latency_ms": round(seconds * 1000, 3),
                    "shadow_batch": together,
                    "shadow_lag_ms": round(lag * 1000, 3),
                    "shadow_dropped": None,
                }
                for record, output in zip(records, outputs, strict=True)
            ]
        if kind == "expired":
            self._drop(records, "timeout")
        else:
            self._drop(records, "error", message[2])
        return None

    def _watch(self) -> None:
        now = time.monotonic()
        expired = []
        with self._lock:  # offered in order: the expired ones are at the front
            for item_id, (offered, _records) in self._outstanding.items():
                if now - offered <= self.timeout:
                    break
                expired.append(item_id)
            expired = [(item_id, self._outstanding.pop(item_id)) for item_id in expired]
        self._drop_items(expired, "timeout")
        if self.metrics is not None:
            self.metrics.shadow_queue.labels(self.model, self.challenger).set(
                len(self._outstanding)
            )
        process = self._process
        if self.state in ("running", "starting") and process is not None:
            if not process.is_alive():
                self._crashed(f"the shadow process exited (code {process.exitcode})")
            elif expired and now - self._last_heard > self.timeout:
                self._crashed(f"the shadow process stopped answering for {self.timeout:g} s")
            elif self.state == "starting" and now - self._last_heard > 120:
                self._crashed("the shadow process did not load its model within 120 s")
        if self.state == "restarting" and self._restart_at is not None and now >= self._restart_at:
            self._restart_at = None
            self._spawn()

    def _crashed(self, why: str) -> None:
        wait = _BACKOFF[min(self.crashes, len(_BACKOFF) - 1)]
        self.crashes += 1
        self.state, self.reason = "restarting", f"{why}; restarting in {wait:g} s"
        with self._lock:
            pending = list(self._outstanding.items())
            self._outstanding.clear()
        self._drop_items(pending, "crashed")
        self._discard_process()
        self._restart_at = time.monotonic() + wait

    # ------------------------------------------------------------ drops and shutdown

    def _drop_items(self, items: list[tuple[int, tuple[float, list[dict]]]], reason: str) -> None:
        for _item_id, (_offered, records) in items:
            self._drop(records, reason)

    def _drop(self, records: list[dict], reason: str, detail: str | None = None) -> None:
        with self._lock:  # the event loop (queue_full) and the collector both drop
            self.dropped[reason] += 1
        if self.metrics is not None:
            self.metrics.shadow_dropped.labels(self.model, self.challenger, reason).inc()
        self.log(
            [
                {
                    **record,
                    "model_version": self.version,
                    "shadow_dropped": reason,
                    **({"shadow_error": detail} if detail else {}),
                }
                for record in records
            ]
        )

    def status(self) -> dict[str, Any]:
        """State, version, why it is not running, answers and drops by reason."""
        return {
            "state": self.state,
            "version": self.version,
            "reason": self.reason,
            "answered": self.answered,
            "dropped": {k: v for k, v in self.dropped.items() if v},
            "queued": len(self._outstanding),
        }

    def close(self) -> None:
        """Stop offering, drain for up to ``drain_seconds``, log the rest as drops, stop."""
        self._put_offers()  # offered in the last turn of the event loop
        if self.state != "running":
            self.state = "stopping"
        else:
            self.state = "stopping"
            deadline = time.monotonic() + self.drain_seconds
            while self._outstanding and time.monotonic() < deadline:
                if self._process is None or not self._process.is_alive():
                    break
                time.sleep(0.01)
        self._stop.set()
        if self._collector is not None:
            self._collector.join(timeout=5)
        with self._lock:
            pending = list(self._outstanding.items())
            self._outstanding.clear()
        self._drop_items(pending, "shutdown")
        requests, process = self._requests, self._process
        if requests is not None and process is not None and process.is_alive():
            try:
                requests.put_nowait(None)
                process.join(timeout=1)
            except (queue.Full, ValueError, OSError):
                pass
        self._discard_process()
        self.state = "stopped"
