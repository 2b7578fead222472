"""The ``Registry`` protocol: where model versions, their aliases and their training runs live.

Two members pass one battery (``tests/common/registry_battery.py``): keel's embedded
registry (the store's tables and a folder; nothing to install) and MLflow's
(``keel[registry]``). Both keep scikit-learn models as skops files, never pickles.

A model is named by a reference: ``models:/loans@champion`` or ``loans@champion`` (an
alias), ``models:/loans/3`` or ``loans@3`` (a version).

>>> parse_ref("models:/loans@champion"), parse_ref("loans@3"), parse_ref("models:/loans/3")
(('loans', 'champion', None), ('loans', None, 3), ('loans', None, 3))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from keel.errors import KeelError

#: The artifacts of a training run keel records (beside ``model.skops`` and its lineage).
BASELINE_ARTIFACT = "baseline.keel"
PREDICTIONS_ARTIFACT = "holdout_predictions.parquet"


class RegistryError(KeelError):
    """A registry that cannot be reached, or a model, version, alias or run it does not have."""


#: An alias cannot look like a version number ("3", "v3") or be "latest" (MLflow's rule too).
_ALIAS = re.compile(r"^(?!v?\d+$)(?!latest$)[A-Za-z_][A-Za-z0-9_-]{0,254}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its number, where its training run is, its tags."""

    name: str
    version: int
    run_id: str | None
    flavour: str
    created_at: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name@version``, the reference ``keel reproduce`` and ``keel lineage`` take."""
        return f"{self.name}@{self.version}"


@runtime_checkable
class Registry(Protocol):
    """What keel needs from a model registry; see the module docstring."""

    #: "embedded" or "mlflow": what ``keel demo`` and ``keel lineage`` say they used.
    kind: str
    #: Identifies this registry in keel's alias audit (a URI, password hidden).
    uri: str

    def log_run(self, name: str, record: dict, artifacts: dict[str, bytes]) -> str:
        """Store a training run's lineage record and its artifacts; returns the run id."""

    def run_record(self, run_id: str) -> dict:
        """The lineage record ``log_run`` stored."""

    def run_artifact(self, run_id: str, artifact: str) -> bytes:
        """One artifact of a run (``model.skops``, ``baseline.keel``, …), as bytes."""

    def register(
        self, name: str, model: Any, run_id: str, tags: dict | None = None
    ) -> ModelVersion:
        """Save ``model`` (skops) as the run's ``model.skops`` and register a new version."""

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version; RegistryError naming the model and version when there is none."""

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first (empty when the model is unknown)."""

    def set_tags(self, name: str, version: int, tags: dict) -> None:
        """Add or change tags of a version."""

    def aliases(self, name: str) -> dict[str, int]:
        """The model's aliases now: alias → version (read the way that returns them)."""

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version`` (no audit: ``keel.registry.aliases`` writes it)."""

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias``; nothing happens when it is not set."""


def parse_ref(ref: str) -> tuple[str, str | None, int | None]:
    """(name, alias, version) from a model reference (see the module docstring).

    >>> parse_ref("loans")
    Traceback (most recent call last):
    ...
    keel.registry.base.RegistryError: model reference 'loans' names no alias or version: ...
    """
    text = ref.removeprefix("models:/")
    name, alias, version = text, None, None
    if "@" in text:
        name, _, after = text.rpartition("@")
        if after.isdigit():
            version = int(after)
        else:
            alias = after
    elif "/" in text:
        name, _, after = text.rpartition("/")
        if not after.isdigit():
            raise RegistryError(f"model reference {ref!r}: {after!r} is not a version number")
        version = int(after)
    else:
        raise RegistryError(
            f"model reference {ref!r} names no alias or version: write {ref}@champion, "
            f"{ref}@3 or models:/{ref}@champion"
        )
    check_name(name)
    if alias is not None:
        check_alias(alias)
    return name, alias, version


def check_name(name: str) -> str:
    """``name`` when it can name a model; RegistryError otherwise.

    >>> check_name("loans v2")
    Traceback (most recent call last):
    ...
    keel.registry.base.RegistryError: model name 'loans v2' is not valid: ...
    """
    if not _NAME.match(name or ""):
        raise RegistryError(
            f"model name {name!r} is not valid: letters, digits and . _ - (up to 200)"
        )
    return name


def check_alias(alias: str) -> str:
    """``alias`` when it can be an alias (not a number, not ``latest``); RegistryError else.

    >>> check_alias("champion"), check_alias("v3")
    Traceback (most recent call last):
    ...
    keel.registry.base.RegistryError: alias 'v3' is not valid: it cannot look like a version ...
    """
    if not _ALIAS.match(alias or ""):
        raise RegistryError(
            f"alias {alias!r} is not valid: it cannot look like a version (3, v3) or be "
            "'latest'; letters, digits, _ and -"
        )
    return alias


def resolve(registry: Registry, ref: str) -> ModelVersion:
    """The version a reference names now (an alias is looked up in the registry).

    >>> import tempfile, pathlib
    >>> from keel.registry.embedded import EmbeddedRegistry
    >>> from keel.store import ResultStore
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> registry = EmbeddedRegistry(ResultStore(f"sqlite:///{folder / 'keel.db'}"), folder)
    >>> resolve(registry, "loans@champion")
    Traceback (most recent call last):
    ...
    keel.registry.base.RegistryError: model 'loans' has no alias 'champion' (aliases: none)
    """
    name, alias, version = parse_ref(ref)
    if alias is not None:
        aliases = registry.aliases(name)
        if alias not in aliases:
            listed = ", ".join(f"{a}→{v}" for a, v in sorted(aliases.items())) or "none"
            raise RegistryError(f"model {name!r} has no alias {alias!r} (aliases: {listed})")
        version = aliases[alias]
    return registry.get_version(name, int(version))


def load_model(registry: Registry, ref: str) -> Any:
    """The model a reference names, loaded from its skops file (never a pickle)."""
    from keel.registry.skops_flavour import load_model_bytes

    found = resolve(registry, ref)
    if found.run_id is None:
        raise RegistryError(f"{found.ref} has no training run, so no model file")
    return load_model_bytes(registry.run_artifact(found.run_id, "model.skops"), found.ref)


def cache_folder(root: Path, *parts: str) -> Path:
    """A folder under ``root`` for files fetched from a registry (made when missing)."""
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
