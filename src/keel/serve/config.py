"""What ``keel serve`` serves: models, their champions, canaries and challengers, and the log.

Read from a YAML file (``keel serve --config serve.yaml``; a top-level ``serve:`` key is
optional) or built from the command line's options for one model::

    serve:
      log_root: .keel/logs          # KEEL_LOG_ROOT, or .keel/logs
      log_mode: durable             # or fast (KEEL_LOG_MODE)
      reload_seconds: 30            # poll the sources; 0: only on the admin reload
      accept_event_time: false      # true: a replay's body gives each record's event_times
      models:
        loans:
          model: models/loans.skops      # or models:/loans@champion
          baseline: loans.baseline
          entity_keys: [customer_id]
          canaries: {canary: models/loans-v2.skops}
          weights: {champion: 0.9, canary: 0.1}
          challengers: {challenger: models/loans-v3.skops}
          shadow_share: 1.0
          log_retention_days: 90     # older days of its logs (and its shadows') are deleted
          features:                  # online features looked up by entity key (docs/features.md)
            definitions: keel.yaml   # a file with a features: list, or the list itself
            store: sqlite:///.keel/logs/features/online.db   # the default; or redis://...
            key_prefix: ""           # Redis: a namespace for the keys
            lateness: 1D             # how late an event may arrive and still count
            on_failure: refuse       # 503 naming the feature; or null: serve nulls, log why

>>> config = ServeConfig.from_dict({"models": {"loans": {"model": "m.skops",
...                                                       "baseline": "b.baseline"}}})
>>> config.models[0].name, config.log_mode, config.host
('loans', 'durable', '127.0.0.1')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from keel.errors import ConfigError

MODES = ("durable", "fast")
ON_LOG_FAILURE = ("refuse", "serve")
ON_FEATURE_FAILURE = ("refuse", "null")
FEATURE_KEYS = ("definitions", "store", "key_prefix", "lateness", "on_failure")


@dataclass
class ModelConfig:
    """One served model (see the module docstring for the keys)."""

    name: str
    model: str
    baseline: str | None = None
    entity_keys: list[str] = field(default_factory=list)
    canaries: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=lambda: {"champion": 1.0})
    #: name → location, or name → {model: location, queue: n, timeout: s, memory_mb: m}
    challengers: dict[str, Any] = field(default_factory=dict)
    shadow_share: float = 1.0
    shadow_queue: int = 1000
    shadow_timeout: float = 2.0
    shadow_memory_mb: int | None = None
    salt: str | None = None
    trusted: list[str] = field(default_factory=list)
    version: str | None = None
    log_retention_days: int | None = None
    #: Per-challenger overrides of shadow_queue, shadow_timeout, shadow_memory_mb.
    challenger_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Online features looked up by entity key: {definitions, store, key_prefix, lateness,
    #: on_failure} (see the module docstring); None: the records carry every input.
    features: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for challenger, entry in list(self.challengers.items()):
            if isinstance(entry, Mapping):
                entry = dict(entry)
                if "model" not in entry:
                    raise ConfigError(f"challenger {challenger!r}: say which model (model:)")
                self.challengers[challenger] = str(entry.pop("model"))
                wrong = sorted(set(entry) - {"queue", "timeout", "memory_mb"})
                if wrong:
                    raise ConfigError(
                        f"challenger {challenger!r}: unknown setting(s) {wrong} "
                        "(known: model, queue, timeout, memory_mb)"
                    )
                self.challenger_settings[challenger] = entry
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"model name {self.name!r} cannot name a log folder")
        if self.name.endswith(".shadow"):
            raise ConfigError(f"model name {self.name!r}: '.shadow' names shadow logs")
        for arm in self.canaries:
            if arm == "champion":
                raise ConfigError(f"model {self.name!r}: a canary cannot be named 'champion'")
        from keel.serve.routing import check_weights

        try:
            self.weights = check_weights(self.weights)
        except ConfigError as error:
            raise ConfigError(f"model {self.name!r}: {error}") from None
        unknown = [a for a in self.weights if a != "champion" and a not in self.canaries]
        if unknown:
            raise ConfigError(f"model {self.name!r}: weights for arms with no model: {unknown}")
        if not 0.0 <= float(self.shadow_share) <= 1.0:
            raise ConfigError(f"model {self.name!r}: shadow_share must be in [0, 1]")
        if self.log_retention_days is not None and int(self.log_retention_days) < 1:
            raise ConfigError(f"model {self.name!r}: log_retention_days must be at least 1")
        if int(self.shadow_queue) < 1 or float(self.shadow_timeout) <= 0:
            raise ConfigError(f"model {self.name!r}: shadow_queue ≥ 1 and shadow_timeout > 0")
        if self.features is not None:
            self._check_features()

    def _check_features(self) -> None:
        where = f"model {self.name!r}: features"
        if not isinstance(self.features, Mapping) or "definitions" not in self.features:
            raise ConfigError(f"{where}: a mapping with definitions (a file or a list) and store")
        self.features = dict(self.features)
        unknown = sorted(set(self.features) - set(FEATURE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown} (known: {list(FEATURE_KEYS)})")
        if self.features.get("on_failure", "refuse") not in ON_FEATURE_FAILURE:
            raise ConfigError(f"{where}.on_failure: one of {ON_FEATURE_FAILURE}")
        store = self.features.get("store")
        if store is not None and not str(store).startswith(("sqlite://", "redis://", "rediss://")):
            raise ConfigError(f"{where}.store {store!r}: sqlite:///PATH or redis://HOST:PORT/DB")
        for feature in self.feature_definitions():
            missing = [c for c in feature.entities if c not in self.entity_keys]
            if missing:
                raise ConfigError(
                    f"{where}: feature {feature.name!r} is keyed by {missing[0]!r}, not an "
                    f"entity key of the model (entity_keys: {list(self.entity_keys)})"
                )

    def feature_definitions(self) -> list[Any]:
        """The ``WindowedFeature`` definitions of ``features`` (none without them)."""
        if self.features is None:
            return []
        from keel.features import parse_features

        definitions = self.features["definitions"]
        if isinstance(definitions, list):
            return parse_features(definitions, f"model {self.name!r}: features.definitions")
        import yaml

        path = Path(str(definitions))
        try:
            payload = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(
                f"model {self.name!r}: cannot read the feature definitions {path} ({error})"
            ) from error
        entries = payload.get("features") if isinstance(payload, Mapping) else payload
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: expected a features: list of feature definitions")
        return parse_features(entries, str(path))

    def shadow(self, challenger: str) -> tuple[int, float, int | None]:
        """A challenger's (queue size, timeout, memory limit): its own, or the model's.

        >>> m = ModelConfig("m", "m.skops", challengers={"a": {"model": "a.skops", "queue": 2}})
        >>> m.challengers["a"], m.shadow("a")
        ('a.skops', (2, 2.0, None))
        """
        own = self.challenger_settings.get(challenger, {})
        return (
            int(own.get("queue", self.shadow_queue)),
            float(own.get("timeout", self.shadow_timeout)),
            own.get("memory_mb", self.shadow_memory_mb),
        )

    @property
    def routing_salt(self) -> str:
        """The salt of the canary split (the shadow sample adds ``/shadow``)."""
        return self.salt or self.name


@dataclass
class ServeConfig:
    """The gateway's configuration (see the module docstring)."""

    models: list[ModelConfig]
    log_root: Path = field(
        default_factory=lambda: Path(os.environ.get("KEEL_LOG_ROOT") or Path(".keel") / "logs")
    )
    log_mode: str = field(default_factory=lambda: os.environ.get("KEEL_LOG_MODE") or "durable")
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_048_576
    max_batch: int = 1000
    reload_seconds: float = 30.0
    on_log_failure: str = "refuse"
    min_free_mb: int = 64
    drain_seconds: float = 5.0
    compact_seconds: float = 5.0
    store_url: str | None = None
    workers: int = 1
    commit_timeout: float = 10.0
    #: A replay or backfill: the body may give each record's ``event_times`` (one
    #: ``event_time`` for a single record), logged instead of the moment it arrived.
    accept_event_time: bool = False

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("nothing to serve: name at least one model")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"a model is named twice: {names}")
        if self.log_mode not in MODES:
            raise ConfigError(f"log_mode {self.log_mode!r}: one of {MODES}")
        if self.on_log_failure not in ON_LOG_FAILURE:
            raise ConfigError(f"on_log_failure {self.on_log_failure!r}: one of {ON_LOG_FAILURE}")
        self.log_root = Path(self.log_root)
        if int(self.workers) < 1:
            raise ConfigError(f"workers must be at least 1, not {self.workers}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data ``from_dict`` reads back (how ``--workers`` hands it to each worker).

        >>> config = ServeConfig.from_dict({"models": {"m": {"model": "m.skops"}}})
        >>> ServeConfig.from_dict(config.to_dict()) == config
        True
        """
        plain: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "models"
        }
        plain["log_root"] = str(self.log_root)
        plain["models"] = {
            m.name: {f.name: getattr(m, f.name) for f in fields(m) if f.name != "name"}
            for m in self.models
        }
        return plain

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> ServeConfig:
        """A configuration from plain data (a parsed YAML file).

        >>> ServeConfig.from_dict({"models": {}})
        Traceback (most recent call last):
        ...
        keel.errors.ConfigError: nothing to serve: name at least one model
        """
        payload = dict(payload.get("serve", payload))
        models = payload.pop("models", None) or {}
        if not isinstance(models, Mapping):
            raise ConfigError("models: a mapping of model name to its settings")
        known = {f.name for f in fields(cls)} - {"models"}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ConfigError(f"unknown serve setting(s) {unknown} (known: {sorted(known)})")
        model_keys = {f.name for f in fields(ModelConfig)} - {"name"}
        built = []
        for name, settings in models.items():
            settings = dict(settings or {})
            wrong = sorted(set(settings) - model_keys)
            if wrong:
                raise ConfigError(
                    f"model {name!r}: unknown setting(s) {wrong} (known: {sorted(model_keys)})"
                )
            if "model" not in settings:
                raise ConfigError(f"model {name!r}: say which model to serve (model: FILE or URI)")
            built.append(ModelConfig(name=str(name), **settings))
        return cls(models=built, **payload)

    @classmethod
    def load(cls, path: str | Path) -> ServeConfig:
        """A configuration from a YAML file; relative model paths are read from its folder."""
        import yaml

        path = Path(path)
        try:
            payload = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{path}: cannot read the serve configuration ({error})") from error
        if not isinstance(payload, Mapping):
            raise ConfigError(f"{path}: expected a mapping")
        _features_beside(path, payload)
        config = cls.from_dict(payload)
        for model in config.models:
            model.model = _beside(path, model.model)
            model.baseline = _beside(path, model.baseline) if model.baseline else None
            model.canaries = {k: _beside(path, v) for k, v in model.canaries.items()}
            model.challengers = {k: _beside(path, v) for k, v in model.challengers.items()}
        return config


def _features_beside(config: Path, payload: Mapping[str, Any]) -> None:
    """Feature definition files named relative to the serve configuration: read from its
    folder (resolved before the models are built, since building them reads the files)."""
    models = payload.get("serve", payload).get("models")
    for settings in (models or {}).values() if isinstance(models, Mapping) else ():
        features = settings.get("features") if isinstance(settings, Mapping) else None
        if isinstance(features, dict) and isinstance(features.get("definitions"), str):
            features["definitions"] = _beside(config, features["definitions"])


def _beside(config: Path, location: str) -> str:
    text = str(location)
    if text.startswith("models:/") or Path(text).is_absolute():
        return text
    return str(config.parent / text)
