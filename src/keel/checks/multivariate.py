"""Multivariate drift: changes that no single column shows.

Two checks on bounded samples of rows (the baseline's reference sample and a
window's sample), over the feature columns, numeric ones standardized on the
reference and categorical ones encoded by their reference frequency (an
unseen category becomes 0). For the reconstruction error a category's
standardized code is clipped to the reference's range of codes: a column
whose levels have near-equal shares has a tiny standard deviation, and an
unseen level (code 0) would otherwise land hundreds of deviations away and
dominate the error of the whole window. Rare and unseen categories are the
quality check's business (``unseen_share``), not a reconstruction outlier.

* **Domain classifier.** A gradient-boosting classifier (scikit-learn's
  HistGradientBoostingClassifier, 40 trees of depth 3) learns to tell
  reference rows from window rows, with equal numbers of each (at most
  2,000), in 3-fold cross-validation. The statistic is the ROC AUC of the
  out-of-fold predictions (0.5: indistinguishable). Under no drift these
  pooled predictions' AUC is a Mann–Whitney statistic, N(0.5, (n₁+n₂+1) /
  (12·n₁·n₂)), which gives the threshold at the monitor's tail, with a floor
  of 0.55 so that a vast window cannot alert on a trivial difference. When
  it alerts, the columns the classifier relied on most come from permutation
  importance on one held-out fold.
* **Reconstruction error.** A PCA keeping 65% of the variance is fitted on
  one half of the reference sample; each row's reconstruction error (mean
  squared residual over the encoded columns) on the other half gives the
  error's mean μ and standard deviation σ under no drift, from n rows. A
  window's statistic is its rows' mean error; the threshold is
  μ + z·σ·√(1/m + 1/n) for m rows (the second term: μ is itself estimated).
  The error rises when correlations break, even with every marginal
  unchanged. The columns whose residuals grew most are reported.

Windows with fewer than 100 sampled rows get ``insufficient_data``.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=4000)
>>> reference = pd.DataFrame({"x": x, "y": x + rng.normal(scale=0.3, size=4000)})
>>> model = MultivariateReference.fit(reference)
>>> broken = pd.DataFrame({"x": rng.normal(size=2000), "y": rng.normal(size=2000) * 1.04})
>>> model.reconstruction(broken).status, model.reconstruction(reference.iloc[:2000]).status
('alert', 'ok')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.result import Result
from keel.schema import Schema
from keel.threads import with_limited_threads

MIN_ROWS = 100
MAX_CLASSIFIER_ROWS = 2_000
FOLDS = 3
AUC_FLOOR = 0.55
PCA_VARIANCE = 0.65


@dataclass
class Encoder:
    """Numeric columns standardized on the reference; categories by their reference share."""

    numeric: list[tuple[str, float, float]]
    categorical: list[tuple[str, dict[str, float]]]

    @property
    def names(self) -> list[str]:
        return [name for name, *_ in self.numeric] + [name for name, _ in self.categorical]

    @classmethod
    def fit(cls, table: pa.Table, schema: Schema) -> Encoder:
        numeric, categorical = [], []
        for spec in schema.features:
            if spec.name not in table.column_names:
                continue
            column = table.column(spec.name)
            if spec.kind == "numeric":
                values = _floats(column)
                finite = values[np.isfinite(values)]
                if len(finite) > 1 and finite.std() > 0:
                    numeric.append((spec.name, float(finite.mean()), float(finite.std())))
            elif spec.kind in ("categorical", "boolean"):
                labels = np.asarray(column.cast(pa.string()).fill_null("(null)").to_pylist())
                values, counts = np.unique(labels, return_counts=True)
                shares = dict(zip(values.tolist(), (counts / counts.sum()).tolist(), strict=True))
                categorical.append((spec.name, shares))
        return cls(numeric, categorical)

    def transform(self, table: pa.Table) -> np.ndarray:
        columns = []
        for name, mean, std in self.numeric:
            values = (
                (_floats(table.column(name)) - mean) / std
                if name in table.column_names
                else np.zeros(table.num_rows)
            )
            columns.append(np.where(np.isfinite(values), values, 0.0))
        for name, shares in self.categorical:
            if name not in table.column_names:
                columns.append(np.zeros(table.num_rows))
                continue
            labels = table.column(name).cast(pa.string()).fill_null("(null)")
            known = pa.array(list(shares), type=pa.string())
            positions = pc.index_in(labels, value_set=known).fill_null(len(shares))
            lookup = np.append(np.array(list(shares.values()), dtype=np.float64), 0.0)
            columns.append(lookup[positions.to_numpy(zero_copy_only=False)])
        return np.column_stack(columns) if columns else np.empty((table.num_rows, 0))


@dataclass
class MultivariateReference:
    encoder: Encoder
    reference: np.ndarray  # encoded reference rows, for the domain classifier
    pca: Any
    scale: np.ndarray  # per encoded column, to standardize categorical shares too
    center: np.ndarray
    null_mean: float
    null_std: float
    null_column_errors: np.ndarray
    null_rows: int
    #: Per encoded column, the reference's standardized range: a category's code is clipped
    #: to it (numeric columns: unbounded), so a rare or unseen level cannot dominate.
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    @classmethod
    @with_limited_threads
    def fit(cls, sample: Any, schema: Schema | None = None, seed: int = 0) -> MultivariateReference:
        """Fit on the reference sample (a table, DataFrame or anything Arrow reads)."""
        from sklearn.decomposition import PCA

        from keel.data import open_source

        table = open_source(sample).read_all()
        schema = schema or Schema.infer(table)
        encoder = Encoder.fit(table, schema)
        matrix = encoder.transform(table)
        center, scale = matrix.mean(axis=0), matrix.std(axis=0)
        scale[scale == 0] = 1.0
        standardized = (matrix - center) / scale
        low, high = _category_bounds(encoder, standardized)
        order = np.random.default_rng(seed).permutation(len(standardized))
        half = len(order) // 2
        fit_rows, null_rows = standardized[order[:half]], standardized[order[half:]]
        pca = PCA(n_components=PCA_VARIANCE, svd_solver="full", random_state=seed)
        pca.fit(fit_rows)
        residuals = np.square(null_rows - pca.inverse_transform(pca.transform(null_rows)))
        errors = residuals.mean(axis=1)
        return cls(
            encoder,
            matrix,
            pca,
            scale,
            center,
            float(errors.mean()),
            float(errors.std(ddof=1)),
            residuals.mean(axis=0),
            len(errors),
            low,
            high,
        )

    def _standardize(self, table: Any) -> np.ndarray:
        rows = (self.encoder.transform(_table(table)) - self.center) / self.scale
        if self.low is None or self.high is None:
            return rows
        return np.clip(rows, self.low, self.high)

    @with_limited_threads
    def reconstruction(self, window: Any, tail: float = 0.001) -> Result:
        """Mean reconstruction error of the window's rows against its no-drift threshold."""
        from scipy import special

        rows = self._standardize(window)
        if len(rows) < MIN_ROWS or rows.shape[1] < 2:
            return _insufficient("reconstruction_error", len(rows), rows.shape[1])
        residuals = np.square(rows - self.pca.inverse_transform(self.pca.transform(rows)))
        value = float(residuals.mean())
        z = float(special.ndtri(1 - tail))
        # The null mean is itself estimated from null_rows rows: its error widens the band.
        spread = self.null_std * np.sqrt(1 / len(rows) + 1 / self.null_rows)
        threshold = self.null_mean + z * spread
        growth = residuals.mean(axis=0) - self.null_column_errors
        top = [self.encoder.names[i] for i in np.argsort(-growth)[:3] if growth[i] > 0]
        return Result(
            check="multivariate",
            column=None,
            metric="reconstruction_error",
            value=value,
            threshold=float(threshold),
            status="alert" if value > threshold else "ok",
            details={
                "rows": len(rows),
                "tail": tail,
                "components": int(self.pca.n_components_),
                "reference_mean": self.null_mean,
                "top_columns": top,
            },
        )

    @with_limited_threads
    def domain_classifier(self, window: Any, tail: float = 0.001, seed: int = 0) -> Result:
        """Cross-validated ROC AUC of telling window rows from reference rows."""
        from scipy import special
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.inspection import permutation_importance
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold

        current = self.encoder.transform(_table(window))
        size = min(len(current), len(self.reference), MAX_CLASSIFIER_ROWS)
        if size < MIN_ROWS or current.shape[1] < 1:
            return _insufficient("domain_auc", len(current), current.shape[1])
        rng = np.random.default_rng(seed)
        both = np.vstack(
            [
                self.reference[rng.choice(len(self.reference), size, replace=False)],
                current[rng.choice(len(current), size, replace=False)],
            ]
        )
        labels = np.r_[np.zeros(size), np.ones(size)]
        scores = np.empty(len(labels))
        models = []
        folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
        for train, test in folds.split(both, labels):
            model = HistGradientBoostingClassifier(
                max_iter=40, max_depth=3, random_state=seed, early_stopping=False
            )
            model.fit(both[train], labels[train])
            scores[test] = model.predict_proba(both[test])[:, 1]
            models.append((model, test))
        auc = float(roc_auc_score(labels, scores))
        fold_aucs = [
            float(roc_auc_score(labels[test], scores[test]))
            for _, test in folds.split(both, labels)
        ]
        spread = np.sqrt((2 * size + 1) / (12.0 * size * size))
        threshold = max(0.5 + float(special.ndtri(1 - tail)) * spread, AUC_FLOOR)
        top: list[str] = []
        if auc > threshold:  # which columns it relied on: worth the cost only when it alerts
            model, test = models[0]
            importance = permutation_importance(
                model, both[test], labels[test], scoring="roc_auc", n_repeats=3, random_state=seed
            ).importances_mean
            top = [
                self.encoder.names[i] for i in np.argsort(-importance)[:3] if importance[i] > 0.005
            ]
        return Result(
            check="multivariate",
            column=None,
            metric="domain_auc",
            value=auc,
            threshold=float(threshold),
            status="alert" if auc > threshold else "ok",
            details={
                "rows_per_side": size,
                "tail": tail,
                "null_sd": float(spread),
                "fold_auc_sd": float(np.std(fold_aucs, ddof=1)),
                "top_columns": top,
            },
        )


def _category_bounds(encoder: Encoder, standardized: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's range of each categorical column's standardized code; numeric
    columns are unbounded (a numeric value far outside is a real outlier)."""
    low = np.full(standardized.shape[1], -np.inf)
    high = np.full(standardized.shape[1], np.inf)
    first = len(encoder.numeric)
    if len(standardized) and standardized.shape[1] > first:
        low[first:] = standardized[:, first:].min(axis=0)
        high[first:] = standardized[:, first:].max(axis=0)
    return low, high


def _insufficient(metric: str, rows: int, columns: int) -> Result:
    reason = (
        f"{rows} sampled rows (at least {MIN_ROWS} needed)"
        if rows < MIN_ROWS
        else f"{columns} usable columns"
    )
    return Result(
        check="multivariate",
        column=None,
        metric=metric,
        value=None,
        threshold=None,
        status="insufficient_data",
        details={"reason": reason},
    )


def _floats(column: Any) -> np.ndarray:
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    from keel.data import open_source

    return open_source(data).read_all()
