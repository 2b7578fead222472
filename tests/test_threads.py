"""keel's model fits use one thread per process unless KEEL_THREADS says otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_info

from keel.checks.multivariate import MultivariateReference
from keel.diagnosis import surrogate_importance
from keel.errors import ConfigError
from keel.threads import limited, thread_count


def openmp_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["internal_api"] == "openmp"}


@pytest.fixture
def spy(monkeypatch):
    """Record the OpenMP pool size seen inside every gradient-boosting fit."""
    seen: list[set[int]] = []
    for model in (HistGradientBoostingRegressor, HistGradientBoostingClassifier):
        original = model.fit

        def fit(self, *args, _original=original, **kwargs):
            seen.append(openmp_threads())
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(model, "fit", fit)
    return seen


def frame(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    data["score"] = 3 * data["a"] + 0.1 * rng.normal(size=rows)
    return data


def test_the_diagnosis_surrogate_fits_on_one_thread_by_default(spy, monkeypatch):
    monkeypatch.delenv("KEEL_THREADS", raising=False)
    surrogate_importance(frame(), ["a", "b"], "score")
    assert spy and all(seen == {1} for seen in spy)


def test_keel_threads_sets_the_pool_size(spy, monkeypatch):
    monkeypatch.setenv("KEEL_THREADS", "2")
    reference = MultivariateReference.fit(frame(seed=1))
    reference.domain_classifier(frame(seed=2))
    assert spy and all(seen == {2} for seen in spy)


def test_the_limit_ends_with_the_call(monkeypatch):
    monkeypatch.delenv("KEEL_THREADS", raising=False)
    before = openmp_threads()
    with limited():
        assert openmp_threads() == {1}
    assert openmp_threads() == before


@pytest.mark.parametrize("text", ["0", "-1", "many"])
def test_a_bad_thread_count_is_a_clear_error(monkeypatch, text):
    monkeypatch.setenv("KEEL_THREADS", text)
    with pytest.raises(ConfigError, match="KEEL_THREADS"):
        thread_count()
