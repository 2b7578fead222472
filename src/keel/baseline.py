"""Baseline: what production is compared to, recorded once and never edited.

A baseline holds the schema, a reference profile (KLL k=1024 sketches, exact
counts in bins fixed at the reference's quantiles), a bounded uniform sample
of reference rows, the model's holdout metrics and lineage, and a
fingerprint of every row of the data plus the configuration. It is one
versioned, checksummed file; see docs/formats.md.

>>> import numpy as np, pandas as pd, tempfile, pathlib
>>> frame = pd.DataFrame({"age": np.arange(100.0), "label": [0, 1] * 50})
>>> baseline = Baseline.from_data(frame, target="label", sample_size=10)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.baseline"
>>> baseline.save(path)
>>> loaded = Baseline.load(path)
>>> loaded.id == baseline.id, loaded.schema["label"].role, loaded.sample.num_rows
(True, 'target', 10)
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from keel import __version__, _container
from keel.engines.reference import summarize_batch
from keel.errors import DataError, FormatError, KeelError
from keel.fingerprint import CONTENT_DIGEST, ContentFingerprint
from keel.profile import NumericProfile, Profile
from keel.profile.numeric import counts_in_bins
from keel.profile.profile import profile_kind
from keel.sample import HashSample
from keel.schema import Schema
from keel.stats.binning import DEFAULT_BINS, quantile_edges
from keel.stats.samples import NumericSample

#: 4: unstructured columns (embeddings, texts, images; ``keel.profile.unstructured``), their
#: fitted state in an ``unstructured`` blob (written only by baselines that have such columns;
#: the others are still written as 3);
#: 3: the data digest is order-independent (``keel.fingerprint.ContentFingerprint``) and
#: the sample a bottom-k by hash (``keel.sample.HashSample``); 2: keel quantile sketches;
#: 1: DataSketches KLL. Every older version still reads.
FORMAT_VERSION = 4
_KIND = b"BASE"
DEFAULT_SAMPLE_SIZE = 10_000


@dataclass
class Baseline:
    schema: Schema
    profile: Profile
    sample: pa.Table | None
    bin_edges: dict[str, np.ndarray]
    fingerprint: str
    config: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    source: str = ""
    #: What a person should know about the reference ("a few extreme values set the scale of
    #: x"); written when the baseline is made, not part of its identity.
    notes: list[str] = field(default_factory=list)
    #: The estimator, support reference and label distribution fitted on the labelled
    #: holdout (``keel.estimation.HoldoutFit``); None without a holdout.
    holdout: Any = field(default=None, compare=False, repr=False)
    #: The embedding, text and image columns and what was fitted on the reference for them
    #: (``keel.profile.unstructured.Unstructured``); None for a table of plain columns.
    unstructured: Any = field(default=None, compare=False, repr=False)
    #: The file it was loaded from or saved to (where fits made on it are kept); not stored.
    path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        """Short identifier: the first 16 hex digits of the fingerprint."""
        return self.fingerprint[:16]

    @property
    def rows(self) -> int:
        return self.profile.rows

    @classmethod
    def from_data(
        cls,
        data: Any,
        *,
        target: str | None = None,
        prediction: str | None = None,
        score: str | None = None,
        timestamp: str | None = None,
        id: str | None = None,  # noqa: A002 - the role's name
        roles: Mapping[str, str] | None = None,
        kinds: Mapping[str, str] | None = None,
        bins: int = DEFAULT_BINS,
        sketch_k: int = 1024,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        seed: int = 0,
        metrics: Mapping[str, float] | None = None,
        lineage: Mapping[str, Any] | None = None,
        on_batch: Callable[[int], None] | None = None,
        start: str | None = None,
        end: str | None = None,
        holdout: Any = None,
        reference_is_holdout: bool = False,
        task: str | None = None,
        classes: list | None = None,
        embeddings: list[str] | None = None,
        texts: list[str] | None = None,
        images: list[str] | None = None,
    ) -> Baseline:
        """Record a baseline from reference data (any input ``keel.data.open_source`` takes).

        Reads the data twice, batch by batch: once for the profile, the sample
        and the fingerprint, once more for exact counts in the bins fixed from
        the first pass's quantiles. ``on_batch`` gets each batch's row count.
        ``start`` and ``end`` (ISO times, UTC unless they say otherwise) keep only
        the rows with ``start <= timestamp < end``: a trusted production period
        makes a baseline as well as a training set does.

        ``holdout`` (rows the model did not learn from, any input ``open_source``
        takes), or ``reference_is_holdout=True``, gives the baseline its holdout metrics
        with intervals (``keel.performance.holdout_metrics``; ``metrics`` given here win)
        and fits the performance estimator there (``keel.estimation.fit_holdout``), as
        ``keel baseline create --holdout`` does. ``task`` is binary, multiclass or
        regression (inferred as the CLI does); multiclass scores are ``<score>_<class>``
        for each of ``classes``.

        ``embeddings``, ``texts`` and ``images`` name unstructured columns
        (``keel.profile.unstructured``): each becomes a sample of vectors for the MMD test
        (at most 2,000, by content hash), texts and images also gain derived numeric
        columns (``comment.length``, ``photo.brightness``, …) profiled like any other;
        what is fitted on the reference (an embedding's dimension, a text column's
        vocabulary and TF-IDF + SVD vectorizer) is stored in the baseline (format 4).
        """
        from keel.data import open_source
        from keel.profile.unstructured import declared

        special = declared(embeddings, texts, images)
        unstructured = None
        if special:
            from keel.profile.unstructured import Unstructured

            unstructured = Unstructured.fit(data, special, seed=seed)
            source = unstructured.expand(data, reference=True)
            kinds = {**(kinds or {}), **unstructured.kinds()}
            roles = {**dict.fromkeys(special, "feature"), **(roles or {})}
        else:
            source = open_source(data)
        score_prefix = score
        if classes and score:  # multiclass: one score column per class
            roles = {**(roles or {}), **{f"{score}_{c}": "score" for c in classes}}
            score = None
        named = {
            "target": target,
            "prediction": prediction,
            "score": score,
            "timestamp": timestamp,
            "id": id,
        }
        all_roles = _validated_roles(named, roles)
        if unstructured is None:
            schema = Schema.infer(source, roles=all_roles, kinds=kinds)
        else:  # inferred from the plain columns: images are not decoded to name kinds
            schema = unstructured.infer_schema(data, all_roles, kinds or {})
        _check_roles(schema, all_roles)
        if start is not None or end is not None:
            source = _period(source, schema, start, end)
        profile = Profile.empty(schema, sketch_k=sketch_k)
        sample, fingerprint = HashSample(sample_size, seed), ContentFingerprint()
        for batch in source.batches():
            if unstructured is None:
                summarize_batch(batch, profile, sample, fingerprint)
            else:
                _summarize_unstructured(batch, profile, sample, fingerprint, special)
            if on_batch is not None:
                on_batch(batch.num_rows)
        bin_edges = reference_edges(profile, bins)
        _count_in_bins(source, profile, bin_edges)
        return cls._recorded(
            source.name,
            schema,
            profile,
            sample,
            fingerprint,
            bin_edges,
            all_roles,
            kinds,
            bins,
            sketch_k,
            sample_size,
            seed,
            metrics,
            lineage,
            start,
            end,
            (source, holdout, reference_is_holdout, target, score_prefix, prediction),
            task,
            classes,
            unstructured,
        )

    @classmethod
    def from_spark(
        cls,
        frame: Any,
        *,
        target: str | None = None,
        prediction: str | None = None,
        score: str | None = None,
        timestamp: str | None = None,
        id: str | None = None,  # noqa: A002 - the role's name
        roles: Mapping[str, str] | None = None,
        kinds: Mapping[str, str] | None = None,
        bins: int = DEFAULT_BINS,
        sketch_k: int = 1024,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        seed: int = 0,
        metrics: Mapping[str, float] | None = None,
        lineage: Mapping[str, Any] | None = None,
        name: str = "Spark DataFrame",
    ) -> Baseline:
        """Record a baseline from a Spark DataFrame (``keel[spark]``), partition by partition.

        The same as ``from_data`` of the same rows whatever the partitioning: counts, bins,
        category counts, the fingerprint and the sample exactly, moments to 1e-12 relative,
        quantiles within the sketches' error. Each partition is profiled, fingerprinted and
        sampled through ``mapInArrow``; the driver merges the parts, fixes the bins at the
        reference's quantiles, and a second pass counts every partition in them. Columns of
        a Spark type keel does not profile are left out with a warning that names them.
        Holdout fits are made from local data (``from_data``).
        """
        from keel.engines.spark import baseline_parts

        named = {
            "target": target,
            "prediction": prediction,
            "score": score,
            "timestamp": timestamp,
            "id": id,
        }
        all_roles = _validated_roles(named, roles)
        schema, profile, sample, fingerprint, counter = baseline_parts(
            frame, all_roles, kinds, sketch_k, sample_size, seed
        )
        _check_roles(schema, all_roles)
        bin_edges = reference_edges(profile, bins)
        for column, counts in counter(bin_edges).items():
            profile.columns[column].bin_edges = bin_edges[column]
            profile.columns[column].bin_counts = counts
        return cls._recorded(
            name,
            schema,
            profile,
            sample,
            fingerprint,
            bin_edges,
            all_roles,
            kinds,
            bins,
            sketch_k,
            sample_size,
            seed,
            metrics,
            lineage,
            None,
            None,
            None,
            None,
            None,
        )

    @classmethod
    def _recorded(
        cls,
        source_name: str,
        schema: Schema,
        profile: Profile,
        sample: HashSample,
        fingerprint: ContentFingerprint,
        bin_edges: dict[str, np.ndarray],
        all_roles: dict[str, str],
        kinds: Mapping[str, str] | None,
        bins: int,
        sketch_k: int,
        sample_size: int,
        seed: int,
        metrics: Mapping[str, float] | None,
        lineage: Mapping[str, Any] | None,
        start: str | None,
        end: str | None,
        holdout_from: tuple | None,
        task: str | None,
        classes: list | None,
        unstructured: Any = None,
    ) -> Baseline:
        """The baseline of a reference already profiled, sampled and fingerprinted."""
        from keel.data import open_source

        if profile.rows == 0:
            period = f" between {start} and {end}" if start or end else ""
            raise DataError(f"{source_name}: no rows to make a baseline of{period}")
        config = {
            "period": [start, end],
            "bins": bins,
            "sketch_k": sketch_k,
            "sample_size": sample_size,
            "seed": seed,
            "roles": all_roles,
            "kinds": dict(kinds or {}),
            "digest": CONTENT_DIGEST,
        }
        if unstructured is not None:  # what was fitted is part of the baseline's identity
            state = json.dumps(unstructured.state(), sort_keys=True).encode()
            config["unstructured"] = {
                "roles": dict(unstructured.roles),
                "state_digest": hashlib.sha256(state).hexdigest(),
            }
        fit, metrics = None, dict(metrics or {})
        source, holdout, reference_is_holdout, target, score_prefix, prediction = holdout_from or (
            (None,) * 6
        )
        if target and (holdout is not None or reference_is_holdout):
            if not reference_is_holdout:
                holdout = open_source(holdout)
                holdout = unstructured.expand(holdout) if unstructured is not None else holdout
            rows = _holdout_rows(source if reference_is_holdout else holdout)
            task = task or _task(score_prefix, prediction, classes)
            classes = _typed_classes(classes, rows, target)
            config["holdout"] = {
                "task": task,
                "rows": rows.num_rows,
                "digest": _digest(rows),
                "is_reference": bool(reference_is_holdout),
            }
        configured = hashlib.sha256(
            (fingerprint.hexdigest() + json.dumps(config, sort_keys=True)).encode()
        ).hexdigest()
        if "holdout" in config:
            from keel.estimation import fit_holdout
            from keel.performance import holdout_metrics
            from keel.seeds import derive_seed

            metrics = holdout_metrics(rows, task, target, score_prefix, prediction, classes) | (
                metrics
            )
            fit = fit_holdout(
                rows,
                task,
                target,
                score_prefix,
                prediction,
                classes,
                features=[c.name for c in schema.features if c.kind != "embedding"],
                seed=derive_seed(configured[:16], "holdout", task),
            )
        return cls(
            schema=schema,
            profile=profile,
            sample=sample.table(),
            bin_edges=bin_edges,
            fingerprint=configured,
            config=config | {"data_digest": fingerprint.hexdigest()},
            metrics=dict(metrics or {}),
            lineage=dict(lineage or {}),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            source=source_name,
            notes=_scale_notes(profile),
            holdout=fit,
            unstructured=unstructured,
        )

    def to_bytes(self) -> bytes:
        header = {
            "fingerprint": self.fingerprint,
            "created_at": self.created_at,
            "keel_version": __version__,
            "source": self.source,
            "rows": self.rows,
            "schema": self.schema.to_dict(),
            "bin_edges": {name: edges.tolist() for name, edges in self.bin_edges.items()},
            "config": self.config,
            "metrics": self.metrics,
            "lineage": self.lineage,
            "notes": self.notes,
        }
        blobs = {"profile": self.profile.to_bytes(), "sample": _table_to_ipc(self.sample)}
        if self.holdout is not None:
            header["holdout"] = self.holdout.meta()
            blobs["holdout"] = self.holdout.to_bytes()
        if self.unstructured is None:  # a table of plain columns: byte for byte as in format 3
            return _container.pack(_KIND, 3, header, blobs)
        blobs["unstructured"] = json.dumps(self.unstructured.state()).encode()
        header["unstructured"] = {"roles": self.unstructured.roles}
        return _container.pack(_KIND, FORMAT_VERSION, header, blobs)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "baseline") -> Baseline:
        header, blobs = _container.unpack(data, _KIND, FORMAT_VERSION, source)
        try:
            profile = Profile.from_bytes(blobs["profile"], source=f"{source} (profile)")
            sample = _table_from_ipc(blobs["sample"])
            fit = None
            if header.get("holdout") and "holdout" in blobs:
                from keel.estimation import HoldoutFit

                fit = HoldoutFit.from_bytes(header["holdout"], blobs["holdout"])
            unstructured = None
            if header.get("unstructured"):
                from keel.profile.unstructured import Unstructured

                unstructured = Unstructured.from_state(json.loads(blobs["unstructured"]))
            return cls(
                schema=Schema.from_dict(header["schema"]),
                profile=profile,
                sample=sample,
                bin_edges={
                    k: np.asarray(v, dtype=np.float64) for k, v in header["bin_edges"].items()
                },
                fingerprint=header["fingerprint"],
                config=header["config"],
                metrics=header.get("metrics", {}),
                lineage=header.get("lineage", {}),
                created_at=header.get("created_at", ""),
                source=header.get("source", ""),
                notes=list(header.get("notes", [])),
                holdout=fit,
                unstructured=unstructured,
            )
        except (KeyError, TypeError, ValueError, pa.ArrowInvalid) as error:
            raise FormatError(f"{source}: the baseline file is incomplete ({error})") from error

    def save(self, path: str | Path) -> None:
        from keel._files import write_atomically

        write_atomically(Path(path), self.to_bytes())
        self.path = Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Baseline:
        from keel._files import read_keel_file

        baseline = cls.from_bytes(read_keel_file(Path(path)), source=str(path))
        baseline.path = Path(path)
        return baseline

    def open_current(self, data: Any, *, reference: bool = False) -> Any:
        """Current data (any input ``keel.data.open_source`` takes) read as the reference was:
        its embedding, text and image columns expanded with what was fitted on the
        reference (``keel.profile.unstructured``); plain data as it is. ``reference``: the
        data is this baseline's reference itself (calibrating on it), whose texts that
        fitted the vectorizer are set aside as they were when the baseline was made.

        >>> import pandas as pd
        >>> Baseline.from_data(pd.DataFrame({"x": [1.0, 2.0]})).open_current(
        ...     pd.DataFrame({"x": [3.0]})).num_rows
        1
        """
        from keel.data import open_source

        if self.unstructured is None:
            return open_source(data)
        return self.unstructured.expand(data, reference=reference)

    def kept_beside(self, what: str, fit: Any) -> Any:
        """``fit(self)``, kept beside the baseline file as ``<file>.<what>.json``.

        A fit made on the baseline's sample (the diagnosis surrogate's importance)
        is made once per baseline, not once per process: later runs read the
        file. The file names the baseline id it was made for; another id, an
        unreadable file or no baseline file means fitting again (and writing the
        file when the folder is writable). ``fit`` returns JSON-ready data.
        """
        import contextlib
        import json

        from keel._files import write_atomically

        if self.path is None:
            return fit(self)
        beside = self.path.with_name(f"{self.path.name}.{what}.json")
        try:
            kept = json.loads(beside.read_text())
            if kept.get("format") == "keel.fit/v1" and kept.get("baseline_id") == self.id:
                return kept["value"]
        except (OSError, ValueError, AttributeError):
            pass
        value = fit(self)
        payload = {"format": "keel.fit/v1", "baseline_id": self.id, "what": what, "value": value}
        # A read-only folder: fitted again next time, never an error. Not sort_keys: the
        # value reads back in the order it was made (a sum over it rounds the same way).
        with contextlib.suppress(OSError, KeelError):
            write_atomically(beside, json.dumps(payload))
        return value

    def summary(self) -> dict[str, Any]:
        """What a person wants to know about a baseline, JSON-ready."""
        return {
            "id": self.id,
            "rows": self.rows,
            "created_at": self.created_at,
            "source": self.source,
            "notes": self.notes,
            "columns": [
                {"column": c.name, "kind": c.kind, "role": c.role, "profile": profile_kind(c)}
                for c in self.schema.columns
            ],
        }


def _summarize_unstructured(
    batch: pa.RecordBatch,
    profile: Profile,
    sample: HashSample,
    fingerprint: ContentFingerprint,
    special: Mapping[str, str],
) -> None:
    """``summarize_batch`` for a batch with vector columns: every column is profiled and
    fingerprinted, but the row sample leaves the vectors out (their own profile keeps a
    bounded sample of them; the multivariate checks and the surrogate read plain columns)."""
    from keel.fingerprint import row_hashes

    profile.update(batch)
    if not batch.num_rows:
        if fingerprint.columns is None:
            fingerprint.columns = list(batch.schema.names)
        return
    hashes = row_hashes(batch)
    plain = [n for n in batch.schema.names if n not in special]
    sample.update(batch.select(plain), hashes)
    fingerprint.update(batch, hashes)


def _task(score: str | None, prediction: str | None, classes: list | None) -> str:
    """The task the roles imply, as ``keel baseline create`` infers it."""
    if classes:
        return "multiclass"
    return "regression" if score is None and prediction is not None else "binary"


def _typed_classes(classes: list | None, rows: pa.Table, target: str) -> list | None:
    """Classes given as text (``--classes 0 1 2``) take the type of the target's labels."""
    if not classes or target not in rows.column_names:
        return classes
    kind = rows.column(target).type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        try:
            return [int(c) if pa.types.is_integer(kind) else float(c) for c in classes]
        except (TypeError, ValueError):
            return classes
    return [str(c) for c in classes]


