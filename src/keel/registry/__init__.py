"""Model registries for keel: the ``Registry`` protocol, keel's embedded one, MLflow's.

``open_registry()`` picks one: ``KEEL_REGISTRY`` (``embedded`` or ``mlflow``) when set;
else MLflow when ``KEEL_MLFLOW_URI`` or ``MLFLOW_TRACKING_URI`` names one or when the
``keel[registry]`` extra is installed; else the embedded registry. Nothing here imports
MLflow until a registry call needs it.

>>> import os, tempfile, pathlib
>>> from keel.store import ResultStore
>>> os.environ["KEEL_REGISTRY"] = "embedded"
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> open_registry(store=ResultStore(f"sqlite:///{folder / 'keel.db'}")).kind
'embedded'
>>> del os.environ["KEEL_REGISTRY"]
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from keel.registry.base import (
    ModelVersion,
    Registry,
    RegistryError,
    load_model,
    parse_ref,
    resolve,
)

__all__ = [
    "ModelVersion",
    "Registry",
    "RegistryError",
    "load_model",
    "open_registry",
    "parse_ref",
    "resolve",
]


def open_registry(kind: str | None = None, store: Any = None) -> Registry:
    """The registry the environment (or ``kind``) names; see the module docstring."""
    from keel.registry.embedded import EmbeddedRegistry
    from keel.registry.mlflow import MlflowRegistry, configured_uri

    kind = kind or os.environ.get("KEEL_REGISTRY")
    if kind is None:
        installed = importlib.util.find_spec("mlflow") is not None
        kind = "mlflow" if configured_uri() or installed else "embedded"
    if kind == "embedded":
        return EmbeddedRegistry(store)
    if kind == "mlflow":
        return MlflowRegistry()
    raise RegistryError(f"KEEL_REGISTRY={kind!r}: one of embedded, mlflow")
