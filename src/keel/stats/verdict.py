"""The default drift verdict: a test says the change is real, an effect size says it matters.

Per column, the default pairs

* a test with a p-value: Kolmogorov–Smirnov for numeric columns,
  chi-square of homogeneity for categorical and boolean ones; and
* an effect size in units a person can read, with a floor: the Wasserstein
  distance in reference standard deviations for numeric columns (floor 0.1),
  the population stability index for categorical ones (floor 0.1; PSI weighs
  relative change, so a category shrinking from 10% to 1% of rows scores
  0.21 although only 9% of rows moved).

The p-values of all tested columns are adjusted together by
Benjamini–Hochberg. A column drifts when its adjusted p-value is below α
(0.05) **and** its effect size is at or above the floor. The dataset drifts
when any column does. A p-value alone flags meaningless shifts on large
tables; an effect size alone flags noise on small ones; both together do
neither.

A column can instead be decided by one chosen method: a test by its
(adjusted) p-value below the threshold, a distance by its value at or above
the threshold.

>>> rule = DefaultRule()
>>> rule.decide(p_value_adjusted=0.001, effect_size=0.25, kind="numeric")
True
>>> rule.decide(p_value_adjusted=0.001, effect_size=0.02, kind="numeric")
False
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DefaultRule:
    alpha: float = 0.05
    numeric_test: str = "ks"
    numeric_effect: str = "wasserstein"
    numeric_floor: float = 0.1
    categorical_test: str = "chisquare"
    categorical_effect: str = "psi"
    categorical_floor: float = 0.1
    #: The smallest change of a numeric column's robust spread that pages, as |ln ratio|
    #: (0.2: about ×1.22 or ×0.82); used with a calibrated threshold only.
    spread_floor: float = 0.2

    def test_for(self, kind: str) -> str:
        return self.numeric_test if kind == "numeric" else self.categorical_test

    def effect_for(self, kind: str) -> str:
        return self.numeric_effect if kind == "numeric" else self.categorical_effect

    def floor_for(self, kind: str) -> float:
        return self.numeric_floor if kind == "numeric" else self.categorical_floor

    def decide(self, p_value_adjusted: float, effect_size: float, kind: str) -> bool:
        """The verdict for one column from its adjusted p-value and effect size."""
        return bool(p_value_adjusted < self.alpha and effect_size >= self.floor_for(kind))

    def describe(self) -> str:
        return (
            f"a column drifts when its Benjamini–Hochberg adjusted p-value "
            f"({self.numeric_test} for numeric, {self.categorical_test} for categorical columns) "
            f"is below {self.alpha:g} and its effect size is at or above the floor "
            f"({self.numeric_effect} ≥ {self.numeric_floor:g} reference standard deviations; "
            f"{self.categorical_effect} ≥ {self.categorical_floor:g})"
        )
