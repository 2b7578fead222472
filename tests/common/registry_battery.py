"""The registry battery: every member of the ``Registry`` family (keel's embedded registry,
MLflow's) registers, loads, aliases and records runs the same way. ``tests/test_registry.py``
runs each ``check_*`` here over every member; a new member is one fixture there.

Each check takes a fresh, empty registry.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from keel.registry import RegistryError, load_model, resolve


def _model(c: float = 1.0, seed: int = 0) -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(80, 3))
    labels = (rows[:, 0] + rng.normal(0, 0.5, 80) > 0).astype(int)
    return LogisticRegression(C=c).fit(rows, labels), rows


def _register(registry, name="loans", c=1.0, seed=0, record=None):
    model, rows = _model(c, seed)
    run = registry.log_run(name, record or {"params": {"C": c}}, {"notes.txt": b"hello"})
    return registry.register(name, model, run, tags={"owner": "risk"}), model, rows


def check_versions_are_numbered_from_one_and_listed_oldest_first(registry):
    first, _, _ = _register(registry)
    second, _, _ = _register(registry, c=0.5)
    assert (first.version, second.version) == (1, 2)
    assert [v.version for v in registry.versions("loans")] == [1, 2]
    assert registry.get_version("loans", 2).run_id == second.run_id != first.run_id
    assert first.flavour == "sklearn-skops" and first.ref == "loans@1"
    assert first.tags["owner"] == "risk"
    assert registry.versions("unknown") == []


def check_a_model_loads_back_by_alias_and_by_version_with_the_same_predictions(registry):
    _register(registry)
    version, model, rows = _register(registry, c=0.05, seed=1)
    registry.set_alias("loans", "champion", version.version)
    expected = model.predict_proba(rows)
    for ref in ("models:/loans@champion", "loans@champion", "loans@2", "models:/loans/2"):
        loaded = load_model(registry, ref)
        assert type(loaded) is LogisticRegression and loaded.C == 0.05
        np.testing.assert_array_equal(loaded.predict_proba(rows), expected)
    assert load_model(registry, "loans@1").C == 1.0


def check_aliases_are_set_moved_read_and_deleted(registry):
    for _ in range(3):
        _register(registry)
    assert registry.aliases("loans") == {}
    registry.set_alias("loans", "champion", 1)
    registry.set_alias("loans", "challenger", 3)
    registry.set_alias("loans", "champion", 2)
    assert registry.aliases("loans") == {"champion": 2, "challenger": 3}
    assert resolve(registry, "loans@champion").version == 2
    registry.delete_alias("loans", "challenger")
    registry.delete_alias("loans", "challenger")  # not set: nothing happens
    assert registry.aliases("loans") == {"champion": 2}


def check_unknown_versions_aliases_and_runs_are_errors_that_name_them(registry):
    _register(registry)
    with pytest.raises(RegistryError, match=r"'loans' has no version 7 \(versions 1\)"):
        registry.get_version("loans", 7)
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.set_alias("loans", "champion", 7)
    with pytest.raises(RegistryError, match="'loans' has no alias 'champion'"):
        load_model(registry, "loans@champion")
    with pytest.raises(RegistryError, match="'nobody' has no version 1"):
        load_model(registry, "nobody@1")
    with pytest.raises(RegistryError, match="alias 'v3' is not valid"):
        registry.set_alias("loans", "v3", 1)
    with pytest.raises(RegistryError, match="feedbeef"):
        registry.run_record("feedbeef" * 4)
    with pytest.raises(RegistryError, match="missing.txt"):
        registry.run_artifact(registry.get_version("loans", 1).run_id, "missing.txt")


def check_a_runs_record_and_artifacts_round_trip(registry):
    record = {"params": {"C": 1.0, "grid": [1, 2]}, "data": {"train": {"rows": 80}}}
    version, _, _ = _register(registry, record=record)
    stored = registry.run_record(version.run_id)
    assert stored["params"] == {"C": 1.0, "grid": [1, 2]}
    assert stored["data"]["train"]["rows"] == 80
    assert registry.run_artifact(version.run_id, "notes.txt") == b"hello"
    assert registry.run_artifact(version.run_id, "model.skops")[:2] == b"PK"  # a zip, no pickle


def check_a_model_skops_cannot_load_is_refused_naming_its_type(registry):
    class HandRule:
        def predict(self, rows):
            return rows[:, 0] > 0

    run = registry.log_run("loans", {"params": {}}, {})
    with pytest.raises(RegistryError, match=r"cannot register a .*HandRule.*never unpickles"):
        registry.register("loans", HandRule(), run)
    assert registry.versions("loans") == []


def check_tags_are_added_to_a_version(registry):
    version, _, _ = _register(registry)
    registry.set_tags("loans", version.version, {"keel.baseline": "abc", "n": 3})
    tags = registry.get_version("loans", 1).tags
    assert tags["keel.baseline"] == "abc" and tags["n"] == "3" and tags["owner"] == "risk"


CHECKS = [value for name, value in sorted(globals().items()) if name.startswith("check_")]


# -- the members, as fixtures: import ``registry`` (and ``mlflow_template``) into a test module --


_TEMPLATE = None


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    """An empty MLflow SQLite registry made (and migrated) once, copied per test."""
    pytest.importorskip("mlflow", reason="the MLflow registry needs keel[registry]")
    from mlflow.tracking import MlflowClient

    global _TEMPLATE
    if _TEMPLATE is not None and _TEMPLATE.is_file():  # one per process, however many modules
        return _TEMPLATE
    folder = tmp_path_factory.mktemp("mlflow-template")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with warnings.catch_warnings():  # MLflow's mappers: a loader SQLAlchemy 2.1 deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()  # the tables
    _TEMPLATE = folder / "mlflow.db"
    return _TEMPLATE


def make_mlflow_registry(folder, template):
    """A fresh MLflow registry in ``folder`` (a copy of the template, artifacts beside it)."""
    import shutil

    from keel.registry.mlflow import MlflowRegistry

    shutil.copy(template, folder / "mlflow.db")
    return MlflowRegistry(f"sqlite:///{folder / 'mlflow.db'}")


@pytest.fixture(params=["embedded", "mlflow"])
def registry(request, tmp_path):
    """Each member of the family, fresh and empty (its store at ``registry.store``)."""
    from keel.registry.embedded import EmbeddedRegistry
    from keel.store import ResultStore

    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    if request.param == "embedded":
        return EmbeddedRegistry(store, tmp_path / "registry")
    found = make_mlflow_registry(tmp_path, request.getfixturevalue("mlflow_template"))
    found.store = store  # keel's store, for the audit, beside MLflow's registry
    return found


# -- what the training, lineage and reproduce tests share: a real git repo to train from --

TRAIN_PY = """from sklearn.linear_model import LogisticRegression


def fit(train, params):
    rows = train.select(["x", "z"]).to_pandas()
    return LogisticRegression(C=float(params.get("C", 1.0))).fit(rows, train["y"].to_numpy())
"""


def make_training_repo(folder, rows: int = 600, seed: int = 0):
    """A git repo in ``folder`` with ``train.py:fit`` committed and ``loans.parquet`` (x, z,
    t hourly from 2026-01-01, y) beside it; returns the data's path."""
    import subprocess

    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "z": rng.normal(size=rows),
            "t": pd.date_range("2026-01-01", periods=rows, freq="h", tz="UTC"),
        }
    )
    data["y"] = (data["x"] + rng.normal(0, 0.7, rows) > 0).astype(int)
    data.to_parquet(folder / "loans.parquet")
    (folder / "train.py").write_text(TRAIN_PY)
    (folder / ".gitignore").write_text(".keel/\n*.parquet\n")

    def git(*args):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "test@keel.invalid")
    git("config", "user.name", "keel test")
    git("add", "train.py", ".gitignore")
    git("commit", "-q", "-m", "train.py")
    return folder / "loans.parquet"
