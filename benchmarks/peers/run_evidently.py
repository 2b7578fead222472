"""Run Evidently's DataDriftPreset (0.7 API, default settings) on two Parquet files.

Usage:
    /opt/keel-peers/evidently/bin/python benchmarks/peers/run_evidently.py \
        REF.parquet CUR.parquet OUT.json

Writes OUT.json = {"tool": "evidently", "drifted_columns": [...], "columns_checked": N}.
Self-contained: does not import keel. Prints nothing except errors.

Column typing: numeric (non-bool) dtypes -> numerical; datetime dtypes -> datetime
(not drift-checked by the preset); everything else (str/object/category/bool) ->
categorical. The drift method and threshold are left to Evidently's defaults
(for >1000 rows: normed Wasserstein (0.1) for numerical, Jensen-Shannon (0.1) for
categorical). The per-column verdict is Evidently's own: the ValueDrift test that
the preset attaches to each column FAILs exactly when Evidently's
`drift_detected` is True.
"""

import os
import sys
import warnings

from _verdict import write_verdict

# Evidently only sends telemetry from its UI service, but opt out anyway.
os.environ.setdefault("DO_NOT_TRACK", "1")


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: run_evidently.py REFERENCE.parquet CURRENT.parquet OUT.json\n")
        return 2
    ref_path, cur_path, out_path = argv[1:]

    warnings.filterwarnings("ignore")
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)

    numerical, categorical, datetimes = [], [], []
    for col in ref.columns:
        s = ref[col]
        if pd.api.types.is_bool_dtype(s):
            categorical.append(col)
        elif pd.api.types.is_numeric_dtype(s):
            numerical.append(col)
        elif pd.api.types.is_datetime64_any_dtype(s):
            datetimes.append(col)
        else:
            categorical.append(col)

    definition = DataDefinition(
        numerical_columns=numerical,
        categorical_columns=categorical,
        datetime_columns=datetimes,
    )
    report = Report([DataDriftPreset()], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    result = snapshot.dict()

    # metric id -> column for every per-column ValueDrift metric
    column_of = {}
    for metric in result["metrics"]:
        cfg = metric.get("config", {})
        if cfg.get("type", "").endswith(":ValueDrift"):
            column_of[metric["id"]] = cfg["column"]

    drifted = set()
    judged = set()
    for test in result.get("tests", []):
        metric_id = test.get("metric_config", {}).get("metric_id")
        if metric_id in column_of:
            judged.add(column_of[metric_id])
            if test["status"] == "FAIL":
                drifted.add(column_of[metric_id])
    if judged != set(column_of.values()):
        sys.stderr.write(
            f"run_evidently: missing ValueDrift verdicts for "
            f"{sorted(set(column_of.values()) - judged)}\n"
        )
        return 1

    write_verdict(out_path, "evidently", drifted, len(column_of))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
