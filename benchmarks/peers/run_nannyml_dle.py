"""Run NannyML's DLE (regression) on the windows of keel's estimation study.

Usage:
    /opt/keel-peers/nannyml/bin/python benchmarks/peers/run_nannyml_dle.py \
        REFERENCE.parquet WINDOWS.parquet OUT.json

REFERENCE.parquet: columns x, prediction, y (the labelled holdout).
WINDOWS.parquet: columns window, x, prediction (one window per value of ``window``).
Writes OUT.json = {"tool": "nannyml-dle", "windows": {window: {metric: {"value",
"lower", "upper"}}}} for mae and rmse. Self-contained: does not import keel.
DLE is fitted with ``chunk_number=1`` and estimates each window as one chunk.
"""

import json
import os
import sys
import warnings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")


def main(argv):
    reference_path, windows_path, out_path = argv[1:4]
    warnings.filterwarnings("ignore")
    import nannyml as nml
    import pandas as pd

    reference = pd.read_parquet(reference_path)
    windows = pd.read_parquet(windows_path)
    estimator = nml.DLE(
        feature_column_names=["x"],
        y_pred="prediction",
        y_true="y",
        metrics=["mae", "rmse"],
        chunk_number=1,
    )
    estimator.fit(reference)
    found = {}
    for window, rows in windows.groupby("window", sort=True):
        frame = (
            estimator.estimate(rows.drop(columns=["window"]).reset_index(drop=True))
            .filter(period="analysis")
            .to_df()
        )
        found[str(window)] = {
            metric: {
                "value": float(frame[(metric, "value")].iloc[-1]),
                "lower": float(frame[(metric, "lower_confidence_boundary")].iloc[-1]),
                "upper": float(frame[(metric, "upper_confidence_boundary")].iloc[-1]),
            }
            for metric in ("mae", "rmse")
        }
    with open(out_path, "w") as stream:
        json.dump({"tool": "nannyml-dle", "windows": found}, stream)


if __name__ == "__main__":
    main(sys.argv)
