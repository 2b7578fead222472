"""From the gateway's logs to the paired arrays the gate takes (``keel.retrain.gate``).

``read_shadow_pairs(root, model, challenger_version, as_of=...)`` reads three logs of one
model with one DuckDB query: the champion's (``predictions/model=NAME``), the shadows'
(``predictions/model=NAME.shadow``, format ``keel.serve/1``) and the labels
(``labels/model=NAME``). It keeps

- in the shadow log, only the rows of ``challenger_version`` (another challenger's
  answers are not this one's), the latest record per request id, with event time before
  ``as_of``; a drop logged with no version (the challenger never loaded) counts too, so a
  drop is never left out of the count;
- in the champion's log, the rows answered by the champion (``role`` champion: a canary's
  answer is not the champion's), the latest per request id;
- in the label log, the latest label per request id, **matured as of** ``as_of``: its
  event time at least ``maturity`` before ``as_of`` (as the retrain job selects its
  rows); with ``point_in_time=True``, also ingested by ``as_of`` (a replay of the past).

A pair is a request the challenger answered, the champion answered and a matured label
labels. A shadow row with ``shadow_dropped`` set (or no prediction) is a **drop**: it is
counted (``dropped``, ``drop_share``, for ``max_shadow_drop_share``) and never paired, so
the gate never compares on a sample the gateway chose without saying so. Every count is
a column operation over Arrow arrays; no Python loop touches a row. The model's
tombstones (``keel logs forget``) hide forgotten rows of all three logs, as every other
read of the logs does.

>>> import tempfile, datetime as dt
>>> from keel.store.logs import LogWriter
>>> root, t = tempfile.mkdtemp(), dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC)
>>> with LogWriter(root, "predictions", model="loans") as w:
...     w.append([{"request_id": r, "event_time": t, "role": "champion", "model_version": "1",
...                "prediction": 1, "score": 0.7} for r in "abc"])
3
>>> with LogWriter(root, "predictions", model="loans.shadow") as w:
...     w.append([{"request_id": r, "event_time": t, "role": "shadow", "model_version": "2",
...                "prediction": p, "score": 0.6, "shadow_dropped": d}
...               for r, p, d in (("a", 1, None), ("b", 0, None), ("c", None, "timeout"))])
3
>>> with LogWriter(root, "labels", model="loans") as w:
...     w.append([{"request_id": r, "event_time": t, "label": 1} for r in "abc"])
3
>>> pairs = read_shadow_pairs(root, "loans", "2", as_of=t + dt.timedelta(days=1))
>>> pairs.n, pairs.shadowed, pairs.dropped, round(pairs.drop_share, 3)
(2, 3, 1, 0.333)
>>> pairs.request_ids.tolist(), pairs.challenger.predictions.tolist(), pairs.labels.tolist()
(['a', 'b'], [1, 0], [1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import DataError
from keel.retrain.gate import Outcomes

SHADOW_SUFFIX = ".shadow"


@dataclass(frozen=True)
class ShadowPairs:
    """The paired arrays (aligned, in the champion's event-time order) and the counts.

    ``shadowed``: the challenger version's shadow rows (answered or dropped) up to
    ``as_of``; ``dropped``: those without an answer; ``unpaired``: answered but with no
    champion answer (not logged, or a canary's); ``unlabelled``: answered by both with no
    label matured as of ``as_of``. ``reasons``: drops by ``shadow_dropped`` reason.
    """

    request_ids: np.ndarray
    champion: Outcomes
    challenger: Outcomes
    labels: np.ndarray
    segments: np.ndarray | None
    entities: np.ndarray | None
    shadowed: int
    dropped: int
    unpaired: int
    unlabelled: int
    champion_versions: tuple[str, ...] = ()
    reasons: dict[str, int] = field(default_factory=dict)
    #: The first request both answered, and the share of the requests of the day from it
    #: on which the two predictions differ (no labels needed: the horizon's ψ).
    first_answer: datetime | None = None
    first_day_discordant: float | None = None
    first_day_answers: int = 0
    #: p99 of ``latency_ms`` over the requests both answered: the champion's (the whole
    #: request) and the shadow's (the challenger's own predict time); None when not logged.
    champion_latency_p99: float | None = None
    shadow_latency_p99: float | None = None

    @property
    def n(self) -> int:
        """Matured paired labels."""
        return len(self.request_ids)

    @property
    def drop_share(self) -> float:
        """Dropped shadow requests over all the challenger's shadowed requests (0 when none)."""
        return self.dropped / self.shadowed if self.shadowed else 0.0

    def counts(self) -> dict[str, Any]:
        """The counts as plain data (for the decision record)."""
        return {
            "paired": self.n,
            "shadowed": self.shadowed,
            "dropped": self.dropped,
            "drop_share": self.drop_share,
            "drop_reasons": dict(self.reasons),
            "unpaired": self.unpaired,
            "unlabelled": self.unlabelled,
            "champion_versions": list(self.champion_versions),
            "first_answer": self.first_answer.isoformat() if self.first_answer else None,
            "first_day_discordant": self.first_day_discordant,
            "first_day_answers": self.first_day_answers,
            "champion_latency_p99_ms": self.champion_latency_p99,
            "shadow_latency_p99_ms": self.shadow_latency_p99,
        }


def read_shadow_pairs(
    root: str | Path,
    model: str,
    challenger_version: str | int,
    *,
    as_of: datetime,
    label: str = "label",
    maturity: timedelta = timedelta(0),
    start: datetime | None = None,
    entity: str | None = None,
    segment: str | None = None,
    point_in_time: bool = False,
    labels_as_of: datetime | None = None,
) -> ShadowPairs:
    """The pairs of one challenger version against the champion (see the module docstring).

    ``label``: the label log's column; ``maturity``: how long after its event time a label
    is final; ``start``: ignore shadow rows before it; ``entity`` / ``segment``: champion-log
    columns (each served input is logged) giving entity ids for clustering and segments;
    ``point_in_time``: only labels ingested by ``as_of`` count; ``labels_as_of``: judge
    the labels' maturity (and ingestion) as of this time instead of ``as_of`` (a window's
    requests, up to its end, with the labels matured by now).
    """
    from keel.store.queries import ORDERED, log_files

    as_of = _utc(as_of)
    shadow_files = log_files(root, "predictions", model + SHADOW_SUFFIX, start, as_of)
    # The champion answers a request before the shadow does: a day's slack either side.
    early = start - timedelta(days=1) if start else None
    champion_files = log_files(root, "predictions", model, early, as_of + timedelta(days=1))
    label_files = log_files(root, "labels", model)
    if not shadow_files:
        return _empty(0, 0, {})
    version = str(challenger_version)
    champion_columns = _columns(champion_files)
    for name, column in (("entity", entity), ("segment", segment)):
        if column is not None and column not in champion_columns:
            raise DataError(
                f"the {name} column {column!r} is not in model {model!r}'s prediction log"
            )
    role = "AND CAST(role AS VARCHAR) = 'champion'" if "role" in champion_columns else ""
    extra = "".join(
        f", {_name(c)} AS _{n}" for n, c in (("entity", entity), ("segment", segment)) if c
    )
    champion_score = "score" if "score" in champion_columns else "NULL"
    shadow_columns = _columns(shadow_files)
    shadow_score = "score" if "score" in shadow_columns else "NULL"
    latency = "CAST(latency_ms AS DOUBLE)"
    shadow_latency = latency if "latency_ms" in shadow_columns else "CAST(NULL AS DOUBLE)"
    champion_latency = latency if "latency_ms" in champion_columns else "CAST(NULL AS DOUBLE)"
    have_labels = bool(label_files) and label in _columns(label_files) and champion_files
    labelled = ""
    if have_labels:
        ingested = point_in_time and "_ingested_at" in _columns(label_files)
        labelled = f"""
        , l AS (
            SELECT request_id, {_name(label)} AS _label, event_time AS _label_time
            FROM read_parquet($labels, {ORDERED})
            WHERE {_name(label)} IS NOT NULL AND event_time <= $matured
            {"AND _ingested_at <= $labels_as_of" if ingested else ""}
            QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY _ingested_at DESC,
                _keel_file DESC, file_row_number DESC) = 1
        )"""
    champion = ""
    if champion_files:
        champion = f"""
        , p AS (
            SELECT request_id, event_time AS _champion_time, prediction AS _champion_prediction,
                {champion_score} AS _champion_score,
                {champion_latency} AS _champion_latency,
                CAST(model_version AS VARCHAR) AS _champion_version{extra}
            FROM read_parquet($champion, {ORDERED})
            WHERE event_time IS NOT NULL {role}
            QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY _ingested_at DESC,
                _keel_file DESC, file_row_number DESC) = 1
        )"""
    join = ("LEFT JOIN p USING (request_id) " if champion else "") + (
        "LEFT JOIN l USING (request_id)" if labelled else ""
    )
    sql = f"""
        WITH s AS (
            SELECT request_id, event_time AS _shadow_time, prediction AS _shadow_prediction,
                {shadow_score} AS _shadow_score, {shadow_latency} AS _shadow_latency,
                CAST(shadow_dropped AS VARCHAR) AS _dropped
            FROM read_parquet($shadow, {ORDERED})
            WHERE event_time IS NOT NULL AND event_time < $as_of
                AND (CAST(model_version AS VARCHAR) = $version
                     OR (model_version IS NULL AND shadow_dropped IS NOT NULL))
                {"AND event_time >= $start" if start else ""}
            QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY _ingested_at DESC,
                _keel_file DESC, file_row_number DESC) = 1
        ){champion}{labelled}
        SELECT * FROM s {join}
        ORDER BY {"_champion_time, " if champion else ""}_shadow_time, request_id
    """
    parameters: dict[str, Any] = {"shadow": shadow_files, "as_of": as_of, "version": version}
    if start:
        parameters["start"] = _utc(start)
    if champion:
        parameters["champion"] = champion_files
    if labelled:
        parameters["labels"] = label_files
        labels_at = _utc(labels_as_of) if labels_as_of is not None else as_of
        parameters["matured"] = labels_at - maturity
        if ingested:
            parameters["labels_as_of"] = labels_at
    table = _run(sql, parameters, shadow_files + champion_files + label_files, root, model)
    return _pairs(table, entity is not None, segment is not None)


def _pairs(table: pa.Table, with_entity: bool, with_segment: bool) -> ShadowPairs:
    names = set(table.column_names)
    dropped = pc.or_(pc.is_valid(table["_dropped"]), pc.is_null(table["_shadow_prediction"]))
    reasons_table = table.filter(dropped).group_by("_dropped").aggregate([("request_id", "count")])
    reasons = {
        str(reason) if reason is not None else "no prediction": int(count)
        for reason, count in zip(
            reasons_table["_dropped"].to_pylist(),
            reasons_table["request_id_count"].to_pylist(),
            strict=True,
        )
    }
    answered = table.filter(pc.invert(dropped))
    if "_champion_prediction" in names:
        both = answered.filter(pc.is_valid(answered["_champion_prediction"]))
    else:
        both = answered.slice(0, 0)
    paired = both.filter(pc.is_valid(both["_label"])) if "_label" in names else both.slice(0, 0)
    versions: tuple[str, ...] = ()
    if "_champion_version" in names and paired.num_rows:
        versions = tuple(sorted(str(v) for v in pc.unique(paired["_champion_version"]).to_pylist()))

    def array(name: str) -> np.ndarray | None:
        if name not in names or not paired.num_rows:
            return None if name not in names else np.asarray([])
        column = paired[name]
        return None if column.null_count == len(column) else column.to_numpy(zero_copy_only=False)

    counts = (table.num_rows, int(pc.sum(dropped).as_py() or 0))
    first: dict[str, Any] = {}
    for name, key in (("_champion_latency", "champion"), ("_shadow_latency", "shadow")):
        if name in names and both.num_rows and both[name].null_count < both.num_rows:
            p99 = pc.quantile(both[name], q=0.99, interpolation="linear")[0].as_py()
            first[f"{key}_latency_p99"] = float(p99)
    if both.num_rows:
        start = pc.min(both["_shadow_time"])
        day = both.filter(
            pc.less(both["_shadow_time"], pa.scalar(start.as_py() + timedelta(days=1), start.type))
        )
        differ = pc.not_equal(*_comparable(day["_champion_prediction"], day["_shadow_prediction"]))
        first |= {
            "first_answer": _utc(start.as_py()),
            "first_day_discordant": float(pc.mean(pc.cast(differ, pa.float64())).as_py()),
            "first_day_answers": day.num_rows,
        }
    if not paired.num_rows:
        result = _empty(*counts, reasons)
        return ShadowPairs(
            **{
                **result.__dict__,
                "unpaired": answered.num_rows - both.num_rows,
                "unlabelled": both.num_rows,
                **first,
            }
        )
    return ShadowPairs(
        request_ids=paired["request_id"].to_numpy(zero_copy_only=False).astype(str),
        champion=Outcomes(array("_champion_prediction"), array("_champion_score")),
        challenger=Outcomes(array("_shadow_prediction"), array("_shadow_score")),
        labels=array("_label"),
        segments=array("_segment").astype(str) if with_segment else None,
        entities=array("_entity") if with_entity else None,
        shadowed=counts[0],
        dropped=counts[1],
        unpaired=answered.num_rows - both.num_rows,
        unlabelled=both.num_rows - paired.num_rows,
        champion_versions=versions,
        reasons=reasons,
        **first,
    )


def _empty(shadowed: int, dropped: int, reasons: dict[str, int]) -> ShadowPairs:
    nothing = np.asarray([])
    return ShadowPairs(
        request_ids=nothing.astype(str),
        champion=Outcomes(nothing),
        challenger=Outcomes(nothing),
        labels=nothing,
        segments=None,
        entities=None,
        shadowed=shadowed,
        dropped=dropped,
        unpaired=0,
        unlabelled=0,
        reasons=reasons,
    )


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Both as float64 when both are numbers (1 and 1.0 agree), else both as text."""
    numeric = all(
        pa.types.is_integer(x.type) or pa.types.is_floating(x.type) or pa.types.is_boolean(x.type)
        for x in (a, b)
    )
    kind = pa.float64() if numeric else pa.string()
    return pc.cast(a, kind), pc.cast(b, kind)


def _name(column: str) -> str:
    """A column name quoted for DuckDB (a quote inside is doubled)."""
    return '"' + column.replace('"', '""') + '"'


def _columns(files: list[str]) -> set[str]:
    import pyarrow.parquet as pq

    return {name for file in files for name in pq.read_schema(file).names}


def _run(sql: str, parameters: dict, files: list[str], root, model: str) -> pa.Table:
    from keel.store import queries

    return queries._query(sql, parameters, files, (root, model))  # noqa: SLF001 - tombstones


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
