"""Who answers a request, and who shadows it: pure functions of (salt, key).

A request's key is its entity key when the model declares one (the same customer always
takes the same route) and its request id otherwise. ``bucket`` maps (salt, key) to a
number in [0, 1) with BLAKE2b, the same in every process, every run and every worker; a
route is the arm whose cumulative weight range holds that number. Arms are laid out
canaries first, champion last, so raising a canary's weight only moves keys *onto* the
canary: nobody who was already on it moves back (a sticky split that stays sticky while
it grows). The shadow sample uses its own salt, so it is independent of the split.

>>> pick_arm("s", "customer-7", {"champion": 1.0})
'champion'
>>> arms = {"champion": 0.5, "canary": 0.5}
>>> pick_arm("s", "customer-7", arms) == pick_arm("s", "customer-7", arms)
True
>>> shadow_sampled("s", "r1", 1.0), shadow_sampled("s", "r1", 0.0)
(True, False)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from keel.errors import ConfigError

CHAMPION = "champion"
_SCALE = float(2**64)


def bucket(salt: str, key: str) -> float:
    """A number in [0, 1), uniform over keys, fixed for a (salt, key) pair.

    >>> bucket("salt", "key")
    0.199009...
    >>> 0 <= bucket("other", "key") < 1
    True
    """
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights made plain: finite, not negative, summing to 1 (within 1e-9), with a champion.

    >>> check_weights({"champion": 0.9, "canary": 0.1})
    {'champion': 0.9, 'canary': 0.1}
    >>> check_weights({"champion": 0.9})
    Traceback (most recent call last):
    ...
    keel.errors.ConfigError: weights must sum to 1, not 0.9 ({'champion': 0.9})
    """
    plain: dict[str, float] = {}
    for arm, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ConfigError(f"weight of {arm!r}: a number, not {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"weight of {arm!r}: a finite number >= 0, not {weight!r}")
        plain[str(arm)] = float(weight)
    if CHAMPION not in plain:
        raise ConfigError(f"weights must name the {CHAMPION!r} arm ({dict(weights)})")
    total = sum(plain.values())
    if abs(total - 1.0) > 1e-9:
        raise ConfigError(f"weights must sum to 1, not {total:g} ({dict(weights)})")
    return plain


def pick_arm(salt: str, key: str, weights: Mapping[str, float]) -> str:
    """The arm that answers ``key``: canaries first (in name order), champion last.

    >>> weights = {"champion": 0.8, "canary": 0.2}
    >>> picks = [pick_arm("s", f"k{i}", weights) for i in range(10_000)]
    >>> round(picks.count("canary") / len(picks), 2)
    0.2
    >>> grown = {"champion": 0.6, "canary": 0.4}  # nobody on the canary leaves it
    >>> all(pick_arm("s", f"k{i}", grown) == "canary"
    ...     for i, arm in enumerate(picks) if arm == "canary")
    True
    """
    point = bucket(salt, key)
    edge = 0.0
    for arm in sorted(a for a in weights if a != CHAMPION):
        edge += weights[arm]
        if point < edge:
            return arm
    return CHAMPION


def shadow_sampled(salt: str, key: str, share: float) -> bool:
    """Whether a request is mirrored to a shadow: decided before any queue, by hash.

    >>> sum(shadow_sampled("s", f"r{i}", 0.25) for i in range(10_000)) / 10_000
    0.25...
    """
    if share >= 1.0:
        return True
    return share > 0.0 and bucket(salt, key) < share


def route_key(record: Mapping, entity_keys: tuple[str, ...] | list[str], request_id: str) -> str:
    """The key a request is routed by: its entity key(s) when given, else its request id.

    >>> route_key({"customer": 7, "x": 1.0}, ["customer"], "r1")
    'customer=7'
    >>> route_key({"x": 1.0}, ["customer"], "r1")
    'request_id=r1'
    """
    present = [f"{name}={record[name]}" for name in entity_keys if record.get(name) is not None]
    if present and len(present) == len(entity_keys):
        return "&".join(present)
    return f"request_id={request_id}"