def _holdout_rows(source: Any) -> pa.Table:
    """Every row of the holdout, as one table."""
    batches = list(source.batches())
    if not batches:
        raise DataError(f"{source.name}: the holdout has no rows")
    return pa.Table.from_batches(batches)


def _digest(table: pa.Table) -> str:
    fingerprint = ContentFingerprint()
    for batch in table.to_batches():
        fingerprint.update(batch)
    return fingerprint.hexdigest()


def reference_edges(profile: Profile, bins: int) -> dict[str, np.ndarray]:
    """Inner bin edges at each numeric column's reference quantiles."""
    return {
        name: quantile_edges(NumericSample.from_profile(column), bins)
        for name, column in profile.columns.items()
        if type(column) is NumericProfile and column.count
    }


def _validated_roles(
    named: Mapping[str, str | None], roles: Mapping[str, str] | None
) -> dict[str, str]:
    """Each column one role: naming a column twice (``target="y", score="y"``) is refused."""
    chosen: dict[str, str] = {}
    for role, column in named.items():
        if not column:
            continue
        if column in chosen and chosen[column] != role:
            raise DataError(
                f"column {column!r} is named as both the {chosen[column]} and the {role}: "
                "each column has one role"
            )
        chosen[column] = role
    for column, role in (roles or {}).items():
        if column in chosen and chosen[column] != role:
            raise DataError(
                f"column {column!r} is named as the {chosen[column]}, and roles= makes it "
                f"a {role}: each column has one role"
            )
        chosen[column] = role
    return chosen


