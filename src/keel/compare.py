"""``keel.drift``: the one call that compares a reference with current data.

The reference is a Baseline, a baseline or profile file, or data; the
current side is data or a profile. In profile mode (the default) each side
is profiled once, streaming, and compared in O(bins) per column; the
current data is profiled in the reference's fixed bins. ``exact=True``
reads both tables into memory and compares raw values, agreeing with scipy.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(1)
>>> reference = pd.DataFrame({"id": np.arange(4000), "x": rng.normal(size=4000)})
>>> current = pd.DataFrame({"id": np.arange(4000, 8000), "x": rng.normal(size=4000) * 3})
>>> report = drift(reference, current)
>>> report.drift, [c.column for c in report.columns]
(True, ['x'])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from keel.baseline import Baseline
from keel.checks.drift import DriftReport, ProfileSide, TableSide, compare_sides
from keel.data import DataSource, open_source
from keel.engines.spark import is_spark_frame  # pyspark loads only for a Spark frame
from keel.errors import ConfigError, KeelError
from keel.parallel import edges_from, profile_sides
from keel.profile import Profile
from keel.schema import Schema
from keel.stats.binning import DEFAULT_BINS
from keel.stats.verdict import DefaultRule


def drift(
    reference: Any,
    current: Any,
    *,
    exact: bool = False,
    method: str | None = None,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    rule: DefaultRule | None = None,
    roles: Mapping[str, str] | None = None,
    kinds: Mapping[str, str] | None = None,
    bins: int = DEFAULT_BINS,
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column (see the module docstring).

    ``roles`` and ``kinds`` override schema inference when the reference is
    data (``{"customer": "id"}``); a baseline's schema was fixed when it was made.
    Either side may be a Spark DataFrame, profiled per partition by the Spark engine
    (``spark_drift_profiles``): the report is that of the same rows read here.
    """
    reference = load_reference(reference)
    options = {"method": method, "methods": methods, "thresholds": thresholds, "rule": rule}
    if is_spark_frame(reference) or is_spark_frame(current):  # profiled by the Spark engine
        if exact:
            raise ConfigError("exact mode reads both tables into memory: not a Spark DataFrame")
        reference_profile, name, current_profile, current_name = spark_drift_profiles(
            reference, load_reference(current), roles, kinds, bins
        )
        report = compare_sides(
            ProfileSide(reference_profile, name),
            ProfileSide(current_profile, current_name),
            **options,
        )
        return with_quality(report, reference_profile, current_profile)
    if exact:
        if isinstance(reference, Baseline | Profile):
            raise ConfigError(
                "exact mode compares raw values: give the reference data, not a baseline or profile"
            )
        reference_source = open_source(reference)
        schema = Schema.infer(reference_source, roles=roles, kinds=kinds)
        current_source = open_source(current)
        current_schema = align_schema(schema, current_source)
        reference_table, current_table = reference_source.read_all(), current_source.read_all()
        report = compare_sides(
            TableSide(reference_table, schema, reference_source.name),
            TableSide(current_table, current_schema, current_source.name),
            **options,
        )
        return with_quality(
            report,
            Profile.build(reference_table, schema),
            Profile.build(current_table, current_schema),
        )
    current = load_reference(current)
    if isinstance(current, Profile):  # already profiled: compare with what the reference holds
        if isinstance(reference, Baseline | Profile):
            reference_profile, name = _profile_of(reference), _name_of(reference)
        else:
            source = open_source(reference)
            reference_profile = Profile.build(source, Schema.infer(source, roles, kinds))
            name = source.name
        report = compare_sides(
            ProfileSide(reference_profile, name), ProfileSide(current), **options
        )
        return with_quality(report, reference_profile, current)
    current_source = (  # a baseline's embedding, text and image columns read as it reads them
        reference.open_current(current) if isinstance(reference, Baseline) else open_source(current)
    )
    if isinstance(reference, Baseline | Profile):
        reference_profile = _profile_of(reference)
        edges = (
            reference.bin_edges
            if isinstance(reference, Baseline)
            else edges_from(reference_profile, bins)
        )
        current_schema = align_schema(reference_profile.schema, current_source)
        _, current_profile = profile_sides(
            None, current_source, current_schema=current_schema, edges=edges
        )
        name = _name_of(reference)
    else:
        reference_source = open_source(reference)
        schema = Schema.infer(reference_source, roles=roles, kinds=kinds)
        reference_profile, current_profile = profile_sides(
            reference_source,
            current_source,
            reference_schema=schema,
            current_schema=align_schema(schema, current_source),
            bins=bins,
        )
        name = reference_source.name
    report = compare_sides(
        ProfileSide(reference_profile, name),
        ProfileSide(current_profile, current_source.name),
        **options,
    )
    return with_quality(report, reference_profile, current_profile)


