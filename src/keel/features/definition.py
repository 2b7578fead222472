"""One windowed-feature definition: an aggregation of a column over a window, per entity.

A ``WindowedFeature`` is declared once, in Python or in ``keel.yaml``'s ``features:``
list, and computed by two engines that agree bit for bit: offline in DuckDB for every
training row (``keel.features.compute_offline``) and online by an incremental state per
entity (``keel.features.OnlineFeatures``).

**The interval convention.** The value at query time ``t`` aggregates the events of the
query's entity with ``event_time`` in ``[t − W, t)`` and ``available_time < t`` (strict:
an event that became available at the instant of a request is not seen by it). With a
hop ``h`` the window start snaps to the hop before it: ``[⌊t/h⌋·h − W, t)`` (Chronon's
sawtooth). Times are compared as integer microseconds since the Unix epoch, in UTC.

**Availability.** ``available_time`` names a column of the events holding when each
event became known; ``availability_lag`` declares ``available_time = event_time + lag``
instead. With neither, the engines read the ``available_time`` column that
``keel.features.ingest`` stamps on every event it takes, and, for events that do not
carry one, take ``available_time = event_time``.

Validation refuses at construction what the online state cannot compute, naming why:

>>> spend = WindowedFeature("spend_7d", entity="user_id", column="amount",
...                         aggregation="sum", window="7D", hop="1D")
>>> spend.window_us, spend.hop_us
(604800000000, 86400000000)
>>> WindowedFeature("bad", entity="user_id", column="amount", aggregation="sum",
...                 window="7D", hop="5D")
Traceback (most recent call last):
...
keel.errors.ConfigError: feature 'bad': hop 5D does not divide window 7D (the window must be ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from keel.errors import ConfigError

AGGREGATIONS = ("count", "sum", "mean", "min", "max", "std", "distinct_count")
#: The column ``keel.features.ingest`` stamps with the ingesting clock.
AVAILABLE_TIME = "available_time"
#: The suffix of the column that holds the newest available_time a value used.
AS_OF_SUFFIX = "__as_of"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _bad(key: str, message: str) -> ConfigError:
    """A ConfigError that remembers the key it is about (parse_features names it)."""
    error = ConfigError(message)
    error.key = key  # type: ignore[attr-defined]
    return error


def _micros(feature: str, key: str, text: Any, *, zero: bool = False) -> int:
    """A duration ("7D", "1h", "90s") as whole microseconds, or a ConfigError naming it."""
    from keel.windows import WindowSpec, duration_seconds

    if not isinstance(text, str):
        raise _bad(key, f"feature {feature!r}: {key} must be a duration such as 7D or 1h")
    try:
        if zero and duration_seconds(text) == 0:
            return 0
        nanos = WindowSpec(period=text).period_ns
    except ConfigError as error:
        raise _bad(key, f"feature {feature!r}: {key}: {error}") from None
    if nanos % 1000:
        raise _bad(key, f"feature {feature!r}: {key} {text} is not a whole number of µs")
    return nanos // 1000


@dataclass(frozen=True)
class WindowedFeature:
    """``aggregation`` of ``column`` over the last ``window`` per ``entity``.

    name: the output column (letters, digits and ``_``).
    entity: the entity key column, or a tuple of columns (a composite key).
    column: the aggregated column; ``None`` only for ``count`` (count the events). A
        ``count`` of a column counts its non-null values. Nulls and NaN are missing
        values for every aggregation; ``-0.0`` is read as ``0.0``.
    aggregation: count, sum, mean, min, max, std or distinct_count.
    window: the window length W (a fixed duration: "7D", "1h", "90s").
    hop: the hop h, dividing W; the window is then ``[⌊t/h⌋·h − W, t)``.
    event_time: the column holding when each event happened.
    available_time: the column holding when each event became known (see the module).
    availability_lag: or a duration: ``available_time = event_time + lag``.
    ddof: std's delta degrees of freedom (1: the sample standard deviation).
    max_distinct: distinct_count's cap on the distinct values an entity's state holds;
        past it the engines refuse, naming the feature and the entity.
    """

    name: str
    entity: str | tuple[str, ...]
    column: str | None
    aggregation: str
    window: str
    hop: str | None = None
    event_time: str = "event_time"
    available_time: str | None = None
    availability_lag: str | None = None
    ddof: int = 1
    max_distinct: int = 10_000

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not _NAME.match(name):
            raise _bad("name", f"feature name {name!r}: use letters, digits and _")
        if name.endswith(AS_OF_SUFFIX):
            raise _bad("name", f"feature {name!r}: a name may not end in {AS_OF_SUFFIX}")
        entity = self.entity
        if isinstance(entity, list):
            object.__setattr__(self, "entity", tuple(entity))
        if not self.entities or not all(isinstance(c, str) and c for c in self.entities):
            raise _bad(
                "entity", f"feature {name!r}: entity must be a column name or a list of them"
            )
        if self.aggregation not in AGGREGATIONS:
            raise _bad(
                "aggregation",
                f"feature {name!r}: unknown aggregation {self.aggregation!r}: "
                f"one of {', '.join(AGGREGATIONS)}",
            )
        if self.column is None and self.aggregation != "count":
            raise _bad("column", f"feature {name!r}: {self.aggregation} needs a column")
        if self.column is not None and (not isinstance(self.column, str) or not self.column):
            raise _bad("column", f"feature {name!r}: column must be a column name")
        window = _micros(name, "window", self.window)
        if self.hop is not None:
            hop = _micros(name, "hop", self.hop)
            if hop > window or window % hop:
                raise _bad(
                    "hop",
                    f"feature {name!r}: hop {self.hop} does not divide window {self.window} "
                    "(the window must be a whole number of hops)",
                )
        for key in ("event_time", "available_time"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise _bad(key, f"feature {name!r}: {key} must be a column name")
        if self.available_time is not None and self.availability_lag is not None:
            raise _bad(
                "availability_lag",
                f"feature {name!r}: give available_time (a column) or availability_lag "
                "(a duration), not both",
            )
        if self.availability_lag is not None:
            _micros(name, "availability_lag", self.availability_lag, zero=True)
        if isinstance(self.ddof, bool) or not isinstance(self.ddof, int) or self.ddof < 0:
            raise _bad("ddof", f"feature {name!r}: ddof must be a whole number ≥ 0")
        cap = self.max_distinct
        if isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0:
            raise _bad(
                "max_distinct",
                f"feature {name!r}: max_distinct must be a positive whole number, not {cap!r} "
                "(the online state keeps an exact multiset of at most that many values)",
            )
        used = {*self.entities, self.event_time, self.column, self.available_time} - {None}
        if name in used:
            raise _bad("name", f"feature {name!r}: its name is one of its own input columns")

    @property
    def entities(self) -> tuple[str, ...]:
        """The entity key columns, as a tuple."""
        return (self.entity,) if isinstance(self.entity, str) else tuple(self.entity)

    @property
    def window_us(self) -> int:
        return _micros(self.name, "window", self.window)

    @property
    def hop_us(self) -> int | None:
        return None if self.hop is None else _micros(self.name, "hop", self.hop)

    @property
    def lag_us(self) -> int | None:
        if self.availability_lag is None:
            return None
        return _micros(self.name, "availability_lag", self.availability_lag, zero=True)

    @property
    def as_of(self) -> str:
        """The name of the column holding the newest available_time the value used."""
        return self.name + AS_OF_SUFFIX

    def to_dict(self) -> dict[str, Any]:
        """The keel.yaml entry (defaults left out); ``parse_features`` reads it back."""
        out: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in ("name", "entity", "column", "aggregation", "window"):
                out[spec.name] = list(value) if isinstance(value, tuple) else value
            elif value != spec.default:
                out[spec.name] = value
        return out


_KEYS = tuple(spec.name for spec in fields(WindowedFeature))
_REQUIRED = ("name", "entity", "aggregation", "window")


def parse_features(entries: list[Mapping[str, Any]], source: str) -> list[WindowedFeature]:
    """The ``features:`` list of a keel.yaml file → definitions; errors name the entry.

    ``source`` names the file for the messages. Each entry holds the fields of
    ``WindowedFeature``; ``entity`` may be a list of columns. Names must be unique.

    >>> features = parse_features([
    ...     {"name": "txn_count_7d", "entity": "user_id", "aggregation": "count",
    ...      "window": "7D"},
    ...     {"name": "amount_mean_1h", "entity": ["user_id", "merchant"], "column": "amount",
    ...      "aggregation": "mean", "window": "1h", "availability_lag": "5min"},
    ... ], "keel.yaml")
    >>> [(f.name, f.entities) for f in features]
    [('txn_count_7d', ('user_id',)), ('amount_mean_1h', ('user_id', 'merchant'))]
    >>> parse_features([{"name": "x", "entity": "u", "aggregation": "median", "window": "1D",
    ...                  "column": "a"}], "keel.yaml")
    Traceback (most recent call last):
    ...
    keel.errors.ConfigError: keel.yaml: features[0].aggregation: feature 'x': unknown ...
    """
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: features must be a list of feature definitions")
    features: list[WindowedFeature] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: features[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: a feature is a mapping of keys (name, entity, ...)")
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}.{unknown[0]}: unknown key (the keys are {', '.join(_KEYS)})"
            )
        missing = [key for key in _REQUIRED if key not in entry]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: missing (required: {', '.join(_REQUIRED)})")
        values = dict(entry)
        values.setdefault("column", None)
        if isinstance(values["entity"], list):
            values["entity"] = tuple(values["entity"])
        try:
            feature = WindowedFeature(**values)
        except ConfigError as error:
            raise ConfigError(f"{where}.{getattr(error, 'key', 'name')}: {error}") from None
        except TypeError as error:
            raise ConfigError(f"{where}: {error}") from None
        if feature.name in seen:
            raise ConfigError(
                f"{where}.name: {feature.name!r} is also features[{seen[feature.name]}]"
            )
        seen[feature.name] = index
        features.append(feature)
    return features
