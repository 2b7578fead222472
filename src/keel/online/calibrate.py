"""Thresholds set for a target in-control ARL0, by simulating the detector on the reference.

The zero-state ARL0 is the mean number of values a fresh detector reads
before its first (false) alarm on in-control data. ``calibrate`` draws
pseudo-streams from the reference (i.i.d. resamples, or a moving-block
bootstrap when the reference is autocorrelated), runs thousands of fresh
detectors on them at once as numpy arrays, and bisects over the threshold
until the simulated ARL0 meets the target. Because every detector's alarm
rule is "margin > threshold" with a margin path that does not depend on the
threshold, one simulation serves every threshold: each stream's first
passage time over any threshold is read from the records of its running
maximum, and a stream is simulated only until it has crossed the highest
threshold still in question.

Cross-check (tests): for a one-sided CUSUM on standardized normal data with
allowance k, Siegmund's approximation gives

    ARL0 ≈ (exp(2Δb) − 2Δb − 1) / (2Δ²),   b = h + 1.166,  Δ = k,

and a two-sided CUSUM has half of it (1/ARL = 1/ARL⁺ + 1/ARL⁻).

References: Siegmund (1985), *Sequential Analysis*, ch. 2; Künsch (1989),
"The jackknife and the bootstrap for general stationary observations",
Annals of Statistics 17 (moving-block bootstrap); Politis & White (2004),
"Automatic block-length selection for the dependent bootstrap", Econometric
Reviews 23 (the autocorrelation rule for the dependence length).

>>> import numpy as np
>>> from keel.online import CUSUM
>>> reference = np.random.default_rng(7).normal(size=4_000)
>>> result = calibrate(lambda h: CUSUM(0.0, 1.0, h=h), 200, reference, streams=500)
>>> round(result.threshold, 2), round(result.arl0), result.block
(4.15, 200, 1)
>>> round(siegmund_arl0(0.5, result.threshold) / 2)  # two-sided: half the one-sided ARL0
198
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from keel.errors import ConfigError, DataError
from keel.online.base import StreamDetector
from keel.seeds import derive_seed

MAX_TARGET_PER_REFERENCE_VALUE = 20  # a target ARL0 beyond 20× the reference is refused
SIEGMUND_CORRECTION = 1.166  # 2 × 0.583, the overshoot of a normal random walk
BLOCK_BIAS = 0.01  # the block bootstrap's allowed shortfall in long-run variance
_ELEMENTS = 4_000_000  # values simulated per chunk, across streams

Draw = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class Calibration:
    """A calibrated detector and how its threshold was reached.

    ``arl0`` is the simulated zero-state ARL0 at ``threshold`` on the
    pseudo-streams, ``standard_error`` its Monte Carlo error; ``censored``
    counts pseudo-streams that never alarmed within ``max_length`` values
    (counted at that length: a conservative threshold).
    """

    detector: StreamDetector
    threshold: float
    target_arl0: float
    arl0: float
    standard_error: float
    streams: int
    block: int
    seed: int
    censored: int


def calibrate(
    detector_factory: Callable[[float], StreamDetector],
    target_arl0: float,
    reference: np.ndarray,
    *,
    block: int | None = None,
    season: int | None = None,
    seed: int | None = None,
    streams: int = 2_000,
    max_length_factor: float = 30.0,
) -> Calibration:
    """The detector ``detector_factory(threshold)`` whose zero-state ARL0 meets ``target_arl0``.

    ``reference`` is the in-control holdout (NaN ignored). Pseudo-streams are
    i.i.d. resamples when ``block`` is 1, moving blocks of ``block`` values
    otherwise; by default the block is estimated (``block_length``) and is at
    least ``season`` (a declared seasonal period, in values). A target beyond
    20× the reference's length is refused: the simulation would only replay
    the reference. ``seed`` defaults to one derived from the reference's
    content, the detector and the target.
    """
    values = _present(reference)
    if target_arl0 < 1:
        raise ConfigError(f"a target ARL0 is at least 1 value, not {target_arl0!r}")
    if target_arl0 > MAX_TARGET_PER_REFERENCE_VALUE * values.size:
        raise ConfigError(
            f"a target ARL0 of {target_arl0:,.0f} values is beyond "
            f"{MAX_TARGET_PER_REFERENCE_VALUE}× the reference's {values.size:,} values: "
            "use a longer holdout, or a lower target (more streams share one target)"
        )
    block = block_length(values, season=season) if block is None else int(block)
    if season is not None:
        block = max(block, int(season))
    if not 1 <= block <= values.size:
        raise ConfigError(f"the block must be between 1 and {values.size} values, not {block}")
    probe = detector_factory(1.0)
    if seed is None:
        seed = derive_seed(_fingerprint(values), probe.name, target_arl0, block, "calibrate")
    rng = np.random.default_rng(seed)
    max_length = int(math.ceil(max_length_factor * target_arl0))

    def choose(passages: _Passages) -> float:
        return passages.smallest_threshold(target_arl0)

    draw = pseudo_streams(values, block, rng)
    passages = _simulate(probe, draw, streams, max_length, choose, granule=block)
    threshold = passages.smallest_threshold(target_arl0)
    if not math.isfinite(threshold):
        raise ConfigError(
            f"no threshold of {probe.name} reaches an ARL0 of {target_arl0:,.0f} within "
            f"{max_length:,} values: the detector cannot be this quiet on this reference"
        )
    times, censored = passages.times(threshold)
    return Calibration(
        detector=detector_factory(threshold),
        threshold=threshold,
        target_arl0=float(target_arl0),
        arl0=float(times.mean()),
        standard_error=float(times.std(ddof=1) / math.sqrt(times.size)),
        streams=streams,
        block=block,
        seed=seed,
        censored=int(censored.sum()),
    )


def run_lengths(
    detector: StreamDetector, draw: Draw, runs: int, *, max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-state run lengths of ``detector`` (fresh copies) on ``runs`` streams from ``draw``.

    ``draw(rows, length)`` returns the next ``length`` values of each of the
    streams numbered ``rows`` (so a generator can keep per-stream state).
    Returns the run lengths (values read up to and including the first
    alarm) and which runs were censored at ``max_length``.

    >>> import numpy as np
    >>> from keel.online import CUSUM
    >>> rng = np.random.default_rng(1)
    >>> lengths, censored = run_lengths(
    ...     CUSUM(0.0, 1.0, h=4.0, side="up"),
    ...     lambda rows, length: rng.normal(size=(rows.size, length)),
    ...     2_000,
    ...     max_length=20_000,
    ... )
    >>> bool(abs(lengths.mean() / siegmund_arl0(0.5, 4.0) - 1) < 0.1), int(censored.sum())
    (True, 0)
    """
    threshold = detector.alarm_threshold
    passages = _simulate(detector, draw, runs, max_length, lambda _: threshold)
    return passages.times(threshold)


