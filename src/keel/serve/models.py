"""Where the gateway's models come from, and the switch between them.

A ``ModelSource`` says which version it would load now (``current_version``, cheap: the
gateway polls it) and loads that version (``load``). Two sources:

- ``LocalModelSource``: the embedded default, a scikit-learn model saved with skops
  (``skops.io.dump``) plus the baseline file whose schema checks the inputs. skops loads
  only the types it trusts; scikit-learn's, NumPy's and SciPy's are trusted, anything else
  (a custom transformer's function, say) must be named in ``trusted``. Nothing is ever
  unpickled.
- ``RegistryModelSource``: ``models:/NAME@ALIAS`` through ``keel.registry`` (imported
  when used): the version the alias names, its ``model.skops`` (loaded by the registry,
  which trusts only scikit-learn, NumPy and SciPy types) and its run's ``baseline.keel``.

A ``LoadedModel`` is immutable; the gateway keeps the models that answer for a name in
one ``Deployment`` value and replaces that value whole, so a request sees either the old
champion or the new one, never a mixture (``Deployment.with_champion``).

>>> deployment = Deployment(champion="v1-model")
>>> promoted = deployment.with_champion("v2-model")
>>> promoted.champion, promoted.previous, deployment.champion
('v2-model', 'v1-model', 'v1-model')
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from keel.errors import ConfigError, DataError
from keel.serve.validation import RecordSchema

#: Type prefixes skops may load without being told: scikit-learn's, NumPy's, SciPy's.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
REGISTRY_SCHEME = "models:/"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to answer: its name, version, estimator and input schema."""

    name: str
    version: str
    estimator: Any
    inputs: RecordSchema
    uri: str = ""
    loaded_at: float = field(default_factory=time.time)

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Outputs per row: ``prediction``, and ``score`` (binary classifiers: the
        probability of the positive class) or ``scores`` (one per class).

        >>> from sklearn.linear_model import LogisticRegression
        >>> import pandas as pd
        >>> fitted = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0]}), [0, 1])
        >>> from keel.serve.validation import Column
        >>> model = LoadedModel("m", "1", fitted, RecordSchema((Column("a", "numeric"),)))
        >>> [sorted(out) for out in model.predict([{"a": 0.9}])]
        [['prediction', 'score']]
        """
        import pandas as pd

        frame = pd.DataFrame.from_records(rows, columns=self.inputs.names)
        estimator = self.estimator
        if hasattr(estimator, "predict_proba"):
            probabilities = estimator.predict_proba(frame)
            classes = list(getattr(estimator, "classes_", range(probabilities.shape[1])))
            picks = probabilities.argmax(axis=1)
            outputs = []
            for row, pick in zip(probabilities, picks, strict=True):
                out: dict[str, Any] = {"prediction": _plain(classes[int(pick)])}
                if len(classes) == 2:
                    out["score"] = float(row[1])
                else:
                    out["scores"] = {str(c): float(p) for c, p in zip(classes, row, strict=True)}
                outputs.append(out)
            return outputs
        return [{"prediction": _plain(value)} for value in estimator.predict(frame)]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class ModelSource(Protocol):
    """Where one model comes from: the version it would load now, and loading it."""

    uri: str

    def current_version(self) -> str:
        """The version ``load`` would load now (cheap; polled every ``reload_seconds``)."""
        ...

    def load(self) -> LoadedModel:
        """Load the current version (in full: a failure leaves the caller's model as is)."""
        ...

    def spec(self) -> dict[str, Any]:
        """A plain description another process can rebuild this source from."""
        ...


def file_version(path: str | Path) -> str:
    """A model file's version: the first 12 hex digits of its SHA-256.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "m.skops"; _ = path.write_bytes(b"model")
    >>> file_version(path)
    'sha256:9372c470eead'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:12]}"


def load_skops(path: str | Path, trusted: Iterable[str] = ()) -> Any:
    """A skops file's estimator, refusing types neither trusted by prefix nor named.

    >>> import tempfile, skops.io
    >>> from sklearn.linear_model import LinearRegression
    >>> path = Path(tempfile.mkdtemp()) / "m.skops"
    >>> skops.io.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0]), path)
    >>> float(load_skops(path).predict([[0.5]])[0])
    1.0
    """
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as error:  # skops raises many kinds on a file that is not its own
        raise DataError(f"{path}: not a skops model file ({error})") from error
    named = set(trusted)
    refused = [t for t in untrusted if t not in named and not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ConfigError(
            f"{path}: holds types keel does not load unless told to trust them: {refused}; "
            "name them under trusted: in the model's configuration if you wrote them"
        )
    try:
        return skops.io.load(path, trusted=list(untrusted))
    except Exception as error:
        raise DataError(f"{path}: cannot load the model ({error})") from error


def input_schema(baseline: Any, estimator: Any, entity_keys: Iterable[str]) -> RecordSchema:
    """The inputs a model takes: the estimator's ``feature_names_in_`` (or the baseline's
    features), each of the kind the baseline recorded; a null is allowed where the
    reference held nulls."""
    order = getattr(estimator, "feature_names_in_", None)
    names = [str(n) for n in order] if order is not None else None
    nullable = [
        name for name, column in baseline.profile.columns.items() if getattr(column, "nulls", 0) > 0
    ]
    return RecordSchema.from_schema(baseline.schema, entity_keys, names, nullable)


@dataclass
class LocalModelSource:
    """A skops model file and its baseline: the embedded default.

    ``version`` fixes the version name; by default it is the file's hash, so replacing the
    file and reloading switches to it.
    """

    name: str
    model_path: Path
    baseline_path: Path
    entity_keys: tuple[str, ...] = ()
    trusted: tuple[str, ...] = ()
    version: str | None = None

    @property
    def uri(self) -> str:
        return str(self.model_path)

    def current_version(self) -> str:
        try:
            return self.version or file_version(self.model_path)
        except OSError as error:
            raise DataError(f"{self.model_path}: cannot read the model ({error})") from error

    def load(self) -> LoadedModel:
        from keel.baseline import Baseline

        version = self.current_version()
        estimator = load_skops(self.model_path, self.trusted)
        baseline = Baseline.load(self.baseline_path)
        inputs = input_schema(baseline, estimator, self.entity_keys)
        return LoadedModel(self.name, version, estimator, inputs, self.uri)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "local",
            "name": self.name,
            "model_path": str(self.model_path),
            "baseline_path": str(self.baseline_path),
            "entity_keys": list(self.entity_keys),
            "trusted": list(self.trusted),
            "version": self.version,
        }


@dataclass
class RegistryModelSource:
    """``models:/NAME@ALIAS`` (or ``@VERSION``) through ``keel.registry``: the model is the
    version's ``model.skops``, the schema its run's ``baseline.keel`` unless a baseline
    file is given."""

    name: str
    uri: str
    entity_keys: tuple[str, ...] = ()
    baseline_path: Path | None = None

    def _registry(self) -> Any:
        try:
            from keel.registry import open_registry
        except ImportError as error:
            raise ConfigError(
                f"{self.uri}: this keel has no model registry (keel.registry); "
                "serve a local model file with its baseline instead"
            ) from error
        return open_registry()

    def current_version(self) -> str:
        from keel.registry import resolve

        return str(resolve(self._registry(), self.uri).version)

    def has_alias(self, alias: str) -> bool:
        """Whether the model has ``alias`` in the registry (a challenger, say) naming another
        version than this source's: a challenger just promoted to champion still holds its
        alias until the next retrain, and a model is never shadowed by itself."""
        from keel.registry import parse_ref

        name = parse_ref(self.uri)[0]
        aliases = self._registry().aliases(name)
        return alias in aliases and str(aliases[alias]) != self.current_version()

    def load(self) -> LoadedModel:
        from keel.baseline import Baseline
        from keel.registry import RegistryError, load_model, resolve

        registry = self._registry()
        found = resolve(registry, self.uri)
        estimator = load_model(registry, found.ref)  # that version, whatever the alias does now
        if self.baseline_path is not None:
            baseline = Baseline.load(self.baseline_path)
        else:
            if found.run_id is None:
                raise RegistryError(f"{found.ref} has no training run, so no baseline")
            try:
                data = registry.run_artifact(found.run_id, "baseline.keel")
            except RegistryError as error:
                raise ConfigError(
                    f"{found.ref}: its run has no baseline.keel ({error}); give the model's "
                    "baseline file (baseline: FILE)"
                ) from error
            baseline = Baseline.from_bytes(data, f"{found.ref} baseline.keel")
        inputs = input_schema(baseline, estimator, self.entity_keys)
        return LoadedModel(self.name, str(found.version), estimator, inputs, self.uri)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "registry",
            "name": self.name,
            "uri": self.uri,
            "entity_keys": list(self.entity_keys),
            "baseline_path": None if self.baseline_path is None else str(self.baseline_path),
        }


def source_from_spec(spec: Mapping[str, Any]) -> ModelSource:
    """Rebuild a source from its ``spec()`` (how a shadow process gets its model).

    >>> source = source_from_spec({"kind": "registry", "name": "m", "uri": "models:/m@x"})
    >>> source.uri
    'models:/m@x'
    """
    if spec["kind"] == "local":
        return LocalModelSource(
            spec["name"],
            Path(spec["model_path"]),
            Path(spec["baseline_path"]),
            tuple(spec.get("entity_keys", ())),
            tuple(spec.get("trusted", ())),
            spec.get("version"),
        )
    if spec["kind"] == "registry":
        baseline = spec.get("baseline_path")
        return RegistryModelSource(
            spec["name"],
            spec["uri"],
            tuple(spec.get("entity_keys", ())),
            None if baseline is None else Path(baseline),
        )
    raise ConfigError(f"unknown model source kind {spec['kind']!r}")


def model_source(
    name: str,
    location: str | Path,
    baseline: str | Path | None = None,
    entity_keys: Iterable[str] = (),
    trusted: Iterable[str] = (),
    version: str | None = None,
) -> ModelSource:
    """A source for ``location``: ``models:/NAME@ALIAS`` (the registry) or a skops file
    (with its baseline).

    >>> model_source("loans", "models:/loans@champion").uri
    'models:/loans@champion'
    >>> model_source("loans", "loans.skops")
    Traceback (most recent call last):
    ...
    keel.errors.ConfigError: model 'loans': a local model file (loans.skops) needs its baseline file
    """
    text = str(location)
    if text.startswith(REGISTRY_SCHEME):
        return RegistryModelSource(
            name, text, tuple(entity_keys), None if baseline is None else Path(baseline)
        )
    if baseline is None:
        raise ConfigError(f"model {name!r}: a local model file ({text}) needs its baseline file")
    return LocalModelSource(
        name, Path(text), Path(baseline), tuple(entity_keys), tuple(trusted), version
    )


@dataclass(frozen=True)
class Deployment:
    """The models that answer for one name: champion, canaries with their weights, and the
    champion before the last switch (for rollback). Replaced whole, never edited."""

    champion: Any
    canaries: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=lambda: {"champion": 1.0})
    previous: Any = None

    def with_champion(self, model: Any) -> Deployment:
        """A new champion; the old one kept as ``previous``."""
        return replace(self, champion=model, previous=self.champion)

    def with_weights(self, weights: Mapping[str, float]) -> Deployment:
        """New weights (arms must exist: the champion and this deployment's canaries).

        >>> Deployment("m").with_weights({"champion": 0.5, "canary": 0.5})
        Traceback (most recent call last):
        ...
        keel.errors.ConfigError: no arm 'canary' (arms: champion)
        """
        from keel.serve.routing import check_weights

        weights = check_weights(weights)
        for arm in weights:
            if arm != "champion" and arm not in self.canaries:
                arms = ", ".join(["champion", *self.canaries])
                raise ConfigError(f"no arm {arm!r} (arms: {arms})")
        return replace(self, weights=weights)

    def arm(self, name: str) -> Any:
        """The model behind an arm."""
        return self.champion if name == "champion" else self.canaries[name]

    def promoted(self, arm: str) -> Deployment:
        """The canary ``arm`` becomes the champion; every key goes to it.

        >>> d = Deployment("m1", {"canary": "m2"}, {"champion": 0.9, "canary": 0.1})
        >>> p = d.promoted("canary"); p.champion, p.previous, dict(p.weights), dict(p.canaries)
        ('m2', 'm1', {'champion': 1.0}, {})
        """
        if arm not in self.canaries:
            raise ConfigError(f"no canary {arm!r} to promote (canaries: {list(self.canaries)})")
        canaries = {k: v for k, v in self.canaries.items() if k != arm}
        return Deployment(self.canaries[arm], canaries, {"champion": 1.0}, self.champion)

    def rolled_back(self) -> Deployment:
        """The previous champion answers again (the current one is kept as ``previous``).

        >>> Deployment("m2", previous="m1").rolled_back().champion
        'm1'
        """
        if self.previous is None:
            raise ConfigError("nothing to roll back to: no earlier champion in this gateway")
        return replace(self, champion=self.previous, previous=self.champion)
