"""The floor: read both Parquet files and make one pass per column, nothing else.

A mean per numeric column and a distinct count per categorical one: the
least any drift tool must do. Usage: python run_numpy_floor.py REF CUR OUT.json
"""

import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _verdict import write_verdict


def summarize(path: str) -> dict:
    table = pq.read_table(path)
    summary = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
            summary[name] = float(np.mean(column.to_numpy()))
        else:
            summary[name] = len(column.unique())
    return summary


def main() -> None:
    reference, current, out = sys.argv[1:4]
    summaries = [summarize(reference), summarize(current)]
    write_verdict(out, "numpy floor", [], len(summaries[0]))


if __name__ == "__main__":
    main()