def pseudo_streams(values: np.ndarray, block: int, rng: np.random.Generator) -> Draw:
    """A ``Draw`` of i.i.d. resamples (``block`` = 1) or moving blocks of ``values``."""
    n = values.size
    if block <= 1:
        return lambda rows, length: values[rng.integers(0, n, (rows.size, length))]
    offsets = np.arange(block)

    def draw(rows: np.ndarray, length: int) -> np.ndarray:
        blocks = -(-length // block)
        starts = rng.integers(0, n - block + 1, (rows.size, blocks))
        index = (starts[:, :, None] + offsets).reshape(rows.size, blocks * block)
        return values[index[:, :length]]

    return draw


def dependence_length(values: np.ndarray) -> int:
    """The lag after which the autocorrelation stays negligible: 0 for independent values.

    The smallest m such that the next K = max(5, √log₁₀ n) autocorrelations
    all lie within ±2√(log₁₀ n / n) (Politis & White's rule).

    >>> import numpy as np
    >>> dependence_length(np.random.default_rng(0).normal(size=5_000))
    0
    """
    x = _present(values)
    n = x.size
    if n < 20:
        return 0
    correlation = _autocovariance(x, min(n // 4, 2_000))
    correlation = correlation[1:] / correlation[0]
    window = max(5, int(math.sqrt(math.log10(n))))
    inside = np.abs(correlation) < 2.0 * math.sqrt(math.log10(n) / n)
    for lag in range(0, correlation.size - window + 1):
        if inside[lag : lag + window].all():
            return lag
    return correlation.size


def block_length(values: np.ndarray, season: int | None = None) -> int:
    """Block length for pseudo-streams: 1 for independent values, else long enough for ARL0.

    A moving-block bootstrap with blocks of b values loses about G / b of
    the long-run variance g₀ (G = Σ|k|R(k), g₀ = ΣR(k); Künsch 1989), and a
    run length depends on the long-run variance exponentially, so b is the
    smallest length that keeps that loss under 1% (estimated with the
    flat-top lag window up to twice the dependence length), and at least the
    dependence length and ``season``, at most a fifth of the reference.

    >>> import numpy as np
    >>> from scipy.signal import lfilter
    >>> noise = np.random.default_rng(0).normal(size=20_000)
    >>> ar1 = lfilter([1.0], [1.0, -0.5], noise)  # G / g₀ = 4/3 for φ = 0.5: b ≈ 133
    >>> block_length(noise), 100 < block_length(ar1) < 180
    (1, True)
    """
    x = _present(values)
    lag = dependence_length(x)
    block = 1
    if lag > 0:
        most = min(2 * lag, x.size - 1)
        covariance = _autocovariance(x, most)
        steps = np.arange(1, most + 1)
        weight = np.clip(
            2.0 * (1.0 - steps / most), 0.0, 1.0
        )  # flat-top: 1 up to half, then linear
        long_run = covariance[0] + 2.0 * np.sum(weight * covariance[1:])
        spread = 2.0 * np.sum(weight * steps * np.abs(covariance[1:]))
        block = max(lag, math.ceil(spread / (BLOCK_BIAS * long_run))) if long_run > 0 else lag
    block = max(block, int(season or 1))
    return int(min(block, max(1, x.size // 5)))


def siegmund_arl0(k: float, h: float) -> float:
    """Siegmund's approximation to a one-sided CUSUM's ARL0 on standardized normal data.

    ARL0 ≈ (exp(2kb) − 2kb − 1) / (2k²) with b = h + 1.166 (k > 0).

    >>> round(siegmund_arl0(0.5, 4.0))  # the exact ARL0 (Markov chain) is 336
    338
    """
    b = h + SIEGMUND_CORRECTION
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


def per_stream_arl0(target_arl0: float, streams: int) -> float:
    """Each stream's ARL0 when ``streams`` detectors share one false-alarm budget.

    Their false-alarm rates add (1/ARL each), so each gets ``streams`` × the target.

    >>> per_stream_arl0(10_000, 3)
    30000
    """
    return target_arl0 * streams


def arl0_for_period(period: timedelta, rate_per_second: float) -> float:
    """The ARL0, in values, of "one false alarm per ``period``" at ``rate_per_second`` values.

    >>> arl0_for_period(timedelta(days=30), rate_per_second=2.0)
    5184000.0
    """
    if rate_per_second <= 0:
        raise ConfigError(f"the request rate must be positive, not {rate_per_second!r}")
    return period.total_seconds() * rate_per_second


class _Passages:
    """Each stream's first-passage time over any threshold: the records of its running maximum."""

    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.horizon = np.zeros(runs, dtype=np.int64)  # values simulated per stream so far
        self.maximum = np.full(runs, -np.inf)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, rows: np.ndarray, start: int, margin: np.ndarray) -> None:
        running = np.maximum.accumulate(margin, axis=1)
        np.maximum(running, self.maximum[rows][:, None], out=running)
        before = np.empty_like(running)
        before[:, 0] = self.maximum[rows]
        before[:, 1:] = running[:, :-1]
        row, column = np.nonzero(running > before)
        self._parts.append((rows[row], start + column + 1, running[row, column]))
        self.maximum[rows] = running[:, -1]
        self.horizon[rows] = start + margin.shape[1]
        self._sorted = None

    def _records(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._sorted is None:
            if not self._parts:
                empty = np.zeros(0)
                return empty.astype(np.int64), empty.astype(np.int64), empty
            stream = np.concatenate([part[0] for part in self._parts])
            time = np.concatenate([part[1] for part in self._parts])
            value = np.concatenate([part[2] for part in self._parts])
            order = np.argsort(stream, kind="stable")  # within a stream: time order, rising values
            self._sorted = (stream[order], time[order], value[order])
            self._parts = [self._sorted]
        return self._sorted

    def times(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """First time each stream's margin exceeded ``threshold`` (else its horizon), and which
        streams never did."""
        stream, time, value = self._records()
        over = value > threshold
        first = over.copy()
        first[1:] &= ~(over[:-1] & (stream[1:] == stream[:-1]))
        times = self.horizon.astype(float)
        times[stream[first]] = time[first]
        censored = np.ones(self.runs, dtype=bool)
        censored[stream[first]] = False
        return times, censored

    def smallest_threshold(self, target: float) -> float:
        """The smallest threshold whose mean passage time (censored ones counted at their
        horizon) reaches ``target``, by bisection over the thresholds where it can change;
        infinite when none does yet."""
        candidates = np.unique(self._records()[2])
        candidates = candidates[np.isfinite(candidates)]
        if candidates.size == 0 or self.times(candidates[-1])[0].mean() < target:
            return math.inf
        low, high = 0, candidates.size - 1  # the answer's index lies in [low, high]
        while low < high:
            middle = (low + high) // 2
            if self.times(candidates[middle])[0].mean() >= target:
                high = middle
            else:
                low = middle + 1
        if low + 1 < candidates.size:  # any threshold up to the next record gives the same times
            return float((candidates[low] + candidates[low + 1]) / 2)
        return float(candidates[low])


def _simulate(
    probe: StreamDetector,
    draw: Draw,
    runs: int,
    max_length: int,
    choose: Callable[[_Passages], float],
    granule: int = 1,
) -> _Passages:
    """Fresh detectors on ``runs`` streams, each simulated until it has crossed the threshold
    ``choose`` names after every chunk (a threshold that only falls as streams lengthen).
    Chunks are whole multiples of ``granule`` values (the bootstrap's block)."""
    passages = _Passages(runs)
    active = np.arange(runs)
    carry = probe.fresh_carry(runs)
    start = 0
    while active.size and start < max_length:
        # as streams retire the chunks lengthen, but never past the streams' age (bounded overshoot)
        length = min(max(64, _ELEMENTS // active.size), max(4_096, start))
        length = min(max_length - start, -(-length // granule) * granule)
        margin, carry = probe.simulate(draw(active, length), carry)
        passages.add(active, start, margin)
        start += length
        keep = passages.maximum[active] <= choose(passages)
        active = active[keep]
        carry = {name: column[keep] for name, column in carry.items()}
    return passages


def _present(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    array = array[~np.isnan(array)]
    if array.size < 2:
        raise DataError("a detector's reference needs at least two present values")
    return array


def _autocovariance(x: np.ndarray, lags: int) -> np.ndarray:
    """Biased sample autocovariance at lags 0..``lags`` (by FFT)."""
    centred = x - x.mean()
    size = 1 << int(math.ceil(math.log2(2 * x.size)))
    spectrum = np.fft.rfft(centred, size)
    return np.fft.irfft(spectrum * np.conj(spectrum), size)[: lags + 1] / x.size


def _fingerprint(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype=float).tobytes()).hexdigest()[:16]
