"""The dashboard's memory of window aggregates: a window is aggregated again only when its
rows change.

A window's Results are written once and revised rarely (late labels), so the overview and
a monitor's timeline, redrawn every few seconds by whoever has them open, would otherwise
aggregate the same tens of thousands of unchanged rows each time. Each page first reads
every shown window's fingerprint (``keel.store.views.window_fingerprints``: its row count,
highest id and sum of ids, from the index alone); a window whose fingerprint is the one
remembered is drawn from memory, the others are aggregated in one statement and
remembered. A write to a window (a new Result, a revision) or a removal from it changes
its fingerprint; a write between the two reads is caught on the next page (its aggregates
are then newer than the fingerprint they are kept under, never older).

>>> memory = WindowMemory()
>>> asked = []
>>> def aggregate(windows):
...     asked.append(list(windows))
...     return [{"monitor": m, "window_start": s, "n": 1} for m, s in windows]
>>> rows = memory.read("overview", {("loans", "d1"): (3, 7, 15)}, aggregate)
>>> rows = memory.read("overview", {("loans", "d1"): (3, 7, 15), ("loans", "d2"): (1, 8, 8)},
...                    aggregate)
>>> asked, [r["window_start"] for r in rows]
([[('loans', 'd1')], [('loans', 'd2')]], ['d1', 'd2'])

Beyond ``limit`` rows, the least recently read windows are forgotten:

>>> small = WindowMemory(limit=2)
>>> _ = small.read("overview", {("loans", "d1"): 1, ("loans", "d2"): 1}, aggregate)
>>> _ = small.read("overview", {("loans", "d3"): 1}, aggregate)
>>> len(small), asked[-1]
(2, [('loans', 'd3')])
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

Window = tuple[str, str]


class WindowMemory:
    """Aggregated rows per (kind, window), kept with the window's fingerprint; at most
    ``limit`` rows in all (1 to 1.5 kB each; the least recently read windows are forgotten
    first: the overview of the benchmark's 20 monitors holds 1,680 rows, a monitor page of
    400 windows about 26,000). Safe to share between the server's threads."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = int(limit)
        self._kept: OrderedDict[tuple[str, Window], tuple[Any, list[dict]]] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def read(
        self,
        kind: str,
        fingerprints: dict[Window, Any],
        aggregate: Callable[[list[Window]], Iterable[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """The rows of every window in ``fingerprints``, in the order of the windows (shared
        with the memory: read them, never change them): remembered ones whose fingerprint
        is unchanged, the rest from one call of ``aggregate(windows)``, whose rows name
        their ``monitor`` and ``window_start``."""
        found: dict[Window, list[dict]] = {}
        with self._lock:
            for window, fingerprint in fingerprints.items():
                entry = self._kept.get((kind, window))
                if entry is not None and entry[0] == fingerprint:
                    found[window] = entry[1]
                    self._kept.move_to_end((kind, window))
        missing = [window for window in fingerprints if window not in found]
        if missing:
            fresh: dict[Window, list[dict]] = {window: [] for window in missing}
            for row in aggregate(missing):
                window = (row["monitor"], row["window_start"])
                if window in fresh:
                    fresh[window].append(row)
            with self._lock:
                for window, rows in fresh.items():
                    # A window with no rows now was emptied after its fingerprint was read:
                    # not remembered, so the next page reads it again.
                    if rows:
                        self._forget((kind, window))
                        self._kept[(kind, window)] = (fingerprints[window], rows)
                        self._rows += len(rows)
                while self._rows > self.limit and len(self._kept) > 1:
                    self._forget(next(iter(self._kept)))
            found.update(fresh)
        return [row for window in fingerprints for row in found.get(window, [])]

    def forget(self, window: Window | None = None) -> None:
        """Forget one window's rows (of every kind), or everything."""
        with self._lock:
            if window is None:
                self._kept.clear()
                self._rows = 0
                return
            for key in [key for key in self._kept if key[1] == window]:
                self._forget(key)

    def _forget(self, key: tuple[str, Window]) -> None:
        entry = self._kept.pop(key, None)
        if entry is not None:
            self._rows -= len(entry[1])

    def __len__(self) -> int:
        """How many windows (of every kind) are remembered."""
        return len(self._kept)
