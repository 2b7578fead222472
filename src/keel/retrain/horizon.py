"""The fixed horizon: how many matured paired labels the gate waits for, set before the shadow.

A one-sided test of H₀: Δ ≤ Δ₀ against a true Δ₁ > Δ₀, at level α with power 1 − β, on
n paired requests whose per-request difference has standard deviation σ₀ under H₀ and
σ₁ under Δ₁, needs

    n = ⌈ ((z₁₋α σ₀ + z₁₋β σ₁) / (Δ₁ − Δ₀))² ⌉

(the normal approximation behind every score test; Connor 1987 for McNemar's test).

For accuracy the per-request difference is +1, 0 or −1, and its variance is fixed by
the discordant share ψ = p10 + p01 (the share of requests on which the two models'
predictions are right for one and wrong for the other, estimated from shadow predictions
alone: two models that predict the same class are both right or both wrong, so ψ is the
share of requests on which they disagree, for binary labels): σ² = ψ − Δ². The
superiority test of the primary metric has Δ₀ = 0; a guarded metric's non-inferiority
test has Δ₀ = −margin and is planned at Δ₁ = 0 (the challenger as good, not better).

The horizon is the largest n over the gate's conditions: the gate promotes only when all
of them hold, so each needs its own power. Powers multiply when the conditions are
independent, so to reach 80% overall with k conditions each needs about 0.8^(1/k).

Reference: Connor (1987), "Sample size for testing differences in proportions for the
paired-sample design", Biometrics 43:207; Liu, Hsueh, Hsieh & Chen (2002), "Tests for
equivalence or non-inferiority for paired binary data", Stat Med 21:231.

>>> accuracy_horizon(min_effect=0.02, discordant_share=0.2, alpha=0.05, power=0.8)
3090
"""

from __future__ import annotations

import math


def _z(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def paired_horizon(
    effect: float,
    null: float,
    sd_alternative: float,
    sd_null: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Paired requests for a one-sided test of Δ ≤ ``null`` to have ``power`` at Δ = ``effect``.

    >>> paired_horizon(effect=0.0, null=-0.01, sd_alternative=0.2 ** 0.5)
    12366
    """
    if effect <= null:
        raise ValueError(f"the planned effect {effect} must exceed the null {null}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power must lie in (0, 1)")
    sd_null = sd_alternative if sd_null is None else sd_null
    root = (_z(1 - alpha) * sd_null + _z(power) * sd_alternative) / (effect - null)
    return max(2, math.ceil(root * root))


def accuracy_horizon(
    min_effect: float,
    discordant_share: float,
    alpha: float = 0.05,
    power: float = 0.8,
    margin: float = 0.0,
) -> int:
    """Paired labels for accuracy: superiority (``margin`` 0) or non-inferiority at −margin.

    Plans the test of Δ ≤ −margin at the true Δ = ``min_effect``. The variance under each
    hypothesis is the discordant share less the squared difference (ψ − Δ²), holding ψ.

    >>> accuracy_horizon(min_effect=0.0, discordant_share=0.2, margin=0.01)
    12362
    """
    psi = discordant_share
    if not 0 < psi <= 1 or abs(min_effect) > psi:
        raise ValueError(
            f"a discordant share {psi} cannot carry an accuracy difference {min_effect}"
        )
    null = -margin
    return paired_horizon(
        min_effect,
        null,
        math.sqrt(psi - min_effect**2),
        math.sqrt(max(psi - null**2, 1e-12)),
        alpha,
        power,
    )


def discordant_share(champion_predictions, challenger_predictions) -> float:
    """Share of shadowed requests on which two binary classifiers disagree (no labels needed).

    With binary labels, disagreement is exactly discordance: one of the two is right.

    >>> discordant_share([0, 1, 1, 0], [0, 1, 0, 1])
    0.5
    """
    import numpy as np

    a, b = np.asarray(champion_predictions), np.asarray(challenger_predictions)
    return float(np.mean(a != b))
