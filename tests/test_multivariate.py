"""Multivariate checks on data where the right answer is known."""

import numpy as np
import pandas as pd
import pytest

import keel
from keel.checks.multivariate import MultivariateReference
from keel.scenario import correlated_features


def _correlated(rows: int, seed: int, linked: float = 0.8) -> pd.DataFrame:
    return correlated_features(rows, np.random.default_rng(seed), linked)


@pytest.fixture(scope="module")
def model():
    return MultivariateReference.fit(_correlated(10_000, seed=1))


def test_a_broken_correlation_with_the_same_marginals_is_seen_only_by_multivariate_checks(model):
    broken = _correlated(2000, seed=2, linked=0.0)  # x and y each still N(0, 1)
    univariate = keel.drift(_correlated(10_000, seed=1), broken)
    assert univariate.dataset["drifted_columns"] == []
    reconstruction = model.reconstruction(broken)
    assert reconstruction.status == "alert"
    assert set(reconstruction.details["top_columns"][:2]) == {"x", "y"}
    classifier = model.domain_classifier(broken)
    assert classifier.status == "alert" and classifier.value > 0.55
    assert set(classifier.details["top_columns"][:2]) == {"x", "y"}


def test_a_new_subpopulation_of_familiar_values_is_seen_by_the_domain_classifier(model):
    rng = np.random.default_rng(3)
    window = _correlated(2000, seed=4)
    # A fifth of the rows: large x with category "c", each common on its own, rare together.
    rows = rng.choice(len(window), 400, replace=False)
    window.loc[rows, "x"] = rng.normal(1.5, 0.3, 400)
    window.loc[rows, "c"] = "c"
    classifier = model.domain_classifier(window)
    assert classifier.status == "alert"
    assert "c" in classifier.details["top_columns"] or "x" in classifier.details["top_columns"]


def test_undrifted_windows_do_not_alert(model):
    statuses = []
    for seed in range(10, 16):
        window = _correlated(2000, seed=seed)
        statuses += [
            model.reconstruction(window, tail=0.01).status,
            model.domain_classifier(window, tail=0.01).status,
        ]
    assert statuses.count("alert") <= 1


def test_small_windows_and_single_columns_are_insufficient_data(model):
    tiny = _correlated(50, seed=5)
    assert model.reconstruction(tiny).status == "insufficient_data"
    assert model.domain_classifier(tiny).status == "insufficient_data"
    single = MultivariateReference.fit(
        pd.DataFrame({"x": np.random.default_rng(6).normal(size=3000)})
    )
    result = single.reconstruction(pd.DataFrame({"x": np.zeros(500)}))
    assert result.status == "insufficient_data" and "columns" in result.details["reason"]


def test_constant_and_mostly_null_columns_do_not_break_the_encoding():
    frame = _correlated(3000, seed=7)
    frame["constant"] = 1.0
    frame.loc[frame.index[:2500], "z"] = np.nan
    model = MultivariateReference.fit(frame)
    assert "constant" not in model.encoder.names
    assert model.reconstruction(frame.iloc[:1000]).status == "ok"


def test_an_all_categorical_table_is_encoded_and_checked():
    rng = np.random.default_rng(9)
    reference = pd.DataFrame(
        {"a": rng.choice(list("xyz"), 4000), "b": rng.choice(list("pq"), 4000)}
    )
    model = MultivariateReference.fit(reference)
    assert model.encoder.names == ["a", "b"]
    same = pd.DataFrame({"a": rng.choice(list("xyz"), 1000), "b": rng.choice(list("pq"), 1000)})
    assert model.domain_classifier(same).status == "ok"
    assert model.reconstruction(same).status in ("ok", "alert")  # computed, not insufficient


def _near_equal_levels(rows: int, seed: int, unseen: float = 0.0) -> pd.DataFrame:
    """x and y correlated; z noise; k with four levels of near-equal shares (a tiny s.d.)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    k = rng.choice(["a", "b", "c", "d"], rows, p=[0.252, 0.249, 0.25, 0.249])
    k[: int(unseen * rows)] = "zz"  # a level the reference never had
    return pd.DataFrame(
        {"x": x, "y": x + rng.normal(scale=0.5, size=rows), "z": rng.normal(size=rows), "k": k}
    )


def test_a_rare_unseen_category_does_not_make_the_reconstruction_error_alert():
    from dataclasses import replace

    model = MultivariateReference.fit(_near_equal_levels(10_000, seed=1), seed=0)
    windows = [_near_equal_levels(2000, seed=10 + s, unseen=0.005) for s in range(5)]
    assert [model.reconstruction(w, tail=0.001).status for w in windows] == ["ok"] * 5
    # Unclipped frequency codes (the old encoding): the same 0.5% of rows alerts every window.
    unclipped = replace(model, low=None, high=None)
    assert [unclipped.reconstruction(w, tail=0.001).status for w in windows] == ["alert"] * 5
    # A broken correlation still alerts with the categories encoded this way.
    broken = _near_equal_levels(2000, seed=30)
    broken["y"] = np.random.default_rng(31).permutation(broken["y"].to_numpy())
    assert model.reconstruction(broken, tail=0.001).status == "alert"
