"""A registered version's baseline, bound by a monitor: ``baseline: models:/loans@champion``.

The baseline travels with the version (its training run's ``baseline.keel``); binding
resolves the reference now, copies that file into ``.keel/registry-cache/<name>/<version>/``
(once: a baseline never changes) and indexes it in the store, so the monitor reads a plain
file and its fits are kept beside it.

>>> is_model_ref("models:/loans@champion"), is_model_ref("keel-demo/baseline.keel")
(True, False)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keel.registry.base import BASELINE_ARTIFACT, RegistryError, resolve

CACHE = Path(".keel") / "registry-cache"


def is_model_ref(text: str) -> bool:
    """Whether a monitor's ``baseline:`` names a registered model rather than a file."""
    return str(text).startswith("models:/")


def bind_baseline(
    ref: str, registry: Any = None, store: Any = None, cache: Path | None = None
) -> Path:
    """The local file of the baseline attached to the version ``ref`` names now (see the
    module docstring); RegistryError when the version has no baseline."""
    from keel._files import write_atomically
    from keel.baseline import Baseline
    from keel.registry import open_registry

    registry = registry if registry is not None else open_registry(store=store)
    version = resolve(registry, ref)
    if version.run_id is None or not version.tags.get("keel.baseline"):
        raise RegistryError(
            f"{ref} is {version.ref}, which has no baseline attached (train it with keel train "
            "or keel.track, or point baseline: at a file)"
        )
    folder = (cache or CACHE) / version.name / str(version.version)
    path = folder / BASELINE_ARTIFACT
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(path, registry.run_artifact(version.run_id, BASELINE_ARTIFACT))
    baseline = Baseline.load(path)
    if baseline.fingerprint != version.tags["keel.baseline"]:
        raise RegistryError(
            f"{path}: holds baseline {baseline.id}, but {version.ref} names "
            f"{version.tags['keel.baseline'][:16]}; delete the file to fetch it again"
        )
    store = store if store is not None else getattr(registry, "store", None)
    if store is not None:
        store.register_baseline(baseline, path)
        store.register_model(version.name, str(version.version), baseline=baseline.fingerprint)
    return path


def bound_version(path: str) -> tuple[str, int] | None:
    """(name, version) of a baseline path ``bind_baseline`` made, else None.

    >>> bound_version(".keel/registry-cache/loans/3/baseline.keel")
    ('loans', 3)
    """
    parts = Path(path).parts
    if len(parts) >= 4 and parts[-4] == CACHE.name and parts[-2].isdigit():
        return parts[-3], int(parts[-2])
    return None
