"""MLflow as keel's registry (``pip install keel[registry]``: mlflow-skinny, alembic, skops).

Versions, aliases and tags are MLflow's; each version's training run is an MLflow run in
the experiment ``keel``, holding keel's lineage record (``keel/lineage.json``), the model
(``keel/model.skops``), the holdout predictions and the baseline as artifacts. The
tracking and registry URI comes from ``KEEL_MLFLOW_URI``, then ``MLFLOW_TRACKING_URI``, else
a SQLite file ``.keel/mlflow.db`` with its artifacts in ``.keel/mlflow-artifacts``.

MLflow is imported on first use, never by ``import keel``, with its telemetry off
(``MLFLOW_DISABLE_TELEMETRY=true`` unless set). A new SQLite registry is created under a
file lock, so two processes never migrate it at once. Aliases are read through
``get_registered_model(...).aliases``: ``search_model_versions`` returns them empty
(mlflow#16734).

>>> registry = MlflowRegistry("sqlite:///somewhere/mlflow.db")  # nothing opened yet
>>> registry.kind, registry.uri, registry.artifacts.name
('mlflow', 'sqlite:///somewhere/mlflow.db', 'mlflow-artifacts')
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keel.registry.base import ModelVersion, RegistryError, check_alias, check_name

DEFAULT_URI = "sqlite:///.keel/mlflow.db"
DEFAULT_ARTIFACTS = Path(".keel") / "mlflow-artifacts"
EXPERIMENT = "keel"
PREFIX = "keel"  # the artifact folder of a run that holds keel's files


def configured_uri() -> str | None:
    """The MLflow URI the environment names (``KEEL_MLFLOW_URI``, then
    ``MLFLOW_TRACKING_URI``), or None.

    >>> import os; os.environ.pop("KEEL_MLFLOW_URI", None) and None
    >>> os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///x.db"; configured_uri()
    'sqlite:///x.db'
    >>> del os.environ["MLFLOW_TRACKING_URI"]
    """
    return os.environ.get("KEEL_MLFLOW_URI") or os.environ.get("MLFLOW_TRACKING_URI") or None


class MlflowRegistry:
    """The MLflow member of the ``Registry`` family (see the module docstring)."""

    kind = "mlflow"

    def __init__(self, uri: str | None = None, artifacts: str | Path | None = None) -> None:
        self.uri = uri or configured_uri() or DEFAULT_URI
        if artifacts is None and self.uri.startswith("sqlite:///"):
            database = Path(self.uri.removeprefix("sqlite:///"))
            artifacts = database.parent / "mlflow-artifacts"
        self.artifacts = Path(artifacts).resolve() if artifacts is not None else None
        self._client: Any = None
        self._experiment: str | None = None

    # -- runs --

    def log_run(self, name: str, record: dict, artifacts: dict[str, bytes]) -> str:
        """An MLflow run holding the lineage record, its params and the artifacts."""
        check_name(name)
        client = self.client()
        tags = {"keel.model": name, "mlflow.runName": f"keel-train-{name}"}
        run = self._call(
            "create a run", lambda: client.create_run(self._experiment_id(), tags=tags)
        )
        run_id = run.info.run_id
        params = {
            str(k)[:250]: (v if isinstance(v, str) else json.dumps(v, default=str))[:6000]
            for k, v in (record.get("params") or {}).items()
        }
        from mlflow.entities import Param

        self._call(
            "log the run's params",
            lambda: client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()]),
        )
        self._log_datasets(run_id, record)
        files = {**artifacts, "lineage.json": json.dumps(record, default=str, sort_keys=True)}
        for artifact, data in files.items():
            self.add_artifact(run_id, artifact, data)
        self._call("finish the run", lambda: client.set_terminated(run_id, "FINISHED"))
        return run_id

    def run_record(self, run_id: str) -> dict:
        """The lineage record of an MLflow run keel logged."""
        try:
            return json.loads(self.run_artifact(run_id, "lineage.json"))
        except ValueError as error:
            raise RegistryError(f"run {run_id}: its keel/lineage.json is not JSON") from error

    def run_artifact(self, run_id: str, artifact: str) -> bytes:
        """One artifact of a run (downloaded from MLflow's artifact store)."""
        client = self.client()
        with tempfile.TemporaryDirectory(prefix="keel-mlflow-") as folder:
            local = self._call(
                f"read artifact {artifact!r} of run {run_id}",
                lambda: client.download_artifacts(run_id, f"{PREFIX}/{artifact}", folder),
            )
            return Path(local).read_bytes()

    def add_artifact(self, run_id: str, artifact: str, data: bytes | str) -> None:
        """Add one artifact to a run."""
        client = self.client()
        with tempfile.TemporaryDirectory(prefix="keel-mlflow-") as folder:
            path = Path(folder) / Path(artifact).name
            path.write_bytes(data.encode() if isinstance(data, str) else data)
            self._call(
                f"store artifact {artifact!r}",
                lambda: client.log_artifact(run_id, str(path), PREFIX),
            )

    # -- versions --

    def register(
        self, name: str, model: Any, run_id: str, tags: dict | None = None
    ) -> ModelVersion:
        """Save the model (skops) into the run and register it as a new MLflow version."""
        from keel.registry.skops_flavour import dump_model

        check_name(name)
        data, flavour = dump_model(model)
        client = self.client()
        run = self._call(f"find run {run_id}", lambda: client.get_run(run_id))
        self.add_artifact(run_id, "model.skops", data)
        self._ensure_model(name)
        all_tags = {**_text_tags(tags), "keel.flavour": flavour}
        found = self._call(
            f"register a version of {name!r}",
            lambda: client.create_model_version(
                name, source=f"{run.info.artifact_uri}/{PREFIX}", run_id=run_id, tags=all_tags
            ),
        )
        return _version(found)

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version; RegistryError naming the model and version when there is none."""
        client = self.client()
        try:
            return _version(client.get_model_version(name, str(int(version))))
        except Exception as error:  # noqa: BLE001 - MLflow's errors, translated below
            if _not_found(error):
                known = [v.version for v in self.versions(name)]
                have = f"versions {', '.join(map(str, known))}" if known else "no versions"
                raise RegistryError(f"model {name!r} has no version {version} ({have})") from None
            raise self._error(f"read version {version} of {name!r}", error) from error

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        client = self.client()
        found = self._call(
            f"list the versions of {name!r}",
            lambda: client.search_model_versions(f"name = '{check_name(name)}'"),
        )
        return sorted((_version(v) for v in found), key=lambda v: v.version)

    def set_tags(self, name: str, version: int, tags: dict) -> None:
        """Add or change tags of a version."""
        client = self.client()
        self.get_version(name, version)
        for key, value in _text_tags(tags).items():
            self._call(
                f"tag version {version} of {name!r}",
                lambda key=key, value=value: client.set_model_version_tag(
                    name, str(version), key, value
                ),
            )

    # -- aliases --

    def aliases(self, name: str) -> dict[str, int]:
        """alias → version, read with ``get_registered_model`` (mlflow#16734)."""
        client = self.client()
        try:
            model = client.get_registered_model(name)
        except Exception as error:  # noqa: BLE001
            if _not_found(error):
                return {}
            raise self._error(f"read the aliases of {name!r}", error) from error
        return {str(alias): int(version) for alias, version in (model.aliases or {}).items()}

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version`` (which must exist)."""
        check_alias(alias)
        self.get_version(name, version)
        client = self.client()
        self._call(
            f"set alias {alias!r} of {name!r}",
            lambda: client.set_registered_model_alias(name, alias, str(int(version))),
        )

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` (nothing when it is not set)."""
        if alias not in self.aliases(name):
            return
        client = self.client()
        self._call(
            f"delete alias {alias!r} of {name!r}",
            lambda: client.delete_registered_model_alias(name, alias),
        )

    # -- MLflow itself --

    def client(self) -> Any:
        """The MLflow client, made on first use (MLflow imported then, telemetry off)."""
        if self._client is not None:
            return self._client
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import logging

        try:
            from mlflow.tracking import MlflowClient
        except ImportError as error:
            raise RegistryError(
                "the MLflow registry needs keel's registry extra: pip install 'keel[registry]'"
            ) from error
        for logger in ("mlflow", "alembic"):  # "Creating initial MLflow database tables…"
            logging.getLogger(logger).setLevel(logging.WARNING)
        with _creation_lock(self.uri), warnings.catch_warnings():
            # MLflow's own mappers use a loader SQLAlchemy 2.1 deprecates: not keel's to fix.
            warnings.simplefilter("ignore", DeprecationWarning)
            client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            found = self._call(
                "open the registry", lambda: client.get_experiment_by_name(EXPERIMENT)
            )
            if found is None:
                location = None
                if self.artifacts is not None:
                    self.artifacts.mkdir(parents=True, exist_ok=True)
                    location = self.artifacts.as_uri()
                self._experiment = self._call(
                    "create the keel experiment",
                    lambda: client.create_experiment(EXPERIMENT, artifact_location=location),
                )
            else:
                self._experiment = found.experiment_id
        self._client = client
        return client

    def _experiment_id(self) -> str:
        self.client()
        assert self._experiment is not None
        return self._experiment

    def _ensure_model(self, name: str) -> None:
        client = self.client()
        try:
            client.get_registered_model(name)
        except Exception as error:  # noqa: BLE001
            if not _not_found(error):
                raise self._error(f"read model {name!r}", error) from error
            try:
                client.create_registered_model(name, tags={"keel.model": name})
            except Exception as again:  # noqa: BLE001 - another writer made it first: fine
                if "ALREADY_EXISTS" not in str(getattr(again, "error_code", "")) + str(again):
                    raise self._error(f"create model {name!r}", again) from again

    def _log_datasets(self, run_id: str, record: dict) -> None:
        """The run's datasets, in MLflow's own terms too (its UI shows them), with keel's
        full-data fingerprint as the digest (MLflow's own hashes only the first rows)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = []
        for role, data in (record.get("data") or {}).items():
            if not isinstance(data, dict) or not data.get("fingerprint"):
                continue
            dataset = Dataset(
                name=f"{role}",
                digest=str(data["fingerprint"])[:36],
                source_type="keel",
                source=json.dumps({"source": data.get("source")}),
                schema=json.dumps({"columns": data.get("schema")}, default=str),
                profile=json.dumps({"rows": data.get("rows")}),
            )
            context = "training" if role == "train" else "evaluation"
            inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
        if inputs:
            client = self.client()
            self._call("log the datasets", lambda: client.log_inputs(run_id, datasets=inputs))

    def _call(self, what: str, action: Any, attempts: int = 3) -> Any:
        """``action()``, its MLflow errors named; a locked SQLite registry is retried."""
        for attempt in range(attempts):
            try:
                return action()
            except RegistryError:
                raise
            except Exception as error:  # noqa: BLE001 - translated to RegistryError
                if "locked" in str(error).lower() and attempt < attempts - 1:
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise self._error(what, error) from error
        raise AssertionError("unreachable")

    def _error(self, what: str, error: Exception) -> RegistryError:
        message = str(getattr(error, "message", None) or error).strip().splitlines()
        return RegistryError(
            f"MLflow registry {self.uri}: cannot {what}: {message[0] if message else error}"
        )


@contextlib.contextmanager
def _creation_lock(uri: str):
    """Hold a file lock beside a SQLite registry while it is opened (and, when new,
    created and migrated): one process at a time."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    database = Path(uri.removeprefix("sqlite:///"))
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        handle = open(database.with_name(database.name + ".lock"), "a")  # noqa: SIM115
    except OSError as error:
        raise RegistryError(
            f"MLflow registry {uri}: cannot create {database} ({error.strerror})"
        ) from error
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _not_found(error: Exception) -> bool:
    code = str(getattr(error, "error_code", ""))
    return "RESOURCE_DOES_NOT_EXIST" in code or "not found" in str(error).lower()


def _version(found: Any) -> ModelVersion:
    tags = dict(found.tags or {})
    created = datetime.fromtimestamp(int(found.creation_timestamp) / 1000, UTC)
    return ModelVersion(
        name=found.name,
        version=int(found.version),
        run_id=found.run_id or None,
        flavour=tags.pop("keel.flavour", "unknown"),
        created_at=created.isoformat(timespec="milliseconds"),
        tags=tags,
    )


def _text_tags(tags: dict | None) -> dict[str, str]:
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, default=str)
        for k, v in (tags or {}).items()
    }