def _check_roles(schema: Schema, roles: Mapping[str, str]) -> None:
    """Roles that cannot work are refused when the baseline is made, not weeks later."""
    for column, role in roles.items():
        if column not in schema:
            continue
        kind = schema[column].kind
        if role == "score" and kind != "numeric":
            raise DataError(
                f"column {column!r} is the score, but it holds {kind} values: a score is a "
                "number (a probability or a margin); name a label column as the prediction"
            )
        if role == "timestamp" and kind not in ("datetime", "numeric", "text", "categorical"):
            raise DataError(f"column {column!r} is the timestamp, but it holds {kind} values")


def _scale_notes(profile: Profile) -> list[str]:
    """Numeric columns whose standard deviation a few extreme values set (over 3× their
    robust scale IQR/1.349): named, since their Wasserstein distance is in robust units."""
    from keel.stats.wasserstein import reference_scale

    notes = []
    for name, column in profile.columns.items():
        if type(column) is not NumericProfile or column.count < 2:
            continue
        scale, basis = reference_scale(NumericSample.from_profile(column))
        if basis == "robust":
            notes.append(
                f"a few extreme values set the scale of {name} (standard deviation "
                f"{column.std:.3g}, robust scale {scale:.3g}): its Wasserstein distance is "
                "measured in robust scales"
            )
    return notes


