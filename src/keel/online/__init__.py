"""Streaming detectors, one per module; ``keel.online.calibrate`` sets their thresholds.

>>> sorted(DETECTORS)
['adwin', 'cusum', 'ewma', 'kswin', 'page_hinkley']
"""

from typing import Any

from keel.online.adwin import ADWIN
from keel.online.base import Alarm, Detector, DetectorStateError, StreamDetector
from keel.online.cusum import CUSUM
from keel.online.ewma import EWMA
from keel.online.kswin import KSWIN
from keel.online.page_hinkley import PageHinkley

DETECTORS: dict[str, type[StreamDetector]] = {
    detector.name: detector for detector in (CUSUM, PageHinkley, EWMA, ADWIN, KSWIN)
}


def restore(state: dict[str, Any], *, baseline_id: str | None) -> StreamDetector:
    """The detector a ``state()`` dict describes, of any kind; refused for another baseline."""
    kind = DETECTORS.get(str(state.get("detector")))
    if kind is None:
        raise DetectorStateError(
            f"unknown detector {state.get('detector')!r} in this state; known: {sorted(DETECTORS)}"
        )
    return kind.from_state(state, baseline_id=baseline_id)


__all__ = [
    "ADWIN",
    "CUSUM",
    "DETECTORS",
    "EWMA",
    "KSWIN",
    "Alarm",
    "Detector",
    "DetectorStateError",
    "PageHinkley",
    "StreamDetector",
    "restore",
]
