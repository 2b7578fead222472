"""Single-feature probes: how well one column alone predicts the label, cross-validated.

A feature that alone reaches a cross-validated ROC AUC of 0.95 (classification) or an R²
of 0.9 (regression) is *suspiciously predictive*: real signals rarely are, copies of the
label (post-outcome features) always are. So is a feature that alone comes within 0.02 of
the full model's score when the full model itself scores high (AUC ≥ 0.9, R² ≥ 0.8): one
column carrying a model that shines offline (evalml#928). Id and time columns are probed
with a lower bar (AUC ≥ 0.8, R² ≥ 0.5): they should predict nothing.

The probe is a small histogram gradient-boosting model (``PROBE_PARAMS``) on one column,
scored by ``cross_val_score`` over a shuffled (stratified for classification) k-fold; at
most ``max_rows`` rows (20,000), sampled without replacement by a generator seeded from
the data's fingerprint, so the same data gives the same scores. Text columns with at
most 254 values are categories; longer text, ids and times are probed by their rank.

>>> import numpy as np, pyarrow as pa
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 2000)
>>> table = pa.table({"leak": y + rng.normal(0, 0.05, 2000), "noise": rng.normal(size=2000)})
>>> probe = probe_column(table, "leak", y, "binary", seed=7)
>>> probe["metric"], round(probe["score"], 3), len(probe["folds"])
('roc_auc', 1.0, 5)
>>> round(probe_column(table, "noise", y, "binary", seed=7)["score"], 1)
0.5
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: The single-feature probe (a few shallow boosting rounds: fast, and enough to see a leak).
PROBE_PARAMS: dict[str, Any] = {
    "max_iter": 25,
    "learning_rate": 0.2,
    "max_leaf_nodes": 15,
    "early_stopping": False,
}
#: The full model a feature is compared with (all features).
FULL_PARAMS: dict[str, Any] = {
    "max_iter": 60,
    "learning_rate": 0.15,
    "max_leaf_nodes": 31,
    "early_stopping": False,
}
#: A feature alone at or above this is suspiciously predictive.
ALONE = {"classification": 0.95, "regression": 0.9}
#: ... or within this of the full model's score, when the full model reaches ``STRONG``.
MARGIN = 0.02
STRONG = {"classification": 0.9, "regression": 0.8}
#: Id and time columns predicting the label at or above this.
IDENTIFIER = {"classification": 0.8, "regression": 0.5}
DEFAULT_FOLDS = 5
DEFAULT_MAX_ROWS = 20_000
MAX_CATEGORIES = 254  # HistGradientBoosting takes categories below max_bins (255)


def infer_task(labels: pa.ChunkedArray | pa.Array) -> str:
    """binary, multiclass or regression, from the label column: numbers with more than 20
    distinct values are a regression target; anything else is classes.

    >>> infer_task(pa.array([0, 1, 1])), infer_task(pa.array(["a", "b", "c"]))
    ('binary', 'multiclass')
    >>> infer_task(pa.array([i / 7 for i in range(50)]))
    'regression'
    """
    present = pc.drop_null(labels)
    distinct = len(pc.unique(present))
    numeric = pa.types.is_floating(present.type) or pa.types.is_integer(present.type)
    if numeric and distinct > 20:
        return "regression"
    return "binary" if distinct <= 2 else "multiclass"


def encode(column: pa.ChunkedArray | pa.Array, *, rank: bool = False) -> tuple[np.ndarray, bool]:
    """(float values with NaN for missing, whether they are category codes) for the probe.
    Numbers and booleans as they are; times as epoch microseconds; text as category codes
    (sorted) up to 254 values, else by rank; ``rank`` ranks numbers too (ids).

    >>> encode(pa.array(["b", "a", None, "b"]))
    (array([ 1.,  0., nan,  1.]), True)
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    missing = column.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        from keel.windows import utc_times

        column, kind = pc.cast(utc_times(column, "time"), pa.int64()), pa.int64()
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        values = np.where(missing, np.nan, values)
        if rank:
            return _ranks(values, missing), False
        return values.astype(np.float64), False
    if pa.types.is_decimal(kind):
        values = pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        return np.where(missing, np.nan, values), False
    text = pc.cast(column, pa.string()) if not pa.types.is_string(kind) else column
    distinct = pc.unique(pc.drop_null(text))
    codes = pc.index_in(text, value_set=distinct.take(pc.array_sort_indices(distinct)))
    values = pc.cast(codes, pa.float64()).to_numpy(zero_copy_only=False)
    values = np.where(missing, np.nan, values)
    return values, (len(distinct) <= MAX_CATEGORIES and not rank)


