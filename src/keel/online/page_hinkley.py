"""Page–Hinkley test: a CUSUM of each value's deviation from the stream's own running mean.

It sums m_t = α·m_{t−1} + (x_t − x̄_t − δ), where x̄_t is the mean of the
values so far, and alarms when m_t has risen more than the threshold λ above
its running minimum (and likewise for decreases). It needs no reference
mean, so it adapts to the level of the stream it is watching; its threshold
still comes from the reference, through ``keel.online.calibrate``.

Parameters
----------
delta
    Magnitude of changes tolerated, in the stream's units (δ).
threshold
    Decision threshold λ, in the stream's units. River's default of 50 (with
    its α = 0.9999) raises a false alarm every ~1,400 values on N(0, 1):
    calibrate it instead.
alpha
    Forgetting factor of the cumulative sum; 1 is the classical test.
min_instances
    Values read (since the start or the last alarm) before an alarm may be raised.
mode
    ``"both"``, ``"up"`` or ``"down"``.
baseline_id
    The baseline whose holdout calibrated it; saved states carry it.

Reference: Page (1954), "Continuous inspection schemes", Biometrika 41;
Hinkley (1971), "Inference about the change-point from cumulative sum
tests", Biometrika 58; as in River's ``drift.PageHinkley``.

>>> import numpy as np
>>> rng = np.random.default_rng(42)
>>> stream = np.concatenate([rng.normal(0, 1, 1000), rng.normal(1, 1, 200)])
>>> detector = PageHinkley(delta=0.25, threshold=20.0)
>>> for i, x in enumerate(stream):
...     if detector.update(x):
...         print(f"Change detected at index {i}, change point {detector.change_point}")
...         break
Change detected at index 1021, change point 990
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from keel.errors import ConfigError
from keel.online.base import Carry, StreamDetector, check_side, last_zero


class PageHinkley(StreamDetector):
    name: ClassVar[str] = "page_hinkley"
    threshold_name: ClassVar[str] = "threshold"
    _params: ClassVar[tuple[str, ...]] = ("delta", "threshold", "alpha", "min_instances", "mode")
    _carry_fields: ClassVar[tuple[str, ...]] = (
        "count",
        "mean",
        "upper",
        "upper_min",
        "lower",
        "lower_min",
        "upper_zero",
        "lower_zero",
    )

    def __init__(
        self,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1.0,
        min_instances: int = 30,
        mode: str = "both",
        baseline_id: str | None = None,
    ) -> None:
        check_side("PageHinkley", "mode", mode)
        if not 0 < alpha <= 1:
            raise ConfigError(f"PageHinkley alpha must be in (0, 1], not {alpha!r}")
        self.delta, self.threshold, self.alpha = float(delta), float(threshold), float(alpha)
        self.min_instances, self.mode = int(min_instances), mode
        super().__init__(baseline_id)

    def _restart(self) -> None:
        self.count = 0.0
        self.mean = 0.0
        self.upper = self.upper_min = 0.0
        self.lower = self.lower_min = 0.0
        self.upper_zero = self.lower_zero = float(self.n_seen - 1)

    def _step(self, x: float, index: int) -> float:
        self.count += 1.0
        self.mean += (x - self.mean) / self.count
        self.upper = self.alpha * self.upper + (x - self.mean - self.delta)
        self.lower = self.alpha * self.lower + (self.mean - x - self.delta)
        self.upper_min = min(self.upper_min, self.upper)
        self.lower_min = min(self.lower_min, self.lower)
        if self.upper == self.upper_min:
            self.upper_zero = float(index)
        if self.lower == self.lower_min:
            self.lower_zero = float(index)
        if self.count < self.min_instances:
            return -np.inf
        if self.mode == "up":
            return self.upper - self.upper_min
        if self.mode == "down":
            return self.lower - self.lower_min
        return max(self.upper - self.upper_min, self.lower - self.lower_min)

    def _change_point(self) -> int:
        up = self.mode == "up" or (
            self.mode == "both" and self.upper - self.upper_min >= self.lower - self.lower_min
        )
        return int(self.upper_zero if up else self.lower_zero) + 1

    def _simulate(
        self, x: np.ndarray, carry: Carry, positions: np.ndarray | None = None
    ) -> tuple[np.ndarray, Carry]:
        counts = carry["count"][:, None] + np.arange(1, x.shape[1] + 1)
        means = ((carry["count"] * carry["mean"])[:, None] + np.cumsum(x, axis=1)) / counts
        deviation = x - means
        after = dict(carry)
        after["count"] = counts[:, -1].copy()
        after["mean"] = means[:, -1].copy()
        margin = None
        for sign, field in ((1.0, "upper"), (-1.0, "lower")):
            total = self._sums(carry[field], sign * deviation - self.delta)
            running_min = np.minimum(
                np.minimum.accumulate(total, axis=1), carry[f"{field}_min"][:, None]
            )
            after[field] = total[:, -1].copy()
            after[f"{field}_min"] = running_min[:, -1].copy()
            if (self.mode, field) in (("up", "lower"), ("down", "upper")):
                continue
            statistic = total - running_min
            if positions is not None:
                after[f"{field}_zero"] = last_zero(statistic, carry[f"{field}_zero"], positions)
            margin = statistic if margin is None else np.maximum(margin, statistic)
        assert margin is not None
        return np.where(counts < self.min_instances, -np.inf, margin), after

    def _sums(self, start: np.ndarray, steps: np.ndarray) -> np.ndarray:
        if self.alpha == 1.0:
            return start[:, None] + np.cumsum(steps, axis=1)
        from scipy.signal import lfilter

        sums, _ = lfilter([1.0], [1.0, -self.alpha], steps, axis=1, zi=self.alpha * start[:, None])
        return sums
