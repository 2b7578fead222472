"""Data quality and pipeline checks: one window's profile against the reference's.

Every check returns Results (check ``quality``), each with a documented
default that a person can reason about:

* ``missing_share``: share of rows null or NaN. Alert above the reference's
  share plus the larger of 2 percentage points and 3 binomial standard errors.
* ``nonfinite_count``: NaN and ±inf values; alert when they appear in a
  column whose reference had none.
* ``out_of_range_share``: share of values outside the reference's [min, max]
  (from the window's sketch, within twice its rank error). Alert above the
  larger of 1% and ten times 1/reference count (a continuous column lands a
  few values past its training extremes by chance).
* ``unit_change``: ratio of interquartile ranges, current over reference (a
  unit change scales the spread, a shift does not); alert when it is
  ≥ 10^1.5 (≈ 32×) or ≤ 10^-1.5, and name the power of ten (a likely unit
  change: cents for euros, grams for kilograms).
* ``unseen_share``: share of rows in categories the reference never had;
  alert above 1%, listing the new values.
* Every share-based alert (``missing_share``, ``out_of_range_share``,
  ``unseen_share``) also needs an excess over the reference's own rate of at
  least max(3 rows, 3 binomial standard errors): one row in a small window is
  not a data-quality failure. On a prediction or score column, unseen, vanished
  and out-of-range values are ``prediction_drift`` findings (``warn``), never
  quality alerts (``as_output_findings``). ``vanished_categories``: categories
  the reference had at ≥ 1% that are absent though at least 5 rows of each
  were expected.
* ``constant``: a column with a single value in a window of at least 30
  values, where the reference had several (warn).
* ``volume``: rows in the window against production's own recent windows
  (their median and median absolute deviation) or a declared expected rate,
  never the training set's rows per window: alert outside expected ±
  max(4 spreads, half of expected); an empty window alerts. A partial window
  (the data starts or ends inside it) is never judged on volume:
  ``insufficient_data``.
* ``freshness_lag_seconds``: time from the newest event in the window to the
  window's end; alert when the newest event leaves more than half the window
  uncovered.

>>> from keel.profile import NumericProfile
>>> import numpy as np
>>> reference, window = NumericProfile(), NumericProfile()
>>> reference.update_values(np.arange(1.0, 101.0))
>>> window.update_values(np.arange(1.0, 101.0) * 100)
>>> [r.status for r in column_checks("amount", "numeric", reference, window)]
['ok', 'ok', 'alert', 'alert', 'ok']
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from keel.profile import CategoricalProfile, NumericProfile
from keel.result import Result
from keel.stats.histogram import quantile
from keel.stats.samples import NumericSample, cdf_at

UNIT_CHANGE_LOG10 = 1.5
UNSEEN_SHARE = 0.01


def column_checks(name: str, kind: str, reference: Any, window: Any) -> list[Result]:
    """Every quality check that applies to one column of one window."""
    if window.rows == 0:
        return [
            _result(
                "missing_share",
                name,
                None,
                None,
                "insufficient_data",
                {"reason": "no rows in the window"},
            )
        ]
    results = [_missing(name, reference, window)]
    if (
        isinstance(reference, NumericProfile)
        and isinstance(window, NumericProfile)
        and (kind == "numeric")
    ):
        results.append(_nonfinite(name, reference, window))
        if reference.count and window.count:
            reference_sample = NumericSample.from_profile(reference)
            window_sample = NumericSample.from_profile(window)
            results.append(_out_of_range(name, reference, window, window_sample))
            results.append(_unit_change(name, reference_sample, window_sample))
            results.extend(
                _constant(
                    name,
                    reference.minimum < reference.maximum,
                    window.count,
                    window.minimum == window.maximum,
                )
            )
    elif isinstance(reference, CategoricalProfile) and isinstance(window, CategoricalProfile):
        results.extend(_categories(name, reference, window))
        results.extend(_constant(name, reference.distinct > 1, window.count, window.distinct == 1))
    return results


#: How many earlier production windows set a window's expected volume.
RECENT_WINDOWS = 8


def volume_check(
    rows: int, recent: list[float] | None = None, expected_rows: float | None = None
) -> Result:
    """A window's rows against production's own recent windows, or a declared rate.

    ``expected_rows`` (declared: ``expected_rows_per_window`` in ``keel.yaml``) wins;
    otherwise the median of the last ``RECENT_WINDOWS`` whole windows, with a spread of
    1.4826 × their median absolute deviation (three windows or more). Alert outside
    expected ± max(4 spreads, half of expected); an empty window alerts whenever rows were
    expected. Never the training set's rows per window: a training set says nothing about
    the rate at which production arrives.

    >>> volume_check(1000, [980.0, 1010.0, 1005.0, 995.0]).status
    'ok'
    >>> volume_check(300, [980.0, 1010.0, 1005.0, 995.0]).status
    'alert'
    >>> volume_check(300, expected_rows=320).status, volume_check(300).status
    ('ok', 'insufficient_data')
    """
    recent = [float(r) for r in (recent or [])][-RECENT_WINDOWS:]
    if expected_rows is not None:
        expected, spread = float(expected_rows), float(np.sqrt(max(expected_rows, 0.0)))
        basis = "declared expected_rows_per_window"
    elif recent:
        expected = float(np.median(recent))
        deviation = float(np.median(np.abs(np.array(recent) - expected)))
        spread = 1.4826 * deviation if len(recent) >= 3 else 0.0
        basis = f"the median of the {len(recent)} production windows before it"
    else:
        return _unjudged_volume(
            rows,
            "no earlier production window and no expected_rows_per_window to judge its "
            "volume against",
        )
    allowed = max(4 * spread, 0.5 * expected)
    low, high = expected - allowed, expected + allowed
    status = "alert" if (rows == 0 and expected > 0) or not low <= rows <= high else "ok"
    return _result(
        "volume",
        None,
        float(rows),
        high if rows > expected else low,
        status,
        {"expected_rows": expected, "allowed_deviation": allowed, "basis": basis},
    )


def partial_volume(rows: int, expected_rows: float | None = None) -> Result:
    """The volume of a partial window (the data starts or ends inside it): not judged."""
    return _unjudged_volume(
        rows,
        "the data starts or ends inside this window: its volume is not judged",
        expected_rows=expected_rows,
        partial=True,
    )


def _unjudged_volume(rows: int, reason: str, **details: Any) -> Result:
    """A window's row count, stored but not judged (``insufficient_data``), and why."""
    return _result(
        "volume", None, float(rows), None, "insufficient_data", {**details, "reason": reason}
    )