def _ranks(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    present = np.where(missing, np.inf, values)
    _, inverse = np.unique(present, return_inverse=True)
    return np.where(missing, np.nan, inverse.astype(np.float64))


def task_family(task: str) -> str:
    return "regression" if task == "regression" else "classification"


def metric_of(task: str) -> str:
    return {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "r2"}[task]


def folds_for(labels: np.ndarray, task: str, folds: int) -> int:
    """How many folds the labels allow: a stratified k-fold needs k members of each class."""
    if task == "regression":
        return max(2, min(folds, len(labels) // 2))
    _, counts = np.unique(labels.astype(str), return_counts=True)
    return max(2, min(folds, int(counts.min())))


def splitter(task: str, folds: int, seed: int) -> Any:
    """The cross-validation: a shuffled k-fold, stratified for classification."""
    from sklearn.model_selection import KFold, StratifiedKFold

    kind = KFold if task == "regression" else StratifiedKFold
    return kind(n_splits=folds, shuffle=True, random_state=seed)


def model(task: str, seed: int, categorical: list[bool] | None, params: dict[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    kind = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    mask = categorical if categorical and any(categorical) else None
    return kind(**params, random_state=seed, categorical_features=mask)


def cv_score(
    matrix: np.ndarray,
    labels: np.ndarray,
    task: str,
    seed: int,
    categorical: list[bool] | None = None,
    *,
    folds: int = DEFAULT_FOLDS,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The cross-validated score of the probe (or ``params``) on ``matrix``: the metric,
    its mean over the folds, each fold's score, and the rows and seed it used.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(600, 1)); y = x[:, 0] * 2 + rng.normal(0, 0.1, 600)
    >>> found = cv_score(x, y, "regression", seed=3, folds=3)
    >>> found["metric"], found["score"] > 0.95, found["rows"], len(found["folds"])
    ('r2', True, 600, 3)
    """
    from sklearn.model_selection import cross_val_score

    from keel.threads import limited

    folds = folds_for(labels, task, folds)
    estimator = model(task, seed, categorical, params or PROBE_PARAMS)
    with limited():
        scores = cross_val_score(
            estimator,
            matrix,
            labels,
            cv=splitter(task, folds, seed),
            scoring=metric_of(task),
            error_score="raise",
        )
    return {
        "metric": metric_of(task),
        "score": float(np.mean(scores)),
        "folds": [float(s) for s in scores],
        "rows": int(len(labels)),
        "seed": int(seed),
    }


def probe_column(
    table: pa.Table,
    column: str,
    labels: np.ndarray,
    task: str,
    seed: int,
    *,
    rank: bool = False,
    folds: int = DEFAULT_FOLDS,
) -> dict[str, Any]:
    """The single-feature probe of ``column`` (rows already sampled): see the module."""
    values, categorical = encode(table.column(column), rank=rank)
    return cv_score(values.reshape(-1, 1), labels, task, seed, [categorical], folds=folds)


def full_model_score(
    table: pa.Table, columns: list[str], labels: np.ndarray, task: str, seed: int, folds: int
) -> dict[str, Any]:
    """The cross-validated score of a model on every feature column (``FULL_PARAMS``)."""
    encoded = [encode(table.column(c)) for c in columns]
    matrix = np.column_stack([values for values, _ in encoded])
    categorical = [flag for _, flag in encoded]
    return cv_score(matrix, labels, task, seed, categorical, folds=folds, params=FULL_PARAMS)


def sample_rows(rows: int, max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` row positions, in order, drawn without replacement (seeded).

    >>> sample_rows(5, 10, 0).tolist(), len(sample_rows(50_000, 20_000, 0))
    ([0, 1, 2, 3, 4], 20000)
    """
    if rows <= max_rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))


def suspicious(probe: dict[str, Any], full: dict[str, Any] | None, task: str) -> str | None:
    """Why a feature's probe is suspicious (or None): alone past the bar, or carrying a
    strong full model by itself.

    >>> suspicious({"metric": "roc_auc", "score": 0.8}, {"score": 0.81}, "binary") is None
    True
    >>> suspicious({"metric": "roc_auc", "score": 0.93}, {"score": 0.94}, "binary")
    "alone reaches roc_auc 0.930, within 0.02 of the full model's 0.940"
    """
    family = task_family(task)
    if probe["score"] >= ALONE[family]:
        return f"alone reaches {probe['metric']} {probe['score']:.3f} (≥ {ALONE[family]:g})"
    if (
        full is not None
        and full["score"] >= STRONG[family]
        and probe["score"] >= full["score"] - MARGIN
    ):
        return (
            f"alone reaches {probe['metric']} {probe['score']:.3f}, within {MARGIN:g} of the "
            f"full model's {full['score']:.3f}"
        )
    return None
