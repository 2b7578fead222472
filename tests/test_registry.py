"""The registry battery (tests/common/registry_battery.py) over both registries: keel's
embedded one (a real SQLite store) and MLflow's (a real SQLite registry and artifact folder
in tmp_path). Then what only MLflow needs: lazy import, telemetry off, aliases read
correctly, external moves seen, a registry made once by two processes at once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from keel.registry import RegistryError, open_registry
from keel.store import ResultStore

from .common import registry_battery as battery
from .common.registry_battery import CHECKS, _register, make_mlflow_registry

registry, mlflow_template = battery.registry, battery.mlflow_template  # the fixtures

mlflow = pytest.importorskip("mlflow", reason="the MLflow registry needs keel[registry]")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_registry_battery(registry, check):
    check(registry)


def test_mlflow_keeps_artifacts_in_the_named_folder_and_names_it_its_kind(
    tmp_path, mlflow_template
):
    registry = make_mlflow_registry(tmp_path, mlflow_template)
    version, _, _ = _register(registry)
    assert registry.kind == "mlflow" and registry.uri.endswith("mlflow.db")
    stored = list((tmp_path / "mlflow-artifacts").rglob("model.skops"))
    assert len(stored) == 1 and version.run_id in str(stored[0])


def test_aliases_are_read_correctly_where_search_model_versions_returns_none(
    tmp_path, mlflow_template
):
    from mlflow.tracking import MlflowClient

    registry = make_mlflow_registry(tmp_path, mlflow_template)
    _register(registry)
    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    client.set_registered_model_alias("loans", "champion", "1")  # moved outside keel
    assert registry.aliases("loans") == {"champion": 1}
    searched = client.search_model_versions("name = 'loans'")
    # mlflow#16734: whatever search returns, keel never reads aliases from it.
    assert [list(v.aliases) for v in searched] in ([[]], [["champion"]])


def test_importing_keel_and_its_registry_module_does_not_import_mlflow():
    code = (
        "import sys, keel, keel.registry, keel.registry.mlflow, keel.tokens;"
        "print('mlflow' in sys.modules, 'skops' in sys.modules)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.stdout.split() == ["False", "False"], found.stderr


def test_telemetry_is_off_once_the_registry_is_used(tmp_path, mlflow_template, monkeypatch):
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    make_mlflow_registry(tmp_path, mlflow_template).client()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_an_unusable_registry_is_an_error_that_names_it(tmp_path):
    from keel.registry.mlflow import MlflowRegistry

    (tmp_path / "file").write_text("not a folder")
    registry = MlflowRegistry(f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}")
    with pytest.raises(RegistryError, match=r"mlflow.db"):
        registry.versions("loans")


def test_two_processes_opening_a_new_registry_at_once_both_succeed(tmp_path):
    code = (
        "import sys; from keel.registry.mlflow import MlflowRegistry;"
        "r = MlflowRegistry(sys.argv[1]); print(r.versions('loans'))"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in started]
    assert [p.returncode for p in started] == [0, 0], [e.decode()[-500:] for _, e in outputs]
    assert [o.decode().strip() for o, _ in outputs] == ["[]", "[]"]


def test_the_environment_picks_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_REGISTRY", "embedded")
    assert open_registry(store=ResultStore(f"sqlite:///{tmp_path / 'k.db'}")).kind == "embedded"
    monkeypatch.delenv("KEEL_REGISTRY")
    monkeypatch.setenv("KEEL_MLFLOW_URI", f"sqlite:///{tmp_path / 'm.db'}")
    chosen = open_registry()
    assert chosen.kind == "mlflow" and chosen.uri.endswith("m.db")
    monkeypatch.setenv("KEEL_REGISTRY", "nexus")
    with pytest.raises(RegistryError, match="KEEL_REGISTRY='nexus'"):
        open_registry()
