"""Business KPIs: what the model is worth, per window, as checks like any other.

Two kinds:

- a **value matrix** for classifiers (``performance.value_matrix`` in
  ``keel.yaml``): the gain or cost of each outcome (``tp``, ``fp``, ``fn``,
  ``tn``), giving ``value`` (the window's total over labelled rows) and
  ``value_per_1000`` (per 1,000 labelled predictions, with a t interval of the
  per-row value);
- **expressions** (``kpis:``): a DuckDB aggregate over the window's rows —
  the logged columns and the joined label — such as
  ``sum(amount) FILTER (WHERE prediction = 1 AND defaulted = 1) /
  nullif(count(*) FILTER (WHERE prediction = 1), 0)``. An expression is
  checked when the configuration loads (``validate_expression``): its syntax,
  its columns (against the baseline's columns and the label) and that it
  gives one value per window; a mistake is found then, not at 3 a.m.

Each is a ``check: kpi`` Result (metric: the KPI's name) with a threshold:
``alert_below`` or ``alert_above``.

>>> import pyarrow as pa
>>> rows = pa.table({"amount": [10.0, 20.0, 30.0], "prediction": [1, 0, 1]})
>>> kpi_value("sum(amount) FILTER (WHERE prediction = 1)", rows)
40.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from scipy import stats

from keel.errors import ConfigError
from keel.result import Result

OUTCOMES = ("tp", "fp", "fn", "tn")


def window_connection(rows: pa.Table) -> Any:
    """A DuckDB connection where an expression sees the window's rows (``window_rows``) and
    nothing else: no files, no URLs, no extensions, no Python variables, settings locked.

    >>> import pyarrow as pa, duckdb
    >>> connection = window_connection(pa.table({"x": [1, 2]}))
    >>> connection.execute("SELECT sum(x) FROM window_rows").fetchall()
    [(3,)]
    >>> try:
    ...     connection.execute("SELECT * FROM read_csv('/etc/passwd')")
    ... except duckdb.PermissionException:
    ...     print("refused")
    refused
    """
    import duckdb

    connection = duckdb.connect(
        config={
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "python_enable_replacements": False,
        }
    )
    try:
        connection.register("window_rows", rows)
        connection.execute("SET lock_configuration = true")
    except BaseException:
        connection.close()
        raise
    return connection


def kpi_value(expression: str, rows: pa.Table) -> float | None:
    """The expression's value over ``rows`` (None when it is NULL, e.g. a ratio of nothing)."""
    connection = window_connection(rows)
    try:
        value = connection.execute(f"SELECT ({expression}) AS value FROM window_rows").fetchall()
    finally:
        connection.close()
    if len(value) != 1:
        raise ConfigError(f"KPI {expression!r} gives {len(value)} values, not one per window")
    found = value[0][0]
    return None if found is None else float(found)


def check_syntax(label: str, expression: str) -> None:
    """One SQL expression that DuckDB parses, or a ConfigError starting with ``label``.

    >>> try:
    ...     check_syntax("KPI 'k'", "sum(amount")
    ... except ConfigError as error:
    ...     print(str(error)[:35])
    KPI 'k': not a valid expression: Pa
    """
    import duckdb

    if ";" in expression:
        raise ConfigError(f"{label}: one expression, not statements ({expression!r})")
    try:
        duckdb.extract_statements(f"SELECT ({expression}) AS value FROM window_rows")
    except duckdb.Error as error:
        raise ConfigError(f"{label}: not a valid expression: {_first_line(error)}") from error


