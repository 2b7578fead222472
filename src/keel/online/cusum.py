"""Two-sided CUSUM against an in-control mean and standard deviation fixed from a reference.

Each value is standardized, z = (x − mean) / sd, and two cumulative sums
collect its excess beyond the allowance k, S⁺ = max(0, S⁺ + z − k) and
S⁻ = max(0, S⁻ − z − k); an alarm is raised when either exceeds the
threshold h. The estimated change point is the value after the last time
the alarming sum was zero (the maximum-likelihood change time for a mean
shift of 2k standard deviations).

Parameters
----------
mean, sd
    The in-control mean and standard deviation, fixed from the baseline's
    holdout (``CUSUM.from_reference``), never re-estimated from the stream.
k
    Allowance in standard deviations: half the shift the chart is tuned to
    detect fastest (k = 0.5 for a 1σ shift).
h
    Decision threshold in standard deviations. Set it with
    ``keel.online.calibrate`` for a target in-control ARL0 rather than the
    textbook h = 5 (one false alarm every ~465 values, two-sided, on N(0, 1)).
side
    ``"both"``, ``"up"`` (increases only) or ``"down"``.
baseline_id
    The baseline the reference came from; saved states carry it.

Reference: Page (1954), "Continuous inspection schemes", Biometrika 41;
Siegmund (1985), *Sequential Analysis*, for the ARL approximation that
``keel.online.calibrate`` is checked against.

>>> import numpy as np
>>> rng = np.random.default_rng(42)
>>> stream = np.concatenate([rng.normal(0, 1, 1000), rng.normal(1, 1, 200)])
>>> detector = CUSUM(mean=0.0, sd=1.0, k=0.5, h=8.0)
>>> for i, x in enumerate(stream):
...     if detector.update(x):
...         print(f"Change detected at index {i}, change point {detector.change_point}")
...         break
Change detected at index 1009, change point 990
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from keel.errors import ConfigError, DataError
from keel.online.base import Carry, StreamDetector, check_side, last_zero


class CUSUM(StreamDetector):
    name: ClassVar[str] = "cusum"
    threshold_name: ClassVar[str] = "h"
    _params: ClassVar[tuple[str, ...]] = ("mean", "sd", "k", "h", "side")
    _carry_fields: ClassVar[tuple[str, ...]] = ("upper", "lower", "upper_zero", "lower_zero")

    def __init__(
        self,
        mean: float,
        sd: float,
        k: float = 0.5,
        h: float = 5.0,
        side: str = "both",
        baseline_id: str | None = None,
    ) -> None:
        if not (np.isfinite(sd) and sd > 0):
            raise ConfigError(f"CUSUM needs a positive, finite reference sd, not {sd!r}")
        self.mean, self.sd, self.k, self.h = float(mean), float(sd), float(k), float(h)
        self.side = check_side("CUSUM", "side", side)
        super().__init__(baseline_id)

    @classmethod
    def from_reference(
        cls, reference: np.ndarray, baseline_id: str | None = None, **params: float | str
    ) -> CUSUM:
        """A CUSUM whose in-control mean and sd are the reference's (NaN ignored)."""
        values = np.asarray(reference, dtype=float)
        values = values[~np.isnan(values)]
        if values.size < 2:
            raise DataError("a CUSUM reference needs at least two present values")
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        return cls(mean, sd, baseline_id=baseline_id, **params)  # type: ignore[arg-type]

    def _restart(self) -> None:
        self.upper = 0.0
        self.lower = 0.0
        self.upper_zero = float(self.n_seen - 1)
        self.lower_zero = float(self.n_seen - 1)

    def _step(self, x: float, index: int) -> float:
        z = (x - self.mean) / self.sd
        self.upper = max(0.0, self.upper + z - self.k)
        self.lower = max(0.0, self.lower - z - self.k)
        if self.upper == 0.0:
            self.upper_zero = float(index)
        if self.lower == 0.0:
            self.lower_zero = float(index)
        if self.side == "up":
            return self.upper
        if self.side == "down":
            return self.lower
        return max(self.upper, self.lower)

    def _change_point(self) -> int:
        up = self.side == "up" or (self.side == "both" and self.upper >= self.lower)
        return int(self.upper_zero if up else self.lower_zero) + 1

    def _simulate(
        self, x: np.ndarray, carry: Carry, positions: np.ndarray | None = None
    ) -> tuple[np.ndarray, Carry]:
        z = (x - self.mean) / self.sd
        after = dict(carry)
        margin = None
        for sign, field in ((1.0, "upper"), (-1.0, "lower")):
            if (self.side, field) in (("up", "lower"), ("down", "upper")):
                continue
            statistic = _lindley(carry[field], sign * z - self.k)
            after[field] = statistic[:, -1].copy()
            if positions is not None:
                after[f"{field}_zero"] = last_zero(statistic, carry[f"{field}_zero"], positions)
            margin = statistic if margin is None else np.maximum(margin, statistic)
        assert margin is not None
        return margin, after


def _lindley(start: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """S_t = max(0, S_{t−1} + y_t) for every row at once: W_t − min(0, min_{j≤t} W_j)."""
    walk = start[:, None] + np.cumsum(steps, axis=1)
    return walk - np.minimum.accumulate(np.minimum(walk, 0.0), axis=1)
