"""Every drift method keel knows, by name, behind one protocol (see ``keel.stats.method``).

Numeric: ``ks`` (test), ``wasserstein`` (in reference standard deviations),
``psi``, ``jensenshannon``, ``hellinger`` (on the reference's quantile bins).
Categorical: ``chisquare`` (test), ``psi``, ``jensenshannon``, ``hellinger``,
``l_infinity``, ``total_variation`` (on the union of categories).
Embedding (vectors of embedding, text and image columns): ``mmd`` (test: MMD² with a
permutation p-value, ``keel.stats.mmd``).

>>> import numpy as np
>>> from keel.stats.samples import NumericSample
>>> a = NumericSample.from_values(np.arange(1000.0))
>>> b = NumericSample.from_values(np.arange(1000.0) + 500)
>>> round(compute("psi", a, b).statistic, 2), compute("psi", a, b).details["bins"]
(3.53, 10)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from keel.errors import ConfigError
from keel.stats import divergences
from keel.stats.binning import reference_edges
from keel.stats.chisquare import chisquare
from keel.stats.ks import ks
from keel.stats.method import DriftMethod, MethodResult
from keel.stats.samples import CategoricalSample, NumericSample, aligned_counts
from keel.stats.wasserstein import wasserstein


def _binned(distance: Callable[[np.ndarray, np.ndarray], float]) -> Callable[..., MethodResult]:
    def compute_on_bins(reference, current) -> MethodResult:
        if reference.count == 0 or current.count == 0:
            return MethodResult(float("nan"), None)
        if isinstance(reference, NumericSample):
            edges = reference_edges(reference)
            reference_counts, reference_exact = reference.bin_counts(edges)
            current_counts, current_exact = current.bin_counts(edges)
            details = {"bins": len(edges) + 1, "exact_bins": reference_exact and current_exact}
        else:
            labels, reference_counts, current_counts = aligned_counts(reference, current)
            details = {"categories": len(labels)}
        return MethodResult(distance(reference_counts, current_counts), None, details)

    return compute_on_bins


def _mmd(reference, current) -> MethodResult:
    """MMD² between two ``VectorSample``s' vectors (``keel.stats.mmd.mmd_test``)."""
    from keel.stats.mmd import mmd_test

    if len(reference.vectors) < 2 or len(current.vectors) < 2:
        return MethodResult(float("nan"), None)
    return mmd_test(reference.vectors, current.vectors)


_BOTH = ("numeric", "categorical")

METHODS: dict[str, DriftMethod] = {
    method.name: method
    for method in [
        DriftMethod("ks", ("numeric",), True, 0.05, ks, "two-sample Kolmogorov–Smirnov test"),
        DriftMethod(
            "wasserstein",
            ("numeric",),
            False,
            0.1,
            wasserstein,
            "Wasserstein-1 distance in reference standard deviations",
        ),
        DriftMethod(
            "chisquare", ("categorical",), True, 0.05, chisquare, "chi-square test of homogeneity"
        ),
        DriftMethod(
            "psi", _BOTH, False, 0.1, _binned(divergences.psi), "population stability index"
        ),
        DriftMethod(
            "jensenshannon",
            _BOTH,
            False,
            0.1,
            _binned(divergences.jensen_shannon),
            "Jensen–Shannon distance (base 2)",
        ),
        DriftMethod(
            "hellinger", _BOTH, False, 0.1, _binned(divergences.hellinger), "Hellinger distance"
        ),
        DriftMethod(
            "l_infinity",
            ("categorical",),
            False,
            0.1,
            _binned(divergences.l_infinity),
            "largest change of one category's share",
        ),
        DriftMethod(
            "total_variation",
            ("categorical",),
            False,
            0.1,
            _binned(divergences.total_variation),
            "share of rows that changed category",
        ),
        DriftMethod(
            "mmd",
            ("embedding",),
            True,
            0.05,
            _mmd,
            "maximum mean discrepancy (RBF kernel), permutation test",
        ),
    ]
}


def get_method(name: str, kind: str | None = None) -> DriftMethod:
    """The method called ``name``; ConfigError if unknown or not for this kind of column."""
    try:
        method = METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown drift method {name!r}; known: {sorted(METHODS)}") from None
    if kind is not None and kind not in method.kinds:
        raise ConfigError(f"method {name!r} is for {'/'.join(method.kinds)} columns, not {kind}")
    return method


def compute(
    name: str,
    reference: NumericSample | CategoricalSample,
    current: NumericSample | CategoricalSample,
) -> MethodResult:
    """Run one method on two samples of the same kind."""
    from keel.profile.vectors import VectorSample

    if isinstance(reference, VectorSample):
        kind = "embedding"
    else:
        kind = "numeric" if isinstance(reference, NumericSample) else "categorical"
    return get_method(name, kind).compute(reference, current)