def _count_in_bins(
    source: Any,
    profile: Profile,
    bin_edges: dict[str, np.ndarray],
) -> None:
    """Second pass: exact counts of every numeric column in its fixed bins."""
    if not bin_edges:
        return
    from keel.profile.profile import _to_float64

    counts = {name: np.zeros(len(edges) + 1, dtype=np.int64) for name, edges in bin_edges.items()}
    for batch in source.batches(columns=list(bin_edges)):
        for name, edges in bin_edges.items():
            values = _to_float64(batch.column(name).drop_null(), name, "numeric")
            finite = values[np.isfinite(values)]
            counts[name] += counts_in_bins(finite, edges)
    for name, edges in bin_edges.items():
        column = profile.columns[name]
        column.bin_edges, column.bin_counts = edges, counts[name]


def _table_to_ipc(table: pa.Table | None) -> bytes:
    if table is None:
        return b""
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _table_from_ipc(data: bytes) -> pa.Table | None:
    if not data:
        return None
    return pa.ipc.open_stream(io.BytesIO(data)).read_all()


def _period(source: Any, schema: Schema, start: str | None, end: str | None) -> Any:
    """The source, keeping only rows whose timestamp lies in [start, end)."""
    import pandas as pd
    import pyarrow.compute as pc

    from keel.data import DataSource
    from keel.windows import utc_times

    timestamps = schema.by_role("timestamp")
    if not timestamps:
        raise DataError(f"{source.name}: a period needs a timestamp column (--timestamp COL)")
    column = timestamps[0].name
    bounds = []
    for name, value in (("start", start), ("end", end)):
        if value is None:
            bounds.append(None)
            continue
        try:
            moment = pd.Timestamp(value)
        except ValueError as error:
            raise DataError(f"{name} {value!r} is not a date or time") from error
        bounds.append(moment.tz_localize("UTC") if moment.tzinfo is None else moment)

    class Period(DataSource):
        def batches(self, columns=None, batch_rows=262_144):
            wanted = columns if columns is None or column in columns else [*columns, column]
            for batch in source.batches(columns=wanted, batch_rows=batch_rows):
                times = utc_times(batch.column(column), column)
                keep = pc.is_valid(times)
                for bound, compare in ((bounds[0], pc.greater_equal), (bounds[1], pc.less)):
                    if bound is not None:
                        moment = pa.scalar(bound.to_pydatetime(), pa.timestamp("us", tz="UTC"))
                        keep = pc.and_(keep, compare(times, moment))
                kept = batch.filter(keep)
                if kept.num_rows:
                    yield kept if columns is None else kept.select(columns)

    return Period(
        name=f"{source.name} [{start or '…'}, {end or '…'})",
        schema=source.schema,
        num_rows=None,
        _table=source._table,
        _path=source._path,
        _format=source._format,
    )
