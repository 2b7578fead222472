#!/usr/bin/env bash
# The Spark stack: the engine battery and the Spark engine's tests in one real local[2]
# session. pyspark goes into the main environment when installing it changes no package
# already there (checked with pip's dry run); otherwise into a cached virtual environment
# under .ci-cache/spark-<hash of the requirement and keel's dependencies>/. Java 17 comes
# from the machine image. A missing requirement fails this step: CI never passes on skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
requirement="pyspark>=4.1"
pip_quiet=(--quiet --disable-pip-version-check)

changes_installed() {
    # Prints the installed packages that installing $requirement would replace (none: empty).
    python -m pip install "${pip_quiet[@]}" --dry-run --report - "$requirement" | python -c '
import json, sys
from importlib import metadata
for item in json.load(sys.stdin).get("install", []):
    name = item["metadata"]["name"]
    try:
        print(name, metadata.version(name), "->", item["metadata"]["version"])
    except metadata.PackageNotFoundError:
        pass
'
}

py=python
changed="$(changes_installed)"
if [ -z "$changed" ]; then
    python -m pip install "${pip_quiet[@]}" "$requirement"
else
    echo "spark: installing $requirement here would change: $changed; using a cached venv"
    hash="$(cat pyproject.toml <(echo "$requirement") | sha256sum | cut -c1-12)"
    venv=".ci-cache/spark-$hash"
    if [ ! -x "$venv/bin/python" ]; then
        python -m venv "$venv"
        "$venv/bin/python" -m pip install "${pip_quiet[@]}" -e ".[spark,test]"
    fi
    py="$venv/bin/python"
fi

"$py" -c '
import sys
from keel.engines.spark import missing_requirement
missing = missing_requirement()
if missing:
    sys.exit(f"spark: {missing}")
'
PYSPARK_PYTHON="$("$py" -c 'import sys; print(sys.executable)')"
export PYSPARK_PYTHON PYSPARK_DRIVER_PYTHON="$PYSPARK_PYTHON"
# One process (-n 0): one Spark session for every test, not one per test worker.
"$py" -m pytest -n 0 -m spark -p no:cacheprovider \
    tests/common/test_engines.py tests/test_spark_*.py
