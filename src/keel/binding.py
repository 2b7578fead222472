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

from keel.registry.base import BASELINE_ARTIFACT, RegistryError, parse_ref, resolve

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

    if store is None:
        from keel.store import ResultStore

        store = getattr(registry, "store", None) or ResultStore()
    registry = registry if registry is not None else open_registry(store=store)
    if parse_ref(ref)[1] is not None:  # an alias read: compare it with the audited state
        from keel.registry.aliases import reconcile

        reconcile(registry, store, parse_ref(ref)[0])
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
    store.register_baseline(baseline, path)
    store.register_model(version.name, str(version.version), baseline=baseline.fingerprint)
    return path


def bind_calibration(
    baseline_path: str | Path,
    window: str,
    false_alarm_rate: float = 0.01,
    registry: Any = None,
    store: Any = None,
) -> Path | None:
    """The calibration of a bound baseline for windows of ``window``, made the first time a
    monitor binds the version (on its recorded training rows) and kept beside the baseline;
    None, with a warning saying why, when it cannot be made. A reference with fewer than
    20 such windows is calibrated too, and the warning says the one-off rule decides."""
    import warnings

    from keel.baseline import Baseline
    from keel.calibration import Calibration
    from keel.errors import KeelError
    from keel.registry import open_registry

    bound = bound_version(str(baseline_path))
    if bound is None:
        return None
    spec = window.replace("/", "_")
    path = Path(baseline_path).with_name(f"baseline.calibration-{spec}-{false_alarm_rate:g}.json")
    if path.is_file():
        return path
    if store is None:
        from keel.store import ResultStore

        store = getattr(registry, "store", None) or ResultStore()
    registry = registry if registry is not None else open_registry(store=store)
    name, number = bound
    version = registry.get_version(name, number)
    record = registry.run_record(version.run_id)
    baseline = Baseline.load(baseline_path)
    train = _training_rows(record)
    if isinstance(train, str):
        warnings.warn(f"{version.ref}: not calibrated for {window} windows: {train}", stacklevel=2)
        return None
    timestamp = (record.get("roles") or {}).get("timestamp")
    if (record.get("baseline") or {}).get("outputs"):  # the reference holds keel's scores
        train = _scored(registry, version.ref, record, train)
    try:
        calibration = Calibration.fit(
            baseline, train, window, timestamp=timestamp, false_alarm_rate=false_alarm_rate
        )
    except KeelError as error:
        warnings.warn(f"{version.ref}: not calibrated for {window} windows: {error}", stacklevel=2)
        return None
    if calibration.fallback:
        warnings.warn(f"{version.ref}: {calibration.fallback}", stacklevel=2)
    calibration.save(path)
    store.register_calibration(calibration, path)
    return path


def _training_rows(record: dict) -> Any:
    """The recorded training rows, read again, or why they cannot be (a string)."""
    from keel.errors import KeelError
    from keel.tracking import prepare_data, recorded_digest

    data = record.get("data") or {}
    train = data.get("train") or {}
    if not train.get("reproducible"):
        return "it was trained on an in-memory table with no source"
    split = data.get("split") or {}
    timestamp = split.get("timestamp") or (record.get("roles") or {}).get("timestamp")
    if not timestamp:
        return "the training data has no timestamp column to cut windows by"
    try:
        rows, _, found = prepare_data(
            train["source"],
            None if split else data["holdout"]["source"],
            split.get("holdout_last"),
            timestamp,
            recorded_digest(data),
        )
    except KeelError as error:
        return f"the training data cannot be read ({error})"
    if found["train"]["fingerprint"] != train["fingerprint"]:
        return f"{train['source']} changed since the model was trained (fingerprint differs)"
    return rows


def _scored(registry: Any, ref: str, record: dict, rows: Any) -> Any:
    """The training rows with the version's own outputs, as ``keel.track`` scored them for
    the baseline, so that the outputs' thresholds are calibrated too."""
    from keel.registry.base import load_model
    from keel.tracking import score_holdout, with_outputs

    roles = record.get("roles") or {}
    target = roles.get("target") or "target"
    excluded = {c for c in (target, roles.get("timestamp"), roles.get("id")) if c}
    scored, _ = score_holdout(load_model(registry, ref), rows, target, excluded)
    return with_outputs(rows, scored, target)


def bound_version(path: str) -> tuple[str, int] | None:
    """(name, version) of a baseline path ``bind_baseline`` made, else None.

    >>> bound_version(".keel/registry-cache/loans/3/baseline.keel")
    ('loans', 3)
    """
    parts = Path(path).parts
    if len(parts) >= 4 and parts[-4] == CACHE.name and parts[-2].isdigit():
        return parts[-3], int(parts[-2])
    return None