def freshness_check(
    column: str, newest_seconds: float | None, window_end_seconds: float, window_seconds: float
) -> Result:
    if newest_seconds is None:
        return _result(
            "freshness_lag_seconds",
            column,
            None,
            window_seconds / 2,
            "insufficient_data",
            {"reason": "no timestamps in the window"},
        )
    lag = max(window_end_seconds - newest_seconds, 0.0)
    status = "alert" if lag > window_seconds / 2 else "ok"
    return _result("freshness_lag_seconds", column, lag, window_seconds / 2, status, {})


def _missing(name: str, reference: Any, window: Any) -> Result:
    reference_share = reference.missing / reference.rows if reference.rows else 0.0
    share = window.missing / window.rows
    noise = 3 * np.sqrt(reference_share * (1 - reference_share) / window.rows)
    threshold = reference_share + max(0.02, noise)
    return _share_result(
        "missing_share",
        name,
        share,
        threshold,
        reference_share,
        window.rows,
        {"reference_share": reference_share, "missing": window.missing},
    )


def _nonfinite(name: str, reference: NumericProfile, window: NumericProfile) -> Result:
    count = window.nan + window.pos_inf + window.neg_inf
    reference_count = reference.nan + reference.pos_inf + reference.neg_inf
    status = "alert" if count and not reference_count else "ok"
    return _result(
        "nonfinite_count",
        name,
        float(count),
        0.0,
        status,
        {
            "nan": window.nan,
            "pos_inf": window.pos_inf,
            "neg_inf": window.neg_inf,
            "reference_count": reference_count,
        },
    )


def _out_of_range(
    name: str, reference: NumericProfile, window: NumericProfile, sample: NumericSample
) -> Result:
    below = cdf_at(
        sample.values, sample.weights, np.array([np.nextafter(reference.minimum, -np.inf)])
    )[0]
    at_or_below_max = cdf_at(sample.values, sample.weights, np.array([reference.maximum]))[0]
    share = float(below + (1 - at_or_below_max))
    threshold = max(0.01, 10 / reference.count)
    # A fresh value of a continuous column lands outside n reference values' range with
    # probability 2/(n + 1): the reference's own rate.
    return _share_result(
        "out_of_range_share",
        name,
        share,
        threshold,
        2 / (reference.count + 1),
        window.count,
        {
            "reference_min": reference.minimum,
            "reference_max": reference.maximum,
            "error_bound": 2 * window.rank_error,
        },
    )