def validate_expression(name: str, expression: str, columns: pa.Schema | None) -> None:
    """Refuse an expression that does not parse, names an unknown column, or is not an
    aggregate (one value per window). Without ``columns``, only the syntax is checked."""
    import duckdb

    check_syntax(f"KPI {name!r}", expression)
    if columns is None:
        return
    try:
        kpi_value(expression, columns.empty_table())
    except duckdb.BinderException as error:
        raise ConfigError(
            f"KPI {name!r}: {_first_line(error)} (columns: {', '.join(columns.names)})"
        ) from error
    except duckdb.Error as error:
        raise ConfigError(f"KPI {name!r}: {_first_line(error)}") from error
    except ConfigError as error:
        raise ConfigError(
            f"KPI {name!r}: use an aggregate (sum, avg, count, …): {error}"
        ) from error


def kpi_result(
    name: str,
    expression: str,
    rows: pa.Table,
    alert_below: float | None,
    alert_above: float | None,
) -> Result:
    """One KPI over one window's rows, judged against its threshold."""
    import duckdb

    try:
        value = kpi_value(expression, rows)
    except (duckdb.Error, ConfigError) as error:  # said in the Result; never a crash
        return Result(
            "kpi",
            None,
            name,
            None,
            alert_below or alert_above,
            "error",
            details={"reason": _first_line(error), "expression": expression},
        )
    threshold = alert_below if alert_below is not None else alert_above
    if value is None:
        status = "insufficient_data"
    elif (alert_below is not None and value < alert_below) or (
        alert_above is not None and value > alert_above
    ):
        status = "alert"
    else:
        status = "ok"
    return Result(
        "kpi",
        None,
        name,
        value,
        threshold,
        status,
        details={"expression": expression, "rows": rows.num_rows},
    )


def outcome_values(actual: np.ndarray, guessed: np.ndarray, matrix: dict[str, float]):
    """Each row's worth under the value matrix (``actual``, ``guessed``: positive or not).

    >>> outcome_values(np.array([True, False]), np.array([True, True]), {"tp": 5, "fp": -1})
    array([ 5., -1.])
    """
    actual, guessed = np.asarray(actual, bool), np.asarray(guessed, bool)
    return np.select(
        [actual & guessed, ~actual & guessed, actual & ~guessed],
        [matrix.get("tp", 0.0), matrix.get("fp", 0.0), matrix.get("fn", 0.0)],
        default=matrix.get("tn", 0.0),
    ).astype(float)


def value_results(
    truth: np.ndarray,
    predicted: np.ndarray,
    positive: Any,
    matrix: dict[str, float],
    holdout_per_1000: float | None,
    confidence: float,
    provisional: bool,
) -> list[Result]:
    """The value matrix over labelled rows: total and per 1,000 predictions (t interval)."""
    n = len(truth)
    if n < 2:
        return [
            Result(
                "kpi",
                None,
                name,
                None,
                None,
                "insufficient_data",
                details={"reason": "fewer than 2 labelled rows"},
            )
            for name in ("value", "value_per_1000")
        ]
    actual, guessed = truth == positive, predicted == positive
    per_row = outcome_values(actual, guessed, matrix)
    mean = per_row.mean()
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * per_row.std(ddof=1) / np.sqrt(n)
    lower, upper = 1000 * (mean - half), 1000 * (mean + half)
    status = "ok"
    if holdout_per_1000 is not None and upper < holdout_per_1000:
        status = "warn" if provisional else "alert"
    counts = {
        outcome: int(mask.sum())
        for outcome, mask in zip(
            OUTCOMES,
            (actual & guessed, ~actual & guessed, actual & ~guessed, ~actual & ~guessed),
            strict=True,
        )
    }
    return [
        Result(
            "kpi",
            None,
            "value",
            float(per_row.sum()),
            None,
            "ok",
            details={"outcomes": counts, "matrix": matrix, "labelled_rows": n},
        ),
        Result(
            "kpi",
            None,
            "value_per_1000",
            float(1000 * mean),
            holdout_per_1000,
            status,
            details={
                "lower": float(lower),
                "upper": float(upper),
                "confidence": confidence,
                "labelled_rows": n,
                "provisional": provisional,
            },
        ),
    ]


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
