"""The streaming-detector battery: every detector in ``keel.online.DETECTORS`` is held to it.

A new detector is one module and one entry in ``DETECTORS``; ``from_reference``
with its default parameters must give a working detector, and these checks
come free (``tests/test_online_detectors.py`` runs them over every member).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from keel.online import Detector, DetectorStateError, StreamDetector, restore

REFERENCE = np.random.default_rng(20261201).normal(10.0, 2.0, 5_000)


def make(kind: type[StreamDetector], baseline_id: str = "b-battery") -> StreamDetector:
    return kind.from_reference(REFERENCE, baseline_id=baseline_id)


def _in_control(seed: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(10.0, 2.0, size)


def check_follows_the_protocol(kind: type[StreamDetector]) -> None:
    detector = make(kind)
    assert isinstance(detector, Detector)
    assert detector.drift_detected is False
    assert detector.update(10.0) is False


def check_a_constant_stream_never_fires(kind: type[StreamDetector]) -> None:
    detector = make(kind)
    fired = [i for i in range(20_000) if detector.update(float(REFERENCE.mean()))]
    assert fired == []
    assert detector.update_many(np.full(20_000, REFERENCE.mean())) == []


def check_a_large_shift_fires_soon(kind: type[StreamDetector]) -> None:
    detector = make(kind)
    stream = np.concatenate([np.full(300, REFERENCE.mean()), _in_control(1, 200) + 5 * 2.0])
    fired = [i for i, x in enumerate(stream) if detector.update(x)]
    assert fired, "a 5σ shift was never detected"
    assert 300 <= fired[0] < 330


def check_the_state_round_trips_through_json(kind: type[StreamDetector]) -> None:
    stream = np.concatenate([_in_control(2, 3_000), _in_control(3, 1_000) + 2.0])
    whole = make(kind)
    expected = [i for i, x in enumerate(stream) if whole.update(x)]
    first = make(kind)
    before = [i for i, x in enumerate(stream[:1_500]) if first.update(x)]
    saved = json.loads(json.dumps(first.state()))
    second = restore(saved, baseline_id="b-battery")
    assert type(second) is kind
    after = [1_500 + i for i, x in enumerate(stream[1_500:]) if second.update(x)]
    assert before + after == expected
    assert second.state() == whole.state()


def check_a_state_from_another_baseline_is_refused(kind: type[StreamDetector]) -> None:
    detector = make(kind, baseline_id="b-old")
    detector.update_many(_in_control(4, 100))
    with pytest.raises(DetectorStateError, match="'b-old', not 'b-new'"):
        kind.from_state(detector.state(), baseline_id="b-new")
    with pytest.raises(DetectorStateError, match="baseline"):
        restore(detector.state(), baseline_id=None)


def check_a_batch_gives_what_one_value_at_a_time_gives(kind: type[StreamDetector]) -> None:
    # shifts up and back (ADWIN, which adapts to a new level, alarms once per change)
    levels = np.repeat([0.0, 3.0, 0.0, 3.0, 0.0], [4_000, 2_000, 2_000, 2_000, 2_000])
    stream = _in_control(5, levels.size) + levels
    stream[np.random.default_rng(7).random(stream.size) < 0.02] = np.nan
    one = make(kind)
    singly = [(i, one.change_point) for i, x in enumerate(stream) if one.update(x)]
    batch = make(kind)
    alarms = [alarm for part in np.array_split(stream, 9) for alarm in batch.update_many(part)]
    assert len(singly) > 3
    assert [(alarm.index, alarm.change_point) for alarm in alarms] == singly
    assert batch.n_missing == one.n_missing == int(np.isnan(stream).sum())
    assert batch.n_seen == one.n_seen == stream.size
    one_state, batch_state = one.state(), batch.state()
    assert one_state.pop("statistic") == pytest.approx(batch_state.pop("statistic"), abs=1e-9)
    assert one_state == batch_state


def check_reset_gives_a_fresh_detector(kind: type[StreamDetector]) -> None:
    used = make(kind)
    used.update_many(_in_control(8, 2_000) + 4.0)
    used.reset()
    assert used.state() == make(kind).state()


BATTERY = [
    check_follows_the_protocol,
    check_a_constant_stream_never_fires,
    check_a_large_shift_fires_soon,
    check_the_state_round_trips_through_json,
    check_a_state_from_another_baseline_is_refused,
    check_a_batch_gives_what_one_value_at_a_time_gives,
    check_reset_gives_a_fresh_detector,
]
