"""Challenger faults for the serving tests: functions a real scikit-learn pipeline calls
(``FunctionTransformer``) and skops saves by name. The serving tests trust them by name
(``trusted:``) and put this folder on the server's ``PYTHONPATH``."""

from __future__ import annotations

import os
import time


def sleepy(rows):
    """A slow challenger: 200 ms per request."""
    time.sleep(0.2)
    return rows


def crashing(rows):
    """A challenger whose process dies on its first request."""
    os._exit(3)


def hanging(rows):
    """A challenger that never answers."""
    while True:
        time.sleep(1)


def raising(rows):
    """A challenger that raises on every request."""
    raise ValueError("this challenger is broken")
