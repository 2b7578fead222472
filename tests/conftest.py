"""Shared fixtures: a real ``keel`` process and generated tables whose truth is known."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def run_keel(tmp_path: Path):
    """Run the real ``keel`` command line in a subprocess, in a temporary folder."""

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "keel.cli", *map(str, args)],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


def make_table(rows: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> pd.DataFrame:
    """Three numeric and one categorical feature, plus an id; ``shift``/``scale`` move ``x``."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "row_id": np.arange(rows) + seed * 10_000_000,
            "x": rng.normal(shift, scale, rows),
            "y": rng.exponential(2.0, rows),
            "z": rng.integers(0, 50, rows).astype(np.int64),
            "color": rng.choice(["red", "green", "blue", "black"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
