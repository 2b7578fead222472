"""Engines: what profiles a source. One protocol, one battery (tests/common/test_engines.py).

``ENGINES`` holds every member: ``local`` (one process), ``processes`` (one worker
process per core, ``keel.parallel``) and ``spark`` (``keel.engines.spark``, ``keel[spark]``:
a profile per partition, merged on the driver). The Spark entry imports pyspark only when
used, so ``import keel.engines`` never loads it; ``available_engines()`` names the engines
that can run here.

>>> import pandas as pd
>>> reference, current = ENGINES["local"].profile_sides(pd.DataFrame({"x": [1.0, 2.0, 3.0]}),
...                                                     pd.DataFrame({"x": [2.0, 5.0]}))
>>> reference.columns["x"].count, current.columns["x"].bin_counts.tolist()
(3, [0, 1, 0, 1])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from keel.engines.spark import SparkEngine  # pyspark loads on first use only
from keel.stats.binning import DEFAULT_BINS


class Engine(Protocol):
    """Profile the reference (unless None) and the current data in shared bins: a baseline's
    ``edges``, or else the reference's quantiles (``bins`` bins). Every engine gives the
    same profiles of the same data: counts and bins exactly, sketches within their error."""

    name: str

    def profile_sides(
        self,
        reference: Any,
        current: Any,
        reference_schema: Any = None,
        current_schema: Any = None,
        edges: Mapping[str, np.ndarray] | None = None,
        bins: int = DEFAULT_BINS,
    ) -> tuple[Any, Any]: ...


@dataclass(frozen=True)
class ProcessEngine:
    """``keel.parallel``: column groups in worker processes (``workers``: default, one per
    core; 1 is the calling process alone)."""

    name: str
    workers: int | None = None

    def profile_sides(
        self,
        reference,
        current,
        reference_schema=None,
        current_schema=None,
        edges=None,
        bins=DEFAULT_BINS,
    ):
        from keel.parallel import profile_sides

        return profile_sides(
            reference, current, reference_schema, current_schema, edges, bins, self.workers
        )


#: Every engine, by name.
ENGINES: dict[str, Engine] = {
    "local": ProcessEngine("local", workers=1),
    "processes": ProcessEngine("processes"),
    "spark": SparkEngine("spark"),
}


def available_engines() -> list[str]:
    """The engines whose requirements are installed here (Spark needs pyspark and Java).

    >>> {"local", "processes"} <= set(available_engines())
    True
    """
    from keel.engines.spark import missing_requirement

    return [name for name in ENGINES if name != "spark" or missing_requirement() is None]
