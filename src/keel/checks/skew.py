"""Training–serving skew: what was served against what training would have computed.

For every served row of a window (request id, entity keys, served time, served values
and, when known, each value's own timestamp in ``<feature>__as_of``), the truth is the
offline recomputation of the same features for the same entity at the served time,
joined back by request id. Per feature (and per segment), each row is one of:

* **equal**: both present and equal (integers equal; otherwise floats within 1e-9
  relative after int/float normalization: an integer served as 3.0 equals 3);
* **mismatch**: both present and unequal;
* **missing**: served null, the truth has a value;
* **extra**: served a value, the truth is null;
* **unanswered**: the truth source had no answer for the row (no row in its output, or
  no truth row at or before the served time). Counted, never dropped: rows in = rows out.

Each share (``mismatch_share``, ``missing_share``, ``extra_share``, ``unanswered_share``)
is over the window's served rows; ``stale_share`` (served time − ``__as_of`` > ttl) and
``future_share`` (``__as_of`` after the served time by more than ``clock_tolerance``) are
over the rows whose ``__as_of`` is known. A share **alerts** when its lower one-sided 99%
Wilson bound (``wilson_lower``; z = Φ⁻¹(0.99) ≈ 2.326, the lower end of the two-sided
98% Wilson interval) exceeds ``tolerance`` (0.001 by default): the feature is *skewed*.
A disagreement that vanishes when the truth is taken at ``served time ± clock_tolerance``
is the clocks within their stated tolerance, not skew, and is not counted.

``smape`` (symmetric mean absolute percentage error, 0–2, over rows with both values)
and the served-vs-offline distances of ``keel.stats.methods`` (``wasserstein``, ``psi``,
``jensenshannon``; ``total_variation`` for categories) are descriptions only: the two
sides are paired on the same rows, so the KS and χ² p-values, which assume independent
samples, do not apply, and these Results never alert.

An alerting feature is named by kind (``details.kind``, ``details.finding``):
``timezone shift`` (the truth at the served time ± whole hours agrees, or ``__as_of`` is
hours after the served time), ``stale value`` (TTL breaches), ``unit mismatch`` (a
constant factor such as 100× between served and offline), ``default-filled nulls``
(a default served where the truth is null, or null served where it has a value),
``truncated window`` (served below the offline value: the online window misses older
events), ``truth unavailable`` and ``values differ``.

The truth is a ``Truth`` (a callable that answers rows at a time column, so the check can
ask again at other times): ``TableTruth`` (an as-of join in DuckDB over any table keel
reads), ``FeaturesTruth`` (``keel.features``, bitemporal) or ``FeastTruth``; or a table
already joined by request id. Pure: no store, no I/O of its own beyond the truth asked.

>>> import pyarrow as pa
>>> served = pa.table({"request_id": ["a", "b", "c"], "user": [1, 2, 3],
...                    "event_time": ["2026-03-02T00:00:00Z"] * 3, "clicks_7d": [3.0, 5, 0]})
>>> truth = pa.table({"request_id": ["a", "b", "c"], "clicks_7d": [3, 5, 0]})
>>> found = check_skew(served, truth, SkewSpec(features=("clicks_7d",)))
>>> [(r.metric, r.value, r.status) for r in found if r.metric.endswith("_share")][:2]
[('mismatch_share', 0.0, 'ok'), ('missing_share', 0.0, 'ok')]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import DataError, SchemaError
from keel.result import Result

CHECK = "skew"
TOLERANCE = 0.001
CONFIDENCE = 0.99
RELATIVE = 1e-9
CLOCK_TOLERANCE_SECONDS = 1.0
AS_OF = "__as_of"
SHARES = (
    "mismatch_share",
    "missing_share",
    "extra_share",
    "unanswered_share",
    "stale_share",
    "future_share",
)
#: Served-vs-offline distances (descriptions, never alerting), by kind of feature.
DISTANCES = {
    "numeric": ("wasserstein", "psi", "jensenshannon"),
    "categorical": ("psi", "jensenshannon", "total_variation"),
}
METRICS = frozenset({*SHARES, "smape", *DISTANCES["numeric"], *DISTANCES["categorical"]})
KINDS = (
    "timezone shift",
    "stale value",
    "unit mismatch",
    "default-filled nulls",
    "truncated window",
    "truth unavailable",
    "values differ",
)
PAIRED = (
    "description only: served and offline values are paired on the same rows, so the "
    "two-sample tests' p-values (KS, χ²) do not apply"
)
#: Share of the disagreeing rows a kind must explain to be named.
NAMED_SHARE = 0.9
#: Rows the timezone probe asks the truth for again, at each whole-hour shift.
PROBE_ROWS = 500
PROBE_HOURS = (1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8, 9, -9, 10, -10, 11, -11, 12)
ROW = "__skew_row"
ANSWERED = "_answered"
ANSWERED_SUFFIX = "__answered"


class Truth(Protocol):
    """An offline truth: its ``name`` (said in every Result) and the features' values for
    served rows (request id, entity keys and the time column ``at``, timestamp[us, UTC]),
    recomputed as of ``at``. Returns the request id and one column per feature (and
    optionally ``_answered``, false where it had no answer); rows it leaves out are
    counted as unanswered."""

    name: str

    def __call__(self, rows: pa.Table, at: str) -> pa.Table: ...


@dataclass(frozen=True)
class SkewSpec:
    """What to compare and how: the features, the served log's columns, the rule.

    ``ttl``: seconds a served value may be old (one for all, or per feature; none: no
    staleness check); ``clock_tolerance``: seconds the served time and the truth's event
    times may disagree (1 s by default).
    """

    features: tuple[str, ...]
    entity_keys: tuple[str, ...] = ()
    request_id: str = "request_id"
    served_time: str = "event_time"
    tolerance: float = TOLERANCE
    ttl: float | Mapping[str, float] | None = None
    clock_tolerance: float = CLOCK_TOLERANCE_SECONDS

    def ttl_of(self, feature: str) -> float | None:
        """The ttl of one feature in seconds, or None.

        >>> SkewSpec(("a", "b"), ttl={"a": 3600}).ttl_of("a"), SkewSpec(("a",)).ttl_of("a")
        (3600.0, None)
        """
        if isinstance(self.ttl, Mapping):
            value = self.ttl.get(feature)
            return None if value is None else float(value)
        return None if self.ttl is None else float(self.ttl)


def wilson_lower(count: Any, rows: Any, confidence: float = CONFIDENCE) -> Any:
    """The lower one-sided Wilson score bound of a share ``count / rows`` at ``confidence``.

    One-sided: the true share is below it with probability at most 1 − confidence; it is
    the lower end of the two-sided Wilson interval at level 2·confidence − 1 (0.98 for
    0.99). Vectorized over arrays; nan where ``rows`` is 0.

    >>> round(float(wilson_lower(5, 1000)), 6), float(wilson_lower(0, 1000))
    (0.001844, 0.0)
    """
    z = NormalDist().inv_cdf(confidence)
    count = np.asarray(count, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = count / rows
        z2n = z * z / rows
        centre = (share + z2n / 2) / (1 + z2n)
        half = z / (1 + z2n) * np.sqrt(share * (1 - share) / rows + z2n / (4 * rows))
        low = np.where(rows > 0, np.maximum(centre - half, 0.0), np.nan)
    return low if low.ndim else low[()]


def values_equal(served: Any, truth: Any) -> np.ndarray:
    """Row by row, whether two columns agree where both are present (nulls: False).

    Integers must be equal; other numbers are compared as floats within 1e-9 relative
    (an integer served as 3.0 equals 3; NaN equals NaN); anything else as text.

    >>> values_equal(pa.array([3, 4, None]), pa.array([3.0, 4.000001, 1.0])).tolist()
    [True, False, False]
    """
    served, truth = _array(served), _array(truth)
    both = _valid(served) & _valid(truth)
    if _kind(served.type) == "int" and _kind(truth.type) == "int":
        equal = _ints(served) == _ints(truth)
    elif _kind(served.type) != "text" and _kind(truth.type) != "text":
        a, b = _floats(served), _floats(truth)
        with np.errstate(invalid="ignore"):
            equal = (a == b) | (np.abs(a - b) <= RELATIVE * np.maximum(np.abs(a), np.abs(b)))
        equal |= np.isnan(a) & np.isnan(b)
    else:
        text = pc.equal(pc.cast(served, pa.string()), pc.cast(truth, pa.string()))
        equal = pc.fill_null(text, False).to_numpy(zero_copy_only=False)
    return both & equal


def check_skew(
    served: pa.Table,
    truth: Truth | pa.Table | Mapping[str, Truth | pa.Table],
    spec: SkewSpec,
    *,
    segment_by: str | None = None,
    max_segments: int = 20,
) -> list[Result]:
    """The skew Results of one window's served rows against the truth (module docstring).

    ``truth``: one for every feature, or a mapping feature → truth (each feature states
    the truth it is checked against). A table is taken as already joined by request id.
    ``segment_by``: a served column whose ``max_segments`` most frequent values each get
    their own share Results (segment ``column=value``).

    >>> served = pa.table({"request_id": ["a", "b"], "event_time": ["2026-03-02"] * 2,
    ...                    "amount": [1250.0, 300.0]})
    >>> truth = pa.table({"request_id": ["a", "b"], "amount": [12.5, 3.0]})
    >>> found = check_skew(served, truth, SkewSpec(features=("amount",)))
    >>> alert = next(r for r in found if r.status == "alert")
    >>> alert.metric, alert.details["kind"]
    ('mismatch_share', 'unit mismatch')
    >>> alert.details["finding"]
    'unit mismatch: served ≈ 100× the offline value in 100% of 2 disagreeing rows'
    """
    truths = _truths(truth, spec.features)
    _require(served, spec, any(not isinstance(t, pa.Table) for t in truths.values()))
    rows = _rows(served, spec)
    compared: list[_Compared] = []
    for source, features in _grouped(truths):
        aligned = _ask(source, rows, spec, features)
        group = [
            _compare(served, aligned, feature, rows, spec, _truth_name(source))
            for feature in features
        ]
        if not isinstance(source, pa.Table):
            _within_clock_tolerance(group, source, rows, spec)
        _name_kinds(group, source, rows, spec)
        compared += group
    order = {feature: index for index, feature in enumerate(spec.features)}
    compared.sort(key=lambda c: order[c.feature])
    segments = _segments(served, segment_by, max_segments)
    results = []
    for item in compared:
        results += _share_results(item, spec, None, None)
        results += _description_results(item, None)
        for label, mask in segments:
            results += _share_results(item, spec, label, mask)
            results += _description_results(item, label, mask, distances=False)
    return results


# --- truths -------------------------------------------------------------------------------


@dataclass
class TableTruth:
    """Any table keel reads, as of the served time: for each served row, the latest row of
    the same entity with ``timestamp`` ≤ the served time (and ``available`` ≤ it when
    declared: a row not yet available then is not seen, however old its timestamp; of two
    rows of an entity at one time, the later available, then the later in the table). An
    as-of join in DuckDB; rows with no such row are unanswered. Answers in no particular
    order (the check joins them back by request id).

    >>> prices = pa.table({"item": [1, 1], "ts": ["2026-03-01", "2026-03-03"],
    ...                    "price": [10.0, 12.0]})
    >>> rows = pa.table({"request_id": ["r"], "item": [1],
    ...                  "at": pa.array([1772409600000000], pa.timestamp("us", tz="UTC"))})
    >>> TableTruth(prices, ("item",), "ts")(rows, "at").to_pylist()  # as of 2026-03-02
    [{'request_id': 'r', 'price': 10.0, '_answered': True}]
    """

    data: Any
    entity_keys: tuple[str, ...]
    timestamp: str = "event_time"
    available: str | None = None
    features: tuple[str, ...] | None = None
    request_id: str = "request_id"
    name: str = ""
    _table: pa.Table | None = field(default=None, repr=False)
    _has_ties: bool | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            what = self.data if isinstance(self.data, str) else type(self.data).__name__
            when = self.timestamp + (f", available {self.available}" if self.available else "")
            self.name = f"table {what} (as of {when})"

    def table(self) -> pa.Table:
        if self._table is None:
            from keel.data import open_source

            source = open_source(self.data)
            times = [self.timestamp, *([self.available] if self.available else [])]
            missing = [c for c in (*self.entity_keys, *times) if c not in source.schema.names]
            if missing:
                raise SchemaError(
                    f"the skew truth {source.name} has no column {', '.join(map(repr, missing))}"
                    f" (it has: {', '.join(source.schema.names)})"
                )
            wanted = None
            if self.features is not None:
                wanted = [*self.entity_keys, *times] + [
                    f for f in self.features if f in source.schema.names
                ]
            table = source.read_all(wanted)
            for column in times:
                index = table.column_names.index(column)
                table = table.set_column(index, column, _utc(table.column(column), column))
            self._table = table
        return self._table

    def __call__(self, rows: pa.Table, at: str) -> pa.Table:
        import duckdb

        table = self.table()
        keys = list(self.entity_keys)
        features = [
            c for c in table.column_names if c not in (*keys, self.timestamp, self.available)
        ]
        if self.features is not None:
            features = [f for f in self.features if f in table.column_names]
        on = "".join(f"q.{_quote(k)} = b.{_quote(k)} AND " for k in keys)
        selected = "".join(f"e.{_quote(f)}, " for f in features)
        key_list = ", ".join(_quote(k) for k in keys)
        ts = _quote(self.timestamp)
        query = pa.table(
            {
                self.request_id: rows.column(self.request_id),
                "__at": rows.column(at),
                **{k: rows.column(k) for k in keys},
            }
        )
        connection = duckdb.connect()
        try:
            connection.register("served_rows", query)
            # Each row's place in the table, which breaks ties (the later row is a correction).
            numbered = table.append_column("__rid", pa.array(np.arange(table.num_rows)))
            connection.register("truth_rows", numbered)
            if self.available is None and not self._ties(connection):
                # One row per entity and time: the latest at or before the served time.
                sql = f"""
                    WITH e AS (
                        SELECT * EXCLUDE (__rid), true AS __found
                        FROM truth_rows WHERE {ts} IS NOT NULL
                    )
                    SELECT q.{_quote(self.request_id)}, {selected}
                           coalesce(e.__found, false) AS {ANSWERED}
                    FROM served_rows q ASOF LEFT JOIN e ON {on.replace("b.", "e.")}q.__at >= e.{ts}
                """
            else:
                sql = self._bitemporal(key_list, on, selected)
            result = connection.sql(sql).to_arrow_table()
        finally:
            connection.close()
        return result

    def _ties(self, connection: Any) -> bool:
        """Whether some entity has two rows at one time (then the later row wins, which a
        plain as-of join does not promise); asked once per table."""
        if self._has_ties is None:
            keys = [*self.entity_keys, self.timestamp]
            grouped = ", ".join(_quote(k) for k in keys)
            self._has_ties = bool(
                connection.sql(
                    f"SELECT count(*) FROM (SELECT {grouped} FROM truth_rows "
                    f"GROUP BY ALL HAVING count(*) > 1)"
                ).fetchall()[0][0]
            )
        return self._has_ties

    def _bitemporal(self, key_list: str, on: str, selected: str) -> str:
        """Each truth row's effective time is when it is both valid and known; the best row
        known by each effective time is the one with the latest timestamp so far (ties: the
        latest available, then the last in the table)."""
        ts = _quote(self.timestamp)
        av = _quote(self.available) if self.available else None
        effective = f"greatest({ts}, {av})" if av else ts
        order = f"{{'t': {ts}, 'a': {av}, 'r': __rid}}" if av else f"{{'t': {ts}, 'r': __rid}}"
        partition = f"PARTITION BY {key_list}" if key_list else ""
        known = f"AND {av} IS NOT NULL" if av else ""
        return f"""
            WITH e AS (
                SELECT *, {effective} AS __eff
                FROM truth_rows WHERE {ts} IS NOT NULL {known}
            ),
            b AS (
                SELECT {key_list + ", " if key_list else ""}__eff,
                       arg_max(__rid, {order}) OVER (
                           {partition} ORDER BY __eff
                           RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __best
                FROM e
            )
            SELECT q.{_quote(self.request_id)}, {selected}
                   e.__rid IS NOT NULL AS {ANSWERED}
            FROM served_rows q
            ASOF LEFT JOIN b ON {on}q.__at >= b.__eff
            LEFT JOIN e ON e.__rid = b.__best
        """


@dataclass
class FeaturesTruth:
    """``keel.features``, bitemporal: each feature recomputed offline (DuckDB) at the served
    time, from the events that had happened and were available by then.

    ``definitions``: ``keel.features`` windowed features (``.name`` each); ``events``: the
    event log they read (what ``compute`` takes, or a function returning it, called once);
    ``compute``: ``keel.features.compute_offline``, passed in (the check family never
    imports the feature engines: their online half reaches the store). Every row with a
    served time is answered (an empty window is the aggregate's own value, e.g. count 0).

    >>> offline = lambda features, events, rows, at: rows.append_column("n_7d", pa.array([4]))
    >>> rows = pa.table({"request_id": ["r"], "at": [0]})
    >>> feature = type("Feature", (), {"name": "n_7d"})
    >>> FeaturesTruth([feature], pa.table({"e": [1]}), offline)(rows, "at").to_pylist()
    [{'request_id': 'r', 'n_7d': 4}]
    """

    definitions: Sequence[Any]
    events: Any
    compute: Any
    request_id: str = "request_id"
    name: str = "keel.features (bitemporal: event time and availability)"
    _events: pa.Table | None = field(default=None, repr=False)

    def __call__(self, rows: pa.Table, at: str) -> pa.Table:
        events = self.events
        if callable(events):  # a loader: read once, the check asks again at other times
            if self._events is None:
                self._events = events()
            events = self._events
        computed = self.compute(list(self.definitions), events, rows, at=at)
        names = [d.name for d in self.definitions]
        return computed.select([self.request_id, *names])


@dataclass
class FeastTruth:
    """Feast's offline store (``keel[feast]``): ``get_historical_features`` through
    ``keel.data.feast.historical_features`` for the served rows' entities at the served
    time. Feature ``view:name`` is checked as ``name``; a row whose every feature of a
    view is null is unanswered for that view's features (Feast cannot tell it from no
    feature row). Feast is imported when first asked.

    >>> FeastTruth("feature_repo/", ("user_stats:clicks_7d",), ("user_id",)).name
    'feast feature_repo/ (user_stats:clicks_7d)'
    """

    repo: str
    refs: tuple[str, ...]
    entity_keys: tuple[str, ...]
    request_id: str = "request_id"
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"feast {self.repo} ({', '.join(self.refs)})"

    def __call__(self, rows: pa.Table, at: str) -> pa.Table:
        from keel.data.feast import historical_features

        entity_rows = pa.table(
            {
                self.request_id: rows.column(self.request_id),
                **{k: rows.column(k) for k in self.entity_keys},
                "event_timestamp": rows.column(at),
            }
        )
        found = historical_features(
            self.repo, list(self.refs), entity_rows, timestamp="event_timestamp"
        )
        if self.request_id not in found.column_names and found.num_rows == rows.num_rows:
            found = found.append_column(self.request_id, rows.column(self.request_id))
        # Through Feast a feature row with every requested value null reads as no row: a
        # view whose features are all null for a row did not answer it.
        views: dict[str, list[str]] = {}
        for ref in self.refs:
            view, _, name = ref.rpartition(":")
            views.setdefault(view, []).append(name)
        for names in views.values():
            answered = np.zeros(found.num_rows, dtype=bool)
            for name in names:
                answered |= _valid(_array(found.column(name)))
            for name in names:
                found = found.append_column(name + ANSWERED_SUFFIX, pa.array(answered))
        return found


# --- comparing ----------------------------------------------------------------------------


@dataclass
class _Compared:
    """One feature's rows, each classified, and what the probes and the namer found."""

    feature: str
    truth: str
    served: pa.Array
    offline: pa.Array
    answered: np.ndarray
    equal: np.ndarray
    age: np.ndarray | None  # seconds, nan where __as_of is unknown
    ttl: float | None
    request_ids: pa.Array
    clock_tolerated: np.ndarray
    clock_tolerance: float = CLOCK_TOLERANCE_SECONDS
    kind: str | None = None
    finding: str | None = None

    @property
    def served_valid(self) -> np.ndarray:
        return _valid(self.served)

    @property
    def offline_valid(self) -> np.ndarray:
        return _valid(self.offline)

    def masks(self) -> dict[str, np.ndarray]:
        sv, tv, answered = self.served_valid, self.offline_valid, self.answered
        kept = ~self.clock_tolerated
        found = {
            "mismatch_share": answered & sv & tv & ~self.equal & kept,
            "missing_share": answered & ~sv & tv & kept,
            "extra_share": answered & sv & ~tv & kept,
            "unanswered_share": ~answered,
        }
        return found

    def disagreeing(self) -> np.ndarray:
        masks = self.masks()
        return masks["mismatch_share"] | masks["missing_share"] | masks["extra_share"]

    def aged(self) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        """(breaches, rows with a known age) for stale_share and future_share."""
        if self.age is None:
            return None
        known = ~np.isnan(self.age)
        found = {}
        if self.ttl is not None:
            found["stale_share"] = (known & (self.age > self.ttl), known)
        found["future_share"] = (known & (self.age < -self.clock_tolerance), known)
        return found

    def numeric(self) -> bool:
        return _kind(self.served.type) != "text" and _kind(self.offline.type) != "text"


def _truths(truth: Any, features: Sequence[str]) -> dict[str, Any]:
    if not features:
        raise SchemaError("the skew check needs at least one feature")
    if isinstance(truth, Mapping):
        missing = [f for f in features if f not in truth]
        if missing:
            raise SchemaError(f"no truth for feature(s) {', '.join(missing)} in the skew check")
        return {f: truth[f] for f in features}
    return dict.fromkeys(features, truth)


def _grouped(truths: dict[str, Any]) -> list[tuple[Any, list[str]]]:
    """Features sharing one truth are asked of it together."""
    groups: list[tuple[Any, list[str]]] = []
    for feature, source in truths.items():
        for known, features in groups:
            if known is source:
                features.append(feature)
                break
        else:
            groups.append((source, [feature]))
    return groups


def _truth_name(source: Any) -> str:
    if isinstance(source, pa.Table):
        return "a table joined by request id"
    return str(getattr(source, "name", "") or type(source).__name__)


def _require(served: pa.Table, spec: SkewSpec, asks: bool) -> None:
    """The served log carries what the check needs, or a SchemaError says what is missing."""
    needed = [spec.request_id, spec.served_time] + (list(spec.entity_keys) if asks else [])
    missing = [c for c in needed if c not in served.column_names]
    if missing:
        roles = {spec.request_id: "request id", spec.served_time: "served time"}
        named = ", ".join(f"{c!r} ({roles.get(c, 'entity key')})" for c in missing)
        raise SchemaError(
            f"the served log has no {named} column: the skew check joins each served row to "
            "its offline truth by request id, entity keys and served time"
        )
    absent = [f for f in spec.features if f not in served.column_names]
    if absent:
        raise SchemaError(
            f"the served log has no column for feature(s) {', '.join(map(repr, absent))}: "
            "the skew check compares the values served"
        )


def _rows(served: pa.Table, spec: SkewSpec) -> pa.Table:
    """What a truth is asked: request id, entity keys and the served time (UTC)."""
    columns = {spec.request_id: served.column(spec.request_id)}
    for key in spec.entity_keys:
        columns[key] = served.column(key)
    columns[spec.served_time] = _utc(served.column(spec.served_time), spec.served_time)
    return pa.table(columns)


def _ask(source: Any, rows: pa.Table, spec: SkewSpec, features: list[str]) -> pa.Table:
    """The truth for every served row, in served order (rows in = rows out): its features
    and ``_answered``. Rows the truth left out come back unanswered, never dropped."""
    found = source if isinstance(source, pa.Table) else source(rows, spec.served_time)
    return _aligned(rows.column(spec.request_id), found, spec.request_id, features)


def _aligned(request_ids: Any, found: pa.Table, request_id: str, features: list[str]) -> pa.Table:
    if request_id not in found.column_names:
        raise DataError(
            f"the skew truth's answer has no {request_id!r} column to join it to the served rows"
        )
    ids = found.column(request_id)
    if pc.count_distinct(ids.drop_null()).as_py() != len(ids.drop_null()):
        raise DataError(
            f"the skew truth answers some {request_id!r} more than once: one row per request"
        )
    present = pa.array(np.ones(found.num_rows, dtype=bool))
    overall = (
        pc.fill_null(found.column(ANSWERED), False) if ANSWERED in found.column_names else present
    )
    columns = {request_id: ids}
    for feature in features:
        columns[feature] = (
            found.column(feature)
            if feature in found.column_names
            else pa.nulls(found.num_rows, pa.float64())
        )
        own = feature + ANSWERED_SUFFIX  # a truth may answer some features of a row only
        columns[own] = (
            pc.fill_null(found.column(own), False) if own in found.column_names else overall
        )
    right = pa.table(columns)
    served_ids = _array(request_ids)
    if right.schema.field(request_id).type != served_ids.type:
        right = right.set_column(0, request_id, pc.cast(right.column(0), served_ids.type))
    left = pa.table({request_id: served_ids, ROW: pa.array(np.arange(len(served_ids)))})
    joined = left.join(right, request_id, join_type="left outer").sort_by(ROW)
    for feature in features:  # a row the truth left out is unanswered, never dropped
        own = feature + ANSWERED_SUFFIX
        index = joined.column_names.index(own)
        joined = joined.set_column(index, own, pc.fill_null(joined.column(own), False))
    return joined


def _compare(
    served: pa.Table,
    aligned: pa.Table,
    feature: str,
    rows: pa.Table,
    spec: SkewSpec,
    truth_name: str,
) -> _Compared:
    served_values = _array(served.column(feature))
    offline = _array(aligned.column(feature))
    age = None
    stamp = f"{feature}{AS_OF}"
    if stamp in served.column_names:
        at = _micros(rows.column(spec.served_time))
        as_of = _micros(_utc(served.column(stamp), stamp))
        age = (at - as_of) / 1e6
    item = _Compared(
        feature=feature,
        truth=truth_name,
        served=served_values,
        offline=offline,
        answered=_array(aligned.column(feature + ANSWERED_SUFFIX))
        .to_numpy(zero_copy_only=False)
        .astype(bool),
        equal=values_equal(served_values, offline),
        age=age,
        ttl=spec.ttl_of(feature),
        request_ids=_array(rows.column(spec.request_id)),
        clock_tolerated=np.zeros(len(served_values), dtype=bool),
        clock_tolerance=spec.clock_tolerance,
    )
    return item


def _probe(
    source: Any, rows: pa.Table, spec: SkewSpec, indices: np.ndarray, seconds: float, features
) -> pa.Table:
    """The truth for some rows again, at their served time shifted by ``seconds``."""
    part = rows.take(pa.array(indices))
    at = _micros(part.column(spec.served_time)) + int(round(seconds * 1e6))
    shifted = pa.array(at.astype(np.int64), pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    part = part.set_column(part.column_names.index(spec.served_time), spec.served_time, shifted)
    return _aligned(
        part.column(spec.request_id), source(part, spec.served_time), spec.request_id, features
    )


def _agrees(item: _Compared, indices: np.ndarray, answer: pa.Table) -> np.ndarray:
    """Whether the served values at ``indices`` agree with a probe's answer (both null
    counts as agreement: the truth has no value and none was served)."""
    served = item.served.take(pa.array(indices))
    offline = _array(answer.column(item.feature))
    answered = _array(answer.column(item.feature + ANSWERED_SUFFIX))
    answered = answered.to_numpy(zero_copy_only=False).astype(bool)
    both_null = ~_valid(served) & ~_valid(offline)
    return answered & (values_equal(served, offline) | both_null)


def _within_clock_tolerance(group: list[_Compared], source: Any, rows, spec: SkewSpec) -> None:
    """Disagreements that vanish at served time ± clock_tolerance are the clocks."""
    if spec.clock_tolerance <= 0:
        return
    union = np.zeros(rows.num_rows, dtype=bool)
    for item in group:
        union |= item.disagreeing()
    indices = np.flatnonzero(union)
    if len(indices) == 0:
        return
    features = [item.feature for item in group]
    for seconds in (-spec.clock_tolerance, spec.clock_tolerance):
        answer = _probe(source, rows, spec, indices, seconds, features)
        for item in group:
            item.clock_tolerated[indices] |= (
                _agrees(item, indices, answer) & item.disagreeing()[indices]
            )


def _name_kinds(group: list[_Compared], source: Any, rows: pa.Table, spec: SkewSpec) -> None:
    """Name each skewed feature's kind; a timezone probe only for those the cheap kinds
    leave unexplained (and only when the truth can be asked again)."""
    probing = []
    for item in group:
        item.kind, item.finding = _cheap_kind(item, spec, None)
        unexplained = item.kind in (
            None,
            "truncated window",
            "values differ",
            "default-filled nulls",
        )
        if unexplained and _skewed(item, spec) and not isinstance(source, pa.Table):
            probing.append(item)
    if not probing:
        return
    union = np.zeros(rows.num_rows, dtype=bool)
    for item in probing:
        union |= item.disagreeing()
    candidates = np.flatnonzero(union)
    if len(candidates) == 0:
        return
    step = max(1, len(candidates) // PROBE_ROWS)
    sample = candidates[::step][:PROBE_ROWS]
    features = [item.feature for item in probing]
    for hours in PROBE_HOURS:
        if abs(hours) * 3600 <= spec.clock_tolerance or not probing:
            continue
        answer = _probe(source, rows, spec, sample, hours * 3600.0, features)
        for item in list(probing):
            own = item.disagreeing()[sample]
            if own.sum() == 0:
                continue
            agreed = _agrees(item, sample, answer)[own].mean()
            if agreed >= NAMED_SHARE:
                item.kind = "timezone shift"
                direction = "behind" if hours > 0 else "ahead of"
                item.finding = (
                    f"timezone shift: the served time is {abs(hours)} h {direction} the time "
                    f"the value was computed (the truth {hours:+d} h agrees with "
                    f"{agreed:.0%} of {int(own.sum())} sampled disagreeing rows; or every "
                    f"value was computed exactly {abs(hours)} h "
                    f"{'before' if hours < 0 else 'after'} it was served)"
                )
                probing.remove(item)


def _skewed(item: _Compared, spec: SkewSpec, mask: np.ndarray | None = None) -> bool:
    for breaches, rows in _counts(item, mask).values():
        if rows and wilson_lower(breaches, rows) > spec.tolerance:
            return True
    return False


def _counts(item: _Compared, mask: np.ndarray | None) -> dict[str, tuple[int, int]]:
    """metric -> (breaching rows, rows judged), within ``mask`` when given."""
    rows = len(item.served) if mask is None else int(mask.sum())
    found = {
        metric: (int((m if mask is None else m & mask).sum()), rows)
        for metric, m in item.masks().items()
    }
    for metric, (breaches, known) in (item.aged() or {}).items():
        if mask is not None:
            breaches, known = breaches & mask, known & mask
        found[metric] = (int(breaches.sum()), int(known.sum()))
    return found


def _cheap_kind(item: _Compared, spec: SkewSpec, mask: np.ndarray | None):
    """(kind, finding) from the rows alone, or (None, None) when nothing is skewed."""
    counts = _counts(item, mask)
    skewed = {
        metric
        for metric, (breaches, rows) in counts.items()
        if rows and wilson_lower(breaches, rows) > spec.tolerance
    }
    if not skewed:
        return None, None
    within = np.ones(len(item.served), dtype=bool) if mask is None else mask
    aged = item.aged() or {}
    if "future_share" in skewed:
        breaches, _ = aged["future_share"]
        lead = -np.median(item.age[breaches & within])
        hours = lead / 3600
        if hours >= 0.9 and abs(hours - round(hours)) < 0.1:
            return "timezone shift", (
                f"timezone shift: values stamped {round(hours)} h after the time they were served "
                f"({counts['future_share'][0]} rows)"
            )
        return "values differ", (
            f"clock skew: values stamped {lead:.0f} s after the time they were served "
            f"({counts['future_share'][0]} rows)"
        )
    if "stale_share" in skewed:
        breaches, _ = aged["stale_share"]
        ages = item.age[breaches & within]
        return "stale value", (
            f"stale value: {counts['stale_share'][0]} served values older than the ttl of "
            f"{_seconds(item.ttl)} (median age {_seconds(float(np.median(ages)))})"
        )
    masks = {m: (v if mask is None else v & mask) for m, v in item.masks().items()}
    disagreeing = masks["mismatch_share"] | masks["missing_share"] | masks["extra_share"]
    total = int(disagreeing.sum())
    mismatched = np.flatnonzero(masks["mismatch_share"])
    if "mismatch_share" in skewed and item.numeric() and len(mismatched):
        factor, share = _constant_factor(item, mismatched)
        if factor is not None and share >= NAMED_SHARE:
            return "unit mismatch", (
                f"unit mismatch: served ≈ {_factor(factor)}× the offline value in {share:.0%} "
                f"of {total} disagreeing rows"
            )
    if skewed & {"mismatch_share", "extra_share"}:
        default, share = _constant_served(item, masks["mismatch_share"] | masks["extra_share"])
        if default is not None and share >= NAMED_SHARE and _is_default(default):
            return "default-filled nulls", (
                f"default-filled nulls: {default!r} served where the offline value is null or "
                f"differs, in {share:.0%} of {total} disagreeing rows"
            )
    if "missing_share" in skewed and counts["missing_share"][0] >= NAMED_SHARE * total:
        return "default-filled nulls", (
            f"default-filled nulls: null served where the offline value exists "
            f"({counts['missing_share'][0]} rows)"
        )
    if "mismatch_share" in skewed and item.numeric() and len(mismatched):
        below = float(np.mean(_floats(item.served)[mismatched] < _floats(item.offline)[mismatched]))
        if below >= NAMED_SHARE:
            return "truncated window", (
                f"truncated window: served below the offline value in {below:.0%} of "
                f"{len(mismatched)} mismatched rows (the online window misses events the "
                "offline one counts)"
            )
    if "unanswered_share" in skewed and counts["unanswered_share"][0] >= NAMED_SHARE * (
        total + counts["unanswered_share"][0]
    ):
        return "truth unavailable", (
            f"truth unavailable: the offline truth could not answer "
            f"{counts['unanswered_share'][0]} rows"
        )
    named = ", ".join(f"{m.removesuffix('_share')} {counts[m][0]}" for m in SHARES if m in skewed)
    return (
        "values differ",
        f"values differ: {named} of {len(item.served) if mask is None else int(mask.sum())} rows",
    )


def _constant_factor(item: _Compared, rows: np.ndarray) -> tuple[float | None, float]:
    """The factor served/offline shared by most mismatched rows (within 2%), if any."""
    served, offline = _floats(item.served)[rows], _floats(item.offline)[rows]
    usable = np.isfinite(served) & np.isfinite(offline) & (served != 0) & (offline != 0)
    if usable.sum() == 0:
        return None, 0.0
    ratio = np.log10(np.abs(served[usable] / offline[usable]))
    centre = float(np.median(ratio))
    share = float(np.mean(np.abs(ratio - centre) < 0.01)) * usable.sum() / len(rows)
    if abs(centre) < 0.5:  # within ×3: not a unit
        return None, 0.0
    return 10**centre, float(share)


def _factor(factor: float) -> str:
    power = math.log10(factor)
    if abs(power - round(power)) < 0.01:
        value = 10 ** round(power)
        return f"{value:g}" if value < 1 else f"{value:,.0f}"
    return f"{factor:.3g}"


def _constant_served(item: _Compared, mask: np.ndarray) -> tuple[Any, float]:
    """The one served value most of the masked rows hold, and their share."""
    rows = np.flatnonzero(mask & item.served_valid)
    if len(rows) == 0:
        return None, 0.0
    counts = pc.value_counts(item.served.take(pa.array(rows)))
    top = int(np.argmax(counts.field("counts").to_numpy()))
    value = counts.field("values")[top].as_py()
    return value, float(counts.field("counts")[top].as_py()) / int(mask.sum())


def _is_default(value: Any) -> bool:
    return value in (0, -1, "", "unknown", "UNKNOWN", "none", "None", "null", False)


# --- Results ------------------------------------------------------------------------------


def _share_results(
    item: _Compared, spec: SkewSpec, segment: str | None, mask: np.ndarray | None
) -> list[Result]:
    kind, finding = (item.kind, item.finding) if mask is None else _cheap_kind(item, spec, mask)
    if mask is not None and kind is None:
        kind, finding = None, None
    elif mask is not None and item.kind == "timezone shift":
        kind, finding = item.kind, item.finding
    results = []
    masks = item.masks()
    aged = item.aged() or {}
    for metric, (breaches, rows) in _counts(item, mask).items():
        share = breaches / rows if rows else None
        lower = float(wilson_lower(breaches, rows)) if rows else None
        status = (
            "insufficient_data"
            if not rows
            else "alert"
            if lower is not None and lower > spec.tolerance
            else "ok"
        )
        details: dict[str, Any] = {
            "truth": item.truth,
            "rows": rows,
            "count": breaches,
            "lower_bound": lower,
            "confidence": f"{CONFIDENCE:.0%} one-sided Wilson",
        }
        if metric == "mismatch_share":
            details["within_clock_tolerance"] = int(
                (item.clock_tolerated if mask is None else item.clock_tolerated & mask).sum()
            )
        if metric in ("stale_share", "future_share"):
            details["ttl_seconds"] = item.ttl
            details["age_seconds"] = _quantiles(
                item.age[~np.isnan(item.age) & (True if mask is None else mask)]
            )
        if status == "alert":
            breaching = masks.get(metric)
            if breaching is None:
                breaching = aged[metric][0]
            if mask is not None:
                breaching = breaching & mask
            details["kind"], details["finding"] = kind, finding
            details["examples"] = [
                str(v)
                for v in item.request_ids.take(pa.array(np.flatnonzero(breaching)[:5])).to_pylist()
            ]
        results.append(
            Result(
                CHECK,
                item.feature,
                metric,
                None if share is None else float(share),
                spec.tolerance,
                status,
                segment=segment,
                details=details,
            )
        )
    return results


def _description_results(
    item: _Compared, segment: str | None, mask: np.ndarray | None = None, distances: bool = True
) -> list[Result]:
    both = item.served_valid & item.offline_valid & item.answered
    if mask is not None:
        both &= mask
    results = []
    if item.numeric():
        served, offline = _floats(item.served)[both], _floats(item.offline)[both]
        finite = np.isfinite(served) & np.isfinite(offline)
        served, offline = served[finite], offline[finite]
        delta = served - offline
        scale = (np.abs(served) + np.abs(offline)) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = np.where(scale > 0, np.abs(delta) / scale, 0.0)
        mismatched = ~item.equal[both][finite]
        results.append(
            Result(
                CHECK,
                item.feature,
                "smape",
                float(terms.mean()) if len(terms) else None,
                None,
                "ok" if len(terms) else "insufficient_data",
                segment=segment,
                details={
                    "truth": item.truth,
                    "rows": int(len(terms)),
                    "delta_quantiles": _quantiles(delta),
                    "mismatch_delta_quantiles": _quantiles(delta[mismatched]),
                    "reason": "description: symmetric mean absolute percentage error (0–2)",
                },
            )
        )
    if not distances:
        return results
    from keel.stats.methods import compute
    from keel.stats.samples import CategoricalSample, NumericSample

    served_rows = item.served_valid & item.answered
    offline_rows = item.offline_valid & item.answered
    if item.numeric():
        kind = "numeric"
        served_side = NumericSample.from_values(_floats(item.served)[served_rows])
        offline_side = NumericSample.from_values(_floats(item.offline)[offline_rows])
    else:
        kind = "categorical"
        served_side = CategoricalSample.from_values(
            pc.cast(item.served.filter(pa.array(served_rows)), pa.string())
        )
        offline_side = CategoricalSample.from_values(
            pc.cast(item.offline.filter(pa.array(offline_rows)), pa.string())
        )
    for name in DISTANCES[kind]:
        usable = served_side.count > 0 and offline_side.count > 0
        value = compute(name, offline_side, served_side).statistic if usable else None
        value = None if value is None or value != value else float(value)
        results.append(
            Result(
                CHECK,
                item.feature,
                name,
                value,
                None,
                "ok" if value is not None else "insufficient_data",
                segment=segment,
                details={"truth": item.truth, "reference": "offline", "reason": PAIRED},
            )
        )
    return results


def _segments(served: pa.Table, column: str | None, cap: int) -> list[tuple[str, np.ndarray]]:
    if column is None:
        return []
    if column not in served.column_names:
        raise SchemaError(f"the served log has no segment column {column!r}")
    values = pc.cast(_array(served.column(column)), pa.string())
    counts = pc.value_counts(values.drop_null())
    pairs = sorted(
        zip(counts.field("counts").to_pylist(), counts.field("values").to_pylist(), strict=True),
        key=lambda pair: (-pair[0], pair[1]),
    )[:cap]
    return [
        (
            f"{column}={value}",
            pc.fill_null(pc.equal(values, value), False).to_numpy(zero_copy_only=False),
        )
        for _, value in pairs
    ]


# --- small helpers ------------------------------------------------------------------------


def _array(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    elif not isinstance(values, pa.Array):
        values = pa.array(values)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return "int"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind):
        return "float"
    return "text"


def _valid(values: pa.Array) -> np.ndarray:
    return pc.is_valid(values).to_numpy(zero_copy_only=False)


def _ints(values: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False)


def _floats(values: pa.Array) -> np.ndarray:
    if pa.types.is_null(values.type):
        return np.full(len(values), np.nan)
    as_float = pc.cast(values, pa.float64(), safe=False)
    return pc.fill_null(as_float, float("nan")).to_numpy(zero_copy_only=False)


def _utc(column: Any, name: str) -> pa.Array:
    from keel.windows import utc_times

    return _array(utc_times(_array(column), name))


def _micros(column: Any) -> np.ndarray:
    """Epoch microseconds as float (nan where null)."""
    values = pc.cast(_array(column), pa.int64())
    return pc.fill_null(pc.cast(values, pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def _quantiles(values: np.ndarray) -> dict[str, float] | None:
    values = values[np.isfinite(values)] if len(values) else values
    if len(values) == 0:
        return None
    levels = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    found = np.quantile(values, levels)
    return {
        "min": float(values.min()),
        **{f"p{round(q * 100)}": float(v) for q, v in zip(levels, found, strict=True)},
        "max": float(values.max()),
    }


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 86400 and value % 86400 == 0:
        return f"{value / 86400:g} d"
    if value >= 3600:
        return f"{value / 3600:.3g} h"
    if value >= 60:
        return f"{value / 60:.3g} min"
    return f"{value:.3g} s"


def _quote(name: str | None) -> str:
    return '"' + str(name).replace('"', '""') + '"'
