"""A plain scipy drift script: ks_2samp per numeric column, chi-square per categorical one.

Flags a column when its p-value is below 0.05, with no correction and no effect
size: what many teams write first. Usage: python run_scipy.py REF CUR OUT.json
"""

import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _verdict import write_verdict
from scipy import stats


def main() -> None:
    reference_path, current_path, out = sys.argv[1:4]
    reference, current = pq.read_table(reference_path), pq.read_table(current_path)
    drifted = []
    for name in reference.column_names:
        a, b = reference.column(name), current.column(name)
        if pa.types.is_floating(a.type) or pa.types.is_integer(a.type):
            p_value = stats.ks_2samp(a.to_numpy(), b.to_numpy()).pvalue
        else:
            a, b = a.cast(pa.string()), b.cast(pa.string())
            labels = pc.unique(pa.chunked_array(a.chunks + b.chunks)).to_pylist()
            counts = [
                [pc.sum(pc.equal(side, label)).as_py() for label in labels] for side in (a, b)
            ]
            p_value = stats.chi2_contingency(np.array(counts), correction=False).pvalue
        if p_value < 0.05:
            drifted.append(name)
    write_verdict(out, "scipy", drifted, reference.num_columns)


if __name__ == "__main__":
    main()
