"""The streaming-detector protocol: one value in, one flag out, a state that saves and restores.

Every detector in ``keel.online`` reads a stream one value at a time
(``update``), or a batch at once (``update_many``, the same answer computed
with numpy), and raises ``drift_detected`` on the value that crosses its
threshold. After an alarm the next value starts it afresh, so the samples to
each alarm are a zero-state run length. ``state()`` is a JSON-ready dict
carrying the baseline id the detector was built from; ``from_state`` refuses
a state saved for another baseline. Missing values (NaN) are counted and
skipped; indices count every value offered, missing ones included.

Each detector's alarm rule is ``margin > threshold``, where the margin path
does not depend on the threshold: that is what lets ``keel.online.calibrate``
find a threshold from one simulation (``_simulate`` runs many streams at
once as numpy arrays).

>>> from keel.online import CUSUM
>>> detector = CUSUM(mean=0.0, sd=1.0, baseline_id="b-1")
>>> isinstance(detector, Detector)
True
>>> detector.update(0.3), detector.update(9.0)
(False, True)
>>> CUSUM.from_state(detector.state(), baseline_id="b-2")
Traceback (most recent call last):
...
keel.online.base.DetectorStateError: this cusum state was saved for baseline 'b-1', not 'b-2': ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from keel.errors import ConfigError, KeelError

STATE_FORMAT = 1
#: Which way a two-sided detector watches: both ways, or only for increases or decreases.
SIDES = ("both", "up", "down")


def check_side(detector: str, option: str, value: str) -> str:
    """``value`` when it is one of ``SIDES``, else a ConfigError naming the detector's option.

    >>> check_side("CUSUM", "side", "up")
    'up'
    """
    if value not in SIDES:
        raise ConfigError(f"{detector} {option} must be one of {SIDES}, not {value!r}")
    return value


_FIRST_WINDOW = 256  # values looked ahead at once by update_many after a (re)start


class DetectorStateError(KeelError):
    """A saved detector state that cannot be restored: another baseline, detector or format."""


@runtime_checkable
class Detector(Protocol):
    """What the monitor needs from a streaming detector."""

    drift_detected: bool

    def update(self, x: float) -> bool: ...

    def reset(self) -> None: ...

    def state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls, state: dict[str, Any], *, baseline_id: str | None) -> Detector: ...


@dataclass(frozen=True)
class Alarm:
    """One detection: the stream index of the alarming value, the estimated change point
    (stream index of the first changed value, where the detector estimates one) and the
    margin that crossed the threshold."""

    index: int
    change_point: int | None
    statistic: float


Carry = dict[str, np.ndarray]


class StreamDetector:
    """Shared machinery; a detector defines its parameters, ``_step`` and ``_simulate``.

    Subclasses name their running statistics in ``_carry_fields`` (floats on
    the instance, arrays of one value per stream in ``_simulate``) and their
    constructor parameters in ``_params``; ``threshold_name`` is the
    parameter compared with the margin.
    """

    name: ClassVar[str]
    threshold_name: ClassVar[str]
    _params: ClassVar[tuple[str, ...]]
    _carry_fields: ClassVar[tuple[str, ...]]

    def __init__(self, baseline_id: str | None = None) -> None:
        self.baseline_id = baseline_id
        self.reset()

    @classmethod
    def from_reference(
        cls, reference: np.ndarray, baseline_id: str | None = None, **params: Any
    ) -> StreamDetector:
        """A detector for streams like ``reference``; those that need no reference ignore it."""
        return cls(baseline_id=baseline_id, **params)

    # -- the protocol -----------------------------------------------------------------------

    @property
    def alarm_threshold(self) -> float:
        """The value of the parameter the margin is compared with (h, λ, L)."""
        return float(getattr(self, self.threshold_name))

    def reset(self) -> None:
        """Back to a fresh detector: statistics, counters and alarm flag."""
        self.n_seen = 0
        self.n_missing = 0
        self.drift_detected = False
        self.change_point: int | None = None
        self._restart()

    def update(self, x: float) -> bool:
        """Read one value; True when it raises an alarm."""
        if self.drift_detected:
            self._restart()
            self.drift_detected = False
        x = float(x)
        index = self.n_seen
        self.n_seen += 1
        if math.isnan(x):
            self.n_missing += 1
            return False
        if self._step(x, index) > self.alarm_threshold:
            self.drift_detected = True
            self.change_point = self._change_point()
        return self.drift_detected

    def update_many(self, values: np.ndarray | list[float]) -> list[Alarm]:
        """Read a batch; the alarms it raised, exactly as ``update`` one value at a time would."""
        raw = np.asarray(values, dtype=float).ravel()
        if raw.size == 0:
            return []
        end = self.n_seen + raw.size
        present = ~np.isnan(raw)
        where = (self.n_seen + np.arange(raw.size))[present]
        x = raw[present]
        self.n_missing += int(raw.size - x.size)
        if self.drift_detected:
            # the first value of the batch, present or not, restarts the detector
            self._restart()
            self.drift_detected = False
        alarms: list[Alarm] = []
        start, window = 0, _FIRST_WINDOW
        while start < x.size:
            if self.drift_detected:
                self.n_seen = int(where[start - 1]) + 1
                self._restart()
                self.drift_detected = False
            # look ahead in growing windows, so that each alarm costs a window, not the batch
            stop = min(start + window, x.size)
            carry = self._carry()
            margin, after = self._simulate(x[None, start:stop], carry, where[start:stop])
            over = np.flatnonzero(margin[0] > self.alarm_threshold)
            if over.size == 0:
                self._set_carry(after)
                start, window = stop, window * 2
                continue
            stop = start + int(over[0]) + 1
            _, after = self._simulate(x[None, start:stop], carry, where[start:stop])
            self._set_carry(after)
            self.drift_detected = True
            self.change_point = self._change_point()
            statistic = float(margin[0, stop - 1 - start])
            alarms.append(Alarm(int(where[stop - 1]), self.change_point, statistic))
            start, window = stop, _FIRST_WINDOW
        if self.drift_detected and alarms and alarms[-1].index != end - 1:
            # only missing values followed the last alarm: the first of them restarted it
            self.n_seen = alarms[-1].index + 1
            self._restart()
            self.drift_detected = False
        self.n_seen = end
        return alarms

    def state(self) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON-ready plain values."""
        return {
            "detector": self.name,
            "format": STATE_FORMAT,
            "baseline_id": self.baseline_id,
            "params": {name: _plain(getattr(self, name)) for name in self._params},
            "statistic": {name: float(getattr(self, name)) for name in self._carry_fields},
            "n_seen": self.n_seen,
            "n_missing": self.n_missing,
            "drift_detected": self.drift_detected,
            "change_point": self.change_point,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], *, baseline_id: str | None) -> StreamDetector:
        """The detector saved in ``state``; refused when it was saved for another baseline."""
        name = state.get("detector")
        if name != cls.name:
            raise DetectorStateError(
                f"this state is for a {name!r} detector, not {cls.name!r}: "
                "restore it with the detector that saved it"
            )
        if state.get("format") != STATE_FORMAT:
            raise DetectorStateError(
                f"this {cls.name} state has format {state.get('format')!r}; this keel reads "
                f"format {STATE_FORMAT}: delete the state file to start the detector afresh"
            )
        if state.get("baseline_id") != baseline_id:
            raise DetectorStateError(
                f"this {cls.name} state was saved for baseline {state.get('baseline_id')!r}, "
                f"not {baseline_id!r}: its statistics mean nothing against this baseline; "
                "delete the state file to start the detector afresh"
            )
        detector = cls(**state["params"], baseline_id=baseline_id)
        for field in cls._carry_fields:
            setattr(detector, field, float(state["statistic"][field]))
        detector.n_seen = int(state["n_seen"])
        detector.n_missing = int(state["n_missing"])
        detector.drift_detected = bool(state["drift_detected"])
        detector.change_point = state["change_point"]
        return detector

    # -- what each detector defines ----------------------------------------------------------

    def _restart(self) -> None:
        """Zero the running statistics (not the counters); ``n_seen`` is the next value's index."""
        raise NotImplementedError

    def _step(self, x: float, index: int) -> float:
        """Advance by the present value at stream ``index``; return the margin."""
        raise NotImplementedError

    def _simulate(
        self, x: np.ndarray, carry: Carry, positions: np.ndarray | None = None
    ) -> tuple[np.ndarray, Carry]:
        """Margins for S streams × T values at once, and the carry after them.

        ``carry`` holds one value per stream for each ``_carry_fields`` name.
        Change points are tracked only when ``positions`` (the stream index of
        each of the T columns) is given; calibration, which needs only the
        first passage, skips them.
        """
        raise NotImplementedError

    def _change_point(self) -> int | None:
        return None

    # -- carries ------------------------------------------------------------------------------

    def _carry(self) -> Carry:
        return {name: np.array([getattr(self, name)], dtype=float) for name in self._carry_fields}

    def _set_carry(self, carry: Carry) -> None:
        for name in self._carry_fields:
            setattr(self, name, float(carry[name][0]))

    def fresh_carry(self, streams: int) -> Carry:
        """The carry of ``streams`` fresh detectors, for simulation."""
        saved = {name: getattr(self, name) for name in self._carry_fields}
        self._restart()
        carry = {
            name: np.full(streams, getattr(self, name), dtype=float) for name in self._carry_fields
        }
        for name, value in saved.items():
            setattr(self, name, value)
        return carry

    def simulate(self, x: np.ndarray, carry: Carry) -> tuple[np.ndarray, Carry]:
        """Margins of S independent streams (rows of ``x``) from ``carry``, and the carry after."""
        return self._simulate(np.asarray(x, dtype=float), carry)

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._params)
        return f"{type(self).__name__}({params})"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def last_zero(statistic: np.ndarray, previous: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Stream index of each row's last zero of ``statistic`` (S × T), else ``previous``."""
    marked = np.where(statistic == 0.0, positions, -1).max(axis=1)
    return np.where(marked >= 0, marked, previous).astype(float)