def _unit_change(name: str, reference: NumericSample, window: NumericSample) -> Result:
    # A change of unit multiplies every value by one factor, so it scales the spread too; a
    # shift does not. The interquartile range is the spread: a ratio of medians alone swings
    # wildly for a column centred near zero.
    reference_spread = quantile(reference, 0.75) - quantile(reference, 0.25)
    window_spread = quantile(window, 0.75) - quantile(window, 0.25)
    threshold = 10**UNIT_CHANGE_LOG10
    details = {
        "reference_median": quantile(reference, 0.5),
        "current_median": quantile(window, 0.5),
        "reference_iqr": reference_spread,
        "current_iqr": window_spread,
    }
    if reference_spread <= 0 or window_spread <= 0:
        return _result(
            "unit_change", name, None, threshold, "ok", details | {"reason": "no spread to compare"}
        )
    ratio = window_spread / reference_spread
    changed = abs(np.log10(ratio)) >= UNIT_CHANGE_LOG10
    if changed:
        details["likely_factor"] = float(10 ** round(np.log10(ratio)))
    return _result(
        "unit_change", name, float(ratio), threshold, "alert" if changed else "ok", details
    )


def _categories(name: str, reference: CategoricalProfile, window: CategoricalProfile) -> list:
    if not (reference.is_exact and window.is_exact) or window.count == 0:
        return []
    known = reference.counts or {}
    unseen = {value: count for value, count in (window.counts or {}).items() if value not in known}
    unseen_share = sum(unseen.values()) / window.count
    listed = sorted(unseen, key=lambda value: -unseen[value])[:10]
    results = [
        _share_result(
            "unseen_share",
            name,
            unseen_share,
            UNSEEN_SHARE,
            0.0,
            window.count,
            {"new_values": listed, "new_value_count": len(unseen)},
        )
    ]
    vanished = [
        value
        for value, count in known.items()
        if count / reference.count >= 0.01
        and count / reference.count * window.count >= 5
        and (window.counts or {}).get(value, 0) == 0
    ]
    results.append(
        _result(
            "vanished_categories",
            name,
            float(len(vanished)),
            0.0,
            "alert" if vanished else "ok",
            {"vanished": sorted(vanished)[:10]},
        )
    )
    return results


def _constant(name: str, reference_varies: bool, count: int, window_constant: bool) -> list:
    if count < 30:
        return []
    constant = bool(reference_varies and window_constant)
    reason = {"reason": f"one value in all {count:,} rows; the reference had several"}
    return [
        _result(
            "constant",
            name,
            1.0 if constant else 0.0,
            0.0,
            "warn" if constant else "ok",
            reason if constant else {},
        )
    ]


#: Quality metrics that, on a model output, are prediction drift findings.
OUTPUT_FINDINGS = frozenset({"unseen_share", "vanished_categories", "out_of_range_share"})


def as_output_findings(results: list[Result]) -> list[Result]:
    """A prediction or score column's unseen, vanished or out-of-range values are the model
    speaking differently, not broken data: ``prediction_drift`` findings, ``warn`` at most.

    >>> new = Result("quality", "label", "unseen_share", 0.2, 0.01, "alert")
    >>> (finding,) = as_output_findings([new])
    >>> finding.check, finding.status, finding.details["reason"].split(":")[0]
    ('prediction_drift', 'warn', 'a model output')
    """
    out = []
    for result in results:
        if result.metric not in OUTPUT_FINDINGS:
            out.append(result)
            continue
        details = dict(result.details or {})
        status = result.status
        if status == "alert":
            status = "warn"
            kind = {
                "unseen_share": "new values",
                "vanished_categories": "vanished values",
                "out_of_range_share": "values outside the reference's range",
            }[result.metric]
            details["reason"] = (
                f"a model output: its {kind} are prediction drift, not a data-quality failure"
            )
        out.append(replace(result, check="prediction_drift", status=status, details=details))
    return out


def _share_result(
    metric: str,
    column: str,
    share: float,
    threshold: float,
    reference_rate: float,
    rows: int,
    details: dict,
) -> Result:
    """A share-based alert needs its share above the limit **and** an excess over the
    reference's own rate of at least max(3 rows, 3 binomial standard errors): one row in a
    window of under 100 is not a data-quality failure.

    >>> _share_result("unseen_share", "c", 1 / 80, 0.01, 0.0, 80, {}).status
    'ok'
    >>> _share_result("unseen_share", "c", 3 / 80, 0.01, 0.0, 80, {}).status
    'alert'
    """
    excess = share * rows - round(reference_rate * rows)  # rows beyond the expected count
    needed = max(3.0, 3 * float(np.sqrt(rows * reference_rate * (1 - reference_rate))))
    alert = share > threshold and excess >= needed - 1e-9
    return _result(
        metric,
        column,
        share,
        threshold,
        "alert" if alert else "ok",
        {**details, "excess_rows": float(excess), "min_excess_rows": needed},
    )


def _result(
    metric: str,
    column: str | None,
    value: float | None,
    threshold: float | None,
    status: str,
    details: dict,
) -> Result:
    return Result(
        check="quality",
        column=column,
        metric=metric,
        value=None if value is None else float(value),
        threshold=None if threshold is None else float(threshold),
        status=status,
        details=details,
    )
