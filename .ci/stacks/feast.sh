#!/usr/bin/env bash
# The Feast stack: keel.data.feast against one real Feast repository (DuckDB offline store,
# SQLite online store; tests/test_feast_source.py), then a smoke set of keel's own tests under
# the pandas 2 that Feast pins. Feast pins pandas < 3 and prometheus_client < 0.25, so it never
# goes into the main environment: it gets a virtual environment of its own under
# .ci-cache/feast-<hash of keel's dependencies, the feast extra and the requirements below>/,
# kept between runs on one checkout and rebuilt when those change. keel is installed editable,
# so the tests always run today's code. A missing requirement fails this step: CI never passes
# on skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
requirements=(-e ".[feast]" "pytest>=8" "pytest-xdist>=3.5" "hypothesis>=6.100")
# -qq: errors only (one -q still prints a warning per package for the extra local indexes).
pip_quiet=(-qq --disable-pip-version-check)

hash="$(
    {
        python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print(sorted(p["dependencies"]), p["optional-dependencies"]["feast"], sep="\n")'
        printf '%s\n' "${requirements[@]}"
    } | sha256sum | cut -c1-12
)"
venv=".ci-cache/feast-$hash"
if [ ! -e "$venv/.complete" ]; then
    echo "feast: building $venv (cached for later runs)"
    # One Feast environment at a time (each is about 1 GB).
    for old in .ci-cache/feast-*; do
        [ -e "$old" ] && [ "$old" != "$venv" ] && rm -rf "$old"
    done
    rm -rf "$venv"
    python -m venv "$venv"
    "$venv/bin/python" -m pip install "${pip_quiet[@]}" "${requirements[@]}"
    touch "$venv/.complete"
fi
py="$venv/bin/python"

"$py" -c '
import sys
from importlib import metadata
from keel.data.feast import missing_requirement
missing = missing_requirement()
if missing:
    sys.exit(f"feast: {missing}")
print("feast:", ", ".join(f"{p} {metadata.version(p)}"
      for p in ("feast", "pandas", "pyarrow", "duckdb", "ibis-framework", "numpy")))
'
# keel.data.feast against a real Feast repository.
# One process (-n 0): the Feast repository fixture is made once.
"$py" -m pytest -n 0 -m feast -p no:cacheprovider tests/test_feast_source.py
# keel itself under pandas 2: sources, drift, data, and keel.data's doctests.
"$py" -m pytest -n 0 -p no:cacheprovider -q \
    tests/common/test_sources.py tests/test_drift.py tests/test_data.py src/keel/data
