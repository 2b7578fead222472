"""Run NannyML's performance estimation (CBPE or DLE) on the windows of keel's study.

Usage:
    /opt/keel-peers/nannyml/bin/python benchmarks/peers/run_nannyml_estimation.py \
        cbpe|dle REFERENCE.parquet WINDOWS.parquet OUT.json

cbpe (binary classifier): REFERENCE.parquet has score, prediction, label; WINDOWS.parquet
has window, score, prediction. dle (regressor): REFERENCE.parquet has x, prediction, y;
WINDOWS.parquet has window, x, prediction. Writes OUT.json = {"tool": "nannyml-<kind>",
"windows": {window: {metric: {"value", "lower", "upper"}}}} with NannyML's estimate and
confidence boundaries per window (roc_auc and accuracy, or mae and rmse). The estimator
is fitted with ``chunk_number=1`` and estimates each window as one chunk, so both tools
see the same rows. Self-contained: does not import keel. Prints nothing but errors.
"""

import json
import os
import sys
import warnings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")


def estimator(kind):
    import nannyml as nml

    if kind == "cbpe":
        return nml.CBPE(
            y_pred_proba="score",
            y_pred="prediction",
            y_true="label",
            metrics=["roc_auc", "accuracy"],
            problem_type="classification_binary",
            chunk_number=1,
        ), ("roc_auc", "accuracy")
    return nml.DLE(
        feature_column_names=["x"],
        y_pred="prediction",
        y_true="y",
        metrics=["mae", "rmse"],
        chunk_number=1,
    ), ("mae", "rmse")


def main(argv):
    kind, reference_path, windows_path, out_path = argv[1:5]
    warnings.filterwarnings("ignore")
    import pandas as pd

    fitted, metrics = estimator(kind)
    fitted.fit(pd.read_parquet(reference_path))
    found = {}
    for window, rows in pd.read_parquet(windows_path).groupby("window", sort=True):
        result = fitted.estimate(rows.drop(columns=["window"]).reset_index(drop=True))
        frame = result.filter(period="analysis").to_df()
        found[str(window)] = {
            metric: {
                "value": float(frame[(metric, "value")].iloc[-1]),
                "lower": float(frame[(metric, "lower_confidence_boundary")].iloc[-1]),
                "upper": float(frame[(metric, "upper_confidence_boundary")].iloc[-1]),
            }
            for metric in metrics
        }
    with open(out_path, "w") as stream:
        json.dump({"tool": f"nannyml-{kind}", "windows": found}, stream)


if __name__ == "__main__":
    main(sys.argv)
