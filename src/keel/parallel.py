"""Profile the columns of files in worker processes, one group of columns per core.

The KLL sketch update holds Python's GIL, so threads do not help; processes
do. Each worker is a fresh ``python -m keel.parallel`` process (not
multiprocessing, which would re-run a user's ``__main__`` script, or fail
from a notebook or stdin). A worker gets a group of columns, opens the
files itself, reads only those columns, and writes finished profiles to its
stdout; nothing else crosses between processes. For a comparison it
profiles its columns of the reference, fixes their bin edges, then profiles
the same columns of the current data in those bins, so one worker start
serves both sides. The calling process does one group meanwhile; the column
profiles of disjoint groups then sit side by side.

In-memory inputs, small files and ``KEEL_WORKERS=1`` take the same path in
the calling process alone.

>>> import pandas as pd
>>> reference, current = profile_sides(pd.DataFrame({"x": [1.0, 2.0, 3.0]}),
...                                    pd.DataFrame({"x": [2.0, 5.0]}), workers=1)
>>> x = current.columns["x"]
>>> reference.columns["x"].count, x.count, x.bin_counts.tolist()
(3, 2, [0, 1, 0, 1])
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from keel.data import DataSource, open_source
from keel.errors import KeelError
from keel.profile import NumericProfile, Profile
from keel.profile.profile import profile_kind
from keel.schema import Schema
from keel.stats.binning import DEFAULT_BINS, quantile_edges
from keel.stats.samples import NumericSample

#: Below this many values, a worker's start-up (a few tenths of a second) costs more than it saves.
MIN_PARALLEL_VALUES = 4_000_000
_WEIGHTS = {"numeric": 4.0, "datetime": 4.0, "text": 2.0, "categorical": 1.0, "count": 0.1}


def default_workers() -> int:
    """``KEEL_WORKERS`` if set, else the number of cores."""
    configured = os.environ.get("KEEL_WORKERS")
    if configured:
        return max(int(configured), 1)
    return max(os.cpu_count() or 1, 1)


def profile_sides(
    reference: Any,
    current: Any,
    reference_schema: Schema | None = None,
    current_schema: Schema | None = None,
    edges: Mapping[str, np.ndarray] | None = None,
    bins: int = DEFAULT_BINS,
    workers: int | None = None,
) -> tuple[Profile | None, Profile]:
    """Profile the reference (unless it is None) and the current data in shared bins.

    With ``edges`` given (a baseline's), the reference is not read; otherwise
    each numeric column's edges are its reference quantiles (``bins`` bins).
    """
    current_source = open_source(current)
    reference_source = open_source(reference) if reference is not None else None
    if current_schema is None:
        current_schema = Schema.infer(current_source)
    if reference_source is not None and reference_schema is None:
        reference_schema = Schema.infer(reference_source)
    fixed_edges = {k: np.asarray(v, dtype=np.float64) for k, v in (edges or {}).items()}
    sources = [s for s in (reference_source, current_source) if s is not None]
    groups = _groups(sources, reference_schema, current_schema, workers)
    if len(groups) > 1:
        current_source = replace(current_source, use_threads=False)
        if reference_source is not None:
            reference_source = replace(reference_source, use_threads=False)
    jobs = [
        _Job(
            reference_source,
            _part(reference_schema, group),
            current_source,
            _part(current_schema, group),
            fixed_edges,
            bins,
        )
        for group in groups
    ]
    started = [_start_worker(job) for job in jobs[1:]]
    try:
        results = [jobs[0].run()] + [_finish_worker(worker, current_source) for worker in started]
    finally:  # an error here, or Ctrl-C, must not leave workers running
        for worker in started:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return (
        _assemble([r for r, _ in results], reference_schema) if reference_source else None,
        _assemble([c for _, c in results], current_schema),
    )


def edges_from(profile: Profile, bins: int = DEFAULT_BINS) -> dict[str, np.ndarray]:
    """Inner bin edges at each numeric column's quantiles."""
    return {
        name: quantile_edges(NumericSample.from_profile(column), bins)
        for name, column in profile.columns.items()
        if type(column) is NumericProfile and column.count
    }


class _Job:
    """Profile some columns of the reference (if any), then the same columns of the current."""

    def __init__(self, reference, reference_schema, current, current_schema, edges, bins):
        self.reference, self.reference_schema = reference, reference_schema
        self.current, self.current_schema = current, current_schema
        self.edges, self.bins = edges, bins

    def run(self) -> tuple[Profile | None, Profile]:
        reference_profile = None
        edges = dict(self.edges)
        if self.reference is not None:
            reference_profile = Profile.build(self.reference, self.reference_schema)
            edges = edges_from(reference_profile, self.bins)
            for name, inner in edges.items():  # the reference keeps its edges: methods use them
                reference_profile.columns[name].fix_bins_from_sketch(inner)
        usable = {
            name: value
            for name, value in edges.items()
            if name in self.current_schema and profile_kind(self.current_schema[name]) == "numeric"
        }
        return reference_profile, Profile.build(self.current, self.current_schema, bin_edges=usable)

    def to_json(self) -> str:
        return json.dumps(
            {
                "reference": None if self.reference is None else str(self.reference._path),
                "reference_schema": None
                if self.reference_schema is None
                else self.reference_schema.to_dict(),
                "current": str(self.current._path),
                "current_schema": self.current_schema.to_dict(),
                "edges": {k: v.tolist() for k, v in self.edges.items()},
                "bins": self.bins,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> _Job:
        job = json.loads(text)
        reference = None if job["reference"] is None else _unthreaded(job["reference"])
        reference_schema = (
            None if job["reference_schema"] is None else Schema.from_dict(job["reference_schema"])
        )
        edges = {k: np.asarray(v, dtype=np.float64) for k, v in job["edges"].items()}
        return cls(
            reference,
            reference_schema,
            _unthreaded(job["current"]),
            Schema.from_dict(job["current_schema"]),
            edges,
            job["bins"],
        )


def _unthreaded(path: str) -> DataSource:
    return replace(open_source(path), use_threads=False)


def _groups(
    sources: list[DataSource],
    reference_schema: Schema | None,
    current_schema: Schema,
    workers: int | None,
) -> list[list[str]]:
    names = list(
        dict.fromkeys((reference_schema.names if reference_schema else []) + current_schema.names)
    )
    weights = {}
    for name in names:
        spec = current_schema[name] if name in current_schema else reference_schema[name]
        weights[name] = _WEIGHTS.get(profile_kind(spec), 1.0)
    workers = default_workers() if workers is None else max(workers, 1)
    rows = sum(source.num_rows or _rows_guess(source) for source in sources)
    files_only = all(source._path is not None for source in sources)
    if workers < 2 or not files_only or rows * sum(weights.values()) / 4 < MIN_PARALLEL_VALUES:
        return [names]
    groups: list[list[str]] = [[] for _ in range(min(workers, len(names)))]
    loads = [0.0] * len(groups)
    # Greedy: the heaviest column to the lightest group, so the groups finish together.
    for name in sorted(names, key=lambda n: -weights[n]):
        lightest = loads.index(min(loads))
        groups[lightest].append(name)
        loads[lightest] += weights[name]
    return [[n for n in names if n in group] for group in groups if group]


def _part(schema: Schema | None, names: list[str]) -> Schema | None:
    if schema is None:
        return None
    return Schema([schema[name] for name in names if name in schema])


def _assemble(parts: list[Profile], schema: Schema) -> Profile:
    columns: dict[str, Any] = {}
    for part in parts:
        columns.update(part.columns)
    return Profile(
        schema=schema, rows=parts[0].rows, columns={name: columns[name] for name in schema.names}
    )


def _rows_guess(source: DataSource) -> int:
    """For a CSV (no row count without reading it): about 10 bytes per value."""
    size = source._path.stat().st_size if source._path is not None else 0
    return size // max(10 * len(source.schema.names), 1)


def _start_worker(job: _Job) -> subprocess.Popen:
    worker = subprocess.Popen(
        [sys.executable, "-m", "keel.parallel"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # The job goes in now, so the worker runs while this process does its own group; the
    # worker reads all of stdin before anything else, so this write cannot block for long.
    assert worker.stdin is not None
    worker.stdin.write(job.to_json().encode())
    worker.stdin.close()
    worker.stdin = None
    return worker


def _finish_worker(worker: subprocess.Popen, source: DataSource) -> tuple[Profile | None, Profile]:
    # communicate() drains stdout and stderr together: neither pipe can fill and block the
    # worker while this process waits on the other.
    output, errors = worker.communicate()
    if worker.returncode != 0 or len(output) < 8:
        last_line = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise KeelError(f"{source.name}: a profiling worker failed: {last_line[0]}")
    (reference_length,) = struct.unpack_from("<Q", output)
    reference_bytes = output[8 : 8 + reference_length]
    current = Profile.from_bytes(output[8 + reference_length :], source=f"{source.name} (worker)")
    reference = Profile.from_bytes(reference_bytes, source="worker") if reference_bytes else None
    return reference, current


def _main() -> None:
    """Worker: read a job on stdin; write both profiles, length-prefixed, to stdout."""
    from keel.threads import limit_process

    limit_process()  # one core per worker: numeric pools must not take the others
    reference, current = _Job.from_json(sys.stdin.read()).run()
    reference_bytes = reference.to_bytes() if reference is not None else b""
    sys.stdout.buffer.write(struct.pack("<Q", len(reference_bytes)) + reference_bytes)
    sys.stdout.buffer.write(current.to_bytes())


if __name__ == "__main__":
    _main()
