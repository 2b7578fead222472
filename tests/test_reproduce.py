"""keel reproduce, with known answers: a faithful re-run matches; a changed data row, a
changed package version (the recorded environment edited) and a changed param are each
detected; runs that cannot be re-done exit 2. Real git repos, real Parquet, real registries
(the embedded one throughout, MLflow's end to end)."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from keel.registry.aliases import promote
from keel.registry.embedded import EmbeddedRegistry
from keel.reproduce import CannotReproduce, reproduce
from keel.store import ResultStore
from keel.tracking import track

from .common import registry_battery as battery
from .common.registry_battery import make_mlflow_registry, make_training_repo

mlflow_template = battery.mlflow_template  # the fixture


@pytest.fixture
def project(tmp_path, monkeypatch):
    repo = tmp_path / "project"
    data = make_training_repo(repo)
    monkeypatch.chdir(repo)
    (repo / ".keel").mkdir()
    store = ResultStore(f"sqlite:///{repo / '.keel' / 'keel.db'}")
    return repo, data, EmbeddedRegistry(store, repo / ".keel" / "registry")


def _train(registry, data, entrypoint="train.py:fit", params=None, **options):
    from keel.tracking import load_entrypoint

    fit = load_entrypoint(entrypoint)
    with track(
        "loans",
        train=options.pop("train", str(data)),
        holdout_last="20%",
        target="y",
        timestamp="t",
        params=params or {"C": 0.5},
        entrypoint=entrypoint,
        registry=registry,
    ) as run:
        return run.log_model(fit(run.train, run.params))


def _items(found):
    return {item.name: item for item in found.items}


def _edit_record(registry, run_id, change):
    """Edit a stored lineage record in place (as someone tampering, or time passing would)."""
    store = registry.store
    with store.engine.begin() as connection:
        text = connection.execute(
            sa.text("SELECT record FROM keel_training_runs WHERE id = :id"), {"id": run_id}
        ).scalar()
        record = json.loads(text)
        change(record)
        connection.execute(
            sa.text("UPDATE keel_training_runs SET record = :r WHERE id = :id"),
            {"r": json.dumps(record), "id": run_id},
        )


def test_a_faithful_rerun_matches_item_by_item(project):
    _, data, registry = project
    _train(registry, data)
    found = reproduce(registry, "loans@1")
    assert found.matches, [i.summary for i in found.items]
    assert list(_items(found)) == ["data", "code", "packages", "params", "predictions"]
    assert _items(found)["predictions"].details["max_abs_delta"] == 0.0


def test_a_changed_data_row_is_detected(project):
    _, data, registry = project
    _train(registry, data)
    frame = pd.read_parquet(data)
    frame.loc[10, "x"] += 3.0  # one value of one training row
    frame.to_parquet(data)
    items = _items(reproduce(registry, "loans@1"))
    assert not items["data"].matches and "train" in items["data"].details["changed"]
    assert "holdout" not in items["data"].details["changed"]  # row 10 is in the training part
    assert items["packages"].matches and items["code"].matches


def test_a_record_made_before_its_digest_was_named_is_checked_by_the_ordered_digest(project):
    from keel.fingerprint import ORDERED_DIGEST, data_digest

    _, data, registry = project
    version = _train(registry, data)

    def as_recorded_before(record):  # every row in order, and no "digest" field
        whole = pd.read_parquet(data).sort_values("t", kind="stable")
        cut = len(whole) - max(1, -(-len(whole) * 20 // 100))
        parts = {"train": whole.iloc[:cut], "holdout": whole.iloc[cut:]}
        for role, rows in parts.items():
            table = pa.Table.from_pandas(rows.sort_index(), preserve_index=False)
            record["data"][role]["fingerprint"] = data_digest(table, ORDERED_DIGEST)
            del record["data"][role]["digest"]
        record["data"]["split"]["whole"].pop("digest")

    _edit_record(registry, version.run_id, as_recorded_before)
    found = reproduce(registry, "loans@1")
    assert _items(found)["data"].matches, _items(found)["data"].summary


def test_a_changed_package_version_is_detected(project):
    _, data, registry = project
    version = _train(registry, data)
    _edit_record(
        registry,
        version.run_id,
        lambda r: r["environment"]["packages"].__setitem__("scikit-learn", "1.4.2"),
    )
    items = _items(reproduce(registry, "loans@1"))
    assert not items["packages"].matches
    import sklearn

    assert items["packages"].details["changed"] == {"scikit-learn": ["1.4.2", sklearn.__version__]}
    assert f"scikit-learn 1.4.2 → {sklearn.__version__}" in items["packages"].summary
    assert items["predictions"].matches and items["data"].matches


def test_a_changed_param_is_detected_in_the_params_and_the_predictions(project):
    _, data, registry = project
    version = _train(registry, data, params={"C": 0.5})
    _edit_record(registry, version.run_id, lambda r: r["params"].__setitem__("C", 0.001))
    items = _items(reproduce(registry, "loans@1"))
    assert not items["params"].matches
    assert items["params"].details["changed"] == {"C": [0.5, 0.001]}
    predictions = items["predictions"]
    assert not predictions.matches and predictions.details["max_abs_delta"] > 0.01
    assert 0 <= predictions.details["mcnemar_mid_p"] <= 1


def test_a_dirty_run_is_re_done_with_its_stored_diff_and_refused_without_one(project):
    repo, data, registry = project
    (repo / "train.py").write_text(
        (repo / "train.py").read_text().replace('params.get("C", 1.0)', 'params.get("C", 0.2)')
    )
    with pytest.warns(UserWarning, match="dirty git tree"):
        version = _train(registry, data, params={"alpha": 1})
    subprocess.run(["git", "checkout", "train.py"], cwd=repo, check=True)  # the edit is gone
    found = reproduce(registry, "loans@1")
    assert found.matches, [i.summary for i in found.items]
    assert _items(found)["code"].details["diff_applied"] is True
    _edit_record(registry, version.run_id, lambda r: r["code"].__setitem__("diff", None))
    with pytest.raises(CannotReproduce, match="dirty tree and its diff was not stored"):
        reproduce(registry, "loans@1")


def test_an_in_memory_table_cannot_be_reproduced(project):
    _, data, registry = project
    _train(registry, data, train=pd.read_parquet(data))
    with pytest.raises(CannotReproduce, match="in-memory table with no source"):
        reproduce(registry, "loans@1")


def test_the_command_exits_0_1_or_2(project, run_keel, monkeypatch):
    repo, data, registry = project
    monkeypatch.setenv("KEEL_REGISTRY", "embedded")
    version = _train(registry, data)
    same = run_keel("reproduce", "loans@1", cwd=repo)
    assert same.returncode == 0 and "every item matches" in same.stdout, same.stderr
    _edit_record(registry, version.run_id, lambda r: r["params"].__setitem__("C", 0.001))
    differs = run_keel("reproduce", "loans@1", "--json", cwd=repo)
    assert differs.returncode == 1, differs.stderr
    report = json.loads(differs.stdout)
    assert report["matches"] is False
    assert {i["item"] for i in report["items"] if not i["matches"]} >= {"params", "predictions"}
    assert run_keel("reproduce", "loans@9", cwd=repo).returncode == 2
    data.unlink()
    gone = run_keel("reproduce", "loans@1", cwd=repo)
    assert gone.returncode == 2 and "cannot be read" in gone.stderr


def test_track_register_promote_lineage_reproduce_on_a_real_mlflow_registry(
    tmp_path, monkeypatch, mlflow_template
):
    from keel.lineage import lineage

    repo = tmp_path / "project"
    data = make_training_repo(repo)
    monkeypatch.chdir(repo)
    registry = make_mlflow_registry(tmp_path, mlflow_template)
    store = ResultStore(f"sqlite:///{tmp_path / 'keel.db'}")
    _train(registry, data, params={"C": 0.5})
    _train(registry, data, params={"C": 0.05})
    promote(registry, store, "loans", 2, "champion", "smaller C generalizes", "ada")
    found = lineage(registry, store, "loans@champion")
    assert found["version"]["version"] == 2 and found["run"]["params"] == {"C": 0.05}
    assert found["promotions"][0]["reason"] == "smaller C generalizes"
    assert reproduce(registry, "loans@champion").matches
    # The lineage record lives in MLflow's artifact store: edit it there.
    (record_file,) = [
        p
        for p in (tmp_path / "mlflow-artifacts").rglob("lineage.json")
        if found["run"]["id"] in str(p)
    ]
    record = json.loads(record_file.read_text())
    record["environment"]["packages"]["numpy"] = "1.0.0"
    record_file.write_text(json.dumps(record))
    items = _items(reproduce(registry, "loans@2"))
    assert not items["packages"].matches and "numpy 1.0.0 →" in items["packages"].summary


def test_a_nan_param_recorded_and_refitted_the_same_matches():
    # scikit-learn's OrdinalEncoder defaults encoded_missing_value to NaN, which is never ==
    # itself: a faithful rerun of any pipeline holding one must still say the params match.
    from sklearn.preprocessing import OrdinalEncoder

    from keel.reproduce import _params_item
    from keel.tracking import model_params

    recorded = json.loads(json.dumps(model_params(OrdinalEncoder())))  # as the record holds it
    assert _params_item(recorded, model_params(OrdinalEncoder())).matches
    changed = _params_item(recorded, model_params(OrdinalEncoder(encoded_missing_value=-1)))
    assert not changed.matches and "encoded_missing_value nan → -1" in changed.summary
