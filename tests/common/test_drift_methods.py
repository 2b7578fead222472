"""The drift-method battery: every method in ``keel.stats.methods.METHODS``, for every kind
of column it takes, passes the same checks. A new method is one entry in METHODS and gets
these for free."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keel.profile.categorical import CategoricalProfile
from keel.profile.numeric import NumericProfile
from keel.stats.methods import METHODS
from keel.stats.samples import CategoricalSample, NumericSample

#: Methods on table columns; ``mmd`` (embedding columns: an unbiased MMD² is not 0 on
#: identical samples) has its own references in tests/test_mmd.py and tests/test_unstructured.py.
MEMBERS = [
    (name, kind)
    for name, method in METHODS.items()
    for kind in method.kinds
    if kind in ("numeric", "categorical")
]


def _values(kind: str, rows: int, seed: int, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    if kind == "numeric":
        return rng.normal(shift, 1.0, rows)
    weights = np.array([0.5 - shift / 4, 0.3, 0.2 + shift / 4])
    return rng.choice(np.array(["a", "b", "c"], dtype=object), rows, p=weights / weights.sum())


def _exact(kind: str, values):
    if kind == "numeric":
        return NumericSample.from_values(values)
    return CategoricalSample.from_values(list(values))


def _profiled(kind: str, values, exact_limit: int | None = None):
    if kind == "numeric":
        profile = NumericProfile(**({"exact_limit": exact_limit} if exact_limit else {}))
        profile.update_values(np.asarray(values, dtype=np.float64))
        return NumericSample.from_profile(profile)
    profile = CategoricalProfile()
    labels, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    profile.update_counts(dict(zip(labels.tolist(), counts.tolist(), strict=True)))
    return CategoricalSample.from_profile(profile)


def _drifted(name: str, result) -> bool:
    method = METHODS[name]
    if method.has_p_value:
        return result.p_value < method.default_threshold
    return result.statistic >= method.default_threshold


@pytest.mark.parametrize(("name", "kind"), MEMBERS)
def test_identical_samples_show_no_drift(name, kind):
    sample = _exact(kind, _values(kind, 3_000, seed=1))
    result = METHODS[name].compute(sample, sample)
    assert result.statistic == pytest.approx(0.0, abs=1e-12)
    assert not _drifted(name, result)
    if METHODS[name].has_p_value:
        assert result.p_value == pytest.approx(1.0)


@pytest.mark.parametrize(("name", "kind"), MEMBERS)
def test_a_large_shift_is_drift(name, kind):
    reference = _exact(kind, _values(kind, 3_000, seed=1))
    current = _exact(kind, _values(kind, 3_000, seed=2, shift=1.0))
    assert _drifted(name, METHODS[name].compute(reference, current))


@pytest.mark.parametrize(("name", "kind"), MEMBERS)
@pytest.mark.parametrize("empty_side", ["reference", "current"])
def test_an_empty_side_is_insufficient_data_not_an_error(name, kind, empty_side):
    full = _exact(kind, _values(kind, 500, seed=3))
    empty = _exact(kind, _values(kind, 0, seed=3))
    sides = (empty, full) if empty_side == "reference" else (full, empty)
    result = METHODS[name].compute(*sides)
    assert math.isnan(result.statistic)
    assert result.p_value is None


@pytest.mark.parametrize(("name", "kind"), MEMBERS)
def test_profile_and_exact_agree_while_the_profile_keeps_every_value(name, kind):
    reference, current = _values(kind, 4_000, seed=4), _values(kind, 4_000, seed=5, shift=0.2)
    exact = METHODS[name].compute(_exact(kind, reference), _exact(kind, current))
    profiled = METHODS[name].compute(_profiled(kind, reference), _profiled(kind, current))
    assert profiled.statistic == pytest.approx(exact.statistic, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", [name for name, kind in MEMBERS if kind == "numeric"])
def test_profile_and_exact_agree_within_the_sketch_error_once_it_compacts(name):
    reference, current = _values("numeric", 40_000, seed=6), _values("numeric", 40_000, 7, 0.2)
    exact = METHODS[name].compute(_exact("numeric", reference), _exact("numeric", current))
    sketched = [_profiled("numeric", v, exact_limit=2_000) for v in (reference, current)]
    assert all(side.rank_error > 0 for side in sketched)  # the sketch did compact
    profiled = METHODS[name].compute(*sketched)
    error = sum(side.rank_error for side in sketched)
    if name == "ks":  # a CDF distance: off by at most both sides' rank errors
        assert abs(profiled.statistic - exact.statistic) <= error
    else:  # distances of bin shares or of quantile functions: a loose multiple of it
        assert abs(profiled.statistic - exact.statistic) <= 10 * error + 0.01 * exact.statistic
