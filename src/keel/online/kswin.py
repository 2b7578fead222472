"""KSWIN: a Kolmogorov–Smirnov test between the newest values and a sample of older ones.

The detector keeps the last ``window_size`` values. Once the window is full,
each new value draws ``stat_size`` of the window's older ``window_size −
stat_size`` values at random and compares them with the newest ``stat_size``
by the two-sample KS test; it alarms when the p-value is at most α and the
statistic D exceeds 0.1. The draw is Python's ``random.Random(seed).sample``,
reseeded after every alarm, so keel's KSWIN raises River's ``drift.KSWIN``
(0.26) alarms, index for index; its p-value is SciPy's exact one.

Both samples have ``stat_size`` values, so D is a multiple of 1/stat_size and
the exact p-value a function of D alone: the rule is "margin > threshold" with
margin −ln p(D) (where D > 0.1) and threshold t = −ln α. ``keel.online.calibrate``
sets α for a target ARL0 from one simulation (``calibrate(lambda t:
KSWIN(threshold=t), target, reference)``); because p(D) takes at most
stat_size + 1 values, so does the ARL0, and calibration picks the smallest α
whose ARL0 still meets the target (an ARL0 above it, by up to the step to the
next D). River's default α = 0.005 gave a false alarm every ~730 N(0, 1)
values (``docs/streaming.md``).

Parameters
----------
alpha
    Significance α; default 0.005 (River's). Give ``alpha`` or ``threshold``
    (= −ln α, what calibration sets), not both.
window_size
    Values kept.
stat_size
    Values in each of the two samples compared.
seed
    Seed of the draws (every alarm starts them again from it); 0 by default,
    derived from the reference's content by ``KSWIN.from_reference``.
baseline_id
    The baseline whose holdout calibrated it; saved states carry it.

The estimated change point is the first of the newest ``stat_size`` values.
``KSWIN.river()`` gives River's detector with the same parameters
(``pip install "keel[stream]"``).

Reference: Raab, Heusinger & Schleif (2020), "Reactive soft prototype
computing for concept drift streams", Neurocomputing 416.

>>> import numpy as np
>>> rng = np.random.default_rng(42)
>>> stream = np.concatenate([rng.normal(0, 1, 1000), rng.normal(1.5, 1, 200)])
>>> detector = KSWIN(alpha=0.0001, seed=42)
>>> for i, x in enumerate(stream):
...     if detector.update(x):
...         print(f"Change detected at index {i}, change point {detector.change_point}")
...         break
Change detected at index 1018, change point 989
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from keel.errors import ConfigError
from keel.online.adwin import river_module
from keel.online.base import Carry, DetectorStateError, StreamDetector
from keel.seeds import derive_seed

_ELEMENTS = 2_000_000  # values sorted at once in a simulation


@lru_cache(maxsize=32)
def ks_p_values(size: int) -> np.ndarray:
    """SciPy's two-sided p-value of two samples of ``size`` each, for D = k / size, k = 0..size.

    >>> import numpy as np
    >>> from scipy import stats
    >>> a, b = np.arange(30.0), np.arange(30.0) + 9.5  # D = 10/30
    >>> bool(ks_p_values(30)[10] == stats.ks_2samp(a, b).pvalue)
    True
    """
    import warnings

    from scipy import stats

    base = np.arange(size, dtype=float)
    with warnings.catch_warnings():  # "exact calculation unsuccessful": SciPy (and River) go
        warnings.simplefilter("ignore", category=RuntimeWarning)  # on asymptotically
        values = [1.0] + [
            float(stats.ks_2samp(base, base + k - 0.5, method="auto").pvalue)
            for k in range(1, size + 1)
        ]
    return np.array(values)


def ks_counts(older: np.ndarray, newer: np.ndarray) -> np.ndarray:
    """n·D of the two-sample KS statistic along the last axis (two samples of n values each).

    D = max over the pooled values v of |#(older ≤ v) − #(newer ≤ v)| / n, ties
    counted as SciPy counts them.

    >>> import numpy as np
    >>> int(ks_counts(np.array([1.0, 2.0, 2.0, 5.0]), np.array([2.0, 3.0, 4.0, 6.0])))
    2
    """
    pooled = np.concatenate([older, newer], axis=-1)
    order = np.argsort(pooled, axis=-1, kind="stable")
    values = np.take_along_axis(pooled, order, axis=-1)
    signs = np.where(order < older.shape[-1], 1, -1).astype(np.int16)
    running = np.cumsum(signs, axis=-1, dtype=np.int16)
    last_of_ties = np.ones(values.shape, dtype=bool)
    last_of_ties[..., :-1] = values[..., 1:] != values[..., :-1]
    return np.where(last_of_ties, np.abs(running), 0).max(axis=-1)


class KSWIN(StreamDetector):
    name: ClassVar[str] = "kswin"
    threshold_name: ClassVar[str] = "threshold"
    _params: ClassVar[tuple[str, ...]] = ("alpha", "window_size", "stat_size", "seed")
    _carry_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        alpha: float | None = None,
        window_size: int = 100,
        stat_size: int = 30,
        seed: int = 0,
        threshold: float | None = None,
        baseline_id: str | None = None,
    ) -> None:
        if alpha is not None and threshold is not None:
            raise ConfigError("KSWIN takes alpha or threshold (= −ln alpha), not both")
        if threshold is not None:
            alpha = math.exp(-float(threshold))
        alpha = 0.005 if alpha is None else float(alpha)
        if not 0 < alpha < 1:
            raise ConfigError(f"KSWIN alpha must be in (0, 1), not {alpha!r}")
        if not 1 <= int(stat_size) < int(window_size) or 2 * int(stat_size) > int(window_size):
            raise ConfigError(
                f"KSWIN needs 1 ≤ stat_size ≤ window_size / 2 (a sample of stat_size older "
                f"values beside the newest stat_size), not {stat_size!r} of {window_size!r}"
            )
        self.alpha, self.threshold = alpha, -math.log(alpha)
        self.window_size, self.stat_size, self.seed = int(window_size), int(stat_size), int(seed)
        self._margins = np.where(
            np.arange(self.stat_size + 1) / self.stat_size > 0.1,
            -np.log(ks_p_values(self.stat_size)),
            -np.inf,
        )
        super().__init__(baseline_id)

    @classmethod
    def from_reference(
        cls, reference: np.ndarray, baseline_id: str | None = None, **params: Any
    ) -> KSWIN:
        """A KSWIN whose draws are seeded from the reference's content (unless ``seed`` is given).

        >>> import numpy as np
        >>> reference = np.arange(10.0)
        >>> KSWIN.from_reference(reference).seed == KSWIN.from_reference(reference.copy()).seed
        True
        """
        if "seed" not in params:
            values = np.ascontiguousarray(np.asarray(reference, dtype=float).ravel())
            digest = hashlib.sha256(values.tobytes()).hexdigest()[:16]
            params["seed"] = derive_seed(digest, "kswin")
        return cls(baseline_id=baseline_id, **params)

    @classmethod
    def river(cls, **params: Any) -> Any:
        """River's ``drift.KSWIN`` with these parameters (``pip install "keel[stream]"``)."""
        made = cls(**params)
        return river_module().KSWIN(
            alpha=made.alpha,
            window_size=made.window_size,
            stat_size=made.stat_size,
            seed=made.seed,
        )

    @property
    def alarm_threshold(self) -> float:
        return self.threshold

    # -- one value at a time ----------------------------------------------------------------

    def _restart(self) -> None:
        self._window: deque[float] = deque(maxlen=self.window_size)
        self._indices: deque[int] = deque(maxlen=self.window_size)
        self._random = random.Random(self.seed)

    def _step(self, x: float, index: int) -> float:
        self._window.append(x)
        self._indices.append(index)
        if len(self._window) < self.window_size:
            return -np.inf
        older = self.window_size - self.stat_size
        window = np.fromiter(self._window, dtype=float, count=self.window_size)
        drawn = window[self._random.sample(range(older), self.stat_size)]
        return float(self._margins[int(ks_counts(drawn, window[older:]))])

    def _change_point(self) -> int | None:
        return int(self._indices[-self.stat_size])

    # -- state ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        state = super().state()
        version, internal, gauss = self._random.getstate()
        state["window"] = {
            "values": list(self._window),
            "indices": list(self._indices),
            "random": [version, list(internal), gauss],
        }
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], *, baseline_id: str | None) -> KSWIN:
        detector = super().from_state(state, baseline_id=baseline_id)
        assert isinstance(detector, KSWIN)
        window = state.get("window")
        if not isinstance(window, dict) or len(window.get("values", ())) > detector.window_size:
            raise DetectorStateError(
                "this kswin state has no window of at most window_size values: "
                "delete the state file to start the detector afresh"
            )
        detector._window.extend(float(value) for value in window["values"])
        detector._indices.extend(int(index) for index in window["indices"])
        version, internal, gauss = window["random"]
        detector._random.setstate((version, tuple(internal), gauss))
        return detector

    def _carry(self) -> Carry:
        return {
            "values": np.array([list(self._window)], dtype=float),
            "indices": np.array([list(self._indices)], dtype=float),
            "random": _objects([self._random.getstate()]),
        }

    def _set_carry(self, carry: Carry) -> None:
        self._window = deque(carry["values"][0].tolist(), maxlen=self.window_size)
        self._indices = deque((int(i) for i in carry["indices"][0]), maxlen=self.window_size)
        self._random.setstate(carry["random"][0])

    def fresh_carry(self, streams: int) -> Carry:
        state = random.Random(self.seed).getstate()
        return {
            "values": np.zeros((streams, 0)),
            "indices": np.zeros((streams, 0)),
            "random": _objects([state] * streams),
        }

    # -- many streams at once ---------------------------------------------------------------

    def _simulate(
        self, x: np.ndarray, carry: Carry, positions: np.ndarray | None = None
    ) -> tuple[np.ndarray, Carry]:
        """Fresh detectors share their draws (one seed, reseeded at each alarm), so every
        stream read for as long uses the same sample positions: one draw per step serves all."""
        streams, length = x.shape
        held = carry["values"].shape[1]
        shared = {id(state) for state in carry["random"]}
        if len(shared) > 1 and len({state for state in carry["random"]}) > 1:
            raise ValueError("KSWIN simulates streams with one common draw state at a time")
        values = np.concatenate([carry["values"], x], axis=1)
        indices = np.concatenate(
            [
                carry["indices"],
                np.broadcast_to(
                    positions if positions is not None else np.full(length, -1.0),
                    (streams, length),
                ),
            ],
            axis=1,
        )
        generator = random.Random()
        if streams:
            generator.setstate(carry["random"][0])
        older = self.window_size - self.stat_size
        margin = np.full((streams, length), -np.inf)
        # the first step whose window is full: its newest value is column ``window_size − 1``
        first = max(0, self.window_size - 1 - held)
        steps = np.arange(first, length)
        draws = np.array(
            [generator.sample(range(older), self.stat_size) for _ in steps], dtype=np.int64
        ).reshape(steps.size, self.stat_size)
        newest = np.arange(1 - self.stat_size, 1)[None, :]  # the newest values' offsets
        per_group = max(1, _ELEMENTS // max(1, streams * 2 * self.stat_size))
        for group in range(0, steps.size, per_group):
            chunk = steps[group : group + per_group]
            end = (held + chunk)[:, None]  # column of each step's newest value in ``values``
            start = end - self.window_size + 1
            counts = ks_counts(
                values[:, start + draws[group : group + chunk.size]],
                values[:, end + newest],
            )
            margin[:, chunk] = self._margins[counts]
        keep = slice(max(0, values.shape[1] - self.window_size), values.shape[1])
        after = {
            "values": values[:, keep].copy(),
            "indices": indices[:, keep].copy(),
            "random": _objects([generator.getstate()] * streams),
        }
        return margin, after


def _objects(items: list[Any]) -> np.ndarray:
    """A 1-D object array of ``items`` (tuples kept whole, never spread into columns)."""
    array = np.empty(len(items), dtype=object)
    for position, item in enumerate(items):
        array[position] = item
    return array
