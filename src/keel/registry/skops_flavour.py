"""scikit-learn models as skops files: saved by type, loaded without unpickling.

skops reads back only types it is told to trust. keel trusts the types of
scikit-learn, NumPy and SciPy (what the estimators are made of); a model holding any
other type (a custom class, a lambda in a FunctionTransformer) is refused when it is
registered, naming the type, rather than saved as something only a pickle could load.

>>> from sklearn.linear_model import LogisticRegression
>>> data, flavour = dump_model(LogisticRegression(C=0.5))
>>> flavour, load_model_bytes(data, "loans@1").C
('sklearn-skops', 0.5)
"""

from __future__ import annotations

from typing import Any

from keel.registry.base import RegistryError

FLAVOUR = "sklearn-skops"
TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy", "builtins", "collections")


def dump_model(model: Any) -> tuple[bytes, str]:
    """(skops bytes, flavour) of a scikit-learn model; RegistryError naming any type skops
    could only load by trusting it.

    >>> class Rule:
    ...     def predict(self, rows): return rows
    >>> dump_model(Rule())
    Traceback (most recent call last):
    ...
    keel.registry.base.RegistryError: cannot register a ...Rule: skops can load it only by ...
    """
    import skops.io as sio

    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    try:
        data = sio.dumps(model)
    except Exception as error:  # noqa: BLE001 - skops raises many kinds; all mean "cannot"
        raise RegistryError(f"cannot register a {kind}: skops cannot save it ({error})") from error
    untrusted = _untrusted(data)
    if untrusted:
        raise RegistryError(
            f"cannot register a {kind}: skops can load it only by trusting "
            f"{', '.join(untrusted)} (keel never unpickles a model); register a scikit-learn "
            "estimator or pipeline"
        )
    return data, FLAVOUR


def load_model_bytes(data: bytes, ref: str) -> Any:
    """The model in a skops file, trusting only scikit-learn, NumPy and SciPy types."""
    import skops.io as sio

    try:
        untrusted = _untrusted(data)
    except Exception as error:  # noqa: BLE001 - a damaged file, whatever skops says
        raise RegistryError(f"{ref}: the model file cannot be read by skops ({error})") from error
    if untrusted:
        raise RegistryError(
            f"{ref}: the model file holds {', '.join(untrusted)}, which keel does not trust; "
            "it was not written by keel"
        )
    trusted = sio.get_untrusted_types(data=data)
    return sio.loads(data, trusted=trusted)


def _untrusted(data: bytes) -> list[str]:
    import skops.io as sio

    return [
        name
        for name in sio.get_untrusted_types(data=data)
        if name.split(".")[0] not in TRUSTED_PACKAGES
    ]
