"""ADWIN: alarm when the window splits into two parts whose means differ beyond chance.

The window holds every value since the start (or the last alarm), compressed
into an exponential histogram: at most ``max_buckets`` buckets of each
size 1, 2, 4, ... (ADWIN2). Every ``clock`` values it tries each bucket
boundary as a cut into an older part W₀ (n₀ values) and a newer part W₁ (n₁),
and alarms when

    |μ̂₀ − μ̂₁| > √(2 m σ̂² δ′) + (2/3) m δ′,
    m = 1/(n₀ − w + 1) + 1/(n₁ − w + 1),   δ′ = ln(2 ln n / δ),

with σ̂² the window's variance, n its length and w the ``min_window_length``
(both parts must hold at least w values). This is River's ``drift.ADWIN``
(0.26) rule, value for value up to the first alarm; like River's, keel's
starts afresh on the value after an alarm.

The rule is "margin > threshold" with threshold t = −ln δ: solving the
inequality for δ′ gives each cut's largest δ′ that would still alarm
(aL + b√L = |μ̂₀ − μ̂₁|, a = 2m/3, b = √(2mσ̂²)), and the margin is the
largest over the cuts, minus ln(2 ln n). The margin does not depend on δ, so
``keel.online.calibrate`` sets δ for a target ARL0 from one simulation:
``calibrate(lambda t: ADWIN(threshold=t), target, reference)``. River's
default δ = 0.002 raised no false alarm in 100,000 N(0, 1) values
(``docs/streaming.md``): its ARL0 is unknown until calibrated.

Parameters
----------
delta
    Significance δ; default 0.002 (River's). Give ``delta`` or ``threshold``
    (= −ln δ, what calibration sets), not both. With ``clock`` = 32 an ARL0
    near 1,000 needs δ just above 1: no longer a probability, but the rule
    stays defined (δ′ > 0) for δ < 2 ln(grace_period + 1), and is allowed.
clock
    Cuts are tried when the window's length is a multiple of ``clock``.
max_buckets
    Buckets of each size kept before the two oldest merge.
min_window_length
    Fewest values each side of a cut.
grace_period
    No cut is tried until the window holds more than this many values.
baseline_id
    The baseline whose holdout calibrated it; saved states carry it.

The estimated change point is the first value after the cut with the largest
margin. ``ADWIN.river()`` gives River's detector with the same parameters
(``pip install "keel[stream]"``), the oracle of keel's tests.

Reference: Bifet & Gavaldà (2007), "Learning from time-changing data with
adaptive windowing", SIAM International Conference on Data Mining.

>>> import numpy as np
>>> rng = np.random.default_rng(42)
>>> stream = np.concatenate([rng.normal(0, 1, 1000), rng.normal(1, 1, 200)])
>>> detector = ADWIN(delta=0.002)
>>> for i, x in enumerate(stream):
...     if detector.update(x):
...         print(f"Change detected at index {i}, change point {detector.change_point}")
...         break
Change detected at index 1055, change point 992
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from keel.errors import ConfigError
from keel.online.base import Carry, DetectorStateError, StreamDetector

_ELEMENTS = 1_000_000  # stream × check × cut values evaluated at once in a simulation


def river_module() -> Any:
    """River's ``drift`` module, or a ConfigError naming the extra that installs it.

    >>> river_module().__name__  # doctest: +SKIP
    'river.drift'
    """
    try:
        from river import drift
    except ImportError as error:
        raise ConfigError(
            'River is not installed: pip install "keel[stream]" (River\'s detectors are '
            "the cross-check of keel's ADWIN and KSWIN; keel's own need nothing more)"
        ) from error
    return drift


def bucket_ends(width: int, max_buckets: int) -> np.ndarray:
    """Where the exponential histogram's buckets end after ``width`` values, oldest first.

    Each size class receives a values and merges its two oldest buckets into
    the next class whenever it reaches ``max_buckets`` + 1: 1 + ⌊(a − M − 1)/2⌋
    merges once a > M, so the layout depends on ``width`` alone. The last end is
    ``width``; the others are ADWIN's cuts.

    >>> bucket_ends(12, 2).tolist()  # buckets of 4, 4, 2, 1, 1
    [4, 8, 10, 11, 12]
    """
    counts = []
    arrivals = int(width)
    while arrivals > 0:
        merges = 0 if arrivals <= max_buckets else 1 + (arrivals - max_buckets - 1) // 2
        counts.append(arrivals - 2 * merges)
        arrivals = merges
    sizes = 2 ** np.arange(len(counts) - 1, -1, -1, dtype=np.int64)
    return np.cumsum(np.repeat(sizes, counts[::-1]))


def cut_margins(
    older: np.ndarray,
    older_sum: np.ndarray,
    total: np.ndarray,
    variance: np.ndarray,
    width: float | np.ndarray,
    min_window_length: int,
) -> np.ndarray:
    """Each cut's largest δ′ that would still alarm, minus ln(2 ln n); −inf where a side is short.

    ``older`` (n₀ of each cut) and ``older_sum`` (the sum of W₀) broadcast
    against ``total`` and ``variance`` (the window's sum and sum of squared
    deviations, one per stream, with a trailing axis of length 1).

    >>> import numpy as np
    >>> m = cut_margins(np.array([50.0]), np.array([[0.0]]), np.array([[50.0]]),
    ...                 np.array([[25.0]]), 100.0, 5)
    >>> float(np.round(m[0, 0], 3))  # 50 + 50 values, means 0 and 1, σ̂² = 0.25
    12.659

    that is, this cut alarms for any δ > exp(−12.659): at that δ, δ′ = ln(2 ln 100) + 12.659
    and √(2mσ̂²δ′) + (2/3)mδ′ = 1 (m = 2/46), the gap between the means.
    """
    newer = width - older
    older = np.broadcast_to(older, np.broadcast_shapes(older.shape, older_sum.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.abs(older_sum / older - (total - older_sum) / newer)
        spread = 1.0 / (older - min_window_length + 1.0) + 1.0 / (newer - min_window_length + 1.0)
        a = 2.0 / 3.0 * spread
        b = np.sqrt(2.0 * spread * np.maximum(variance, 0.0) / width)
        root = 2.0 * gap / (b + np.sqrt(b * b + 4.0 * a * gap))
    root = np.where(gap > 0, root, 0.0)
    valid = (older >= min_window_length) & (newer >= min_window_length)
    return np.where(valid, root * root, -np.inf) - np.log(2.0 * np.log(width))


class ADWIN(StreamDetector):
    name: ClassVar[str] = "adwin"
    threshold_name: ClassVar[str] = "threshold"
    _params: ClassVar[tuple[str, ...]] = (
        "delta",
        "clock",
        "max_buckets",
        "min_window_length",
        "grace_period",
    )
    _carry_fields: ClassVar[tuple[str, ...]] = ("count", "total", "variance")

    def __init__(
        self,
        delta: float | None = None,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
        threshold: float | None = None,
        baseline_id: str | None = None,
    ) -> None:
        if delta is not None and threshold is not None:
            raise ConfigError("ADWIN takes delta or threshold (= −ln delta), not both")
        if threshold is not None:
            delta = math.exp(-float(threshold))
        delta = 0.002 if delta is None else float(delta)
        # δ′ = ln(2 ln n / δ) stays positive at every length checked while δ < 2 ln(n_min)
        largest = 2.0 * math.log(max(int(grace_period) + 1, 2 * int(min_window_length), 2))
        if not 0 < delta < largest:
            raise ConfigError(
                f"ADWIN delta must be in (0, {largest:.3f}) (threshold = −ln delta above "
                f"{-math.log(largest):.3f}), not {delta!r}"
            )
        for option, value in (
            ("clock", clock),
            ("max_buckets", max_buckets),
            ("min_window_length", min_window_length),
        ):
            if int(value) < 1:
                raise ConfigError(f"ADWIN {option} must be at least 1, not {value!r}")
        self.delta, self.threshold = delta, -math.log(delta)
        self.clock, self.max_buckets = int(clock), int(max_buckets)
        self.min_window_length, self.grace_period = int(min_window_length), int(grace_period)
        super().__init__(baseline_id)

    @classmethod
    def river(cls, **params: Any) -> Any:
        """River's ``drift.ADWIN`` with these parameters (``pip install "keel[stream]"``)."""
        made = cls(**params)
        return river_module().ADWIN(
            delta=made.delta,
            clock=made.clock,
            max_buckets=made.max_buckets,
            min_window_length=made.min_window_length,
            grace_period=made.grace_period,
        )

    @property
    def alarm_threshold(self) -> float:
        return self.threshold

    # -- one value at a time ----------------------------------------------------------------

    def _restart(self) -> None:
        self.count = 0.0
        self.total = 0.0
        self.variance = 0.0
        # (length, prefix sum, stream index) at each bucket's end, pruned at every check
        self._ends: list[tuple[int, float, int]] = []

    def _step(self, x: float, index: int) -> float:
        self.count += 1.0
        if self.count > 1.0:  # Welford, in River's order
            gap = x - self.total / (self.count - 1.0)
            self.variance += (self.count - 1.0) * gap * gap / self.count
        self.total += x
        width = int(self.count)
        self._ends.append((width, self.total, index))
        if width % self.clock or width <= self.grace_period or width < 2 * self.min_window_length:
            return -np.inf
        return float(self._cuts().max(initial=-np.inf))

    def _prune(self) -> None:
        keep = set(bucket_ends(int(self.count), self.max_buckets).tolist())
        self._ends = [end for end in self._ends if end[0] in keep]

    def _cuts(self) -> np.ndarray:
        self._prune()
        older = np.array([end[0] for end in self._ends[:-1]], dtype=float)
        sums = np.array([end[1] for end in self._ends[:-1]], dtype=float)
        return cut_margins(
            older,
            sums,
            np.float64(self.total),
            np.float64(self.variance),
            self.count,
            self.min_window_length,
        )

    def _change_point(self) -> int | None:
        margins = self._cuts()
        if margins.size == 0:
            return None
        return int(self._ends[int(np.argmax(margins))][2]) + 1

    # -- state ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        self._prune()
        state = super().state()
        state["window"] = {
            "sums": [end[1] for end in self._ends],
            "indices": [end[2] for end in self._ends],
        }
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], *, baseline_id: str | None) -> ADWIN:
        detector = super().from_state(state, baseline_id=baseline_id)
        assert isinstance(detector, ADWIN)
        window = state.get("window", {"sums": [], "indices": []})
        lengths = bucket_ends(int(detector.count), detector.max_buckets).tolist()
        if len(lengths) != len(window["sums"]) or len(lengths) != len(window["indices"]):
            raise DetectorStateError(
                f"this adwin state's window has {len(window['sums'])} buckets; a window of "
                f"{int(detector.count)} values has {len(lengths)}: delete the state file"
            )
        detector._ends = [
            (int(length), float(total), int(index))
            for length, total, index in zip(lengths, window["sums"], window["indices"], strict=True)
        ]
        return detector

    def _carry(self) -> Carry:
        self._prune()
        carry = {name: np.array([getattr(self, name)], dtype=float) for name in self._carry_fields}
        carry["sums"] = np.array([[end[1] for end in self._ends]], dtype=float)
        carry["indices"] = np.array([[end[2] for end in self._ends]], dtype=float)
        return carry

    def _set_carry(self, carry: Carry) -> None:
        for name in self._carry_fields:
            setattr(self, name, float(carry[name][0]))
        lengths = bucket_ends(int(self.count), self.max_buckets).tolist()
        self._ends = [
            (int(length), float(total), int(index))
            for length, total, index in zip(
                lengths, carry["sums"][0].tolist(), carry["indices"][0].tolist(), strict=True
            )
        ]

    def fresh_carry(self, streams: int) -> Carry:
        zeros = np.zeros(streams)
        return {
            "count": zeros.copy(),
            "total": zeros.copy(),
            "variance": zeros.copy(),
            "sums": np.zeros((streams, 0)),
            "indices": np.zeros((streams, 0)),
        }

    # -- many streams at once ---------------------------------------------------------------

    def _simulate(
        self, x: np.ndarray, carry: Carry, positions: np.ndarray | None = None
    ) -> tuple[np.ndarray, Carry]:
        streams, length = x.shape
        start = int(carry["count"][0]) if streams else 0
        if streams and not np.all(carry["count"] == start):
            raise ValueError("ADWIN simulates streams of one common length at a time")
        known = bucket_ends(start, self.max_buckets)
        # every prefix sum a cut may need: the carried bucket ends, then each new value's
        prefix = np.cumsum(np.concatenate([carry["total"][:, None], x], axis=1), axis=1)[:, 1:]
        sums = np.concatenate([carry["sums"], prefix], axis=1)
        index = np.concatenate(
            [
                carry["indices"],
                np.broadcast_to(
                    positions if positions is not None else np.full(length, -1.0),
                    (streams, length),
                ),
            ],
            axis=1,
        )

        def column(lengths: np.ndarray) -> np.ndarray:
            old = lengths <= start
            where = np.where(old, np.searchsorted(known, lengths), known.size + lengths - start - 1)
            if old.any() and not np.array_equal(known[where[old]], lengths[old]):
                raise AssertionError("a bucket end reappeared")  # never: ends only merge
            return where

        # the window's sum of squared deviations after each new value (Chan et al.'s merge)
        counts = start + np.arange(1, length + 1, dtype=float)
        mean = carry["total"] / start if start else (x[:, 0] if length else carry["total"])
        centred = x - mean[:, None]
        first = np.cumsum(centred, axis=1)
        steps = np.arange(1, length + 1, dtype=float)
        within = np.cumsum(centred * centred, axis=1) - first * first / steps
        between = start * steps / counts * (first / steps) ** 2
        variance = carry["variance"][:, None] + within + between

        margin = np.full((streams, length), -np.inf)
        first_check = max(self.grace_period + 1, 2 * self.min_window_length, start + 1)
        first_check += -first_check % self.clock
        widths = np.arange(first_check, start + length + 1, self.clock)
        cuts = [bucket_ends(int(width), self.max_buckets)[:-1] for width in widths]
        most = max([1] + [cut.size for cut in cuts])
        group = max(1, _ELEMENTS // max(1, streams * most))
        for first in range(0, widths.size, group):
            # checks side by side, their cuts padded with n₀ = 0 (never a valid cut)
            part = slice(first, first + group)
            older = np.zeros((len(cuts[part]), most))
            where = np.zeros(older.shape, dtype=np.int64)
            for row, cut in enumerate(cuts[part]):
                older[row, : cut.size] = cut
                where[row, : cut.size] = column(cut)
            at = widths[part] - start - 1
            values = cut_margins(
                older,
                sums[:, where],
                prefix[:, at, None],
                variance[:, at, None],
                widths[part, None].astype(float),
                self.min_window_length,
            )
            margin[:, at] = values.max(axis=2, initial=-np.inf)

        end = bucket_ends(start + length, self.max_buckets)
        kept = column(end)
        after = {
            "count": np.full(streams, float(start + length)),
            "total": prefix[:, -1].copy() if length else carry["total"].copy(),
            "variance": variance[:, -1].copy() if length else carry["variance"].copy(),
            "sums": sums[:, kept],
            "indices": index[:, kept],
        }
        return margin, after
