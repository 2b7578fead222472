"""Calibration: per-column thresholds that meet a monitor's false alarm rate.

A monitor asks, window after window, whether anything changed. A fixed
threshold ignores how much a statistic varies between windows of that size
when nothing changed, and an alert every week on noise gets a monitor muted.
So keel cuts the baseline's reference data into windows of the monitor's
size, in time order when it has a timestamp (seasonality and
autocorrelation then count as normal), and compares **each window with the
reference without it** (comparing a window with a reference that contains it
biases the spread low: NannyML's issue #426). Each column's effect statistic
(Wasserstein in reference standard deviations, or PSI) over those K windows
is fitted by a distribution that extrapolates to tails the K windows cannot
show: PSI (categorical columns) by a scaled chi-square c·χ²(ν) matched to its
mean and variance (c = var/(2·mean), ν = 2·mean²/var; under no drift PSI
times the effective sample size is approximately χ²); the Wasserstein
distance (numeric columns), whose tail a χ² underestimates, by a Pearson
type III matched to mean, variance and skewness. A threshold is never below
the largest value seen on the reference when the wanted tail is beyond what
the reference windows can show. The threshold for each of the m
columns is that fit's quantile at 1 − (1 − r)^(1/m), so that a window has
any false alert with probability at most r, the monitor's chosen rate
(Šidák across columns).

With fewer than ``min_windows`` reference windows keel does not pretend:
the calibration records the reason and checks fall back to the one-off rule.

>>> import numpy as np
>>> fit = scaled_chi2_threshold(np.random.default_rng(0).chisquare(9, 500) * 0.01, 0.001)
>>> 0.25 < fit["threshold"] < 0.35, round(fit["dof"])
(True, 9)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import FormatError

MIN_WINDOWS = 20
FORMAT_VERSION = 1


@dataclass
class Calibration:
    baseline_id: str
    window: str
    false_alarm_rate: float
    reference_windows: int
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    volume: dict[str, float] = field(default_factory=dict)
    fallback: str | None = None
    estimator: str = "scaled_chi2"
    #: Per numeric column, the threshold of |ln(robust spread ratio)| against the rest.
    spread_thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def threshold(self, column: str) -> float | None:
        entry = self.thresholds.get(column)
        return None if entry is None or self.fallback else float(entry["threshold"])

    def spread_threshold(self, column: str) -> float | None:
        """The calibrated threshold of a numeric column's |log ratio of robust spreads|."""
        entry = self.spread_thresholds.get(column)
        return None if entry is None or self.fallback else float(entry["threshold"])

    def applies_to(self, rows: int) -> bool:
        """Thresholds fit windows of about the calibrated size: not one under half of it."""
        return rows >= max(0.5 * self.volume.get("mean_rows", 0.0), 30)

    def statistic(self, column: str) -> str | None:
        """The effect statistic a column's threshold was calibrated on."""
        entry = self.thresholds.get(column)
        return None if entry is None else entry.get("statistic")

    def check_fits(self, baseline_id: str, window: str) -> None:
        """A ConfigError unless this calibration was made for that baseline and window."""
        from keel.errors import ConfigError

        if baseline_id != self.baseline_id or window != self.window:
            raise ConfigError(
                f"the calibration is for baseline {self.baseline_id} and windows of "
                f"{self.window}, not baseline {baseline_id} and windows of {window}"
            )

    @classmethod
    def fit(
        cls,
        baseline: Any,
        reference: Any,
        window: str,
        timestamp: str | None = None,
        false_alarm_rate: float = 0.01,
        min_windows: int = MIN_WINDOWS,
        leave_one_out: bool = True,
    ) -> Calibration:
        """Calibrate ``baseline`` on its reference data for windows of ``window``.

        ``leave_one_out=False`` compares each window with the whole reference
        (the biased way; kept to measure the difference).

        ``reference`` may be a list of several reference periods (say, one data set per
        year): their windows are pooled, each compared with all the others, so the
        thresholds learn how much windows differ across periods as well as within one. The
        trade-off: a threshold that spans years also spans the slow drift between them, so
        it is wider and a real change must be larger to page. keel never re-baselines on a
        rolling window by itself: that would absorb a slow drift that adds up.
        """
        from keel.windows import WindowSpec, cut

        spec = WindowSpec.parse(window, incomplete="drop")
        timestamp = timestamp or next(
            (c.name for c in baseline.schema.columns if c.role == "timestamp"), None
        )
        periods = list(reference) if isinstance(reference, list | tuple) else [reference]
        windows = [
            w
            for period in periods
            for w in cut(  # embedding, text and image columns read as the baseline read them
                baseline.open_current(period, reference=True),
                spec,
                baseline.schema,
                timestamp,
                baseline.bin_edges,
            )
            if w.rows
        ]
        calibration = cls(baseline.id, spec.describe(), false_alarm_rate, len(windows))
        # A window the reference starts or ends inside is short by construction: its drift
        # statistics count, its row count would understate the volume a window brings.
        rows = np.array([w.rows for w in windows if not w.partial], dtype=float)
        if len(rows):
            calibration.volume = {
                "mean_rows": float(rows.mean()),
                "std_rows": float(rows.std(ddof=1)) if len(rows) > 1 else 0.0,
            }
        if len(windows) < min_windows:
            calibration.fallback = (
                f"only {len(windows)} reference windows of {spec.describe()} (at least "
                f"{min_windows} needed): the one-off rule decides instead"
            )
            return calibration
        spreads: dict[str, np.ndarray] = {}
        statistics = window_statistics(baseline, windows, leave_one_out, spreads)
        columns = len(statistics) + len(spreads)  # every statistic that can alert
        per_column = 1 - (1 - false_alarm_rate) ** (1 / max(columns, 1))
        for column, values in spreads.items():
            calibration.spread_thresholds[column] = pearson3_threshold(values, per_column) | {
                "statistic": "abs_log_spread_ratio"
            }
        estimators = {"wasserstein": pearson3_threshold}
        for column, (statistic, values) in statistics.items():
            fit = estimators.get(statistic, scaled_chi2_threshold)
            calibration.thresholds[column] = (
                fit(values, per_column)
                | {"statistic": statistic}
                | {"spread": threshold_spread(fit, values, per_column, (baseline.id, column))}
            )
        return calibration

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Calibration:
        if payload.get("format_version", 1) > FORMAT_VERSION:
            raise FormatError("calibration format is newer than this keel reads; upgrade keel")
        return cls(**{k: v for k, v in payload.items() if k != "format_version"})

    def save(self, path: str | Path) -> None:
        from keel._files import write_atomically

        write_atomically(Path(path), json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise FormatError(f"{path}: not a readable keel calibration ({error})") from error


def window_statistics(
    baseline: Any, windows: list, leave_one_out: bool, spreads: dict | None = None
) -> dict[str, tuple[str, np.ndarray]]:
    """Each column's effect statistic (name, values) per window against the rest (or all).

    Leaving one out, a numeric column whose windows are all profiled exactly is
    computed from the values themselves (``exact_wasserstein_loo``); other
    columns compare profiles, merged without the window.
    """
    from keel.checks.drift import ProfileSide, compare_sides, compared_columns
    from keel.stats.verdict import DefaultRule

    profiles = [w.profile for w in windows]
    values: dict[str, list[float]] = {}
    profile_spreads: dict[str, list[float]] = {}
    statistic_of: dict[str, str] = {}
    exact: dict[str, np.ndarray] = {}
    if leave_one_out and profiles:
        kinds = compared_columns(profiles[0].schema)
        for column, kind in kinds.items():
            parts = _exact_values(profiles, column) if kind == "numeric" else None
            if parts is not None:
                exact[column] = exact_wasserstein_loo(parts)
                statistic_of[column] = DefaultRule().effect_for("numeric")
                if spreads is not None:
                    ratios = np.abs(exact_spread_loo(parts))
                    if np.isfinite(ratios).all():
                        spreads[column] = ratios
        profiles = [_without(p, exact) for p in profiles]
        prefixes = _running_merges(profiles)
        suffixes = _running_merges(profiles[::-1])[::-1]
    for index, window in enumerate(profiles):
        if not window.columns:
            break
        if leave_one_out:
            parts = [
                p
                for p in (
                    prefixes[index - 1] if index else None,
                    suffixes[index + 1] if index + 1 < len(profiles) else None,
                )
                if p
            ]
            rest = _copy(parts[0])
            for part in parts[1:]:
                rest.merge(part)
        else:
            rest = baseline.profile
        report = compare_sides(ProfileSide(rest), ProfileSide(window))
        for column in report.columns:
            if column.effect_size is not None and np.isfinite(column.effect_size):
                values.setdefault(column.column, []).append(float(column.effect_size))
                statistic_of[column.column] = column.effect_method
            ratio = column.details.get("log_spread_ratio")
            if column.kind == "numeric" and ratio is not None:
                profile_spreads.setdefault(column.column, []).append(abs(float(ratio)))
    out = {
        column: (statistic_of[column], np.array(v))
        for column, v in values.items()
        if len(v) == len(profiles)
    }
    for column, statistics in exact.items():
        if np.isfinite(statistics).all():
            out[column] = (statistic_of[column], statistics)
    if spreads is not None:
        for column, ratios in profile_spreads.items():
            if len(ratios) == len(profiles) and column in out:
                spreads[column] = np.array(ratios)
        for column in [c for c in spreads if c not in out]:
            del spreads[column]
        sorted_spreads = dict(sorted(spreads.items()))
        spreads.clear()
        spreads.update(sorted_spreads)
    return dict(sorted(out.items()))


def exact_spread_loo(parts: list[np.ndarray]) -> np.ndarray:
    """ln(robust scale of window i / robust scale of all other windows), for every i, exact
    on the values (IQR/1.349, lower quantiles); NaN where a side has no spread.

    >>> import numpy as np
    >>> parts = [np.arange(100.0), np.arange(100.0) * 2, np.arange(100.0) * 2]
    >>> round(float(exact_spread_loo(parts)[0]), 2)  # half the others' spread
    -0.69
    """
    from keel.stats.wasserstein import robust_scale_of

    everything = np.sort(np.concatenate(parts))
    grid, counts = np.unique(everything, return_counts=True)
    out = np.full(len(parts), np.nan)
    for index, part in enumerate(parts):
        if len(part) < 2 or len(everything) - len(part) < 2:
            continue
        at = np.searchsorted(grid, part)
        rest = (counts - np.bincount(at, minlength=len(grid))).astype(np.float64)
        before = robust_scale_of(grid, rest)
        now = robust_scale_of(np.sort(part), np.ones(len(part)))
        if before > 0 and now > 0:
            out[index] = np.log(now / before)
    return out


#: Above this many (windows × distinct values) a column is calibrated on its profiles instead.
EXACT_BUDGET = 400_000_000


def _exact_values(profiles: list, column: str) -> list[np.ndarray] | None:
    """Each window's sorted finite values of ``column``, if every window kept them all."""
    sketches = [p.columns[column].sketch for p in profiles]
    if not all(s.is_exact for s in sketches):
        return None
    parts = [s.weighted()[0] for s in sketches]
    if len(parts) * sum(len(p) for p in parts) > EXACT_BUDGET:
        return None
    return parts


def exact_wasserstein_loo(parts: list[np.ndarray]) -> np.ndarray:
    """W₁(window i, all other windows) over the others' scale, for every i.

    The scale is chosen as ``keel.stats.wasserstein`` chooses it: the standard deviation,
    or IQR/1.349 when the standard deviation is more than 3× that (``choose_scale``).

    Exact on the values (no sketch): the rest's CDF is (N·F_all − nᵢ·Fᵢ)/(N − nᵢ),
    so |F_rest − Fᵢ| = N·|F_all − Fᵢ|/(N − nᵢ) on the grid of all values. NaN for an
    empty window; a constant rest gives 0 if nothing moved, else infinity (as
    ``keel.stats.wasserstein`` does).

    >>> import numpy as np
    >>> from scipy.stats import wasserstein_distance
    >>> parts = [np.array([0.0, 1.0]), np.array([2.0, 5.0]), np.array([1.0, 3.0, 4.0])]
    >>> rest = np.concatenate(parts[1:])
    >>> bool(np.isclose(exact_wasserstein_loo(parts)[0],
    ...                 wasserstein_distance(parts[0], rest) / rest.std(ddof=1)))
    True
    """
    from keel.stats.wasserstein import choose_scale, robust_scale_of

    everything = np.sort(np.concatenate(parts))
    total = len(everything)
    grid, counts = np.unique(everything, return_counts=True)
    all_cdf = np.cumsum(counts)[:-1] / total
    steps = np.diff(grid)
    shift = float(everything[total // 2]) if total else 0.0  # sums around a pilot: stable
    sum_all = float(np.sum(everything - shift))
    squares_all = float(np.sum((everything - shift) ** 2))
    out = np.full(len(parts), np.nan)
    for index, part in enumerate(parts):
        size, rest = len(part), total - len(part)
        if size == 0 or rest < 2:
            continue
        at = np.searchsorted(grid, part)
        window_cdf = np.cumsum(np.bincount(at, minlength=len(grid)))[:-1] / size
        distance = total / rest * float(np.dot(np.abs(all_cdf - window_cdf), steps))
        rest_sum = sum_all - float(np.sum(part - shift))
        rest_squares = squares_all - float(np.sum((part - shift) ** 2))
        variance = max(rest_squares - rest_sum * rest_sum / rest, 0.0) / (rest - 1)
        rest_counts = counts - np.bincount(at, minlength=len(grid))
        scale, _ = choose_scale(
            float(np.sqrt(variance)), robust_scale_of(grid, rest_counts.astype(np.float64))
        )
        if scale > 0:
            out[index] = distance / scale
        else:
            out[index] = 0.0 if distance == 0 else float("inf")
    return out


def _without(profile: Any, columns: Mapping) -> Any:
    """The profile without ``columns`` (they were calibrated on their values)."""
    from keel.profile import Profile
    from keel.schema import Schema

    kept = [spec for spec in profile.schema.columns if spec.name not in columns]
    return Profile(
        Schema(kept), profile.rows, {spec.name: profile.columns[spec.name] for spec in kept}
    )


SPREAD_RESAMPLES = 200


def threshold_spread(fit: Any, values: np.ndarray, tail: float, key: tuple) -> dict[str, Any]:
    """How much the threshold would move on another draw of reference windows.

    The fit is repeated on ``SPREAD_RESAMPLES`` resamples (with replacement) of
    the K window statistics, seeded from ``key``; the 5% and 95% quantiles of
    the refitted thresholds, and their ratio to the median, say how settled the
    threshold is. Determinism makes a threshold repeatable; only more reference
    windows make it certain.
    """
    from keel.seeds import derive_seed

    rng = np.random.default_rng(derive_seed(*key, "threshold_spread"))
    draws = rng.integers(0, len(values), size=(SPREAD_RESAMPLES, len(values)))
    refits = np.array([fit(values[row], tail)["threshold"] for row in draws])
    low, median, high = np.quantile(refits, [0.05, 0.5, 0.95])
    return {
        "resamples": SPREAD_RESAMPLES,
        "low": float(low),
        "high": float(high),
        "relative_width": float((high - low) / median) if median > 0 else None,
    }


def scaled_chi2_threshold(values: np.ndarray, tail: float) -> dict[str, Any]:
    """The (1 − tail) quantile of c·χ²(ν) fitted to ``values`` by their mean and variance."""
    from scipy import special

    mean, variance = float(np.mean(values)), float(np.var(values, ddof=1))
    summary = {
        "mean": mean,
        "variance": variance,
        "windows": len(values),
        "max_seen": float(np.max(values)),
        "estimator": "scaled_chi2",
    }
    if mean <= 0 or variance <= 0:
        return summary | {"threshold": float(np.max(values)), "scale": 0.0, "dof": 0.0}
    scale, dof = variance / (2 * mean), 2 * mean * mean / variance
    # chdtri(ν, q) is the χ²(ν) quantile whose upper tail has probability q.
    threshold = scale * float(special.chdtri(dof, tail))
    return summary | {"threshold": max(threshold, _floor(values, tail)), "scale": scale, "dof": dof}


def pearson3_threshold(values: np.ndarray, tail: float) -> dict[str, Any]:
    """The (1 − tail) quantile of a Pearson type III (a shifted gamma) fitted by three moments.

    For Wasserstein distances a scaled χ² is too light in the tail (measured:
    1% asked, 2.8% got, on normal data); matching the skewness as well brings
    the rate to 1.0–1.7% (``benchmarks/calibration_error_rates.py``).
    """
    from scipy import stats

    mean, deviation = float(np.mean(values)), float(np.std(values, ddof=1))
    skew = float(stats.skew(values, bias=False))
    summary = {
        "mean": mean,
        "variance": deviation**2,
        "skew": skew,
        "windows": len(values),
        "max_seen": float(np.max(values)),
        "estimator": "pearson3",
    }
    if deviation <= 0:
        return summary | {"threshold": float(np.max(values))}
    threshold = float(stats.pearson3.isf(tail, skew, loc=mean, scale=deviation))
    return summary | {"threshold": max(threshold, _floor(values, tail))}


def _floor(values: np.ndarray, tail: float) -> float:
    """The largest value seen, when the wanted quantile lies beyond what K windows can show."""
    return float(np.max(values)) if len(values) * tail < 1 else float("-inf")


def _running_merges(profiles: list) -> list:
    """merged[i] = profiles[0] ⊕ … ⊕ profiles[i], each a separate object."""
    merged, running = [], None
    for profile in profiles:
        running = _copy(profile) if running is None else _copy(running).merge(profile)
        merged.append(running)
    return merged


def _copy(profile: Any) -> Any:
    from keel.profile import Profile

    return Profile.from_bytes(profile.to_bytes())
