"""keel's own registry: versions and aliases in the store's tables, run artifacts in a folder.

Nothing to install, so ``keel demo`` works with keel alone. Run ``<id>``'s artifacts are
files in ``<root>/runs/<id>/`` (``.keel/registry`` by default), written once.

>>> import tempfile, pathlib
>>> from sklearn.dummy import DummyClassifier
>>> from keel.store import ResultStore
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> registry = EmbeddedRegistry(ResultStore(f"sqlite:///{folder / 'keel.db'}"), folder)
>>> run = registry.log_run("loans", {"params": {}}, {})
>>> version = registry.register("loans", DummyClassifier().fit([[0], [1]], [0, 1]), run)
>>> registry.set_alias("loans", "champion", version.version)
>>> version.version, registry.aliases("loans")
(1, {'champion': 1})
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from keel.registry.base import ModelVersion, RegistryError, check_alias, check_name

DEFAULT_ROOT = Path(".keel") / "registry"


class EmbeddedRegistry:
    """The embedded member of the ``Registry`` family (see the module docstring)."""

    kind = "embedded"

    def __init__(self, store: Any = None, root: str | Path | None = None) -> None:
        from keel.store import ResultStore

        self.store = store if store is not None else ResultStore()
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self.uri = f"keel:{self.store.name}"

    def log_run(self, name: str, record: dict, artifacts: dict[str, bytes]) -> str:
        """Store a run's lineage record and artifacts; returns its id."""
        from keel._files import write_atomically

        check_name(name)
        run_id = uuid.uuid4().hex
        folder = self.root / "runs" / run_id
        folder.mkdir(parents=True, exist_ok=False)
        for artifact, data in artifacts.items():
            write_atomically(folder / _safe(artifact), data)
        self.store.save_training_run(run_id, name, record)
        return run_id

    def run_record(self, run_id: str) -> dict:
        """A run's lineage record; RegistryError naming the run when there is none."""
        record = self.store.training_run(run_id)
        if record is None:
            raise RegistryError(f"{self.uri} has no training run {run_id!r}")
        return record

    def run_artifact(self, run_id: str, artifact: str) -> bytes:
        """One artifact of a run, as bytes."""
        path = self.root / "runs" / run_id / _safe(artifact)
        try:
            return path.read_bytes()
        except OSError as error:
            raise RegistryError(
                f"run {run_id} has no artifact {artifact!r} ({path}: {error.strerror})"
            ) from error

    def add_artifact(self, run_id: str, artifact: str, data: bytes) -> None:
        """Add an artifact to a run (one that is not there yet)."""
        from keel._files import write_atomically

        path = self.root / "runs" / run_id / _safe(artifact)
        if path.exists():
            raise RegistryError(f"run {run_id} already has an artifact {artifact!r}")
        write_atomically(path, data)

    def register(
        self, name: str, model: Any, run_id: str, tags: dict | None = None
    ) -> ModelVersion:
        """Save the model (skops) into the run and register the next version."""
        from keel.registry.skops_flavour import dump_model

        check_name(name)
        data, flavour = dump_model(model)
        self.run_record(run_id)
        self.add_artifact(run_id, "model.skops", data)
        source = str(self.root / "runs" / run_id / "model.skops")
        number = self.store.add_model_version(name, source, flavour, run_id, _text_tags(tags))
        return self.get_version(name, number)

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version; RegistryError naming the model and version when there is none."""
        rows = self.store.model_version_rows(name, int(version))
        if not rows:
            known = [r["version"] for r in self.store.model_version_rows(name)]
            have = f"versions {', '.join(map(str, known))}" if known else "no versions"
            raise RegistryError(f"model {name!r} has no version {version} ({have})")
        return _version(rows[0])

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        return [_version(r) for r in self.store.model_version_rows(name)]

    def set_tags(self, name: str, version: int, tags: dict) -> None:
        """Add or change tags of a version."""
        self.get_version(name, version)
        self.store.set_model_tags(name, int(version), _text_tags(tags))

    def aliases(self, name: str) -> dict[str, int]:
        """alias → version, now."""
        return self.store.model_alias_rows(name)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version`` (which must exist)."""
        check_alias(alias)
        self.get_version(name, version)
        self.store.set_model_alias(name, alias, int(version))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` (nothing when it is not set)."""
        self.store.set_model_alias(name, alias, None)


def _version(row: dict) -> ModelVersion:
    return ModelVersion(
        name=row["name"],
        version=int(row["version"]),
        run_id=row["run_id"],
        flavour=row["flavour"],
        created_at=row["created_at"],
        tags=dict(row["tags"]),
    )


def _text_tags(tags: dict | None) -> dict[str, str]:
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, default=str)
        for k, v in (tags or {}).items()
    }


def _safe(artifact: str) -> str:
    """An artifact's file name: no folders, nothing hidden (``..`` cannot climb out)."""
    name = Path(artifact).name
    if not name or name.startswith(".") or name != artifact:
        raise RegistryError(f"artifact name {artifact!r} is not a plain file name")
    return name
