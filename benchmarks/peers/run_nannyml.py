"""Run NannyML's UnivariateDriftCalculator (default methods/thresholds) on two Parquet files.

Usage:
    /opt/keel-peers/nannyml/bin/python benchmarks/peers/run_nannyml.py \
        REF.parquet CUR.parquet OUT.json
        [--reference-chunks N]

Writes OUT.json = {"tool": "nannyml", "drifted_columns": [...], "columns_checked": N}.
Self-contained: does not import keel. Prints nothing except errors.

Default mode (as specified for the benchmark):
    UnivariateDriftCalculator(column_names=<all columns>, chunk_number=1), fit on the
    reference, calculate on the current file; a column is drifted if the alert flag
    of any of its methods is True for the (single) analysis chunk. Default methods:
    jensen_shannon for both continuous and categorical columns. No timestamp column
    is needed. Column types are left to NannyML (numeric -> continuous;
    object/string/category/bool -> categorical).

    CAVEAT: NannyML's default threshold is StandardDeviationThreshold(3 sd, upper
    only) computed over the *reference chunks'* own scores. With chunk_number=1 there
    is exactly one reference chunk, whose score against itself is 0, so the upper
    threshold becomes 0 + 3*0 = 0 and every column with any nonzero distance alerts.
    In practice this mode flags (almost) every column.

--reference-chunks N (opt-in, not the brief's configuration):
    fit with chunk_number=N (NannyML's DefaultChunker uses 10) so the default
    thresholds come from the spread of N reference chunks, then swap the chunker
    to a single chunk and analyse the whole current file as one chunk. The
    thresholds are then derived from reference chunks that are N times smaller than
    the analysis chunk, so they are conservative.
"""

import os
import sys
import warnings

from _verdict import write_verdict

# Opt out of NannyML's usage analytics (segment) before importing it.
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")


def main(argv):
    args = list(argv[1:])
    reference_chunks = None
    if "--reference-chunks" in args:
        i = args.index("--reference-chunks")
        try:
            reference_chunks = int(args[i + 1])
        except (IndexError, ValueError):
            sys.stderr.write("run_nannyml: --reference-chunks needs an integer\n")
            return 2
        del args[i : i + 2]
    if len(args) != 3:
        sys.stderr.write(
            "usage: run_nannyml.py REFERENCE.parquet CURRENT.parquet OUT.json "
            "[--reference-chunks N]\n"
        )
        return 2
    ref_path, cur_path, out_path = args

    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)

    import nannyml as nml
    import pandas as pd
    from nannyml.chunk import CountBasedChunker

    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    columns = list(ref.columns)

    if reference_chunks is None:
        calc = nml.UnivariateDriftCalculator(column_names=columns, chunk_number=1)
        calc.fit(ref)
    else:
        calc = nml.UnivariateDriftCalculator(column_names=columns, chunk_number=reference_chunks)
        calc.fit(ref)
        # thresholds are fixed at fit time; analyse the current file as one chunk
        calc.chunker = CountBasedChunker(chunk_number=1)
    result = calc.calculate(cur)

    df = result.filter(period="analysis").to_df()
    if len(df) != 1:
        sys.stderr.write(f"run_nannyml: expected 1 analysis chunk, got {len(df)}\n")
        return 1

    checked = set()
    drifted = set()
    for col in df.columns:
        # MultiIndex columns: (column_name, method, field)
        if len(col) == 3 and col[0] != "chunk" and col[2] == "alert":
            checked.add(col[0])
            if bool(df[col].iloc[0]):
                drifted.add(col[0])

    write_verdict(out_path, "nannyml", drifted, len(checked))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
