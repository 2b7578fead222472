"""Run NannyML's CBPE (binary classification) on the windows of keel's estimation study.

Usage:
    /opt/keel-peers/nannyml/bin/python benchmarks/peers/run_nannyml_cbpe.py \
        REFERENCE.parquet WINDOWS.parquet OUT.json

REFERENCE.parquet: columns score, prediction, label (the labelled holdout).
WINDOWS.parquet: columns window, score, prediction (one window per value of ``window``).
Writes OUT.json = {"tool": "nannyml-cbpe", "windows": {window: {metric: {"value",
"lower", "upper"}}}} with NannyML's estimate and confidence band per window, for
roc_auc and accuracy. Self-contained: does not import keel. Prints nothing but errors.

CBPE is fitted on the reference with ``chunk_number=1`` and asked to estimate each
window as a single chunk (a custom chunk of exactly that window's rows), so both
tools see the same rows.
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
    estimator = nml.CBPE(
        y_pred_proba="score",
        y_pred="prediction",
        y_true="label",
        metrics=["roc_auc", "accuracy"],
        problem_type="classification_binary",
        chunk_number=1,
    )
    estimator.fit(reference)
    found = {}
    for window, rows in windows.groupby("window", sort=True):
        result = estimator.estimate(rows.drop(columns=["window"]).reset_index(drop=True))
        frame = result.filter(period="analysis").to_df()
        found[str(window)] = {
            metric: {
                "value": float(frame[(metric, "value")].iloc[-1]),
                "lower": float(frame[(metric, "lower_confidence_boundary")].iloc[-1]),
                "upper": float(frame[(metric, "upper_confidence_boundary")].iloc[-1]),
            }
            for metric in ("roc_auc", "accuracy")
        }
    with open(out_path, "w") as stream:
        json.dump({"tool": "nannyml-cbpe", "windows": found}, stream)


if __name__ == "__main__":
    main(sys.argv)
