"""Profiling a folder streams it: Arrow memory does not grow with the number of rows."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MEASURE = """
import sys, pyarrow as pa
from keel.profile import Profile
profile = Profile.build(sys.argv[1])
print(profile.rows, pa.default_memory_pool().max_memory())
"""


def _folder(path, files):
    path.mkdir()
    rng = np.random.default_rng(0)
    for index in range(files):
        rows = 200_000
        table = pa.table(
            {f"c{c}": rng.normal(size=rows) for c in range(8)}
            | {"cat": rng.choice(["a", "b", "c"], rows)}
        )
        pq.write_table(table, path / f"part-{index:03d}.parquet", row_group_size=50_000)
    return path


def _peak(folder):
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder)], capture_output=True, text=True, check=True
    )
    rows, peak = map(int, result.stdout.split())
    return rows, peak


def test_four_times_the_rows_take_about_the_same_peak_arrow_memory(tmp_path):
    small_rows, small_peak = _peak(_folder(tmp_path / "small", 2))
    large_rows, large_peak = _peak(_folder(tmp_path / "large", 8))
    assert (small_rows, large_rows) == (400_000, 1_600_000)
    folder_in_memory = large_rows * 9 * 8
    assert large_peak < 1.2 * small_peak  # flat: not 4 times the smaller folder's peak
    assert large_peak < folder_in_memory
