"""EWMA chart: an exponentially weighted moving average against limits from a reference.

The statistic z_t = λ·x_t + (1 − λ)·z_{t−1}, started at the in-control mean,
alarms when it leaves mean ± L·sd·√(λ/(2−λ)·(1 − (1−λ)^{2t})), the exact
(time-varying) limits. Small λ weighs a long memory and catches small
sustained shifts; λ = 1 is a Shewhart chart.

Parameters
----------
mean, sd
    The in-control mean and standard deviation, fixed from the baseline's
    holdout (``EWMA.from_reference``).
smoothing
    The weight λ of the newest value, in (0, 1].
width
    Limit width L in standard deviations of z. Lucas & Saccucci's table gives
    L = 2.814 for an ARL0 of 500 at λ = 0.1 (asymptotic limits); set it with
    ``keel.online.calibrate`` for other targets or non-normal data.
baseline_id
    The baseline the reference came from; saved states carry it.

Reference: Roberts (1959), "Control chart tests based on geometric moving
averages", Technometrics 1; Lucas & Saccucci (1990), "Exponentially weighted
moving average control schemes", Technometrics 32.

>>> import numpy as np
>>> rng = np.random.default_rng(42)
>>> stream = np.concatenate([rng.normal(0, 1, 1000), rng.normal(1, 1, 200)])
>>> detector = EWMA(mean=0.0, sd=1.0, smoothing=0.1, width=3.5)
>>> for i, x in enumerate(stream):
...     if detector.update(x):
...         print(f"Change detected at index {i}")
...         break
Change detected at index 1008
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from keel.errors import ConfigError, DataError
from keel.online.base import Carry, StreamDetector


class EWMA(StreamDetector):
    name: ClassVar[str] = "ewma"
    threshold_name: ClassVar[str] = "width"
    _params: ClassVar[tuple[str, ...]] = ("mean", "sd", "smoothing", "width")
    _carry_fields: ClassVar[tuple[str, ...]] = ("average", "count")

    def __init__(
        self,
        mean: float,
        sd: float,
        smoothing: float = 0.1,
        width: float = 2.814,
        baseline_id: str | None = None,
    ) -> None:
        if not (np.isfinite(sd) and sd > 0):
            raise ConfigError(f"EWMA needs a positive, finite reference sd, not {sd!r}")
        if not 0 < smoothing <= 1:
            raise ConfigError(f"EWMA smoothing must be in (0, 1], not {smoothing!r}")
        self.mean, self.sd = float(mean), float(sd)
        self.smoothing, self.width = float(smoothing), float(width)
        super().__init__(baseline_id)

    @classmethod
    def from_reference(
        cls, reference: np.ndarray, baseline_id: str | None = None, **params: float
    ) -> EWMA:
        """An EWMA whose in-control mean and sd are the reference's (NaN ignored)."""
        values = np.asarray(reference, dtype=float)
        values = values[~np.isnan(values)]
        if values.size < 2:
            raise DataError("an EWMA reference needs at least two present values")
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        return cls(mean, sd, baseline_id=baseline_id, **params)

    def _restart(self) -> None:
        self.average = self.mean
        self.count = 0.0

    def _step(self, x: float, index: int) -> float:
        weight = self.smoothing
        self.count += 1.0
        self.average = weight * x + (1.0 - weight) * self.average
        spread = weight / (2.0 - weight) * (1.0 - (1.0 - weight) ** (2.0 * self.count))
        return abs(self.average - self.mean) / (self.sd * math.sqrt(spread))

    def _simulate(
        self, x: np.ndarray, carry: Carry, positions: np.ndarray | None = None
    ) -> tuple[np.ndarray, Carry]:
        from scipy.signal import lfilter

        weight = self.smoothing
        average, _ = lfilter(
            [weight],
            [1.0, weight - 1.0],
            x,
            axis=1,
            zi=((1.0 - weight) * carry["average"])[:, None],
        )
        counts = carry["count"][:, None] + np.arange(1, x.shape[1] + 1)
        spread = weight / (2.0 - weight) * (1.0 - (1.0 - weight) ** (2.0 * counts))
        margin = np.abs(average - self.mean) / (self.sd * np.sqrt(spread))
        return margin, {"average": average[:, -1].copy(), "count": counts[:, -1].copy()}
