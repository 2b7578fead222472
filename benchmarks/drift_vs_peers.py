"""keel drift against its peers on the same Parquet files, each timed as a whole process.

Run (about ten minutes with the peers at the default size):

    python benchmarks/drift_vs_peers.py --rows 1000000 --columns 50

Generates reference and current tables (``benchmarks/drift_data.py``: 80%
numeric, 20% categorical with 20 categories, a quarter of the columns truly
drifted), then runs, one after the other on the same files:

* ``keel drift REF CUR`` with default settings, and ``keel drift BASELINE CUR``
  with a baseline made once beforehand (its one-off cost is printed apart);
* a plain scipy script (``ks_2samp`` / ``chi2_contingency``, p < 0.05);
* the numpy floor (read both files, one mean or distinct count per column);
* Evidently's DataDriftPreset, NannyML's UnivariateDriftCalculator and whylogs'
  drift scores, each from its own virtual environment under /opt/keel-peers
  (see benchmarks/peers/README.md to make them; missing ones are skipped).

For each it prints wall time, peak memory (resident set of the process and
all its children, sampled every 20 ms), the ratio of its time to keel's, and
how many of the truly drifted columns it flagged and how many others.
It also prints keel's single-core profiling throughput in numeric values/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("KEEL_PEERS", "/opt/keel-peers"))


def _tree_rss_kb(root: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run(command: list[str], env: dict | None = None) -> tuple[float, int, int]:
    """Wall seconds, peak tree RSS in MB, and exit code of one command."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kb(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, errors = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode not in (0, 1):
        print(
            f"  ! {command[0]} … exited {process.returncode}: {errors.decode()[-500:]}",
            file=sys.stderr,
        )
    return elapsed, peak // 1024, process.returncode


def keel_drift(reference: Path, current: Path, json_path: Path) -> list[str]:
    """The ``keel drift`` command line, its report written as JSON to ``json_path``."""
    return [
        sys.executable,
        "-m",
        "keel.cli",
        "drift",
        str(reference),
        str(current),
        "--json",
        str(json_path),
    ]


def drifted(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    payload = json.loads(path.read_text())
    if "dataset" in payload:  # keel's own JSON
        return payload["dataset"]["drifted_columns"]
    return payload["drifted_columns"]


def profile_throughput(path: Path) -> float:
    """Numeric values per second profiled by one process on one core."""
    from dataclasses import replace

    from keel.data import open_source
    from keel.profile import Profile
    from keel.schema import Schema

    source = replace(open_source(path), use_threads=False)
    schema = Schema.infer(source)
    numeric = [c.name for c in schema.columns if c.kind == "numeric"]
    schema = Schema([schema[name] for name in numeric])
    started = time.perf_counter()
    profile = Profile.build(source, schema)
    return profile.rows * len(numeric) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--data", type=Path, default=Path("/tmp/keel-bench"))
    parser.add_argument("--skip", default="", help="comma-separated tools to leave out")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    folder = args.data / f"{args.rows}x{args.columns}"
    reference, current = folder / "reference.parquet", folder / "current.parquet"
    if not (folder / "truth.json").exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "drift_data.py"),
                "--rows",
                str(args.rows),
                "--columns",
                str(args.columns),
                "--out",
                str(folder),
            ],
            check=True,
        )
    truth = set(json.loads((folder / "truth.json").read_text())["drifted"])

    import pyarrow.parquet as pq

    arrow_mb = sum(pq.read_table(p).nbytes for p in (reference, current)) / 2**20
    out = folder / "results"
    out.mkdir(exist_ok=True)
    python = sys.executable
    baseline = folder / "reference.baseline"
    baseline_seconds, baseline_mb, _ = run(
        [python, "-m", "keel.cli", "baseline", "create", str(reference), "-o", str(baseline)]
    )
    tools = {
        "keel": keel_drift(reference, current, out / "keel.json"),
        "keel (baseline reused)": keel_drift(baseline, current, out / "keel-baseline.json"),
        "numpy floor": [
            python,
            str(HERE / "peers/run_numpy_floor.py"),
            str(reference),
            str(current),
            str(out / "floor.json"),
        ],
        "scipy (p < 0.05)": [
            python,
            str(HERE / "peers/run_scipy.py"),
            str(reference),
            str(current),
            str(out / "scipy.json"),
        ],
    }
    for peer, extra in (
        ("evidently", []),
        ("nannyml", ["--reference-chunks", "10"]),
        ("whylogs", []),
    ):
        interpreter = PEERS / peer / "bin" / "python"
        if interpreter.exists():
            tools[peer] = [
                str(interpreter),
                str(HERE / f"peers/run_{peer}.py"),
                str(reference),
                str(current),
                str(out / f"{peer}.json"),
                *extra,
            ]
        else:
            print(f"(skipping {peer}: no {interpreter}; see benchmarks/peers/README.md)")
    results = {}
    for name, command in tools.items():
        if name in skip or name.split(" ")[0] in skip:
            continue
        print(f"running {name} …", file=sys.stderr, flush=True)
        results[name] = run(command)
    keel_seconds = results["keel"][0]
    print(
        f"\n{args.rows:,} + {args.rows:,} rows × {args.columns} columns, "
        f"{len(truth)} truly drifted; Arrow size of the two tables {arrow_mb:,.0f} MB; "
        f"{os.cpu_count()} cores\n"
    )
    print("| tool | wall s | peak MB | × keel's time | drifted found | others flagged |")
    print("|---|---|---|---|---|---|")
    outputs = {
        "keel": "keel",
        "keel (baseline reused)": "keel-baseline",
        "numpy floor": "floor",
        "scipy (p < 0.05)": "scipy",
    }
    for name, (seconds, peak, _) in results.items():
        flagged = drifted(out / f"{outputs.get(name, name)}.json")
        if name == "numpy floor":
            found = others = "—"
        elif flagged is None:
            found = others = "failed"
        else:
            found = f"{len(truth & set(flagged))}/{len(truth)}"
            others = str(len(set(flagged) - truth))
        print(
            f"| {name} | {seconds:.1f} | {peak:,} | {seconds / keel_seconds:.2f} | "
            f"{found} | {others} |"
        )
    print(f"\nbaseline create (once): {baseline_seconds:.1f} s, peak {baseline_mb:,} MB")
    rate = profile_throughput(reference)
    print(f"profile throughput, one core: {rate / 1e6:.1f} M numeric values/s")


if __name__ == "__main__":
    main()
