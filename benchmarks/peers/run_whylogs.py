"""Run whylogs' default column drift check on two Parquet files.

Usage:
    /opt/keel-peers/whylogs/bin/python benchmarks/peers/run_whylogs.py \
        REF.parquet CUR.parquet OUT.json

Writes OUT.json = {"tool": "whylogs", "drifted_columns": [...], "columns_checked": N}.
Self-contained: does not import keel. Prints nothing except errors.

Both files are profiled with `why.log(pandas=df)`; drift comes from
`whylogs.viz.drift.column_drift_algorithms.calculate_drift_scores(target_view=current,
reference_view=reference, with_thresholds=True)` with the default drift map
(KS on the profiles' KLL sketches for numeric columns, chi-square on frequent items
for string columns; default thresholds NO_DRIFT/POSSIBLE_DRIFT/DRIFT). A column is
drifted iff its drift_category == "DRIFT" ("POSSIBLE_DRIFT" is not counted).
Columns for which whylogs returns no score (None) are not counted as checked.

whylogs needs NumPy < 2 for string columns; install it that way (see README.md).
"""

import os
import sys
import warnings

from _verdict import write_verdict

# whylogs reads the analytics opt-out at import time; set it before importing.
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: run_whylogs.py REFERENCE.parquet CURRENT.parquet OUT.json\n")
        return 2
    ref_path, cur_path, out_path = argv[1:]

    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)

    import pandas as pd
    import whylogs as why
    from whylogs.viz.drift.column_drift_algorithms import calculate_drift_scores

    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)

    ref_view = why.log(pandas=ref).view()
    cur_view = why.log(pandas=cur).view()
    scores = calculate_drift_scores(
        target_view=cur_view, reference_view=ref_view, with_thresholds=True
    )

    checked = set()
    drifted = set()
    for column, score in scores.items():
        if not score:
            continue
        checked.add(column)
        if score.get("drift_category") == "DRIFT":
            drifted.add(column)

    write_verdict(out_path, "whylogs", drifted, len(checked))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