def spark_drift_profiles(
    reference: Any,
    current: Any,
    roles: Mapping[str, str] | None = None,
    kinds: Mapping[str, str] | None = None,
    bins: int = DEFAULT_BINS,
) -> tuple[Any, str, Any, str]:
    """The two profiles ``keel.drift`` compares when either side is a Spark DataFrame, with
    their names: (reference profile, its name, current profile, its name).

    Each side is profiled where it lives (a Spark frame by ``profile_frame``, local data by
    one process) exactly as ``keel.drift`` profiles local data: the reference is a Baseline
    (its profile and bin edges), a Profile (edges at its quantiles), local data or a Spark
    frame (profiled first, its edges at its quantiles, ``bins`` bins, and kept in them); the
    current side is a Spark frame, local data or a Profile, its schema aligned with the
    reference's (``align_schema``) and profiled in the reference's edges. So the
    report equals ``keel.drift`` of the same rows in one process: counts and bins exactly,
    moments to 1e-12, sketches within their error. Spark columns of types keel does not
    profile are named in a warning and left out (``known_columns``).

    >>> import keel
    >>> keel.drift(baseline, spark.read.parquet("today/")).drift  # doctest: +SKIP
    False
    """
    from keel.engines.spark import frame_head, known_frame, profile_frame
    from keel.profile.profile import profile_kind

    if isinstance(reference, Baseline) and reference.unstructured is not None:
        raise KeelError(
            f"baseline {reference.id} expands embedding, text or image columns, which the "
            "Spark engine does not: compare that data locally"
        )
    edges: dict[str, np.ndarray] = {}
    if isinstance(reference, Baseline):
        reference_profile, reference_name = reference.profile, f"baseline {reference.id}"
        edges = dict(reference.bin_edges)
    elif isinstance(reference, Profile):
        reference_profile, reference_name = reference, "profile"
        edges = edges_from(reference, bins)
    else:
        if is_spark_frame(reference):
            frame = known_frame(reference)
            schema = Schema.infer(frame_head(frame), roles, kinds)
            reference_profile, reference_name = profile_frame(frame, schema), "Spark DataFrame"
        else:
            source = open_source(reference)
            schema = Schema.infer(source, roles=roles, kinds=kinds)
            reference_profile, reference_name = Profile.build(source, schema), source.name
        if isinstance(current, Profile):  # as keel.drift: a profile is compared as it is
            return reference_profile, reference_name, current, "profile"
        edges = edges_from(reference_profile, bins)
        for name, inner in edges.items():  # the reference keeps its edges: methods use them
            reference_profile.columns[name].fix_bins_from_sketch(inner)
    if isinstance(current, Profile):
        return reference_profile, reference_name, current, "profile"
    if not is_spark_frame(current):
        source = open_source(current)
        schema = align_schema(reference_profile.schema, source)
        _, current_profile = profile_sides(None, source, current_schema=schema, edges=edges)
        return reference_profile, reference_name, current_profile, source.name
    frame = known_frame(current)
    schema = align_schema(reference_profile.schema, frame_head(frame))
    usable = {
        name: np.asarray(value, dtype=np.float64)
        for name, value in edges.items()
        if name in schema and profile_kind(schema[name]) == "numeric"
    }
    return (
        reference_profile,
        reference_name,
        profile_frame(frame, schema, usable),
        "Spark DataFrame",
    )


def with_quality(report: DriftReport, reference: Profile, current: Profile) -> DriftReport:
    """The one-off comparison also runs the data quality checks (``keel.checks.quality``):
    an empty input, a column that became all null, NaN or infinite values where the
    reference had none are findings, at alert level when the check alerts — the exit code
    of ``keel drift`` is then 1, drift or not. Their Results are in ``report.quality``."""
    from keel.checks.quality import as_output_findings, column_checks

    findings, quality = report.dataset["findings"], []
    if current.rows == 0:
        findings.append(
            {"column": None, "level": "alert", "finding": "the current data has no rows"}
        )
    for spec in current.schema.columns:
        mine, theirs = reference.columns.get(spec.name), current.columns.get(spec.name)
        if spec.role in ("id", "timestamp", "ignored") or mine is None or theirs is None:
            continue
        if type(mine) is not type(theirs) or not current.rows:
            continue
        found = column_checks(spec.name, spec.kind, mine, theirs)
        if spec.role in ("prediction", "score"):
            found = as_output_findings(found)
        quality += found
    for result in quality:
        if result.status == "alert":
            findings.append(
                {"column": result.column, "level": "alert", "finding": _describe(result)}
            )
    report.quality = quality
    report.dataset["alert"] = report.dataset["alert"] or any(
        f["level"] == "alert" for f in findings
    )
    return report


def _describe(result: Any) -> str:
    """One line for a quality finding: what was measured, against what."""
    value = "" if result.value is None else f" {result.value:.3g}"
    limit = "" if result.threshold is None else f" (limit {result.threshold:.3g})"
    return f"{result.check}: {result.metric}{value}{limit}"


def _profile_of(reference: Baseline | Profile) -> Profile:
    return reference.profile if isinstance(reference, Baseline) else reference


def _name_of(reference: Baseline | Profile) -> str:
    return f"baseline {reference.id}" if isinstance(reference, Baseline) else "profile"


def load_reference(reference: Any) -> Any:
    """A path to a keel baseline or profile file becomes that object; anything else is data."""
    if isinstance(reference, str | Path) and Path(reference).is_file():
        with open(reference, "rb") as stream:
            magic = stream.read(8)
        if magic == b"KEELBASE":
            return Baseline.load(reference)
        if magic == b"KEELPROF":
            return Profile.load(reference)
    return reference


def align_schema(reference: Schema, current: DataSource) -> Schema:
    """The current data's schema, with the reference's roles and kinds where types agree."""
    inferred = Schema.infer(current)
    roles, kinds = {}, {}
    for spec in inferred.columns:
        if spec.name in reference:
            reference_spec = reference[spec.name]
            roles[spec.name] = reference_spec.role
            if _same_type_kind(reference_spec.dtype, spec.dtype):
                kinds[spec.name] = reference_spec.kind
    return inferred.with_roles(roles).with_kinds(kinds)


def _same_type_kind(reference_dtype: str, current_dtype: str) -> bool:
    from keel.checks.drift import _type_kind

    return _type_kind(reference_dtype) == _type_kind(current_dtype)
